"""Checkpoint certificates: a BLS aggregate of two thirds of a checkpoint quorum over a block.

Every ``params.checkpoint_interval`` blocks each member of the checkpoint quorum signs

    ``H_checkpoint(chain_id || height || block_hash)``

with its BLS key (proof of possession verified at registration, so aggregation is safe). A
:class:`CheckpointCertificate` holds the aggregate signature and a bitset of the signers by
quorum position; it is valid when at least ``ceil(2n/3)`` distinct members signed and the
aggregate verifies against exactly their keys. A block at or below a certified checkpoint is
final.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from consensus.quorum import compute_checkpoint_threshold
from state.crypto import bls
from state.encoding import Record, encode
from state.hashing import hash_tagged
from state.types import BlsSignature, Hash32


class CheckpointCertificate(Record, frozen=True):
    height: int
    block_hash: Hash32
    signers: bytes
    """Bitset over quorum positions: bit ``i`` (byte ``i // 8``, least significant first)."""
    signature: BlsSignature


class InvalidCertificate(ValueError):
    """A certificate that does not prove finality."""


def compute_checkpoint_message(chain_id: str, height: int, block_hash: bytes) -> bytes:
    return hash_tagged("checkpoint", encode((chain_id, height, bytes(block_hash))))


def encode_bitset(positions: Sequence[int], size: int) -> bytes:
    bits = bytearray((size + 7) // 8)
    for position in positions:
        if not 0 <= position < size:
            raise ValueError(f"position {position} is outside a quorum of {size}")
        bits[position // 8] |= 1 << (position % 8)
    return bytes(bits)


def decode_bitset(bits: bytes, size: int) -> list[int]:
    if len(bits) != (size + 7) // 8:
        raise InvalidCertificate("the signer bitset has the wrong length")
    positions = [i for i in range(size) if bits[i // 8] >> (i % 8) & 1]
    if any(bits[i // 8] >> (i % 8) & 1 for i in range(size, len(bits) * 8)):
        raise InvalidCertificate("the signer bitset names positions outside the quorum")
    return positions


def sign_checkpoint(secret: bls.BlsSecretKey, chain_id: str, height: int, block_hash: bytes) -> BlsSignature:
    return bls.sign(secret, compute_checkpoint_message(chain_id, height, block_hash))


def aggregate_certificate(
    height: int, block_hash: Hash32, votes: Mapping[int, bytes], quorum_size: int
) -> CheckpointCertificate:
    """A certificate from ``votes`` (quorum position → signature); does not check the signatures."""
    positions = sorted(votes)
    signature = bls.aggregate_signatures([votes[p] for p in positions])
    return CheckpointCertificate(height, block_hash, encode_bitset(positions, quorum_size), signature)


def verify_certificate(
    certificate: CheckpointCertificate, chain_id: str, quorum_keys: Sequence[bytes]
) -> None:
    """Raise :class:`InvalidCertificate` unless two thirds of the quorum signed this block."""
    signers = decode_bitset(certificate.signers, len(quorum_keys))
    needed = compute_checkpoint_threshold(len(quorum_keys))
    if len(signers) < needed:
        raise InvalidCertificate(f"{len(signers)} signers, {needed} needed")
    message = compute_checkpoint_message(chain_id, certificate.height, certificate.block_hash)
    if not bls.fast_aggregate_verify([quorum_keys[i] for i in signers], message, certificate.signature):
        raise InvalidCertificate("the aggregate signature does not verify for the named signers")
