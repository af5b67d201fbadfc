"""Secret key files: one line of hex (a 32-byte seed), readable by the owner only.

The same format holds an account key (Ed25519), a node key (Ed25519) and a node's BLS key (its
seed for IETF KeyGen). Files are created with mode 0600 and never overwritten; a file that the
group or others can read is refused, as ssh refuses such a private key.
"""

from __future__ import annotations

import os
from pathlib import Path

SEED_SIZE = 32


class KeyFileError(Exception):
    """A key file that cannot be written or read: one line naming the file and the problem."""


def write_seed(path: Path, seed: bytes) -> None:
    if len(seed) != SEED_SIZE:
        raise ValueError("a key seed is 32 bytes")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists: keys are never overwritten") from None
    with os.fdopen(descriptor, "w") as out:
        out.write(seed.hex() + "\n")


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
