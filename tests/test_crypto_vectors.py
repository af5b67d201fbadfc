"""Ed25519 (RFC 8032, Wycheproof) and BLAKE3 vectors through our facades."""

from __future__ import annotations

import blake3
import pytest

from state.crypto import ed25519
from state.hashing import Domain, hash_tagged, tagged_hasher
from tests.conftest import load_vectors

RFC8032 = load_vectors("ed25519_rfc8032.json")["cases"]
WYCHEPROOF = load_vectors("ed25519_wycheproof.json")["cases"]
BLAKE3 = load_vectors("blake3.json")


@pytest.mark.parametrize("case", RFC8032, ids=lambda c: c["name"])
def test_rfc8032_sign_and_verify(case: dict) -> None:
    key = ed25519.SigningKey(bytes.fromhex(case["secret_key_hex"]))
    message = bytes.fromhex(case["message_hex"])
    assert key.public_key.hex() == case["public_key_hex"]
    signature = key.sign(message)
    assert signature.hex() == case["signature_hex"]
    assert ed25519.verify(key.public_key, message, signature)
    assert not ed25519.verify(key.public_key, message + b"x", signature)


@pytest.mark.parametrize("case", WYCHEPROOF, ids=lambda c: str(c["tcId"]))
def test_wycheproof_verdicts(case: dict) -> None:
    """Every node must accept exactly these signatures: the strict libsodium rule."""
    verdict = ed25519.verify(
        bytes.fromhex(case["public_key_hex"]), bytes.fromhex(case["msg_hex"]), bytes.fromhex(case["sig_hex"])
    )
    assert verdict == (case["result"] == "valid")


def test_verify_rejects_wrong_sizes_without_raising() -> None:
    key = ed25519.SigningKey(bytes(32))
    signature = key.sign(b"m")
    assert not ed25519.verify(key.public_key[:31], b"m", signature)
    assert not ed25519.verify(key.public_key, b"m", signature[:63])
    with pytest.raises(ValueError, match="32 bytes"):
        ed25519.SigningKey(bytes(31))


def _input(length: int) -> bytes:
    return bytes(i % 251 for i in range(length))


@pytest.mark.parametrize("case", BLAKE3["cases"], ids=lambda c: str(c["input_len"]))
def test_blake3_vectors(case: dict) -> None:
    data = _input(case["input_len"])
    size = len(case["hash"]) // 2
    assert blake3.blake3(data).digest(length=size).hex() == case["hash"]
    key = BLAKE3["key"].encode()
    assert blake3.blake3(data, key=key).digest(length=size).hex() == case["keyed_hash"]
    derived = blake3.blake3(data, derive_key_context=BLAKE3["context_string"]).digest(length=size)
    assert derived.hex() == case["derive_key"]
    # our chain hash is the first 32 bytes of the plain hash
    from state.hashing import blake3_256

    assert blake3_256(data).hex() == case["hash"][:64]


def test_domain_tags_separate_hashes() -> None:
    assert hash_tagged(Domain.EVENT, b"x") != hash_tagged(Domain.BLOCK_HEADER, b"x")
    assert tagged_hasher(Domain.EVENT)(b"x") == hash_tagged(Domain.EVENT, b"x")
    assert len(set(vars(Domain).values()) - {Domain.__doc__, Domain.__module__}) >= 6
