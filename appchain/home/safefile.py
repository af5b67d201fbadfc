"""Files the commands write: never over something that is not theirs to replace, never half.

Every command that writes a file the user names (an event export, a genesis and its dev keys, an
account key, the light client's trust file, a testnet folder) goes through this module, so the
rules live in one place:

- **the target is a new name, or an existing regular file the user asked to replace**
  (``--force``). A symbolic link, a folder, a FIFO, a device or a socket is refused even with
  ``--force``: renaming over a link or a device node destroys what the user named instead of
  writing into it, and "success" would be a lie (``/dev/null`` keeps nothing).
- **a node home's own files are never a target**: its ``config.toml``, ``genesis.json``,
  ``node.lock``, ``cert.pem`` and ``key.pem`` (the storage port's TLS pair), anything under its
  ``keys/`` (secret seeds) or ``data/`` (the database). The
  target is resolved first (``..``, symlinked folders), then every folder above it is checked for
  being a home, so ``--out elsewhere/../home/keys/node_ed25519.key`` is caught too. A home is a
  folder holding ``config.toml`` (what :class:`appchain.home.home.Home` reads first) or node key files
  in ``keys/`` (``appchain keys new --node`` makes those before ``init``). The home's own code
  writes these files through :func:`write_atomically` with ``home_file=True``.
- **written whole or not at all**: a fresh temporary file beside the target (a random name,
  created exclusively, so a link planted at a predictable name is never followed), flushed to
  disk, then renamed over the target, and the folder flushed. Without ``--force`` the temporary
  file is hard-linked to the target instead, which fails if a file appeared there meanwhile. A
  failure removes the temporary file.

The checks run again at the end, but callers check first with :func:`check_target`, before any
long work or any request to a node, so a refusal costs nothing.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
LOCK_FILE = "node.lock"
KEYS_FOLDER = "keys"
DATA_FOLDER = "data"
NODE_KEY_FILE = "node_ed25519.key"
BLS_KEY_FILE = "node_bls.key"
CERT_FILE = "cert.pem"
TLS_KEY_FILE = "key.pem"

_PROTECTED_FILES = {
    CONFIG_FILE: "configuration",
    GENESIS_FILE: "genesis file",
    LOCK_FILE: "lock file",
    CERT_FILE: "storage port's TLS certificate",
    TLS_KEY_FILE: "storage port's TLS key",
}
_PROTECTED_FOLDERS = {KEYS_FOLDER: "keys folder", DATA_FOLDER: "database folder"}

NEVER_OVERWRITTEN = "it is never overwritten"
PASS_FORCE = "pass --force to overwrite it"


class UnsafeTarget(Exception):
    """A file a command must not write: one line naming it and why."""


def is_home(folder: Path) -> bool:
    """Whether ``folder`` is a node home: it holds ``config.toml``, or node keys in ``keys/``."""
    keys = folder / KEYS_FOLDER
    return (
        (folder / CONFIG_FILE).is_file() or (keys / NODE_KEY_FILE).exists() or (keys / BLS_KEY_FILE).exists()
    )


def find_protected(path: Path) -> str | None:
    """Why ``path`` (once resolved) is a node home's own file, or None when it is not."""
    target = Path(os.path.abspath(path)).resolve()
    for folder in target.parents:
        if not is_home(folder):
            continue
        parts = target.relative_to(folder).parts
        what = _PROTECTED_FOLDERS.get(parts[0])
        if what is None and len(parts) == 1:
            what = _PROTECTED_FILES.get(parts[0])
        if what is not None:
            shown = "" if target == Path(os.path.abspath(path)) else f" (it is {target})"
            return f"{path}{shown} is in the node home {folder} (its {what}): no command writes there"
    return None


def check_target(path: Path, *, force: bool, exists: str = PASS_FORCE, home_file: bool = False) -> None:
    """Refuse ``path`` as the target of a write unless it is a new name, or (``force``) a regular
    file; and unless ``home_file``, refuse a home's own files. ``exists`` says what to do about
    an existing file when ``force`` is false."""
    if not home_file:
        reason = find_protected(path)
        if reason is not None:
            raise UnsafeTarget(reason)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise UnsafeTarget(f"{path}: a folder on the way is a file") from None
    if stat.S_ISLNK(mode):
        raise UnsafeTarget(f"{path} is a symbolic link: name the file itself, not a link to it")
    if stat.S_ISDIR(mode):
        raise UnsafeTarget(f"{path} is a folder: name the file to write")
    if not stat.S_ISREG(mode):
        raise UnsafeTarget(f"{path} is not a regular file (a device, FIFO or socket): it is never replaced")
    if not force:
        raise UnsafeTarget(f"{path} already exists: {exists}")


def check_folder_target(path: Path) -> None:
    """Refuse ``path`` as a folder to create and fill (a testnet, a new home): it must be a new
    name or a real folder (not a link to one), and not inside a node home's own files."""
    reason = find_protected(path)
    if reason is not None:
        raise UnsafeTarget(reason)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise UnsafeTarget(f"{path}: a folder on the way is a file") from None
    if stat.S_ISLNK(mode):
        raise UnsafeTarget(f"{path} is a symbolic link: name the folder itself")
    if not stat.S_ISDIR(mode):
        raise UnsafeTarget(f"{path} is not a folder")


@contextmanager
def open_atomically(
    path: Path,
    *,
    force: bool,
    mode: int = 0o644,
    exists: str = PASS_FORCE,
    home_file: bool = False,
) -> Iterator[BinaryIO]:
    """A file to write ``path``'s new content into; it replaces ``path`` when the block ends
    without an error (see the module's rules), and is removed when it does not."""
    check_target(path, force=force, exists=exists, home_file=home_file)
    folder = path.parent
    temporary, descriptor = _create_temporary(folder, path.name, mode)
    try:
        with os.fdopen(descriptor, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        check_target(path, force=force, exists=exists, home_file=home_file)
        if force:
            os.replace(temporary, path)
        else:
            _link_new(temporary, path, exists)
        _sync_folder(folder)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(
    path: Path,
    data: bytes,
    *,
    force: bool,
    mode: int = 0o644,
    exists: str = PASS_FORCE,
    home_file: bool = False,
) -> None:
    """Write ``data`` to ``path`` whole or not at all (see :func:`open_atomically`)."""
    with open_atomically(path, force=force, mode=mode, exists=exists, home_file=home_file) as out:
        out.write(data)


def _create_temporary(folder: Path, name: str, mode: int) -> tuple[Path, int]:
    for _ in range(8):
        temporary = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except FileExistsError:
            continue
        return temporary, descriptor
    raise UnsafeTarget(f"cannot create a temporary file in {folder}")


def _link_new(temporary: Path, path: Path, exists: str) -> None:
    """Give the written file its name, failing if that name appeared meanwhile."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise UnsafeTarget(f"{path} already exists: {exists}") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        os.replace(temporary, path)  # a file system without hard links: checked just above


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entry of the renamed file, so the rename survives a power loss."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
