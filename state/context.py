"""What a rule may know about the block it runs in."""

from __future__ import annotations

from typing import NamedTuple

from state.params import ChainParams
from state.types import Hash32, NodeKey

NO_PRODUCER = NodeKey(bytes(32))


class BlockContext(NamedTuple):
    height: int
    timestamp: int
    """The block's timestamp, unix milliseconds."""
    prev_hash: Hash32
    chain_id: str
    params: ChainParams
    verify_signatures: bool
    producer: NodeKey = NO_PRODUCER
