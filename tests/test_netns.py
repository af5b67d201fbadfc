"""Nodes on separate hosts: network namespaces, faults, randomized schedules, the checker's numbers.

Without root: the node's clock offset (config, admin, and where the node reads it), the schedule
generator, the relay's loss model and arguments, testnet homes with a host per node, and the
harness's refusals. With root and ``ip netns`` (skipped, saying why, otherwise): the harness's
pieces between small echo servers, and 12 node processes, each in its own namespace, under
randomized fault schedules, then the checker over every node's history. CI runs the seeds of
``NETNS_SEEDS`` (2 and 5: a split, skewed clocks, a flapping link and a paused node; a slow link
and nodes killed and started again one by one; the stall of seed 1 is in ``make soak``, and
``tests/test_liveness_network.py`` stalls a 12-node network in CI); ``make soak`` runs
``NETNS_SCHEDULES`` (200) from ``NETNS_FIRST_SEED`` (1), which hold the shrinks to the floor too
(seeds 3, 4 and 8 are: some three minutes each, the decommissions of eight nodes one wave after
another, which the simulator's outage runs and ``tests/test_liveness_network.py`` show in CI).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest
import trio

from appchain.cli.main import main
from appchain.home.chain import ChainError
from appchain.home.home import Home, render_config
from appchain.lab.checker import RESUME_ROUNDS, check_histories, read_schedules
from appchain.lab.namespaces import Namespaces, NetnsError, free_subnet, unavailable_reason
from appchain.lab.nemesis import (
    KINDS,
    MAX_PARTITION,
    MAX_SILENCE,
    MAX_SKEW,
    OUTAGE_KINDS,
    SHORT_SILENCE,
    STALL_ROUNDS,
    START_WITHIN,
    Applied,
    fault_steps,
    generate_schedule,
    run_schedules,
    stall_size,
)
from appchain.lab.netns import NetnsTestnet, start_relay, wait_until
from appchain.lab.relay import MAX_RETRANSMISSIONS, MIN_RTO, ConnectionReset, LossModel, parse_args
from appchain.lab.testnet import read_testnet, stop_processes, write_testnet
from appchain.node.admin import answer
from appchain.node.node import Node
from appchain.node.run import run_node
from genesis.presets import DEVNET
from tests.conftest import unless_ci

FIRST_SEED = int(os.environ.get("NETNS_FIRST_SEED", "1"))
SEEDS = (
    list(range(FIRST_SEED, FIRST_SEED + int(os.environ["NETNS_SCHEDULES"])))
    if "NETNS_SCHEDULES" in os.environ
    else [int(seed) for seed in os.environ.get("NETNS_SEEDS", "2,5").split(",")]
)
NODES = 12
TIMING = {"stage_timeout_ms": 1_000, "round_timeout_ms": 6_000}
ROUND_SECONDS = TIMING["round_timeout_ms"] / 1000
"""Pulse deadlines of the runs: after a heal, the round under way may fail (up to a round
timeout), then up to 4 blocks a block time apart (1 s on the devnet) lead to the next checkpoint:
3 round timeouts leave room."""
PARAMS = msgspec.structs.replace(DEVNET, credit_initial=DEVNET.credit_max)
"""The devnet's rules, but every node starts with the most credit a node earns (1,440 blocks: 24
minutes of downtime at the devnet's 1 s a block), as on a network that has run for two months.
With the devnet's 60 (a minute), a shrink to the floor, which keeps its first nodes out for about as
long, would deregister them, and two outages of one node would deregister it on the second
(a recommissioned node keeps its credit less twice the blocks it was out): the schedules would
use the network up."""

REASON = unavailable_reason()
needs_netns = unless_ci(None if REASON is None else f"network namespaces ({REASON})")


# -- the node's clock -----------------------------------------------------------------------------------


def test_the_clock_offset_moves_the_nodes_consensus_clock_and_only_that(tmp_path: Path) -> None:
    """A node configured 120 s ahead stamps its uptime proof 120 s ahead (the core loop reads the
    node's clock); the admin endpoint moves it at run time and refuses a bad value, untouched;
    the history journal keeps the true wall clock."""
    member = write_testnet(tmp_path / "net", 1, sync_writes=False, state_sync=False)[0]
    home = Home(member.home)
    config = dataclasses.replace(
        home.load_config(),
        p2p_listen="127.0.0.1:0",
        admin_listen="127.0.0.1:0",
        rpc_listen="127.0.0.1:0",
        storage_listen="127.0.0.1:0",
        clock_offset=120.0,
    )
    home.config_path.write_text(render_config(config))
    seen: dict[str, float] = {}

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            ready: list[Node] = []
            nursery.start_soon(lambda: run_node(home, ready=ready.append))
            with trio.fail_after(30):
                while not ready or not ready[0].core.proofs.accepted:
                    await trio.sleep(0.05)
            node = ready[0]
            proof, _ = node.core.proofs.accepted[bytes(node.core.node_key)]
            seen["proof_ahead"] = proof.timestamp - time.time()
            seen["now_ahead"] = node.now() - time.time()
            bad = json.loads(
                answer(node, b'{"jsonrpc":"2.0","id":1,"method":"set_clock_offset","params":{"seconds":1e9}}')
            )
            assert bad["error"]["code"] == -32602 and node.clock_offset == 120.0
            good = json.loads(
                answer(node, b'{"jsonrpc":"2.0","id":2,"method":"set_clock_offset","params":{"seconds":-30}}')
            )
            assert good["result"] == {"seconds": -30.0}
            seen["now_behind"] = node.now() - time.time()
            node.journal.final(0, b"\x00" * 32, b"\x00" * 32)
            nursery.cancel_scope.cancel()

    trio.run(scenario)
    assert 117 <= seen["proof_ahead"] <= 121 and 119.9 <= seen["now_ahead"] <= 120.1
    assert -30.1 <= seen["now_behind"] <= -29.9
    last = json.loads((member.home / "data" / "history.jsonl").read_text().splitlines()[-1])
    assert abs(last["at"] - time.time()) < 10


# -- schedules --------------------------------------------------------------------------------------------


def test_a_seed_gives_one_schedule_every_fault_healed_within_the_bounds() -> None:
    assert generate_schedule(7) == generate_schedule(7)
    assert generate_schedule(7) != generate_schedule(8)
    kinds: set[str] = set()
    long_silences = 0
    for seed in range(300):
        schedule = generate_schedule(seed, NODES, round_timeout=ROUND_SECONDS)
        for fault in schedule.faults:
            kinds.add(fault.kind)
            assert 0 <= fault.start <= START_WITHIN and fault.start < fault.end
        outages = [f for f in schedule.faults if f.kind in OUTAGE_KINDS]
        if outages:
            [outage] = schedule.faults  # an outage is a schedule of its own
            assert 1 <= outage.stagger <= 4 or (outage.kind == "stall" and outage.stagger == 0)
            if outage.kind == "stall":
                first_back = outage.end - outage.stagger * (stall_size(NODES) - 1)
                rounds = (first_back - outage.start) / ROUND_SECONDS
                assert STALL_ROUNDS[0] - 0.01 <= rounds <= STALL_ROUNDS[1] + 0.01
            else:
                assert 3 <= outage.hold <= 15 and outage.extra in (0, 1) and not outage.nodes
            continue
        partitions = [f for f in schedule.faults if f.kind in ("split", "bridge")]
        singles = [f for f in schedule.faults if f.kind not in ("split", "bridge")]
        assert len(partitions) <= 1 and 1 <= len(singles) <= 3
        targets = [n for f in singles if f.kind != "slow" for n in f.nodes]
        slowed = [n for f in singles if f.kind == "slow" for n in f.nodes]
        assert len(set(targets + slowed)) == len(targets + slowed)  # one fault per node
        for fault in schedule.faults:
            longest = MAX_PARTITION if fault.kind in ("split", "bridge") else MAX_SILENCE
            assert fault.end - fault.start <= longest + 0.01
            long_silences += fault.kind not in ("split", "bridge") and fault.end - fault.start > SHORT_SILENCE
            if fault.kind == "crash":
                assert 1 <= len(fault.nodes) <= 3 and 1 <= fault.stagger <= 4
                assert fault.end - fault.stagger * (len(fault.nodes) - 1) > fault.start  # all back by the end
        for fault in partitions:
            side, other = fault.sides
            assert not set(side) & set(other) and max(len(side), len(other)) <= 7  # no side can make a block
            everyone = set(side) | set(other) | set(fault.nodes)
            assert everyone == set(range(NODES))
            if fault.kind == "bridge":
                assert fault.nodes[0] not in targets + slowed  # the bridge node is not also silenced
        for fault in singles:
            if fault.kind == "skew":
                assert 0.5 <= abs(fault.offset) <= MAX_SKEW
            if fault.kind == "slow":
                assert 1 <= len(fault.nodes) <= 3 and 0 < fault.delay <= 0.15 and 0 <= fault.loss <= 0.05
    assert kinds == set(KINDS) and long_silences > 100
    for nodes in (11, 15):
        with pytest.raises(ValueError, match="schedules are made for 12 to 14 nodes"):
            generate_schedule(1, nodes)
    for nodes in (13, 14):
        sides = [f.sides for s in range(50) for f in generate_schedule(s, nodes).faults if f.sides]
        assert sides and all(max(map(len, pair)) <= 7 for pair in sides)


def test_every_fault_a_schedule_holds_starts_and_heals_last_within_its_window() -> None:
    """The timed actions of the faults the generator makes (built, not run: that needs root):
    each has one heal, its last action, and all of them fall between its start and its end."""
    net = SimpleNamespace(namespaces=None, members=[None] * NODES)
    seen = set()
    for seed in range(200):
        schedule = generate_schedule(seed, NODES, round_timeout=ROUND_SECONDS)
        for index, fault in enumerate(schedule.faults):
            steps = sorted(
                fault_steps(net, index, Applied(fault), random.Random(seed), PARAMS), key=lambda s: s.at
            )  # type: ignore[arg-type]
            assert [s.heal for s in steps].count(True) == 1 and steps[-1].heal, fault
            assert fault.start == steps[0].at and all(s.at <= fault.end + 0.01 for s in steps), fault
            if fault.kind in ("crash", "stall"):  # one restart a node, the last at the end
                count = len(fault.nodes) if fault.kind == "crash" else stall_size(NODES)
                assert len(steps) == (1 + count if fault.stagger else 2), fault
                assert steps[-1].at == pytest.approx(fault.end)
            seen.add(fault.kind)
    assert seen == set(KINDS)


# -- the relay ------------------------------------------------------------------------------------------------


def test_the_relay_models_loss_as_retransmission_delay_then_a_reset() -> None:
    lossless = LossModel(0.05, 0.0, random.Random(1))
    assert all(lossless.extra_delay(100_000) == 0.0 for _ in range(100))
    model = LossModel(0.05, 0.05, random.Random(1))
    assert model.rto == pytest.approx(MIN_RTO + 0.1)
    small = [model.extra_delay(100) for _ in range(20_000)]
    delayed = [d for d in small if d]
    assert 0.04 < len(delayed) / len(small) < 0.06  # one segment: lost 5% of the time
    assert min(delayed) == pytest.approx(model.rto) and max(delayed) >= 3 * model.rto  # backoff doubles
    big = LossModel(0.05, 0.05, random.Random(1))
    share = sum(1 for _ in range(5_000) if big.extra_delay(44 * 1448)) / 5_000
    assert 0.85 < share < 0.93  # 44 segments: 1 - 0.95^44 ≈ 0.9
    first, second = LossModel(0.0, 0.05, random.Random(9)), LossModel(0.0, 0.05, random.Random(9))
    assert [first.extra_delay(3000) for _ in range(200)] == [second.extra_delay(3000) for _ in range(200)]

    class AlwaysLost(random.Random):
        def random(self) -> float:
            return 0.0

    with pytest.raises(ConnectionReset):
        LossModel(0.0, 0.5, AlwaysLost()).extra_delay(10)
    assert MAX_RETRANSMISSIONS == 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ports", "x"], "is not a comma-separated list of ports"),
        (["--ports", "0"], "--ports must list ports from 1 to 65535"),
        (["--ports", "80", "--delay", "-1"], "--delay must be from 0 to 10"),
        (["--ports", "80", "--loss", "0.9"], "--loss must be from 0 to 0.5"),
    ],
)
def test_the_relay_refuses_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# -- homes and refusals ---------------------------------------------------------------------------------------


def test_a_testnet_with_a_host_per_node_listens_and_dials_there(tmp_path: Path) -> None:
    hosts = ["10.77.3.1", "10.77.3.2"]
    members = write_testnet(tmp_path / "net", 2, hosts=hosts, sync_writes=False)
    configs = [Home(m.home).load_config() for m in members]
    assert [c.p2p_address[0] for c in configs] == hosts and [c.rpc_address[0] for c in configs] == hosts
    assert [c.public_ip for c in configs] == hosts
    assert all(c.admin_address[0] == "127.0.0.1" for c in configs)
    assert [p.host for p in configs[0].peers] == ["10.77.3.2"]
    assert [m.host for m in read_testnet(tmp_path / "net")] == hosts
    write_testnet(tmp_path / "plain", 1, sync_writes=False)
    with pytest.raises(NetnsError, match="was not written for namespaces"):
        NetnsTestnet(tmp_path / "plain")
    write_testnet(tmp_path / "odd", 2, hosts=["10.77.3.2", "10.77.3.1"], sync_writes=False)
    with pytest.raises(NetnsError, match=r"node i must listen on 10\.77\.3\.1"):
        NetnsTestnet(tmp_path / "odd")
    with pytest.raises(ChainError, match="3 hosts given for 2 homes"):
        write_testnet(tmp_path / "bad", 2, hosts=["10.0.0.1"] * 3)


def test_the_harness_refuses_what_it_cannot_undo() -> None:
    subnet = ipaddress.IPv4Network("10.77.5.0/24")
    spaces = Namespaces(3, subnet, run_id="abc123")
    assert spaces.node(2) == "acnabc123n2" and spaces.bridge == "acnabc123br"
    assert spaces.address(0) == "10.77.5.1" and spaces.relay_address == "10.77.5.254"
    with pytest.raises(NetnsError, match="not cut"):
        spaces.restore(1)
    with pytest.raises(NetnsError, match="no blackhole route from node 0 to node 1"):
        spaces.unblock([0], [1])
    with pytest.raises(NetnsError, match=r"nodes \[1\] are on both sides"):
        spaces.block([0, 1], [1, 2])
    with pytest.raises(NetnsError, match="hold 1 to 250"):
        Namespaces(251, subnet)
    with pytest.raises(NetnsError, match="not a /24"):
        Namespaces(3, ipaddress.IPv4Network("10.77.0.0/16"))
    used = [ipaddress.IPv4Network("10.77.0.0/24"), ipaddress.IPv4Network("10.77.1.0/25")]
    assert free_subnet(used) == ipaddress.IPv4Network("10.77.2.0/24")
    with pytest.raises(NetnsError, match=r"every 10\.77\.X\.0/24 overlaps"):
        free_subnet([ipaddress.IPv4Network("10.0.0.0/8")])


def test_devnet_netns_needs_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["devnet", "--netns", "--home", str(tmp_path / "dev"), "--seconds", "1"]) == 1
    assert "network namespaces need root" in capsys.readouterr().err
    assert not (tmp_path / "dev").exists()


# -- the harness between echo servers (root) -----------------------------------------------------------------


@contextlib.contextmanager
def echo_servers(spaces: Namespaces, port: int) -> Iterator[None]:
    """An echo server on every node's address, each a listening socket made in its namespace."""
    listeners = []
    for index in range(spaces.nodes):
        listener = spaces.socket(index)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((spaces.address(index), port))
        listener.listen()
        listeners.append(listener)

        def serve(sock: socket.socket = listener) -> None:
            while True:
                try:
                    connection, _ = sock.accept()
                except OSError:
                    return
                threading.Thread(target=_echo, args=(connection,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
    try:
        yield
    finally:
        for listener in listeners:
            listener.close()


def _echo(connection: socket.socket) -> None:
    with connection, contextlib.suppress(OSError):
        while data := connection.recv(4096):
            connection.sendall(data)


def round_trip(spaces: Namespaces, source: int, target: int, port: int, timeout: float = 0.5) -> float | None:
    """Seconds for a connection from ``source``'s namespace to ``target``'s echo and back; None
    when it cannot connect or gets no echo in ``timeout``."""
    sock = spaces.socket(source)
    sock.settimeout(timeout)
    started = time.monotonic()
    try:
        sock.connect((spaces.address(target), port))
        sock.sendall(b"ping")
        return time.monotonic() - started if sock.recv(4) == b"ping" else None
    except OSError:
        return None
    finally:
        sock.close()


@needs_netns
def test_namespaces_cut_partition_bridge_and_relay_and_leave_only_others(tmp_path: Path) -> None:
    port = 7000
    spaces = Namespaces(4, free_subnet())
    other = Namespaces(2, spaces.subnet)  # a second run at the same time, even on the same subnet
    relay = None
    try:
        spaces.create()
        other.create()
        with echo_servers(spaces, port), echo_servers(other, port):

            def reaches(a: int, b: int) -> bool:
                return round_trip(spaces, a, b, port) is not None

            pairs = [(a, b) for a in range(4) for b in range(4) if a != b]
            assert all(reaches(a, b) for a, b in pairs) and round_trip(other, 0, 1, port) is not None
            spaces.cut(1)
            spaces.cut(1)  # nested: two restores needed
            assert not reaches(0, 1) and not reaches(1, 2)
            spaces.restore(1)
            assert not reaches(0, 1)
            spaces.restore(1)
            wait_until(lambda: reaches(0, 1) and reaches(1, 2), 10, "node 1's link back")
            spaces.block([0], [1, 2])  # node 3 bridges the halves
            assert not reaches(0, 1) and not reaches(2, 0) and reaches(1, 2)
            assert reaches(0, 3) and reaches(3, 1) and reaches(2, 3)
            spaces.unblock([0], [1, 2])
            assert all(reaches(a, b) for a, b in pairs)
            direct = round_trip(spaces, 0, 1, port)
            assert direct is not None and direct < 0.2
            relay = start_relay(spaces, [port], 0.25, 0.0, 1, tmp_path / "relay.log")
            spaces.relay([0])
            slowed = round_trip(spaces, 0, 1, port, timeout=5.0)
            back = round_trip(spaces, 2, 0, port, timeout=5.0)
            untouched = round_trip(spaces, 1, 2, port)
            assert slowed is not None and slowed >= 0.5 and back is not None and back >= 0.5  # 2 x 0.25 s
            assert untouched is not None and untouched < 0.2
            spaces.block([0], [1])  # a blackhole wins over the relay while both are wanted
            assert not reaches(0, 1) and round_trip(spaces, 0, 2, port, timeout=5.0) is not None
            spaces.unblock([0], [1])
            spaces.unrelay([0])
            fast = round_trip(spaces, 0, 1, port)
            assert fast is not None and fast < 0.2
        spaces.remove()
        assert spaces.existing() == [] and other.existing() == other.names  # only its own run removed
    finally:
        if relay is not None:
            stop_processes([relay], grace=5.0)
        spaces.remove()
        other.remove()
    assert other.existing() == []
    assert "relay: 3 connections" in (tmp_path / "relay.log").read_text()


# -- 12 node processes under randomized fault schedules (root) ------------------------------------------------


@needs_netns
@pytest.mark.slow
def test_nodes_in_namespaces_stay_safe_and_final_under_randomized_fault_schedules(tmp_path: Path) -> None:
    seeds = SEEDS
    folder = tmp_path / "net"
    record = folder / "schedules.jsonl"
    limit = RESUME_ROUNDS * ROUND_SECONDS
    with NetnsTestnet(folder, NODES, sync_writes=False, state_sync=False, params=PARAMS, **TIMING) as net:
        names, pids = net.namespaces.names, [p.pid for p in net.processes.values()]
        try:
            wait_until(
                lambda: all(s and s["height"] >= 1 for s in net.statuses(1.0)), 120, "every node at height 1"
            )
            runs = run_schedules(net, seeds, record, resume_within=limit)
        except (AssertionError, NetnsError) as failure:
            raise AssertionError(f"{failure}\n{log_tails(folder)}") from failure
        assert not net.exited(), net.exited()
    assert not any((Path("/run/netns") / name).exists() for name in names)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    heals, faults = read_schedules(record)
    report = check_histories(
        [folder / f"node{i}" for i in range(NODES)], healed_at=heals, resume_within=limit, faults=faults
    )
    numbers = report.to_json()
    print(
        f"\nnetns: {len(runs)} schedules over {NODES} node processes: "
        f"safety violations {len(report.safety_violations)}, double signs {len(report.double_signs)}, "
        f"diverging roots {len(report.diverging_roots)}, highest final {report.highest_final}, "
        f"worst heal to final {report.worst_resume} s (limit {limit} s), "
        f"longest stall {report.longest_stall_seconds:.1f} s during {report.longest_stall_cause}"
    )
    assert len(heals) == len(seeds) and report.final_records > 0 and report.signatures > 0
    assert report.ok, numbers
    assert (
        main(
            ["check-histories", "--schedules", str(record), *(str(folder / f"node{i}") for i in range(NODES))]
        )
        == 0
    )


def log_tails(folder: Path, lines: int = 8) -> str:
    tails = []
    for log in sorted(folder.glob("node*/node.log")):
        tails.append(
            f"--- {log.parent.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        )
    return "\n".join(tails)
