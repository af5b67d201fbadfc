"""Blocks: a header committing to the chain, the events and the resulting state, plus the events.

The block hash is the tagged hash of the encoded header, so it commits to the events (through
``events_root``) and to the state after them (``state_root``). Consensus fields (pulse round,
random value, validator signatures, checkpoint quorum commitment) join the header with the
consensus issue.
"""

from __future__ import annotations

from state.encoding import Record, encode
from state.errors import InvalidBlock
from state.events import Event, compute_event_hash
from state.hashing import Domain, tagged_hasher
from state.merkle import merkle_root
from state.params import ChainParams
from state.types import Hash32, Height, Timestamp

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
    """Unix seconds; never decreases along the chain. The only clock the rules may read."""

    events_root: Hash32
    """Merkle root of the event hashes (:mod:`state.merkle`)."""

    state_root: Hash32
    """Root of the authenticated state map after applying the events."""


class Block(Record, frozen=True):
    header: Header
    events: tuple[Event, ...]


def compute_block_hash(header: Header) -> Hash32:
    return _header_hash(encode(header))


def compute_events_root(events: tuple[Event, ...] | list[Event]) -> Hash32:
    return merkle_root([compute_event_hash(event) for event in events])


def validate_block_basic(block: Block, params: ChainParams) -> None:
    """Stateless block checks: version, size limits and the events root."""
    header = block.header
    if header.version != HEADER_VERSION:
        raise InvalidBlock(f"block {header.height}: unknown header version {header.version}")
    if len(block.events) > params.max_block_events:
        raise InvalidBlock(f"block {header.height}: more than {params.max_block_events} events")
    for index, event in enumerate(block.events):
        if len(encode(event)) > params.max_event_bytes:
            raise InvalidBlock(f"block {header.height}: event {index} is too large", index)
    if compute_events_root(block.events) != header.events_root:
        raise InvalidBlock(f"block {header.height}: events root does not match the events")


__all__ = ["Block", "Header", "Timestamp", "compute_block_hash", "compute_events_root"]
