"""Quorums of the Pulse consensus: pure functions of (active nodes, entropy, height, round).

**Pulse quorum** (PROTOCOL.md §4; 1 producer + 11 validators, needs 12 active nodes):

1. the *leader* is the head of the reward queue: the active node with the smallest
   ``(last_reward_height, registration order, key)`` (:func:`state.nodes.compute_reward_queue`);
2. the *candidates* are the other active nodes, sorted by key;
3. a :class:`~state.sampler.Sampler` tagged ``pulse`` and seeded with
   ``entropy || height (8 bytes, big-endian) || round (1 byte)`` samples 12 of the candidates
   (``Sampler.sample``: 12 draws, whatever the number of nodes);
4. round 0: the producer is the leader and the validators are the first 11 sampled candidates;
   round r > 0: the producer is the first sampled candidate (a backup producer) and the
   validators are the next 11 (so every round redraws them, and a failed leader does not stall
   the chain).

**Entropy**: :func:`compute_pulse_entropy` hashes the 16-byte random values of the lagged blocks
``tip-21 .. tip-10`` in height order (missing heights near genesis contribute nothing).

**Checkpoint quorum** (drawn in the state, :mod:`state.checkpoints`): the active nodes after the
previous checkpoint, sorted by key, sampled by a sampler tagged ``checkpoint`` seeded with
that checkpoint's parent hash and the height: 20 of them (all of them if fewer). A
certificate needs at least two thirds of it, rounded up: 14 of 20. (PROTOCOL.md says "13 of 20
(two thirds, rounded up)", but 13/20 is under two thirds; the issue asks for ≥ 2/3, which is also
the safer reading: two conflicting certificates then need 8 double signers instead of 6.)

The vectors in ``tests/vectors/quorums.json`` pin every draw, so another implementation can be
checked against this one.
"""

from __future__ import annotations

from collections.abc import Sequence

from state.checkpoints import (
    CHECKPOINT_INTERVAL,
    CHECKPOINT_QUORUM_SIZE,
    compute_checkpoint_seed,
    is_checkpoint_height,
    select_checkpoint_members,
)
from state.encoding import Record
from state.hashing import hash_tagged
from state.sampler import Sampler
from state.types import Hash32, NodeKey

PULSE_VALIDATORS = 11
PULSE_MIN_NODES = PULSE_VALIDATORS + 1
PULSE_THRESHOLD = 7

MAX_PULSE_ROUND = 255
"""Rounds are one byte (Oxen's ``pulse round`` is a ``uint8``); Oxen falls back to mining after
the last one, this chain has no such fallback, so a height that fails 256 rounds waits."""
ENTROPY_LAG_FIRST = 21
ENTROPY_LAG_LAST = 10


class PulseQuorum(Record, frozen=True):
    producer: NodeKey
    validators: tuple[NodeKey, ...]


def compute_pulse_entropy(random_values: Sequence[bytes]) -> Hash32:
    """The entropy of a height: the lagged blocks' random values, in height order."""
    return hash_tagged("pulse entropy", b"".join(random_values))


def compute_pulse_quorum(
    leader: NodeKey, active: Sequence[NodeKey], entropy: bytes, height: int, round_: int
) -> PulseQuorum | None:
    """The producer and validators of ``(height, round_)``; ``None`` with too few active nodes."""
    if len(active) < PULSE_MIN_NODES or leader not in active:
        return None
    if not 0 <= round_ <= MAX_PULSE_ROUND:
        raise ValueError(f"a round is 0..{MAX_PULSE_ROUND}")
    sampler = Sampler("pulse", bytes(entropy) + height.to_bytes(8, "big") + bytes([round_]))
    candidates = sampler.sample(sorted(k for k in active if k != leader), PULSE_VALIDATORS + 1)
    if round_ == 0:
        return PulseQuorum(leader, tuple(candidates[:PULSE_VALIDATORS]))
    return PulseQuorum(candidates[0], tuple(candidates[1 : PULSE_VALIDATORS + 1]))


def compute_checkpoint_quorum(
    active: Sequence[NodeKey], seed_hash: bytes, height: int
) -> tuple[NodeKey, ...]:
    """The checkpoint quorum of ``height``: 20 active nodes (all if fewer); see :mod:`state.checkpoints`."""
    return tuple(select_checkpoint_members(active, compute_checkpoint_seed(seed_hash, height)))


def compute_checkpoint_threshold(quorum_size: int) -> int:
    """Two thirds of the quorum, rounded up: ``ceil(2n / 3)``."""
    return (2 * quorum_size + 2) // 3


__all__ = [
    "CHECKPOINT_INTERVAL",
    "CHECKPOINT_QUORUM_SIZE",
    "PULSE_MIN_NODES",
    "PULSE_THRESHOLD",
    "PULSE_VALIDATORS",
    "PulseQuorum",
    "compute_checkpoint_quorum",
    "compute_checkpoint_threshold",
    "compute_pulse_entropy",
    "compute_pulse_quorum",
    "is_checkpoint_height",
]
