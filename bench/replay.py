"""Replay speed against the raw speed of reading the same log, measured in the same run.

Builds (or reuses, with ``--home``) a dev chain of at least ``--events`` events, then measures:

- **raw**: iterate the LevelDB log (headers and events) and decode every block with msgspec;
- **replay**: ``replay_from_genesis``: execute every block, recompute and check every state
  root and delta against the log (signatures trusted, as a certified log allows);
- **replay --verify-signatures** on a slice, for the cost of re-checking every signature;
- **replay with / without the tree**: the same replay loop (same blocks, same rules, same delta
  checks, every write applied to the map) run with the sparse Merkle tree on, and with it
  switched off (``execute_block(..., skip_state_tree=True)``: no tree update, no root check),
  alternately ``--repeat`` times, best of each. Their difference is what the authenticated state
  costs; the aim is that it stays at most a third of the replay time.

It prints the rates, the ratio replay / raw, the tree's share of replay time, and the state root
of two independent replays (they must be equal). ``--profile`` adds a cProfile of one replay
with the tree on. Run: ``python -m bench.replay [--events 100000] [--home DIR] [--profile]``.
Numbers on a shared machine are noisy: compare ratios from the same run, not across runs.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

from appchain.cli.devchain import DevChainGenerator
from appchain.home.chain import ReplayMismatch, genesis_state_checked, replay_from_genesis
from appchain.home.genesis_files import write_devnet
from appchain.home.home import Home, NodeConfig
from appchain.home.store import BlockBody, BlockStore
from genesis.devnet import load_dev_accounts, load_dev_nodes
from genesis.document import Genesis
from state.block import Block, Header
from state.encoding import Decoder, encode
from state.state import State
from state.transition import commit_block, execute_block

TREE_SHARE_AIM = 1 / 3
"""The most of a replay's time the authenticated state (tree updates and root checks) may take."""


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


def replay_log(store: BlockStore, genesis: Genesis, *, skip_state_tree: bool) -> tuple[State, float]:
    """Replay the log from block 0 as :func:`replay_from_genesis` does (roots, deltas and the tip
    hash checked; signatures trusted), or the same with the state tree switched off; the state
    and the seconds the blocks after genesis took."""
    applied = store.get_applied()
    if applied is None or store.get_base() != 0:
        raise SystemExit("the bench replays a log that starts at genesis")
    state = genesis_state_checked(store, genesis)
    started = time.perf_counter()
    for block in store.iter_blocks(1, applied.height):
        pending = execute_block(state, block, verify_signatures=False, skip_state_tree=skip_state_tree)
        if store.get_delta_bytes(block.header.height) != encode(pending.changes):
            raise ReplayMismatch(block.header.height, "the stored state delta differs from the replayed one")
        commit_block(state, pending)
    seconds = time.perf_counter() - started
    if state.block_hash != applied.block_hash:
        raise ReplayMismatch(applied.height, "the tip hash differs from the recorded one")
    return state, seconds


def measure_tree(store: BlockStore, genesis: Genesis, repeat: int) -> tuple[State, float, float]:
    """The replay with the tree and without, alternated ``repeat`` times; the best time of each."""
    with_times: list[float] = []
    without_times: list[float] = []
    for _ in range(repeat):
        with_tree, seconds = replay_log(store, genesis, skip_state_tree=False)
        with_times.append(seconds)
        without_tree, seconds = replay_log(store, genesis, skip_state_tree=True)
        without_times.append(seconds)
    if list(with_tree.items()) != list(without_tree.items()):
        raise SystemExit("THE REPLAY WITHOUT THE TREE REACHED ANOTHER STATE")
    return with_tree, min(with_times), min(without_times)


def profile_replay(store: BlockStore, genesis: Genesis, top: int = 25) -> None:
    """cProfile one replay with the tree on; the top functions by own time, to stderr."""
    profiler = cProfile.Profile()
    profiler.enable()
    replay_log(store, genesis, skip_state_tree=False)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("smt.py|transition.py", top)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-block", type=int, default=100)
    parser.add_argument("--home", type=Path, help="reuse or create the chain here")
    parser.add_argument("--repeat", type=int, default=2, help="with/without-tree replay pairs (best of)")
    parser.add_argument("--profile", action="store_true", help="cProfile one replay with the tree on")
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
            with_tree, with_seconds, without_seconds = measure_tree(store, genesis, max(1, args.repeat))
            if args.profile:
                profile_replay(store, genesis)
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
    tree_share = 1 - without_seconds / with_seconds
    verdict = "met" if tree_share <= TREE_SHARE_AIM else "MISSED"
    print(f"replay with tree   : {events / with_seconds:12,.0f} events/s  (best of {max(1, args.repeat)})")
    print(f"replay without tree: {events / without_seconds:12,.0f} events/s  (no tree update, no root check)")
    print(f"tree share of replay: {tree_share:11.2%}  (1 - without/with time)")
    print(f"aim tree <= 1/3     : {verdict}")
    if with_tree.root != first.root:
        raise SystemExit("THE BENCH'S REPLAY LOOP DISAGREES WITH replay_from_genesis")
    print(f"state root, replay 1: {first.root.hex()}")
    print(f"state root, replay 2: {second.root.hex()}")
    if first.root != second.root:
        raise SystemExit("NON-DETERMINISTIC REPLAY")


def _replay_slice_verified(home: Home, blocks: list[Block]) -> float:
    from appchain.home.chain import replay_blocks
    from genesis.build import create_genesis_state

    state, _ = create_genesis_state(home.load_genesis())
    started = time.perf_counter()
    replay_blocks(state, blocks, verify_signatures=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
