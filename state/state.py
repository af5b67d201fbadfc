"""The chain state: a key-value map committed to by a sparse Merkle tree, plus the tip.

The map is the whole derived state (balances, nodes, names…); each domain module owns a key
prefix. Values are canonical encodings, so the tree root commits to every field. The tip
(height, block hash, timestamp) is not in the map: it is in the header the root goes into.

A ``State`` changes only through :func:`state.transition.commit_block`. The tree is persistent,
so :meth:`State.copy` is cheap in the tree and linear only in the plain dict mirror that makes
reads fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from state.nodeindex import NodeIndex, build_index, node_changes
from state.params import ChainParams
from state.smt import Proof, SparseMerkleTree
from state.types import Hash32

PRE_GENESIS_HEIGHT = -1


class State:
    __slots__ = (
        "_index_shared",
        "_kv",
        "_tree",
        "block_hash",
        "chain_id",
        "height",
        "node_index",
        "params",
        "timestamp",
    )

    def __init__(
        self,
        chain_id: str,
        params: ChainParams,
        genesis_hash: Hash32,
        genesis_time: int,
    ) -> None:
        """The empty state before block 0; block 0 must name ``genesis_hash`` as its parent.
        ``genesis_time`` is block 0's timestamp, unix milliseconds (the state's ``timestamp``
        is always its tip's, in milliseconds)."""
        self.chain_id = chain_id
        self.params = params
        self.height = PRE_GENESIS_HEIGHT
        self.block_hash = genesis_hash
        self.timestamp = genesis_time
        self._kv: dict[bytes, bytes] = {}
        self._tree = SparseMerkleTree()
        self.node_index: NodeIndex | None = None
        """Derived from the node records, built on first use, moved along by :meth:`install`."""
        self._index_shared = False
        """Whether ``node_index`` is shared with a copy (then the next block copies it first)."""

    @classmethod
    def from_snapshot(
        cls,
        chain_id: str,
        params: ChainParams,
        *,
        height: int,
        block_hash: Hash32,
        timestamp: int,
        items: Iterable[tuple[bytes, bytes]],
        tree: SparseMerkleTree | None = None,
    ) -> State:
        """The state a snapshot holds; ``tree``, when given, is its tree already built from
        the same pairs (state sync joins it from verified chunks), else it is built here."""
        state = cls(chain_id, params, block_hash, timestamp)
        state.height = height
        state._kv = dict(items)
        state._tree = SparseMerkleTree(state._tree.digest).update(state._kv) if tree is None else tree
        return state

    @property
    def root(self) -> Hash32:
        return Hash32(self._tree.root)

    @property
    def tree(self) -> SparseMerkleTree:
        return self._tree

    def get(self, key: bytes) -> bytes | None:
        return self._kv.get(key)

    def __len__(self) -> int:
        return len(self._kv)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) pair in key order (for snapshots and exports)."""
        for key in sorted(self._kv):
            yield key, self._kv[key]

    def unordered_items(self) -> Iterable[tuple[bytes, bytes]]:
        """Every (key, value) pair in no defined order (for work that orders them itself)."""
        return self._kv.items()

    def prefixed(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The pairs whose key starts with ``prefix``, in key order, prefix stripped."""
        for key in sorted(k for k in self._kv if k.startswith(prefix)):
            yield key[len(prefix) :], self._kv[key]

    def prove(self, key: bytes) -> tuple[bytes | None, Proof]:
        return self._kv.get(key), self._tree.prove(key)

    def copy(self) -> State:
        other = State(self.chain_id, self.params, self.block_hash, self.timestamp)
        other.height = self.height
        other._kv = dict(self._kv)
        other._tree = self._tree
        other.node_index = self.node_index  # shared until one of the two commits a block
        self._index_shared = other._index_shared = self.node_index is not None
        return other

    def install(
        self,
        *,
        height: int,
        block_hash: Hash32,
        timestamp: int,
        writes: dict[bytes, bytes | None],
        tree: SparseMerkleTree,
    ) -> None:
        """Make a validated block's writes current (or undo blocks: a rollback installs the old
        values); only :mod:`state.transition` and the chain's rollback call this."""
        kv = self._kv
        if self.node_index is not None:
            changes = node_changes(writes.items(), kv.get)
            if changes:
                if self._index_shared:
                    self.node_index, self._index_shared = self.node_index.copy(), False
                self.node_index.apply(changes)
        for key, value in writes.items():
            if value is None:
                kv.pop(key, None)
            else:
                kv[key] = value
        self._tree = tree
        self.height = height
        self.block_hash = block_hash
        self.timestamp = timestamp


def state_index(state: State) -> NodeIndex:
    """``state``'s index of its service nodes (:mod:`state.nodeindex`), built by a scan the first
    time it is asked for, then moved along by :meth:`State.install`."""
    if state.node_index is None:
        state.node_index = build_index(state.get)
    return state.node_index
