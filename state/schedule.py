"""Work due at a future height: nodes becoming payable, node exits, stake returns, name expiries.

Key: ``due/<height>`` → a tuple of :class:`DueItem` in the order they were scheduled. The start
of each block reads only its own height's key (no scan), runs the items and deletes the key.
An item may have gone stale (a name renewed, a node already gone): its handler checks and
skips it.
"""

from __future__ import annotations

from state.encoding import Decoder, Record, encode
from state.view import Overlay

DUE_PREFIX = b"due/"
EXIT = "exit"
RETURN_STAKE = "return"
EXPIRE_NAME = "expire"
BECOME_PAYABLE = "payable"


class DueItem(Record, frozen=True):
    kind: str
    key: bytes


_items = Decoder(tuple[DueItem, ...])


def due_key(height: int) -> bytes:
    return DUE_PREFIX + height.to_bytes(8, "big")


def schedule(view: Overlay, height: int, kind: str, key: bytes) -> None:
    current = get_due(view, height)
    view.put(due_key(height), encode((*current, DueItem(kind, key))))


def get_due(view: Overlay, height: int) -> tuple[DueItem, ...]:
    raw = view.get(due_key(height))
    return () if raw is None else _items.decode(raw)


def take_due(view: Overlay, height: int) -> tuple[DueItem, ...]:
    items = get_due(view, height)
    if items:
        view.delete(due_key(height))
    return items
