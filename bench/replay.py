"""Replay speed against the raw speed of reading the same log, measured in the same run.

Builds (or reuses, with ``--home``) a dev chain of at least ``--events`` events, then measures:

- **raw**: iterate the LevelDB log (headers and events) and decode every block with msgspec;
- **replay**: ``replay_from_genesis``: execute every block, recompute and check every state
  root and delta against the log (signatures trusted, as a certified log allows);
- **replay --verify-signatures** on a slice, for the cost of re-checking every signature.

It prints the rates, the ratio replay / raw, and the state root of two independent replays
(they must be equal). Run: ``python bench/replay.py [--events 100000] [--home DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from appchain.chain import replay_from_genesis
from appchain.devchain import DevChainGenerator
from appchain.home import Home, NodeConfig
from appchain.store import BlockBody, BlockStore
from genesis.devnet import load_dev_accounts, load_dev_nodes, write_devnet
from state.block import Block, Header
from state.encoding import Decoder


def build_chain(root: Path, events: int, per_block: int) -> Home:
    genesis_file = root / "net" / "genesis.json"
    write_devnet(genesis_file, nodes=12, seed="bench", users=64)
    home, _ = Home.init(root / "home", genesis_file, NodeConfig(snapshot_interval=1000, sync_writes=False))
    blocks = -(-events // per_block)
    with home.open_chain() as chain:
        chain.store.sync = False
        generator = DevChainGenerator(
            chain,
            load_dev_accounts(home.keys_path / "dev-accounts.json"),
            "bench",
            events_per_block=per_block,
            nodes=load_dev_nodes(home.keys_path / "dev-nodes.json"),
        )
        started = time.perf_counter()
        generator.run(blocks)
        print(f"built {blocks} blocks in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return home


def measure_raw(store: BlockStore) -> tuple[int, int, float]:
    """Iterate and decode every header and event list: the floor any replay stands on."""
    headers, bodies = Decoder(Header), Decoder(BlockBody)
    blocks = count = 0
    started = time.perf_counter()
    for _key, raw in store._db.iterator(prefix=b"h/"):
        headers.decode(raw)
        blocks += 1
    for raw in store.iter_raw_bodies():
        count += len(bodies.decode(raw).events)
    return blocks, count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-block", type=int, default=100)
    parser.add_argument("--home", type=Path, help="reuse or create the chain here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.home or Path(tmp)
        home = Home(root / "home")
        if not home.genesis_path.exists():
            home = build_chain(root, args.events, args.per_block)
        genesis = home.load_genesis()
        with BlockStore(home.db_path) as store:
            blocks, events, raw_seconds = measure_raw(store)
            started = time.perf_counter()
            first = replay_from_genesis(store, genesis)
            replay_seconds = time.perf_counter() - started
            second = replay_from_genesis(store, genesis)
            sample = min(blocks - 1, 100)
            sliced = [store.get_block(h) for h in range(1, sample + 1)]
        verify_seconds = _replay_slice_verified(home, sliced)

    raw_rate = events / raw_seconds
    replay_rate = events / replay_seconds
    sample_events = sum(len(b.events) for b in sliced)
    print(f"chain: {blocks} blocks, {events} events, {len(first)} state entries")
    print(f"raw iterate+decode : {raw_rate:12,.0f} events/s")
    print(f"replay (roots)     : {replay_rate:12,.0f} events/s")
    print(f"ratio replay/raw   : {replay_rate / raw_rate:12.2%}")
    print(
        f"replay --verify-signatures (first {sample} blocks): {sample_events / verify_seconds:,.0f} events/s"
    )
    print(f"state root, replay 1: {first.root.hex()}")
    print(f"state root, replay 2: {second.root.hex()}")
    if first.root != second.root:
        raise SystemExit("NON-DETERMINISTIC REPLAY")


def _replay_slice_verified(home: Home, blocks: list[Block]) -> float:
    from appchain.chain import replay_blocks
    from genesis.build import create_genesis_state

    state, _ = create_genesis_state(home.load_genesis())
    started = time.perf_counter()
    replay_blocks(state, blocks, verify_signatures=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
