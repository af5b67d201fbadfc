"""Safety and liveness at internet scale: hundreds of nodes on a bounded topology over a WAN.

The simulator's properties (no two final blocks at one height, honest nodes agree on every root,
no honest double signature, evidence only against the byzantine, finality on every honest node
after every fault heals) on ``appchain simulate --internet``'s network (:func:`appchain.cli.simulate.internet_config`) (8 gossip peers dialled, duty
connections to quorum members, six regions 20–300 ms apart, 1 % loss, 100 Mbit/s upload) with
faults drawn per seed: byzantine members, crashes, a partition of a minority. And no node ever
holds more connections than its bound plus its quorum members.

``APPCHAIN_TOPOLOGY_NODES`` (500) and ``APPCHAIN_TOPOLOGY_SEEDS`` (2) size the runs: CI keeps the
defaults; ``make soak`` runs 2,000 nodes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random

import pytest

from appchain.cli.main import main
from appchain.cli.simulate import internet_config as topology_config
from appchain.cli.simulate import simulation_genesis
from consensus.messages import SignedBlock
from consensus.simulator import Faults, Simulation
from state.encoding import encode

NODES = int(os.environ.get("APPCHAIN_TOPOLOGY_NODES", "500"))
SEEDS = int(os.environ.get("APPCHAIN_TOPOLOGY_SEEDS", "2"))
BLOCKS = 8


def scaled_faults(seed: int, nodes: int) -> Faults:
    """Faults within the tolerated bounds, scaled to the network: three byzantine members, a
    few percent of the nodes crashed for a while, and in some runs a minority cut off (a
    tenth of the nodes) that rejoins; 1 % of packets lost."""
    rng = random.Random(seed)
    faulty = rng.sample(range(nodes), 3 + nodes // 40)
    byzantine = {n: rng.choice(["equivocate", "withhold", "double-sign", "garbage"]) for n in faulty[:3]}
    crashes = []
    for node in faulty[3:]:
        down = rng.uniform(5, 40)
        crashes.append((node, down, down + rng.uniform(10, 40)))
    partitions = []
    if seed % 2 == 1:
        minority = set(rng.sample(range(nodes), nodes // 10))
        start = rng.uniform(5, 30)
        partitions.append(([minority, set(range(nodes)) - minority], start, start + rng.uniform(10, 40)))
    return Faults(loss=0.01, crashes=crashes, partitions=partitions, byzantine=byzantine)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SEEDS))
def test_safety_and_finality_at_scale_under_faults(seed: int) -> None:
    faults = scaled_faults(seed, NODES)
    config = dataclasses.replace(topology_config(NODES, BLOCKS, seed), faults=faults)
    sim = Simulation(config, simulation_genesis(config)[1])
    report = sim.run()
    assert report["safety_violations"] == 0, report
    assert report["roots_agree"], report
    assert report["double_signs"] == 0, report
    assert set(report["accused"]) <= set(faults.byzantine), report
    honest = [h for i, h in enumerate(report["final_heights"]) if i not in faults.byzantine]
    assert min(honest) >= BLOCKS, (faults, report["final_heights"])
    network = sim.topology_report()
    assert network["over_bound"] == 0, network
    assert network["connections_mean"] < 40, network  # a few gossip peers and a duty now and then


def test_a_bounded_network_is_the_same_run_for_the_same_seed() -> None:
    runs = []
    for _ in range(2):
        config = dataclasses.replace(topology_config(60, 4, 7), faults=scaled_faults(1, 60))
        sim = Simulation(config, simulation_genesis(config)[1])
        runs.append((sim.run(), sim.topology_report()))
    assert runs[0] == runs[1]


def test_gossip_reaches_every_node_with_few_copies() -> None:
    """Without faults: every node applies every block, each from a few pushes and hashes, not
    from every peer; nobody holds more than its bound; finality comes a checkpoint after."""
    config = topology_config(150, 8, 2)
    sim = Simulation(config, simulation_genesis(config)[1])
    report = sim.run()
    assert report["target_reached"] and report["safety_violations"] == 0
    network = sim.topology_report()
    blocks_per_node = network["bytes_by_kind_per_node_per_block"]["blocks"]
    block_size = max(len(encode(SignedBlock(sim.nodes[0].ledger.block_at(h)))) for h in range(1, 9))
    # sent plus received, about 2 * sqrt(degree) bodies a block, far fewer than the degree's 2 * 16
    assert blocks_per_node < 16 * block_size, network
    assert network["over_bound"] == 0 and network["connections_max"] <= network["bound"], network
    assert len(sim.spread.arrivals) >= (150 - 1) * 8  # every other node applied every block
    assert network["finality_p50"] < 4 * config.block_time_ms / 1000, network


def test_simulate_internet_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--nodes", "40", "--blocks", "4", "--internet", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["safety_violations"] == 0 and report["target_reached"]
    network = report["network"]
    assert network["nodes"] == 40 and network["over_bound"] == 0 and network["bytes_per_node_per_block"] > 0
    assert main(["simulate", "--nodes", "40", "--blocks", "4", "--internet"]) == 0
    shown = capsys.readouterr().out
    assert "per node and block:" in shown and "finality p50/p99:" in shown
    assert main(["simulate", "--nodes", "40", "--internet", "--faults", "loss=7"]) == 1
    assert capsys.readouterr().err.count("\n") == 1  # one line, no traceback
