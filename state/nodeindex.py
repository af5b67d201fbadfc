"""Derived in-memory indexes of the service nodes: what each block would otherwise scan for.

A block draws its obligations quorum from the active and decommissioned nodes in key order,
every fourth block its checkpoint quorum from the active nodes, and Pulse its leader (the head of
the reward queue, ``(last_reward_height, registration order, key)``) and validators from the
active nodes. Scanning and decoding every node record for each is O(nodes) per block; a
:class:`NodeIndex` keeps the three ordered lists instead.

It is *derived*: never hashed, never stored, a pure function of the ``node/`` records. It is
built from the state on load (:func:`build_index`, by :func:`state.state.state_index`) and moved
along with every committed block (:meth:`NodeIndex.patched` with the block's node writes,
:meth:`state.state.State.install`). Reads
through an :class:`~state.view.Overlay` see the overlay's own uncommitted node writes patched in,
so a rule sees exactly what a scan of its view would. ``tests/test_node_index.py`` checks it
against a full scan after every block of a random chain.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from state.noderecords import NodeStatus, ServiceNode
from state.nodes import NODE_PREFIX, decode_node, get_registry, iter_nodes
from state.types import NodeKey
from state.view import Overlay

QueueEntry = tuple[int, int, NodeKey]
"""``(last_reward_height, registration_index, node key)``: a reward-queue position."""


@dataclass(frozen=True)
class _Entry:
    status: int
    queue: QueueEntry


@dataclass
class NodeIndex:
    entries: dict[bytes, _Entry] = field(default_factory=dict)
    active: list[NodeKey] = field(default_factory=list)
    """Active node keys, sorted."""
    decommissioned: list[NodeKey] = field(default_factory=list)
    """Decommissioned node keys, sorted."""
    queue: list[QueueEntry] = field(default_factory=list)
    """Active nodes in reward-queue order: the head is the next round-0 producer."""

    def patched(self, changes: Mapping[bytes, ServiceNode | None]) -> NodeIndex:
        """This index with ``changes`` (node key → new record, ``None``: removed) applied."""
        if not changes:
            return self
        entries = dict(self.entries)
        active, decommissioned, queue = list(self.active), list(self.decommissioned), list(self.queue)
        for key, node in changes.items():
            old = entries.pop(key, None)
            if old is not None:
                _remove(active if old.status == NodeStatus.ACTIVE else decommissioned, key, old.status)
                if old.status == NodeStatus.ACTIVE:
                    del queue[bisect.bisect_left(queue, old.queue)]
            if node is None:
                continue
            node_key = NodeKey(key)
            entry = _Entry(node.status, (node.last_reward_height, node.registration_index, node_key))
            entries[key] = entry
            if node.status == NodeStatus.ACTIVE:
                bisect.insort(active, node_key)
                bisect.insort(queue, entry.queue)
            elif node.status == NodeStatus.DECOMMISSIONED:
                bisect.insort(decommissioned, node_key)
        return NodeIndex(entries, active, decommissioned, queue)


def _remove(keys: list[NodeKey], key: bytes, status: int) -> None:
    if status not in (NodeStatus.ACTIVE, NodeStatus.DECOMMISSIONED):
        return
    del keys[bisect.bisect_left(keys, key)]


def build_index(get: Callable[[bytes], bytes | None]) -> NodeIndex:
    """The index of a state, by a full scan of its registry (on load)."""
    view = Overlay(get)
    changes: dict[bytes, ServiceNode | None] = {}
    for key in get_registry(view):
        raw = get(NODE_PREFIX + key)
        if raw is None:
            raise AssertionError("the registry names a node that does not exist")
        changes[key] = decode_node(raw)
    return NodeIndex().patched(changes)


def node_changes(writes: Iterable[tuple[bytes, bytes | None]]) -> dict[bytes, ServiceNode | None]:
    """The node records among ``writes`` (key → record, ``None``: deleted)."""
    changes: dict[bytes, ServiceNode | None] = {}
    for key, value in writes:
        if key.startswith(NODE_PREFIX):
            changes[key[len(NODE_PREFIX) :]] = None if value is None else decode_node(value)
    return changes


def node_lists(view: Overlay) -> tuple[list[NodeKey], list[NodeKey]]:
    """The active and the decommissioned node keys ``view`` holds, each sorted."""
    index = view_index(view)
    if index is not None:
        return index.active, index.decommissioned
    active, decommissioned = [], []
    for key, node in iter_nodes(view):
        if node.status == NodeStatus.ACTIVE:
            active.append(key)
        elif node.status == NodeStatus.DECOMMISSIONED:
            decommissioned.append(key)
    return active, decommissioned


def view_index(view: Overlay) -> NodeIndex | None:
    """The index as ``view`` sees it (its uncommitted node writes patched in), or ``None`` when
    the view was not made over an indexed state (callers then scan)."""
    base: NodeIndex | None = view.index
    if base is None:
        return None
    return base.patched(node_changes(view.all_writes()))
