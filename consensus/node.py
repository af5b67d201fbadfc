"""The node core: one service node's consensus, sans-IO.

Everything a service node decides lives here: when to start a Pulse round and with which
template, which blocks to accept, fork choice below finality, checkpoint votes and their
aggregation into certificates, finality, sync decisions, uptime proofs and the obligations
tests with their state-change votes. It does no I/O and reads no clock: its drivers call

- :meth:`NodeCore.on_message` when a message arrives from a peer,
- :meth:`NodeCore.on_time` when the local time reaches :meth:`NodeCore.next_wake`,
- :meth:`NodeCore.start` once, and :meth:`NodeCore.on_restart` after a crash,

each with the node's local time, and carry out the :data:`Action` values they return: send a
message to one node, gossip it to every peer, ask a few peers, or keep the evidence of an
equivocation it caught (:mod:`consensus.evidence`: two validly signed messages from one quorum
member for one slot of a Pulse round, a checkpoint vote or an obligations vote). Two drivers
exist: the deterministic simulator (:mod:`consensus.simulator`, with a
:class:`~consensus.ledger.MemoryLedger`) and the process node (:mod:`appchain.node.node`, over p2p and
the LevelDB chain). The chain itself is a :class:`~consensus.ledger.Ledger`; the double-sign
guard's record is the driver's too (memory in the simulator, the database in the node), so
nothing is signed twice for one slot.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from consensus.budget import TemplateBudget
from consensus.checkpoint import (
    CheckpointCertificate,
    InvalidCertificate,
    aggregate_certificate,
    compute_checkpoint_message,
    verify_certificate,
)
from consensus.evidence import EVIDENCE_WINDOW, Evidence, EvidenceBook
from consensus.forkchoice import prefer_candidate
from consensus.guard import CHECKPOINT, VOTE, DoubleSign, GuardedSigner
from consensus.ledger import ExecutedTemplates, Ledger
from consensus.mempool import Mempool, MempoolFull
from consensus.messages import (
    PROOF_BATCH,
    SYNC_BATCH,
    Certified,
    CheckpointVote,
    Message,
    Proofs,
    ProofsRequest,
    SignedBlock,
    SyncRequest,
    SyncResponse,
    TxBatch,
    TxMessage,
    VoteMessage,
)
from consensus.pulse import (
    BlockSigned,
    Broadcast,
    PulseMessage,
    PulseRound,
    RoundFailed,
    Stage,
    Timing,
    WakeAt,
    to_ms,
)
from consensus.quorum import MAX_PULSE_ROUND, compute_checkpoint_threshold
from consensus.topology import FreshNodes
from consensus.uptime import (
    ProofBook,
    PulseRecord,
    QuorumCop,
    Reachability,
    UptimeProof,
    UptimeRules,
    compute_test_reasons,
    sign_proof,
)
from consensus.validation import compute_block_entropy, compute_block_quorum, finalize_template
from state.block import Block, compute_block_hash
from state.checkpoints import get_checkpoint_quorum, is_checkpoint_height
from state.crypto import bls, ed25519
from state.encoding import Decoder, Record, encode
from state.errors import InvalidBlock, InvalidEvent, InvalidSignature
from state.events import Event, NewState, StateChange, Transaction, Vote, compute_vote_message
from state.nodeindex import node_lists
from state.noderecords import NodeStatus
from state.nodes import get_node
from state.obligations import compute_vote_threshold, get_quorum
from state.state import State
from state.transition import execute_block, propose_block
from state.types import Hash32, Height, NodeKey
from state.view import Overlay

MAX_ROUND = MAX_PULSE_ROUND
"""Rounds keep counting while a height fails (Oxen caps them at 255 and falls back to mining;
this chain has no mining, so a stalled chain resumes as soon as a quorum is back). The bound is
the width of the double-sign guard's round field."""
EARLY_PULSE_LIMIT = 1_024
"""Pulse messages kept for rounds this node has not started yet (see :meth:`NodeCore.on_message`)."""
DIRECTORY_PEERS = 2
"""Peers a node asks for the uptime proofs they hold when it starts (:meth:`NodeCore.on_peer_connected`)."""


# -- actions -------------------------------------------------------------------------------------


class Send(Record, frozen=True, tag="send"):
    """Send ``message`` to the node ``to`` (a quorum member, or the peer that asked)."""

    to: NodeKey
    message: Message


class Gossip(Record, frozen=True, tag="gossip"):
    """Send ``message`` to every peer (they pass on what is new to them)."""

    message: Message


class AskPeers(Record, frozen=True, tag="ask"):
    """Send ``message`` to ``count`` peers of the driver's choosing (sync requests)."""

    message: Message
    count: int


class Applied(Record, frozen=True, tag="applied"):
    """A block became part of our chain (for logs, metrics and the simulator's checks)."""

    block: Block
    validators: tuple[NodeKey, ...]


class Finalized(Record, frozen=True, tag="finalized"):
    height: int
    block_hash: Hash32


class Penalize(Record, frozen=True, tag="penalize"):
    """``peer`` sent something provably wrong: score it down, or with ``drop`` disconnect and
    ban it (it served an invalid block)."""

    peer: NodeKey
    reason: str
    drop: bool = False


class Equivocation(Record, frozen=True, tag="equivocation"):
    """A quorum member signed two different payloads for one slot: keep the evidence (the
    driver stores, logs and serves it; nothing is penalised on chain, see :mod:`consensus.evidence`)."""

    evidence: Evidence


class ProofAccepted(Record, frozen=True, tag="proof_accepted"):
    """An uptime proof was new and valid, and is now the node's (the driver passes it on; a
    proof refused, too soon after the last one say, goes no further)."""

    node_key: NodeKey


Action = Send | Gossip | AskPeers | Applied | Finalized | Penalize | Equivocation | ProofAccepted

# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoreConfig:
    """The node's own settings. The block time is not one of them: it is the chain's
    ``params.block_time`` (milliseconds), read from the state, so the schedule the core keeps and
    the "too early" rule of :func:`state.transition.validate_block_time` can never disagree."""

    chain_id: str
    timing: Timing
    uptime: UptimeRules
    mempool_capacity: int = 20_000
    public_ip: str = "127.0.0.1"
    p2p_port: int = 0
    storage_port: int = 0
    version: tuple[int, int, int] = (1, 0, 0)
    timer: Callable[[], float] | None = None
    """A wall clock for the template budget (:mod:`consensus.budget`); None: full templates
    (the simulator, whose runs must not depend on the machine's speed)."""


BACKLOG_TEMPLATES = 3
"""How many templates' worth of transactions the mempool keeps waiting (:mod:`consensus.mempool`):
enough for the next template and what arrives during its round, no more to re-check each block."""


@dataclass
class Identity:
    """The node's keys; ``signer`` guards every Ed25519 signature against double signing."""

    key: ed25519.SigningKey
    bls_secret: bls.BlsSecretKey
    signer: GuardedSigner

    @property
    def node_key(self) -> NodeKey:
        return NodeKey(self.key.public_key)


Probe = Callable[[NodeKey], "bool | None"]
"""Whether a worker answers (its p2p and storage ports): True, False, or None when unknown."""

_block_decoder = Decoder(Block)


@dataclass
class _NextRound:
    height: int
    round: int
    at: float


@dataclass(frozen=True)
class RoundFailure:
    """The last Pulse round this node took part in that failed."""

    height: int
    round: int
    stage: str
    reason: str
    heard: int
    """Quorum members this node heard from in that round, itself included."""
    members: int
    needed: int
    """Validator signatures the round needed."""


@dataclass(frozen=True)
class Progress:
    """Why the chain moves or not, as this node sees it (PROTOCOL.md §4a "Say why"): what the
    status, ``get_info``, ``/metrics`` and the network page show. Pure data; the driver decides
    when the chain counts as stalled (its tip older than a block and a round)."""

    height: int
    final_height: int
    active_nodes: int
    pulse_min_nodes: int
    round: int
    """The Pulse round of the next height that this node runs or waits for (above 0: earlier
    rounds of it failed)."""
    last_failure: RoundFailure | None
    """The last round this node was a member of that failed, at the next height."""
    checkpoint: int | None
    """The lowest checkpoint height above the final one that this node holds a block at, whose
    certificate it waits for."""
    checkpoint_votes: int | None
    """Votes for our block at ``checkpoint`` this node heard (None: it is not in its quorum)."""
    checkpoint_needed: int | None

    def blocks_reason(self) -> str | None:
        """Why no block is made, if this node can tell."""
        if self.active_nodes < self.pulse_min_nodes:
            return (
                f"too few active nodes: {self.active_nodes} active, Pulse needs"
                f" {self.pulse_min_nodes} (pulse_min_nodes)"
            )
        failure = self.last_failure
        if failure is not None:
            return (
                f"round {failure.round} of height {failure.height} failed at {failure.stage}"
                f" ({failure.reason}): heard {failure.heard} of {failure.members} quorum members,"
                f" {failure.needed} validators needed"
            )
        if self.round > 0:
            return f"height {self.height + 1} is at round {self.round}: its earlier rounds failed"
        return None

    def finality_reason(self) -> str | None:
        """What finality waits for, if a checkpoint below the tip has no certificate yet."""
        if self.checkpoint is None:
            return None
        if self.checkpoint_votes is None:
            return f"checkpoint {self.checkpoint} waits for its certificate (this node is not in its quorum)"
        return (
            f"checkpoint {self.checkpoint} waits for checkpoint votes: {self.checkpoint_votes} of"
            f" {self.checkpoint_needed} needed heard"
        )


@dataclass
class NodeCore:
    """One service node's consensus state machine."""

    config: CoreConfig
    identity: Identity
    ledger: Ledger
    random_bytes: Callable[[int], bytes]
    probe: Probe = lambda key: None
    proofs: ProofBook = field(init=False)
    cop: QuorumCop = field(init=False)
    reachability: Reachability = field(init=False)
    pulse_record: PulseRecord = field(default_factory=PulseRecord)

    def __post_init__(self) -> None:
        self.proofs = ProofBook(self.config.uptime)
        self.evidence = EvidenceBook(self.config.chain_id)
        self.cop = QuorumCop(self.config.uptime)
        self.reachability = Reachability(self.config.uptime)
        self.round: PulseRound | None = None
        self.round_id: tuple[int, int] = (0, 0)
        self.round_members: tuple[NodeKey, ...] = ()
        self.round_wakes: list[float] = []
        self.stage_times: dict[str, float] = {}
        self.next_round: _NextRound | None = None
        self.last_failure: RoundFailure | None = None
        self.current_round: tuple[int, int] = (0, 0)
        """The (height, round) started last, whether this node is in its quorum or not."""
        self.started: set[tuple[int, int]] = set()
        self.early_pulse: dict[tuple[int, int], list[PulseMessage]] = {}
        """Pulse messages of the next height's current or next round, received before this node
        started that round, by (height, round)."""
        self.proof_due: float | None = None
        self.syncing_until = -1.0
        self.pending_certificates: dict[int, CheckpointCertificate] = {}
        self.votes: dict[tuple[int, bytes], dict[int, bytes]] = {}
        self.vote_pool: dict[tuple[int, int, int], dict[int, Vote]] = {}
        self.mempool = Mempool(self.config.chain_id, self.config.mempool_capacity)
        self.budget = TemplateBudget(self.config.timing.stage_seconds, self.config.timer)
        """How full this node makes its templates: what validators execute within a stage."""
        self._bound_backlog(self.ledger.state)
        self.templates = ExecutedTemplates()
        """The templates this node executed, so that a round's signed block is executed once."""
        self.produced = 0
        """Blocks of our chain this node produced (since it started)."""
        self.signed = 0
        """Blocks of our chain this node signed as a Pulse validator (since it started)."""
        self.send_proofs = True
        """Whether to send uptime proofs (an operator's test knob: a node that stops is decommissioned)."""
        self.directory_asks = DIRECTORY_PEERS
        """Peers still to ask for the proofs they hold (:meth:`on_peer_connected`)."""
        self._duties: tuple[tuple[bytes, int, int], frozenset[NodeKey]] | None = None

    # -- the driver's entry points --------------------------------------------------------------

    @property
    def node_key(self) -> NodeKey:
        return self.identity.node_key

    @property
    def height(self) -> int:
        return self.ledger.height

    @property
    def final_height(self) -> int:
        return self.ledger.final_height

    def start(self, now: float, first_proof_in: float = 0.0) -> list[Action]:
        """Begin: schedule the next height's rounds, and the first uptime proof."""
        self.proof_due = now + first_proof_in
        self._schedule_height(now)
        return []

    def on_restart(self, now: float) -> list[Action]:
        """Back after a crash (the ledger and the guard's record survived): catch up, rejoin."""
        self.on_crash()
        self.directory_asks = DIRECTORY_PEERS
        self.proof_due = now
        self._schedule_height(now)
        actions = self.request_sync(now)
        return actions + self.on_time(now)

    def on_crash(self) -> None:
        """Forget what lives only in memory: the current round, the messages seen for evidence."""
        self.round, self.round_wakes, self.next_round = None, [], None
        self.early_pulse = {}
        self.evidence = EvidenceBook(self.config.chain_id)

    def next_wake(self) -> float | None:
        """The local time at which :meth:`on_time` has work to do, if any."""
        times = [
            t for t in (self.proof_due, self.next_round.at if self.next_round else None) if t is not None
        ]
        if self.round is not None and self.round_wakes:
            times.append(self.round_wakes[0])
        return min(times, default=None)

    def on_time(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.round is not None and self.round_wakes and self.round_wakes[0] <= now:
            while self.round_wakes and self.round_wakes[0] <= now:
                heapq.heappop(self.round_wakes)
            actions += self._drive(self.round.on_time(now), now)
        upcoming = self.next_round
        if upcoming is not None and upcoming.at <= now:
            self.next_round = None
            actions += self._start_round(upcoming.height, upcoming.round, now)
        if self.proof_due is not None and self.proof_due <= now:
            self.proof_due = now + self.config.uptime.interval
            actions += self._send_proof(now)
        return actions

    def on_message(self, message: Message, sender: NodeKey | None, now: float) -> list[Action]:
        """A message from the peer ``sender`` (None when it came from this node's own driver)."""
        if isinstance(message, PulseMessage):
            actions = _keep(self.evidence.on_pulse_message(message))
            if message.height > self.height + 1:
                actions += self.request_sync(now)
            slot = (message.height, message.round)
            if self.round is not None and slot == self.round_id:
                actions += self._drive(self.round.on_message(message, now), now)
            elif slot not in self.started and self._is_upcoming(message.height, message.round, now):
                self._keep_early(slot, message)
            return actions
        if isinstance(message, SignedBlock):
            return self.on_block(message.block, now)
        if isinstance(message, CheckpointVote):
            return self._on_checkpoint_vote(message, now)
        if isinstance(message, VoteMessage):
            return self._on_vote_message(message)
        if isinstance(message, UptimeProof):
            record = get_node(Overlay(self.ledger.state.get), message.node_key)
            accepted = self.proofs.on_proof(message, now, record.bls_key if record else None)
            return [ProofAccepted(message.node_key)] if accepted else []
        if isinstance(message, Certified):
            return self.on_certificate(message.certificate, now)
        if isinstance(message, SyncRequest):
            return self._on_sync_request(message, sender)
        if isinstance(message, TxMessage):
            return self.on_transaction(message, sender, now)
        if isinstance(message, TxBatch):
            return self.on_transactions(message.txs, sender, now)
        if isinstance(message, SyncResponse):
            return self._on_sync_response(message, sender, now)
        if isinstance(message, ProofsRequest):
            return self._on_proofs_request(sender, now)
        if isinstance(message, Proofs):
            for proof in message.proofs:
                self.on_message(proof, sender, now)
            return []
        return []

    def on_transaction(self, message: TxMessage, sender: NodeKey | None, now: float) -> list[Action]:
        """Keep a new valid transaction (the driver passes new ones on to its peers)."""
        return self.on_transactions((message.tx,), sender, now)

    def on_transactions(self, txs: Sequence[Transaction], sender: NodeKey | None, now: float) -> list[Action]:
        """Keep each new valid transaction of a batch, in order. A forged one (its nonce unused
        and its signature wrong) penalizes the sender and ends the batch: an honest peer passes
        on only what it checked (the driver relays a batch whole only when all of it was kept)."""
        for tx in txs:
            try:
                self.mempool.add(tx, self.ledger.state, now)
            except InvalidSignature as exc:
                if sender is not None:
                    return [Penalize(sender, f"a transaction with a bad signature: {exc}")]
            except (InvalidEvent, MempoolFull):
                continue
        return []

    # -- blocks -----------------------------------------------------------------------------------

    def on_block(self, block: Block, now: float) -> list[Action]:
        height = block.header.height
        if height > self.height + 1:
            return self.request_sync(now)
        if height <= self.height:
            return self._consider_fork(block, now)
        applied = self._try_apply(block, now)
        if applied is None:
            return []
        return [applied, *self._after_block(now)]

    def _try_apply(self, block: Block, now: float) -> Applied | None:
        try:
            quorum = self.ledger.apply(block, self.templates.find(block))
        except InvalidBlock:
            return None
        self.pulse_record.note_round(
            quorum.validators, block.header.validators, height=block.header.height, round_=block.header.round
        )
        self._forget_recommissioned(block)
        me = self.node_key
        if block.header.producer == me:
            self.produced += 1
        elif me in quorum.validators and any(
            quorum.validators[index] == me for index, _ in block.signatures if index < len(quorum.validators)
        ):
            self.signed += 1
        if self.mempool:
            self.mempool.on_block(block.events, self.ledger.state, now)
        return Applied(block, tuple(quorum.validators))

    def _forget_recommissioned(self, block: Block) -> None:
        """The nodes ``block`` recommissioned start a new Pulse record (see :mod:`consensus.uptime`)."""
        view = Overlay(self.ledger.state.get)
        for event in block.events:
            if isinstance(event, StateChange) and event.new_state == NewState.RECOMMISSION:
                quorum = get_quorum(view, event.quorum_height)  # kept for the votes' lifetime
                if quorum is not None:
                    self.pulse_record.forget(quorum.workers[event.worker_index])

    def _after_block(self, now: float) -> list[Action]:
        self.round, self.round_wakes = None, []
        self.last_failure = None
        self.evidence.forget_below(self.height - EVIDENCE_WINDOW)
        oldest = self.height + 1 - self.ledger.state.params.vote_lifetime  # older votes are void
        for key in [key for key in self.vote_pool if key[0] < oldest]:
            del self.vote_pool[key]
        self.started = {started for started in self.started if started[0] > self.height}
        self.early_pulse = {slot: kept for slot, kept in self.early_pulse.items() if slot[0] > self.height}
        actions = self._vote_checkpoint(now)
        actions += self._run_tests(now)
        certificate = self.pending_certificates.get(self.height)
        if certificate is not None:
            actions += self.on_certificate(certificate, now)
        self._schedule_height(now)
        return actions

    def _consider_fork(self, block: Block, now: float) -> list[Action]:
        height = block.header.height
        if height < 1 or height <= self.final_height:
            return []
        ours = self.ledger.block_at(height)
        if block.header.prev_hash != self.ledger.block_hash_at(height - 1):
            return []
        certified = self.pending_certificates.get(height)
        if not prefer_candidate(
            height=height,
            final_height=self.final_height,
            our_round=ours.header.round,
            our_hash=compute_block_hash(ours.header),
            candidate_round=block.header.round,
            candidate_hash=compute_block_hash(block.header),
            certified_hash=None if certified is None else bytes(certified.block_hash),
        ):
            return []
        self.ledger.rollback(height - 1)
        applied = self._try_apply(block, now)
        if applied is None:
            return self.request_sync(now)
        return [applied, *self._after_block(now)]

    # -- Pulse rounds -----------------------------------------------------------------------------

    def _round_start_ms(self, round_: int) -> int:
        """When round ``round_`` of the next height starts, unix milliseconds: the tip's timestamp
        plus the chain's ``block_time`` plus ``round_`` round timeouts, all integers (no float
        drift however many rounds a stalled height runs). The producer stamps its template with
        exactly this, so consecutive blocks can be any whole number of milliseconds apart."""
        state = self.ledger.state
        return state.timestamp + state.params.block_time + round_ * self.config.timing.round_timeout_ms

    def _schedule_height(self, now: float) -> None:
        """Round 0 of the next height starts a block time after the tip's timestamp; a node that
        arrives late joins the first round that has not ended by its clock."""
        round_ = self._round_at(now)
        at = self._round_start_ms(round_) / 1000
        self.next_round = _NextRound(self.height + 1, round_, max(at, now))

    def _round_at(self, now: float) -> int:
        """The round of the next height under way at ``now`` by this node's clock (0 before it)."""
        elapsed_ms = to_ms(now) - self._round_start_ms(0)
        return max(0, elapsed_ms // self.config.timing.round_timeout_ms)

    def _is_upcoming(self, height: int, round_: int, now: float) -> bool:
        """Whether a Pulse message of ``(height, round_)`` is for a round this node has yet to
        start and soon will: the next height, and the round under way by our clock or the
        next one. A member whose clock runs ahead of ours by more than the network's latency
        starts each round, and sends its handshake, before we do: dropped, that handshake would
        leave it out of every round's bitset, and its missed duties would decommission it."""
        current = self._round_at(now)
        return height == self.height + 1 and current <= round_ <= current + 1

    def _keep_early(self, slot: tuple[int, int], message: PulseMessage) -> None:
        """Keep ``message`` until this node starts its round (at most :data:`EARLY_PULSE_LIMIT`
        in all: they are checked only then)."""
        if sum(len(kept) for kept in self.early_pulse.values()) < EARLY_PULSE_LIMIT:
            self.early_pulse.setdefault(slot, []).append(message)

    def _start_round(self, height: int, round_: int, now: float) -> list[Action]:
        if height != self.height + 1 or round_ > MAX_ROUND:
            return []
        state = self.ledger.state
        start_ms = self._round_start_ms(round_)
        self.next_round = _NextRound(
            height, round_ + 1, (start_ms + self.config.timing.round_timeout_ms) / 1000
        )
        self.current_round = (height, round_)
        if (height, round_) in self.started:
            # started before a crash (the guard holds its slots): take part in the next one.
            # Waiting for a block instead stopped the chain for good when it needed this node.
            return []
        self.started.add((height, round_))
        entropy = compute_block_entropy(self.ledger.random_value_at, height)
        quorum = compute_block_quorum(state, entropy, height, round_)
        early = self.early_pulse.pop((height, round_), [])
        self.early_pulse = {slot: kept for slot, kept in self.early_pulse.items() if slot > (height, round_)}
        me = self.node_key
        if quorum is None or (me != quorum.producer and me not in quorum.validators):
            self.round, self.round_wakes = None, []
            return []
        self.evidence.on_round(state.block_hash, height, round_, quorum)
        template = None
        if me == quorum.producer:
            template = self._build_template(state, start_ms, quorum.producer, round_)
        self.round_id = (height, round_)
        self.round_members = (quorum.producer, *quorum.validators)
        self.round_wakes = []
        self.round = PulseRound(
            parent=state.block_hash,
            height=height,
            round_=round_,
            quorum=quorum,
            me=self.identity.signer,
            start=now,
            timing=self.config.timing,
            finalize=finalize_template,
            random_source=self.random_bytes,
            template=template,
            decode_template=_block_decoder.decode,  # a template that does not decode is missing
            encode_template=encode,
            validate_template=lambda block, at: self._is_valid_template(
                block, height, round_, quorum.producer, at
            ),
        )
        actions = self._drive(self.round.on_start(), now)
        for message in early:  # what members whose clocks run ahead sent before we started
            if self.round is None or self.round_id != (height, round_):
                break
            actions += self._drive(self.round.on_message(message, now), now)
        return actions

    def _build_template(self, state: State, timestamp: int, producer: NodeKey, round_: int) -> Block:
        """The producer's block: every state change with enough votes that is still valid (one
        that is not, a stale one or one the floor forbids, is left out by the loop below)."""
        view, params = Overlay(state.get), state.params
        events: list[Event] = []
        for (h, w, new_state), votes in sorted(self.vote_pool.items()):
            quorum = get_quorum(view, h) if state.height + 1 - h <= params.vote_lifetime else None
            if quorum is None or not 0 <= w < len(quorum.workers):
                continue
            if len(votes) >= compute_vote_threshold(quorum, quorum.workers[w], params):
                ordered = tuple(sorted(votes.values(), key=lambda v: v.validator_index))
                events.append(StateChange(Height(h), w, new_state, ordered))
        limit = self.budget.limit(state.params.max_block_events, round_)
        events += self.mempool.take(max(0, limit - len(events)))
        while True:
            try:
                pending = propose_block(
                    state, events, timestamp, producer=producer, round_=round_, verified=self.mempool
                )
                self.templates.keep(pending)
                return pending.block
            except InvalidBlock as exc:
                if exc.event_index is None:
                    raise
                stale = events.pop(exc.event_index)  # stale or already applied: leave it out
                self.mempool.remove(stale)

    def _bound_backlog(self, state: State) -> None:
        """The mempool keeps :data:`BACKLOG_TEMPLATES` templates' worth, as last measured (none
        while the budget has no clock: the simulator keeps its configured capacity)."""
        if self.budget.timer is not None:
            self.mempool.backlog = BACKLOG_TEMPLATES * self.budget.limit(state.params.max_block_events)

    def max_template_lead_ms(self) -> int:
        """How far ahead of this node's clock a template's timestamp may be, in milliseconds: the
        uptime proofs' ``max_skew`` (devnet 5 s, mainnet 5 min), the skew the network already
        allows between two honest clocks.

        An honest template is never ahead at all: it is stamped with its round's start
        (:meth:`_round_start_ms`, computed from the parent's timestamp, not from the producer's
        clock), and a validator judges it only once its own clock has reached that start (the
        round starts then; what arrives earlier waits in ``early_pulse``). So skew between honest
        clocks never puts a template ahead of a validator's clock, and the bound only limits a
        dishonest producer
        that stamps a block in the future to hold the next height back (every node waits for
        ``timestamp + block_time``). It is taken from the declared clock allowance rather than 0
        so that nodes whose round timeouts differ (config.toml is each node's own) or whose clocks
        are skewed as far as the network tolerates still accept each other's templates. The
        clock-skew faults of :mod:`appchain.lab.nemesis` stay under it (``MAX_SKEW`` = 3 s under
        the devnet's 5 s, checked by a test)."""
        return round(self.config.uptime.max_skew * 1000)

    def _is_valid_template(self, block: Block, height: int, round_: int, producer: bytes, now: float) -> bool:
        """Whether this validator takes ``block`` as the round's template: the round's height,
        round and producer; a timestamp at most :meth:`max_template_lead_ms` ahead of this node's
        clock at ``now`` (the clock rule, only here: a block proposed now; ``apply_block`` and
        replays never read a clock); and a block that executes on our tip (the state rules,
        the "too early" rule of :func:`state.transition.validate_block_time` among them)."""
        header = block.header
        if (header.height, header.round, header.producer) != (height, round_, producer):
            return False
        if header.timestamp > to_ms(now) + self.max_template_lead_ms():
            return False
        started = self.budget.start()
        try:
            pending = execute_block(self.ledger.state, block, verify_signatures=False)
        except InvalidBlock:
            return False
        self.budget.observe(len(block.events), started)
        self._bound_backlog(self.ledger.state)
        self.templates.keep(pending)
        return True

    def _drive(self, round_actions: Sequence[object], now: float) -> list[Action]:
        actions: list[Action] = []
        for action in round_actions:
            if isinstance(action, Broadcast):
                actions += [Send(m, action.message) for m in self.round_members if m != self.node_key]
            elif isinstance(action, WakeAt):
                heapq.heappush(self.round_wakes, action.time)
            elif isinstance(action, BlockSigned):
                self._keep_stage_times()
                block = Block(action.block.header, action.block.events, action.signatures)
                actions.append(Gossip(SignedBlock(block)))
                actions += self.on_block(block, now)
            elif isinstance(action, RoundFailed):
                self._keep_stage_times()
                height, round_ = self.round_id
                stage = Stage(action.stage).name.lower()
                self.last_failure = RoundFailure(
                    height, round_, stage, action.reason, action.heard, action.members, action.needed
                )
                self.round, self.round_wakes = None, []
        return actions

    def _keep_stage_times(self) -> None:
        if self.round is not None:
            self.stage_times = dict(self.round.stage_times)

    # -- uptime proofs and obligations tests --------------------------------------------------------

    def _send_proof(self, now: float) -> list[Action]:
        signed = self.signed_proof(now)
        if signed is None:
            return []
        self.proofs.on_proof(signed, now, signed.bls_key)
        return [Gossip(signed)]

    def on_peer_connected(self, peer: NodeKey, now: float) -> list[Action]:
        """A peer connected: it gets our uptime proof at once (the one we gossiped last, while it
        is younger than a proof interval: a connection opened for each quorum duty must not set
        off a new proof's flood of the network each time), so a node that just
        started knows where its peers serve (their storage ports, for its swarm) within a second,
        not a proof interval later (an hour on mainnet). The first :data:`DIRECTORY_PEERS` peers
        after a start are also asked for the proofs they hold (:class:`ProofsRequest`): with a
        few gossip peers rather than a connection to everyone, that is how a node that just
        started (a fresh home too) learns where every service node is, to draw its gossip peers
        and reach its quorums. Oxen keeps the proofs it accepted in its database across restarts."""
        actions: list[Action] = []
        ours = self.proofs.accepted.get(bytes(self.node_key))
        if ours is not None and now - ours[1] < self.config.uptime.interval and self.send_proofs:
            signed: UptimeProof | None = ours[0]  # the proof gossiped last: its copies die by hash
        else:
            signed = self.signed_proof(now)
        if signed is not None:
            actions.append(Send(peer, signed))
        if self.directory_asks > 0:
            self.directory_asks -= 1
            actions.append(Send(peer, ProofsRequest()))
        return actions

    def _on_proofs_request(self, sender: NodeKey | None, now: float) -> list[Action]:
        """The fresh uptime proofs this node accepted, :data:`PROOF_BATCH` to a message."""
        if sender is None:
            return []
        book = self.proofs
        fresh = [proof for key, (proof, _) in sorted(book.accepted.items()) if book.is_fresh(key, now)]
        return [
            Send(sender, Proofs(tuple(fresh[start : start + PROOF_BATCH])))
            for start in range(0, len(fresh), PROOF_BATCH)
        ]

    def known_nodes(self, now: float, also: Collection[NodeKey] = ()) -> FreshNodes:
        """The nodes whose fresh uptime proofs this node holds, and ``also`` (its seeds): where it
        draws gossip peers from."""
        return FreshNodes(self.proofs, now, self.node_key, also)

    def duty_peers(self) -> frozenset[NodeKey]:
        """The nodes this node must reach directly now (:mod:`consensus.topology`): the other
        members of the next height's Pulse quorums it sits in (the round under way by its
        schedule, and the next), and of the quorums of the checkpoints above the final one that
        it votes in (each known from the state four blocks ahead). Empty for a node in no quorum.
        Computed once per tip and round."""
        state = self.ledger.state
        height, round_ = self.current_round
        round_ = round_ if height == self.height + 1 else 0
        key = (bytes(state.block_hash), round_, self.final_height)
        if self._duties is not None and self._duties[0] == key:
            return self._duties[1]
        me = self.node_key
        members: set[NodeKey] = set()
        entropy = compute_block_entropy(self.ledger.random_value_at, self.height + 1)
        for r in (round_, round_ + 1):
            quorum = compute_block_quorum(state, entropy, self.height + 1, r) if r <= MAX_ROUND else None
            if quorum is not None and (me == quorum.producer or me in quorum.validators):
                members.update((quorum.producer, *quorum.validators))
        interval = state.params.checkpoint_interval
        view = Overlay(state.get)
        checkpoint = self.final_height - self.final_height % interval + interval
        while checkpoint <= self.height + interval:
            quorum_ = get_checkpoint_quorum(view, checkpoint)
            if quorum_ is not None and any(m.node_key == me for m in quorum_.members):
                members.update(m.node_key for m in quorum_.members)
            checkpoint += interval
        members.discard(me)
        duties = frozenset(members)
        self._duties = (key, duties)
        return duties

    def signed_proof(self, now: float) -> UptimeProof | None:
        """A proof of this node signed now; None when it is not registered or must stay quiet."""
        record = get_node(Overlay(self.ledger.state.get), self.node_key)
        if record is None or not self.send_proofs:
            return None
        config = self.config
        proof = UptimeProof(
            self.node_key,
            config.public_ip,
            config.p2p_port,
            config.storage_port,
            config.version,
            int(now),  # uptime proofs stay in unix seconds, as oxend's
            record.bls_key,
        )
        return sign_proof(proof, self.identity.key)

    def _run_tests(self, now: float) -> list[Action]:
        """As a validator of this height's obligations quorum: test the workers, vote."""
        height = self.height
        state = self.ledger.state
        view = Overlay(state.get)
        quorum = get_quorum(view, height)
        if quorum is None or self.node_key not in quorum.validators:
            return []
        me = quorum.validators.index(self.node_key)
        actions: list[Action] = []
        for index, worker in enumerate(quorum.workers):
            if worker == self.node_key:
                continue  # a validator never votes on itself (PROTOCOL.md §4a)
            record = get_node(view, worker)
            probed = self.probe(worker)
            if record is None or probed is None:
                continue
            reachable = self.reachability.observe(worker, probed, now)
            reasons = compute_test_reasons(
                proof_fresh=self.proofs.is_fresh(worker, now),
                reachable=reachable,
                storage_reachable=reachable,
                pulse_fails=self.pulse_record.fails(worker),
                active=record.status == NodeStatus.ACTIVE,
            )
            decision = self.cop.decide(worker, record, height, reasons, state.params)
            if decision is None:
                continue
            message = compute_vote_message(self.config.chain_id, height, index, int(decision), reasons)
            try:
                signature = self.identity.signer.sign(height, index, VOTE, message)
            except DoubleSign:
                continue
            vote = VoteMessage(height, index, int(decision), Vote(me, reasons, signature))
            actions += self._on_vote_message(vote)
            actions.append(Gossip(vote))
        return actions

    def _on_vote_message(self, message: VoteMessage) -> list[Action]:
        quorum = get_quorum(Overlay(self.ledger.state.get), message.quorum_height)
        evidence = self.evidence.on_obligations_vote(message, quorum)
        key = (message.quorum_height, message.worker_index, message.new_state)
        self.vote_pool.setdefault(key, {}).setdefault(message.vote.validator_index, message.vote)
        return _keep(evidence)

    # -- checkpoints and finality -------------------------------------------------------------------

    def _vote_checkpoint(self, now: float) -> list[Action]:
        height = self.height
        state = self.ledger.state
        if height == 0 or not is_checkpoint_height(height, state.params.checkpoint_interval):
            return []
        quorum = get_checkpoint_quorum(Overlay(state.get), height)
        if quorum is None:
            return []
        members = [m.node_key for m in quorum.members]
        if self.node_key not in members:
            return []
        member = members.index(self.node_key)
        message = compute_checkpoint_message(self.config.chain_id, height, state.block_hash)
        try:
            self.identity.signer.sign(height, 0, CHECKPOINT, message)  # the guard records the slot first
        except DoubleSign:
            return []
        vote = CheckpointVote(height, state.block_hash, member, bls.sign(self.identity.bls_secret, message))
        # to the quorum's members only: they aggregate, and gossip the certificate to everyone
        sends: list[Action] = [Send(key, vote) for key in members if key != self.node_key]
        return [*sends, *self._on_checkpoint_vote(vote, now)]

    def _on_checkpoint_vote(self, vote: CheckpointVote, now: float) -> list[Action]:
        # the quorum of a checkpoint is in the state from four blocks before it: None until then
        quorum = get_checkpoint_quorum(Overlay(self.ledger.state.get), vote.height)
        caught = _keep(self.evidence.on_checkpoint_vote(vote, quorum))
        if vote.height <= self.final_height or vote.height in self.pending_certificates:
            return caught
        votes = self.votes.setdefault((vote.height, bytes(vote.block_hash)), {})
        votes.setdefault(vote.member, vote.signature)
        if quorum is None or len(votes) < compute_checkpoint_threshold(len(quorum.members)):
            return caught
        keys = [m.bls_key for m in quorum.members]
        valid = {i: s for i, s in votes.items() if i < len(keys)}
        certificate = aggregate_certificate(vote.height, vote.block_hash, valid, len(keys))
        try:
            verify_certificate(certificate, self.config.chain_id, keys)
        except (InvalidCertificate, ValueError):
            # one bad vote spoils the aggregate: keep only the votes that verify on their own
            message = compute_checkpoint_message(self.config.chain_id, vote.height, vote.block_hash)
            good = {i: s for i, s in valid.items() if bls.verify(keys[i], message, s)}
            self.votes[(vote.height, bytes(vote.block_hash))] = good
            if len(good) < compute_checkpoint_threshold(len(keys)):
                return caught
            certificate = aggregate_certificate(vote.height, vote.block_hash, good, len(keys))
        return [*caught, *self.on_certificate(certificate, now), Gossip(Certified(certificate))]

    def on_certificate(self, certificate: CheckpointCertificate, now: float) -> list[Action]:
        height = certificate.height
        if height <= self.final_height:
            return []
        quorum = get_checkpoint_quorum(Overlay(self.ledger.state.get), height)
        if quorum is None:
            return []
        try:
            verify_certificate(certificate, self.config.chain_id, [m.bls_key for m in quorum.members])
        except (InvalidCertificate, ValueError):
            return []
        self.pending_certificates[height] = certificate
        if height > self.height:
            return []
        if self.ledger.block_hash_at(height) != certificate.block_hash:
            return self.request_sync(now)  # the network finalised another block than ours: fetch it
        self.ledger.finalize(certificate)
        for old in [h for h in self.pending_certificates if h <= height]:
            del self.pending_certificates[old]
        self.votes = {k: v for k, v in self.votes.items() if k[0] > height}
        return [Finalized(height, certificate.block_hash)]

    # -- why the chain moves or not ------------------------------------------------------------------

    def progress(self) -> Progress:
        """What this node knows of why blocks and finality move or not (:class:`Progress`)."""
        state = self.ledger.state
        view = Overlay(state.get)
        active, _ = node_lists(view)
        height, round_ = self.current_round
        round_ = round_ if height == self.height + 1 else 0
        failure = self.last_failure
        if failure is not None and failure.height != self.height + 1:
            failure = None
        checkpoint = votes = needed = None
        interval = state.params.checkpoint_interval
        first = self.final_height + interval
        if first <= self.height:
            checkpoint = first - first % interval
            quorum = get_checkpoint_quorum(view, checkpoint)
            if quorum is not None:
                needed = compute_checkpoint_threshold(len(quorum.members))
                if any(m.node_key == self.node_key for m in quorum.members):
                    ours = bytes(self.ledger.block_hash_at(checkpoint))
                    votes = len(self.votes.get((checkpoint, ours), {}))
        return Progress(
            height=self.height,
            final_height=self.final_height,
            active_nodes=len(active),
            pulse_min_nodes=state.params.pulse_min_nodes,
            round=round_,
            last_failure=failure,
            checkpoint=checkpoint,
            checkpoint_votes=votes,
            checkpoint_needed=needed,
        )

    # -- sync ---------------------------------------------------------------------------------------

    def request_sync(self, now: float) -> list[Action]:
        """Ask a few peers for the blocks after our final one (at most once a round timeout)."""
        if now < self.syncing_until:
            return []
        self.syncing_until = now + self.config.timing.round_seconds
        return [AskPeers(SyncRequest(self.final_height + 1), 3)]

    def _on_sync_response(self, message: SyncResponse, sender: NodeKey | None, now: float) -> list[Action]:
        actions: list[Action] = []
        for block in message.blocks:
            before, tip = self.height, self.ledger.block_hash_at(self.height)
            actions += self.on_block(block, now)
            on_our_tip = block.header.height == before + 1 and block.header.prev_hash == tip
            if on_our_tip and self.height == before and sender is not None:
                # the next block, on our tip, and it does not validate: that peer serves bad
                # blocks. Drop it, and ask other peers at once.
                self.syncing_until = -1.0
                reason = f"served an invalid block {block.header.height}"
                return [*actions, Penalize(sender, reason, drop=True), *self.request_sync(now)]
        for certificate in message.certificates:
            actions += self.on_certificate(certificate, now)
        if len(message.blocks) == SYNC_BATCH and self.height >= message.blocks[-1].header.height:
            self.syncing_until = -1.0  # a full batch applied: there is likely more, ask again now
            actions += self.request_sync(now)
        return actions

    def _on_sync_request(self, request: SyncRequest, sender: NodeKey | None) -> list[Action]:
        if sender is None or request.from_height <= self.ledger.base_height:
            return []  # we joined by state sync above that height: another peer must serve it
        start = max(1, request.from_height)
        stop = min(self.height, start + SYNC_BATCH - 1)
        blocks = tuple(self.ledger.block_at(h) for h in range(start, stop + 1))
        certificates = tuple(self.ledger.certificates_from(start)) + tuple(
            c for h, c in sorted(self.pending_certificates.items()) if h >= start
        )
        if not blocks and not certificates:
            return []
        return [Send(sender, SyncResponse(blocks, certificates))]


def _by_validator(vote: Vote) -> int:
    return vote.validator_index


def _keep(evidence: Evidence | None) -> list[Action]:
    """The action that keeps ``evidence``, if any was caught."""
    return [] if evidence is None else [Equivocation(evidence)]
