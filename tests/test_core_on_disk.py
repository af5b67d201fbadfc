"""One consensus core for both worlds: the simulator's cores on LevelDB chains.

The simulator normally gives each node a :class:`~consensus.ledger.MemoryLedger`; here every
node runs the very same :class:`~consensus.node.NodeCore` over its own home's LevelDB chain
(:class:`appchain.node.ledger.ChainLedger`) and the store's durable double-sign record, the
combination the process node uses. Blocks become final with equal roots on every home, and each
home then replays from genesis to the same root.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from appchain.cli.simulate import simulation_genesis
from appchain.home.chain import Chain, replay_from_genesis
from appchain.node.ledger import ChainLedger
from consensus.ledger import MemoryLedger
from consensus.node import NodeCore
from consensus.simulator import Faults, SimConfig, Simulation


@pytest.mark.slow
def test_the_simulators_cores_reach_finality_on_leveldb_chains(tmp_path: Path) -> None:
    config = SimConfig(nodes=12, blocks=8, seed=11, faults=Faults(loss=0.02, crashes=[(3, 5.0, 14.0)]))
    genesis, start = simulation_genesis(config)
    chains: list[Chain] = []

    def ledger(index: int, _state: object) -> ChainLedger:
        chain = Chain.create(tmp_path / f"node{index}", genesis, snapshot_interval=4, sync=False)
        chains.append(chain)
        return ChainLedger(chain)

    simulation = Simulation(config, start, ledgers=ledger, records=lambda index: chains[index].store)
    try:
        report = simulation.run()
        assert all(
            isinstance(node.core, NodeCore) and isinstance(node.ledger, ChainLedger)
            for node in simulation.nodes
        )
        assert report["roots_agree"] and report["safety_violations"] == 0 and report["double_signs"] == 0
        assert min(report["final_heights"]) >= config.blocks
        roots = {chain.store.get_header(8).state_root for chain in chains}  # type: ignore[union-attr]
        assert len(roots) == 1
    finally:
        for chain in chains:
            chain.close()
    # every home is a real node home: it replays from genesis to its own tip's root
    for index in (0, 3):
        chain = Chain.open(tmp_path / f"node{index}", genesis, snapshot_interval=4)
        try:
            assert chain.final_height >= config.blocks
            state = replay_from_genesis(chain.store, genesis, verify_signatures=True)
            assert state.root == chain.state.root
        finally:
            chain.close()


def test_the_default_simulation_runs_on_memory_ledgers() -> None:
    config = SimConfig(nodes=12, blocks=2, seed=2)
    _, start = simulation_genesis(config)
    simulation = Simulation(config, start)
    assert all(isinstance(node.ledger, MemoryLedger) for node in simulation.nodes)
    assert simulation.run()["target_reached"]


def test_the_process_node_and_the_simulator_drive_the_same_core() -> None:
    import appchain.node.node
    import consensus.simulator

    assert appchain.node.node.NodeCore is consensus.simulator.NodeCore is NodeCore
    assert appchain.node.node.decode_message is consensus.messages.decode_message


def test_a_peer_serving_an_invalid_block_is_dropped_and_sync_asks_others() -> None:
    from consensus.messages import SyncResponse
    from consensus.node import AskPeers, Penalize
    from state.types import NodeKey

    config = SimConfig(nodes=12, blocks=3, seed=5)
    _, start = simulation_genesis(config)
    simulation = Simulation(config, start)
    simulation.run()
    source = simulation.nodes[0]
    blocks = tuple(source.ledger.block_at(h) for h in range(1, 4))
    # a fresh core at genesis syncs; the peer's second block has a forged signature
    fresh = Simulation(config, start).nodes[1].core
    index, _ = blocks[1].signatures[0]
    forged = msgspec.structs.replace(blocks[1], signatures=((index, bytes(64)), *blocks[1].signatures[1:]))
    liar = NodeKey(b"\x0b" * 32)
    actions = fresh.on_message(SyncResponse((blocks[0], forged, blocks[2]), ()), liar, 1e10)
    assert fresh.height == 1  # the first block applied, the forged one refused, nothing after it
    assert Penalize(liar, "served an invalid block 2", drop=True) in actions
    assert any(isinstance(a, AskPeers) for a in actions)  # and it asks other peers at once
    honest = fresh.on_message(SyncResponse(blocks[1:], ()), NodeKey(b"\x0c" * 32), 1e10)
    assert fresh.height == 3 and not any(isinstance(a, Penalize) for a in honest)
