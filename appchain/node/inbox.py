"""Frames from peers waiting for the node's core loop: bounded per peer, handled in turns.

The host's read tasks hand every frame to the node (:meth:`appchain.node.node.Node._on_frame`), which
queues it here; the core loop takes them out a slice at a time. What waits is work a peer has
put on this node, so it is bounded per peer as well as in total. Frames are told apart by their
first bytes, before anything is decoded (:func:`frame_kind`):

- *transactions* (``tx``, and ``txs``: a batch, counted as one frame against the transaction
  bounds and by its size against the byte bounds): a signature check each, and they can wait;
- *requests* answered from the store or memory (block sync, state sync, a gossip
  :class:`~consensus.messages.Want`, a :class:`~consensus.messages.ProofsRequest`): a peer has
  at most ``peer_requests`` waiting (an honest one has one block-sync request or four chunk requests out
  at a time);
- *consensus*: everything else (Pulse messages, blocks, votes, certificates, proofs, answers to
  our own requests), and garbage, which costs its sender points when it is decoded.

Bounds (:class:`InboxLimits`): per peer, ``peer_frames`` consensus frames and requests,
``peer_transactions`` transactions and ``peer_bytes`` bytes of everything; in total, ``frames``,
``transactions`` and ``total_bytes``. A frame over a bound is dropped, not an older one, and counted
by reason in :attr:`Inbox.dropped`. The sender is not penalized for it: an honest peer relaying a
burst sends faster than a loaded node handles, and gossip arrives from other peers too.

Handled in turns: consensus frames and requests before any transaction (a flood of transactions
delays them, never a Pulse round); within each, one frame from each peer that has frames waiting,
peer after peer (round robin). A flooding peer's backlog therefore delays another peer's frame by
at most one of its own frames per turn, not by all of them. :meth:`Inbox.forget` drops what a
banned peer left waiting, so none of it is checked.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

import msgspec

from consensus.messages import (
    CheckpointsRequest,
    ChunkRequest,
    HeadersRequest,
    ProofsRequest,
    SnapshotsRequest,
    SyncRequest,
    TxBatch,
    TxMessage,
    Want,
)
from state.encoding import Record
from state.types import NodeKey

Frame = tuple[NodeKey, bytes, bytes]
"""A frame waiting for the core: sender, payload, and the payload's hash."""


class Kind(Enum):
    CONSENSUS = "consensus"
    REQUEST = "request"
    TRANSACTION = "transaction"


def tag_prefix(record: type[Record]) -> bytes:
    """How every encoding of a tagged record starts: its msgpack array header, then its tag."""
    fields = len(record.__struct_fields__) + 1  # the tag is the array's first element
    assert fields < 16, "a fixarray header"
    return bytes([0x90 | fields]) + msgspec.msgpack.encode(record.__struct_config__.tag)


TX_PREFIX = tag_prefix(TxMessage)
TX_PREFIXES = (TX_PREFIX, tag_prefix(TxBatch))
REQUEST_PREFIXES = tuple(
    tag_prefix(record)
    for record in (
        SyncRequest,
        SnapshotsRequest,
        CheckpointsRequest,
        HeadersRequest,
        ChunkRequest,
        Want,
        ProofsRequest,
    )
)


def frame_kind(payload: bytes) -> Kind:
    """The kind of a frame, by its first bytes (a frame that lies about it fails to decode)."""
    if payload.startswith(TX_PREFIXES):
        return Kind.TRANSACTION
    if payload.startswith(REQUEST_PREFIXES):
        return Kind.REQUEST
    return Kind.CONSENSUS


@dataclass(frozen=True)
class InboxLimits:
    frames: int = 10_000
    """Consensus frames and requests waiting, from every peer."""
    transactions: int = 50_000
    """Transactions waiting, from every peer."""
    total_bytes: int = 256 * 1024 * 1024
    """Bytes of everything waiting, from every peer."""
    peer_frames: int = 2_000
    peer_requests: int = 8
    peer_transactions: int = 10_000
    peer_bytes: int = 64 * 1024 * 1024
    """Per peer: consensus frames and requests, requests alone, transactions, bytes of all."""


@dataclass
class _Load:
    """What one peer has waiting."""

    frames: int = 0
    requests: int = 0
    transactions: int = 0
    size: int = 0

    def add(self, kind: Kind, size: int, sign: int) -> None:
        if kind is Kind.TRANSACTION:
            self.transactions += sign
        else:
            self.frames += sign
            if kind is Kind.REQUEST:
                self.requests += sign
        self.size += sign * size

    def is_empty(self) -> bool:
        return not (self.frames or self.transactions)


_Item = tuple[Frame, Kind]


class _Lane:
    """Frames of one priority: a queue per peer, served one frame per peer in turn."""

    def __init__(self) -> None:
        self.queues: dict[NodeKey, deque[_Item]] = {}
        self.turns: deque[NodeKey] = deque()
        self.count = 0

    def push(self, item: _Item) -> None:
        sender = item[0][0]
        queue = self.queues.get(sender)
        if queue is None:
            queue = self.queues[sender] = deque()
            self.turns.append(sender)
        queue.append(item)
        self.count += 1

    def pop(self) -> _Item:
        sender = self.turns.popleft()
        queue = self.queues[sender]
        item = queue.popleft()
        self.count -= 1
        if queue:
            self.turns.append(sender)
        else:
            del self.queues[sender]
        return item

    def remove(self, sender: NodeKey) -> deque[_Item]:
        queue = self.queues.pop(sender, None)
        if queue is None:
            return deque()
        self.turns.remove(sender)
        self.count -= len(queue)
        return queue


class Inbox:
    def __init__(self, limits: InboxLimits | None = None) -> None:
        self.limits = limits or InboxLimits()
        self.loads: dict[NodeKey, _Load] = {}
        self.size = 0
        self.dropped: dict[str, int] = {}
        """Frames refused, by the bound they would have broken."""
        self._consensus = _Lane()
        self._transactions = _Lane()

    def __len__(self) -> int:
        return self._consensus.count + self._transactions.count

    def offer(self, sender: NodeKey, payload: bytes, digest: bytes) -> str | None:
        """Queue a frame; None if it was, else the bound it would break (it is dropped)."""
        kind = frame_kind(payload)
        load = self.loads.get(sender) or _Load()
        over = self._over(kind, load, len(payload))
        if over is not None:
            self.dropped[over] = self.dropped.get(over, 0) + 1
            return over
        self.loads[sender] = load
        load.add(kind, len(payload), 1)
        self.size += len(payload)
        lane = self._transactions if kind is Kind.TRANSACTION else self._consensus
        lane.push(((sender, payload, digest), kind))
        return None

    def _over(self, kind: Kind, load: _Load, size: int) -> str | None:
        limits = self.limits
        if kind is Kind.TRANSACTION:
            if load.transactions >= limits.peer_transactions:
                return "peer_transactions"
            if self._transactions.count >= limits.transactions:
                return "transactions"
        else:
            if kind is Kind.REQUEST and load.requests >= limits.peer_requests:
                return "peer_requests"
            if load.frames >= limits.peer_frames:
                return "peer_frames"
            if self._consensus.count >= limits.frames:
                return "frames"
        if load.size + size > limits.peer_bytes:
            return "peer_bytes"
        if self.size + size > limits.total_bytes:
            return "total_bytes"
        return None

    def pop(self) -> Frame | None:
        """The next frame to handle: consensus and requests first, each peer in turn."""
        lane = self._consensus if self._consensus.count else self._transactions
        if not lane.count:
            return None
        frame, kind = lane.pop()
        self._unload(frame, kind)
        return frame

    def forget(self, sender: NodeKey) -> int:
        """Drop everything ``sender`` has waiting (it was banned); returns how many frames."""
        items = [*self._consensus.remove(sender), *self._transactions.remove(sender)]
        for frame, kind in items:
            self._unload(frame, kind)
        return len(items)

    def _unload(self, frame: Frame, kind: Kind) -> None:
        sender, payload, _ = frame
        load = self.loads[sender]
        load.add(kind, len(payload), -1)
        self.size -= len(payload)
        if load.is_empty():
            del self.loads[sender]
