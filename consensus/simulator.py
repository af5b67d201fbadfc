"""A deterministic network simulator for the consensus core.

N service nodes, each with its own chain and state, run the real Pulse rounds
(:class:`consensus.pulse.PulseRound`), validate blocks with the real rules
(:func:`consensus.validation.validate_pulse`, :func:`state.transition.execute_block`), vote
checkpoints with BLS and aggregate certificates (:mod:`consensus.checkpoint`). The network
delivers messages after a latency with jitter, may lose them, may be partitioned; nodes crash
and restart (their chain and double-sign record survive, as on disk), clocks are skewed, and
byzantine members equivocate, withhold, double-sign or send garbage.

Time is simulated by a discrete-event loop: a heap of (time, sequence) events, every random
choice drawn from one seeded generator. The same seed gives the same run, byte for byte.
:meth:`Simulation.run_on_trio` drives the very same loop from one trio task that sleeps until
each event, so simulated time is trio's clock (``MockClock`` with autojump in the tests): one
task, rather than one per node, because trio deliberately varies the order in which
simultaneous tasks run, and the run must not depend on it.

Checks, reported by :meth:`Simulation.report`: final heights per node; whether every honest node
has the same block and root at every height final for it (``roots_agree``); safety violations
(two different final blocks at one height anywhere); double signatures by honest nodes.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from consensus.checkpoint import (
    CheckpointCertificate,
    InvalidCertificate,
    aggregate_certificate,
    compute_checkpoint_message,
    verify_certificate,
)
from consensus.guard import CHECKPOINT, VOTE, DoubleSign, GuardedSigner, MemorySlotRecord
from consensus.pulse import (
    BlockSigned,
    Broadcast,
    PulseMessage,
    PulseRound,
    RoundFailed,
    Timing,
    WakeAt,
    sign_message,
)
from consensus.quorum import compute_checkpoint_threshold
from consensus.uptime import (
    DEVNET_UPTIME,
    ProofBook,
    PulseRecord,
    QuorumCop,
    UptimeProof,
    compute_test_reasons,
    sign_proof,
)
from consensus.validation import (
    compute_block_entropy,
    compute_block_quorum,
    finalize_template,
    validate_pulse,
)
from state.block import Block, compute_block_hash
from state.checkpoints import get_checkpoint_quorum, is_checkpoint_height
from state.crypto import bls, ed25519
from state.encoding import Decoder, Record, encode
from state.errors import InvalidBlock
from state.events import StateChange, Vote, compute_vote_message
from state.nodes import get_node
from state.obligations import get_quorum
from state.state import State
from state.transition import commit_block, execute_block, propose_block
from state.types import BlsSignature, Hash32, Height, NodeKey
from state.view import Overlay

# -- messages other than Pulse's ---------------------------------------------------------------


class SignedBlock(Record, frozen=True, tag="block"):
    block: Block


class CheckpointVote(Record, frozen=True, tag="checkpoint_vote"):
    height: int
    block_hash: Hash32
    member: int
    signature: BlsSignature


class Certified(Record, frozen=True, tag="certificate"):
    certificate: CheckpointCertificate


class VoteMessage(Record, frozen=True, tag="vote"):
    quorum_height: int
    worker_index: int
    new_state: int
    vote: Vote


class SyncRequest(Record, frozen=True, tag="sync_request"):
    from_height: int


class SyncResponse(Record, frozen=True, tag="sync_response"):
    blocks: tuple[Block, ...]
    certificates: tuple[CheckpointCertificate, ...]


_block_decoder = Decoder(Block)


# -- faults --------------------------------------------------------------------------------------


@dataclass
class Faults:
    """What goes wrong, and when (seconds of simulated time)."""

    loss: float = 0.0
    """Probability that a packet is lost. The transport is TCP (DESIGN.md), so a lost packet is
    retransmitted: the message arrives ``rto`` seconds later (and again for each further loss).
    Only a partition or a crash stops a message."""
    rto: float = 0.3
    """Retransmission timeout of the simulated TCP."""
    crashes: list[tuple[int, float, float]] = field(default_factory=list)
    """(node, down at, back at)."""
    partitions: list[tuple[list[set[int]], float, float]] = field(default_factory=list)
    """(groups, from, until): messages cross no group boundary meanwhile."""
    skew: dict[int, float] = field(default_factory=dict)
    """Clock offset of a node, seconds."""
    byzantine: dict[int, str] = field(default_factory=dict)
    """node → ``equivocate`` | ``withhold`` | ``double-sign`` | ``garbage``."""


@dataclass
class SimConfig:
    nodes: int = 12
    blocks: int = 20
    seed: int = 1
    latency: float = 0.05
    jitter: float = 0.05
    block_time: float = 2.0
    stage_timeout: float = 1.0
    round_timeout: float = 6.0
    faults: Faults = field(default_factory=Faults)
    time_limit: float = 0.0
    """Stop at this simulated time (0: ``blocks * block_time * 20``)."""


# -- a node --------------------------------------------------------------------------------------


class SimNode:
    def __init__(
        self, index: int, key: ed25519.SigningKey, bls_secret: bls.BlsSecretKey, genesis_state: State
    ) -> None:
        self.index = index
        self.key = key
        self.node_key = NodeKey(key.public_key)
        self.bls_secret = bls_secret
        self.record = MemorySlotRecord()  # survives crashes, as the on-disk record does
        self.signer = GuardedSigner(key, self.record)
        self.states: list[State] = [genesis_state]
        self.blocks: list[Block] = []  # blocks[h - 1] is height h
        self.final_height = 0
        self.certificates: dict[int, CheckpointCertificate] = {}
        self.votes: dict[tuple[int, bytes], dict[int, BlsSignature]] = {}
        self.round: PulseRound | None = None
        self.round_id: tuple[int, int] = (0, 0)
        self.up = True
        self.byzantine = ""
        self.rounds_used: list[int] = []
        self.stage_times: dict[str, float] = {}
        self.syncing_until = -1.0
        self.started: set[tuple[int, int]] = set()
        self.quorum_members: list[SimNode] = []
        self.proofs = ProofBook(DEVNET_UPTIME)
        self.cop = QuorumCop(DEVNET_UPTIME)
        self.pulse_record = PulseRecord()
        self.vote_pool: dict[tuple[int, int, int], dict[int, Vote]] = {}
        self.state_changes: list[tuple[int, int]] = []  # (height, new state) applied to this node

    @property
    def state(self) -> State:
        return self.states[-1]

    @property
    def height(self) -> int:
        return self.state.height

    def random_value_at(self, height: int) -> bytes:
        return bytes(16) if height == 0 else self.blocks[height - 1].header.random_value

    def block_hash_at(self, height: int) -> bytes:
        return self.states[height].block_hash if height < len(self.states) else b""


@dataclass
class SimGenesis:
    """What the simulation starts from: the state after block 0 and every node's keys."""

    chain_id: str
    genesis_time: int
    state: State
    keys: list[tuple[ed25519.SigningKey, bls.BlsSecretKey]]


class Simulation:
    def __init__(self, config: SimConfig, genesis: SimGenesis) -> None:
        if len(genesis.keys) != config.nodes:
            raise ValueError("the genesis must hold one key pair per simulated node")
        self.config = config
        self.rng = random.Random(config.seed)
        self.genesis = genesis
        self.nodes = [
            SimNode(i, key, secret, genesis.state.copy()) for i, (key, secret) in enumerate(genesis.keys)
        ]
        for node, kind in config.faults.byzantine.items():
            self.nodes[node].byzantine = kind
        self.by_key = {n.node_key: n for n in self.nodes}
        self.timing = Timing(stage_timeout=config.stage_timeout, round_timeout=config.round_timeout)
        self.queue: list[tuple[float, int, int, str, Any]] = []
        self.seq = 0
        self.now = 0.0
        self.final_blocks: dict[int, set[bytes]] = {}  # height → final hashes seen anywhere
        self.signed_slots: dict[tuple[bytes, int, int, int], set[bytes]] = {}
        self.messages = 0

    # -- the event loop -------------------------------------------------------------------------

    def push(self, at: float, node: int, kind: str, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, node, kind, payload))

    def run(
        self, watch: Callable[[Simulation], None] | None = None, watch_every: float = 2.0
    ) -> dict[str, Any]:
        """Run to the target finality (or the time limit); ``watch`` sees the network periodically."""
        for _at in self._events(watch, watch_every):
            pass
        return self.report()

    async def run_on_trio(self) -> dict[str, Any]:
        """The same run, with simulated time kept by trio's clock.

        One task sleeps until each event's time (``trio.testing.MockClock`` with autojump makes
        that instant), so the run is the heap's, event for event; the report is identical.
        """
        start = trio.current_time()
        origin = self.genesis.genesis_time
        for at in self._events(None, 0.0):
            await trio.sleep_until(start + (at - origin))
        return self.report()

    def _events(self, watch: Callable[[Simulation], None] | None, watch_every: float) -> Iterator[float]:
        """Process events in time order; yield each event's time before handling it."""
        config = self.config
        origin = self.genesis.genesis_time
        self.now = float(origin)
        next_watch = origin + watch_every
        limit = origin + (config.time_limit or config.blocks * config.block_time * 20)
        for index, down, back in config.faults.crashes:
            self.push(origin + down, index, "crash")
            self.push(origin + back, index, "restart")
        for node in self.nodes:
            self.schedule_height(node)
            self.push(self.now + self.rng.random(), node.index, "proof")
        while self.queue:
            at, _, target, kind, payload = heapq.heappop(self.queue)
            if at > limit:
                break
            while watch is not None and at >= next_watch:
                self.now = next_watch
                watch(self)
                next_watch += watch_every
            yield at
            self.now = at
            self._handle(self.nodes[target], kind, payload)
            if all(n.final_height >= config.blocks for n in self.honest_nodes()):
                break
        if watch is not None:
            watch(self)

    def _handle(self, node: SimNode, kind: str, payload: Any) -> None:
        if kind == "crash":
            node.up, node.round = False, None
        elif kind == "restart":
            node.up = True
            self.schedule_height(node)
            self.request_sync(node)
            self.push(self.now, node.index, "proof")
        elif not node.up:
            return
        elif kind == "deliver":
            sender, message = payload
            self.on_message(node, message, self.nodes[sender])
        elif kind == "round":
            self.start_round(node, *payload)
        elif kind == "proof":
            self.send_proof(node)
        elif kind == "wake" and node.round is not None and payload == node.round_id:
            self.drive(node, node.round.on_time(self.local_time(node)))

    def local_time(self, node: SimNode) -> float:
        return self.now + self.config.faults.skew.get(node.index, 0.0)

    def honest_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes if not n.byzantine]

    def connected(self, a: int, b: int) -> bool:
        elapsed = self.now - self.genesis.genesis_time
        for groups, start, end in self.config.faults.partitions:
            if start <= elapsed < end and not any(a in g and b in g for g in groups):
                return False
        return True

    def send(self, sender: SimNode, target: SimNode, message: Any) -> None:
        if target is sender or not self.connected(sender.index, target.index):
            return
        self.messages += 1
        delay = self.config.latency + self.rng.random() * self.config.jitter
        while self.rng.random() < self.config.faults.loss:
            delay += self.config.faults.rto
        self.push(self.now + delay, target.index, "deliver", (sender.index, message))

    def broadcast(self, sender: SimNode, message: Any) -> None:
        for target in self.nodes:
            self.send(sender, target, message)

    # -- heights and rounds ---------------------------------------------------------------------

    def schedule_height(self, node: SimNode) -> None:
        """Round 0 of the next height starts a block time after the tip's timestamp (local clock)."""
        start = node.state.timestamp + self.config.block_time
        height = node.height + 1
        skew = self.config.faults.skew.get(node.index, 0.0)
        # the first round that has not ended yet, as this node's clock sees it
        round_ = max(0, int((self.local_time(node) - start) // self.config.round_timeout))
        at = start + round_ * self.config.round_timeout - skew
        self.push(max(at, self.now), node.index, "round", (height, round_))

    def start_round(self, node: SimNode, height: int, round_: int) -> None:
        if height != node.height + 1 or round_ > 255 or (height, round_) in node.started:
            return
        node.started.add((height, round_))
        state = node.state
        start = state.timestamp + self.config.block_time + round_ * self.config.round_timeout
        next_start = start + self.config.round_timeout - self.config.faults.skew.get(node.index, 0.0)
        self.push(next_start, node.index, "round", (height, round_ + 1))
        entropy = compute_block_entropy(node.random_value_at, height)
        quorum = compute_block_quorum(state, entropy, height, round_)
        if quorum is None or (node.node_key != quorum.producer and node.node_key not in quorum.validators):
            node.round = None
            return
        template = None
        if node.node_key == quorum.producer:
            template = self.build_template(node, state, int(start), quorum.producer, round_)
        node.round_id = (height, round_)
        node.quorum_members = [self.by_key[k] for k in (quorum.producer, *quorum.validators)]
        node.round = PulseRound(
            parent=state.block_hash,
            height=height,
            round_=round_,
            quorum=quorum,
            me=node.signer,
            start=self.local_time(node),
            timing=self.timing,
            finalize=finalize_template,
            random_source=self.rng.randbytes,
            template=template,
            decode_template=_block_decoder.decode,
            encode_template=encode,
            validate_template=lambda block: self.is_valid_template(
                node, block, height, round_, quorum.producer
            ),
        )
        self.drive(node, node.round.on_start())

    def build_template(
        self, node: SimNode, state: State, timestamp: int, producer: NodeKey, round_: int
    ) -> Block:
        """The producer's block: every state change with enough votes that is still valid."""
        threshold = state.params.obligations_threshold
        events: list[Any] = [
            StateChange(
                Height(h), w, new_state, tuple(sorted(votes.values(), key=lambda v: v.validator_index))
            )
            for (h, w, new_state), votes in sorted(node.vote_pool.items())
            if len(votes) >= threshold and state.height + 1 - h <= state.params.vote_lifetime
        ]
        while True:
            try:
                return propose_block(state, events, timestamp, producer=producer, round_=round_).block
            except InvalidBlock as exc:
                if exc.event_index is None:
                    raise
                events.pop(exc.event_index)  # stale or already applied: leave it out

    def send_proof(self, node: SimNode) -> None:
        state = node.state
        record = get_node(Overlay(state.get), node.node_key)
        if record is not None:
            proof = UptimeProof(
                node.node_key,
                f"10.0.0.{node.index}",
                22020,
                22021,
                (1, 0, 0),
                int(self.local_time(node)),
                record.bls_key,
            )
            signed = sign_proof(proof, node.key)
            self.broadcast(node, signed)
            node.proofs.on_proof(signed, self.local_time(node), record.bls_key)
        self.push(self.now + DEVNET_UPTIME.interval, node.index, "proof")

    def run_tests(self, node: SimNode) -> None:
        """As a validator of this height's obligations quorum: test the workers, vote."""
        height = node.height
        view = Overlay(node.state.get)
        quorum = get_quorum(view, height)
        if quorum is None or node.node_key not in quorum.validators:
            return
        me = quorum.validators.index(node.node_key)
        now = self.local_time(node)
        for index, worker in enumerate(quorum.workers):
            record = get_node(view, worker)
            target = self.by_key.get(worker)
            if record is None or target is None:
                continue
            reachable = target.up and self.connected(node.index, target.index)
            reasons = compute_test_reasons(
                proof_fresh=node.proofs.is_fresh(worker, now),
                reachable=reachable,
                storage_reachable=reachable,
                pulse_fails=node.pulse_record.fails(worker),
            )
            decision = node.cop.decide(worker, record, height, reasons, node.state.params)
            if decision is None:
                continue
            message = compute_vote_message(self.genesis.chain_id, height, index, int(decision), reasons)
            try:
                signature = node.signer.sign(height, index, VOTE, message)
            except DoubleSign:
                continue
            vote = VoteMessage(height, index, int(decision), Vote(me, reasons, signature))
            self.broadcast(node, vote)
            self.on_vote_message(node, vote)

    def on_vote_message(self, node: SimNode, message: VoteMessage) -> None:
        key = (message.quorum_height, message.worker_index, message.new_state)
        node.vote_pool.setdefault(key, {}).setdefault(message.vote.validator_index, message.vote)

    def is_valid_template(
        self, node: SimNode, block: Block, height: int, round_: int, producer: bytes
    ) -> bool:
        header = block.header
        if (header.height, header.round, header.producer) != (height, round_, producer):
            return False
        try:
            execute_block(node.state, block, verify_signatures=False)
        except InvalidBlock:
            return False
        return True

    def drive(self, node: SimNode, actions: Sequence[Any]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                self.send_pulse(node, action.message)
            elif isinstance(action, WakeAt):
                skew = self.config.faults.skew.get(node.index, 0.0)
                self.push(max(self.now, action.time - skew), node.index, "wake", node.round_id)
            elif isinstance(action, BlockSigned):
                self.record_stage_times(node)
                block = Block(action.block.header, action.block.events, action.signatures)
                self.broadcast(node, SignedBlock(block))
                self.on_block(node, block, node)
            elif isinstance(action, RoundFailed):
                self.record_stage_times(node)
                node.round = None

    def record_stage_times(self, node: SimNode) -> None:
        if node.round is not None:
            node.stage_times = dict(node.round.stage_times)

    def send_pulse(self, node: SimNode, message: PulseMessage) -> None:
        kind = node.byzantine
        if kind == "withhold" and message.kind >= 3:
            return
        if kind == "garbage":
            self.broadcast(
                node, msgspec.structs.replace(message, payload=self.rng.randbytes(len(message.payload) or 8))
            )
            return
        if kind == "equivocate" and message.sender == 255 and message.kind == 2:
            # the producer sends one template to half the quorum and another to the rest
            other = self.equivocating_template(node, message)
            for target in node.quorum_members:
                self.send(node, target, message if target.index % 2 else other)
            return
        self.to_quorum(node, message)

    def to_quorum(self, node: SimNode, message: PulseMessage) -> None:
        """Pulse messages go to the round's quorum only (the others get the signed block)."""
        for member in node.quorum_members:
            self.send(node, member, message)

    def equivocating_template(self, node: SimNode, message: PulseMessage) -> PulseMessage:
        block = _block_decoder.decode(message.payload[2:])
        header = msgspec.structs.replace(block.header, timestamp=block.header.timestamp + 1)
        other = message.payload[:2] + encode(Block(header, block.events))
        unsigned = msgspec.structs.replace(message, payload=other)
        return sign_message(unsigned, node.key)  # byzantine: bypasses its own guard

    # -- messages ---------------------------------------------------------------------------------

    def on_message(self, node: SimNode, message: Any, sender: SimNode) -> None:
        if isinstance(message, PulseMessage):
            if message.height > node.height + 1:
                self.request_sync(node)
            if (
                node.round is not None
                and message.height == node.round_id[0]
                and message.round == node.round_id[1]
            ):
                self.drive(node, node.round.on_message(message, self.local_time(node)))
        elif isinstance(message, SignedBlock):
            self.on_block(node, message.block, None)
        elif isinstance(message, CheckpointVote):
            self.on_vote(node, message)
        elif isinstance(message, VoteMessage):
            self.on_vote_message(node, message)
        elif isinstance(message, UptimeProof):
            record = get_node(Overlay(node.state.get), message.node_key)
            node.proofs.on_proof(message, self.local_time(node), record.bls_key if record else None)
        elif isinstance(message, Certified):
            self.on_certificate(node, message.certificate)
        elif isinstance(message, SyncRequest):
            self.on_sync_request(node, message, sender)
        elif isinstance(message, SyncResponse):
            for block in message.blocks:
                self.on_block(node, block, None)
            for certificate in message.certificates:
                self.on_certificate(node, certificate)

    def request_sync(self, node: SimNode) -> None:
        if self.now < node.syncing_until:
            return
        node.syncing_until = self.now + self.config.round_timeout
        peers = [n for n in self.nodes if n is not node]
        for peer in self.rng.sample(peers, min(3, len(peers))):
            self.send(node, peer, SyncRequest(node.final_height + 1))

    def on_sync_request(self, node: SimNode, request: SyncRequest, requester: SimNode) -> None:
        blocks = tuple(node.blocks[max(0, request.from_height - 1) :])
        certificates = tuple(c for h, c in sorted(node.certificates.items()) if h >= request.from_height)
        if blocks or certificates:
            self.send(node, requester, SyncResponse(blocks[:64], certificates))

    def on_block(self, node: SimNode, block: Block, producer: SimNode | None) -> None:
        header = block.header
        height = header.height
        if height > node.height + 1:
            self.request_sync(node)
            return
        if height <= node.height:
            self.consider_fork(node, block)
            return
        if not self.try_apply(node, block):
            return
        self.after_block(node)

    def try_apply(self, node: SimNode, block: Block) -> bool:
        state = node.state.copy()
        try:
            if block.header.prev_hash != state.block_hash:
                return False
            entropy = compute_block_entropy(node.random_value_at, block.header.height)
            quorum = validate_pulse(state, block, entropy)
            commit_block(state, execute_block(state, block, verify_signatures=False))
        except InvalidBlock:
            return False
        node.states.append(state)
        node.blocks.append(block)
        node.rounds_used.append(block.header.round)
        node.pulse_record.note_round(quorum.validators, block.header.validators)
        for event in block.events:
            if isinstance(event, StateChange):
                node.state_changes.append((block.header.height, event.new_state))
        self.note_signatures(block, quorum.validators)
        return True

    def after_block(self, node: SimNode) -> None:
        node.round = None
        self.vote_checkpoint(node)
        self.run_tests(node)
        certificate = node.certificates.get(node.height)
        if certificate is not None:
            self.on_certificate(node, certificate)
        self.schedule_height(node)

    def consider_fork(self, node: SimNode, block: Block) -> None:
        """Fork choice below the tip: never below finality; a certificate; then lower round, lower hash."""
        height = block.header.height
        if height <= node.final_height or height < 1:
            return
        ours = node.blocks[height - 1]
        new_hash = compute_block_hash(block.header)
        our_hash = compute_block_hash(ours.header)
        if new_hash == our_hash or block.header.prev_hash != node.states[height - 1].block_hash:
            return
        certified = node.certificates.get(height)
        if certified is not None and certified.block_hash == our_hash:
            return
        prefer_new = (certified is not None and certified.block_hash == new_hash) or (
            (block.header.round, new_hash) < (ours.header.round, our_hash)
        )
        if not prefer_new:
            return
        kept_states, kept_blocks = node.states[:height], node.blocks[: height - 1]
        node.states, node.blocks = kept_states, kept_blocks
        node.rounds_used = node.rounds_used[: height - 1]
        if self.try_apply(node, block):
            self.after_block(node)

    def note_signatures(self, block: Block, validators: Sequence[bytes]) -> None:
        """Remember who signed what: two blocks signed by one validator in one round is a double sign."""
        header = block.header
        block_hash = compute_block_hash(header)
        for index, _ in block.signatures:
            self.signed_slots.setdefault(
                (bytes(validators[index]), header.height, header.round, 0), set()
            ).add(block_hash)

    # -- checkpoints ----------------------------------------------------------------------------

    def vote_checkpoint(self, node: SimNode) -> None:
        height = node.height
        if height == 0 or not is_checkpoint_height(height):
            return
        quorum = get_checkpoint_quorum(Overlay(node.state.get), height)
        if quorum is None:
            return
        members = [m.node_key for m in quorum.members]
        if node.node_key not in members:
            return
        member = members.index(node.node_key)
        message = compute_checkpoint_message(self.genesis.chain_id, height, node.state.block_hash)
        try:
            node.signer.sign(height, 0, CHECKPOINT, message)  # the guard records the slot first
        except DoubleSign:
            return
        signature = bls.sign(node.bls_secret, message)
        vote = CheckpointVote(height, node.state.block_hash, member, signature)
        self.broadcast(node, vote)
        self.on_vote(node, vote)
        if node.byzantine == "double-sign":
            other = Hash32(bytes(32))
            forged = bls.sign(
                node.bls_secret, compute_checkpoint_message(self.genesis.chain_id, height, other)
            )
            self.broadcast(node, CheckpointVote(height, other, member, forged))

    def on_vote(self, node: SimNode, vote: CheckpointVote) -> None:
        # the quorum of a checkpoint is in the state from four blocks before it: None until then
        quorum = get_checkpoint_quorum(Overlay(node.state.get), vote.height)
        if quorum is not None and vote.member < len(quorum.members):
            voter = bytes(quorum.members[vote.member].node_key)
            self.signed_slots.setdefault((voter, vote.height, 0, CHECKPOINT), set()).add(
                bytes(vote.block_hash)
            )
        if vote.height <= node.final_height or vote.height in node.certificates:
            return
        votes = node.votes.setdefault((vote.height, bytes(vote.block_hash)), {})
        votes.setdefault(vote.member, vote.signature)
        if quorum is None or len(votes) < compute_checkpoint_threshold(len(quorum.members)):
            return
        keys = [m.bls_key for m in quorum.members]
        valid = {i: s for i, s in votes.items() if i < len(keys)}
        certificate = aggregate_certificate(vote.height, vote.block_hash, valid, len(keys))
        try:
            verify_certificate(certificate, self.genesis.chain_id, keys)
        except (InvalidCertificate, ValueError):
            # one bad vote spoils the aggregate: keep only the votes that verify on their own
            message = compute_checkpoint_message(self.genesis.chain_id, vote.height, vote.block_hash)
            good = {i: s for i, s in valid.items() if bls.verify(keys[i], message, s)}
            node.votes[(vote.height, bytes(vote.block_hash))] = good
            if len(good) < compute_checkpoint_threshold(len(keys)):
                return
            certificate = aggregate_certificate(vote.height, vote.block_hash, good, len(keys))
        self.on_certificate(node, certificate)
        self.broadcast(node, Certified(certificate))

    def on_certificate(self, node: SimNode, certificate: CheckpointCertificate) -> None:
        height = certificate.height
        if height <= node.final_height:
            return
        quorum = get_checkpoint_quorum(Overlay(node.state.get), height)
        if quorum is None:
            return
        try:
            verify_certificate(certificate, self.genesis.chain_id, [m.bls_key for m in quorum.members])
        except (InvalidCertificate, ValueError):
            return
        node.certificates[height] = certificate
        if height <= node.height and node.block_hash_at(height) == certificate.block_hash:
            node.final_height = height
            self.final_blocks.setdefault(height, set()).add(bytes(certificate.block_hash))
        elif height <= node.height:
            self.request_sync(node)  # the network finalised another block than ours: fetch it

    # -- the verdict ----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        honest = self.honest_nodes()
        safety = sum(1 for hashes in self.final_blocks.values() if len(hashes) > 1)
        roots_agree = True
        for height in range(1, max((n.final_height for n in honest), default=0) + 1):
            seen = {
                (n.states[height].block_hash, n.states[height].root)
                for n in honest
                if n.final_height >= height
            }
            if len(seen) > 1:
                roots_agree = False
        byzantine = {bytes(n.node_key) for n in self.nodes if n.byzantine}
        honest_double = 0
        for (signer, _height, _round, _slot), hashes in self.signed_slots.items():
            if len(hashes) > 1 and signer not in byzantine:
                honest_double += 1
        return {
            "final_heights": [n.final_height for n in self.nodes],
            "target_reached": all(n.final_height >= self.config.blocks for n in honest),
            "heights": [n.height for n in self.nodes],
            "roots_agree": roots_agree,
            "safety_violations": safety,
            "double_signs": honest_double,
            "rounds_used": max((max(n.rounds_used, default=0) for n in honest), default=0),
            "messages": self.messages,
            "simulated_seconds": round(self.now - self.genesis.genesis_time, 3),
            "final_root": honest[0].states[honest[0].final_height].root.hex() if honest else "",
        }
