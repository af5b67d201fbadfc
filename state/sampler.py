"""A deterministic random stream for every choice the chain makes (quorums, swarms).

Procedure (reproducible in any language with BLAKE3):

1. ``key = blake3(derive_key_context="appchain 2026-11 sampler " + tag)``;
2. the stream is the BLAKE3 extendable output of ``keyed_hash(key, seed)``, read from offset 0;
3. ``next_u64`` reads the next 8 bytes as a big-endian unsigned integer;
4. ``uniform(n)`` draws ``x = next_u64()`` until ``x < 2**64 - (2**64 % n)`` and returns
   ``x % n`` (rejection sampling: no modulo bias);
5. ``sample(items, k)`` is Fisher–Yates from the front, stopped after ``k`` positions: on a copy,
   for ``i`` from 0 to ``min(k, len) - 1``, swap ``items[i]`` with ``items[i + uniform(len - i)]``;
   the first ``k`` items are the sample. It draws ``k`` numbers, not ``len``: a quorum of 11 out
   of 2,000 nodes costs 11 draws.

Seeds are built from chain data only (heights, parent hashes, lagged random values), so every
node draws the same numbers. Oxen uses ``mt19937_64``; a keyed XOF is simpler to specify.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import blake3

T = TypeVar("T")
_BUFFER = 512
_U64 = 1 << 64


class Sampler:
    __slots__ = ("_buffer", "_hasher", "_offset", "_position")

    def __init__(self, tag: str, seed: bytes) -> None:
        key = blake3.blake3(derive_key_context="appchain 2026-11 sampler " + tag).digest()
        self._hasher = blake3.blake3(seed, key=key)
        self._offset = 0
        self._buffer = b""
        self._position = 0

    def next_u64(self) -> int:
        if self._position + 8 > len(self._buffer):
            self._buffer = self._hasher.digest(length=_BUFFER, seek=self._offset)
            self._offset += _BUFFER
            self._position = 0
        value = int.from_bytes(self._buffer[self._position : self._position + 8], "big")
        self._position += 8
        return value

    def uniform(self, n: int) -> int:
        """A uniform integer in ``[0, n)``."""
        if n <= 0:
            raise ValueError("uniform() needs a positive bound")
        limit = _U64 - (_U64 % n)
        while True:
            value = self.next_u64()
            if value < limit:
                return value % n

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        """``k`` distinct items (all of them, in drawn order, if there are fewer)."""
        out = list(items)
        size = len(out)
        for i in range(min(k, size)):
            j = i + self.uniform(size - i)
            out[i], out[j] = out[j], out[i]
        return out[:k]
