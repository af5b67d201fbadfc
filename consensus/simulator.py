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

Outages (PROTOCOL.md §4a: the chain's own rules never stop it, only nodes that are offline can)
are faults the simulator decides while it runs, from the chain of the most advanced honest node
that is up: :class:`ToFloor` stops nodes one after another until the active set is at
``pulse_min_nodes`` and then some, :class:`Stall` stops the next producer and enough validators
that no Pulse round can succeed; both bring their nodes back one by one.

Two networks. By default every node reaches every node directly, after a latency with jitter,
and gossip goes to all (the small simulations). With ``SimConfig.topology`` the network is the
one the process node keeps (:mod:`consensus.topology`): a few gossip peers per node and direct
connections to quorum members while on duty, opened and closed as the cores decide; gossip
relays through :class:`consensus.gossip.Spreader` exactly as the process node's does, over a
WAN (:mod:`consensus.simnet`: regions, jitter, loss, upload bandwidth, handshakes), and
:meth:`Simulation.topology_report` says what it cost per node and block and how fast blocks
spread and became final. That is how 2,000 nodes run on one machine: with ``apply_once`` and
``verify_once`` a block is executed and a signature verified once for all the nodes.

Checks, reported by :meth:`Simulation.report`: final heights per node; whether every honest node
has the same block and root at every height final for it (``roots_agree``); safety violations
(two different final blocks at one height anywhere); double signatures by honest nodes; the
nodes that honest nodes caught equivocating (``accused``: evidence, :mod:`consensus.evidence`);
the smallest active set on the way, and what each outage did.
"""

from __future__ import annotations

import contextlib
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
from consensus.gossip import Spreader, relay_style, should_relay
from consensus.guard import CHECKPOINT, GuardedSigner, MemorySlotRecord, SlotRecord
from consensus.ledger import Ledger, MemoryLedger, SharedExecutions
from consensus.messages import (
    Certified,
    CheckpointVote,
    Have,
    Message,
    SignedBlock,
    TxBatch,
    TxMessage,
    VoteMessage,
    Want,
)
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
from consensus.quorum import PULSE_VALIDATORS, compute_pulse_threshold
from consensus.simnet import FRAME_OVERHEAD, HANDSHAKE_TRIPS, Links, Traffic, Wan, kind_of
from consensus.topology import GossipPeers, Topology
from consensus.uptime import DEVNET_UPTIME, UptimeProof, UptimeRules
from state.block import Block, compute_block_hash
from state.crypto import bls, ed25519
from state.encoding import Decoder, encode
from state.events import StateChange
from state.hashing import blake3_256
from state.obligations import compute_votes_needed
from state.params import ChainParams
from state.state import State, state_index
from state.types import Hash32, NodeKey

_block_decoder = Decoder(Block)


# -- faults --------------------------------------------------------------------------------------

FLOOR_TICK = 2.0
"""Seconds between two looks of a :class:`ToFloor` at the chain."""
STOP_SPACING = 1.0
"""Seconds between two nodes an outage stops together (one after another, not all at once)."""


@dataclass(frozen=True)
class ToFloor:
    """Nodes stopped one after another until the active set is at the floor, then back one by one.

    From ``start``, every :data:`FLOOR_TICK` seconds, the simulator reads the chain of the most
    advanced honest node that is up and stops the next of ``nodes``: as many together
    (:data:`STOP_SPACING` apart) as the network can still make blocks and decommission them
    (:func:`compute_wave`), and never more than would take the active set below
    ``pulse_min_nodes`` once they are all decommissioned. Counted as down in that: the nodes it
    stopped that are still active, other faults' crashed nodes, and byzantine nodes that take
    no part in Pulse rounds, even decommissioned ones (they pass every test but Pulse's, so they
    are recommissioned, and silent again). When the active set is at the floor (however it got
    there) it stops the rest of ``nodes`` as well: the floor keeps them active (PROTOCOL.md
    §4a), so the chain goes on, or stops, with them down. ``hold`` seconds after its last stop,
    every node it stopped comes back, in the order they stopped, ``stagger`` seconds apart (and
    is recommissioned by obligations votes, if its credit lasted).
    """

    nodes: tuple[int, ...]
    start: float
    hold: float
    stagger: float


@dataclass(frozen=True)
class Stall:
    """The next producer and validators stopped at once, so that a height fails round after round.

    At ``start`` the simulator reads the chain of the most advanced honest node that is up and
    stops the producer of its next block (the head of the reward queue) and other active nodes
    (drawn from the honest ones that are up, that no crash names and no outage stopped before)
    until at most T active nodes are left, T the signatures a block needs: no round can then
    gather a producer and T validators, even once other faults heal.
    From ``back`` they come back one by one, ``stagger`` seconds apart (0: together); a stall of
    more than 256 round timeouts takes the height past round 255 (rounds are 16 bits, §4a).
    """

    start: float
    back: float
    stagger: float = 0.0


@dataclass
class OutageRecord:
    """What an outage did (simulated times): for the report, and for tests to check against."""

    kind: str
    """``floor`` (:class:`ToFloor`) or ``stall`` (:class:`Stall`)."""
    stopped: list[tuple[int, float]] = field(default_factory=list)
    """(node, when it stopped), in order."""
    back: list[tuple[int, float]] = field(default_factory=list)
    """(node, when it restarted), in order."""
    floor_reached: float | None = None
    """When a :class:`ToFloor` found the active set at ``pulse_min_nodes``."""
    decided: bool = False
    """Whether the outage has stopped every node it will and set when they come back."""

    def to_json(self, origin: float) -> dict[str, Any]:
        def since(events: list[tuple[int, float]]) -> list[list[float]]:
            return [[node, round(at - origin, 3)] for node, at in events]

        reached = None if self.floor_reached is None else round(self.floor_reached - origin, 3)
        return {
            "kind": self.kind,
            "stopped": since(self.stopped),
            "back": since(self.back),
            "floor_reached": reached,
        }


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
    floors: list[ToFloor] = field(default_factory=list)
    """Shrinks of the active set to the floor (:class:`ToFloor`)."""
    stalls: list[Stall] = field(default_factory=list)
    """Outages of a producer and validators (:class:`Stall`)."""


@dataclass
class SimConfig:
    nodes: int = 12
    blocks: int = 20
    seed: int = 1
    latency: float = 0.05
    jitter: float = 0.05
    block_time_ms: int = 2_000
    """The simulated chain's ``block_time`` (milliseconds): its genesis carries it
    (:func:`appchain.cli.simulate.simulation_genesis`), and the cores read it from the state."""
    stage_timeout_ms: int = 1_000
    round_timeout_ms: int = 6_000
    faults: Faults = field(default_factory=Faults)
    time_limit: float = 0.0
    """Stop at this simulated time, seconds (0: ``blocks`` block times x 20)."""
    verify_once: bool = False
    """Verify each distinct signature once for all the simulated nodes (:class:`VerdictMemo`)."""
    apply_once: bool = False
    """Execute each block once for all the simulated nodes (:class:`~consensus.ledger.SharedExecutions`)."""
    topology: Topology | None = None
    """Bounded gossip (:mod:`consensus.topology`, :mod:`consensus.gossip`) over a WAN
    (:class:`~consensus.simnet.Wan`: regions, jitter, upload bandwidth), with connections opened
    and closed as the nodes decide; None: every node reaches every node directly after
    ``latency`` plus up to ``jitter`` seconds, and gossip goes to all (the small simulations)."""
    wan: Wan = field(default_factory=Wan)
    uptime: UptimeRules = DEVNET_UPTIME
    steady_proofs: bool = False
    """Start as a network that has run a while: every node holds every node's uptime proof,
    and each node sends its next one at a random point of the proof interval (not all at once)."""


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank), seconds rounded to the millisecond."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def compute_wave(active: int, down: int, params: ChainParams) -> int:
    """How many more of ``active`` active nodes (``down`` of them already down) can stop
    together while the rest still make blocks and gather the votes that decommission them.

    Blocks need a producer and T = ⌈7V/11⌉ of V = min(11, N − 1) validators up (PROTOCOL.md
    §4a). A stopped node's decommission needs ⌈7(q − 1)/10⌉ votes of the other validators of
    an obligations quorum of q = min(10, N), or ⌈7q/10⌉ when it is not one of them; counted
    as if every stopped node sat in that quorum. Never past the floor: at most
    ``active - pulse_min_nodes`` in all.
    """
    threshold = compute_pulse_threshold(min(PULSE_VALIDATORS, active - 1))
    quorum = min(params.obligations_quorum_size, active)
    wave = 0
    for more in range(1, active - params.pulse_min_nodes + 1):
        stopped = down + more
        makes_blocks = active - stopped >= threshold + 1
        votes_on_a_validator = quorum - stopped >= compute_votes_needed(quorum - 1, params)
        votes_on_another = active <= quorum or quorum - stopped + 1 >= compute_votes_needed(quorum, params)
        if not (makes_blocks and votes_on_a_validator and votes_on_another):
            break
        wave = more
    return wave


SILENT = ("withhold", "garbage")
"""Byzantine kinds whose Pulse messages count for nothing (withheld, or signed over garbage)."""


class VerdictMemo:
    """Each distinct signature verified once for all the simulated nodes, while installed.

    Every simulated node lives in this one process and checks the same bytes: a Pulse message
    is verified by each other member of its quorum, an uptime proof by every node, a
    certificate by all. The verify functions are pure, so a repeated question gets the real
    function's first answer, and a simulated message costs what it costs one node rather than
    N. Installed on the facade modules, where every caller looks the functions up (as
    :class:`appchain.node.metrics.SignatureClock` is); a context manager, restored on the way out.
    Off by default (``SimConfig.verify_once``): ``bench/consensus.py`` measures every node's work.
    """

    FUNCTIONS = ((ed25519, "verify"), (bls, "verify"), (bls, "fast_aggregate_verify"))
    LIMIT = 1_000_000
    """Verdicts kept before the memo starts again (a bound on its memory)."""

    def __init__(self) -> None:
        self.verdicts: dict[tuple[Any, ...], bool] = {}
        self._saved: list[tuple[object, str, Any]] = []

    def __enter__(self) -> VerdictMemo:
        for owner, name in self.FUNCTIONS:
            original = getattr(owner, name)
            self._saved.append((owner, name, original))
            setattr(owner, name, self._memoized(name, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()
        self.verdicts.clear()

    def _memoized(self, name: str, verify: Callable[..., bool]) -> Callable[..., bool]:
        verdicts = self.verdicts

        def memoized(*args: Any) -> bool:
            # bytes as they are; a list of keys (or any other buffer) as a tuple of its items
            key = (name, *(a if isinstance(a, bytes) else tuple(a) for a in args))
            verdict = verdicts.get(key)
            if verdict is None:
                if len(verdicts) >= self.LIMIT:
                    verdicts.clear()
                verdict = verdicts[key] = verify(*args)
            return verdict

        return memoized


GOSSIP = (SignedBlock, Certified, VoteMessage, UptimeProof, TxMessage, TxBatch)
"""What spreads by relay under a bounded topology (checkpoint votes go to their quorum directly)."""
MAINTAIN_EVERY = 1.0
"""Seconds between two looks of a node at its gossip peers (:class:`~consensus.topology.GossipPeers`)."""
FLUSH_DELAY = 0.005
"""Seconds a node gathers the hashes it owes its peers before it sends them, when a block or a
certificate is among them (a turn of the process node's loop)."""
TRICKLE = 1.0
"""Seconds a node gathers the other hashes it owes (proofs, transactions, votes): many then share
one :class:`~consensus.messages.Have` (as Bitcoin trickles its transaction announcements)."""
META_LIMIT = 200_000
DIGEST_BYTES = 34
"""Bytes one hash adds to a :class:`~consensus.messages.Have` or :class:`~consensus.messages.Want`."""


@dataclass
class Spread:
    """How blocks spread and became final under a bounded topology (:meth:`Simulation.report`)."""

    born: dict[bytes, float] = field(default_factory=dict)
    """Block hash → when its producer applied it (signed by the quorum: the start of its spread)."""
    arrivals: list[float] = field(default_factory=list)
    """Seconds from a block's birth to each other node applying it."""
    last: dict[bytes, float] = field(default_factory=dict)
    """Block hash → seconds from its birth to the last node that applied it so far."""
    finality: list[float] = field(default_factory=list)
    """Seconds from a block's timestamp (its round's start) to each node holding it final."""


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
        self.spreader: Spreader[Message] | None = None
        self.gossip_peers: GossipPeers | None = None
        self.duties: frozenset[NodeKey] = frozenset()
        self.flush_at: float | None = None  # when the hashes owed go out (a flush is queued)
        self.final_seen = 0  # the final height whose blocks' finality times are counted

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
    """Unix seconds, as in the genesis file: simulated time (float seconds) starts there."""
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
        if genesis.state.params.block_time != config.block_time_ms:
            raise ValueError(
                f"the genesis block time is {genesis.state.params.block_time} ms,"
                f" the simulation's {config.block_time_ms} ms"
            )
        self.config = config
        self.rng = random.Random(config.seed)
        self.genesis = genesis
        core_config = CoreConfig(
            chain_id=genesis.chain_id,
            timing=Timing(stage_timeout_ms=config.stage_timeout_ms, round_timeout_ms=config.round_timeout_ms),
            uptime=config.uptime,
            p2p_port=22020,
            storage_port=22021,
        )
        self.nodes: list[SimNode] = []
        self.executions = SharedExecutions() if config.apply_once else None
        for index, (key, secret) in enumerate(genesis.keys):
            if ledgers:
                ledger = ledgers(index, genesis.state)
            elif self.executions is not None:  # a committed state is never changed: one for all
                ledger = MemoryLedger(genesis.state, self.executions)
            else:
                ledger = MemoryLedger(genesis.state.copy())
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
        self.outages: list[OutageRecord] = []
        """What each :class:`ToFloor` and :class:`Stall` did, in the order of the faults."""
        self.outage_nodes: set[int] = set()
        """Nodes an outage stopped (a stall takes none of them)."""
        self.at_target: set[int] = set()
        """Honest nodes whose final height reached ``config.blocks``."""
        self.links: Links | None = None
        self.traffic: Traffic | None = None
        self.spread = Spread()
        self.regions: list[int] = []
        self.uplink_free: list[float] = []
        self.last_arrival: dict[tuple[int, int], float] = {}
        self.duplicates = 0
        """Gossip a node had already, dropped by its hash (bounded topology)."""
        self._sizes: dict[int, tuple[object, int, bytes, tuple[tuple[str, int], ...]]] = {}
        self._digest_kinds: dict[bytes, str] = {}
        if config.topology is not None:
            self.links = Links(config.nodes)
            self.traffic = Traffic(config.nodes)
            self.regions = config.wan.place(config.nodes, self.rng)
            self.uplink_free = [0.0] * config.nodes
            for sim_node in self.nodes:
                sim_node.spreader = Spreader(self.rng)
                sim_node.gossip_peers = GossipPeers(sim_node.node_key, config.topology, self.rng)

    # -- the event loop -------------------------------------------------------------------------

    def push(self, at: float, node: int, kind: str, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, node, kind, payload))

    def run(
        self,
        watch: Callable[[Simulation], None] | None = None,
        watch_every: float = 2.0,
        until: Callable[[Simulation], bool] | None = None,
    ) -> dict[str, Any]:
        """Run to the target finality (or the time limit, or until ``until`` says so: it is
        asked every ``watch_every`` simulated seconds); ``watch`` sees the network then too."""
        with self._verdicts():
            for _at in self._events(watch, watch_every, until):
                pass
        return self.report()

    async def run_on_trio(self) -> dict[str, Any]:
        """The same run, with simulated time kept by trio's clock.

        One task sleeps until each event's time (``trio.testing.MockClock`` with autojump makes
        that instant), so the run is the heap's, event for event; the report is identical.
        """
        start = trio.current_time()
        origin = self.genesis.genesis_time
        with self._verdicts():
            for at in self._events(None, 0.0, None):
                await trio.sleep_until(start + (at - origin))
        return self.report()

    def _verdicts(self) -> contextlib.AbstractContextManager[object]:
        return VerdictMemo() if self.config.verify_once else contextlib.nullcontext()

    def _events(
        self,
        watch: Callable[[Simulation], None] | None,
        watch_every: float,
        until: Callable[[Simulation], bool] | None,
    ) -> Iterator[float]:
        """Process events in time order; yield each event's time before handling it."""
        config = self.config
        origin = self.genesis.genesis_time
        self.now = float(origin)
        ticking = watch is not None or until is not None
        honest = len(self.honest_nodes())
        next_watch = origin + watch_every
        limit = origin + (config.time_limit or config.blocks * config.block_time_ms / 1000 * 20)
        for index, down, back in config.faults.crashes:
            self.push(origin + down, index, "crash")
            self.push(origin + back, index, "restart")
        for number, floor in enumerate(config.faults.floors):
            self.outages.append(OutageRecord("floor"))
            self.push(origin + floor.start, 0, "floor", (number, len(self.outages) - 1))
        for number, stall in enumerate(config.faults.stalls):
            self.outages.append(OutageRecord("stall"))
            self.push(origin + stall.start, 0, "stall", (number, len(self.outages) - 1))
        if config.steady_proofs:
            phases = [self.rng.random() * config.uptime.interval for _ in self.nodes]
            self._seed_proofs(phases)
        for node in self.nodes:
            phase = phases[node.index] if config.steady_proofs else self.rng.random()
            self.carry_out(node, node.core.start(self.local_time(node), first_proof_in=phase))
            if self.links is not None:
                self.push(self.now + self.rng.random() * MAINTAIN_EVERY, node.index, "maintain")
        while self.queue:
            at, _, target, kind, payload = heapq.heappop(self.queue)
            if at > limit:
                break
            stop = False
            while ticking and at >= next_watch and not stop:
                self.now = next_watch
                if watch is not None:
                    watch(self)
                stop = until is not None and until(self)
                next_watch += watch_every
            if stop:
                break
            yield at
            self.now = at
            node = self.nodes[target]
            self._handle(node, kind, payload)
            # only the node that handled the event can have reached the target with it
            if node.final_height >= config.blocks and not node.byzantine:
                self.at_target.add(node.index)
                if len(self.at_target) == honest:
                    break
        if watch is not None:
            watch(self)

    def _handle(self, node: SimNode, kind: str, payload: Any) -> None:
        if kind == "wake":
            node.wakes.discard(payload)
        if kind == "crash":
            node.up = False
            node.core.on_crash()
            if self.links is not None:
                self._lose_links(node)
        elif kind == "restart":
            node.up = True
            if self.links is not None:
                self._lose_links(node)  # a process starts afresh: no peers, nothing owed
                self._maintain(node, again=False)
            self.carry_out(node, node.core.on_restart(self.local_time(node)))
        elif kind == "floor":
            self._on_floor_tick(*payload)
        elif kind == "stall":
            self._on_stall(*payload)
        elif not node.up:
            return
        elif kind == "deliver":
            sender, message = payload
            if self.links is not None:
                self._deliver(node, self.nodes[sender], message)
                return
            self.carry_out(
                node, node.core.on_message(message, self.nodes[sender].node_key, self.local_time(node))
            )
        elif kind == "maintain":
            self._maintain(node)
        elif kind == "greet":
            self._greet(node, payload)
        elif kind == "flush":
            self._flush(node, payload)
        elif kind == "wake":
            # the wake's own local time: skew arithmetic must not leave the core a hair early
            self.carry_out(node, node.core.on_time(max(self.local_time(node), payload)))

    # -- outages ----------------------------------------------------------------------------------

    def last_heal(self) -> float | None:
        """When the last fault ends (simulated time): the last restart, partition's end or
        outage's restart; None while an outage has not yet decided when its nodes come back."""
        faults, origin = self.config.faults, self.genesis.genesis_time
        if len(self.outages) < len(faults.floors) + len(faults.stalls):
            return None
        if any(not record.decided for record in self.outages):
            return None
        ends = [origin + back for _, _, back in faults.crashes]
        ends += [origin + end for _, _, end in faults.partitions]
        ends += [at for record in self.outages for _, at in record.back]
        return max(ends, default=float(origin))

    def is_final_after_heals(self) -> bool:
        """Whether every fault has ended and every honest node has a final block made after the
        last heal (its round started after it): finality resumed."""
        healed = self.last_heal()
        if healed is None or self.now < healed:
            return False
        return all(
            n.final_height > 0 and n.ledger.block_at(n.final_height).header.timestamp / 1000 >= healed
            for n in self.honest_nodes()
        )

    def reference(self) -> SimNode | None:
        """The most advanced honest node that is up (the first of equals): whose chain an
        outage reads."""
        up = [n for n in self.honest_nodes() if n.up]
        return max(up, key=lambda n: (n.height, -n.index), default=None)

    def _stop(self, record: OutageRecord, nodes: list[int], at: float, spacing: float = STOP_SPACING) -> None:
        """Stop ``nodes`` one after another from ``at``, ``spacing`` seconds apart."""
        for offset, index in enumerate(nodes):
            when = at + offset * spacing
            self.push(when, index, "crash")
            record.stopped.append((index, when))
            self.outage_nodes.add(index)

    def _bring_back(self, record: OutageRecord, at: float, stagger: float) -> None:
        """Restart every node ``record`` stopped, in the order they stopped, ``stagger`` apart."""
        for offset, (index, _) in enumerate(record.stopped):
            when = at + offset * stagger
            self.push(when, index, "restart")
            record.back.append((index, when))

    def _on_floor_tick(self, number: int, which: int) -> None:
        floor, record = self.config.faults.floors[number], self.outages[which]
        reference = self.reference()
        if reference is None:
            self.push(self.now + FLOOR_TICK, 0, "floor", (number, which))
            return
        index, params = state_index(reference.state), reference.state.params
        active = set(index.active)
        stopped = {node for node, _ in record.stopped}
        pending = [node for node in floor.nodes if node not in stopped]
        waiting = sum(1 for node in stopped if self.nodes[node].node_key in active)  # not decommissioned yet
        room = len(active) - params.pulse_min_nodes
        if room > 0 and (waiting or pending):
            more = min(room - waiting, len(pending))  # stopping more would overshoot the floor
            if more > 0:
                # down: ours not decommissioned yet, other faults' crashed nodes, and byzantine
                # ones that take no part in Pulse rounds, even decommissioned: passing every
                # test but Pulse's, they are recommissioned, and are active and silent again
                down = sum(1 for key in active if self._is_down(self.by_key[key], stopped))
                silent = [key for key in index.decommissioned if self.by_key[key].byzantine in SILENT]
                wave = min(compute_wave(len(active) + len(silent), down + len(silent), params), more)
                self._stop(record, pending[:wave], self.now)
            self.push(self.now + FLOOR_TICK, 0, "floor", (number, which))
            return
        if room == 0:
            record.floor_reached = self.now
        self._stop(record, pending, self.now)  # beyond the floor: they stay active, and down
        last = max((at for _, at in record.stopped), default=self.now)
        self._bring_back(record, last + floor.hold, floor.stagger)
        record.decided = True

    @staticmethod
    def _is_down(node: SimNode, stopped: set[int]) -> bool:
        return node.index in stopped or not node.up or node.byzantine in SILENT

    def _on_stall(self, number: int, which: int) -> None:
        stall, record = self.config.faults.stalls[number], self.outages[which]
        reference = self.reference()
        record.decided = True
        if reference is None:
            return
        index = state_index(reference.state)
        active = set(index.active)
        threshold = compute_pulse_threshold(min(PULSE_VALIDATORS, len(active) - 1))
        taken = {node for node, _, _ in self.config.faults.crashes} | self.outage_nodes
        free = [
            n.index
            for n in self.nodes
            if n.up and not n.byzantine and n.index not in taken and n.node_key in active
        ]
        leader = self.by_key[index.queue[0][2]].index if index.queue else None
        others = [n for n in free if n != leader]
        candidates = ([leader] if leader in free else []) + self.rng.sample(others, len(others))
        # every active node it does not stop counts as up: one that another fault took down
        # for a while comes back during the stall
        victims = candidates[: max(0, len(active) - threshold)]
        self._stop(record, victims, self.now, spacing=0.0)
        self._bring_back(record, self.genesis.genesis_time + stall.back, stall.stagger)

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
        if self.links is not None:
            self._send_wan(sender, target, message)
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
                if self.links is not None:
                    peers = [self.nodes[i] for i in sorted(self.links.peers[node.index])]
                else:
                    peers = [n for n in self.nodes if n is not node]
                for peer in self.rng.sample(peers, min(action.count, len(peers))):
                    self.send(node, peer, action.message)
            elif isinstance(action, Applied):
                self.note_signatures(action.block, action.validators)
                if self.links is not None:
                    self._note_arrival(node, action.block)
                    self._keep_duties(node)
            elif isinstance(action, Finalized):
                self.final_blocks.setdefault(action.height, set()).add(bytes(action.block_hash))
                if self.links is not None:
                    self._note_finality(node, action.height)
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
        if self.links is None:
            self.broadcast(node, message)
            return
        self._relay(node, message, None)

    def note_checkpoint_vote(self, node: SimNode, vote: CheckpointVote) -> None:
        slot = (bytes(node.node_key), vote.height, 0, CHECKPOINT)
        self.signed_slots.setdefault(slot, set()).add(bytes(vote.block_hash))

    def equivocating_template(self, node: SimNode, message: PulseMessage) -> PulseMessage:
        digest = bytes(message.signature)
        cached = self._equivocations.get(digest)
        if cached is not None:
            return cached
        block = _block_decoder.decode(message.payload[2:])
        header = msgspec.structs.replace(block.header, timestamp=block.header.timestamp + 1)  # 1 ms later
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

    # -- a bounded topology over a WAN (config.topology) ----------------------------------------

    def _seed_proofs(self, phases: list[float]) -> None:
        """Every node holds every node's last proof (a network that has run a while): each was
        sent a proof interval before that node's next, which comes ``phases[node]`` into the run."""
        proofs = {}
        interval = self.config.uptime.interval
        for node, phase in zip(self.nodes, phases, strict=True):
            sent = self.now + phase - interval
            signed = node.core.signed_proof(sent)
            if signed is not None:
                proofs[bytes(node.node_key)] = (signed, sent)
        for node in self.nodes:
            node.core.proofs.accepted = dict(proofs)
            node.core.directory_asks = 0  # it has the directory

    def _meta(self, message: object) -> tuple[int, bytes, tuple[tuple[str, int], ...]]:
        """A message's size on the wire, its hash (what the process node knows gossip by) and
        its bytes by kind: a :class:`~consensus.messages.Have` or :class:`~consensus.messages.Want`
        counts under the kinds of what its hashes name (:data:`DIGEST_BYTES` each), its frame
        under ``announcements``. Worked out once per message object."""
        entry = self._sizes.get(id(message))
        if entry is not None and entry[0] is message:
            return entry[1], entry[2], entry[3]
        payload = encode(message)
        size = len(payload) + FRAME_OVERHEAD
        digest = b"" if isinstance(message, Have | Want) else blake3_256(payload)  # never gossip
        if isinstance(message, Have | Want):
            kinds = self._digest_kinds
            split: dict[str, int] = {}
            for named in message.digests:
                kind = kinds.get(bytes(named), "other")
                split[kind] = split.get(kind, 0) + DIGEST_BYTES
            split["announcements"] = size - DIGEST_BYTES * len(message.digests)
            parts = tuple(split.items())
        else:
            parts = ((kind_of(message), size),)
        if len(self._sizes) >= META_LIMIT:
            self._sizes.clear()
        self._sizes[id(message)] = (message, size, digest, parts)
        return size, digest, parts

    def _lose_links(self, node: SimNode) -> None:
        assert self.links is not None and self.config.topology is not None
        self.links.close_all(node.index)
        node.spreader = Spreader(self.rng)
        node.gossip_peers = GossipPeers(node.node_key, self.config.topology, self.rng)
        node.duties = frozenset()
        node.flush_at = None

    def _open(self, node: SimNode, target: SimNode, *, gossip: bool) -> None:
        """``node`` dials ``target`` (refused when it is down, partitioned away or full)."""
        links, topology = self.links, self.config.topology
        assert links is not None and topology is not None
        link = links.get(node.index, target.index)
        if link is not None:
            if gossip and link.dialler == node.index:
                link.gossip = True
            return
        if not target.up or not self.connected(node.index, target.index):
            return
        if links.inbound[target.index] >= topology.max_inbound:
            return
        trip = 2 * self.config.wan.latency(self.regions[node.index], self.regions[target.index])
        link = links.open(node.index, target.index, self.now + HANDSHAKE_TRIPS * trip, gossip=gossip)
        for end in (node, target):
            bound = topology.outbound + topology.max_inbound + len(end.duties)
            if len(links.peers[end.index]) > bound:
                links.over[end.index] += 1
        # both ends greet the new peer once the handshake is done (their own proofs, a directory)
        self.push(link.ready, node.index, "greet", target.index)
        self.push(link.ready, target.index, "greet", node.index)

    def _maintain(self, node: SimNode, again: bool = True) -> None:
        """A node's periodic look at its gossip peers: keep, swap, draw, dial; close what it
        dialled and no longer needs."""
        if again:
            self.push(self.now + MAINTAIN_EVERY, node.index, "maintain")
        if not node.up or node.gossip_peers is None:
            return
        links = self.links
        assert links is not None
        connected = [self.nodes[i].node_key for i in links.peers[node.index]]
        local = self.local_time(node)
        chosen = node.gossip_peers.update(node.core.known_nodes(local), set(connected), local)
        for key in chosen:
            target = self.by_key.get(key)
            if target is not None:
                self._open(node, target, gossip=True)
        self._keep_duties(node, chosen=set(chosen))

    def _keep_duties(self, node: SimNode, chosen: set[NodeKey] | None = None) -> None:
        """Open connections to the node's duty peers ahead of the duty; close those it dialled
        for a duty that ended (and does not keep as gossip peers)."""
        links = self.links
        assert links is not None and node.gossip_peers is not None
        node.duties = node.core.duty_peers()
        keep = set(node.gossip_peers.chosen) if chosen is None else chosen
        for key in sorted(node.duties):
            target = self.by_key.get(key)
            if target is not None:
                self._open(node, target, gossip=False)
        for other, link in sorted(links.dialled_by(node.index), key=lambda pair: pair[0]):
            key = self.nodes[other].node_key
            if key not in node.duties and key not in keep:
                links.close(node.index, other)
            elif key not in keep:
                link.gossip = False

    def _greet(self, node: SimNode, peer: int) -> None:
        links = self.links
        assert links is not None
        if node.up and links.get(node.index, peer) is not None:
            self.carry_out(
                node, node.core.on_peer_connected(self.nodes[peer].node_key, self.local_time(node))
            )

    def _send_wan(self, sender: SimNode, target: SimNode, message: Any) -> None:
        """One message over the WAN: it leaves after the sender's earlier ones (upload), after the
        connection's handshake (opened now if there is none), and arrives a latency later, in order."""
        links, traffic, wan = self.links, self.traffic, self.config.wan
        assert links is not None and traffic is not None
        if links.get(sender.index, target.index) is None:
            self._open(sender, target, gossip=False)
        link = links.get(sender.index, target.index)
        if link is None:
            return  # refused: down, partitioned away, or full
        self.messages += 1
        size, _, parts = self._meta(message)
        traffic.sent(sender.index, parts)
        leave = max(self.now, self.uplink_free[sender.index])
        if wan.upload:
            leave += size / wan.upload
        self.uplink_free[sender.index] = leave
        latency = wan.latency(self.regions[sender.index], self.regions[target.index])
        arrive = max(leave, link.ready) + latency * (1 + wan.jitter * self.rng.random())
        while self.rng.random() < self.config.faults.loss:
            arrive += self.config.faults.rto
        pair = (sender.index, target.index)
        arrive = max(arrive, self.last_arrival.get(pair, 0.0))  # one TCP stream: in order
        self.last_arrival[pair] = arrive
        self.push(arrive, target.index, "deliver", (sender.index, message))

    def _deliver(self, node: SimNode, sender: SimNode, message: Any) -> None:
        traffic, spreader = self.traffic, node.spreader
        assert traffic is not None and spreader is not None
        _, digest, parts = self._meta(message)
        traffic.received(node.index, parts)
        local = self.local_time(node)
        if isinstance(message, Have):
            want = spreader.on_have(message, local, sender.node_key)
            if want is not None:
                self.send(node, sender, want)
            return
        if isinstance(message, Want):
            for body in spreader.on_want(message):
                self.send(node, sender, body)
            return
        if not isinstance(message, GOSSIP):
            self.carry_out(node, node.core.on_message(message, sender.node_key, local))
            return
        if not spreader.is_new(digest):
            self.duplicates += 1
            return
        spreader.remember(digest)
        actions = node.core.on_message(message, sender.node_key, local)
        if should_relay(message, actions, node.core.mempool):
            self._relay(node, message, sender)
        self.carry_out(node, actions)

    def _relay(self, node: SimNode, message: Message, sender: SimNode | None) -> None:
        """Pass gossip on: the body to a few peers now, its hash to the rest at the next flush."""
        links, spreader = self.links, node.spreader
        assert links is not None and spreader is not None
        _, digest, _ = self._meta(message)
        if len(self._digest_kinds) >= META_LIMIT:
            self._digest_kinds.clear()
        self._digest_kinds[digest] = kind_of(message)
        peers = self._gossip_links(node)
        exclude = None if sender is None else sender.node_key
        push, urgent = relay_style(message)
        for key in spreader.spread(digest, message, peers, exclude, push=push, urgent=urgent):
            self.send(node, self.by_key[key], message)
        if spreader.owed and (node.flush_at is None or (urgent and node.flush_at > self.now + FLUSH_DELAY)):
            node.flush_at = self.now + (FLUSH_DELAY if urgent else TRICKLE)
            self.push(node.flush_at, node.index, "flush", node.flush_at)

    def _gossip_links(self, node: SimNode) -> list[NodeKey]:
        """The peers gossip goes to: every connection but those the node dialled for a duty
        alone (one a peer dialled counts, as in the process node: the peer may count on it)."""
        links, chosen = self.links, node.gossip_peers
        assert links is not None and chosen is not None
        wanted = set(chosen.chosen)
        keys = []
        for other in sorted(links.peers[node.index]):
            link = links.links[links.pair(node.index, other)]
            key = self.nodes[other].node_key
            if link.dialler != node.index or key in wanted:
                keys.append(key)
        return keys

    def _flush(self, node: SimNode, at: float) -> None:
        if node.flush_at != at:
            return  # a flush moved earlier (something urgent came) and already went
        node.flush_at = None
        if node.spreader is None or not node.up:
            return
        for key, have in node.spreader.flush():
            self.send(node, self.by_key[key], have)

    def _note_arrival(self, node: SimNode, block: Block) -> None:
        block_hash = compute_block_hash(block.header)
        born = self.spread.born.get(block_hash)
        if born is None:
            self.spread.born[block_hash] = self.now
        else:
            self.spread.arrivals.append(self.now - born)
            self.spread.last[block_hash] = self.now - born

    def _note_finality(self, node: SimNode, height: int) -> None:
        for final in range(node.final_seen + 1, height + 1):
            made = node.ledger.block_at(final).header.timestamp / 1000
            self.spread.finality.append(self.now - made)
        node.final_seen = max(node.final_seen, height)

    def topology_report(self) -> dict[str, Any]:
        """What the bounded topology cost and gave (see :mod:`bench.topology`): per node and
        per block, messages, bytes (consensus and directory apart) and connections; block spread
        (from the quorum signing a block to each node applying it, and to the last node that did)
        and finality percentiles."""
        links, traffic, topology = self.links, self.traffic, self.config.topology
        assert links is not None and traffic is not None and topology is not None
        honest = self.honest_nodes()
        blocks = max(1, max((n.height for n in honest), default=0))
        count = max(1, len(honest))

        def mean(values: list[float]) -> float:
            return sum(values) / max(1, len(values))

        rows = [traffic.nodes[n.index] for n in honest]
        directory = [sum(b for k, b in row.by_kind.items() if k == "proofs") for row in rows]
        total = [row.sent_bytes + row.received_bytes for row in rows]
        kinds: dict[str, int] = {}
        for row in rows:
            for kind, size in row.by_kind.items():
                kinds[kind] = kinds.get(kind, 0) + size
        return {
            "nodes": len(self.nodes),
            "blocks": blocks,
            "messages_per_node_per_block": round(mean([r.sent + r.received for r in rows]) / blocks, 1),
            "bytes_per_node_per_block": round(mean([float(t) for t in total]) / blocks),
            "consensus_bytes_per_node_per_block": round(
                mean([float(t - d) for t, d in zip(total, directory, strict=True)]) / blocks
            ),
            "directory_bytes_per_node_per_block": round(mean([float(d) for d in directory]) / blocks),
            "max_bytes_per_node_per_block": round(max(total, default=0) / blocks),
            "bytes_by_kind_per_node_per_block": {
                kind: round(size / count / blocks) for kind, size in sorted(kinds.items())
            },
            "connections_mean": round(mean([float(links.most[n.index]) for n in honest]), 1),
            "connections_max": max((links.most[n.index] for n in honest), default=0),
            "bound": topology.outbound + topology.max_inbound,
            "over_bound": sum(links.over),
            "duplicates_per_node_per_block": round(self.duplicates / count / blocks, 1),
            "propagation_p50": percentile(self.spread.arrivals, 0.5),
            "propagation_p99": percentile(self.spread.arrivals, 0.99),
            "propagation_to_all_p50": percentile(list(self.spread.last.values()), 0.5),
            "propagation_to_all_max": percentile(list(self.spread.last.values()), 1.0),
            "finality_p50": percentile(self.spread.finality, 0.5),
            "finality_p99": percentile(self.spread.finality, 0.99),
        }

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
            **self._active_sizes(honest),
            "outages": [record.to_json(self.genesis.genesis_time) for record in self.outages],
        }

    def _active_sizes(self, honest: list[SimNode]) -> dict[str, int]:
        """The smallest active set along the chain of the honest node with the highest final
        block, and the active set at its tip (when its ledger keeps every state)."""
        chains = [n for n in honest if isinstance(n.ledger, MemoryLedger)]
        if not chains:
            return {}
        longest = max(chains, key=lambda n: (n.final_height, n.height, -n.index))
        sizes = [len(state_index(state).active) for state in longest.states]
        return {"smallest_active": min(sizes), "active_at_end": sizes[-1]}
