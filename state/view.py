"""A write overlay over the state map: how a transition reads and writes without committing.

``apply_block`` stacks two overlays on the committed map: one for the block and one per event.
An event's writes (and effects) reach the block overlay only when the event succeeds, and the
block's reach the committed map (and the tree) only when the whole block is valid. So a failing
event or block leaves every layer below it exactly as it was, without any undo logic in the
rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[bytes], "bytes | None"]


class Overlay:
    """Pending writes over a read function; ``None`` in ``writes`` marks a deletion.

    ``effects`` collects what the writes mean for consumers; ``active_set_changed`` records that
    a node entered or left the active set (the end of the block then recomputes swarms).
    """

    __slots__ = ("_base", "active_set_changed", "effects", "writes")

    def __init__(self, base: Getter) -> None:
        self._base = base
        self.writes: dict[bytes, bytes | None] = {}
        self.effects: list[Any] = []
        self.active_set_changed = False

    def get(self, key: bytes) -> bytes | None:
        writes = self.writes
        if key in writes:
            return writes[key]
        return self._base(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def emit(self, effect: Any) -> None:
        self.effects.append(effect)

    def child(self) -> Overlay:
        return Overlay(self.get)

    def merge(self, child: Overlay) -> None:
        """Take over a successful child's writes and effects."""
        self.writes.update(child.writes)
        self.effects.extend(child.effects)
        self.active_set_changed = self.active_set_changed or child.active_set_changed
