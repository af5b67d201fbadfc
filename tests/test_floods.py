"""Floods (:mod:`bench.floods`) against a node's doors.

In this process, each generator against the piece it attacks on 127.0.0.1 (a node's RPC server or
p2p host, fed to a node's core), the flooder's connections made to come from another host by
:class:`~tests.test_p2p_limits.FakeAddresses`: the node refuses what it must and keeps serving an
honest client from another address meanwhile.

With root and ``ip netns`` (skipped, saying why, otherwise): twelve node processes, each in its
own network namespace, an honest client and the flooders on outside hosts (namespaces) of their
own, so every address is real. One run, phases of ``FLOOD_SECONDS`` (4 in CI, ``make floods``
runs 60): unloaded, then each flood against one node. Block times are read from the nodes' logs
(``block applied``, first anywhere) and finality from their histories; refusals from the flooded
node's ``/metrics``. It prints a table per phase (:func:`report`).
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from appchain.client.messages import SessionAccount
from appchain.lab.checker import check_histories, history_path
from appchain.lab.namespaces import MAX_OUTSIDERS, Namespaces, NetnsError, http_exchange, unavailable_reason
from appchain.lab.netns import NetnsTestnet, wait_until
from appchain.lab.testnet import DEVNET_TIMING, stop_processes
from appchain.node.node import Node
from appchain.rpc import server as rpc_server
from appchain.rpc.server import RpcLimits, RpcServer
from bench.floods import (
    RPC_BATCH,
    Forgeries,
    Tally,
    count_rpc_answer,
    first_handshake_message,
    forged_p2p,
    forged_rpc,
    garbage,
    junk_p2p,
    oversized_http,
    slow_loris,
)
from consensus.messages import TxMessage, decode_message
from genesis.load import load_genesis
from p2p import host as host_module
from p2p.host import Host, HostConfig
from p2p.secure import HandshakeFailed, handshake
from state.crypto import ed25519
from state.encoding import encode
from state.errors import InvalidSignature
from state.events import validate_basic
from state.types import NodeKey
from tests.conftest import ROOT, unless_ci
from tests.test_netns import log_tails
from tests.test_p2p import key
from tests.test_p2p_limits import HONEST, JUNK, FakeAddresses
from tests.test_rpc_limits import Client, call, until

Generator = Callable[[Tally], Awaitable[None]]


async def flood_for(seconds: float, *generators: Generator) -> list[Tally]:
    tallies = [Tally() for _ in generators]
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for generator, tally in zip(generators, tallies, strict=True):
                nursery.start_soon(generator, tally)
    return tallies


@pytest.fixture
def node(offline_node: Node) -> Node:
    return offline_node


# -- the forgeries ---------------------------------------------------------------------------------------


def test_forgeries_are_distinct_and_every_one_fails_its_signature_first(node: Node) -> None:
    chain_id = node.chain.genesis.chain_id
    forgeries = Forgeries(chain_id)
    batch = [next(forgeries) for _ in range(20)]
    assert len({encode(tx) for tx in batch}) == 20  # new to the duplicate filter, each
    assert {type(tx).__name__ for tx in batch} == {"Transfer", "RegisterNode"}
    for tx in batch:
        with pytest.raises(InvalidSignature):
            validate_basic(tx, chain_id)
        assert decode_message(encode(TxMessage(tx))) == TxMessage(tx)


def test_rpc_answers_are_sorted_by_what_refused_them() -> None:
    tally = Tally()
    count_rpc_answer(tally, 429, b'{"error": {"code": -32005}}', 50)  # a whole batch refused unread
    count_rpc_answer(tally, 200, b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -32000}}', 1)
    answers = [
        {"error": {"code": -32005}},
        {"error": {"code": -32000}},
        {"result": {}},
        {"error": {"code": -1}},
    ]
    count_rpc_answer(tally, 200, json.dumps(answers).encode(), 4)
    count_rpc_answer(tally, 502, b"<html>", 3)
    assert tally == {
        "limited": 51,
        "rejected": 2,
        "refused": 53,
        "accepted": 1,
        "error_-1": 1,
        "http_502": 3,
    }


async def test_junk_garbage_fails_a_handshake_at_once_and_a_half_handshake_is_a_valid_start() -> None:
    for _ in range(20):
        flooder, node_side = trio.testing.memory_stream_pair()
        await flooder.send_all(garbage())  # and the connection stays open
        with trio.fail_after(1), pytest.raises(HandshakeFailed):
            await handshake(node_side, key(92), chain_id="c", initiator=False)
    flooder, node_side = trio.testing.memory_stream_pair()
    await flooder.send_all(first_handshake_message("c"))
    with trio.move_on_after(0.2) as waiting:  # it answers, then waits for the third message
        await handshake(node_side, key(93), chain_id="c", initiator=False)
    assert waiting.cancelled_caught and await flooder.receive_some(65536)


# -- the JSON-RPC door -------------------------------------------------------------------------------------


@pytest.fixture
def addresses(monkeypatch: pytest.MonkeyPatch) -> FakeAddresses:
    """Every connection comes from the junk host unless it was made through ``connect`` for
    another address."""
    fake = FakeAddresses(default=JUNK)
    monkeypatch.setattr(rpc_server, "remote_address", fake)
    monkeypatch.setattr(host_module, "remote_address", fake)
    return fake


@asynccontextmanager
async def serving_rpc(
    nursery: trio.Nursery, node: Any, **limits: Any
) -> AsyncIterator[tuple[RpcServer, int]]:
    server = RpcServer(node, RpcLimits(**limits))
    listeners = await nursery.start(functools.partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
    try:
        yield server, listeners[0].socket.getsockname()[1]
    finally:
        for listener in listeners:
            await listener.aclose()


async def honest_calls(addresses: FakeAddresses, port: int, path: str, body: Any, count: int) -> list[int]:
    """``count`` requests from the honest address, a new connection each; their statuses."""
    statuses = []
    for _ in range(count):
        client = Client(await addresses.connect(port, HONEST))
        statuses.append((await client.post(path, body))[0])
        await client.stream.aclose()
        await trio.sleep(0.05)
    return statuses


async def test_forged_transactions_by_json_rpc_are_refused_at_the_rate_or_the_signature(
    nursery: trio.Nursery, node: Node, addresses: FakeAddresses
) -> None:
    async with serving_rpc(nursery, node) as (server, port):
        honest: list[int] = []

        async def honest_client(tally: Tally) -> None:
            honest.extend(await honest_calls(addresses, port, "/json_rpc", call("get_info"), 10))
            await trio.sleep_forever()

        target = ("127.0.0.1", port)
        chain_id = node.chain.genesis.chain_id
        tally, _ = await flood_for(1.5, lambda t: forged_rpc(target, chain_id, t), honest_client)
    assert honest == [200] * 10
    assert tally["accepted"] == 0 and tally["rejected"] > 0 and tally["limited"] > 0
    unanswered = tally["sent"] - tally["refused"]  # in flight when the flood stopped: one per connection
    assert 0 <= unanswered <= RPC_BATCH * 16
    assert server.refused.get("rate_per_ip", 0) > 0 and len(node.core.mempool) == 0


async def test_oversized_and_slow_requests_are_refused_while_an_honest_client_is_served(
    nursery: trio.Nursery, node: Node, addresses: FakeAddresses
) -> None:
    deadlines = {"read_header_timeout": 0.3, "read_body_timeout": 0.3, "max_connections_per_ip": 8}
    async with serving_rpc(nursery, node, **deadlines) as (server, port):
        honest: list[int] = []

        async def honest_client(tally: Tally) -> None:
            honest.extend(await honest_calls(addresses, port, "/json_rpc", call(), 10))
            await trio.sleep_forever()

        target = ("127.0.0.1", port)
        big, slow, _ = await flood_for(
            2.0,
            lambda t: oversized_http(target, t, connections=4),
            lambda t: slow_loris(target, t, connections=12),
            honest_client,
        )
    assert honest == [200] * 10  # method not found, answered: the port was never held
    assert big["http_413"] > 0 and big["http_431"] > 0  # bodies over the limit; heads over it
    assert slow["refused"] > 0 and slow["closed_unanswered"] > 0 and slow["answered_then_closed"] > 0
    assert (
        server.refused["too_big"] > 0 and server.refused["deadline"] > 0 and server.refused["malformed"] > 0
    )
    assert server.refused["max_connections_per_ip"] > 0


# -- the p2p door --------------------------------------------------------------------------------------------


@asynccontextmanager
async def node_host(nursery: trio.Nursery, node: Node, **overrides: Any) -> AsyncIterator[Host]:
    """``node``'s p2p host on a free port of 127.0.0.1, its frames handled by the node's core."""
    config = HostConfig(chain_id=node.chain.genesis.chain_id, listen_port=0, **overrides)
    node.host = Host(config, node.host.identity, node._on_frame)
    scope = trio.CancelScope()

    async def core() -> None:
        with scope:
            while True:
                node.handle_slice()
                await trio.sleep(0.001)

    await nursery.start(node.host.run)
    nursery.start_soon(core)
    try:
        yield node.host
    finally:
        scope.cancel()


async def test_forged_transactions_over_p2p_get_the_peer_banned_then_its_address(
    nursery: trio.Nursery, node: Node, addresses: FakeAddresses
) -> None:
    async with node_host(nursery, node, inbound_burst_per_ip=100.0) as host:
        target = ("127.0.0.1", host.port)
        (tally,) = await flood_for(1.5, lambda t: forged_p2p(target, node.chain.genesis.chain_id, t))
        # an honest peer from another address still gets in
        stream = await addresses.connect(host.port, HONEST)
        with trio.fail_after(5):
            channel = await handshake(stream, key(90), chain_id=node.chain.genesis.chain_id, initiator=True)
        await until(lambda: NodeKey(key(90).public_key) in host.peers)
        await channel.aclose()
    assert tally["handshakes"] >= 1 and tally["sent"] >= 256 and tally["dropped"] >= 1
    assert tally["handshake_refused"] > 0  # its address banned with its first key
    assert len(host.banned_keys) == tally["handshakes"] and JUNK in host.banned_hosts
    assert host.refused.get("banned", 0) > 0 and len(node.core.mempool) == 0


async def test_junk_p2p_connections_are_refused_and_an_honest_peer_still_gets_in(
    nursery: trio.Nursery, node: Node, addresses: FakeAddresses
) -> None:
    async with node_host(nursery, node, handshake_timeout=0.3) as host:
        target = ("127.0.0.1", host.port)
        (tally,) = await flood_for(
            1.5, lambda t: junk_p2p(target, node.chain.genesis.chain_id, t, sockets=24)
        )
        stream = await addresses.connect(host.port, HONEST)
        with trio.fail_after(5):
            channel = await handshake(stream, key(91), chain_id=node.chain.genesis.chain_id, initiator=True)
        await until(lambda: NodeKey(key(91).public_key) in host.peers)
        await channel.aclose()
    assert tally["garbage"] > 0 and tally["half_handshake"] > 0 and tally["silent"] > 0
    assert tally["refused"] > 0 and host.violations >= 4 and JUNK in host.banned_hosts
    assert host.refused["banned"] > 0  # refused unread once banned (before that, at its rate, by chance)
    assert sum(host.refused.values()) + host.violations >= tally["refused"]  # each one it closed, counted
    assert HONEST not in host.banned_hosts


# -- floods against node processes in network namespaces, measured --------------------------------------

NODES = 12
"""Pulse needs twelve active nodes."""
FLOODED = 0
CLIENT = 0
"""The honest client's outside host; the floods come from the two others."""
FLOODS: dict[str, dict[int, tuple[str, ...]]] = {
    "forged": {1: ("forged_rpc", "forged_p2p")},
    "http": {1: ("oversized_http",), 2: ("slow_loris",)},
    "junk-p2p": {2: ("junk_p2p",)},
}
"""Per flood, the generators run on each outside host. Each p2p flood has an address of its own
(the first gets its address banned for a minute), and the oversized requests one apart from the
slow-loris connections (which would otherwise take every connection that address may open)."""
EXPECTED_REFUSALS = {
    "forged": (("rpc_refused:",), ("p2p_violations", "p2p_refused:", "inbox_dropped:")),
    "http": (
        ("rpc_refused:too_big",),
        ("rpc_refused:malformed",),
        ("rpc_refused:max_connections_per_ip", "rpc_refused:deadline"),
    ),
    "junk-p2p": (("p2p_refused:",), ("p2p_violations",)),
}
"""Per flood: groups of the flooded node's /metrics counts, each of which must have risen (the
flood arrived, and each of its doors refused it)."""
TIMING = {
    "stage_timeout_ms": DEVNET_TIMING["stage_timeout_ms"],
    "round_timeout_ms": DEVNET_TIMING["round_timeout_ms"],
}
STALL_ROUNDS = 3
PHASE_SECONDS = float(os.environ.get("FLOOD_SECONDS", "4"))
RECOVERY_SECONDS = 1.5
HONEST_TIMEOUT = 10.0
APPLIED = re.compile(r"^(\S+Z) info block applied .*\bheight=(\d+)\b")
METRIC = re.compile(r"^(appchain_\w+?)(?:_total)?(?:\{(.*)\})? ([0-9.e+-]+)$")

REASON = unavailable_reason()
needs_netns = unless_ci(None if REASON is None else f"network namespaces ({REASON})")


def test_outside_hosts_are_bounded() -> None:
    subnet = ipaddress.IPv4Network("10.77.0.0/24")
    spaces = Namespaces(7, subnet, outsiders=MAX_OUTSIDERS)
    assert [spaces.outsider_address(k) for k in range(MAX_OUTSIDERS)] == [
        "10.77.0.251",
        "10.77.0.252",
        "10.77.0.253",
    ]
    assert spaces.names[-MAX_OUTSIDERS:] == [f"acn{spaces.run_id}o{k}" for k in range(MAX_OUTSIDERS)]
    for bad in (-1, MAX_OUTSIDERS + 1):
        with pytest.raises(NetnsError, match="outside hosts"):
            Namespaces(7, subnet, outsiders=bad)


@dataclass
class Request:
    at: float
    kind: str
    ok: bool
    seconds: float
    detail: str = ""


class HonestClient:
    """A client on its own outside host asking the flooded node, over and over until stopped:
    JSON-RPC ``get_info``, then a storage RPC ``store`` and a ``retrieve`` that must return what it
    stored. Every request is recorded: it succeeded within :data:`HONEST_TIMEOUT`, or it did not."""

    def __init__(self, net: NetnsTestnet, node: int) -> None:
        member = net.members[node]
        self.address = (member.host, member.rpc_port)
        self.storage = (member.host, member.storage_port)
        self.connect = net.namespaces.outsider_connector(CLIENT)
        self.account = SessionAccount(ed25519.SigningKey(os.urandom(32)))
        self.requests: list[Request] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="honest client", daemon=True)

    def _post(self, path: str, body: Any) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        storage = path != "/json_rpc"  # the storage RPC: HTTPS, at the storage port
        address = self.storage if storage else self.address
        status, answer = http_exchange(self.connect, address, "POST", path, data, HONEST_TIMEOUT, tls=storage)
        return status, json.loads(answer) if answer[:1] in (b"{", b"[") else answer.decode(errors="replace")

    def _timed(self, kind: str, ask: Callable[[], str]) -> bool:
        """Ask, and record it; ``ask`` returns what went wrong ("" when nothing did)."""
        started = time.time()
        try:
            problem = ask()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        self.requests.append(Request(started, kind, not problem, time.time() - started, problem))
        return not problem

    def get_info(self) -> str:
        status, answer = self._post("/json_rpc", {"jsonrpc": "2.0", "id": 1, "method": "get_info"})
        ok = status == 200 and isinstance(answer, dict) and answer.get("result", {}).get("status") == "OK"
        return "" if ok else f"get_info: {status} {str(answer)[:200]}"

    def store_and_retrieve(self) -> str:
        call = {"method": "store", "params": self.account.store(os.urandom(32), ttl_ms=3_600_000)}
        status, stored = self._post("/storage_rpc/v1", call)
        if status != 200 or not isinstance(stored, dict):
            return f"store: {status} {str(stored)[:200]}"
        status, held = self._post(
            "/storage_rpc/v1", {"method": "retrieve", "params": self.account.retrieve()}
        )
        hashes = [m["hash"] for m in held.get("messages", [])] if isinstance(held, dict) else []
        return "" if status == 200 and stored["hash"] in hashes else f"retrieve: {status} {str(held)[:200]}"

    def cycle(self) -> bool:
        asked = self._timed("get_info", self.get_info)
        return self._timed("storage", self.store_and_retrieve) and asked

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            self.cycle()

    def __enter__(self) -> HonestClient:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=2 * HONEST_TIMEOUT + 5)


def refusal_counts(metrics: str) -> Counter[str]:
    """What ``/metrics`` counts as refused or dropped, by family and reason, with forged
    transactions answered -32000 by JSON-RPC and peers dropped for protocol violations."""
    counts: Counter[str] = Counter()
    for line in metrics.splitlines():
        match = METRIC.match(line)
        if match is None:
            continue
        family, labels, value = match.groups()
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        if family in ("appchain_rpc_refused", "appchain_p2p_refused", "appchain_inbox_dropped"):
            counts[f"{family.removeprefix('appchain_')}:{fields['reason']}"] += int(float(value))
        elif family == "appchain_rpc_calls" and fields == {"method": "send_transaction", "outcome": "-32000"}:
            counts["rpc_refused:signature"] += int(float(value))
        elif family == "appchain_p2p_violations":
            counts["p2p_violations"] += int(float(value))
    return counts


def test_refusals_are_read_from_metrics_by_family_and_reason() -> None:
    text = "\n".join(
        [
            "# HELP appchain_rpc_refused_total RPC connections and requests refused or cut, by limit",
            'appchain_rpc_refused_total{reason="rate_per_ip"} 12.0',
            'appchain_p2p_refused_total{reason="banned"} 3.0',
            'appchain_inbox_dropped_total{reason="peer_transactions"} 4.0',
            'appchain_rpc_calls_total{method="send_transaction",outcome="-32000"} 5.0',
            'appchain_rpc_calls_total{method="send_transaction",outcome="ok"} 6.0',
            'appchain_rpc_calls_total{method="get_info",outcome="-32000"} 7.0',
            "appchain_p2p_violations_total 2.0",
            "appchain_height 40.0",
        ]
    )
    assert refusal_counts(text) == {
        "rpc_refused:rate_per_ip": 12,
        "p2p_refused:banned": 3,
        "inbox_dropped:peer_transactions": 4,
        "rpc_refused:signature": 5,
        "p2p_violations": 2,
    }


def scrape(net: NetnsTestnet, node: int) -> Counter[str]:
    """The refusals node ``node`` has counted so far (asked from its own namespace)."""
    member = net.members[node]
    address = (member.host, member.rpc_port)
    status, body = http_exchange(net.namespaces.connector(node), address, "GET", "/metrics", timeout=10.0)
    assert status == 200, body[:200]
    return refusal_counts(body.decode())


def applied_times(homes: list[Path]) -> dict[int, float]:
    """When each height was first applied anywhere in the network (from the nodes' logs)."""
    first: dict[int, float] = {}
    for log in (home / "node.log" for home in homes):
        for line in log.read_text(errors="replace").splitlines() if log.exists() else ():
            match = APPLIED.match(line)
            if match is not None:
                at = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
                height = int(match[2])
                first[height] = min(at, first.get(height, at))
    return first


def final_times(homes: list[Path]) -> list[float]:
    """When each height became final first, anywhere in the network (from the histories)."""
    first: dict[int, float] = {}
    for history in (history_path(home) for home in homes):
        for line in history.read_text().splitlines() if history.exists() else ():
            entry = json.loads(line)
            if "final" in entry:
                first[entry["final"]] = min(entry["at"], first.get(entry["final"], entry["at"]))
    return sorted(first.values())


def block_intervals(applied: dict[int, float], start: float, end: float) -> list[float]:
    """Seconds between each block first applied within ``start``-``end`` and the one before it."""
    return [
        at - applied[height - 1]
        for height, at in sorted(applied.items())
        if start <= at <= end and height - 1 in applied
    ]


def longest_stall(finals: list[float], start: float, end: float) -> float:
    """The longest time within ``start``-``end`` since the last new final height."""
    before = [at for at in finals if at <= start]
    moments = [before[-1] if before else start, *(at for at in finals if start < at <= end), end]
    return max(b - a for a, b in itertools.pairwise(moments))


def test_block_intervals_and_stalls_are_measured_within_a_phase() -> None:
    applied = {1: 100.0, 2: 102.0, 3: 105.0, 4: 106.0, 6: 110.0}
    assert block_intervals(applied, 101.0, 110.0) == [2.0, 3.0, 1.0]  # 6 follows no known 5
    finals = [100.0, 108.0, 116.0]
    assert longest_stall(finals, 104.0, 112.0) == 8.0  # 100 to 108, 4 s of it before the phase
    assert longest_stall(finals, 117.0, 130.0) == 14.0  # since 116, to the phase's end
    assert longest_stall([], 10.0, 12.0) == 2.0


@dataclass
class Phase:
    name: str
    start: float
    end: float
    tallies: dict[str, dict[str, int]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    """What the flooded node's /metrics counted during the phase."""
    cpu: float = 0.0
    """The flooded node's CPU seconds during the phase."""

    def total(self, key: str) -> int:
        return sum(tally.get(key, 0) for tally in self.tallies.values())


def flood(net: NetnsTestnet, kind: str, seconds: float, log: Path) -> dict[str, dict[str, int]]:
    """Run the flood ``kind`` against the flooded node: ``python -m bench.floods`` on each of
    its outside hosts at once; the generators' tallies."""
    member = net.members[FLOODED]
    targets = [
        "--rpc", f"{member.host}:{member.rpc_port}", "--p2p", f"{member.host}:{member.p2p_port}",
        "--chain-id", load_genesis(net.folder / "genesis.json").chain_id, "--seconds", str(seconds),
    ]  # fmt: skip
    processes = []
    try:
        with log.open("ab") as errors:
            for outsider, generators in FLOODS[kind].items():
                command = [*net.namespaces.outsider_wrapper(outsider), sys.executable, "-m", "bench.floods"]
                processes.append(
                    subprocess.Popen(
                        [*command, *generators, *targets], cwd=ROOT, stdout=subprocess.PIPE, stderr=errors
                    )
                )
        tallies: dict[str, dict[str, int]] = {}
        for process in processes:
            output, _ = process.communicate(timeout=seconds + 60)
            assert process.returncode == 0, f"the {kind} flood failed: see {log}"
            tallies.update(json.loads(output))
        return tallies
    finally:
        stop_processes(processes, grace=5.0)


def report(phases: list[Phase], honest: list[Request], applied: dict[int, float], finals: list[float]) -> str:
    """The table: per phase, the median block interval beside the unloaded one and their ratio,
    the longest finality stall, the honest requests that succeeded and their median and slowest
    seconds, the flooded node's CPU share, what the flooder sent and saw refused (in its own
    units: calls, frames, connections) and what the node counted refused."""
    unloaded = statistics.median(block_intervals(applied, phases[0].start, phases[0].end))
    lines = [
        f"{'phase':<9} {'median s':>8} {'unloaded':>8} {'ratio':>5} {'stall s':>7} {'honest ok':>9} "
        f"{'p50/max s':>10} {'cpu':>4} {'flood sent':>10} {'refused (flooder saw)':>21} {'(node counted)':>14}"
    ]
    for phase in phases:
        median = statistics.median(block_intervals(applied, phase.start, phase.end))
        asked = [r for r in honest if phase.start <= r.at <= phase.end]
        seconds = [r.seconds for r in asked]
        lines.append(
            f"{phase.name:<9} {median:>8.2f} {unloaded:>8.2f} {median / unloaded:>5.2f} "
            f"{longest_stall(finals, phase.start, phase.end):>7.1f} "
            f"{f'{sum(r.ok for r in asked)}/{len(asked)}':>9} "
            f"{f'{statistics.median(seconds):.2f}/{max(seconds):.2f}':>10} "
            f"{phase.cpu / (phase.end - phase.start):>4.0%} {phase.total('sent'):>10} "
            f"{phase.total('refused'):>21} {sum(phase.refused.values()):>14}"
        )
    return "\n".join(lines)


def cpu_seconds(net: NetnsTestnet, node: int) -> float:
    status = net.status(node, timeout=10.0)
    assert status is not None, f"node {node} does not answer its admin endpoint"
    return float(status["cpu_seconds"])


@needs_netns
@pytest.mark.slow
def test_floods_from_one_host_leave_finality_and_honest_clients_alone(tmp_path: Path) -> None:
    """Twelve node processes in namespaces; an honest client and the flooders on outside hosts of
    their own. Unloaded, then each flood against node 0 for ``FLOOD_SECONDS`` (a short recovery
    after each): blocks keep becoming final (no stall over three Pulse round timeouts), every
    honest request to the flooded node succeeds, and the flooded node's /metrics show each flood
    refused at its doors. Prints each phase's median block interval beside the unloaded one."""
    folder = tmp_path / "net"
    limit = STALL_ROUNDS * TIMING["round_timeout_ms"] / 1000
    phases: list[Phase] = []
    began = time.time()
    with NetnsTestnet(folder, NODES, outsiders=3, sync_writes=False, state_sync=False, **TIMING) as net:
        homes = [member.home for member in net.members]
        client = HonestClient(net, FLOODED)
        try:
            wait_until(lambda: bool(final_times(homes)), 120, "a first final block")
            wait_until(client.cycle, 60, "the honest client's first store and retrieve")
            client.requests.clear()
            ready = time.time()
            with client:
                for kind in ("unloaded", *FLOODS):
                    before, cpu, start = scrape(net, FLOODED), cpu_seconds(net, FLOODED), time.time()
                    if kind == "unloaded":
                        time.sleep(PHASE_SECONDS)
                        tallies: dict[str, dict[str, int]] = {}
                    else:
                        tallies = flood(net, kind, PHASE_SECONDS, tmp_path / "flooder.log")
                    phase = Phase(kind, start, time.time(), tallies)
                    phase.refused = scrape(net, FLOODED) - before
                    phase.cpu = cpu_seconds(net, FLOODED) - cpu
                    phases.append(phase)
                    time.sleep(RECOVERY_SECONDS)
            assert not net.exited(), net.exited()
        except (AssertionError, NetnsError) as failure:
            raise AssertionError(f"{failure}\n{log_tails(folder)}") from failure
    applied, finals = applied_times(homes), final_times(homes)
    print(
        f"\nfloods against node {FLOODED} of {NODES} in namespaces, {PHASE_SECONDS:g} s each "
        f"(network up and final in {ready - began:.1f} s):"
    )
    print(report(phases, client.requests, applied, finals))
    for phase in phases[1:]:
        print(f"{phase.name}: the node counted {dict(phase.refused)}; the flooder {phase.tallies}")
    failed = [r for r in client.requests if not r.ok]
    assert not failed, failed[:5]
    for phase in phases:
        assert len([r for r in client.requests if phase.start <= r.at <= phase.end]) >= 2, phase.name
        stall = longest_stall(finals, phase.start, phase.end)
        assert stall <= limit, f"{phase.name}: no new final block for {stall:.1f} s (limit {limit} s)"
        assert block_intervals(applied, phase.start, phase.end), f"{phase.name}: no block"
        for prefixes in EXPECTED_REFUSALS.get(phase.name, ()):
            assert risen(phase.refused, prefixes) > 0, (phase.name, prefixes, phase.refused)
        assert phase.name == "unloaded" or phase.total("sent") > 0
        assert phase.total("accepted") == 0
    assert longest_stall(finals, phases[0].start, phases[-1].end) <= limit
    assert check_histories(homes).ok


def risen(refused: Counter[str], prefixes: tuple[str, ...]) -> int:
    return sum(count for name, count in refused.items() if name.startswith(prefixes))
