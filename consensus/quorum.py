"""Quorums of the Pulse consensus: pure functions of (active nodes, entropy, height, round).

**Pulse quorum** (PROTOCOL.md §4, §4a): 1 producer and V = min(11, N − 1) validators, where N is
the number of active nodes; there is none when N is below the chain's ``pulse_min_nodes``.

1. the *leader* is the head of the reward queue: the active node with the smallest
   ``(last_reward_height, registration order, key)`` (:func:`state.nodes.compute_reward_queue`);
2. the *candidates* are the other active nodes, sorted by key;
3. a :class:`~state.sampler.Sampler` tagged ``pulse`` and seeded with
   ``entropy || height (8 bytes, big-endian) || round`` samples 12 of the candidates
   (``Sampler.sample``: 12 draws, whatever the number of nodes; all of them, in drawn order,
   when there are fewer). The round is one byte below 256 and two (big-endian) from 256 on:
   rounds are 16 bits (§4a), and every draw of rounds 0..255 is the one it always was;
4. round 0: the producer is the leader and the validators are the first 11 sampled candidates;
   round r > 0: the producer is the first sampled candidate (a backup producer) and the
   validators are the next 11 (so every round redraws them, and a failed leader does not stall
   the chain).

With 12 or more active nodes that is the whole rule, as it always was (with exactly 12, a round
r > 0 has 10 validators: the leader sits it out). With fewer (§4a), every active node takes part:
round 0 has the N − 1 candidates as validators; a round r > 0 has the other N − 2 candidates
and then the leader, so that a leader that is down costs a round its production, never a
validator seat in every round.

A block needs T = ⌈7V/11⌉ validator signatures (:func:`compute_pulse_threshold`: 7 of 11, 7 of
10, 6 of 9, 5 of 7, 3 of 4, 2 of 3), which is more than half of V for every V, so two blocks of
one round cannot both be signed without a double signer. Finality still needs two thirds of a
checkpoint quorum (below), so safety does not rest on Pulse's T.

**Entropy**: :func:`compute_pulse_entropy` hashes the 16-byte random values of the lagged blocks
``tip-21 .. tip-10`` in height order (missing heights near genesis contribute nothing).

**Checkpoint quorum** (drawn in the state, :mod:`state.checkpoints`): the active nodes after the
previous checkpoint, sorted by key, sampled by a sampler tagged ``checkpoint`` seeded with
that checkpoint's parent hash and the height: 20 of them (all of them if fewer). A
certificate needs at least two thirds of it, rounded up: 14 of 20, 3 of 4. (PROTOCOL.md says
"13 of 20 (two thirds, rounded up)", but 13/20 is under two thirds; the issue asks for ≥ 2/3,
which is also the safer reading: two conflicting certificates then need 8 double signers instead
of 6.)

The vectors in ``tests/vectors/quorums.json`` pin every draw, so another implementation can be
checked against this one.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from state.checkpoints import (
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
"""Validators of a full quorum."""
PULSE_THRESHOLD = 7
"""Signatures a block of a full quorum needs."""
FULL_QUORUM_NODES = PULSE_VALIDATORS + 1
"""Active nodes from which every quorum is drawn as on mainnet (Oxen's Pulse minimum)."""

MAX_PULSE_ROUND = 65_535
"""Rounds are 16 bits (PROTOCOL.md §4a; Oxen's one byte ran out after 256 rounds, where it falls
back to mining, which this chain does not have): at a round every ``round_timeout_ms`` (60 s on
mainnet) a height can fail for 45 days before its rounds run out."""
ENTROPY_LAG_FIRST = 21
ENTROPY_LAG_LAST = 10


def compute_pulse_threshold(validators: int) -> int:
    """Validator signatures a block of a quorum of ``validators`` needs: ⌈7V/11⌉."""
    return (PULSE_THRESHOLD * validators + PULSE_VALIDATORS - 1) // PULSE_VALIDATORS


class PulseQuorum(Record, frozen=True):
    producer: NodeKey
    validators: tuple[NodeKey, ...]

    @property
    def threshold(self) -> int:
        """Validator signatures a block of this quorum needs (and handshake bitset members)."""
        return compute_pulse_threshold(len(self.validators))


def compute_pulse_entropy(random_values: Sequence[bytes]) -> Hash32:
    """The entropy of a height: the lagged blocks' random values, in height order."""
    return hash_tagged("pulse entropy", b"".join(random_values))


def _round_bytes(round_: int) -> bytes:
    return bytes([round_]) if round_ < 256 else round_.to_bytes(2, "big")


def compute_pulse_quorum(
    leader: NodeKey, active: Sequence[NodeKey], entropy: bytes, height: int, round_: int, *, min_nodes: int
) -> PulseQuorum | None:
    """The producer and validators of ``(height, round_)``; ``None`` with fewer than
    ``min_nodes`` active nodes (the chain's ``pulse_min_nodes``)."""
    return draw_pulse_quorum(leader, sorted(active), entropy, height, round_, min_nodes=min_nodes)


def draw_pulse_quorum(
    leader: NodeKey,
    sorted_active: Sequence[NodeKey],
    entropy: bytes,
    height: int,
    round_: int,
    *,
    min_nodes: int,
) -> PulseQuorum | None:
    """:func:`compute_pulse_quorum` of active nodes already sorted by key (a node index's): it
    reads the leader's place and the 12 drawn candidates, not the whole list, so a draw costs
    the same among 12 nodes as among 5,000."""
    place = bisect_left(sorted_active, leader)
    if len(sorted_active) < max(2, min_nodes):
        return None
    if place == len(sorted_active) or sorted_active[place] != leader:
        return None
    if not 0 <= round_ <= MAX_PULSE_ROUND:
        raise ValueError(f"a round is 0..{MAX_PULSE_ROUND}")
    sampler = Sampler("pulse", bytes(entropy) + height.to_bytes(8, "big") + _round_bytes(round_))
    candidates = sampler.sample(sorted_active, PULSE_VALIDATORS + 1, excluding=(place,))
    if round_ == 0:
        return PulseQuorum(leader, tuple(candidates[:PULSE_VALIDATORS]))
    if len(sorted_active) < FULL_QUORUM_NODES:  # a small set: the leader validates the backup rounds
        return PulseQuorum(candidates[0], (*candidates[1:], leader))
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
    "CHECKPOINT_QUORUM_SIZE",
    "FULL_QUORUM_NODES",
    "MAX_PULSE_ROUND",
    "PULSE_THRESHOLD",
    "PULSE_VALIDATORS",
    "PulseQuorum",
    "compute_checkpoint_quorum",
    "compute_checkpoint_threshold",
    "compute_pulse_entropy",
    "compute_pulse_quorum",
    "compute_pulse_threshold",
    "draw_pulse_quorum",
    "is_checkpoint_height",
]
