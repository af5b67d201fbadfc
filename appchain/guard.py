"""The node's durable double-sign record, and the lock that keeps one node per home folder.

The record lives in the node's LevelDB under ``g/<height 8><round 2><stage 2>`` (see
:mod:`appchain.store`): :meth:`LevelDBSlotRecord.remember` writes with ``sync=True`` before it
answers, so a signature is only ever produced after its slot is on disk.

The lock is an exclusive ``flock`` on ``<home>/node.lock``, held while the node runs: a second
process on the same home (and so the same keys) refuses to start with a clear message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO

import plyvel

from appchain.chain import ChainError

GUARD_PREFIX = b"g/"


class LevelDBSlotRecord:
    def __init__(self, db: plyvel.DB) -> None:
        self._db = db

    def remember(self, height: int, round_: int, stage: int, digest: bytes) -> bytes:
        key = GUARD_PREFIX + height.to_bytes(8, "big") + round_.to_bytes(2, "big") + stage.to_bytes(2, "big")
        stored: bytes | None = self._db.get(key)
        if stored is not None:
            return stored
        self._db.put(key, digest, sync=True)
        return digest

    def prune_below(self, height: int) -> None:
        """Forget slots below ``height`` (final heights can never be signed again)."""
        with self._db.write_batch(sync=True) as batch:
            for key in self._db.iterator(
                start=GUARD_PREFIX, stop=GUARD_PREFIX + height.to_bytes(8, "big"), include_value=False
            ):
                batch.delete(key)


class HomeLock:
    """An exclusive lock on a home folder for as long as the node runs."""

    def __init__(self, home: Path) -> None:
        self.path = home / "node.lock"
        self._file: TextIO | None = None

    def acquire(self) -> None:
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise ChainError(f"{self.path.parent} is in use by {owner}: one node per home folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> HomeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
