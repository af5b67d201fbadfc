"""What the node core needs of a chain: :class:`Ledger`, and :class:`MemoryLedger` for the simulator.

The process node implements the same protocol over its LevelDB store
(:class:`appchain.node.ledger.ChainLedger`), so the core (:mod:`consensus.node`) runs unchanged on
both: in memory under the simulator, on disk behind p2p.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from consensus.checkpoint import CheckpointCertificate
from consensus.quorum import PulseQuorum
from consensus.validation import check_pulse
from state.block import Block, Header, compute_block_hash
from state.errors import InvalidBlock
from state.state import State
from state.transition import PendingBlock, adopt_template_result, commit_block, execute_block
from state.types import Hash32


class Ledger(Protocol):
    """A chain of blocks from genesis, the state at its tip, and its final height."""

    @property
    def state(self) -> State: ...

    @property
    def height(self) -> int: ...

    @property
    def final_height(self) -> int: ...

    @property
    def base_height(self) -> int:
        """The first height whose block we hold is ``base_height + 1`` (0, or the height a
        state sync started the log at)."""
        ...

    def random_value_at(self, height: int) -> bytes: ...

    def block_hash_at(self, height: int) -> bytes:
        """The hash of our block at ``height`` (``b""`` above the tip)."""
        ...

    def root_at(self, height: int) -> bytes:
        """The state root after our block at ``height``."""
        ...

    def block_at(self, height: int) -> Block: ...

    def apply(self, block: Block, template: PendingBlock | None = None) -> PulseQuorum:
        """Validate ``block`` (Pulse data, every rule) on the tip and append it; return its quorum.

        ``template`` is this node's execution of the block's Pulse template on the tip, if it
        has one (:class:`ExecutedTemplates`): the ledger takes its result instead of executing
        the block again where :func:`~state.transition.adopt_template_result` shows it to be the
        block's. Raises :class:`~state.errors.InvalidBlock` and changes nothing when it is not valid.
        """
        ...

    def rollback(self, height: int) -> None:
        """Undo every block above ``height`` (never a final one)."""
        ...

    def finalize(self, certificate: CheckpointCertificate) -> None:
        """Keep a verified certificate for our block at its height; the final height moves up."""
        ...

    def certificates_from(self, height: int) -> Sequence[CheckpointCertificate]: ...


class SharedExecutions:
    """Each block executed once for all the simulated nodes that apply it on the same parent.

    Execution is pure (DESIGN.md: same parent state and block, same state, on every machine), so
    simulated nodes applying one block on one parent may share the resulting state, as they share
    signature verdicts (:class:`consensus.simulator.VerdictMemo`): a 2,000-node simulation then
    costs one execution and one state per block rather than 2,000. A state is never changed once
    committed (a ledger applies on a copy), so sharing it is safe. Keyed by the parent's hash, the
    block's hash and its signatures (which :func:`~consensus.validation.check_pulse` judges); an
    invalid block's error is kept too, and raised again for every node that tries it."""

    def __init__(self) -> None:
        self.results: dict[tuple[bytes, bytes, object], tuple[State, PulseQuorum] | InvalidBlock] = {}

    def run(
        self, parent: State, block: Block, execute: Callable[[], tuple[State, PulseQuorum]]
    ) -> tuple[State, PulseQuorum]:
        key = (bytes(parent.block_hash), compute_block_hash(block.header), block.signatures)
        result = self.results.get(key)
        if result is None:
            try:
                result = execute()
            except InvalidBlock as exc:
                result = exc
            self.results[key] = result
        if isinstance(result, InvalidBlock):
            raise result
        return result


class MemoryLedger:
    """A ledger in memory: one state per height (so rollback is a slice). Simulated nodes may
    share their executions (:class:`SharedExecutions`), and so their states."""

    def __init__(self, genesis_state: State, shared: SharedExecutions | None = None) -> None:
        self.shared = shared
        self.states: list[State] = [genesis_state]
        self.blocks: list[Block] = []  # blocks[h - 1] is height h
        self.certificates: dict[int, CheckpointCertificate] = {}
        self._final_height = 0

    @property
    def state(self) -> State:
        return self.states[-1]

    @property
    def height(self) -> int:
        return self.state.height

    @property
    def final_height(self) -> int:
        return self._final_height

    @property
    def base_height(self) -> int:
        return 0

    def random_value_at(self, height: int) -> bytes:
        return bytes(16) if height == 0 else self.blocks[height - 1].header.random_value

    def block_hash_at(self, height: int) -> bytes:
        return self.states[height].block_hash if height < len(self.states) else b""

    def root_at(self, height: int) -> bytes:
        return self.states[height].root

    def block_at(self, height: int) -> Block:
        return self.blocks[height - 1]

    def apply(self, block: Block, template: PendingBlock | None = None) -> PulseQuorum:
        if block.header.prev_hash != self.state.block_hash:
            raise InvalidBlock(f"block {block.header.height}: not on our tip")
        if self.shared is None:
            state, quorum = self._execute(block, template)
        else:
            state, quorum = self.shared.run(self.state, block, lambda: self._execute(block, template))
        self.states.append(state)
        self.blocks.append(block)
        return quorum

    def _execute(self, block: Block, template: PendingBlock | None) -> tuple[State, PulseQuorum]:
        state = self.state.copy()
        quorum = check_pulse(state, block, self.random_value_at)
        if quorum is None:
            raise InvalidBlock("block 0 comes from the genesis, not from a peer")
        pending = None
        if template is not None:
            pending = adopt_template_result(state, template, block, verify_signatures=False)
        if pending is None:
            pending = execute_block(state, block, verify_signatures=False)
        commit_block(state, pending)
        return state, quorum

    def rollback(self, height: int) -> None:
        if height < self._final_height:
            raise ValueError(f"cannot roll back below the final block {self._final_height}")
        del self.states[height + 1 :]
        del self.blocks[height:]

    def finalize(self, certificate: CheckpointCertificate) -> None:
        self.certificates[certificate.height] = certificate
        self._final_height = max(self._final_height, certificate.height)

    def certificates_from(self, height: int) -> Sequence[CheckpointCertificate]:
        return [c for h, c in sorted(self.certificates.items()) if h >= height]


TEMPLATES_KEPT = 4
"""Executed templates a node keeps (:class:`ExecutedTemplates`): those of the rounds it takes part
in on its tip, one a round; a tip's are dropped when a template on another tip is kept."""


def compute_template_key(header: Header) -> tuple[Hash32, Hash32]:
    """(parent hash, hash of the header without what the Pulse ceremony fills in): the same for a
    template and the final block of its round."""
    bare = msgspec.structs.replace(header, random_value=bytes(16), validators=0)
    return header.prev_hash, compute_block_hash(bare)


class ExecutedTemplates:
    """The results of the Pulse templates this node executed (the producer's own, a validator's
    check), kept so that the round's signed block is not executed a second time: the ledger
    adopts the result (:meth:`Ledger.apply`) when the block is the template finalized."""

    def __init__(self) -> None:
        self._results: dict[tuple[Hash32, Hash32], PendingBlock] = {}

    def keep(self, pending: PendingBlock) -> None:
        parent = pending.parent_hash
        results = {key: kept for key, kept in self._results.items() if key[0] == parent}
        while len(results) >= TEMPLATES_KEPT:
            del results[next(iter(results))]
        results[compute_template_key(pending.block.header)] = pending
        self._results = results

    def find(self, block: Block) -> PendingBlock | None:
        """The executed template ``block`` may be the final form of, if this node kept one."""
        if not self._results:
            return None
        return self._results.get(compute_template_key(block.header))
