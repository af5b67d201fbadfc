"""Per-block work as the network grows: 12, 500, 2,000 and 5,000 service nodes.

For each size, in a fresh process (so peak memory is that size's alone), with ``--accounts``
funded accounts (10^5; 10^6 with ``--large``):

- **genesis block**: building the state after block 0 from the genesis document (every node's
  keys and proof of possession checked, every account and node written to the tree);
- **empty block**: drawing the next Pulse quorum, then executing and committing a block with no
  events, once every node is payable (rewards, schedules, quorums and swarms are what it costs):
  200 blocks in 10 runs of 20, the mean of the fastest run (a block costs a tenth of a
  millisecond, and the machine is shared: as ``timeit`` does, the least disturbed run counts);
- **100 transfers**: the same with 100 signed transfers (signatures trusted, as in a replay);
- **replay**: events per second executing the last 12 empty blocks and the 12 blocks of
  transfers again on a copy of the state;
- **peak RSS** of the process;
- **state root** after the last block (the same code must give the same roots: a change that
  makes a block cheaper compares them before and after).

It prints the times and the ratio of each size's per-block time, empty and with 100 transfers, to
the first size's (the aims of issues 11 and 23: an empty block within 1.5x at 2,000 nodes; the
genesis block of 2,000 nodes under 5 s; at most 1 GB with 2,000 nodes and 10^6 accounts), then
each size's state root. Run: ``python -m bench.scale [--sizes 12,500,2000,5000] [--large]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from appchain.node.run import freeze_loaded_state
from consensus.validation import compute_block_entropy, compute_block_quorum
from genesis.build import create_genesis_state
from genesis.devnet import create_devnet_genesis
from state.block import Block
from state.events import Event, Transfer, sign_transaction
from state.state import State
from state.transition import commit_block, execute_block, propose_block
from state.types import AccountKey, Atomic, Nonce

BLOCKS = 12
EMPTY_RUNS, EMPTY_RUN_BLOCKS = 10, 20


def _block(state: State, events: list[Event], random_values: dict[int, bytes]) -> Block:
    height = state.height + 1
    entropy = compute_block_entropy(lambda h: random_values.get(h, bytes(16)), height)
    quorum = compute_block_quorum(state, entropy, height, 0)
    assert quorum is not None, "no Pulse quorum (fewer than 12 active nodes)"
    pending = propose_block(
        state, events, state.timestamp + state.params.block_time, producer=quorum.producer
    )
    commit_block(state, pending)
    return pending.block


def measure(nodes: int, accounts: int) -> dict[str, float | str]:
    started = time.perf_counter()
    genesis, _, users = create_devnet_genesis(nodes, "scale", users=accounts)
    document_seconds = time.perf_counter() - started
    # Keep only the keys the blocks below use: a million signing keys are the bench's memory
    # (~270 MB), not the node's, and freed now their room is reused by the state.
    senders = users[: min(len(users), 100 * BLOCKS)]
    receivers = [AccountKey(user.public_key) for user in users[-100:]]
    del users
    started = time.perf_counter()
    state, _ = create_genesis_state(genesis)
    genesis_seconds = time.perf_counter() - started
    freeze_loaded_state()  # as `appchain start` does once its state is loaded
    random_values: dict[int, bytes] = {}
    for _ in range(genesis.params.payable_delay + 1):  # until the genesis nodes are paid
        _block(state, [], random_values)
    start_state = state.copy()
    empty: list[Block] = []
    runs = []
    for _ in range(EMPTY_RUNS):
        started = time.perf_counter()
        for _ in range(EMPTY_RUN_BLOCKS):
            empty.append(_block(state, [], random_values))
        runs.append((time.perf_counter() - started) / EMPTY_RUN_BLOCKS)
    empty_seconds = min(runs)
    full = []
    nonces: dict[bytes, int] = {}
    transfer_seconds = 0.0
    for block_index in range(BLOCKS):
        events: list[Event] = []
        for i in range(100):
            sender = senders[(block_index * 100 + i) % len(senders)]
            nonce = nonces.get(sender.public_key, 0) + 1
            nonces[sender.public_key] = nonce
            tx = Transfer(sender.public_key, Nonce(nonce), receivers[-1 - i], Atomic(1000))
            events.append(sign_transaction(genesis.chain_id, tx, sender))
        started = time.perf_counter()
        full.append(_block(state, events, random_values))
        transfer_seconds += time.perf_counter() - started
    transfer_seconds /= BLOCKS
    replay_state = start_state
    for block in empty[:-BLOCKS]:  # untimed: the replay times 12 empty and 12 full blocks
        commit_block(replay_state, execute_block(replay_state, block, verify_signatures=False))
    started = time.perf_counter()
    count = 0
    for block in [*empty[-BLOCKS:], *full]:
        commit_block(replay_state, execute_block(replay_state, block, verify_signatures=False))
        count += len(block.events)
    replay_seconds = time.perf_counter() - started
    if replay_state.root != state.root:
        raise AssertionError("the replay reached another root")
    return {
        "nodes": nodes,
        "accounts": accounts,
        "genesis_document_s": document_seconds,
        "genesis_block_s": genesis_seconds,
        "empty_block_ms": empty_seconds * 1000,
        "transfer_block_ms": transfer_seconds * 1000,
        "replay_events_per_s": count / replay_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "height": state.height,
        "state_root": state.root.hex(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="12,500,2000,5000")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--large", action="store_true", help="10^6 accounts")
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    accounts = 1_000_000 if args.large else args.accounts
    if args.one:
        print(json.dumps(measure(args.one, accounts)))
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, "-m", "bench.scale", "--one", str(size), "--accounts", str(accounts)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        results.append(json.loads(out.strip().splitlines()[-1]))
    base = results[0]
    print(
        f"{accounts:,} funded accounts; per-block times: empty, the fastest of {EMPTY_RUNS} runs of "
        f"{EMPTY_RUN_BLOCKS} blocks; 100 tx, the mean of {BLOCKS} blocks; ÷ first: the ratio to the "
        f"{base['nodes']:,}-node time"
    )
    print(f"{'nodes':>6} {'genesis doc s':>13} {'genesis blk s':>13} {'empty ms':>9} {'÷ first':>8} "
          f"{'100 tx ms':>9} {'÷ first':>8} {'replay ev/s':>11} {'RSS MB':>7}")  # fmt: skip
    for r in results:
        print(
            f"{r['nodes']:>6,} {r['genesis_document_s']:>13.1f} {r['genesis_block_s']:>13.2f} "
            f"{r['empty_block_ms']:>9.3f} {r['empty_block_ms'] / base['empty_block_ms']:>8.2f} "
            f"{r['transfer_block_ms']:>9.2f} {r['transfer_block_ms'] / base['transfer_block_ms']:>8.2f} "
            f"{r['replay_events_per_s']:>11,.0f} {r['peak_rss_mb']:>7.0f}"
        )
    for r in results:
        print(f"state root after block {r['height']:,} with {r['nodes']:,} nodes: {r['state_root']}")


if __name__ == "__main__":
    main()
