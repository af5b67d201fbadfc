"""Effects: recomputed identically by replay, in the documented order."""

from __future__ import annotations

from appchain.cli.devchain import DevChainGenerator
from genesis.build import create_genesis_state
from state.effects import BlockRewarded, NodeExited, NodeRegistered, RewardPaid, StakeReturned, SwarmChanged
from state.events import RequestUnlock
from state.transition import apply_block
from tests.chainsim import Sim, make_genesis
from tests.test_invariants import GENESIS, NODES, USERS, MemoryChain


def test_replay_recomputes_the_same_effects() -> None:
    chain = MemoryChain()
    generator = DevChainGenerator(
        chain,  # type: ignore[arg-type]
        [n.operator for n in NODES] + USERS,
        "effects",
        events_per_block=30,
        nodes=[(n.node, n.bls_secret) for n in NODES],
    )
    blocks, effects = [], []
    for _ in range(40):
        pending = generator.next_block()
        blocks.append(pending.block)
        effects.append(pending.effects)
    replayed = create_genesis_state(GENESIS)[0]
    again = [apply_block(replayed, block, verify_signatures=False).effects for block in blocks]
    assert again == effects
    assert any(effects)


def test_scheduled_work_then_events_then_the_end_of_the_block() -> None:
    sim = Sim(*make_genesis(nodes=12, users=4))
    alice = sim.users[0]
    node, register = sim.new_node(alice, sim.params.staking_requirement)
    sim.block(register)
    sim.block(sim.tx(RequestUnlock, alice, node_key=node.public_key))
    sim.advance_to(max(sim.height + sim.params.unlock_delay - 1, sim.params.payable_delay))
    second, register_again = sim.new_node(sim.users[1], sim.params.staking_requirement)
    pending = sim.block(register_again)  # the exit is due at the start of this block
    kinds = [type(e) for e in pending.effects]
    assert kinds.index(NodeExited) < kinds.index(StakeReturned) < kinds.index(NodeRegistered)
    joined = next(
        i
        for i, e in enumerate(pending.effects)
        if isinstance(e, SwarmChanged) and e.node_key == second.public_key
    )
    assert kinds.index(NodeRegistered) < joined < kinds.index(BlockRewarded) == len(kinds) - 1
    # the leaving node is settled as it exits, before its stake returns; no other node is touched
    assert [e.node_key for e in pending.effects if isinstance(e, RewardPaid)] == [node.public_key]
    assert kinds.index(RewardPaid) < kinds.index(NodeExited)
