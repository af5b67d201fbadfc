"""Derived in-memory indexes of the service nodes: what each block would otherwise scan for.

A block draws its obligations quorum from the active and decommissioned nodes in key order,
every fourth block its checkpoint quorum from the active nodes, and Pulse its leader (the head of
the reward queue, ``(last_reward_height, registration order, key)``) and validators from the
active nodes. Scanning and decoding every node record for each is O(nodes) per block; a
:class:`NodeIndex` keeps the ordered lists instead, and a draw reads only the members it picks.

It is *derived*: never hashed, never stored, a pure function of the ``node/`` records. It is
built from the state on load (:func:`build_index`, by :func:`state.state.state_index`) and moved
along with every committed block (:meth:`NodeIndex.apply` with the block's node writes,
:meth:`state.state.State.install`). Reads
through an :class:`~state.view.Overlay` see the overlay's own uncommitted node writes patched in,
so a rule sees exactly what a scan of its view would. ``tests/test_node_index.py`` checks it
against a full scan after every block of a random chain.

What a block costs it does not grow with the node count (issue 23). A change learns each written
node's old place from the record it replaces, so the index keeps no per-node table. A committed
block moves its state's own index in place: an empty block takes its producer out of the reward
queue and puts it back at the end (two bisections and a memmove of pointers; copying the 2,000
entries of the queue instead cost 4 us, 2% of the block). A state's copy shares the index
until either of them commits a block (:class:`state.state.State` keeps track). A view never
copies the committed lists unless its writes move a node in or out of them (:func:`view_lists`:
the draws read only the membership lists, never the queue).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from state.noderecords import NodeStatus, ServiceNode
from state.nodes import NODE_PREFIX, decode_node, get_registry
from state.types import NodeKey
from state.view import Overlay

QueueEntry = tuple[int, int, NodeKey]
"""``(last_reward_height, registration_index, node key)``: a reward-queue position."""

NodeChange = tuple[ServiceNode | None, ServiceNode | None]
"""A node record before and after a write (``None``: absent)."""

_UNLISTED = -1


@dataclass
class NodeIndex:
    """Sorted lists of node keys. A committed state's index moves along in place
    (:meth:`apply`); :meth:`patched` makes a new one sharing every list it does not change."""

    active: list[NodeKey] = field(default_factory=list)
    """Active node keys, sorted."""
    decommissioned: list[NodeKey] = field(default_factory=list)
    """Decommissioned node keys, sorted."""
    listed: list[NodeKey] = field(default_factory=list)
    """The active and the decommissioned node keys together, sorted (what obligations workers
    are drawn from)."""
    queue: list[QueueEntry] = field(default_factory=list)
    """Active nodes in reward-queue order: the head is the next round-0 producer."""

    def patched(self, changes: Mapping[bytes, NodeChange]) -> NodeIndex:
        """This index with ``changes`` (node key → its record before and after) applied, as a
        new index; the records before must be the ones this index was derived from."""
        return _Patch(self, copy=True).apply(changes, queue=True)

    def apply(self, changes: Mapping[bytes, NodeChange]) -> None:
        """Apply ``changes`` to this index itself (its lists must be its own)."""
        _Patch(self, copy=False).apply(changes, queue=True)

    def copy(self) -> NodeIndex:
        """An index with lists of its own, equal to this one."""
        return NodeIndex(list(self.active), list(self.decommissioned), list(self.listed), list(self.queue))


class NodeLists(NamedTuple):
    """What the quorum draws read of the index (:func:`view_lists`)."""

    active: list[NodeKey]
    decommissioned: list[NodeKey]
    listed: list[NodeKey]


class _Patch:
    """Applies changes to an index: to a copy whose lists are copied the first time a change
    writes to them (``copy``), or to the index itself."""

    __slots__ = ("_copied", "index")

    def __init__(self, base: NodeIndex, *, copy: bool) -> None:
        self.index = NodeIndex(base.active, base.decommissioned, base.listed, base.queue) if copy else base
        self._copied: set[str] | None = set() if copy else None

    def apply(self, changes: Mapping[bytes, NodeChange], *, queue: bool) -> NodeIndex:
        """Apply ``changes`` (the reward queue too, when ``queue``); the index patched."""
        for key, (before, after) in changes.items():
            node_key = NodeKey(key)
            old_status, old_entry = _place(node_key, before)
            new_status, new_entry = _place(node_key, after)
            if old_status != new_status:
                if old_status != _UNLISTED:
                    _remove(self._members(old_status), node_key)
                    _remove(self._listed(), node_key)
                if new_status != _UNLISTED:
                    bisect.insort(self._members(new_status), node_key)
                    bisect.insort(self._listed(), node_key)
            if queue and old_entry != new_entry:
                if old_entry is not None:
                    _remove(self._queue(), old_entry)
                if new_entry is not None:
                    bisect.insort(self._queue(), new_entry)
        return self.index

    def _owned(self, name: str) -> bool:
        """Whether the list ``name`` may be written in place yet (and make it so)."""
        if self._copied is None or name in self._copied:
            return True
        self._copied.add(name)
        return False

    def _members(self, status: int) -> list[NodeKey]:
        name = "active" if status == NodeStatus.ACTIVE else "decommissioned"
        if not self._owned(name):
            setattr(self.index, name, list(getattr(self.index, name)))
        keys: list[NodeKey] = getattr(self.index, name)
        return keys

    def _listed(self) -> list[NodeKey]:
        if not self._owned("listed"):
            self.index.listed = list(self.index.listed)
        return self.index.listed

    def _queue(self) -> list[QueueEntry]:
        if not self._owned("queue"):
            self.index.queue = list(self.index.queue)
        return self.index.queue


_Item = TypeVar("_Item", NodeKey, QueueEntry)


def _remove(items: list[_Item], item: _Item) -> None:
    index = bisect.bisect_left(items, item)
    if index == len(items) or items[index] != item:
        raise AssertionError("the node index does not hold what the replaced record says")
    del items[index]


def _place(key: NodeKey, node: ServiceNode | None) -> tuple[int, QueueEntry | None]:
    """Which list ``node`` sits in (its status, or unlisted) and, when active, its queue entry."""
    if node is None:
        return _UNLISTED, None
    if node.status == NodeStatus.ACTIVE:
        return NodeStatus.ACTIVE, (node.last_reward_height, node.registration_index, key)
    if node.status == NodeStatus.DECOMMISSIONED:
        return NodeStatus.DECOMMISSIONED, None
    return _UNLISTED, None


def build_index(get: Callable[[bytes], bytes | None]) -> NodeIndex:
    """The index of a state, by a full scan of its registry (on load)."""
    index = NodeIndex()
    for key in get_registry(Overlay(get)):
        raw = get(NODE_PREFIX + key)
        if raw is None:
            raise AssertionError("the registry names a node that does not exist")
        node_key = NodeKey(key)
        status, entry = _place(node_key, decode_node(raw))
        if status == NodeStatus.ACTIVE:
            index.active.append(node_key)
            index.queue.append(entry)  # type: ignore[arg-type]  # an active node has one
        elif status == NodeStatus.DECOMMISSIONED:
            index.decommissioned.append(node_key)
    index.active.sort()
    index.decommissioned.sort()
    index.listed = sorted(index.active + index.decommissioned)
    index.queue.sort()
    return index


def node_changes(
    writes: Iterable[tuple[bytes, bytes | None]], get_before: Callable[[bytes], bytes | None]
) -> dict[bytes, NodeChange]:
    """The node records among ``writes`` (the last write of a key wins), each with the record
    ``get_before`` holds for it: node key → (before, after), ``None`` for absent."""
    latest: dict[bytes, bytes | None] = {}
    for key, value in writes:
        if key.startswith(NODE_PREFIX):
            latest[key] = value
    changes: dict[bytes, NodeChange] = {}
    for key, value in latest.items():
        raw = get_before(key)
        if raw != value:
            before = None if raw is None else decode_node(raw)
            changes[key[len(NODE_PREFIX) :]] = (before, None if value is None else decode_node(value))
    return changes


def node_lists(view: Overlay) -> tuple[list[NodeKey], list[NodeKey]]:
    """The active and the decommissioned node keys ``view`` holds, each sorted."""
    lists = view_lists(view)
    return lists.active, lists.decommissioned


def view_lists(view: Overlay) -> NodeLists:
    """The sorted node lists as ``view`` sees them: :func:`view_index` without the reward queue,
    and without copying a committed list unless the view's writes move a node in or out of it."""
    base: NodeIndex | None = view.index
    if base is None:
        index = build_index(view.get)
    else:
        changes = node_changes(view.all_writes(), view.get_committed)
        index = _Patch(base, copy=True).apply(changes, queue=False)
    return NodeLists(index.active, index.decommissioned, index.listed)


def view_index(view: Overlay) -> NodeIndex:
    """The index as ``view`` sees it: the committed index with the view's uncommitted node writes
    patched in, or, for a view not made over an indexed state, built by a scan of the view."""
    base: NodeIndex | None = view.index
    if base is None:
        return build_index(view.get)
    return base.patched(node_changes(view.all_writes(), view.get_committed))
