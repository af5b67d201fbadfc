"""Chain hashing: blake3 with domain separation.

Every hash the chain commits to is ``blake3(key=K(tag), data)`` where ``K(tag)`` is the blake3
derive-key of the tag, so an event hash can never be confused with a header hash or a tree node
even when the bytes coincide. The keys are computed once per tag at import time, so a tagged
hash costs one plain keyed blake3 call.

The sparse Merkle tree does not use these tags: its node hashes follow the ICS-23 ``SmtSpec``
layout (prefix bytes 0x00/0x01) with an injectable hash function; see :mod:`state.smt`.

blake2b appears only where an Oxen format demands it (SNS name hash, storage message hash).
"""

from __future__ import annotations

from collections.abc import Callable

import blake3

from state.types import Hash32

_CONTEXT_PREFIX = "appchain 2026-11 "


class Domain:
    """Domain tags in use. Adding a tag is a consensus change; renaming one is a fork."""

    BLOCK_HEADER = "block header"
    EVENT = "event"
    EVENTS_ROOT = "events root"
    TX_SIGNING = "tx signing"
    GENESIS = "genesis"
    NODE_PROOF = "node proof"
    STATE_CHANGE_VOTE = "state change vote"
    SNS_UPDATE = "sns update"


def _key_for(tag: str) -> bytes:
    return blake3.blake3(derive_key_context=_CONTEXT_PREFIX + tag).digest()


_KEYS: dict[str, bytes] = {}


def tagged_hasher(tag: str) -> Callable[[bytes], Hash32]:
    """A function hashing bytes under ``tag``; cheap to call repeatedly."""
    key = _KEYS.get(tag)
    if key is None:
        key = _KEYS[tag] = _key_for(tag)
    keyed = blake3.blake3

    def digest(data: bytes) -> Hash32:
        return keyed(data, key=key).digest()  # type: ignore[return-value]  # NewType costs a call

    return digest


def hash_tagged(tag: str, data: bytes) -> Hash32:
    """``blake3`` of ``data`` keyed by the domain ``tag``."""
    return tagged_hasher(tag)(data)


_blake3 = blake3.blake3


def blake3_256(data: bytes) -> bytes:
    """Plain blake3-256, the chain's tree hash (see :mod:`state.smt`); the hottest function."""
    return _blake3(data).digest()
