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

    __slots__ = ("_base", "_parent", "active_set_changed", "effects", "index", "writes")

    def __init__(self, base: Getter, *, index: Any = None, parent: Overlay | None = None) -> None:
        self._base = base
        self._parent = parent
        self.index = index
        """The derived node index of the committed state below (:mod:`state.nodeindex`), if any."""
        self.writes: dict[bytes, bytes | None] = {}
        self.effects: list[Any] = []
        self.active_set_changed = False

    def get(self, key: bytes) -> bytes | None:
        writes = self.writes
        if key in writes:
            return writes[key]
        return self._base(key)

    def get_committed(self, key: bytes) -> bytes | None:
        """``key`` as the map below every overlay holds it (what ``index`` was derived from)."""
        layer = self
        while layer._parent is not None:
            layer = layer._parent
        return layer._base(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def emit(self, effect: Any) -> None:
        self.effects.append(effect)

    def child(self) -> Overlay:
        return Overlay(self.get, index=self.index, parent=self)

    def all_writes(self) -> list[tuple[bytes, bytes | None]]:
        """Every pending write of this overlay and the overlays it stacks on (the latest wins
        when read in order), down to the committed map."""
        chain: list[Overlay] = []
        layer: Overlay | None = self
        while layer is not None:
            chain.append(layer)
            layer = layer._parent
        return [item for layer in reversed(chain) for item in layer.writes.items()]

    def merge(self, child: Overlay) -> None:
        """Take over a successful child's writes and effects."""
        self.writes.update(child.writes)
        self.effects.extend(child.effects)
        self.active_set_changed = self.active_set_changed or child.active_set_changed
