"""A Pulse round run in one process, for development tools (``dev-chain``, tests, benchmarks).

It produces exactly what a networked round produces, through the same rules: the participants'
random values hashed in validator order (:func:`consensus.pulse.compute_random_value`), the
template finalized with that value and the participant bitset
(:func:`consensus.validation.finalize_template`), and each participant's signature over the block
hash. It needs the node keys of the producer and of the quorum's threshold of validators (7 of 11
on a full quorum); whoever's key is missing simply does not take part, as a validator that
dropped out would not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from consensus.pulse import bitset_of, compute_random_value
from consensus.quorum import PulseQuorum
from consensus.validation import finalize_template
from state.block import Block
from state.crypto import ed25519


def can_sign(quorum: PulseQuorum, keys: Mapping[bytes, ed25519.SigningKey]) -> bool:
    return quorum.producer in keys and sum(v in keys for v in quorum.validators) >= quorum.threshold


def sign_round_locally(
    template: Block,
    quorum: PulseQuorum,
    keys: Mapping[bytes, ed25519.SigningKey],
    random_source: Callable[[int], bytes],
) -> Block:
    participants = [i for i, validator in enumerate(quorum.validators) if validator in keys]
    if len(participants) < quorum.threshold or quorum.producer not in keys:
        raise ValueError("not enough quorum keys to sign the round")
    random_value = compute_random_value([random_source(16) for _ in participants])
    block, block_hash = finalize_template(template, random_value, bitset_of(participants))
    signatures = tuple((i, keys[quorum.validators[i]].sign(block_hash)) for i in participants)
    return Block(block.header, block.events, signatures)
