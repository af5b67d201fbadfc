"""Messages stored and retrieved per second through one node of a swarm, on 127.0.0.1.

Starts a fresh testnet of ``--nodes`` node processes (12: Pulse needs them; they form one swarm,
so every store is replicated to all of them) and waits until node 0's swarm layer serves. Then
``--clients`` HTTPS clients send to node 0's storage port only, for ``--seconds`` each:

- ``store``: a ``--size``-byte message to namespace 0 (a Session direct message: no client
  signature) for one of 64 accounts, on a kept-alive connection (``http.client``, a thread
  each); node 0 stores it, forwards it to every other member over HTTPS, each of which stores
  and signs its result, and node 0 answers when all have;
- ``retrieve``: a signed retrieve (at most 10 messages) for one of those accounts, four ways:
  HTTPS and plain HTTP, each on ``--clients`` kept-alive connections driven by one thread
  (:mod:`bench.load`: ~50 µs of this process's CPU a request, against ~150 µs for a thread of
  ``http.client`` per connection, which ``--threaded-clients`` brings back) and on a fresh
  connection per request (Session Desktop opens one per request: a full TLS handshake, an
  RSA-2048 signature on the node's side, each time). The plain HTTP port is node 0's storage
  routes without TLS (``APPCHAIN_BENCH_PLAIN_STORAGE``,
  :data:`appchain.node.node.PLAIN_STORAGE_ENV`: for this measurement only, announced nowhere),
  so the ratios are TLS's price per request, measured in the same run on the same node.

References measured in the same run, on this machine:

- raw LevelDB: ``plyvel`` puts of the same messages (hash key, data value, no sync), per second;
- the Ed25519 verification bound: ``state.crypto.ed25519.verify`` calls per second on one core
  (a retrieve costs one verification; an aim of the issue is 25% of this bound). The headline
  line is **retrieve ÷ verification bound**: kept-alive retrieves over HTTPS per second divided by
  that bound.

Beside each rate, the CPU each side spent during it (``/proc``): node 0's per request (in µs and
in verifications, the bound's unit) and the load generator's (this process) in cores. The node
serves on one core; when the generator takes a large share of the machine's two, the rate says
more about the generator than about the node.

Run: ``python -m bench.swarm [--seconds 10] [--clients 8] [--size 1000] [--kept-only]``.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.client
import json
import os
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import plyvel

from appchain.home.tls import client_context
from appchain.lab.testnet import PORTS_PER_NODE, poll_status, start_process, stop_processes, write_testnet
from appchain.messaging.store import compute_message_hash
from appchain.node.node import PLAIN_STORAGE_ENV
from bench import load
from bench.devnet import process_cpu
from bench.rpc import measure
from state.crypto import ed25519

ACCOUNTS = 64
STORAGE_PATH = "/storage_rpc/v1"


def leveldb_writes(messages: list[tuple[bytes, bytes]]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        db = plyvel.DB(folder, create_if_missing=True)
        started = time.perf_counter()
        for key, value in messages:
            db.put(key, value, sync=False)
        elapsed = time.perf_counter() - started
        db.close()
    return len(messages) / elapsed


def verify_bound(seconds: float = 1.0) -> float:
    key = ed25519.SigningKey(b"\x01" * 32)
    message = b"retrieve1800000000000"
    signature = key.sign(message)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(500):
            ed25519.verify(key.public_key, message, signature)
        count += 500
    return count / (time.perf_counter() - started)


def own_cpu_seconds() -> float:
    """This process's user and system CPU seconds, every thread's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Phase:
    """One measured phase: its rate, the answers that were not 200, and the CPU spent meanwhile."""

    rate: float
    failures: int
    seconds: float
    node_cpu: float
    """Node 0's CPU seconds during the phase."""
    generator_cpu: float
    """The load generator's (this process's) CPU seconds during the phase."""

    def node_microseconds(self) -> float:
        """Node 0's CPU per request, in µs."""
        return self.node_cpu / (self.rate * self.seconds) * 1e6 if self.rate else float("nan")

    def cpu_text(self, bound: float) -> str:
        per_request = self.node_microseconds()
        return (
            f"node 0: {per_request:,.0f} µs CPU a request = {per_request * bound / 1e6:.1f} verifications, "
            f"{self.node_cpu / self.seconds:.2f} cores; "
            f"generator {self.generator_cpu / self.seconds:.2f} cores"
        )


def measure_phase(node_pid: int, run: Callable[[], tuple[float, int]]) -> Phase:
    node_before, own_before, started = process_cpu(node_pid), own_cpu_seconds(), time.perf_counter()
    rate, failures = run()
    seconds = time.perf_counter() - started
    return Phase(
        rate,
        failures,
        seconds,
        process_cpu(node_pid) - node_before,
        own_cpu_seconds() - own_before,
    )


def store_body(owner: str, data: bytes) -> bytes:
    params = {
        "pubkey": owner,
        "timestamp": int(time.time() * 1000),
        "ttl": 3_600_000,
        "data": base64.b64encode(data).decode(),
    }
    return json.dumps({"method": "store", "params": params}).encode()


def retrieve_body(key: ed25519.SigningKey) -> bytes:
    now = int(time.time() * 1000)
    params = {
        "pubkey": "05" + key.public_key.hex(),
        "timestamp": now,
        "signature": base64.b64encode(key.sign(f"retrieve{now}".encode())).decode(),
        "max_count": 10,
    }
    return json.dumps({"method": "retrieve", "params": params}).encode()


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--nodes", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--base-port", type=int, default=31656)
    parser.add_argument(
        "--threaded-clients",
        action="store_true",
        help="kept-alive retrieves from http.client threads (bench.rpc.measure), as before bench.load",
    )
    parser.add_argument(
        "--kept-only", action="store_true", help="retrieve on kept-alive connections only (no new one each)"
    )
    args = parser.parse_args()

    keys = [ed25519.SigningKey(bytes([i, 7]) + bytes(30)) for i in range(ACCOUNTS)]
    owners = ["05" + k.public_key.hex() for k in keys]
    messages = [os.urandom(args.size) for _ in range(20_000)]
    hashed = [
        (compute_message_hash(bytes.fromhex(owners[i % ACCOUNTS]), 0, m), m) for i, m in enumerate(messages)
    ]
    raw_writes = leveldb_writes(hashed)
    bound = verify_bound()

    root = Path(tempfile.mkdtemp(prefix="bench-swarm-"))
    members = write_testnet(
        root / "net", args.nodes, base_port=args.base_port, seed="bench-swarm", sync_writes=False
    )
    plain_port = args.base_port + PORTS_PER_NODE * args.nodes  # past every node's block
    node = members[0]
    processes = [
        start_process(m.home, env={PLAIN_STORAGE_ENV: f"127.0.0.1:{plain_port}"} if m is node else None)
        for m in members
    ]
    try:
        deadline = time.monotonic() + 120
        probe = store_body(owners[0], b"ready?")
        while True:
            if time.monotonic() > deadline:
                raise SystemExit("bench: the swarm layer did not start serving; see the node logs")
            if poll_status(node) is not None:
                connection = http.client.HTTPSConnection(
                    "127.0.0.1", node.storage_port, timeout=30, context=client_context()
                )
                connection.request("POST", STORAGE_PATH, probe)
                response = connection.getresponse()
                answer = json.loads(response.read() or b"{}") if response.status == 200 else {}
                connection.close()
                if len(answer.get("swarm", {})) == args.nodes:
                    break
            time.sleep(1.0)
        stores = [store_body(owners[i % ACCOUNTS], m) for i, m in enumerate(messages)]
        stored = measure_phase(
            processes[0].pid,
            functools.partial(
                measure,
                node.storage_port,
                stores,
                args.seconds,
                args.clients,
                path=STORAGE_PATH,
                timeout=30,
                tls=True,
            ),
        )
        retrieves = [retrieve_body(k) for k in keys]
        phases: dict[tuple[str, str], Phase] = {}
        for fresh in (False,) if args.kept_only else (False, True):
            for scheme, port in (("https", node.storage_port), ("http", plain_port)):
                run: Callable[[], tuple[float, int]]
                if fresh or args.threaded_clients:
                    run = functools.partial(
                        measure,
                        port,
                        retrieves,
                        args.seconds,
                        args.clients,
                        path=STORAGE_PATH,
                        timeout=30,
                        tls=scheme == "https",
                        fresh=fresh,
                    )
                else:
                    run = functools.partial(
                        load.run,
                        port,
                        retrieves,
                        args.seconds,
                        args.clients,
                        path=STORAGE_PATH,
                        tls=scheme == "https",
                    )
                phases[scheme, "fresh" if fresh else "kept"] = measure_phase(processes[0].pid, run)
    finally:
        stop_processes(processes)
    setup = f"{args.nodes} nodes in one swarm, {args.clients} clients, {args.size}-byte messages"
    print(f"messaging through one node on 127.0.0.1: {setup}, {args.seconds:g} s each")
    print(f"  raw LevelDB puts of the same messages : {raw_writes:10,.0f} /s")
    print(f"  Ed25519 verification bound (one core) : {bound:10,.0f} /s")
    print(
        f"  store over HTTPS (replicated to {args.nodes}) : {stored.rate:10,.1f} /s  "
        f"({stored.rate / raw_writes:.4f} of raw LevelDB, "
        f"{stored.rate / bound:.3f} of the verification bound, {stored.failures} not 200)"
    )
    for connections, label in (("kept", "kept-alive connections"), ("fresh", "a new connection each")):
        if ("https", connections) not in phases:
            continue
        https, plain = phases["https", connections], phases["http", connections]
        print(f"  retrieve (signed, <= 10 messages), {label}:")
        print(
            f"    over HTTPS                          : {https.rate:10,.1f} /s  "
            f"({https.rate / bound:.3f} of the verification bound, {https.failures} not 200)"
        )
        print(f"      {https.cpu_text(bound)}")
        print(f"    over plain HTTP                     : {plain.rate:10,.1f} /s  ({plain.failures} not 200)")
        print(f"      {plain.cpu_text(bound)}")
        cost = (1 / https.rate - 1 / plain.rate) * 1e6 if https.rate and plain.rate else float("nan")
        print(
            f"    HTTPS / plain HTTP                  : {https.rate / plain.rate:10.3f}  "
            f"(TLS costs {cost:,.0f} µs a request here)"
        )
    kept = phases["https", "kept"]
    print(
        f"  retrieve ÷ verification bound         : {kept.rate / bound:10.3f}  "
        f"(kept-alive HTTPS {kept.rate:,.0f} /s ÷ {bound:,.0f} verifications /s, same run; aim ≥ 0.25)"
    )


if __name__ == "__main__":
    main()
