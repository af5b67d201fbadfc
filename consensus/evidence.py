"""Equivocation evidence: two validly signed messages from one signer for one slot.

A *slot* is the double-sign guard's (:mod:`consensus.guard`): ``(height, round, stage)``, with
the Pulse stage number for a Pulse message, ``CHECKPOINT`` (round 0) for a checkpoint vote and
``VOTE`` (round = the worker's index) for an obligations vote. An honest node's guard never lets
it sign two payloads for one slot, so two messages that a quorum member signed for one slot with
different payloads prove it double signed:

- **Pulse** (:class:`~consensus.pulse.PulseMessage`): two messages of one stage of one round
  from the producer (two block templates: two proposals) or a validator (two handshake bitsets,
  random-value commitments or reveals, or block signatures) whose signed digests differ;
- **checkpoint votes** (:class:`~consensus.messages.CheckpointVote`): two BLS signatures by one
  checkpoint quorum member over two block hashes at one height;
- **obligations votes** (:class:`~consensus.messages.VoteMessage`): two signatures by one
  obligations validator over different verdicts (new state or reason bits) on one worker.

Only what verifies counts: a message whose signature does not verify with the key of the quorum
member it names is a forgery, and a forger cannot frame a node; a message from outside the
slot's quorum (an unknown round, an index past the quorum) is not evidence either. The same
message twice is no evidence.

:class:`EvidenceBook` is each node's memory for this, sans-IO: the node core feeds it what
arrives and emits an :class:`~consensus.node.Equivocation` action with the :class:`Evidence`;
the driver keeps it (``appchain`` writes it to its store and serves it over JSON-RPC). The book
keeps the *first* message of each signer in each slot, unchecked (the Pulse round checks its
messages, and checkpoint votes are checked as one aggregate: a check per message on arrival would
add an Ed25519 or BLS verification to each), and checks signatures only when a second, different
message arrives: if the first one then fails, it was a forgery and the second takes its place,
so a forger who speaks first can neither frame the signer nor hide its later equivocation; each
forgery costs the node at most two checks.
Memory is bounded: Pulse slots of the last :data:`ROUNDS_KEPT` rounds this node took part in,
vote slots of the heights within :data:`EVIDENCE_WINDOW` of the tip whose quorum the state still
holds, one message per signer and slot, and one report per signer and slot.

:func:`verify_evidence` is the check anyone can run on a record: both signatures verify with the
key it names, both messages are of the slot, and what was signed differs. What it cannot check
alone is that the key belonged to the slot's quorum: a client looks that up on the chain
(``get_quorum_state``, ``get_checkpoint``'s ``next_quorum``, ``get_service_nodes``'
``pubkey_bls``), and checks ``chain_id`` is its chain's.

Evidence is **recorded and served, not put on chain, and nobody is penalised for it here**.
Slashing would make evidence a consensus rule: every node would have to agree which evidence a
block may carry, within which window, against which quorum, and what it costs the signer (an
event type, a state change and its replay protection). CometBFT commits evidence in blocks and
leaves the punishment to the application; Oxen has no slashing at all and penalises service
nodes only through the obligations quorum (decommission and deregistration, which cost rewards
and lock stakes). Either is a change of the state machine for a later issue; this module gives
it its input: a record whose check is :func:`verify_evidence` plus the quorum membership from
the state.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from consensus.checkpoint import compute_checkpoint_message
from consensus.guard import CHECKPOINT, VOTE
from consensus.messages import CheckpointVote, Message, VoteMessage, decode_message
from consensus.pulse import PRODUCER_INDEX, PulseMessage, Stage, compute_message_digest
from consensus.quorum import PulseQuorum
from state.checkpoints import CheckpointQuorum
from state.crypto import bls, ed25519
from state.encoding import DecodeError, Record, encode
from state.events import compute_vote_message
from state.obligations import ObligationsQuorum
from state.types import U32, U64, BlsPublicKey, Hash32, NodeKey

EVIDENCE_WINDOW = 64
"""Heights below the tip whose vote slots a node remembers (votes live 60 blocks)."""
ROUNDS_KEPT = 8
"""Pulse rounds whose first messages a node remembers (a height usually takes one)."""


class EvidenceKind(StrEnum):
    PULSE = "pulse"
    CHECKPOINT_VOTE = "checkpoint_vote"
    OBLIGATIONS_VOTE = "obligations_vote"


class Evidence(Record, frozen=True):
    """Two messages one node signed for one slot, each as it travelled (with its signature)."""

    chain_id: str
    height: U64
    round: U32
    """The Pulse round; the worker's index for an obligations vote; 0 for a checkpoint vote."""
    stage: U32
    """The Pulse stage (0..5), ``CHECKPOINT`` (100) or ``VOTE`` (101): the guard's numbering."""
    signer: NodeKey
    """The Ed25519 node key of the signer (for a checkpoint vote: the member's node key)."""
    signer_bls: BlsPublicKey | None
    """The BLS key that signed, for checkpoint votes; None otherwise."""
    first: bytes
    """The canonical encoding (the wire bytes) of the first message received."""
    second: bytes
    """The same of the second, conflicting message."""

    @property
    def kind(self) -> EvidenceKind:
        return kind_of_stage(self.stage)


class InvalidEvidence(ValueError):
    """A record that does not prove an equivocation."""


def kind_of_stage(stage: int) -> EvidenceKind:
    if Stage.HANDSHAKE <= stage <= Stage.SIGNATURE:
        return EvidenceKind.PULSE
    if stage == CHECKPOINT:
        return EvidenceKind.CHECKPOINT_VOTE
    if stage == VOTE:
        return EvidenceKind.OBLIGATIONS_VOTE
    raise InvalidEvidence(f"stage {stage} is no signed slot (Pulse 0..5, checkpoint 100, vote 101)")


# -- what each kind of message signs -----------------------------------------------------------


def is_pulse_shape(message: PulseMessage) -> bool:
    """A stage message as the protocol has them: templates from the producer only, the other
    stages from validators only (what :class:`~consensus.pulse.PulseRound` accepts)."""
    if not Stage.HANDSHAKE <= message.kind <= Stage.SIGNATURE:
        return False
    return (message.kind == Stage.TEMPLATE) == (message.sender == PRODUCER_INDEX)


def compute_signed_digest(chain_id: str, message: Message) -> bytes:
    """What the signer of ``message`` signed (two messages of a slot conflict when it differs)."""
    if isinstance(message, PulseMessage):
        return compute_message_digest(message)
    if isinstance(message, CheckpointVote):
        return compute_checkpoint_message(chain_id, message.height, message.block_hash)
    if isinstance(message, VoteMessage):
        return compute_vote_message(
            chain_id, message.quorum_height, message.worker_index, message.new_state, message.vote.reasons
        )
    raise InvalidEvidence(f"a {type(message).__name__} is not a signed consensus vote or stage message")


def is_signed_by(chain_id: str, message: Message, key: bytes) -> bool:
    """Whether ``message``'s signature verifies with ``key`` (Ed25519, or BLS for a checkpoint vote)."""
    digest = compute_signed_digest(chain_id, message)
    if isinstance(message, CheckpointVote):
        return bls.verify(key, digest, message.signature)
    if isinstance(message, VoteMessage):
        return ed25519.verify(key, digest, message.vote.signature)
    assert isinstance(message, PulseMessage)  # compute_signed_digest refused any other type
    return ed25519.verify(key, digest, message.signature)


def _slot_of(message: Message) -> tuple[int, int, int]:
    if isinstance(message, PulseMessage):
        return message.height, message.round, message.kind
    if isinstance(message, CheckpointVote):
        return message.height, 0, CHECKPOINT
    if isinstance(message, VoteMessage):
        return message.quorum_height, message.worker_index, VOTE
    raise InvalidEvidence(f"a {type(message).__name__} has no signed slot")


def _position_of(message: Message) -> int:
    """The signer's place in the slot's quorum, as the message names it."""
    if isinstance(message, PulseMessage):
        return message.sender
    if isinstance(message, CheckpointVote):
        return message.member
    if isinstance(message, VoteMessage):
        return message.vote.validator_index
    raise InvalidEvidence(f"a {type(message).__name__} names no signer")


# -- checking a record ---------------------------------------------------------------------------


_MESSAGE_TYPES: dict[EvidenceKind, type] = {
    EvidenceKind.PULSE: PulseMessage,
    EvidenceKind.CHECKPOINT_VOTE: CheckpointVote,
    EvidenceKind.OBLIGATIONS_VOTE: VoteMessage,
}


def decode_evidence(evidence: Evidence) -> tuple[Message, Message]:
    """The two messages of a well-formed record: each of its kind's type and of its slot, both
    naming one quorum position, signing different payloads, and a BLS key exactly for checkpoint
    votes; :class:`InvalidEvidence` if not. The signatures are :func:`verify_evidence`'s."""
    kind = evidence.kind
    first = _decode_one("first", evidence.first, _MESSAGE_TYPES[kind])
    second = _decode_one("second", evidence.second, _MESSAGE_TYPES[kind])
    slot = (evidence.height, evidence.round, evidence.stage)
    for name, message in (("first", first), ("second", second)):
        if _slot_of(message) != slot:
            raise InvalidEvidence(f"the {name} message is of slot {_slot_of(message)}, not {slot}")
        if isinstance(message, PulseMessage) and not is_pulse_shape(message):
            raise InvalidEvidence(f"the {name} message is no stage message its sender would send")
    if _position_of(first) != _position_of(second):
        raise InvalidEvidence("the two messages name different quorum positions")
    if compute_signed_digest(evidence.chain_id, first) == compute_signed_digest(evidence.chain_id, second):
        raise InvalidEvidence("both messages sign the same payload: that is no equivocation")
    if (evidence.signer_bls is not None) != (kind == EvidenceKind.CHECKPOINT_VOTE):
        raise InvalidEvidence("a BLS key belongs to checkpoint-vote evidence, and only there")
    return first, second


def _decode_one(name: str, data: bytes, wanted: type) -> Message:
    try:
        message = decode_message(data)
    except DecodeError as exc:
        raise InvalidEvidence(f"the {name} message does not decode: {exc}") from None
    if not isinstance(message, wanted):
        raise InvalidEvidence(f"the {name} message is a {type(message).__name__}, not a {wanted.__name__}")
    return message


def verify_evidence(evidence: Evidence) -> None:
    """Raise :class:`InvalidEvidence` unless ``evidence`` proves that its signer signed two
    different payloads for its slot: well formed (:func:`decode_evidence`), and both signatures
    verify with the key it names. (Whether that key was in the slot's quorum is for the caller
    to look up on the chain: see the module's docstring.)"""
    messages = decode_evidence(evidence)
    key = evidence.signer if evidence.signer_bls is None else evidence.signer_bls
    for name, message in zip(("first", "second"), messages, strict=True):
        if not is_signed_by(evidence.chain_id, message, key):
            raise InvalidEvidence(f"the {name} message's signature does not verify with the signer's key")


# -- catching it -------------------------------------------------------------------------------


@dataclass
class _First:
    """The first message a signer sent for a slot; ``verified`` once its signature was checked."""

    message: Message
    content: bytes
    verified: bool = False


Slot = tuple[int, int, int]
"""(height, round, stage)."""


@dataclass
class _Signer:
    node_key: NodeKey
    key: bytes
    """The key its messages of this kind verify with (the BLS key for checkpoint votes)."""


class EvidenceBook:
    """One node's memory of first messages per signer and slot; finds equivocation in what arrives."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        self.slots: dict[Slot, dict[bytes, _First]] = {}
        self.reported: dict[Slot, set[bytes]] = {}
        self.rounds: OrderedDict[tuple[int, int], tuple[Hash32, PulseQuorum]] = OrderedDict()

    # -- what the core tells it ------------------------------------------------------------------

    def on_round(self, parent: Hash32, height: int, round_: int, quorum: PulseQuorum) -> None:
        """This node takes part in Pulse round ``(height, round_)`` on ``parent``: remember its
        quorum, and forget the oldest round past :data:`ROUNDS_KEPT`."""
        self.rounds[(height, round_)] = (parent, quorum)
        self.rounds.move_to_end((height, round_))
        while len(self.rounds) > ROUNDS_KEPT:
            (old_height, old_round), _ = self.rounds.popitem(last=False)
            for stage in range(Stage.HANDSHAKE, Stage.SIGNATURE + 1):
                self._forget((old_height, old_round, stage))

    def forget_below(self, height: int) -> None:
        """Forget every slot below ``height`` (the core passes its tip less :data:`EVIDENCE_WINDOW`)."""
        for slot in [s for s in self.slots if s[0] < height]:
            self._forget(slot)
        for key in [k for k in self.rounds if k[0] < height]:
            del self.rounds[key]

    def _forget(self, slot: Slot) -> None:
        self.slots.pop(slot, None)
        self.reported.pop(slot, None)

    # -- messages in -----------------------------------------------------------------------------

    def on_pulse_message(self, message: PulseMessage) -> Evidence | None:
        known = self.rounds.get((message.height, message.round))
        if known is None or not is_pulse_shape(message):
            return None
        parent, quorum = known
        if message.parent != parent:
            return None
        if message.sender == PRODUCER_INDEX:
            key = quorum.producer
        elif 0 <= message.sender < len(quorum.validators):
            key = quorum.validators[message.sender]
        else:
            return None
        return self._observe(message, message.payload, _Signer(key, key))

    def on_checkpoint_vote(self, vote: CheckpointVote, quorum: CheckpointQuorum | None) -> Evidence | None:
        """A checkpoint vote, with the quorum of its height as the state holds it (None: unknown)."""
        if quorum is None or vote.member >= len(quorum.members):
            return None
        member = quorum.members[vote.member]
        return self._observe(vote, bytes(vote.block_hash), _Signer(member.node_key, member.bls_key))

    def on_obligations_vote(self, message: VoteMessage, quorum: ObligationsQuorum | None) -> Evidence | None:
        """An obligations vote, with the quorum of its height as the state holds it (None: unknown)."""
        index = message.vote.validator_index
        if quorum is None or not 0 <= index < len(quorum.validators):
            return None
        if message.worker_index >= len(quorum.workers):
            return None
        key = quorum.validators[index]
        content = encode((message.new_state, message.vote.reasons))
        return self._observe(message, content, _Signer(key, key))

    def _observe(self, message: Message, content: bytes, signer: _Signer) -> Evidence | None:
        slot = _slot_of(message)
        firsts = self.slots.setdefault(slot, {})
        first = firsts.get(signer.node_key)
        if first is None:
            firsts[signer.node_key] = _First(message, content)
            return None
        if first.content == content or signer.node_key in self.reported.get(slot, ()):
            return None

        def signed(candidate: Message) -> bool:
            return is_signed_by(self.chain_id, candidate, signer.key)

        if not first.verified and not signed(first.message):
            # the first was a forgery: the second takes its place if it is genuine
            if signed(message):
                firsts[signer.node_key] = _First(message, content, verified=True)
            else:
                del firsts[signer.node_key]
            return None
        first.verified = True
        if not signed(message):
            return None
        self.reported.setdefault(slot, set()).add(signer.node_key)
        height, round_, stage = slot
        return Evidence(
            self.chain_id,
            height,
            round_,
            stage,
            signer.node_key,
            BlsPublicKey(signer.key) if isinstance(message, CheckpointVote) else None,
            encode(first.message),
            encode(message),
        )
