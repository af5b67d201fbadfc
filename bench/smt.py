"""Our sparse Merkle tree against the Ethereum ``trie`` package's HexaryTrie, on the same keys.

For ``--keys`` random 32-byte keys with 40-byte values (the size of an encoded account) it
measures, in one run:

- inserts: ours one key per update, ours in batches of ``--batch`` (one block's writes), and
  HexaryTrie per key and inside ``squash_changes`` batches of the same size;
- proof size: mean encoded bytes over ``--probes`` keys (ours: msgpack ``Proof``; HexaryTrie:
  the RLP of every proof node);
- prove + verify time per key.

It prints each figure and the ratios (HexaryTrie / ours for time, ours / HexaryTrie for size).
Run: ``python bench/smt.py [--keys 100000]``.
"""

from __future__ import annotations

import argparse
import random
import time

import rlp
from trie.hexary import HexaryTrie

from state.encoding import encode
from state.smt import SparseMerkleTree, verify_proof


def time_ours_single(items: list[tuple[bytes, bytes]]) -> float:
    tree = SparseMerkleTree()
    started = time.perf_counter()
    for key, value in items:
        tree = tree.update({key: value})
    return time.perf_counter() - started


def time_ours_batched(items: list[tuple[bytes, bytes]], batch: int) -> tuple[float, SparseMerkleTree]:
    tree = SparseMerkleTree()
    started = time.perf_counter()
    for i in range(0, len(items), batch):
        tree = tree.update(dict(items[i : i + batch]))
    return time.perf_counter() - started, tree


def time_hexary_single(items: list[tuple[bytes, bytes]]) -> tuple[float, HexaryTrie]:
    trie = HexaryTrie({})
    started = time.perf_counter()
    for key, value in items:
        trie.set(key, value)
    return time.perf_counter() - started, trie


def time_hexary_batched(items: list[tuple[bytes, bytes]], batch: int) -> float:
    trie = HexaryTrie({})
    started = time.perf_counter()
    for i in range(0, len(items), batch):
        with trie.squash_changes() as memory_trie:
            for key, value in items[i : i + batch]:
                memory_trie.set(key, value)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--probes", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    items = [(rng.randbytes(32), rng.randbytes(40)) for _ in range(args.keys)]
    probes = [key for key, _ in rng.sample(items, min(args.probes, len(items)))]
    values = dict(items)

    ours_single = time_ours_single(items)
    ours_batched, tree = time_ours_batched(items, args.batch)
    hexary_single, trie = time_hexary_single(items)
    hexary_batched = time_hexary_batched(items, args.batch)

    started = time.perf_counter()
    our_sizes = []
    for key in probes:
        proof = tree.prove(key)
        assert verify_proof(tree.root, key, values[key], proof)
        our_sizes.append(len(encode(proof)))
    ours_prove = (time.perf_counter() - started) / len(probes)

    started = time.perf_counter()
    hexary_sizes = []
    for key in probes:
        nodes = trie.get_proof(key)
        assert HexaryTrie.get_from_proof(trie.root_hash, key, nodes) == values[key]
        hexary_sizes.append(sum(len(rlp.encode(node)) for node in nodes))
    hexary_prove = (time.perf_counter() - started) / len(probes)

    n = args.keys
    ours_best = min(ours_single, ours_batched) / n
    hexary_best = min(hexary_single, hexary_batched) / n
    our_size = sum(our_sizes) / len(our_sizes)
    hexary_size = sum(hexary_sizes) / len(hexary_sizes)
    print(f"{n} keys, 40-byte values, batches of {args.batch}")
    print(f"insert, ours one per update      : {ours_single / n * 1e6:8.1f} us/key")
    print(f"insert, ours batched             : {ours_batched / n * 1e6:8.1f} us/key")
    print(f"insert, HexaryTrie               : {hexary_single / n * 1e6:8.1f} us/key")
    print(f"insert, HexaryTrie squash batches: {hexary_batched / n * 1e6:8.1f} us/key")
    print(f"insert speed-up (best vs best)   : {hexary_best / ours_best:8.1f}x")
    print(f"proof size, ours                 : {our_size:8.0f} bytes (max {max(our_sizes)})")
    print(f"proof size, HexaryTrie           : {hexary_size:8.0f} bytes (max {max(hexary_sizes)})")
    print(f"proof size ratio ours/HexaryTrie : {our_size / hexary_size:8.2f}")
    print(f"prove+verify, ours               : {ours_prove * 1e6:8.1f} us")
    print(f"prove+verify, HexaryTrie         : {hexary_prove * 1e6:8.1f} us")
    print(f"prove+verify speed-up            : {hexary_prove / ours_prove:8.1f}x")


if __name__ == "__main__":
    main()
