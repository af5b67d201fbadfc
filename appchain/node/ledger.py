"""The node core's :class:`~consensus.ledger.Ledger` over the node's LevelDB chain.

The same :class:`consensus.node.NodeCore` that the simulator runs on a
:class:`~consensus.ledger.MemoryLedger` runs on this one in the process node: blocks it accepts
are validated in full (Pulse data, every transaction and vote signature, every rule) and written
with their delta in one batch; fork choice undoes the non-final tail from the stored deltas
(:meth:`appchain.home.chain.Chain.rollback`); certificates move the final marker up.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

from appchain.home.chain import Chain, ChainError
from consensus.checkpoint import CheckpointCertificate
from consensus.quorum import PulseQuorum
from state.block import Block, compute_block_hash
from state.errors import InvalidBlock
from state.state import State
from state.transition import PendingBlock


class ChainLedger:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.verified: Container[bytes] = ()
        """Hashes of transactions whose signatures this node already checked (its mempool)."""

    @property
    def state(self) -> State:
        return self.chain.state

    @property
    def height(self) -> int:
        return self.chain.height

    @property
    def final_height(self) -> int:
        return self.chain.final_height

    @property
    def base_height(self) -> int:
        return self.chain.base_height

    def random_value_at(self, height: int) -> bytes:
        return self.chain.random_value_at(height)

    def block_hash_at(self, height: int) -> bytes:
        if height > self.chain.height:
            return b""
        if height == self.chain.height:
            return self.chain.state.block_hash
        header = self.chain.store.get_header(height)
        return b"" if header is None else compute_block_hash(header)

    def root_at(self, height: int) -> bytes:
        if height == self.chain.height:
            return self.chain.state.root
        header = self.chain.store.get_header(height)
        return b"" if header is None else header.state_root

    def block_at(self, height: int) -> Block:
        return self.chain.store.get_block(height)

    def apply(self, block: Block, template: PendingBlock | None = None) -> PulseQuorum:
        quorum = self.chain.append(block, verified=self.verified, template=template)
        # only block 0 has no quorum, and append refuses it (it expects the height above the tip)
        assert quorum is not None, "block 0 comes from the genesis, not from a peer"
        return quorum

    def rollback(self, height: int) -> None:
        try:
            self.chain.rollback(height)
        except ChainError as exc:  # below finality: the core never asks for it
            raise InvalidBlock(str(exc)) from None

    def finalize(self, certificate: CheckpointCertificate) -> None:
        self.chain.keep_certificate(certificate)

    def certificates_from(self, height: int) -> Sequence[CheckpointCertificate]:
        return list(self.chain.store.iter_certificates(height))
