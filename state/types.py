"""Named domain types.

Each name carries its meaning and, through ``msgspec.Meta``, its shape: decoding bytes from the
network or the disk checks lengths and ranges at the door, so rules further in can trust them.
``NewType`` keeps them distinct for the type checker while costing nothing at run time.

Integers are unsigned 64-bit on the wire (msgpack refuses anything wider when encoding); the
decoder enforces ``>= 0``.
"""

from __future__ import annotations

from typing import Annotated, NewType

from msgspec import Meta

U64 = Annotated[int, Meta(ge=0)]
"""An unsigned integer; msgpack caps it at 2**64 - 1 when encoding."""

U32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
"""An unsigned 32-bit integer (indexes and counts that go into 4-byte keys)."""

Bytes32 = Annotated[bytes, Meta(min_length=32, max_length=32)]
Bytes48 = Annotated[bytes, Meta(min_length=48, max_length=48)]
Bytes64 = Annotated[bytes, Meta(min_length=64, max_length=64)]
Bytes96 = Annotated[bytes, Meta(min_length=96, max_length=96)]

Height = NewType("Height", U64)
"""A block height; genesis is height 0."""

Atomic = NewType("Atomic", U64)
"""An amount of the token in atomic units (1 SESH = 10**9 atomic units)."""

Nonce = NewType("Nonce", U64)
"""A per-account transaction counter: each transaction carries the account's nonce + 1."""

Timestamp = NewType("Timestamp", U64)
"""Unix time in milliseconds, taken from block headers, never from a local clock."""

Hash32 = NewType("Hash32", Bytes32)
"""A 32-byte digest (blake3 for chain hashes, blake2b where an Oxen format demands it)."""

AccountKey = NewType("AccountKey", Bytes32)
"""An account: an Ed25519 public key."""

NodeKey = NewType("NodeKey", Bytes32)
"""A service node's identity: its Ed25519 public key."""

Ed25519Signature = NewType("Ed25519Signature", Bytes64)

BlsPublicKey = NewType("BlsPublicKey", Bytes48)
"""A compressed BLS12-381 G1 point (minimal-pubkey-size variant)."""

BlsSignature = NewType("BlsSignature", Bytes96)
"""A compressed BLS12-381 G2 point."""

ATOMIC_PER_COIN = 10**9
MAX_U64 = 2**64 - 1
