"""The double-sign guard's record in a running node: written off the event loop.

The guard (:mod:`consensus.guard`) asks its record to remember a slot's payload hash before it
signs, and the record must be durable before the signature can leave the node. A synced LevelDB
write per Pulse signature on the event loop held the node's whole loop for an fsync each time
(~11 % of the wall samples of a loaded devnet node). Here the two halves are apart:

- :meth:`DeferredSlots.remember` answers at once from memory and the store: a slot already held
  (waiting to be written, or on disk) keeps its first payload, so a second payload is refused
  exactly as before, in this process and, once written, after a restart;
- the driver holds every action the core returns while a slot is waiting
  (:meth:`appchain.node.node.Node.carry_out`), writes the waiting slots in one synced batch in a
  worker thread (:meth:`DeferredSlots.write`), and only then releases the held actions, in order.

So no signature leaves the node before its slot is on disk: a crash before the write loses a
signature nobody saw, and the node may sign that slot again after the restart, which no one can
tell from a first signature. Without a writer (a node driven piece by piece in tests)
:meth:`DeferredSlots.remember` is asked to write at once (``write_at_once``).
"""

from __future__ import annotations

from typing import Protocol

Slot = tuple[int, int, int]
"""Height, round, stage (see :mod:`consensus.guard`)."""


class SlotStore(Protocol):
    """Where slots are made durable: :class:`appchain.home.store.BlockStore`."""

    def get_slot(self, height: int, round_: int, stage: int) -> bytes | None: ...

    def put_slots(self, slots: dict[Slot, bytes]) -> None:
        """Write every slot in one synced batch (a slot already there keeps its value)."""
        ...


class DeferredSlots:
    """A :class:`~consensus.guard.SlotRecord` whose new slots wait in memory for :meth:`write`."""

    def __init__(self, store: SlotStore) -> None:
        self.store = store
        self.pending: dict[Slot, bytes] = {}
        """Slots remembered and not yet handed to :meth:`write`."""
        self.writing: dict[Slot, bytes] = {}
        """Slots being written by :meth:`write` (still answered from memory)."""
        self.write_at_once = True
        """True while no writer runs: :meth:`remember` writes each new slot itself."""

    def remember(self, height: int, round_: int, stage: int, digest: bytes) -> bytes:
        slot = (height, round_, stage)
        stored = self.pending.get(slot) or self.writing.get(slot) or self.store.get_slot(*slot)
        if stored is not None:
            return stored
        if self.write_at_once:
            self.store.put_slots({slot: digest})
        else:
            self.pending[slot] = digest
        return digest

    def take(self) -> dict[Slot, bytes]:
        """The waiting slots, handed to a writer (they stay visible until :meth:`written`)."""
        taken, self.pending = self.pending, {}
        self.writing.update(taken)
        return taken

    def write(self, slots: dict[Slot, bytes]) -> None:
        """Write ``slots`` durably (blocking: the driver runs it in a worker thread)."""
        self.store.put_slots(slots)

    def written(self, slots: dict[Slot, bytes]) -> None:
        for slot in slots:
            self.writing.pop(slot, None)
