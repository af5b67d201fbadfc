"""The locks that keep one process per home folder, and the operator's read-only tools out of a
starting node's way.

(The double-sign record itself lives in the node's database, written by
:meth:`appchain.home.store.BlockStore.remember`, since the store owns the whole keyspace.)

Two ``flock``-ed files in the home; the kernel releases both when their process dies, so a killed
node leaves no stale lock behind:

- ``node.lock``, the home's lock: held for as long as a process uses the database. The node and
  every command that writes or exports (``replay``, ``rollback``, ``import-events``, …) hold it
  exclusively and write ``process N (purpose)`` in it; a read-only command (``status``) holds it
  shared, so several may read at once (LevelDB still admits one opener at a time: a reader that
  finds the database open by another waits for it, see :func:`appchain.cli.node.cmd_status`).
- ``start.lock``, the gate: a node holds it exclusively from the moment it begins to start until
  it exits, and writes its description there. A command takes it shared only for the moment it
  takes ``node.lock``; finding it held means a node is starting or running (:attr:`HomeInUse.by_node`),
  and the command keeps out (``status`` asks the node's admin endpoint instead).

So a node that starts while ``status`` is polled every 50 ms cannot be starved: once it holds the
gate no new command enters, and it waits (:meth:`HomeLock.try_acquire_for_node`, at most
:data:`appchain.node.node.READERS_WAIT`) for the read-only commands already inside to finish. A command
inside that writes is a real conflict: the node refuses at once, naming it.

Why the node waits rather than ``status`` never taking the lock: ``status`` on a stopped node must
read the database, and LevelDB admits one opener per database, so a reader that opens it while a
node starts would make the node's own open fail. The lock is what tells them apart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO

from appchain.home.chain import ChainError

LOCK_FILE = "node.lock"
GATE_FILE = "start.lock"


class HomeInUse(ChainError):
    """Another process holds the home folder: a user error (exit 1), not corruption."""

    def __init__(self, message: str, *, holder: str = "", by_node: bool = False) -> None:
        super().__init__(message)
        self.holder = holder
        """``process N (purpose)``, as the holder wrote it (empty for shared holders)."""
        self.by_node = by_node
        """True when a node holds the home (starting or running): its admin endpoint may answer."""


def _open(path: Path) -> TextIO:
    """``path`` for reading and writing in place, created if missing (not ``a+``: appending
    would ignore the seek before a description is written)."""
    return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+")


def _try_flock(handle: TextIO, operation: int) -> bool:
    try:
        fcntl.flock(handle, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read(handle: TextIO) -> str:
    handle.seek(0)
    return handle.read().strip() or "another process"


def _describe(handle: TextIO, text: str) -> None:
    """Write ``text`` over the file (then truncate, so a reader sees the old text or the new)."""
    handle.seek(0)
    handle.write(text)
    handle.truncate()
    handle.flush()


class HomeLock:
    """The home's lock for one process: exclusive (``shared=False``) or read-only (``shared=True``)
    for a command, or exclusive for the node (:meth:`try_acquire_for_node`)."""

    def __init__(self, home: Path, purpose: str = "", *, shared: bool = False) -> None:
        self.path = home / LOCK_FILE
        self.gate_path = home / GATE_FILE
        self.purpose = purpose
        self.shared = shared
        self.description = f"process {os.getpid()}" + (f" ({purpose})" if purpose else "")
        self._file: TextIO | None = None
        self._gate: TextIO | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    @property
    def holds_gate(self) -> bool:
        return self._gate is not None

    def acquire(self) -> None:
        """For a command: take the home now or raise :class:`HomeInUse` naming who holds it."""
        gate = _open(self.gate_path)
        try:
            if not _try_flock(gate, fcntl.LOCK_SH):
                raise self._in_use(_read(gate), by_node=True)
            handle = _open(self.path)
            if not _try_flock(handle, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX):
                exclusive = self._exclusive_holder(handle)
                handle.close()
                raise self._in_use(exclusive or "read-only commands (status)", by_node=False)
        finally:
            gate.close()  # the gate only guards the entry
        if not self.shared:
            _describe(handle, self.description)
        self._file = handle

    def try_acquire_for_node(self) -> bool:
        """For the node, one attempt: True once it holds the home; False while it must wait for
        commands inside to leave (read-only ones holding ``node.lock``, or one taking it this very
        moment). Raises :class:`HomeInUse` at once when a command that writes, or another node,
        holds ``node.lock``. Between attempts the node keeps the gate, so no command enters."""
        if self._gate is None:
            gate = _open(self.gate_path)
            if not _try_flock(gate, fcntl.LOCK_EX):
                gate.close()  # a command between its two steps, or another node waiting
                holder = self._exclusive_holder()
                if holder is not None:
                    raise self._in_use(holder, by_node=True)
                return False
            _describe(gate, self.description)
            self._gate = gate
        handle = _open(self.path)
        if _try_flock(handle, fcntl.LOCK_EX):
            _describe(handle, self.description)
            self._file = handle
            return True
        holder = self._exclusive_holder(handle)
        handle.close()
        if holder is not None:
            self.release()
            raise self._in_use(holder, by_node=False)
        return False  # read-only commands inside: they finish, and no new one enters

    def gate_holder(self) -> str:
        """Who holds the gate (a node waiting to start), for a message after waiting too long."""
        with _open(self.gate_path) as gate:
            return _read(gate)

    def _exclusive_holder(self, handle: TextIO | None = None) -> str | None:
        """The description of an exclusive holder of ``node.lock``; None when there is none (it is
        free or held shared). Probed with a shared lock of our own, released at once."""
        probe = _open(self.path) if handle is None else handle
        try:
            if _try_flock(probe, fcntl.LOCK_SH):
                fcntl.flock(probe, fcntl.LOCK_UN)
                return None
            return _read(probe)
        finally:
            if handle is None:
                probe.close()

    def _in_use(self, holder: str, *, by_node: bool) -> HomeInUse:
        return HomeInUse(
            f"{self.path.parent} is in use by {holder}: one process per home folder",
            holder=holder,
            by_node=by_node,
        )

    def release(self) -> None:
        for handle in (self._file, self._gate):
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
        self._file = self._gate = None

    def __enter__(self) -> HomeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
