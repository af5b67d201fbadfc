"""A real devnet under load: 12 node processes on 127.0.0.1, Pulse at tight deadlines, transfers.

Writes a testnet (devnet parameters, ``--block-time`` seconds between blocks, e.g. 0.25, and
``--stage-timeout`` and ``--round-timeout`` Pulse deadlines in seconds, all three converted to the
whole milliseconds the genesis and config.toml hold; 64 funded senders), starts one ``appchain start`` per
node with the signature clock on (``APPCHAIN_SIGNATURE_CLOCK=1``), waits for finality, then
feeds signed transfers at ``--rate`` per second for ``--seconds`` through the nodes' admin
endpoints (``submit_transactions``, spread over the nodes, one feeding thread per node so a slow
node does not hold the others' offer back). The load window runs from the first submission to the
last (at least ``--seconds``); every node's CPU (``/proc/PID/stat``), signature calls and frame
counters are sampled at both ends, so the figures below leave out start-up. It prints, from node
0's log and database and every node's status:

- the offer actually achieved (transfers submitted over the time it took), beside the rate asked;

- block interval: median and p95 of the wall time between consecutive blocks at node 0;
- proposal to finality: median and p95, from a block's round start (its timestamp) to the log
  line where the checkpoint covering it became final at node 0;
- finalized transfers per second over the load window;
- the CPU share of signature verification (and of signing) over all nodes' process time in the
  window: the nodes count their signature calls, and each count is priced at that call's cost
  measured on an idle core in this run (see :mod:`appchain.node.metrics` for why not the time
  inside the calls);
- the reference measured in the same run: one core's raw Ed25519 verifications per CPU second, and
  the finalized rate as a share of it;
- per finalized transfer per node, over the window: the CPU, and it divided by one Ed25519
  verification of the reference (issue 22's figure; the floor is 1, each node checking each
  signature once); the Ed25519 verify calls; the frames that arrived, and how many of them were
  copies of gossip the node had. The signature clock itself costs a few per cent of the nodes'
  Python time, so the ratio is slightly pessimistic.

Run: ``python -m bench.devnet [--seconds 60] [--rate 600] [--block-time 1]``.
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import msgspec

from appchain.home.home import Home
from appchain.lab.testnet import NetworkMember, poll_status, start_process, stop_processes, write_testnet
from appchain.node.admin import call
from genesis.devnet import load_dev_accounts
from genesis.load import load_genesis
from genesis.presets import DEVNET
from state.crypto import bls, ed25519
from state.encoding import encode
from state.events import Transfer, sign_transaction
from state.types import AccountKey, Atomic, Nonce

TICK = 0.1
"""Seconds between two submissions of a feeder that keeps up."""
CATCH_UP = 4
"""A feeder behind its schedule submits at most this many ticks' share in one call."""
LINE = re.compile(r"^(\S+) info (block applied|block final) .*? height=(\d+)")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def _rate(call: Callable[[], object], seconds: float = 0.5) -> float:
    """Calls per CPU second of this thread: on a machine shared with other work, wall time would
    count the time the core was lent to others (the nodes' figures are CPU time too)."""
    count, started = 0, time.thread_time()
    while time.thread_time() - started < seconds:
        for _ in range(10):
            call()
        count += 10
    return count / (time.thread_time() - started)


def raw_costs() -> dict[str, float]:
    """CPU seconds per call of each signature function, on this core, now (the reference)."""
    key = ed25519.SigningKey(b"\x01" * 32)
    message = b"reference" * 4
    signature = key.sign(message)
    secrets = [bls.secret_key_from_seed(bytes([i + 1]) * 32) for i in range(14)]
    keys = [bls.public_key(s) for s in secrets]
    bls_signature = bls.sign(secrets[0], message)
    aggregate = bls.aggregate_signatures([bls.sign(s, message) for s in secrets])
    pop = bls.prove_possession(secrets[0])
    calls: dict[str, Callable[[], object]] = {
        "ed25519.verify": lambda: ed25519.verify(key.public_key, message, signature),
        "ed25519.sign": lambda: key.sign(message),
        "bls.verify": lambda: bls.verify(keys[0], message, bls_signature),
        "bls.fast_aggregate_verify": lambda: bls.fast_aggregate_verify(keys, message, aggregate),
        "bls.verify_possession": lambda: bls.verify_possession(keys[0], pop),
        "bls.sign": lambda: bls.sign(secrets[0], message),
        "bls.aggregate_signatures": lambda: bls.aggregate_signatures([bls_signature] * 14),
    }
    return {name: 1.0 / _rate(call) for name, call in calls.items()}


def make_transfers(net: Path, chain_id: str, count: int, nodes: int) -> list[list[tuple[int, str]]]:
    """``count`` signed transfers (sender index, hex), split by the node they are submitted to:
    each sender always goes to the same node, so its nonces reach that mempool in order."""
    senders = load_dev_accounts(net / "keys" / "accounts.json")
    nonces = {key.public_key: 0 for key in senders}
    sink = AccountKey(b"\x42" * 32)
    queues: list[list[tuple[int, str]]] = [[] for _ in range(nodes)]
    for index in range(count):
        sender = index % len(senders)
        key = senders[sender]
        nonces[key.public_key] += 1
        tx = Transfer(key.public_key, Nonce(nonces[key.public_key]), sink, Atomic(1000 + index))
        queues[sender % nodes].append((sender, encode(sign_transaction(chain_id, tx, key)).hex()))
    return queues


@dataclass
class Sample:
    """Every node's counters at one moment: CPU seconds from ``/proc/PID/stat`` (user + system),
    signature calls and frames from the status (summed over the nodes)."""

    cpu: dict[int, float]
    signatures: dict[str, int]
    arrived: int
    duplicates: int


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample(members: list[NetworkMember], processes: list[subprocess.Popen[bytes]]) -> Sample:
    cpu = {p.pid: process_cpu(p.pid) for p in processes}
    signatures: dict[str, int] = {}
    arrived = duplicates = 0
    for member in members:
        status = poll_status(member, timeout=10.0) or {}
        for name, entry in (status.get("signatures") or {}).items():
            signatures[name] = signatures.get(name, 0) + int(entry["calls"])
        arrived += status.get("frames_arrived", 0)
        duplicates += status.get("frames_duplicate", 0)
    return Sample(cpu, signatures, arrived, duplicates)


class Feeder(threading.Thread):
    """Offers one node its share of the transfers over ``seconds``, in a thread of its own so a
    slow node holds back only its own share: each call submits what is due by then, at most
    :data:`CATCH_UP` ticks' worth (a node that answered slowly gets a bigger batch next time; a
    whole backlog in one call would hold its event loop for seconds and fail Pulse rounds, which
    measures the admin endpoint, not the chain).

    A transfer refused because the mempool is full is offered again at the next call, as a
    wallet told "full" does, and so are its sender's later transfers of that call (refused for the
    nonce it left unused); without that, one refusal left a sender's every later nonce unusable
    and the bench measured its own pre-signed queue, not the chain. The achieved offer counts
    each transfer once, when first offered."""

    def __init__(
        self, member: NetworkMember, queue: list[tuple[int, str]], start: float, seconds: float
    ) -> None:
        super().__init__(daemon=True)
        self.member, self.queue, self.start_time, self.seconds = member, queue, start, seconds
        self.submitted = self.refused = self.deferred = 0
        self.retry: list[tuple[int, str]] = []
        self.finished = start

    def run(self) -> None:
        address = ("127.0.0.1", self.member.admin_port)
        step = max(1, int(CATCH_UP * len(self.queue) * TICK / self.seconds))
        while self.submitted < len(self.queue) or self.retry:
            elapsed = time.time() - self.start_time
            due = min(len(self.queue), int(len(self.queue) * min(1.0, elapsed / self.seconds)))
            due = min(due, self.submitted + max(0, step - len(self.retry)))
            if due <= self.submitted and not self.retry:
                time.sleep(TICK)
                continue
            share = self.retry + self.queue[self.submitted : due]
            self.submitted = max(self.submitted, due)
            results = call(address, "submit_transactions", {"txs": [tx for _, tx in share]}, timeout=60.0)
            self.retry, full = [], set()
            for (sender, tx), result in zip(share, results, strict=True):
                error = result.get("error")
                if error is None:
                    continue
                if "mempool holds" in error or sender in full:
                    full.add(sender)
                    self.retry.append((sender, tx))
                else:
                    self.refused += 1
            if self.retry:
                self.deferred += 1
                time.sleep(TICK)
        self.finished = time.time()


def parse_log(path: Path) -> tuple[dict[int, float], dict[int, float]]:
    applied: dict[int, float] = {}
    final: dict[int, float] = {}
    for line in path.read_text().splitlines():
        match = LINE.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
            stamp -= time.timezone if time.daylight == 0 else time.altzone  # the log is UTC
            target = applied if match.group(2) == "block applied" else final
            target.setdefault(int(match.group(3)), stamp)
    return applied, final


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=600.0, help="transfers offered per second")
    parser.add_argument("--block-time", type=float, default=1.0, help="seconds, e.g. 0.25")
    parser.add_argument("--stage-timeout", type=float, default=0.5)
    parser.add_argument("--round-timeout", type=float, default=3.0)
    parser.add_argument("--base-port", type=int, default=27656)
    parser.add_argument("--profile", action="store_true", help="profile node 0 and print where its time goes")
    args = parser.parse_args()

    costs = raw_costs()
    reference = 1.0 / costs["ed25519.verify"]
    root = Path(tempfile.mkdtemp(prefix="bench-devnet-"))
    net = root / "net"
    params = msgspec.structs.replace(DEVNET, block_time=round(args.block_time * 1000))
    members = write_testnet(
        net,
        args.nodes,
        base_port=args.base_port,
        seed="bench",
        users=64,
        params=params,
        stage_timeout_ms=round(args.stage_timeout * 1000),
        round_timeout_ms=round(args.round_timeout * 1000),
        sync_writes=False,
    )
    genesis = load_genesis(net / "genesis.json")
    queues = make_transfers(net, genesis.chain_id, int(args.rate * args.seconds), args.nodes)
    print(f"{args.nodes} nodes in {net}; {sum(map(len, queues))} signed transfers ready", file=sys.stderr)
    profile = root / "node0.prof"
    processes = [
        start_process(
            m.home,
            env={
                "APPCHAIN_SIGNATURE_CLOCK": "1",
                **({"APPCHAIN_PROFILE": str(profile)} if args.profile and i == 0 else {}),
            },
        )
        for i, m in enumerate(members)
    ]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all((poll_status(m) or {}).get("final_height", 0) >= 4 for m in members):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("bench: the devnet did not finalize 4 blocks in 120 s; see the node logs")
        print("warm: every node has final blocks; loading", file=sys.stderr)
        before = sample(members, processes)
        load_start = time.time()
        feeders = [
            Feeder(member, queue, load_start, args.seconds)
            for member, queue in zip(members, queues, strict=True)
        ]
        for feeder in feeders:
            feeder.start()
        for feeder in feeders:
            feeder.join()
        load_end = max(time.time(), load_start + args.seconds)
        after = sample(members, processes)
        time.sleep(10.0)  # let the last transactions become final
    finally:
        stop_processes(processes)

    applied, final = parse_log(members[0].home / "node.log")
    heights = sorted(h for h, t in applied.items() if load_start <= t <= load_end)
    intervals = [applied[h] - applied[h - 1] for h in heights if h - 1 in applied]
    finality = []
    final_heights = sorted(final)
    home = Home(members[0].home)
    transfers = 0
    with home.open_chain() as chain:
        for height in heights:
            covering = next((c for c in final_heights if c >= height), None)
            header = chain.store.get_header(height)
            if covering is not None and header is not None:
                finality.append(final[covering] - header.timestamp / 1000)  # headers: ms
            if covering is not None:
                transfers += sum(isinstance(e, Transfer) for e in chain.store.get_block(height).events)
    window = load_end - load_start
    cpu = sum(after.cpu.values()) - sum(before.cpu.values())
    counted = {name: calls - before.signatures.get(name, 0) for name, calls in after.signatures.items()}
    verify = sum(costs[name] * count for name, count in counted.items() if "verify" in name)
    sign = sum(costs[name] * count for name, count in counted.items() if "verify" not in name)
    rate = transfers / window if window > 0 else 0.0
    offered = sum(f.submitted for f in feeders)
    offer_seconds = max(f.finished for f in feeders) - load_start
    refused = sum(f.refused for f in feeders)
    deferred = sum(f.deferred for f in feeders)
    p95 = percentile

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")  # a stalled chain: no blocks

    per_node = max(transfers, 1) * args.nodes
    print(
        f"devnet: {args.nodes} processes, block time {args.block_time} s, stage {args.stage_timeout} s, "
        f"round {args.round_timeout} s; asked {args.rate:.0f} transfers/s for {args.seconds:g} s, "
        f"offered {offered / offer_seconds:,.0f} /s ({offered} in {offer_seconds:.1f} s)"
    )
    print(
        f"  block interval       : median {median(intervals):.3f} s, p95 {p95(intervals, 0.95):.3f} s "
        f"({len(intervals)} blocks)"
    )
    print(f"  proposal to finality : median {median(finality):.3f} s, p95 {p95(finality, 0.95):.3f} s")
    print(
        f"  finalized transfers  : {rate:,.0f} /s ({transfers} in the {window:.1f} s load window; "
        f"{refused} refused at submission; {deferred} calls met a full mempool and offered again)"
    )
    shares = f"verifying signatures {verify / cpu:.1%}, signing and aggregating {sign / cpu:.1%}"
    print(f"  CPU, all nodes       : {cpu:.1f} s in the load window (/proc/PID/stat); {shares}")
    print(
        f"  reference            : raw Ed25519 verify, one core, {reference:,.0f} per CPU second; "
        f"finalized transfers are {rate / reference:.2%} of it"
    )
    print(
        f"  per finalized transfer per node, load window: CPU {cpu / per_node * 1e6:,.0f} us = "
        f"{cpu / per_node * reference:.2f} Ed25519 verifications; "
        f"{counted.get('ed25519.verify', 0) / per_node:.2f} Ed25519 verify calls; "
        f"{(after.arrived - before.arrived) / per_node:.2f} frames arrived "
        f"({(after.duplicates - before.duplicates) / per_node:.2f} duplicates)"
    )

    if args.profile and profile.exists():
        print("node 0, where the time goes (cumulative, top 25):")
        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(25)
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
