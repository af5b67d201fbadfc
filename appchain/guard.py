"""The lock that keeps one process per home folder.

(The double-sign record itself lives in the node's database, written by
:meth:`appchain.store.BlockStore.remember`, since the store owns the whole keyspace.)

The lock is an exclusive ``flock`` on ``<home>/node.lock``, taken by every command that opens
the home's database (:meth:`appchain.home.Home.lock`) and held while it runs: a second process
on the same home (and so the same keys and database) refuses to start with a clear message
naming the holder. The kernel releases a ``flock`` when its process dies, so a killed node
leaves no stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO

from appchain.chain import ChainError


class HomeInUse(ChainError):
    """Another process holds the home folder: a user error (exit 1), not corruption."""


class HomeLock:
    """An exclusive lock on a home folder for as long as the node or command runs."""

    def __init__(self, home: Path, purpose: str = "") -> None:
        self.path = home / "node.lock"
        self.purpose = purpose
        self._file: TextIO | None = None

    def acquire(self) -> None:
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise HomeInUse(f"{self.path.parent} is in use by {owner}: one process per home folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}" + (f" ({self.purpose})" if self.purpose else ""))
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
