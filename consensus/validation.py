"""Checking a block's Pulse data against the quorum that had to make it.

The quorum of ``(height, round)`` is drawn (:func:`consensus.quorum.compute_pulse_quorum`) from
the parent state's active nodes and reward queue, with the entropy of the lagged headers: the
random values of heights ``height-22 .. height-11`` (the parent is ``tip = height-1``, so these
are ``tip-21 .. tip-10``; heights below 0 are skipped). A block is valid Pulse output when:

- its round is a 16-bit number (PROTOCOL.md §4a);
- its producer is that quorum's producer;
- its validator bitset names at least T of the quorum's V validators, T = ⌈7V/11⌉ (7 of 11 on a
  network of 12 or more active nodes; 2 of 3 on one of 4, §4a);
- it carries at least T signatures, by distinct validators named in the bitset, each a valid
  Ed25519 signature over the block hash by that validator's node key.

The state never checks these (it only moves the producer to the back of the reward queue):
consensus checks them before the state runs the block, and a replay of a log whose blocks were
certified may trust them (``--verify-signatures`` checks them again).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from consensus.quorum import (
    ENTROPY_LAG_FIRST,
    ENTROPY_LAG_LAST,
    MAX_PULSE_ROUND,
    PulseQuorum,
    compute_pulse_entropy,
    draw_pulse_quorum,
)
from state.block import Block, compute_block_hash
from state.crypto import ed25519
from state.errors import InvalidBlock
from state.state import State, state_index
from state.types import Hash32

RandomValueAt = Callable[[int], bytes]
"""The random value of the header at a height (for the entropy of later quorums)."""


def compute_entropy_heights(height: int) -> range:
    tip = height - 1
    return range(max(0, tip - ENTROPY_LAG_FIRST), max(0, tip - ENTROPY_LAG_LAST + 1))


def compute_block_entropy(random_value_at: RandomValueAt, height: int) -> Hash32:
    return compute_pulse_entropy([random_value_at(h) for h in compute_entropy_heights(height)])


def compute_block_quorum(state: State, entropy: bytes, height: int, round_: int) -> PulseQuorum | None:
    """The Pulse quorum of ``(height, round_)`` on top of ``state`` (the parent's state)."""
    index = state_index(state)
    if not index.queue:
        return None
    leader = index.queue[0][2]
    return draw_pulse_quorum(
        leader, index.active, entropy, height, round_, min_nodes=state.params.pulse_min_nodes
    )


def finalize_template(template: Block, random_value: bytes, validators: int) -> tuple[Block, Hash32]:
    """The final block of a round: the template with its random value and validator bitset."""
    header = msgspec.structs.replace(template.header, random_value=random_value, validators=validators)
    return Block(header, template.events), compute_block_hash(header)


def validate_pulse(state: State, block: Block, entropy: bytes) -> PulseQuorum:
    """Raise :class:`InvalidBlock` unless ``block`` is its quorum's signed output; return the quorum."""
    header = block.header
    where = f"block {header.height}"
    if not 0 <= header.round <= MAX_PULSE_ROUND:
        raise InvalidBlock(f"{where}: round {header.round} is not a Pulse round (0..{MAX_PULSE_ROUND})")
    quorum = compute_block_quorum(state, entropy, header.height, header.round)
    if quorum is None:
        minimum = state.params.pulse_min_nodes
        raise InvalidBlock(f"{where}: fewer than {minimum} active service nodes: there is no Pulse quorum")
    if header.producer != quorum.producer:
        raise InvalidBlock(f"{where}: the producer is not round {header.round}'s producer")
    threshold, size = quorum.threshold, len(quorum.validators)
    named = [i for i in range(size) if header.validators >> i & 1]
    if header.validators >> size or len(named) < threshold:
        bound = f"at least {threshold} of {size} validators"
        raise InvalidBlock(f"{where}: the validator bitset must name {bound}")
    indices = [index for index, _ in block.signatures]
    if len(set(indices)) != len(indices):
        raise InvalidBlock(f"{where}: a validator signed twice")
    if len(indices) < threshold:
        raise InvalidBlock(f"{where}: {len(indices)} validator signatures, {threshold} of {size} needed")
    block_hash = compute_block_hash(header)
    for index, signature in block.signatures:
        if index not in named:
            raise InvalidBlock(f"{where}: a signature by validator {index}, who is not in the bitset")
        if not ed25519.verify(quorum.validators[index], block_hash, signature):
            raise InvalidBlock(f"{where}: the signature of validator {index} does not verify")
    return quorum


def check_pulse(state: State, block: Block, random_value_at: RandomValueAt) -> PulseQuorum | None:
    """Consensus checks of a block on top of ``state``: its quorum's producer and signatures,
    with the entropy of the lagged random values; the quorum (None for block 0, which has none)."""
    height = block.header.height
    if height == 0:
        return None
    if height != state.height + 1:  # its quorum is drawn from the parent's state and lagged headers
        raise InvalidBlock(f"block {height} does not follow the tip {state.height}")
    return validate_pulse(state, block, compute_block_entropy(random_value_at, height))
