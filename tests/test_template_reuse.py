"""A round's signed block is executed once: the ledger adopts its template's execution.

Differential: the same signed blocks appended to two LevelDB chains, one adopting the template's
result (as a validator that checked the template, and as the producer that built it) and one
executing every block in full, give the same roots, writes, changes, effects and stored bytes.
Refused adoptions fall back to a full execution: another tip, other events, a header that differs
beyond the ceremony's fields, obligations votes; and a transaction nobody vouched for whose
signature is forged is refused although the template executed with it.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from appchain.cli.devchain import DevChainGenerator
from appchain.home.chain import Chain
from appchain.home.store import DELTA_PREFIX, EVENTS_PREFIX, HEADER_PREFIX, height_key
from consensus.ledger import ExecutedTemplates, MemoryLedger, compute_template_key
from consensus.local import sign_round_locally
from genesis.build import create_genesis_state
from genesis.devnet import create_devnet_genesis
from state.block import Block, compute_events_root
from state.errors import InvalidBlock
from state.events import NewState, StateChange, compute_event_hash
from state.noderecords import NodeStatus
from state.transition import PendingBlock, adopt_template_result, execute_block, propose_block
from state.types import Atomic
from tests.chainsim import Sim, make_genesis

GENESIS, NODES, USERS = create_devnet_genesis(14, "reuse", users=8)


def _generator(chain: Chain, seed: str, events: int = 30) -> DevChainGenerator:
    return DevChainGenerator(
        chain,
        [n.operator for n in NODES] + USERS,
        seed,
        events_per_block=events,
        nodes=[(n.node, n.bls_secret) for n in NODES],
    )


def _round(chain: Chain, generator: DevChainGenerator) -> tuple[PendingBlock, Block]:
    """A template proposed on ``chain``'s tip and the block its round signs."""
    round_, quorum = generator.choose_round()
    state = chain.state
    template = propose_block(
        state,
        generator.make_events(quorum.producer),
        state.timestamp + state.params.block_time,
        producer=quorum.producer,
        round_=round_,
    )
    block = sign_round_locally(template.block, quorum, generator.node_keys, generator.rng.randbytes)
    return template, block


def _stored(chain: Chain, height: int) -> list[bytes | None]:
    keys = [height_key(prefix, height) for prefix in (HEADER_PREFIX, EVENTS_PREFIX, DELTA_PREFIX)]
    return [chain.store._get(key) for key in keys]


def test_an_adopted_template_result_is_byte_for_byte_a_full_execution(tmp_path: Path) -> None:
    adopting = Chain.create(tmp_path / "adopting", GENESIS, snapshot_interval=0, sync=False)
    full = Chain.create(tmp_path / "full", GENESIS, snapshot_interval=0, sync=False)
    generator = _generator(adopting, "differential")
    adopted = refused = 0
    for height in range(1, 25):
        proposed, block = _round(adopting, generator)
        # a validator's check of the template (without signatures), and the producer's own
        checked = execute_block(adopting.state, proposed.block, verify_signatures=False)
        template = checked if height % 2 else proposed
        reference = execute_block(full.state, block)
        reused = adopt_template_result(adopting.state, template, block)
        if any(isinstance(event, StateChange) for event in block.events):
            assert reused is None  # obligations votes are checked against the state: full execution
            refused += 1
        else:
            assert reused is not None
            adopted += 1
            assert reused.block == block and reused.block_hash == reference.block_hash
            assert reused.writes == reference.writes and reused.changes == reference.changes
            assert reused.effects == reference.effects and reused.tree.root == reference.tree.root
        adopting.append(block, template=template)
        full.append(block)
        assert adopting.state.root == full.state.root == block.header.state_root
        assert adopting.state.block_hash == full.state.block_hash
        assert _stored(adopting, height) == _stored(full, height)
        assert list(adopting.state.items()) == list(full.state.items())
    assert adopted > 10
    adopting.close()
    full.close()


def test_a_template_is_adopted_only_for_its_own_round_on_its_own_tip(tmp_path: Path) -> None:
    chain = Chain.create(tmp_path / "chain", GENESIS, snapshot_interval=0, sync=False)
    generator = _generator(chain, "refusals", events=10)
    generator.mix = False  # transfers and the like only: no obligations votes
    template, block = _round(chain, generator)
    state = chain.state
    assert adopt_template_result(state, template, block) is not None

    # other events under the template's header: not adopted, and the full execution refuses it
    other = Block(block.header, block.events[:-1], block.signatures)
    assert adopt_template_result(state, template, other) is None
    # a header that differs beyond the random value and the bitset (here the timestamp)
    later = msgspec.structs.replace(block.header, timestamp=block.header.timestamp + 1)
    assert adopt_template_result(state, template, Block(later, block.events, block.signatures)) is None
    # the signatures, the random value and the bitset may differ
    unsigned = Block(
        msgspec.structs.replace(block.header, random_value=bytes(16), validators=1), block.events
    )
    assert adopt_template_result(state, template, unsigned) is not None
    with pytest.raises(InvalidBlock, match="events root"):
        chain.append(other, template=template)

    chain.append(block, template=template)
    # the same template on another tip (the next one)
    assert adopt_template_result(chain.state, template, block) is None
    nxt, signed = _round(chain, generator)
    assert adopt_template_result(chain.state, template, signed) is None
    chain.append(signed, template=template)  # not adopted: executed in full, and valid
    assert chain.height == 2 and chain.state.root == signed.header.state_root
    assert compute_template_key(signed.header) == compute_template_key(nxt.block.header)
    chain.close()


def test_a_forged_transaction_nobody_vouched_for_is_refused_although_its_template_ran(
    tmp_path: Path,
) -> None:
    chain = Chain.create(tmp_path / "chain", GENESIS, snapshot_interval=0, sync=False)
    generator = _generator(chain, "forged", events=5)
    generator.mix = False
    round_, quorum = generator.choose_round()
    state = chain.state
    events = generator.make_events(quorum.producer)
    index = next(i for i, e in enumerate(events) if hasattr(e, "amount") and hasattr(e, "signature"))
    forged_event = msgspec.structs.replace(events[index], amount=Atomic(events[index].amount - 1))
    events[index] = forged_event
    timestamp = state.timestamp + state.params.block_time
    # the validator's template check skips signatures: the forged transaction executes
    proposed = propose_block(
        state,
        events,
        timestamp,
        producer=quorum.producer,
        round_=round_,
        verified={compute_event_hash(forged_event)},
    )
    template = execute_block(state, proposed.block, verify_signatures=False)
    block = sign_round_locally(template.block, quorum, generator.node_keys, generator.rng.randbytes)
    assert adopt_template_result(state, template, block) is None
    root = state.root
    with pytest.raises(InvalidBlock, match="signature"):
        chain.append(block, template=template)
    assert chain.height == 0 and chain.state.root == root
    # vouched for (a mempool that checked it), it is trusted, exactly as in a full execution
    vouched = {compute_event_hash(forged_event)}
    assert adopt_template_result(state, template, block, verified=vouched) is not None
    chain.append(block, verified=vouched, template=template)
    assert chain.height == 1
    chain.close()


def test_the_memory_ledger_adopts_a_kept_template_and_refuses_a_bad_block(tmp_path: Path) -> None:
    chain = Chain.create(tmp_path / "chain", GENESIS, snapshot_interval=0, sync=False)
    generator = _generator(chain, "memory", events=10)
    ledger = MemoryLedger(create_genesis_state(GENESIS)[0])
    templates = ExecutedTemplates()
    template, block = _round(chain, generator)
    templates.keep(execute_block(ledger.state, template.block, verify_signatures=False))
    found = templates.find(block)
    assert found is not None and found.block == template.block
    assert templates.find(Block(block.header, block.events[:-1])) is not None  # same header: found,
    with pytest.raises(InvalidBlock):  # but not adopted, and the full execution refuses it
        ledger.apply(Block(block.header, block.events[:-1], block.signatures), found)
    ledger.apply(block, found)
    chain.append(block)
    assert ledger.state.root == chain.state.root and ledger.state.block_hash == chain.state.block_hash
    assert templates.find(_round(chain, generator)[1]) is None  # another tip
    chain.close()


def test_obligations_votes_are_checked_in_a_full_execution_not_adopted() -> None:
    """A validator's template check skips the votes' signatures, which the transition checks
    against a quorum in the state: a block with votes is executed again in full, and forged
    votes are refused there."""
    sim = Sim(*make_genesis(nodes=14))
    sim.advance(2)
    worker = sim.worker_in_next_quorum(lambda n: n.status == NodeStatus.ACTIVE)
    assert worker is not None
    good = sim.votes(worker, NewState.DECOMMISSION)
    forged = sim.votes(worker, NewState.DECOMMISSION, sign=lambda i, m: sim.users[0].sign(m))
    state = sim.state
    timestamp = state.timestamp + state.params.block_time
    honest = propose_block(state, [good], timestamp, producer=sim.producer())
    # the same block with forged signatures on the votes (the signatures change no state)
    header = msgspec.structs.replace(honest.block.header, events_root=compute_events_root((forged,)))
    block = Block(header, (forged,))
    template = execute_block(state, block, verify_signatures=False)
    assert adopt_template_result(state, template, block, verify_signatures=True) is None
    with pytest.raises(InvalidBlock, match="does not verify"):
        execute_block(state, block)
    assert adopt_template_result(state, template, block, verify_signatures=False) is not None
    assert adopt_template_result(state, honest, honest.block, verify_signatures=True) is None
