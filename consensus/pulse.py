"""One Pulse round as a sans-IO state machine: messages and time in, actions out.

The same code runs in the node (a trio driver over p2p) and in the deterministic simulator.
Nothing here reads a clock, a socket or a random source: ``now`` is passed in, random values
come from an injected function, and what the round wants done comes back as actions.

Stages (PROTOCOL.md §4; Oxen ``pulse.cpp``):

1. **handshake**: each validator announces itself;
2. **bitset**: each validator sends the set of validators it heard from; the producer picks the
   most common bitset with at least ``threshold`` members (ties: more members, then the smaller
   value);
3. **template**: the producer sends the block template (events and state root) with that
   bitset; the validators in it are the participants, the others only observe;
4. **commit**: each participant sends ``blake2b-256(value)`` of 16 fresh random bytes;
5. **reveal**: each participant reveals its value (a value that does not match its commitment
   counts as missing);
6. **signature**: the block's random value is the first 16 bytes of ``blake2b-256`` of the
   revealed values in validator order; the participants sign the hash of the final block
   (template + random value + participant bitset) and everyone collects the signatures.

A stage **advances as soon as its messages are in**; its deadline only bounds it (Oxen #1846).
The first three stages fail the round if they end short. The late stages (commit, reveal,
signature) continue, at their deadline, with the participants that completed them, as long as
at least ``threshold`` remain (the quorum's T, :func:`consensus.quorum.compute_pulse_threshold`):
so on a full quorum one to four validators dropping at any stage still produce the block in this
round; five or more make the round fail, and the next round (a backup producer,
new validators) takes over. Every message is signed by its sender's node key and names the
parent block, height and round: anything else is ignored. Every signature this node makes
goes through its double-sign guard (:mod:`consensus.guard`); if the guard refuses, the node
drops out of the round rather than sign a second payload for a slot.

A known limit, shared with Oxen's design: each node reduces the late stages at its *own*
deadline, so a validator that lags by about a stage timeout can be counted by some members and
dropped by others; they then sign different final blocks and the round fails (never two blocks:
7 of 11 cannot sign both). The next round, with other members, usually succeeds. The simulator
measures how often (``rounds_used``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any

import msgspec

from consensus.guard import DoubleSign, GuardedSigner
from consensus.quorum import PulseQuorum
from state.crypto import ed25519
from state.encoding import Record, encode
from state.hashing import hash_tagged
from state.types import Ed25519Signature, Hash32, NodeKey

PRODUCER_INDEX = 255
BLOCK_SIGNATURE_SLOT = 10
"""Guard slot of the signature over the final block (the messages use their stage number)."""
RANDOM_VALUE_SIZE = 16


class Stage(IntEnum):
    HANDSHAKE = 0
    BITSET = 1
    TEMPLATE = 2
    COMMIT = 3
    REVEAL = 4
    SIGNATURE = 5
    DONE = 6
    FAILED = 7


# -- messages ------------------------------------------------------------------------------------


class PulseMessage(Record, frozen=True, tag="pulse"):
    """A signed Pulse message. ``kind`` is the stage it belongs to; ``payload`` its content:

    handshake: empty; bitset: the bitset (2 bytes, big-endian); template: the encoded template;
    commit: 32-byte commitment; reveal: 16-byte value; signature: 64-byte block signature.
    """

    parent: Hash32
    height: int
    round: int
    sender: int
    """Validator index 0..10, or 255 for the producer."""
    kind: int
    payload: bytes
    signature: Ed25519Signature = Ed25519Signature(bytes(64))


def compute_message_digest(message: PulseMessage) -> Hash32:
    return hash_tagged("pulse message", encode(msgspec.structs.replace(message, signature=bytes(64))))


def sign_message(message: PulseMessage, key: ed25519.SigningKey) -> PulseMessage:
    return msgspec.structs.replace(message, signature=key.sign(compute_message_digest(message)))


def compute_commitment(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=32).digest()


def compute_random_value(values: Sequence[bytes]) -> bytes:
    """The block's random value: the revealed values in validator order, hashed, 16 bytes."""
    return hashlib.blake2b(b"".join(values), digest_size=32).digest()[:RANDOM_VALUE_SIZE]


def bitset_of(indices: Sequence[int] | set[int]) -> int:
    return sum(1 << i for i in indices)


def members_of(bitset: int) -> list[int]:
    return [i for i in range(16) if bitset >> i & 1]


def choose_bitset(bitsets: Sequence[int], threshold: int) -> int | None:
    """The most common bitset with at least ``threshold`` members (ties: more members, smaller)."""
    counts = Counter(b for b in bitsets if bin(b).count("1") >= threshold)
    if not counts:
        return None
    return min(counts, key=lambda b: (-counts[b], -bin(b).count("1"), b))


# -- actions -------------------------------------------------------------------------------------


class Broadcast(Record, frozen=True, tag="broadcast"):
    message: PulseMessage


class WakeAt(Record, frozen=True, tag="wake"):
    time: float


class RoundFailed(Record, frozen=True, tag="failed"):
    stage: int
    reason: str
    heard: int = 0
    """Quorum members this node heard from in the round, itself included."""
    members: int = 0
    """The quorum's members: its producer and validators."""
    needed: int = 0
    """Validators the round needed (its threshold)."""


class BlockSigned(Record, frozen=True, tag="signed"):
    """The round's result: the final block and its (validator index, signature) pairs."""

    block: Any
    block_hash: Hash32
    signatures: tuple[tuple[int, Ed25519Signature], ...]


Action = Broadcast | WakeAt | RoundFailed | BlockSigned

Finalize = Callable[[Any, bytes, int], tuple[Any, Hash32]]
"""(template, random value, participant bitset) → (final block, its hash)."""


def to_ms(now: float) -> int:
    """A driver's clock reading (float seconds: trio's clock, the simulator's) in whole
    milliseconds, the unit of header timestamps and of the round schedule. Rounded to the nearest
    millisecond, so a time the core computed as ``ms / 1000`` converts back to exactly ``ms``."""
    return round(now * 1000)


class Timing(Record, frozen=True):
    """A node's Pulse deadlines, in whole **milliseconds** (config.toml's ``[consensus]``
    ``stage_timeout_ms`` and ``round_timeout_ms``).

    Milliseconds because the round schedule is computed from header timestamps, which are
    milliseconds: round ``r`` of a height starts at ``parent + block_time + r x round_timeout_ms``
    in integers, with no float drift however many rounds a stalled height runs
    (:mod:`consensus.node`). The clock the drivers pass in as ``now`` stays float seconds (trio's
    clock, the simulator's autojump clock); :attr:`stage_seconds` and :attr:`round_seconds` are
    the one place the round machine converts, when it sets a deadline on that clock."""

    stage_timeout_ms: int
    """Longest a stage may take (mainnet 10,000: 10 s)."""
    round_timeout_ms: int
    """Longest a round may take (mainnet 60,000: 60 s)."""

    @property
    def stage_seconds(self) -> float:
        return self.stage_timeout_ms / 1000

    @property
    def round_seconds(self) -> float:
        return self.round_timeout_ms / 1000


class PulseRound:
    """The round as one quorum member (or the producer) sees it."""

    def __init__(
        self,
        *,
        parent: Hash32,
        height: int,
        round_: int,
        quorum: PulseQuorum,
        me: GuardedSigner,
        start: float,
        timing: Timing,
        finalize: Finalize,
        random_source: Callable[[int], bytes],
        template: Any = None,
        decode_template: Callable[[bytes], Any] = lambda b: b,
        encode_template: Callable[[Any], bytes] = lambda t: t,
        validate_template: Callable[[Any, float], bool] = lambda t, now: True,
        threshold: int | None = None,
    ) -> None:
        self.parent = parent
        self.height = height
        self.round = round_
        self.quorum = quorum
        self.key = me
        self.timing = timing
        self.finalize = finalize
        self.random_source = random_source
        self.threshold = quorum.threshold if threshold is None else threshold
        """Members the bitset and the late stages need: the quorum's T (PROTOCOL.md §4a)."""
        self.decode_template = decode_template
        self.encode_template = encode_template
        self.validate_template = validate_template
        me_key = NodeKey(me.public_key)
        self.is_producer = me_key == quorum.producer
        self.index = PRODUCER_INDEX if self.is_producer else quorum.validators.index(me_key)
        if self.is_producer and template is None:
            raise ValueError("the producer needs its block template")
        self.template = template
        self.template_bitset: int | None = None
        self.stage = Stage.HANDSHAKE
        self.round_end = start + timing.round_seconds
        self.deadline = start + timing.stage_seconds
        self.stage_times: dict[str, float] = {}
        self._start = start
        self.handshakes: set[int] = set()
        self.bitsets: dict[int, int] = {}
        self.participants: list[int] = []
        self.commits: dict[int, bytes] = {}
        self.reveals: dict[int, bytes] = {}
        self.signatures: dict[int, Ed25519Signature] = {}
        self.block: Any = None
        self.block_hash: Hash32 | None = None
        self.my_value = b""
        self.early: list[PulseMessage] = []
        self.result: Action | None = None
        self.heard: set[int] = {self.index}
        """Quorum members (their sender index) this node heard from in the round, itself too."""

    # -- public handlers -------------------------------------------------------------------------

    def on_start(self) -> list[Action]:
        actions: list[Action] = []
        if not self.is_producer:
            self.handshakes.add(self.index)
            try:
                actions.append(self._send(Stage.HANDSHAKE, b""))
            except DoubleSign as exc:
                return self._fail(f"the double-sign guard refused: {exc}")
        actions.append(WakeAt(self.deadline))
        return actions + self._advance(self._start)

    def on_message(self, message: PulseMessage, now: float) -> list[Action]:
        if self.stage >= Stage.DONE or not self._is_authentic(message):
            return []
        self.heard.add(message.sender)
        if message.kind > self.stage:
            self.early.append(message)  # from a stage we have not reached: keep it for then
            return []
        self._record(message, now)
        return self._advance(now)

    def on_time(self, now: float) -> list[Action]:
        if self.stage >= Stage.DONE:
            return []
        if now >= self.round_end:
            return self._fail("the round timed out")
        if now < self.deadline:
            return []
        return self._on_deadline(now)

    # -- internals -------------------------------------------------------------------------------

    def _send(self, kind: Stage, payload: bytes) -> Broadcast:
        """Sign through the double-sign guard; a refusal raises :class:`DoubleSign`."""
        message = PulseMessage(self.parent, self.height, self.round, self.index, int(kind), payload)
        signature = self.key.sign(self.height, self.round, int(kind), compute_message_digest(message))
        return Broadcast(msgspec.structs.replace(message, signature=signature))

    def _sender_key(self, sender: int) -> NodeKey | None:
        if sender == PRODUCER_INDEX:
            return self.quorum.producer
        if 0 <= sender < len(self.quorum.validators):
            return self.quorum.validators[sender]
        return None

    def _is_authentic(self, message: PulseMessage) -> bool:
        if (message.parent, message.height, message.round) != (self.parent, self.height, self.round):
            return False
        if message.sender == self.index or not 0 <= message.kind <= Stage.SIGNATURE:
            return False
        key = self._sender_key(message.sender)
        if key is None or (message.kind == Stage.TEMPLATE) != (message.sender == PRODUCER_INDEX):
            return False
        return ed25519.verify(key, compute_message_digest(message), message.signature)

    def _record(self, message: PulseMessage, now: float) -> None:
        sender, payload = message.sender, message.payload
        if message.kind == Stage.HANDSHAKE:
            if self.stage == Stage.HANDSHAKE:
                self.handshakes.add(sender)
        elif message.kind == Stage.BITSET:
            if len(payload) == 2 and sender not in self.bitsets:
                self.bitsets[sender] = int.from_bytes(payload, "big")
        elif message.kind == Stage.TEMPLATE:
            if self.template is None and len(payload) > 2:
                try:
                    template = self.decode_template(payload[2:])
                except Exception:  # a template that does not decode is a missing template
                    return
                bitset = int.from_bytes(payload[:2], "big")
                if bin(bitset).count("1") >= self.threshold and self.validate_template(template, now):
                    self.template, self.template_bitset = template, bitset
        elif sender in self.participants:
            if message.kind == Stage.COMMIT and len(payload) == 32:
                self.commits.setdefault(sender, payload)
            elif message.kind == Stage.REVEAL and sender in self.commits:
                if compute_commitment(payload) == self.commits[sender] and len(payload) == RANDOM_VALUE_SIZE:
                    self.reveals.setdefault(sender, payload)
            elif message.kind == Stage.SIGNATURE and self.block_hash is not None and sender in self.reveals:
                key = self.quorum.validators[sender]
                if ed25519.verify(key, self.block_hash, payload):
                    self.signatures.setdefault(sender, Ed25519Signature(payload))

    def _is_stage_complete(self) -> bool:
        validators = len(self.quorum.validators)
        if self.stage == Stage.HANDSHAKE:
            return len(self.handshakes) == validators
        if self.stage == Stage.BITSET:
            return self.handshakes <= set(self.bitsets)
        if self.stage == Stage.TEMPLATE:
            return self.template_bitset is not None
        wanted = set(self.participants)
        if self.stage == Stage.COMMIT:
            return wanted <= set(self.commits)
        if self.stage == Stage.REVEAL:
            return wanted <= set(self.reveals)
        if self.stage == Stage.SIGNATURE:
            return wanted <= set(self.signatures)
        return False

    def _advance(self, now: float) -> list[Action]:
        actions: list[Action] = []
        try:
            while self.stage < Stage.DONE and self._is_stage_complete():
                actions += self._next_stage(now)
        except DoubleSign as exc:
            # e.g. restarted mid-round with a new random value: never sign it; drop out instead
            return actions + self._fail(f"the double-sign guard refused: {exc}")
        return actions

    def _on_deadline(self, now: float) -> list[Action]:
        try:
            return self._on_deadline_unguarded(now)
        except DoubleSign as exc:
            return self._fail(f"the double-sign guard refused: {exc}")

    def _on_deadline_unguarded(self, now: float) -> list[Action]:
        if self.stage in (Stage.HANDSHAKE, Stage.BITSET):
            return self._next_stage(now) + self._advance(now)  # go on with whoever answered
        if self.stage == Stage.TEMPLATE:
            return self._fail("no block template from the producer")
        done: set[int] = set(
            self.commits
            if self.stage == Stage.COMMIT
            else self.reveals
            if self.stage == Stage.REVEAL
            else self.signatures
        )
        remaining = [i for i in self.participants if i in done]
        if len(remaining) < self.threshold:
            return self._fail(f"only {len(remaining)} validators completed {self.stage.name.lower()}")
        self.participants = remaining
        return self._next_stage(now) + self._advance(now)

    def _enter(self, stage: Stage, now: float) -> list[Action]:
        self.stage_times[Stage(self.stage).name.lower()] = now - self._start
        self.stage = stage
        self.deadline = min(now + self.timing.stage_seconds, self.round_end)
        actions: list[Action] = [WakeAt(self.deadline)]
        replay, self.early = self.early, []
        for message in replay:
            if message.kind > self.stage:
                self.early.append(message)
            else:
                self._record(message, now)
        return actions

    @property
    def is_participant(self) -> bool:
        return self.index in self.participants

    def _next_stage(self, now: float) -> list[Action]:
        if self.stage == Stage.HANDSHAKE:
            actions = self._enter(Stage.BITSET, now)
            if not self.is_producer:
                self.bitsets[self.index] = bitset_of(self.handshakes)
                actions.append(self._send(Stage.BITSET, bitset_of(self.handshakes).to_bytes(2, "big")))
            return actions
        if self.stage == Stage.BITSET:
            if self.is_producer:
                best = choose_bitset(list(self.bitsets.values()), self.threshold)
                if best is None:
                    return self._fail("no handshake bitset has enough validators")
                self.template_bitset = best
                actions = self._enter(Stage.TEMPLATE, now)
                actions.append(
                    self._send(Stage.TEMPLATE, best.to_bytes(2, "big") + self.encode_template(self.template))
                )
                return actions
            return self._enter(Stage.TEMPLATE, now)
        if self.stage == Stage.TEMPLATE:
            assert self.template_bitset is not None
            # The producer's bitset decides who takes part; the others observe to the end.
            self.participants = members_of(self.template_bitset)
            actions = self._enter(Stage.COMMIT, now)
            if self.is_participant:
                self.my_value = self.random_source(RANDOM_VALUE_SIZE)
                self.commits[self.index] = compute_commitment(self.my_value)
                actions.append(self._send(Stage.COMMIT, self.commits[self.index]))
            return actions
        if self.stage == Stage.COMMIT:
            actions = self._enter(Stage.REVEAL, now)
            if self.is_participant:
                self.reveals[self.index] = self.my_value
                actions.append(self._send(Stage.REVEAL, self.my_value))
            return actions
        if self.stage == Stage.REVEAL:
            values = [self.reveals[i] for i in self.participants]
            random_value = compute_random_value(values)
            self.block, self.block_hash = self.finalize(
                self.template, random_value, bitset_of(self.participants)
            )
            actions = self._enter(Stage.SIGNATURE, now)
            if self.is_participant:
                signature = self.key.sign(self.height, self.round, BLOCK_SIGNATURE_SLOT, self.block_hash)
                self.signatures[self.index] = signature
                actions.append(self._send(Stage.SIGNATURE, signature))
            return actions
        if self.stage == Stage.SIGNATURE:
            signatures = tuple(sorted((i, self.signatures[i]) for i in self.participants))
            assert self.block_hash is not None
            return self._finish(BlockSigned(self.block, self.block_hash, signatures), now)
        raise AssertionError(f"no stage after {self.stage}")

    def _fail(self, reason: str, now: float | None = None) -> list[Action]:
        members = 1 + len(self.quorum.validators)
        failed = RoundFailed(int(self.stage), reason, len(self.heard), members, self.threshold)
        return self._finish(failed, now)

    def _finish(self, result: Action, now: float | None = None) -> list[Action]:
        ended = self.deadline if now is None else now
        self.stage_times[Stage(self.stage).name.lower()] = ended - self._start
        self.stage = Stage.DONE if isinstance(result, BlockSigned) else Stage.FAILED
        self.result = result
        return [result]
