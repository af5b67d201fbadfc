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
   of 2,000 nodes costs 11 draws. (The copy is virtual: only the positions a swap moved are
   remembered, so a draw reads ``k`` items of ``items`` and copies none of the others; a sample
   of a list without a few of its items is drawn from the list itself, ``excluding=``.)

Seeds are built from chain data only (heights, parent hashes, lagged random values), so every
node draws the same numbers. Oxen uses ``mt19937_64``; a keyed XOF is simpler to specify.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import TypeVar

import blake3

T = TypeVar("T")
_BUFFER = 512
_WORDS = struct.Struct(f">{_BUFFER // 8}Q").unpack
"""The stream's next 512 bytes as 64 big-endian u64 (step 3 for 64 draws at once)."""
_U64 = 1 << 64


class Sampler:
    __slots__ = ("_hasher", "_offset", "_position", "_words")

    def __init__(self, tag: str, seed: bytes) -> None:
        key = blake3.blake3(derive_key_context="appchain 2026-11 sampler " + tag).digest()
        self._hasher = blake3.blake3(seed, key=key)
        self._offset = 0
        self._words: tuple[int, ...] = ()
        self._position = 0

    def _refill(self) -> tuple[int, ...]:
        """The stream's next 64 words, read from their first."""
        self._words = _WORDS(self._hasher.digest(length=_BUFFER, seek=self._offset))
        self._offset += _BUFFER
        self._position = 0
        return self._words

    def next_u64(self) -> int:
        if self._position == len(self._words):
            self._refill()
        value = self._words[self._position]
        self._position += 1
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

    def sample(self, items: Sequence[T], k: int, *, excluding: Iterable[int] = ()) -> list[T]:
        """``k`` distinct items (all of them, in drawn order, if there are fewer) of ``items``
        without the items at the positions ``excluding``: the draws of step 5 on that shorter
        list (the Pulse candidates are the active nodes but the leader; the obligations workers
        the listed nodes but the validators).

        The swaps of step 5 are kept as the positions they changed: position ``i`` is final once
        swapped (later swaps only reach beyond it), so it is the sample's ``i``-th item, and
        ``moved`` holds what the swap left at ``j``. Position ``i`` of the shorter list is
        position ``i + bisect_right(kept_before, i)`` of ``items``. So a draw reads ``k`` items
        and copies none, however long ``items`` is; the stream is read here, as
        :meth:`uniform` reads it, without a call a draw (the hottest loop of an empty block)."""
        skips = sorted(set(excluding))
        if skips and not (skips[0] >= 0 and skips[-1] < len(items)):
            raise IndexError("excluding a position outside the items")
        kept_before = [skip - count for count, skip in enumerate(skips)]
        """For each excluded position, in order, how many kept items precede it: kept item ``i``
        sits past every excluded position whose count is at most ``i``."""
        size = len(items) - len(skips)
        moved: dict[int, T] = {}
        out: list[T] = []
        words, position = self._words, self._position
        for i in range(min(k, size)):
            n = size - i
            limit = _U64 - (_U64 % n)
            while True:  # uniform(n), inline
                if position == len(words):
                    words, position = self._refill(), 0
                value = words[position]
                position += 1
                if value < limit:
                    break
            j = i + value % n
            out.append(moved[j] if j in moved else items[j + bisect_right(kept_before, j)])
            moved[j] = moved[i] if i in moved else items[i + bisect_right(kept_before, i)]
        self._words, self._position = words, position
        return out
