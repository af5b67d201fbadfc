"""apply_block and the ledger rules: each rule's valid case and every way it can be invalid."""

from __future__ import annotations

import msgspec
import pytest

from genesis.build import create_genesis_state
from genesis.devnet import derive_user
from genesis.document import Genesis
from state.block import Block, Header, compute_events_root
from state.encoding import encode
from state.errors import InvalidBlock
from state.events import Allocation, Transfer
from state.ledger import compute_fee, get_account, get_pool_balance
from state.nodes import compute_leader
from state.smt import SparseMerkleTree
from state.state import State
from state.transition import NoStateTree, apply_block, commit_block, execute_block, propose_block
from state.types import AccountKey, Atomic, Hash32, NodeKey
from state.view import Overlay
from tests.helpers import next_block, transfer

ALICE = derive_user("tests", 0)
BOB = derive_user("tests", 1)
CAROL = AccountKey(b"\xcc" * 32)


@pytest.fixture
def state(devnet_genesis: Genesis) -> State:
    return create_genesis_state(devnet_genesis)[0]


def balance(state: State, account: bytes) -> int:
    return get_account(Overlay(state.get), AccountKey(account)).balance


def test_transfer_moves_exactly_the_amount_and_pays_its_fee(state: State) -> None:
    before_a, before_c = balance(state, ALICE.public_key), balance(state, CAROL)
    pool = get_pool_balance(Overlay(state.get))
    tx = transfer(state, ALICE, CAROL, 7, 1)
    fee = compute_fee(state.params, tx)
    assert fee == state.params.fee_transfer + state.params.fee_per_byte * len(encode(tx))
    block = next_block(state, [tx])
    apply_block(state, block.block)
    assert balance(state, ALICE.public_key) == before_a - 7 - fee
    assert balance(state, CAROL) == before_c + 7
    # the fee went to the pool (which then paid nothing: no node is payable yet)
    assert get_pool_balance(Overlay(state.get)) == pool + fee
    assert get_account(Overlay(state.get), ALICE.public_key).nonce == 1


def test_consecutive_nonces_in_one_block(state: State) -> None:
    events = [transfer(state, ALICE, CAROL, 1, n) for n in (1, 2, 3)]
    apply_block(state, next_block(state, events).block)  # type: ignore[arg-type]
    assert balance(state, CAROL) == 3


def test_self_transfer_costs_only_the_fee(state: State) -> None:
    before = balance(state, ALICE.public_key)
    tx = transfer(state, ALICE, ALICE.public_key, 5, 1)
    apply_block(state, next_block(state, [tx]).block)
    assert balance(state, ALICE.public_key) == before - compute_fee(state.params, tx)


def test_a_sender_who_cannot_pay_the_fee_changes_nothing(state: State) -> None:
    poor = derive_user("poor", 0)
    apply_block(state, next_block(state, [transfer(state, ALICE, poor.public_key, 1000, 1)]).block)
    root = state.root
    with pytest.raises(InvalidBlock, match="cannot pay the fee"):
        next_block(state, [transfer(state, poor, CAROL, 1, 1)])
    assert state.root == root


def _invalid_transfers(state: State) -> dict[str, Transfer]:
    rich = balance(state, ALICE.public_key)
    good = transfer(state, ALICE, CAROL, 1, 1)
    return {
        "wrong nonce (replay of 0)": transfer(state, ALICE, CAROL, 1, 2),
        "insufficient funds": transfer(state, ALICE, CAROL, rich + 1, 1),
        "empty account sends": transfer(state, derive_user("nobody", 0), CAROL, 1, 1),
        "bad signature": msgspec.structs.replace(good, amount=Atomic(2)),
        "signed for another chain": transfer(state, ALICE, CAROL, 1, 1, chain_id="other-chain"),
        "signed by someone else": msgspec.structs.replace(good, signature=BOB.sign(b"x" * 32)),
        "zero amount": transfer(state, ALICE, CAROL, 0, 1),
        "nonce zero": transfer(state, ALICE, CAROL, 1, 0),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong nonce (replay of 0)",
        "insufficient funds",
        "empty account sends",
        "bad signature",
        "signed for another chain",
        "signed by someone else",
        "zero amount",
        "nonce zero",
    ],
)
def test_invalid_transfer_leaves_the_state_untouched(state: State, case: str) -> None:
    tx = _invalid_transfers(state)[case]
    root, height, items = state.root, state.height, list(state.items())
    with pytest.raises(InvalidBlock):
        propose_block(
            state, [transfer(state, BOB, CAROL, 1, 1), tx], state.timestamp + state.params.block_time
        )
    leader = compute_leader(Overlay(state.get))
    assert leader is not None
    header = Header(
        1,
        state.height + 1,
        state.block_hash,
        state.timestamp + state.params.block_time,
        compute_events_root((tx,)),
        root,
        producer=leader,
    )
    with pytest.raises(InvalidBlock) as caught:
        apply_block(state, Block(header, (tx,)))
    assert caught.value.event_index == 0
    assert (state.root, state.height, list(state.items())) == (root, height, items)


def test_a_replayed_transaction_is_refused(state: State) -> None:
    tx = transfer(state, ALICE, CAROL, 1, 1)
    apply_block(state, next_block(state, [tx]).block)
    with pytest.raises(InvalidBlock, match="nonce"):
        next_block(state, [tx])


def test_genesis_events_are_refused_after_genesis(state: State) -> None:
    with pytest.raises(InvalidBlock, match="not allowed outside the genesis block"):
        next_block(state, [Allocation(CAROL, Atomic(10**9))])


def test_transactions_are_refused_in_the_genesis_block(devnet_genesis: Genesis) -> None:
    from genesis.build import create_pre_genesis_state

    empty = create_pre_genesis_state(devnet_genesis)
    tx = transfer(empty, ALICE, CAROL, 1, 1)
    with pytest.raises(InvalidBlock, match="not allowed in the genesis block"):
        propose_block(empty, [tx], devnet_genesis.timestamp_ms)


def _header_cases(state: State) -> dict[str, Block]:
    good = next_block(state, [transfer(state, ALICE, CAROL, 1, 1)]).block
    h = good.header
    replace = msgspec.structs.replace
    return {
        "wrong height": Block(replace(h, height=h.height + 1), good.events),
        "wrong parent": Block(replace(h, prev_hash=Hash32(b"\x09" * 32)), good.events),
        "time goes back": Block(replace(h, timestamp=state.timestamp - 1), good.events),
        "too early": Block(replace(h, timestamp=state.timestamp + state.params.block_time - 1), good.events),
        "events root": Block(replace(h, events_root=Hash32(b"\x09" * 32)), good.events),
        "state root": Block(replace(h, state_root=Hash32(b"\x09" * 32)), good.events),
        "version": Block(replace(h, version=2), good.events),
        "event swapped": Block(h, (transfer(state, ALICE, CAROL, 2, 1),)),
        "event dropped": Block(h, ()),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong height",
        "wrong parent",
        "time goes back",
        "too early",
        "events root",
        "state root",
        "version",
        "event swapped",
        "event dropped",
    ],
)
def test_invalid_blocks_are_refused_and_change_nothing(state: State, case: str) -> None:
    block = _header_cases(state)[case]
    root, tip = state.root, state.block_hash
    with pytest.raises(InvalidBlock):
        apply_block(state, block)
    assert (state.root, state.block_hash) == (root, tip)


def test_a_block_is_not_stamped_before_its_parent_plus_the_block_time(state: State) -> None:
    """The deterministic timestamp rule, in milliseconds: the parent's timestamp plus
    ``block_time`` is the earliest valid stamp (the edge is valid), one millisecond less is too
    early, whether proposed or applied, and a refused block changes nothing. No clock is read:
    the same block gets the same verdict in any replay."""
    earliest = state.timestamp + state.params.block_time
    events = [transfer(state, ALICE, CAROL, 1, 1)]
    with pytest.raises(InvalidBlock, match=r"block 1: timestamp \d+ ms is too early"):
        propose_block(state, events, earliest - 1, producer=compute_leader(Overlay(state.get)))
    good = next_block(state, events).block
    assert good.header.timestamp == earliest  # the helpers stamp the edge itself
    early = Block(msgspec.structs.replace(good.header, timestamp=earliest - 1), good.events)
    root = state.root
    with pytest.raises(InvalidBlock, match="too early"):
        apply_block(state, early)
    assert state.root == root and state.height == 0
    apply_block(state, good)
    assert state.height == 1 and state.timestamp == earliest


def test_blocks_may_be_less_than_a_second_apart(devnet_genesis: Genesis) -> None:
    """With ``block_time`` in milliseconds, a 250 ms chain's blocks are 250 ms apart: timestamps
    are not whole seconds."""
    fast = msgspec.structs.replace(
        devnet_genesis, params=msgspec.structs.replace(devnet_genesis.params, block_time=250)
    )
    state, _ = create_genesis_state(fast)
    assert state.timestamp == fast.genesis_time * 1000
    for height in (1, 2, 3):
        apply_block(state, next_block(state, []).block)
        assert state.timestamp == fast.genesis_time * 1000 + 250 * height
    early = next_block(state, []).block
    with pytest.raises(InvalidBlock, match="too early"):
        apply_block(state, Block(msgspec.structs.replace(early.header, timestamp=state.timestamp + 249), ()))


def test_block_size_limits(state: State) -> None:
    small = msgspec.structs.replace(state.params, max_block_events=1, max_event_bytes=10_000)
    limited = State(state.chain_id, small, state.block_hash, state.timestamp)
    limited.height = state.height
    limited._kv = dict(state.items())
    limited._tree = state.tree
    two = [transfer(state, ALICE, CAROL, 1, 1), transfer(state, ALICE, CAROL, 1, 2)]
    with pytest.raises(InvalidBlock, match="more than 1 events"):
        next_block(limited, two)  # type: ignore[arg-type]
    tiny = msgspec.structs.replace(state.params, max_event_bytes=50)
    limited.params = tiny
    with pytest.raises(InvalidBlock, match="too large"):
        next_block(limited, two[:1])  # type: ignore[arg-type]


def test_execute_does_not_mutate_and_commit_needs_the_same_tip(state: State) -> None:
    pending = next_block(state, [transfer(state, ALICE, CAROL, 1, 1)])
    assert state.height == 0
    again = execute_block(state, pending.block)
    assert again.tree.root == pending.tree.root
    commit_block(state, pending)
    with pytest.raises(RuntimeError):
        commit_block(state, again)


def test_signatures_can_be_trusted_on_replay_of_a_certified_log(state: State) -> None:
    """Skipping signature checks never changes the state a valid log produces."""
    other = state.copy()
    block = next_block(state, [transfer(state, ALICE, CAROL, 3, 1)]).block
    apply_block(state, block, verify_signatures=True)
    apply_block(other, block, verify_signatures=False)
    assert state.root == other.root


def test_the_producer_must_be_an_active_service_node(state: State) -> None:
    root = state.root
    with pytest.raises(InvalidBlock, match="producer is not an active service node"):
        propose_block(state, [], state.timestamp + state.params.block_time, producer=NodeKey(b"\x42" * 32))
    with pytest.raises(InvalidBlock, match="producer is not an active service node"):
        propose_block(state, [], state.timestamp + state.params.block_time)  # no producer at all
    assert state.root == root


def test_skip_state_tree_applies_the_same_writes_and_computes_no_root(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measurement switch of bench/replay.py: same rules and map, no tree, no root."""
    skipped = state.copy()
    blocks = []
    for nonce in (1, 2, 3):
        pending = next_block(state, [transfer(state, ALICE, CAROL, nonce, nonce)])
        commit_block(state, pending)
        blocks.append(pending)

    def no_tree_please(self: SparseMerkleTree, changes: object) -> SparseMerkleTree:
        raise AssertionError("the tree was updated")

    monkeypatch.setattr(SparseMerkleTree, "update", no_tree_please)
    for expected in blocks:
        pending = execute_block(skipped, expected.block, skip_state_tree=True)
        assert (pending.writes, pending.changes, pending.effects) == (
            expected.writes,
            expected.changes,
            expected.effects,
        )
        commit_block(skipped, pending)
    monkeypatch.undo()
    assert list(skipped.items()) == list(state.items())
    assert (skipped.height, skipped.block_hash) == (state.height, state.block_hash)
    # the root was never computed, and nothing pretends it was
    with pytest.raises(NoStateTree):
        skipped.root  # noqa: B018
    with pytest.raises(NoStateTree):
        skipped.prove(CAROL)
    following = next_block(state, [transfer(state, ALICE, CAROL, 1, 4)]).block
    with pytest.raises(NoStateTree):
        execute_block(skipped, following)  # with the tree on, a tree-less state cannot go on


def test_only_the_measurement_switch_skips_the_state_root_check(state: State) -> None:
    good = next_block(state, [transfer(state, ALICE, CAROL, 1, 1)]).block
    bad = Block(msgspec.structs.replace(good.header, state_root=Hash32(b"\x09" * 32)), good.events)
    with pytest.raises(InvalidBlock, match="state root"):
        execute_block(state, bad)  # the default path compares the root
    with pytest.raises(InvalidBlock, match="state root"):
        execute_block(state, bad, verify_signatures=False)
    # switched off, the root is not compared: such a replay proves nothing about roots
    assert execute_block(state, bad, skip_state_tree=True).writes == execute_block(state, good).writes
