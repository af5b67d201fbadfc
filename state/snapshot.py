"""Snapshots of the state: cut into chunks that each verify against the state root.

A snapshot of the state after block ``height`` is a :class:`SnapshotManifest` and ``2**depth``
chunks. Chunk ``i`` holds every ``(key, value)`` pair whose tree path (``H(key)``) starts with
the ``depth`` bits of ``i``, in path order, so it is exactly the leaves of one subtree of the
state tree. The manifest carries the *frontier*: each chunk's subtree hash (and kind), which
recomputes the state root (:func:`state.smt.compute_frontier_root`).

This is what lets a joining node trust a snapshot it fetched from peers it does not trust
(:mod:`consensus.statesync`): it checks the manifest once against the state root of a certified
header (:func:`check_manifest`), then each chunk alone against its frontier entry as it arrives
(:func:`check_chunk`), so a tampered chunk is caught and blamed on the peer that sent it, not
discovered at the end. The verified subtrees join into the whole tree (:func:`assemble_state`)
without hashing a leaf twice.

The depth is chosen so a chunk holds about :data:`CHUNK_TARGET` pairs; the key paths are hashes,
so chunks are even. A chunk is sent (and stored) in parts of at most :data:`PART_SIZE` pairs:
someone who ground many keys into one prefix makes that chunk long, never a frame too large.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from state.encoding import Record
from state.hashing import blake3_256
from state.params import ChainParams
from state.smt import (
    KEY_BITS,
    MAX_FRONTIER_DEPTH,
    SUBTREE_EMPTY,
    SUMMARY_SIZE,
    Subtree,
    build_subtree,
    compute_frontier,
    compute_frontier_root,
    join_subtrees,
    summarize,
)
from state.state import State
from state.types import Hash32

CHUNK_TARGET = 4096
"""About this many pairs per chunk (the depth is chosen for it)."""
PART_SIZE = 4096
"""Most pairs in one stored record or one chunk message."""

Pair = tuple[bytes, bytes]


class InvalidSnapshot(ValueError):
    """A manifest or chunk that does not match what it claims (from a peer: blame it)."""


class SnapshotManifest(Record, frozen=True):
    """What a snapshot holds: the block it follows, its root, and how it is cut.

    ``depth`` and ``frontier`` are absent (``-1``, empty) in snapshots written before chunks
    were cut by path; such a snapshot still loads locally but is never offered to peers.
    """

    height: int
    block_hash: Hash32
    timestamp: int
    """The block's timestamp, unix milliseconds."""
    state_root: Hash32
    entries: int
    chunks: int
    depth: int = -1
    frontier: bytes = b""

    @property
    def verifiable(self) -> bool:
        return self.depth >= 0

    def chunk_is_empty(self, index: int) -> bool:
        return self.frontier[index * SUMMARY_SIZE] == SUBTREE_EMPTY


def choose_depth(entries: int) -> int:
    """The smallest depth whose chunks hold at most :data:`CHUNK_TARGET` pairs on average."""
    depth = 0
    while entries > CHUNK_TARGET << depth and depth < MAX_FRONTIER_DEPTH:
        depth += 1
    return depth


def cut_snapshot(state: State) -> tuple[SnapshotManifest, list[list[Pair]]]:
    """The manifest and the chunks (each in path order) of ``state``."""
    depth = choose_depth(len(state))
    shift = KEY_BITS - depth
    buckets: list[list[tuple[bytes, Pair]]] = [[] for _ in range(1 << depth)]
    for key, value in state.unordered_items():
        path = blake3_256(key)
        buckets[int.from_bytes(path, "big") >> shift].append((path, (key, value)))
    chunks = []
    for bucket in buckets:
        bucket.sort()
        chunks.append([pair for _, pair in bucket])
    manifest = SnapshotManifest(
        state.height,
        state.block_hash,
        state.timestamp,
        state.root,
        len(state),
        len(chunks),
        depth,
        compute_frontier(state.tree, depth),
    )
    return manifest, chunks


def split_parts(chunk: list[Pair]) -> Iterator[list[Pair]]:
    """A chunk in parts of at most :data:`PART_SIZE` pairs (an empty chunk is one empty part)."""
    yield chunk[:PART_SIZE]
    for start in range(PART_SIZE, len(chunk), PART_SIZE):
        yield chunk[start : start + PART_SIZE]


def check_manifest(manifest: SnapshotManifest, *, height: int, block_hash: bytes, state_root: bytes) -> None:
    """Accept ``manifest`` as the snapshot of the trusted block ``height``, or raise
    :class:`InvalidSnapshot` saying why: another height or block, another root, a frontier that
    does not hash to the root."""
    if manifest.height != height:
        raise InvalidSnapshot(f"the manifest is of height {manifest.height}, not {height}")
    if manifest.block_hash != block_hash:
        raise InvalidSnapshot(f"the manifest names another block than the certified one at {height}")
    if manifest.state_root != state_root:
        raise InvalidSnapshot(f"the manifest's state root is not the certified header's at {height}")
    if not manifest.verifiable or not 0 <= manifest.depth <= MAX_FRONTIER_DEPTH:
        raise InvalidSnapshot("the manifest is not cut by path")
    if manifest.chunks != 1 << manifest.depth:
        raise InvalidSnapshot(f"a manifest of depth {manifest.depth} has {1 << manifest.depth} chunks")
    root = compute_frontier_root(manifest.frontier, manifest.depth)
    if root is None:
        raise InvalidSnapshot("the manifest's frontier is malformed")
    if root != state_root:
        raise InvalidSnapshot("the manifest's frontier does not hash to the certified state root")


def check_chunk(manifest: SnapshotManifest, index: int, pairs: Iterable[Pair]) -> Subtree:
    """The subtree of chunk ``index`` if ``pairs`` are exactly its leaves, else :class:`InvalidSnapshot`."""
    if not 0 <= index < manifest.chunks:
        raise InvalidSnapshot(f"chunk {index} is not in a snapshot of {manifest.chunks} chunks")
    try:
        subtree = build_subtree(pairs, manifest.depth, index)
    except ValueError as exc:
        raise InvalidSnapshot(str(exc)) from None
    start = index * SUMMARY_SIZE
    if summarize(subtree) != manifest.frontier[start : start + SUMMARY_SIZE]:
        raise InvalidSnapshot(f"chunk {index} does not hash to its entry in the manifest")
    return subtree


def assemble_state(
    chain_id: str,
    params: ChainParams,
    manifest: SnapshotManifest,
    subtrees: list[Subtree],
    pairs: Iterable[Pair],
) -> State:
    """The state of a fully fetched snapshot: every chunk's subtree (checked) and all its pairs."""
    tree = join_subtrees(subtrees)
    if tree.root != manifest.state_root:
        raise InvalidSnapshot("the chunks do not join into the manifest's state root")
    state = State.from_snapshot(
        chain_id,
        params,
        height=manifest.height,
        block_hash=manifest.block_hash,
        timestamp=manifest.timestamp,
        items=pairs,
        tree=tree,
    )
    if len(state) != manifest.entries:
        raise InvalidSnapshot(f"the snapshot holds {len(state)} entries, not {manifest.entries}")
    return state
