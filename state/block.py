"""Blocks: a header committing to the chain, the events, the resulting state and its Pulse round.

The block hash is the tagged hash of the encoded header, so it commits to the events (through
``events_root``), to the state after them (``state_root``) and to the Pulse round that made it
(round, producer, random value, participating validators). The validators' signatures are over
that hash, so they travel beside the header, in the block, not in it.
"""

from __future__ import annotations

from state.encoding import Record, encode
from state.errors import InvalidBlock
from state.events import Event, compute_event_hash, event_hasher
from state.hashing import Domain, tagged_hasher
from state.merkle import merkle_root
from state.params import ChainParams
from state.types import Ed25519Signature, Hash32, Height, NodeKey, Timestamp

HEADER_VERSION = 1
_header_hash = tagged_hasher(Domain.BLOCK_HEADER)


class Header(Record, frozen=True):
    """What a block commits to."""

    version: int
    """Format version of the header (currently 1)."""

    height: Height
    """Genesis is block 0."""

    prev_hash: Hash32
    """Hash of the previous header; for block 0, the genesis document's hash."""

    timestamp: int
    """Unix **milliseconds**; at least the parent's plus ``params.block_time`` (block 0: the genesis
    file's ``genesis_time`` seconds x 1,000). The only clock the rules may read."""

    events_root: Hash32
    """Merkle root of the event hashes (:mod:`state.merkle`)."""

    state_root: Hash32
    """Root of the authenticated state map after applying the events."""

    round: int = 0
    """The Pulse round that produced the block (0 unless earlier rounds failed)."""

    producer: NodeKey = NodeKey(bytes(32))
    """The round's producer; it goes to the back of the reward queue. Zero for block 0."""

    random_value: bytes = bytes(16)
    """Hash of the participants' revealed values: entropy for the quorums of later heights."""

    validators: int = 0
    """Bitset of the quorum validators (by index) that took part in the round."""

    next_checkpoint_quorum: Hash32 = Hash32(bytes(32))
    """On a checkpoint height: the hash of the BLS keys that may certify the next checkpoint
    (:mod:`state.checkpoints`); zero elsewhere."""


PulseSignature = tuple[int, Ed25519Signature]
"""(validator index in the round's quorum, Ed25519 signature over the block hash)."""


class Block(Record, frozen=True):
    header: Header
    events: tuple[Event, ...]
    signatures: tuple[PulseSignature, ...] = ()
    """At least 7 quorum validators' signatures over the block hash (none for block 0)."""


def compute_block_hash(header: Header) -> Hash32:
    return _header_hash(encode(header))


def compute_events_root(events: tuple[Event, ...] | list[Event]) -> Hash32:
    return merkle_root([compute_event_hash(event) for event in events])


def check_events(events: tuple[Event, ...] | list[Event], params: ChainParams, height: int) -> Hash32:
    """Stateless checks of a block's events (count, sizes); their root, from one encoding each.

    Block 0 is built from the genesis document, not produced by a quorum: the count limit (a
    bound on what a producer may ask validators to execute in one round) does not apply to it, so
    a genesis can hold a real network's accounts and nodes."""
    if height > 0 and len(events) > params.max_block_events:
        raise InvalidBlock(f"block {height}: more than {params.max_block_events} events")
    hashes = []
    for index, event in enumerate(events):
        raw = encode(event)
        if len(raw) > params.max_event_bytes:
            raise InvalidBlock(f"block {height}: event {index} is too large", index)
        hashes.append(event_hasher(raw))
    return merkle_root(hashes)


def validate_block_basic(block: Block, params: ChainParams) -> None:
    """Stateless block checks: version, size limits and the events root."""
    header = block.header
    if header.version != HEADER_VERSION:
        raise InvalidBlock(f"block {header.height}: unknown header version {header.version}")
    if check_events(block.events, params, header.height) != header.events_root:
        raise InvalidBlock(f"block {header.height}: events root does not match the events")


__all__ = ["Block", "Header", "Timestamp", "compute_block_hash", "compute_events_root"]
