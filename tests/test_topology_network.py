"""Thirty node processes without a full mesh (DESIGN.md "Topology at scale", issue 23).

Thirty service nodes on 127.0.0.1, each configured with three seeds (a ring), dialling
``outbound_peers = 4`` gossip peers and accepting ``max_peers = 12`` inbound strangers: a gossip
degree well below the node count. Blocks, certificates and proofs spread by relay (bodies to a
few peers, hashes to the rest); Pulse and checkpoint traffic goes over the direct connections
each node opens to the members of the quorums it sits in.

The test asserts:

- blocks become final on every node;
- every status sampled during the run keeps the node within its bounds: at most
  ``outbound_peers`` gossip peers chosen, no more connections dialled than gossip peers and
  duty members, and in all at most ``outbound_peers + max_peers`` + its current duty members;
- a node stopped and restarted with a fresh home (same keys, a new folder) asks its seeds for
  a snapshot (state sync), learns the other nodes from their proofs (it draws more gossip peers
  than it has seeds), and reaches the final height the others had when it came back;
- no node is decommissioned: an obligations test of a node the tester keeps no connection to
  probes its p2p port instead of failing it.

The chain runs at a 1.5 s block time (a genesis parameter) with 2 s Pulse stages: thirty
processes share the machine's two cores.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from appchain.home.home import Home, render_config
from appchain.lab.testnet import (
    PORTS_PER_NODE,
    SEEDS,
    NetworkMember,
    poll_status,
    start_process,
    stop_processes,
    write_testnet,
)
from genesis.presets import DEVNET
from tests.test_network import free_port_block, with_node_logs

NODES = 30
OUTBOUND = 4
MAX_INBOUND = 12
BLOCK_TIME_MS = 1_500
RESTARTED = 17


class Bounds:
    """Every status sampled, checked against the node's bounds as it is read."""

    def __init__(self) -> None:
        self.samples = 0
        self.violations: list[str] = []
        self.most_peers = 0
        self.most_gossip_only = 0
        """The most connections a node held beyond its duty members."""

    def check(self, member: NetworkMember, status: dict[str, Any]) -> None:
        self.samples += 1
        peers, duty, gossip = status["peers"], status["duty_peers"], status["gossip_peers"]
        inbound, outbound = status["peers_inbound"], status["peers_outbound"]
        self.most_peers = max(self.most_peers, peers)
        self.most_gossip_only = max(self.most_gossip_only, peers - duty)
        problems = []
        if inbound + outbound != peers:
            problems.append("inbound and outbound do not add up")
        if gossip > OUTBOUND:
            problems.append(f"{gossip} gossip peers chosen")
        if outbound > gossip + duty:
            problems.append(f"{outbound} dialled for {gossip} gossip peers and {duty} duty members")
        if peers > OUTBOUND + MAX_INBOUND + duty:
            problems.append(f"{peers} peers with {duty} duty members")
        if problems:
            self.violations.append(f"{member.home.name}: {', '.join(problems)} ({status})")


def sample(members: list[NetworkMember], bounds: Bounds) -> list[dict[str, Any]]:
    """Every node's status ({} for one not answering), each checked against its bounds."""
    statuses = []
    for member in members:
        status = poll_status(member, timeout=3.0) or {}
        if status:
            bounds.check(member, status)
        statuses.append(status)
    return statuses


def wait_sampling(
    what: str, members: list[NetworkMember], bounds: Bounds, done: Any, seconds: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        statuses = sample(members, bounds)
        if done(statuses):
            return statuses
        if time.monotonic() > deadline:
            heights = [s.get("final_height") for s in statuses]
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}: final {heights}")
        time.sleep(0.5)


def fresh_home(net: Path, member: NetworkMember) -> NetworkMember:
    """A new home for ``member``'s keys and settings: block 0 only, nothing else kept."""
    old = Home(member.home)
    config = old.load_config()
    folder = net / f"fresh-{member.home.name}"
    (folder / "keys").mkdir(parents=True)
    for path in (old.node_key_path, old.bls_key_path):
        shutil.copy2(path, folder / "keys" / path.name)
    Home.init(folder, net / "genesis.json", config)
    return dataclasses.replace(member, home=folder)


@pytest.mark.slow
def test_thirty_nodes_on_a_few_gossip_peers_each(tmp_path: Path) -> None:
    net = tmp_path / "net"
    params = msgspec.structs.replace(DEVNET, block_time=BLOCK_TIME_MS)
    members = write_testnet(
        net,
        NODES,
        base_port=free_port_block(PORTS_PER_NODE * NODES),
        seed="topology",
        params=params,
        stage_timeout_ms=2_000,
        round_timeout_ms=10_000,
        sync_writes=False,
        genesis_time=int(time.time()) + 15,  # the processes take a while to start on two cores
    )
    for member in members:
        home = Home(member.home)
        config = dataclasses.replace(
            home.load_config(),
            outbound_peers=OUTBOUND,
            max_peers=MAX_INBOUND,
            snapshot_interval=8,
            state_sync_min_gap=8,
        )
        home.config_path.write_text(render_config(config))
        assert len(config.peers) == SEEDS
    processes: dict[int, subprocess.Popen[bytes]] = {i: start_process(m.home) for i, m in enumerate(members)}
    bounds = Bounds()
    started = time.monotonic()
    try:
        # 1. blocks become final everywhere
        wait_sampling(
            "8 final blocks on every node",
            members,
            bounds,
            lambda statuses: all(s.get("final_height", 0) >= 8 for s in statuses),
            120,
        )
        first_final = time.monotonic() - started

        # 2. one node stopped, its home replaced by a fresh one: it joins through its seeds
        victim = members[RESTARTED]
        processes[RESTARTED].send_signal(signal.SIGTERM)
        processes[RESTARTED].wait(timeout=20)
        members[RESTARTED] = victim = fresh_home(net, victim)
        processes[RESTARTED] = start_process(victim.home)
        others = members[:RESTARTED] + members[RESTARTED + 1 :]
        target = max(s.get("final_height", 0) for s in sample(others, bounds))
        statuses = wait_sampling(
            f"the fresh node at final height {target}",
            members,
            bounds,
            lambda statuses: (
                statuses[RESTARTED].get("final_height", -1) >= target
                and statuses[RESTARTED].get("gossip_peers", 0) == OUTBOUND
            ),
            90,
        )
        rejoined = time.monotonic() - started
        joined = statuses[RESTARTED]
        assert 0 < joined["peers"] < NODES - 1 or joined["duty_peers"] > 0, joined
        log = (victim.home / "node.log").read_text()
        assert f"state sync: asking peers for snapshots peers={SEEDS}" in log, log[-3000:]
        assert "state sync done" in log, log[-3000:]

        # 3. blocks still become final everywhere, the fresh node among them
        top = max(s.get("final_height", 0) for s in statuses)
        statuses = wait_sampling(
            "two more checkpoints everywhere",
            members,
            bounds,
            lambda statuses: all(s.get("final_height", 0) >= top + 8 for s in statuses),
            60,
        )
        # 4. nobody was decommissioned: obligations tests of a node one keeps no connection to
        # probe it (a handshake) rather than fail it
        inactive = {m.home.name: s["service_node"] for m, s in zip(members, statuses, strict=True)}
        inactive = {name: sn for name, sn in inactive.items() if sn is None or sn["status"] != "active"}
        assert not inactive, inactive
        print(
            f"\n{NODES} nodes, outbound {OUTBOUND}, max inbound {MAX_INBOUND}: 8 final everywhere at"
            f" {first_final:.0f} s, the fresh node final {target} at {rejoined:.0f} s, done at"
            f" {time.monotonic() - started:.0f} s; {bounds.samples} statuses, at most"
            f" {bounds.most_peers} peers, at most {bounds.most_gossip_only} beyond duty members"
        )
    except AssertionError as failure:
        raise with_node_logs(failure, members, lines=6) from None
    finally:
        stop_processes(list(processes.values()))
    assert bounds.samples >= 3 * NODES and not bounds.violations, bounds.violations[:5]
