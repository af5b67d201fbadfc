"""Joining a live devnet by state sync, against joining by replaying every block from genesis.

Builds a chain of ``--blocks`` blocks of transfers (a dev chain with certified checkpoints and
snapshots every ``--snapshot-interval`` blocks) over a genesis of ``--accounts`` funded accounts,
copies it into 12 node homes and starts them (``appchain start``): the network goes on from
there. Then two fresh nodes start at once (``appchain start``): one with state sync on, one
with it off (``[sync] state_sync = false``), which fetches and checks every block from
genesis. For each it prints the time from the process start to the network's tip (its height at
least the tip node 0 had when the joiners started, and its state root there equal to node 0's),
and the ratio of the two. The reference is the replay joiner measured in the same run.

Run: ``python -m bench.statesync [--accounts 100000] [--blocks 1000]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from appchain.cli.devchain import DevChainGenerator
from appchain.home.home import Home, render_config
from appchain.lab.testnet import NetworkMember, poll_status, start_process, stop_processes, write_testnet
from genesis.devnet import load_dev_accounts, load_dev_nodes
from genesis.presets import DEVNET


def configure(member: NetworkMember, **changes: Any) -> None:
    home = Home(member.home)
    home.config_path.write_text(render_config(dataclasses.replace(home.load_config(), **changes)))


def header_root(member: NetworkMember, height: int) -> str | None:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "get_block_header_by_height", "params": {"height": height}}
    ).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{member.rpc_port}/json_rpc", body)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            answer = json.loads(reply.read())
    except OSError:
        return None
    root: str | None = answer.get("result", {}).get("block_header", {}).get("state_root")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--per-block", type=int, default=50)
    parser.add_argument("--snapshot-interval", type=int, default=200)
    parser.add_argument("--base-port", type=int, default=31000)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-statesync-"))
    try:
        run(folder, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    members = write_testnet(
        folder / "net",
        12,
        base_port=args.base_port,
        seed="bench-statesync",
        users=args.accounts,
        spare=2,
        genesis_time=int(time.time()) - args.blocks * DEVNET.block_time // 1000,  # s; block_time: ms
        sync_writes=False,
    )
    print(f"testnet of 12 nodes, {args.accounts:,} funded accounts: {time.perf_counter() - started:.1f} s")
    nodes, (by_sync, by_replay) = members[:12], members[12:]
    source = Home(nodes[0].home)
    configure(nodes[0], snapshot_interval=args.snapshot_interval)
    started = time.perf_counter()
    with source.open_chain() as chain:
        accounts = load_dev_accounts(source.keys_path / "dev-accounts.json")[:2000]
        dev_nodes = load_dev_nodes(source.keys_path / "dev-nodes.json")
        generator = DevChainGenerator(
            chain, accounts, "bench", events_per_block=args.per_block, nodes=dev_nodes, mix=False
        )
        generator.run(args.blocks)
        entries = len(chain.state)
    built = time.perf_counter() - started
    print(f"chain of {args.blocks} blocks of {args.per_block} transfers: {built:.1f} s; {entries:,} entries")
    for member in nodes[1:]:
        configure(member, snapshot_interval=args.snapshot_interval)
        shutil.rmtree(Home(member.home).db_path)
        shutil.copytree(source.db_path, Home(member.home).db_path)
    configure(by_sync, state_sync_min_gap=args.snapshot_interval // 2)
    configure(by_replay, state_sync=False)
    processes = [start_process(member.home) for member in nodes]
    try:
        wait(lambda: all(poll_status(m) for m in nodes), args.timeout, "the network")
        tip = (poll_status(nodes[0]) or {})["height"]
        print(f"network running at height {tip}")
        joiners = {"state sync": by_sync, "replay from genesis": by_replay}
        begun = time.perf_counter()
        processes += [start_process(member.home) for member in joiners.values()]
        took: dict[str, float] = {}
        deadline = begun + args.timeout
        while len(took) < len(joiners) and time.perf_counter() < deadline:
            for name, member in joiners.items():
                if name in took:
                    continue
                status = poll_status(member) or {}
                if status.get("height", -1) >= tip and header_root(member, tip) == header_root(nodes[0], tip):
                    took[name] = time.perf_counter() - begun
                    print(f"{name:20}: at the tip ({tip}) after {took[name]:.1f} s")
            time.sleep(0.25)
        if len(took) < len(joiners):
            print(f"error: a joiner did not reach the tip in {args.timeout:.0f} s", file=sys.stderr)
            sys.exit(1)
        later = (poll_status(nodes[0]) or {})["height"]
        wait(lambda: (poll_status(by_sync) or {}).get("height", -1) >= later, 120, "a later block")
        agree = all(header_root(by_sync, h) == header_root(nodes[0], h) for h in range(tip, later + 1))
        print(f"state-synced node agrees on every root from {tip} to {later}: {agree}")
        ratio = took["state sync"] / took["replay from genesis"]
        print(f"join time, state sync / replay from genesis: {ratio:.3f} ({1 / ratio:.1f}x faster)")
    finally:
        stop_processes(processes)


def wait(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    print(f"error: timed out waiting for {what}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
