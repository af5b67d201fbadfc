"""Checkpoint certificates: two thirds of the quorum, aggregated, and every way to fake one."""

from __future__ import annotations

import msgspec
import pytest

from consensus.checkpoint import (
    InvalidCertificate,
    aggregate_certificate,
    decode_bitset,
    encode_bitset,
    sign_checkpoint,
    verify_certificate,
)
from state.crypto import bls
from state.types import Hash32

SECRETS = [bls.secret_key_from_seed(bytes([i + 1]) * 32) for i in range(20)]
KEYS = [bls.public_key(s) for s in SECRETS]
BLOCK = Hash32(b"\xab" * 32)


def certificate(signers: list[int], block: bytes = BLOCK, height: int = 8):  # type: ignore[no-untyped-def]
    votes = {i: sign_checkpoint(SECRETS[i], "chain", height, block) for i in signers}
    return aggregate_certificate(height, Hash32(block), votes, len(KEYS))


def test_two_thirds_certify() -> None:
    verify_certificate(certificate(list(range(14))), "chain", KEYS)
    verify_certificate(certificate(list(range(6, 20))), "chain", KEYS)


def test_one_short_is_refused() -> None:
    with pytest.raises(InvalidCertificate, match="13 signers, 14 needed"):
        verify_certificate(certificate(list(range(13))), "chain", KEYS)


def test_forgeries_are_refused() -> None:
    good = certificate(list(range(14)))
    forgeries = [
        msgspec.structs.replace(good, block_hash=Hash32(b"\xac" * 32)),  # another block
        msgspec.structs.replace(good, height=12),  # another height
        msgspec.structs.replace(good, signers=encode_bitset(list(range(1, 15)), 20)),  # names a non-signer
        msgspec.structs.replace(good, signature=bls.IDENTITY_G2),  # the identity signature
    ]
    for forged in forgeries:
        with pytest.raises(InvalidCertificate, match="does not verify"):
            verify_certificate(forged, "chain", KEYS)
    with pytest.raises(InvalidCertificate):
        verify_certificate(good, "other chain", KEYS)
    # a signature by a key outside the quorum, counted in a quorum position
    outsider = bls.secret_key_from_seed(b"\x99" * 32)
    votes = {i: sign_checkpoint(SECRETS[i], "chain", 8, BLOCK) for i in range(13)}
    votes[13] = sign_checkpoint(outsider, "chain", 8, BLOCK)
    with pytest.raises(InvalidCertificate, match="does not verify"):
        verify_certificate(aggregate_certificate(8, BLOCK, votes, 20), "chain", KEYS)


def test_bitsets() -> None:
    assert decode_bitset(encode_bitset([0, 9, 19], 20), 20) == [0, 9, 19]
    with pytest.raises(InvalidCertificate, match="wrong length"):
        decode_bitset(b"\x01", 20)
    with pytest.raises(InvalidCertificate, match="outside the quorum"):
        decode_bitset(b"\x00\x00\x10", 20)
    with pytest.raises(ValueError):
        encode_bitset([20], 20)
