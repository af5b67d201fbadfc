"""Snapshots cut by path: each chunk verifies alone, the frontier recomputes the root, and any
tampering (a value, a missing or extra pair, a pair moved between chunks, a lying frontier) is
caught where it happens."""

from __future__ import annotations

import random

import msgspec
import pytest

from genesis.presets import DEVNET
from state.hashing import blake3_256
from state.smt import (
    EMPTY,
    SUMMARY_SIZE,
    SparseMerkleTree,
    build_subtree,
    compute_frontier,
    compute_frontier_root,
    join_subtrees,
)
from state.snapshot import (
    CHUNK_TARGET,
    PART_SIZE,
    InvalidSnapshot,
    SnapshotManifest,
    assemble_state,
    check_chunk,
    check_manifest,
    choose_depth,
    cut_snapshot,
    split_parts,
)
from state.state import State
from state.types import Hash32


def make_state(entries: int, seed: int = 1) -> State:
    rng = random.Random(seed)
    items = [(b"k/" + rng.randbytes(8), rng.randbytes(rng.randrange(1, 40))) for _ in range(entries)]
    return State.from_snapshot(
        "test", DEVNET, height=8, block_hash=Hash32(bytes(range(32))), timestamp=5, items=items
    )


def check_all(manifest: SnapshotManifest, chunks: list[list[tuple[bytes, bytes]]]) -> State:
    check_manifest(
        manifest, height=manifest.height, block_hash=manifest.block_hash, state_root=manifest.state_root
    )
    subtrees = [check_chunk(manifest, i, chunk) for i, chunk in enumerate(chunks)]
    pairs = [pair for chunk in chunks for pair in chunk]
    return assemble_state("test", DEVNET, manifest, subtrees, pairs)


@pytest.mark.parametrize("entries", [0, 1, 2, 3, 50, 700])
@pytest.mark.parametrize("depth", [0, 1, 3, 6])
def test_frontier_recomputes_the_root_and_chunks_rebuild_the_tree(entries: int, depth: int) -> None:
    state = make_state(entries, seed=entries * 10 + depth)
    frontier = compute_frontier(state.tree, depth)
    assert len(frontier) == SUMMARY_SIZE << depth
    assert compute_frontier_root(frontier, depth) == state.root
    shift = 256 - depth
    buckets: list[list[tuple[bytes, bytes]]] = [[] for _ in range(1 << depth)]
    for key, value in state.items():
        buckets[int.from_bytes(blake3_256(key), "big") >> shift].append((key, value))
    subtrees = [build_subtree(bucket, depth, i) for i, bucket in enumerate(buckets)]
    assert join_subtrees(subtrees).root == state.root


def test_cut_snapshot_round_trip() -> None:
    state = make_state(9000)
    manifest, chunks = cut_snapshot(state)
    assert manifest.depth == choose_depth(9000) == 2
    assert sum(len(c) for c in chunks) == manifest.entries == 9000
    rebuilt = check_all(manifest, chunks)
    assert rebuilt.root == state.root
    assert list(rebuilt.items()) == list(state.items())


def test_choose_depth_keeps_chunks_near_the_target() -> None:
    assert choose_depth(0) == 0
    assert choose_depth(CHUNK_TARGET) == 0
    assert choose_depth(CHUNK_TARGET + 1) == 1
    assert choose_depth(10**6) == 8  # 256 chunks of ~3,900 pairs


def test_split_parts() -> None:
    assert list(split_parts([])) == [[]]
    pairs = [(bytes([i % 256, i // 256]), b"v") for i in range(PART_SIZE * 2 + 1)]
    parts = list(split_parts(pairs))
    assert [len(p) for p in parts] == [PART_SIZE, PART_SIZE, 1]
    assert [pair for part in parts for pair in part] == pairs


@pytest.fixture()
def snapshot() -> tuple[SnapshotManifest, list[list[tuple[bytes, bytes]]]]:
    state = make_state(600)
    manifest, _ = cut_snapshot(state)
    depth = 3  # several chunks, for the tampering cases
    frontier = compute_frontier(state.tree, depth)
    manifest = msgspec.structs.replace(manifest, depth=depth, chunks=1 << depth, frontier=frontier)
    shift = 256 - depth
    chunks: list[list[tuple[bytes, bytes]]] = [[] for _ in range(1 << depth)]
    for key, value in state.items():
        chunks[int.from_bytes(blake3_256(key), "big") >> shift].append((key, value))
    return manifest, chunks


def test_a_tampered_value_is_caught_in_its_chunk(snapshot) -> None:  # type: ignore[no-untyped-def]
    manifest, chunks = snapshot
    key, value = chunks[2][0]
    chunks[2][0] = (key, value + b"!")
    with pytest.raises(InvalidSnapshot, match="chunk 2 does not hash"):
        check_chunk(manifest, 2, chunks[2])
    check_chunk(manifest, 1, chunks[1])  # the others still check


def test_a_missing_or_extra_pair_is_caught(snapshot) -> None:  # type: ignore[no-untyped-def]
    manifest, chunks = snapshot
    with pytest.raises(InvalidSnapshot, match="does not hash"):
        check_chunk(manifest, 4, chunks[4][1:])
    with pytest.raises(InvalidSnapshot, match="does not belong to chunk 4"):
        check_chunk(manifest, 4, [*chunks[4], chunks[5][0]])
    with pytest.raises(InvalidSnapshot, match="twice"):
        check_chunk(manifest, 4, [*chunks[4], chunks[4][0]])
    with pytest.raises(InvalidSnapshot, match="not in a snapshot"):
        check_chunk(manifest, 8, chunks[4])


def test_a_manifest_of_another_height_block_or_root_is_refused(snapshot) -> None:  # type: ignore[no-untyped-def]
    manifest, _ = snapshot
    good = {"height": manifest.height, "block_hash": manifest.block_hash, "state_root": manifest.state_root}
    check_manifest(manifest, **good)
    with pytest.raises(InvalidSnapshot, match="of height 8, not 12"):
        check_manifest(manifest, **{**good, "height": 12})
    with pytest.raises(InvalidSnapshot, match="another block"):
        check_manifest(manifest, **{**good, "block_hash": EMPTY})
    with pytest.raises(InvalidSnapshot, match="state root is not"):
        check_manifest(manifest, **{**good, "state_root": EMPTY})


def test_a_lying_frontier_is_refused(snapshot) -> None:  # type: ignore[no-untyped-def]
    manifest, _ = snapshot
    good = {"height": manifest.height, "block_hash": manifest.block_hash, "state_root": manifest.state_root}
    frontier = bytearray(manifest.frontier)
    frontier[5] ^= 1  # one hash bit of chunk 0's entry
    lying = msgspec.structs.replace(manifest, frontier=bytes(frontier))
    with pytest.raises(InvalidSnapshot, match="does not hash to the certified state root"):
        check_manifest(lying, **good)
    for bad in (manifest.frontier[:-1], b"\x07" + manifest.frontier[1:]):
        with pytest.raises(InvalidSnapshot, match="malformed"):
            check_manifest(msgspec.structs.replace(manifest, frontier=bad), **good)
    with pytest.raises(InvalidSnapshot, match="chunks"):
        check_manifest(msgspec.structs.replace(manifest, chunks=3), **good)
    with pytest.raises(InvalidSnapshot, match="not cut by path"):
        check_manifest(msgspec.structs.replace(manifest, depth=-1, frontier=b""), **good)


def test_assembling_refuses_a_wrong_count(snapshot) -> None:  # type: ignore[no-untyped-def]
    manifest, chunks = snapshot
    subtrees = [check_chunk(manifest, i, c) for i, c in enumerate(chunks)]
    pairs = [p for c in chunks for p in c]
    with pytest.raises(InvalidSnapshot, match="entries"):
        assemble_state("test", DEVNET, msgspec.structs.replace(manifest, entries=1), subtrees, pairs)
    with pytest.raises(InvalidSnapshot, match="join"):
        assemble_state("test", DEVNET, manifest, subtrees[::-1], pairs)


def test_an_empty_tree_has_an_empty_frontier() -> None:
    tree = SparseMerkleTree()
    assert compute_frontier_root(compute_frontier(tree, 4), 4) == EMPTY
