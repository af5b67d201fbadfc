"""The proof window: the state of each of the last few hundred blocks, for state proofs.

A light client checks a value against the state root of a header it trusts, which is an older
header than the tip (a certified checkpoint). So the node keeps, for each block of a window
below the tip, the sparse Merkle tree after it (trees are persistent: a version costs only the
nodes its block changed) and the block's changes with their "before" values. The value of a key
at height ``h`` is then the "before" value in the first block above ``h`` that changed the key,
or the current value if none did.

The window covers the blocks this process applied or replayed: after a restart it starts at the
newest snapshot, and it never reaches further back than ``size`` blocks. A height outside it is
refused with :class:`OutsideWindow`, never answered from another height.
"""

from __future__ import annotations

from collections.abc import Sequence

from state.smt import Proof, SparseMerkleTree
from state.state import State
from state.transition import Change


class OutsideWindow(LookupError):
    """A height whose state this node no longer (or does not yet) keep."""


class StateHistory:
    """Trees and undo records of the last ``size`` blocks (see the module docstring)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the proof window holds at least one block")
        self.size = size
        self._trees: dict[int, SparseMerkleTree] = {}
        self._before: dict[int, dict[bytes, bytes | None] | None] = {}
        """Per height, the values its block overwrote (``None``: not known, e.g. a snapshot)."""

    def start(self, state: State) -> None:
        """Begin at ``state`` (loaded from a snapshot or genesis): its block's changes are unknown."""
        self._trees = {state.height: state.tree}
        self._before = {state.height: None}

    def record(self, state: State, changes: Sequence[Change]) -> None:
        """Keep the state just committed (``state`` after the block whose ``changes`` are given)."""
        height = state.height
        self._trees[height] = state.tree
        self._before[height] = {key: before for key, before, _after in changes}
        self._trees.pop(height - self.size, None)  # heights are contiguous: one falls out
        self._before.pop(height - self.size, None)

    def forget_above(self, height: int) -> None:
        """The blocks above ``height`` were rolled back."""
        for gone in [h for h in self._trees if h > height]:
            del self._trees[gone]
            del self._before[gone]

    @property
    def bounds(self) -> tuple[int, int] | None:
        """The lowest and highest heights a proof can be given for (``None``: none yet)."""
        if not self._trees:
            return None
        top = max(self._trees)
        low = top
        while low - 1 in self._trees and self._before[low] is not None:
            low -= 1
        return low, top

    def _check(self, state: State, height: int) -> None:
        bounds = self.bounds
        if bounds is None or not bounds[0] <= height <= bounds[1]:
            window = "nothing" if bounds is None else f"heights {bounds[0]} to {bounds[1]}"
            raise OutsideWindow(f"height {height} is outside the kept proof window ({window})")
        if bounds[1] != state.height:
            raise AssertionError("the proof window is not at the state's tip")

    def value_at(self, state: State, key: bytes, height: int) -> bytes | None:
        """``key``'s value after block ``height``."""
        self._check(state, height)
        for above in range(height + 1, state.height + 1):
            before = self._before[above]
            if before is not None and key in before:
                return before[key]
        return state.get(key)

    def prove(self, state: State, key: bytes, height: int) -> tuple[bytes | None, Proof]:
        """``key``'s value at ``height`` and its proof against that height's state root."""
        return self.value_at(state, key, height), self._trees[height].prove(key)
