"""A light client: it trusts nothing it cannot verify (PROTOCOL.md §8).

It starts from block 0's header, rebuilt from the genesis file (or from a header the operator
trusts). It then accepts:

- the next checkpoint header (``height + checkpoint_interval``, the chain parameter it takes
  from the trusted genesis: 4 on mainnet) only with a certificate of at least two thirds of
  the checkpoint quorum that the last trusted checkpoint header committed to (the client is given
  the quorum's BLS keys and checks them against that commitment);
- a header between checkpoints only by hash links from a trusted header above it;
- a state value, or its absence, only with a sparse Merkle proof against a trusted header's state
  root. A proof for a height it does not trust is refused, never answered from another height.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.checkpoint import CheckpointCertificate, InvalidCertificate, verify_certificate
from state.block import Header, compute_block_hash
from state.checkpoints import compute_quorum_commitment
from state.smt import Proof, verify_proof


class Untrusted(ValueError):
    """Something the light client cannot verify, so does not accept."""


class LightClient:
    def __init__(self, chain_id: str, trusted_checkpoint: Header, checkpoint_interval: int) -> None:
        """``checkpoint_interval``: the chain's parameter, from the genesis the client trusts."""
        if checkpoint_interval < 1:
            raise ValueError("the checkpoint interval is at least 1 block")
        if trusted_checkpoint.height % checkpoint_interval:
            raise ValueError("a light client starts from a checkpoint header (block 0, for instance)")
        self.chain_id = chain_id
        self.interval = checkpoint_interval
        self.headers: dict[int, Header] = {trusted_checkpoint.height: trusted_checkpoint}
        self.checkpoint = trusted_checkpoint

    @property
    def height(self) -> int:
        return self.checkpoint.height

    def accept_checkpoint(
        self, header: Header, certificate: CheckpointCertificate, quorum_keys: Sequence[bytes]
    ) -> None:
        expected = self.checkpoint.height + self.interval
        if header.height != expected:
            raise Untrusted(f"the next checkpoint is {expected}, not {header.height}")
        if compute_quorum_commitment(quorum_keys) != self.checkpoint.next_checkpoint_quorum:
            raise Untrusted("these are not the keys the last trusted checkpoint committed to")
        if certificate.height != header.height or certificate.block_hash != compute_block_hash(header):
            raise Untrusted("the certificate is for another block")
        try:
            verify_certificate(certificate, self.chain_id, quorum_keys)
        except InvalidCertificate as exc:
            raise Untrusted(str(exc)) from None
        self.headers[header.height] = header
        self.checkpoint = header

    def accept_linked(self, headers: Sequence[Header]) -> None:
        """Headers below a trusted one, each the parent of the next (highest last)."""
        for header in reversed(headers):
            child = self.headers.get(header.height + 1)
            if child is None:
                raise Untrusted(f"no trusted header above {header.height} to link it to")
            if child.prev_hash != compute_block_hash(header):
                raise Untrusted(f"header {header.height} is not the parent of the trusted header above it")
            self.headers[header.height] = header

    def verify_value(self, height: int, key: bytes, value: bytes | None, proof: Proof) -> None:
        """Accept ``key = value`` (``None``: absent) at ``height``, or raise :class:`Untrusted`."""
        header = self.headers.get(height)
        if header is None:
            raise Untrusted(f"height {height} is not trusted: no proof can be checked against it")
        if not verify_proof(header.state_root, key, value, proof):
            raise Untrusted("the proof does not match the trusted state root")
