"""A deterministic network simulator: a thin driver over the node core.

N service nodes, each a :class:`consensus.node.NodeCore` on its own
:class:`~consensus.ledger.MemoryLedger`, exactly the core the process node drives over p2p and
LevelDB. The simulator only plays the world around them: the network delivers messages after a
latency with jitter, may lose them, may be partitioned; nodes crash and restart (their chain and
double-sign record survive, as on disk), clocks are skewed, and byzantine members equivocate,
withhold, double-sign or send garbage (by rewriting what their honest core sends).

Time is simulated by a discrete-event loop: a heap of (time, sequence) events, every random
choice drawn from one seeded generator. The same seed gives the same run, byte for byte.
:meth:`Simulation.run_on_trio` drives the very same loop from one trio task that sleeps until
each event, so simulated time is trio's clock (``MockClock`` with autojump in the tests): one
task, rather than one per node, because trio deliberately varies the order in which
simultaneous tasks run, and the run must not depend on it.

Checks, reported by :meth:`Simulation.report`: final heights per node; whether every honest node
has the same block and root at every height final for it (``roots_agree``); safety violations
(two different final blocks at one height anywhere); double signatures by honest nodes; and the
nodes that honest nodes caught equivocating (``accused``: evidence, :mod:`consensus.evidence`).
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from consensus.checkpoint import compute_checkpoint_message
from consensus.evidence import Evidence
from consensus.guard import CHECKPOINT, GuardedSigner, MemorySlotRecord, SlotRecord
from consensus.ledger import Ledger, MemoryLedger
from consensus.messages import CheckpointVote, Message
from consensus.node import (
    Action,
    Applied,
    AskPeers,
    CoreConfig,
    Equivocation,
    Finalized,
    Gossip,
    Identity,
    NodeCore,
    Send,
)
from consensus.pulse import PulseMessage, Timing, sign_message
from consensus.uptime import DEVNET_UPTIME
from state.block import Block, compute_block_hash
from state.crypto import bls, ed25519
from state.encoding import Decoder, encode
from state.events import StateChange
from state.state import State
from state.types import Hash32, NodeKey

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


# -- a node ---------------------------------------------------------------------------------------


class SimNode:
    """One simulated service node: its core, its ledger and what the simulator knows of it."""

    def __init__(self, index: int, core: NodeCore, ledger: Ledger) -> None:
        self.index = index
        self.core = core
        self.ledger = ledger
        self.key = core.identity.key
        self.node_key = core.node_key
        self.bls_secret = core.identity.bls_secret
        self.up = True
        self.byzantine = ""
        self.wakes: set[float] = set()  # local times already queued for core.on_time

    @property
    def states(self) -> list[State]:
        """One state per height (a :class:`MemoryLedger`'s; the simulator's default)."""
        assert isinstance(self.ledger, MemoryLedger)
        return self.ledger.states

    @property
    def blocks(self) -> list[Block]:
        return [self.ledger.block_at(height) for height in range(1, self.ledger.height + 1)]

    @property
    def state(self) -> State:
        return self.ledger.state

    @property
    def height(self) -> int:
        return self.ledger.height

    @property
    def final_height(self) -> int:
        return self.ledger.final_height

    def random_value_at(self, height: int) -> bytes:
        return self.ledger.random_value_at(height)

    @property
    def rounds_used(self) -> list[int]:
        return [block.header.round for block in self.blocks]

    @property
    def stage_times(self) -> dict[str, float]:
        return self.core.stage_times

    @property
    def state_changes(self) -> list[tuple[int, int]]:
        """(height, new state) of every state change in this node's chain."""
        return [
            (block.header.height, event.new_state)
            for block in self.blocks
            for event in block.events
            if isinstance(event, StateChange)
        ]


@dataclass
class SimGenesis:
    """What the simulation starts from: the state after block 0 and every node's keys."""

    chain_id: str
    genesis_time: int
    state: State
    keys: list[tuple[ed25519.SigningKey, bls.BlsSecretKey]]


LedgerFactory = Callable[[int, State], Ledger]
"""Node index and genesis state → the node's ledger (default: a :class:`MemoryLedger`)."""
RecordFactory = Callable[[int], SlotRecord]
"""Node index → the double-sign guard's record (default: in memory)."""


class Simulation:
    def __init__(
        self,
        config: SimConfig,
        genesis: SimGenesis,
        *,
        ledgers: LedgerFactory | None = None,
        records: RecordFactory | None = None,
    ) -> None:
        if len(genesis.keys) != config.nodes:
            raise ValueError("the genesis must hold one key pair per simulated node")
        self.config = config
        self.rng = random.Random(config.seed)
        self.genesis = genesis
        core_config = CoreConfig(
            chain_id=genesis.chain_id,
            block_time=config.block_time,
            timing=Timing(stage_timeout=config.stage_timeout, round_timeout=config.round_timeout),
            uptime=DEVNET_UPTIME,
            p2p_port=22020,
            storage_port=22021,
        )
        self.nodes: list[SimNode] = []
        for index, (key, secret) in enumerate(genesis.keys):
            ledger = ledgers(index, genesis.state) if ledgers else MemoryLedger(genesis.state.copy())
            record = records(index) if records else MemorySlotRecord()
            identity = Identity(key, secret, GuardedSigner(key, record))
            core = NodeCore(
                dataclasses.replace(core_config, public_ip=f"10.0.0.{index}"),  # data only: never dialled
                identity,
                ledger,
                random_bytes=self.rng.randbytes,
                probe=functools.partial(self.probe, index),
            )
            self.nodes.append(SimNode(index, core, ledger))
        for node, kind in config.faults.byzantine.items():
            self.nodes[node].byzantine = kind
        self.by_key = {n.node_key: n for n in self.nodes}
        self.queue: list[tuple[float, int, int, str, Any]] = []
        self.seq = 0
        self.now = 0.0
        self.final_blocks: dict[int, set[bytes]] = {}  # height → final hashes seen anywhere
        self.signed_slots: dict[tuple[bytes, int, int, int], set[bytes]] = {}
        self.messages = 0
        self._equivocations: dict[bytes, PulseMessage] = {}
        self.evidence: list[tuple[int, Evidence]] = []
        """(honest node that caught it, evidence)."""

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
            self.carry_out(node, node.core.start(self.local_time(node), first_proof_in=self.rng.random()))
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
        if kind == "wake":
            node.wakes.discard(payload)
        if kind == "crash":
            node.up = False
            node.core.on_crash()
        elif kind == "restart":
            node.up = True
            self.carry_out(node, node.core.on_restart(self.local_time(node)))
        elif not node.up:
            return
        elif kind == "deliver":
            sender, message = payload
            self.carry_out(
                node, node.core.on_message(message, self.nodes[sender].node_key, self.local_time(node))
            )
        elif kind == "wake":
            # the wake's own local time: skew arithmetic must not leave the core a hair early
            self.carry_out(node, node.core.on_time(max(self.local_time(node), payload)))

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

    def probe(self, tester: int, worker: NodeKey) -> bool | None:
        """What an obligations test of ``worker`` by node ``tester`` sees: up and reachable."""
        target = self.by_key.get(worker)
        if target is None:
            return None
        return target.up and self.connected(tester, target.index)

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

    # -- carrying out a core's actions ------------------------------------------------------------

    def carry_out(self, node: SimNode, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                target = self.by_key.get(action.to)
                if target is not None:
                    self.send_as(node, target, action.message)
            elif isinstance(action, Gossip):
                self.gossip_as(node, action.message)
            elif isinstance(action, AskPeers):
                peers = [n for n in self.nodes if n is not node]
                for peer in self.rng.sample(peers, min(action.count, len(peers))):
                    self.send(node, peer, action.message)
            elif isinstance(action, Applied):
                self.note_signatures(action.block, action.validators)
            elif isinstance(action, Finalized):
                self.final_blocks.setdefault(action.height, set()).add(bytes(action.block_hash))
            elif isinstance(action, Equivocation) and not node.byzantine:
                self.evidence.append((node.index, action.evidence))
        wake = node.core.next_wake()
        if wake is not None and wake not in node.wakes:
            node.wakes.add(wake)
            skew = self.config.faults.skew.get(node.index, 0.0)
            self.push(max(self.now, wake - skew), node.index, "wake", wake)

    def send_as(self, node: SimNode, target: SimNode, message: Message) -> None:
        """A direct message (Pulse's, a checkpoint vote, a sync answer), rewritten if the sender
        is byzantine."""
        kind = node.byzantine
        if isinstance(message, CheckpointVote):
            self.note_checkpoint_vote(node, message)
            if kind == "double-sign":  # a second vote, for another block, in the same slot
                other = Hash32(bytes(32))
                payload = compute_checkpoint_message(self.genesis.chain_id, message.height, other)
                forged = CheckpointVote(
                    message.height, other, message.member, bls.sign(node.bls_secret, payload)
                )
                self.send(node, target, forged)
        if isinstance(message, PulseMessage) and kind:
            if kind == "withhold" and message.kind >= 3:
                return
            if kind == "garbage":
                garbage = self.rng.randbytes(len(message.payload) or 8)
                self.send(node, target, msgspec.structs.replace(message, payload=garbage))
                return
            if kind == "equivocate" and message.sender == 255 and message.kind == 2:
                # the producer sends one template to half the quorum and another to the rest
                other_template = self.equivocating_template(node, message)
                self.send(node, target, message if target.index % 2 else other_template)
                return
        self.send(node, target, message)

    def gossip_as(self, node: SimNode, message: Message) -> None:
        if isinstance(message, CheckpointVote):
            self.note_checkpoint_vote(node, message)
        self.broadcast(node, message)

    def note_checkpoint_vote(self, node: SimNode, vote: CheckpointVote) -> None:
        slot = (bytes(node.node_key), vote.height, 0, CHECKPOINT)
        self.signed_slots.setdefault(slot, set()).add(bytes(vote.block_hash))

    def equivocating_template(self, node: SimNode, message: PulseMessage) -> PulseMessage:
        digest = bytes(message.signature)
        cached = self._equivocations.get(digest)
        if cached is not None:
            return cached
        block = _block_decoder.decode(message.payload[2:])
        header = msgspec.structs.replace(block.header, timestamp=block.header.timestamp + 1)
        other = message.payload[:2] + encode(Block(header, block.events))
        unsigned = msgspec.structs.replace(message, payload=other)
        forged = sign_message(unsigned, node.key)  # byzantine: bypasses its own guard
        self._equivocations[digest] = forged
        return forged

    def note_signatures(self, block: Block, validators: tuple[NodeKey, ...]) -> None:
        """Remember who signed what: two blocks signed by one validator in one round is a double sign."""
        header = block.header
        block_hash = compute_block_hash(header)
        for index, _ in block.signatures:
            self.signed_slots.setdefault(
                (bytes(validators[index]), header.height, header.round, 0), set()
            ).add(block_hash)

    # -- the verdict ----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        honest = self.honest_nodes()
        safety = sum(1 for hashes in self.final_blocks.values() if len(hashes) > 1)
        roots_agree = True
        for height in range(1, max((n.final_height for n in honest), default=0) + 1):
            seen = {
                (n.ledger.block_hash_at(height), n.ledger.root_at(height))
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
            "accused": sorted({self.by_key[e.signer].index for _, e in self.evidence}),
            "rounds_used": max((max(n.rounds_used, default=0) for n in honest), default=0),
            "messages": self.messages,
            "simulated_seconds": round(self.now - self.genesis.genesis_time, 3),
            "final_root": honest[0].ledger.root_at(honest[0].final_height).hex() if honest else "",
        }
