"""The double-sign guard: no signature leaves the node for a slot it already signed differently.

A *slot* is ``(height, round, stage)`` — a Pulse stage, a checkpoint vote (stage
``CHECKPOINT``) or an obligations vote (stage ``VOTE`` with the worker index in ``round``). Before
signing, :class:`GuardedSigner` asks its :class:`SlotRecord` to remember the payload's hash for
the slot; the record must make that durable before it answers. Signing the *same* payload again
is allowed (a retry after a crash must not stall the round); a *different* payload for a
recorded slot is refused, also after a restart, since the record outlives the process.

The guard holds for every slot, the first included (cometbft #5435 was a check that checked
nothing when there was a single validator): the tests pin the edge cases.
"""

from __future__ import annotations

from typing import Protocol

from state.crypto import ed25519
from state.hashing import hash_tagged
from state.types import Ed25519Signature

CHECKPOINT = 100
VOTE = 101


class DoubleSign(Exception):
    """Refused: this slot was signed with another payload."""


class SlotRecord(Protocol):
    def remember(self, height: int, round_: int, stage: int, digest: bytes) -> bytes:
        """Durably store ``digest`` for the slot unless one is there; return the stored one."""
        ...


class MemorySlotRecord:
    """A record that lives as long as the process (simulations; never for a real node)."""

    def __init__(self) -> None:
        self.slots: dict[tuple[int, int, int], bytes] = {}

    def remember(self, height: int, round_: int, stage: int, digest: bytes) -> bytes:
        return self.slots.setdefault((height, round_, stage), digest)


class GuardedSigner:
    """Signs with a node key only what the slot record allows."""

    def __init__(self, key: ed25519.SigningKey, record: SlotRecord) -> None:
        self.key = key
        self.public_key = key.public_key
        self.record = record

    def sign(self, height: int, round_: int, stage: int, payload: bytes) -> Ed25519Signature:
        digest = hash_tagged("signed payload", payload)
        stored = self.record.remember(height, round_, stage, digest)
        if stored != digest:
            raise DoubleSign(
                f"already signed another payload at height {height}, round {round_}, stage {stage}"
            )
        return self.key.sign(payload)
