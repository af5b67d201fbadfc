"""Ed25519 signatures for accounts and node keys, on libsodium through PyNaCl.

The verification rule is consensus-critical: every node must accept exactly the same
signatures. We use libsodium's ``crypto_sign_open`` (the detached verify underneath), which is strict RFC 8032
verification with canonical encodings: it rejects a non-canonical ``S`` (``S >= L``),
non-canonical and small-order public keys and small-order ``R``. That is Oxen's rule (oxen-core
verifies with libsodium too). The RFC 8032 and Wycheproof vectors pin it in the tests.
"""

from __future__ import annotations

from nacl import bindings
from nacl.exceptions import BadSignatureError, CryptoError

from state.types import AccountKey, Ed25519Signature

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


class SigningKey:
    """An Ed25519 secret key held as its 32-byte seed."""

    __slots__ = ("_secret", "public_key", "seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self.seed = seed
        public, self._secret = bindings.crypto_sign_seed_keypair(seed)
        self.public_key = AccountKey(public)

    def sign(self, message: bytes) -> Ed25519Signature:
        signed = bindings.crypto_sign(message, self._secret)
        return Ed25519Signature(signed[:SIGNATURE_SIZE])

    def x25519_secret(self) -> bytes:
        """The X25519 secret this key converts to (libsodium's conversion): a node's or a
        Session account's encryption key, whose public half is :func:`x25519_public`."""
        return bytes(bindings.crypto_sign_ed25519_sk_to_curve25519(self._secret))

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()})"


def x25519_public(public_key: bytes) -> bytes:
    """The X25519 public key an Ed25519 public key converts to; ``ValueError`` if it is not a point."""
    try:
        return bytes(bindings.crypto_sign_ed25519_pk_to_curve25519(public_key))
    except (CryptoError, TypeError) as exc:
        raise ValueError("not an Ed25519 public key") from exc


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True only for a valid, canonical signature by ``public_key`` over ``message``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        bindings.crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True
