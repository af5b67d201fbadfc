"""Registration, contributions, activation, unlocks and exits (PROTOCOL.md §2)."""

from __future__ import annotations

import pytest

from state.crypto import bls, ed25519
from state.effects import NodeActivated, NodeExited, NodeRegistered, StakeReturned, UnlockRequested
from state.errors import InvalidSignature
from state.events import Contribute, RequestUnlock, Reservation, validate_basic
from state.noderecords import NodeStatus
from state.nodes import is_payable
from state.swarms import UNASSIGNED_SWARM_ID
from state.types import AccountKey, Atomic
from tests.chainsim import Sim, make_genesis, replace


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    return make_genesis()


@pytest.fixture
def sim(net) -> Sim:  # type: ignore[no-untyped-def]
    return Sim(*net)


def req(sim: Sim) -> int:
    return sim.params.staking_requirement


def test_full_stake_activates_in_the_registering_block(sim: Sim) -> None:
    alice = sim.users[0]
    before = sim.balance(alice.public_key)
    node, tx = sim.new_node(alice, req(sim))
    pending = sim.block(tx)
    record = sim.node(node.public_key)
    assert record is not None and record.status == NodeStatus.ACTIVE
    assert record.activation_height == sim.height
    assert record.swarm_id != UNASSIGNED_SWARM_ID  # swarms recomputed at the end of the block
    assert sim.balance(alice.public_key) == before - req(sim) - sim.fee(tx)
    kinds = [type(e) for e in pending.effects]
    assert kinds.index(NodeRegistered) < kinds.index(NodeActivated)
    sim.check()


def test_partial_stake_waits_then_activates_when_funded(sim: Sim) -> None:
    alice, bob = sim.users[0], sim.users[1]
    node, tx = sim.new_node(alice, req(sim) // 2)
    sim.block(tx)
    assert sim.node(node.public_key).status == NodeStatus.AWAITING  # type: ignore[union-attr]
    sim.block(sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(req(sim) // 2)))
    record = sim.node(node.public_key)
    assert record is not None and record.status == NodeStatus.ACTIVE
    assert [c.account for c in record.contributions] == [alice.public_key, bob.public_key]
    sim.check()


def test_operator_minimum_and_ceiling(sim: Sim) -> None:
    alice = sim.users[0]
    _, low = sim.new_node(alice, req(sim) // 4 - 1)
    sim.refuse(low, match="operator stake .* below the minimum")
    _, high = sim.new_node(alice, req(sim) + 1)
    sim.refuse(high, match="exceeds the staking requirement")


def test_contribution_minimum_is_remaining_over_open_spots(sim: Sim) -> None:
    alice, bob = sim.users[0], sim.users[1]
    node, tx = sim.new_node(alice, req(sim) // 4)
    sim.block(tx)
    room = req(sim) - req(sim) // 4
    minimum = -(-room // 9)
    sim.refuse(
        sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(minimum - 1)),
        match="below the minimum contribution",
    )
    sim.block(sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(minimum)))
    sim.refuse(
        sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(minimum)), match="already contributed"
    )
    carol = sim.users[2]
    sim.refuse(
        sim.tx(Contribute, carol, node_key=node.public_key, amount=Atomic(room)),
        match="exceeds the room left",
    )


def test_the_eleventh_contributor_is_refused(sim: Sim) -> None:
    alice = sim.users[0]
    share = req(sim) * 3 // 40  # 9 spots of 7.5% after an operator stake of 32.5%: each exactly the minimum
    spots = tuple(Reservation(AccountKey(bytes([0x70 + i]) * 32), Atomic(share)) for i in range(9))
    node, tx = sim.new_node(alice, req(sim) - 9 * share, reserved=spots)
    sim.block(tx)
    sim.refuse(
        sim.tx(Contribute, sim.users[1], node_key=node.public_key, amount=Atomic(req(sim) // 20)),
        match="already has 10 contributors",
    )
    _, eleven = sim.new_node(
        alice, req(sim) // 4, reserved=(*spots, Reservation(AccountKey(b"\x7f" * 32), Atomic(1)))
    )
    sim.refuse(eleven, match="more than 10 contributors")


def test_reserved_spots(sim: Sim) -> None:
    alice, bob, carol = sim.users[0], sim.users[1], sim.users[2]
    spot = Reservation(bob.public_key, Atomic(req(sim) // 4))
    node, tx = sim.new_node(alice, req(sim) // 2, reserved=(spot,))
    sim.block(tx)
    # bob must put in at least the reserved amount; carol cannot take bob's room
    sim.refuse(
        sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(req(sim) // 4 - 1)),
        match="below the reserved amount",
    )
    sim.refuse(
        sim.tx(Contribute, carol, node_key=node.public_key, amount=Atomic(req(sim) // 2)),
        match="exceeds the room left",
    )
    sim.block(sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(req(sim) // 4)))
    assert sim.node(node.public_key).reserved == ()  # type: ignore[union-attr]
    sim.block(sim.tx(Contribute, carol, node_key=node.public_key, amount=Atomic(req(sim) // 4)))
    assert sim.node(node.public_key).status == NodeStatus.ACTIVE  # type: ignore[union-attr]
    _, bad = sim.new_node(alice, req(sim) // 2, reserved=(Reservation(bob.public_key, Atomic(1)),))
    sim.refuse(bad, match="reserved amount 1 below the minimum")


def test_duplicate_keys_are_refused(sim: Sim) -> None:
    alice = sim.users[0]
    _, tx = sim.new_node(alice, req(sim))
    sim.block(tx)
    again = sim.tx(
        type(tx),
        alice,
        **{
            f: getattr(tx, f)
            for f in (
                "node_key",
                "bls_key",
                "bls_pop",
                "node_signature",
                "operator_fee_bp",
                "amount",
                "reserved",
            )
        },
    )
    sim.refuse(again, match="node key already registered")
    other, fresh = sim.new_node(alice, req(sim))
    sim.nonces.clear()  # ``fresh`` only lends its node key: reuse its nonce
    same_bls = sim.tx(
        type(tx),
        alice,
        node_key=fresh.node_key,
        bls_key=tx.bls_key,
        bls_pop=tx.bls_pop,
        node_signature=other.sign(fresh.node_key + tx.bls_key),
        operator_fee_bp=0,
        amount=Atomic(req(sim)),
        reserved=(),
    )
    sim.refuse(same_bls, match="BLS key already registered")


def test_registration_proofs_are_checked(sim: Sim) -> None:
    alice = sim.users[0]
    _, tx = sim.new_node(alice, req(sim))
    sim.refuse(
        sim.tx(type(tx), alice, **{**_fields(tx), "node_signature": bytes(64)}), match="node key signature"
    )
    _, other = sim.new_node(alice, req(sim))
    sim.refuse(
        sim.tx(type(tx), alice, **{**_fields(tx), "bls_pop": other.bls_pop}), match="proof of possession"
    )
    sim.refuse(sim.tx(type(tx), alice, **{**_fields(tx), "operator_fee_bp": 10_001}), match="operator fee")


def test_a_forged_registration_fails_at_its_signature_before_its_key_proofs(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender's signature is checked first: a forgery carrying a real registration's proofs
    costs one signature check, not the proofs' (about fifty), so a flood of them is cheap."""
    _, tx = sim.new_node(sim.users[0], req(sim))
    forged = replace(tx, signature=bytes(64))
    checked: list[bytes] = []
    verify = ed25519.verify
    monkeypatch.setattr(ed25519, "verify", lambda key, *rest: checked.append(key) or verify(key, *rest))
    monkeypatch.setattr(bls, "verify_possession", lambda *args: pytest.fail("the BLS proof was checked"))
    with pytest.raises(InvalidSignature, match="RegisterNode signature does not verify for the sender"):
        validate_basic(forged, sim.state.chain_id)
    assert checked == [tx.sender]


def test_a_block_of_registrations_names_the_one_with_a_bad_proof(sim: Sim) -> None:
    """A block's proofs of possession are checked as one batch; a bad one among them still
    refuses the block naming its event, and the same registrations with good proofs pass."""
    senders = sim.users[:3]
    txs = [sim.new_node(sender, req(sim))[1] for sender in senders]
    forged = sim.tx(type(txs[1]), senders[1], **{**_fields(txs[1]), "bls_pop": txs[2].bls_pop})
    sim.refuse(txs[0], forged, txs[2], match=r"event 1 \(RegisterNode\): BLS proof of possession")
    txs = [sim.tx(type(tx), sender, **_fields(tx)) for tx, sender in zip(txs, senders, strict=True)]
    sim.block(*txs)
    assert all(sim.node(tx.node_key) is not None for tx in txs)
    sim.check()


def _fields(tx):  # type: ignore[no-untyped-def]
    return {
        f: getattr(tx, f)
        for f in ("node_key", "bls_key", "bls_pop", "node_signature", "operator_fee_bp", "amount", "reserved")
    }


def test_contributions_only_to_awaiting_nodes(sim: Sim) -> None:
    alice, bob = sim.users[0], sim.users[1]
    node, tx = sim.new_node(alice, req(sim))
    sim.block(tx)
    sim.refuse(
        sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(1)), match="already fully funded"
    )
    sim.refuse(sim.tx(Contribute, bob, node_key=b"\x01" * 32, amount=Atomic(1)), match="not registered")


def test_exit_after_the_unlock_delay_returns_every_stake(sim: Sim) -> None:
    alice, bob = sim.users[0], sim.users[1]
    node, tx = sim.new_node(alice, req(sim) // 2)
    sim.block(tx)
    sim.block(sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(req(sim) // 2)))
    unlock = sim.tx(RequestUnlock, alice, node_key=node.public_key)
    pending = sim.block(unlock)
    exit_height = sim.height + sim.params.unlock_delay
    assert UnlockRequested(node.public_key, alice.public_key, exit_height) in pending.effects  # type: ignore[arg-type]
    sim.refuse(sim.tx(RequestUnlock, bob, node_key=node.public_key), match="already exits")
    a, b = sim.balance(alice.public_key), sim.balance(bob.public_key)
    sim.advance_to(exit_height - 1)
    assert sim.node(node.public_key) is not None
    last = sim.block()
    assert sim.node(node.public_key) is None
    assert NodeExited(node.public_key) in last.effects  # type: ignore[arg-type]
    assert StakeReturned(node.public_key, alice.public_key, Atomic(req(sim) // 2)) in last.effects  # type: ignore[arg-type]
    assert sim.balance(alice.public_key) == a + req(sim) // 2
    assert sim.balance(bob.public_key) == b + req(sim) // 2
    sim.check()


def test_small_contributor_cannot_request_exit_early(sim: Sim) -> None:
    alice, bob = sim.users[0], sim.users[1]
    small = req(sim) // 5  # 20% < 25%
    node, tx = sim.new_node(alice, req(sim) - small)
    sim.block(tx)
    sim.block(sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(small)))
    activated = sim.node(node.public_key).activation_height  # type: ignore[union-attr]
    sim.refuse(sim.tx(RequestUnlock, bob, node_key=node.public_key), match="unlock too early")
    sim.advance_to(activated + sim.params.small_contributor_lock - 1)
    sim.block(sim.tx(RequestUnlock, bob, node_key=node.public_key))
    assert sim.node(node.public_key).unlock_height != -1  # type: ignore[union-attr]


def test_withdrawing_from_a_node_not_yet_active(sim: Sim) -> None:
    alice, bob, carol = sim.users[0], sim.users[1], sim.users[2]
    node, tx = sim.new_node(alice, req(sim) // 2)
    sim.block(tx)
    sim.block(sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(req(sim) // 4)))
    contributed_at = sim.height
    sim.refuse(sim.tx(RequestUnlock, bob, node_key=node.public_key), match="unlock too early")
    sim.refuse(sim.tx(RequestUnlock, carol, node_key=node.public_key), match="only a contributor")
    sim.advance_to(contributed_at + sim.params.contribution_lock - 1)
    before = sim.balance(bob.public_key)
    unlock = sim.tx(RequestUnlock, bob, node_key=node.public_key)
    sim.block(unlock)
    assert sim.balance(bob.public_key) == before + req(sim) // 4 - sim.fee(unlock)
    assert len(sim.node(node.public_key).contributions) == 1  # type: ignore[union-attr]
    before = sim.balance(alice.public_key)
    cancel = sim.tx(RequestUnlock, alice, node_key=node.public_key)
    sim.block(cancel)
    assert sim.node(node.public_key) is None
    assert sim.balance(alice.public_key) == before + req(sim) // 2 - sim.fee(cancel)
    sim.check()


def test_payable_only_after_the_delay(sim: Sim) -> None:
    alice = sim.users[0]
    node, tx = sim.new_node(alice, req(sim))
    sim.block(tx)
    record = sim.node(node.public_key)
    assert record is not None
    start = record.activation_height
    assert not is_payable(record, start + sim.params.payable_delay - 1, sim.params)
    assert is_payable(record, start + sim.params.payable_delay, sim.params)
    assert not is_payable(replace(record, status=NodeStatus.DECOMMISSIONED), start + 10_000, sim.params)
