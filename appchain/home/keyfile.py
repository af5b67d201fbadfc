"""Secret key files: one line of hex (a 32-byte seed), readable by the owner only.

The same format holds an account key (Ed25519), a node key (Ed25519) and a node's BLS key (its
seed for IETF KeyGen). Files are created with mode 0600 and never overwritten, whole or not at
all, and never in a place :mod:`appchain.home.safefile` refuses (an account key written into a node
home's ``keys/`` could be taken for the node's own); a file that the group or others can read is
refused, as ssh refuses such a private key.
"""

from __future__ import annotations

from pathlib import Path

from appchain.home.safefile import UnsafeTarget, check_target, write_atomically

SEED_SIZE = 32


class KeyFileError(Exception):
    """A key file that cannot be written or read: one line naming the file and the problem."""


def write_seed(path: Path, seed: bytes, *, home_file: bool = False) -> None:
    """Write a new key file; ``home_file``: a node home writing its own node keys."""
    if len(seed) != SEED_SIZE:
        raise ValueError("a key seed is 32 bytes")
    never = "keys are never overwritten"
    try:
        check_target(path, force=False, exists=never, home_file=home_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(
            path, (seed.hex() + "\n").encode(), force=False, mode=0o600, exists=never, home_file=home_file
        )
    except UnsafeTarget as exc:
        raise KeyFileError(str(exc)) from None


def read_seed(path: Path) -> bytes:
    if not path.is_file():
        raise KeyFileError(f"{path} not found")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"{path} is readable by others (mode {mode:o}): chmod 600 {path}")
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except (UnicodeDecodeError, ValueError):
        seed = b""
    if len(seed) != SEED_SIZE:
        raise KeyFileError(f"{path} must hold 32 bytes of hex")
    return seed
