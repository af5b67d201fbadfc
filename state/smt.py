"""The authenticated map: a binary sparse Merkle tree with one-leaf subtrees collapsed.

Layout (the Celestia/Jellyfish form, identical to ICS-23's ``SmtSpec`` when the hash is SHA-256):

- a key's *path* is ``H(key)``, 256 bits read from the most significant bit down;
- a leaf hash is ``H(0x00 || path || H(value))``;
- an inner hash is ``H(0x01 || left || right)``; an empty subtree hashes to 32 zero bytes;
- a subtree holding a single leaf is replaced by that leaf, so a leaf sits at the depth of the
  shortest prefix that separates it from every other key. The shape, and so the root, depends
  only on the set of (key, value) pairs, never on the order they were inserted in.

Nodes are immutable and shared between versions: :meth:`SparseMerkleTree.update` returns a new
tree and leaves the old one valid. Keeping the tree of an earlier block therefore costs only the
nodes that changed since, which is what a reorg of the non-final tail needs.

``update`` takes a whole batch (one block's writes): the keys are sorted by path and the tree is
descended once, so every inner node on the union of the touched paths is hashed exactly once.

A :class:`Proof` lists the sibling hashes from the root down to where the key's path ends: at its
own leaf (membership), at an empty subtree, or at another leaf whose path shares the prefix
(absence). :func:`verify_proof` needs nothing but the root, the key, the value (``None`` for
absence), the proof and the hash function.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from itertools import pairwise
from typing import Any

from state.encoding import Record
from state.hashing import blake3_256
from state.types import Bytes32

EMPTY = bytes(32)
"""The hash of an empty subtree (ICS-23's ``empty_child``)."""

KEY_BITS = 256
_LEAF_PREFIX = b"\x00"
_INNER_PREFIX = b"\x01"
_EMPTY_LEFT = _INNER_PREFIX + EMPTY

Digest = Callable[[bytes], bytes]


# Nodes are plain tuples, not classes: CPython's cycle collector stops tracking a tuple whose
# items are all untracked, so a tree of a million nodes costs the collector nothing, and tuples
# are the cheapest object to build. Both shapes have three items; the second tells them apart:
#
#   leaf  = (hash, key, value)    the key and the value themselves (bytes)
#   inner = (hash, left, right)   each child a node or None
#
# A leaf holds references to the key and the value, which the state's map holds anyway, rather
# than its path and the value's hash: with a million accounts that is 129 bytes a leaf instead of
# 327 (a 4-tuple, the path as bytes and as an int, the value's hash), ~200 MB. The path and the
# value's hash are recomputed where they are needed: the path of a leaf met on the way down while
# inserting another key (one hash), and both for an absence proof that ends at another leaf.
Leaf = tuple[Any, ...]
Inner = tuple[Any, ...]
Node = tuple[Any, ...] | None


def _is_leaf(node: Leaf | Inner) -> bool:
    return node[1].__class__ is bytes


def _leaf(key: bytes, value: bytes, path: bytes, digest: Digest) -> Leaf:
    """The leaf of ``key`` (whose path is ``path``) holding ``value``; both kept as exact bytes,
    which is what tells a leaf from an inner node."""
    return (digest(_LEAF_PREFIX + path + digest(value)), bytes(key), bytes(value))


def _leaf_path(leaf: Leaf, digest: Digest) -> int:
    return int.from_bytes(digest(leaf[1]), "big")


Entry = tuple[int, bytes, Leaf | None]
"""One write of a batch: the key's path, the key, and its new leaf (``None``: a deletion)."""


def _inner(left: Node, right: Node, digest: Digest) -> Inner:
    return (
        digest(_INNER_PREFIX + (EMPTY if left is None else left[0]) + (EMPTY if right is None else right[0])),
        left,
        right,
    )


class Proof(Record, frozen=True):
    """A membership or absence proof for one key.

    ``present`` is a bitmap over the depths ``0 .. depth-1`` (bit ``i`` of byte ``i // 8``, most
    significant first): a set bit means the sibling at that depth is non-empty and is the next
    entry of ``siblings``; a clear bit means the sibling is the empty subtree. ``other_path`` and
    ``other_value_hash`` describe the leaf found on the key's path when it is a different key
    (an absence proof); both are empty otherwise.
    """

    depth: int
    present: bytes
    siblings: tuple[Bytes32, ...]
    other_path: bytes = b""
    other_value_hash: bytes = b""


class SparseMerkleTree:
    """An immutable sparse Merkle tree; ``update`` returns a new version sharing nodes."""

    __slots__ = ("_digest", "_root")

    def __init__(self, digest: Digest = blake3_256, root: Node = None) -> None:
        self._digest = digest
        self._root = root

    @property
    def root(self) -> bytes:
        """The 32-byte root hash; :data:`EMPTY` for an empty tree."""
        return EMPTY if self._root is None else bytes(self._root[0])

    @property
    def digest(self) -> Digest:
        return self._digest

    @classmethod
    def from_items(
        cls, items: Iterable[tuple[bytes, bytes]], digest: Digest = blake3_256
    ) -> SparseMerkleTree:
        """Build a tree from (key, value) pairs in one pass."""
        return cls(digest).update(dict(items))

    def update(self, changes: Mapping[bytes, bytes | None]) -> SparseMerkleTree:
        """A new tree with ``changes`` applied: a value sets the key, ``None`` deletes it."""
        if not changes:
            return self
        digest = self._digest
        batch: list[Entry] = []
        for key, value in changes.items():
            path = digest(key)
            leaf = None if value is None else _leaf(key, value, path, digest)
            batch.append((int.from_bytes(path, "big"), key, leaf))
        batch.sort(key=_first)
        paths = [entry[0] for entry in batch]
        return SparseMerkleTree(digest, self._update(self._root, 0, batch, paths, 0, len(batch)))

    def _update(
        self,
        node: Node,
        depth: int,
        batch: list[Entry],
        paths: list[int],
        lo: int,
        hi: int,
    ) -> Node:
        """Apply ``batch[lo:hi]`` (sorted, all sharing ``depth`` bits of path) below ``node``."""
        if hi - lo == 1:
            path_int, key, leaf = batch[lo]
            return self._update_one(node, depth, path_int, key, leaf)
        if node is None or _is_leaf(node):
            if node is None and all(batch[i][2] is not None for i in range(lo, hi)):
                return self._build(depth, batch, paths, lo, hi)  # the common large case: no copy
            kept = [entry for entry in batch[lo:hi] if entry[2] is not None]
            if node is not None:
                path = _leaf_path(node, self._digest)
                if not _contains(paths, path, lo, hi):
                    kept.append((path, node[1], node))
                    kept.sort(key=_first)
            return self._build(depth, kept, [entry[0] for entry in kept], 0, len(kept))
        mid = _split(paths, depth, lo, hi)
        left = self._update(node[1], depth + 1, batch, paths, lo, mid) if lo < mid else node[1]
        right = self._update(node[2], depth + 1, batch, paths, mid, hi) if mid < hi else node[2]
        return self._join(left, right)

    def _join(self, left: Node, right: Node) -> Node:
        """The parent of two subtrees, collapsed when it would hold a single leaf."""
        if left is None and (right is None or _is_leaf(right)):
            return right
        if right is None and _is_leaf(left):  # type: ignore[arg-type]
            return left
        return _inner(left, right, self._digest)

    def _update_one(self, node: Node, depth: int, path_int: int, key: bytes, leaf: Leaf | None) -> Node:
        """Set (``leaf``) or delete (``None``) ``key``, whose path is ``path_int``, below
        ``node``: the common case.

        The hottest loop of a replay, so :meth:`_join`, :func:`_inner` and :func:`_is_leaf` are
        written inline.
        """
        stack: list[tuple[Inner, int]] = []
        top = node
        shift = KEY_BITS - 1 - depth
        while node is not None and node[1].__class__ is not bytes:
            bit = (path_int >> shift) & 1
            stack.append((node, bit))
            node = node[2] if bit else node[1]
            shift -= 1
        new: Node
        if node is None or node[1] == key:
            if node is None and leaf is None:
                return top  # deleting an absent key changes nothing
            new = leaf
        elif leaf is None:
            return top  # the path ends at another key's leaf: ours is absent
        else:
            digest = self._digest
            new = self._pair(KEY_BITS - 1 - shift, node, _leaf_path(node, digest), leaf, path_int)
        digest = self._digest
        for parent, bit in reversed(stack):
            if bit:
                left, right = parent[1], new
            else:
                left, right = new, parent[2]
            if left is None:
                if right is None or right[1].__class__ is bytes:
                    new = right
                    continue
                new = (digest(_EMPTY_LEFT + right[0]), None, right)
            elif right is None:
                if left[1].__class__ is bytes:
                    new = left
                    continue
                new = (digest(_INNER_PREFIX + left[0] + EMPTY), left, None)
            else:
                new = (digest(_INNER_PREFIX + left[0] + right[0]), left, right)
        return new

    def _pair(self, depth: int, a: Leaf, a_path: int, b: Leaf, b_path: int) -> Inner:
        """The subtree at ``depth`` holding exactly the two leaves ``a`` and ``b`` (paths given)."""
        split = KEY_BITS - (a_path ^ b_path).bit_length()
        if (a_path >> (KEY_BITS - 1 - split)) & 1:
            a, b = b, a
        digest = self._digest
        node = _inner(a, b, digest)
        for level in range(split - 1, depth - 1, -1):
            if (a_path >> (KEY_BITS - 1 - level)) & 1:
                node = _inner(None, node, digest)
            else:
                node = _inner(node, None, digest)
        return node

    def _build(self, depth: int, entries: list[Entry], paths: list[int], lo: int, hi: int) -> Node:
        """The canonical subtree at ``depth`` of the leaves of ``entries[lo:hi]`` (sorted by
        path, none a deletion)."""
        count = hi - lo
        if count == 0:
            return None
        if count == 1:
            return entries[lo][2]
        if depth >= KEY_BITS:
            raise AssertionError("two distinct keys with the same 256-bit path")
        mid = _split(paths, depth, lo, hi)
        return _inner(
            self._build(depth + 1, entries, paths, lo, mid),
            self._build(depth + 1, entries, paths, mid, hi),
            self._digest,
        )

    def prove(self, key: bytes) -> Proof:
        """A proof of ``key``'s value, or of its absence."""
        path_int = int.from_bytes(self._digest(key), "big")
        node = self._root
        depth = 0
        present = bytearray(32)
        siblings: list[bytes] = []
        while node is not None and node[1].__class__ is not bytes:  # not a leaf
            if (path_int >> (KEY_BITS - 1 - depth)) & 1:
                sibling, node = node[1], node[2]
            else:
                sibling, node = node[2], node[1]
            if sibling is not None:
                present[depth >> 3] |= 0x80 >> (depth & 7)
                siblings.append(sibling[0])
            depth += 1
        bitmap = bytes(present[: (depth + 7) // 8])
        if node is not None and node[1] != key:
            digest = self._digest
            return Proof(depth, bitmap, tuple(siblings), digest(node[1]), digest(node[2]))
        return Proof(depth, bitmap, tuple(siblings))


def _first(entry: tuple[Any, ...]) -> int:
    path: int = entry[0]
    return path


def _split(paths: list[int], depth: int, lo: int, hi: int) -> int:
    """Index of the first path in ``paths[lo:hi]`` whose bit at ``depth`` is 1."""
    shift = KEY_BITS - 1 - depth
    threshold = ((paths[lo] >> shift) | 1) << shift
    return bisect_left(paths, threshold, lo, hi)


def _contains(paths: list[int], path_int: int, lo: int, hi: int) -> bool:
    index = bisect_left(paths, path_int, lo, hi)
    return index < hi and paths[index] == path_int


def compute_root(key: bytes, value: bytes | None, proof: Proof, digest: Digest = blake3_256) -> bytes | None:
    """The root that ``proof`` implies for ``key`` holding ``value`` (``None``: absent).

    Returns ``None`` when the proof is malformed or inconsistent with the claim.
    """
    depth = proof.depth
    if not 0 <= depth <= KEY_BITS or len(proof.present) != (depth + 7) // 8:
        return None
    path = digest(key)
    path_int = int.from_bytes(path, "big")
    if value is not None:
        if proof.other_path or proof.other_value_hash:
            return None
        node = digest(_LEAF_PREFIX + path + digest(value))
    elif proof.other_path:
        other = proof.other_path
        if len(other) != 32 or len(proof.other_value_hash) != 32 or other == path:
            return None
        # The other leaf must lie on the key's path down to ``depth``.
        if depth and (int.from_bytes(other, "big") ^ path_int) >> (KEY_BITS - depth):
            return None
        node = digest(_LEAF_PREFIX + other + proof.other_value_hash)
    else:
        if proof.other_value_hash:
            return None
        node = EMPTY
    siblings = proof.siblings
    used = len(siblings)
    for level in range(depth - 1, -1, -1):
        if proof.present[level >> 3] & (0x80 >> (level & 7)):
            used -= 1
            if used < 0:
                return None
            sibling = siblings[used]
        else:
            sibling = EMPTY
        if (path_int >> (KEY_BITS - 1 - level)) & 1:
            node = digest(_INNER_PREFIX + sibling + node)
        else:
            node = digest(_INNER_PREFIX + node + sibling)
    if used != 0 or _has_stray_bits(proof.present, depth):
        return None
    return node


def _has_stray_bits(present: bytes, depth: int) -> bool:
    spare = len(present) * 8 - depth
    return bool(spare and present and present[-1] & ((1 << spare) - 1))


def verify_proof(
    root: bytes, key: bytes, value: bytes | None, proof: Proof, digest: Digest = blake3_256
) -> bool:
    """True when ``proof`` shows ``key`` maps to ``value`` (or is absent, for ``None``) under ``root``."""
    computed = compute_root(key, value, proof, digest)
    return computed is not None and computed == root


# -- subtrees: how a snapshot is cut into chunks that each verify against the root ------------------
#
# State sync cuts the key space by the first ``depth`` bits of the path: chunk ``i`` holds every
# leaf whose path starts with ``i``. The *frontier* at ``depth`` is, for each of the ``2**depth``
# prefixes, the kind and hash of the canonical subtree of that prefix's leaves: empty, a single
# (collapsed) leaf, or an inner node. The frontier alone recomputes the root
# (:func:`compute_frontier_root`), so it is checked once against a trusted root; each chunk is
# then checked alone against its frontier entry (:func:`build_subtree`), and the subtrees it
# yields join into the whole tree (:func:`join_subtrees`) without hashing a leaf twice.

SUBTREE_EMPTY = 0
SUBTREE_LEAF = 1
SUBTREE_INNER = 2
SUMMARY_SIZE = 33
"""A frontier entry: one kind byte, then the subtree's 32-byte hash."""
MAX_FRONTIER_DEPTH = 16
_EMPTY_SUMMARY = bytes([SUBTREE_EMPTY]) + EMPTY

Subtree = Node
"""The opaque root of a chunk's subtree (None when the chunk is empty)."""


def summarize(node: Subtree) -> bytes:
    """The frontier entry of a subtree."""
    if node is None:
        return _EMPTY_SUMMARY
    kind = SUBTREE_LEAF if _is_leaf(node) else SUBTREE_INNER
    return bytes([kind]) + bytes(node[0])


def compute_frontier(tree: SparseMerkleTree, depth: int) -> bytes:
    """The ``2**depth`` frontier entries of ``tree``, concatenated in prefix order."""
    if not 0 <= depth <= MAX_FRONTIER_DEPTH:
        raise ValueError(f"frontier depth {depth} outside 0..{MAX_FRONTIER_DEPTH}")
    out = bytearray()

    def walk(node: Node, level: int, prefix: int) -> None:
        span = 1 << (depth - level)
        if level == depth:
            out.extend(summarize(node))
        elif node is None:
            out.extend(_EMPTY_SUMMARY * span)
        elif _is_leaf(node):  # a collapsed leaf: it sits in exactly one prefix below
            slot = (_leaf_path(node, tree.digest) >> (KEY_BITS - depth)) - (prefix << (depth - level))
            out.extend(_EMPTY_SUMMARY * slot + summarize(node) + _EMPTY_SUMMARY * (span - slot - 1))
        else:
            walk(node[1], level + 1, prefix << 1)
            walk(node[2], level + 1, (prefix << 1) | 1)

    walk(tree._root, 0, 0)
    return bytes(out)


def _join_summaries(left: bytes, right: bytes, digest: Digest) -> bytes:
    """Two sibling frontier entries' parent, collapsed as :meth:`SparseMerkleTree._join` does."""
    if left[0] == SUBTREE_EMPTY and right[0] != SUBTREE_INNER:
        return right
    if right[0] == SUBTREE_EMPTY and left[0] == SUBTREE_LEAF:
        return left
    return bytes([SUBTREE_INNER]) + digest(_INNER_PREFIX + left[1:] + right[1:])


def compute_frontier_root(frontier: bytes, depth: int, digest: Digest = blake3_256) -> bytes | None:
    """The root a frontier implies; ``None`` when it is malformed (wrong size, unknown kind, an
    empty entry with a hash)."""
    if not 0 <= depth <= MAX_FRONTIER_DEPTH or len(frontier) != SUMMARY_SIZE << depth:
        return None
    level = [frontier[i : i + SUMMARY_SIZE] for i in range(0, len(frontier), SUMMARY_SIZE)]
    for entry in level:
        if entry[0] > SUBTREE_INNER or (entry[0] == SUBTREE_EMPTY and entry != _EMPTY_SUMMARY):
            return None
    while len(level) > 1:
        level = [_join_summaries(level[i], level[i + 1], digest) for i in range(0, len(level), 2)]
    return level[0][1:]


def build_subtree(
    pairs: Iterable[tuple[bytes, bytes]], depth: int, prefix: int, digest: Digest = blake3_256
) -> Subtree:
    """The subtree of prefix ``prefix`` (``depth`` bits) holding ``pairs``.

    Raises ``ValueError`` when a key's path lies outside the prefix or a key repeats.
    """
    entries: list[Entry] = []
    shift = KEY_BITS - depth
    for key, value in pairs:
        path = digest(key)
        path_int = int.from_bytes(path, "big")
        if depth and path_int >> shift != prefix:
            raise ValueError(f"key {key.hex()} does not belong to chunk {prefix}")
        entries.append((path_int, key, _leaf(key, value, path, digest)))
    entries.sort(key=_first)
    paths = [entry[0] for entry in entries]
    for a, b in pairwise(paths):
        if a == b:
            raise ValueError("a key appears twice")
    return SparseMerkleTree(digest)._build(depth, entries, paths, 0, len(entries))


def join_subtrees(subtrees: list[Subtree], digest: Digest = blake3_256) -> SparseMerkleTree:
    """The tree whose frontier holds ``subtrees`` (``2**depth`` of them, in prefix order)."""
    if len(subtrees) & (len(subtrees) - 1) or not subtrees:
        raise ValueError("a frontier holds a power of two of subtrees")
    tree = SparseMerkleTree(digest)
    level = subtrees
    while len(level) > 1:
        level = [tree._join(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return SparseMerkleTree(digest, level[0])
