"""A node's history, Jepsen-style: what it finalized and what it signed, as it happened.

Each running node appends JSON lines to ``<home>/data/history.jsonl``:

- ``{"at": 1764470000.123, "final": 96, "hash": "…", "root": "…"}`` when a block becomes final at
  this node (certified: it can never change);
- ``{"at": …, "signed": [height, round, stage], "digest": "…"}`` each time it signs a payload (a
  Pulse stage, a checkpoint vote or an obligations vote; the digest is of the payload signed).

Lines are flushed as they are written, so a process killed with SIGKILL loses none it wrote (a
power loss may lose the last ones; this is a record for checking runs, not a source of truth).
:mod:`appchain.lab.checker` reads the histories of every node of a run and reports what must never
happen: two final blocks at one height, an honest node signing two payloads for one slot,
diverging roots at one final block, and the longest stall of finality.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TextIO

from consensus.guard import SlotRecord

HISTORY = Path("data") / "history.jsonl"
"""Where a node's history is, in its home."""


def history_path(home: Path) -> Path:
    """The history file of the node whose home is ``home``."""
    return home / HISTORY


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8")

    def _write(self, entry: dict[str, object]) -> None:
        self._file.write(json.dumps({"at": round(time.time(), 3), **entry}, separators=(",", ":")) + "\n")
        self._file.flush()

    def final(self, height: int, block_hash: bytes, root: bytes) -> None:
        self._write({"final": height, "hash": block_hash.hex(), "root": root.hex()})

    def signed(self, height: int, round_: int, stage: int, digest: bytes) -> None:
        self._write({"signed": [height, round_, stage], "digest": digest.hex()})

    def close(self) -> None:
        self._file.close()


class JournaledSlots:
    """A :class:`~consensus.guard.SlotRecord` that also journals every slot it lets be signed."""

    def __init__(self, record: SlotRecord, journal: Journal) -> None:
        self.record = record
        self.journal = journal

    def remember(self, height: int, round_: int, stage: int, digest: bytes) -> bytes:
        stored = self.record.remember(height, round_, stage, digest)
        if stored == digest:  # the guard signs it
            self.journal.signed(height, round_, stage, digest)
        return stored
