"""A binary Merkle root over an ordered list of hashes (the block's events root).

``root([]) = H_root(b"")``; ``root([h]) = H_root(0x00 || h)``; otherwise the list splits at the
largest power of two below its length (RFC 6962 shape) and ``H_root(0x01 || left || right)``.
The shape lets a light client later prove that one event is in a block with a log-sized path.
"""

from __future__ import annotations

from collections.abc import Sequence

from state.hashing import Domain, tagged_hasher
from state.types import Hash32

_hash = tagged_hasher(Domain.EVENTS_ROOT)


def merkle_root(leaves: Sequence[bytes]) -> Hash32:
    """The root over ``leaves`` in order."""
    if not leaves:
        return _hash(b"")
    return _subtree(leaves, 0, len(leaves))


def _subtree(leaves: Sequence[bytes], lo: int, hi: int) -> Hash32:
    count = hi - lo
    if count == 1:
        return _hash(b"\x00" + leaves[lo])
    split = 1 << ((count - 1).bit_length() - 1)
    return _hash(b"\x01" + _subtree(leaves, lo, lo + split) + _subtree(leaves, lo + split, hi))
