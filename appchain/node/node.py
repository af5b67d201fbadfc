"""``appchain start``: the process node. The consensus core over p2p and the LevelDB chain.

One trio nursery runs:

- the p2p :class:`~p2p.host.Host` (Noise XX connections), kept on a bounded topology
  (:mod:`consensus.topology`, DESIGN.md "Topology at scale"): ``[p2p] outbound_peers`` gossip
  peers it dials (the configured seeds first, then nodes drawn from the uptime proofs it holds,
  swapped slowly), at most ``max_peers`` inbound ones, and direct connections to the other
  members of the quorums it sits in, opened when the duty is known (each applied block, each
  round) and closed after it. Never a connection to every node. The peer loop hands the host
  that target set each turn and after each applied block;
- the core loop: each arriving frame is decoded into a :class:`~consensus.messages.Message`
  and handed to :class:`~consensus.node.NodeCore` (undecodable frames cost the sender points),
  and the core's timers run when the wall clock reaches :meth:`NodeCore.next_wake`. The core's
  actions go out through the host: direct sends to quorum members (a message for a member not
  connected yet waits in the host's buffer for the connection being opened), gossip by relay,
  sync requests to a few gossip peers. New gossip is passed on once (de-duplicated by the hash of
  its frame, before decoding) through :class:`~consensus.gossip.Spreader` over the gossip
  connections (not those held only for a duty): the frame to ⌈√n⌉ of the n peers (none for an
  uptime proof), its hash in a :class:`~consensus.messages.Have` to the others, sent once per turn
  of the core loop; a peer that lacks it asks with a :class:`~consensus.messages.Want`, answered
  from the frames kept. Transactions travel many to a frame
  (:class:`~consensus.messages.TxBatch`): what one admin call submits goes out as one frame, and
  a batch is passed on as it came when this node kept all of it (so the copies are dropped by
  the frame's hash), else as a batch of what it kept; not at all when its origin was connected
  to every node it knows (a small network: every peer has it). Obligations tests of a node not
  connected probe its p2p port (a handshake, closed at once).
  Frames wait in the :class:`~appchain.node.inbox.Inbox`, bounded per peer and handled peer by peer
  in turn, consensus frames before transactions, so neither a flood of transactions nor one
  peer's backlog can starve a Pulse round. What a banned peer left waiting is dropped unread,
  and a request answered from the store is dropped while the asker has not read earlier answers
  (:data:`ANSWER_BACKLOG`);
- the admin endpoint (:mod:`appchain.node.admin`): status, submitting a transaction, peers;
- the public RPC port (:mod:`appchain.rpc.server`, plain HTTP) and the storage port
  (:mod:`appchain.rpc.storage`, HTTPS with the home's certificate, made here if the home has none);
- a signal watcher: SIGINT or SIGTERM cancel the nursery, the database closes cleanly, and a
  restart resumes from the log (the double-sign record is in the same database).

Equivocation the core catches (:mod:`consensus.evidence`) is written to the store, once per
signer and slot, logged as a warning and counted in ``/metrics``; ``get_evidence`` serves it.

The ledger is the node's chain (:class:`appchain.node.ledger.ChainLedger`): every block is validated
in full before it is written. Logs are structured lines on stderr (:mod:`appchain.node.log`):
``2026-11-29T19:30:00.123Z info block applied height=5 round=0 peer=ab12…``. What config.toml
sets for the host and the inbox is :mod:`appchain.node.settings`; taking the home, joining by
state sync and running until a signal is :mod:`appchain.node.run`. The servers the node starts
(admin, public port, metrics) are handed the node; none of them imports this module.
"""

from __future__ import annotations

import dataclasses
import os
import random
import secrets
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from appchain.home.boundary import Faults, is_fatal
from appchain.home.chain import Chain
from appchain.home.history import OutsideWindow
from appchain.home.home import Home, NodeConfig, split_address
from appchain.messaging.layer import SwarmLayer
from appchain.messaging.relay import OutsideRelay
from appchain.messaging.store import MessageStore
from appchain.node.admin import serve_admin
from appchain.node.inbox import Inbox
from appchain.node.journal import Journal, JournaledSlots, history_path
from appchain.node.ledger import ChainLedger
from appchain.node.log import Logger
from appchain.node.metrics import NodeMetrics, SignatureClock
from appchain.node.settings import host_config, inbox_limits, naming_listener, relay_limits, topology
from appchain.node.slots import DeferredSlots
from appchain.node.statesync import answer
from appchain.rpc.jsonrpc import RpcError, serve_on
from appchain.rpc.methods import call_method
from appchain.rpc.server import RpcLimits, RpcServer, serve_rpc
from appchain.rpc.storage import StorageServer, serve_storage
from consensus.evidence import Evidence
from consensus.gossip import Spreader, relay_style, should_relay
from consensus.guard import GuardedSigner
from consensus.mempool import MempoolFull
from consensus.messages import (
    SYNC_REQUESTS,
    SYNC_RESPONSES,
    TX_BATCH,
    Certified,
    CheckpointVote,
    Have,
    Message,
    ProofsRequest,
    SignedBlock,
    SyncRequest,
    TxBatch,
    TxMessage,
    VoteMessage,
    Want,
    decode_message,
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
    Penalize,
    Send,
)
from consensus.pulse import Timing, to_ms
from consensus.topology import GossipPeers
from consensus.uptime import DEVNET_UPTIME, MAINNET_UPTIME, UptimeProof
from genesis.presets import is_devnet_pace
from p2p.host import Host
from state.encoding import DecodeError, encode
from state.errors import InvalidEvent
from state.events import Transaction, compute_event_hash
from state.hashing import blake3_256
from state.membership import get_swarms
from state.noderecords import NodeStatus
from state.nodes import compute_credit, get_node
from state.state import State
from state.types import NodeKey
from state.view import Overlay

SIGNATURE_CLOCK_ENV = "APPCHAIN_SIGNATURE_CLOCK"
PLAIN_STORAGE_ENV = "APPCHAIN_BENCH_PLAIN_STORAGE"
"""``host:port`` where the node also serves the storage port's routes without TLS: for
``bench.swarm`` alone, which measures what TLS costs a request against plain HTTP in one run. It is
announced nowhere and no Session client could use it; config.toml has no such setting."""
FRAME_SLICE = 64
ANSWER_BACKLOG = 8 * 1024 * 1024
"""Bytes of earlier answers a peer may leave unread in its send queue and still be answered."""
ANSWERED_FROM_STORE = (SyncRequest, *SYNC_REQUESTS, Want, ProofsRequest)
"""Requests whose answers can be large: dropped while the asker leaves earlier answers unread."""
DUTY_LINGER = 4
"""Duty sets kept after they end (one per tip or round that changed them): the members of the
quorums of the last few blocks stay connected a little longer, so a node that sits in quorums
often does not redial the same members every block (a handshake each, and a window in which
a Pulse message waits for the connection)."""
PROBES_AT_ONCE = 8
"""Obligations probes of nodes this node keeps no connection to, running at once."""
PROBE_QUEUE = 256
"""Nodes waiting to be probed, at most (a validator tests at most its quorum's workers)."""
GOSSIP = (SignedBlock, CheckpointVote, Certified, VoteMessage, UptimeProof, TxMessage, TxBatch)


@dataclass
class Counters:
    frames: int = 0
    """Frames decoded (those that waited in the inbox and were not a known copy)."""
    undecodable: int = 0
    dropped: int = 0
    arrived: int = 0
    """Every frame a peer sent us, before any check."""
    duplicates: int = 0
    """Gossip we already had, dropped by its hash unread (at arrival, or after waiting behind the
    first copy in the inbox)."""


class Node:
    """A running service node (or a plain node, when its key is not registered)."""

    def __init__(self, home: Home, config: NodeConfig, chain: Chain, log: Logger) -> None:
        self.home = home
        self.config = config
        self.chain = chain
        self.log = log
        self.faults = Faults(log)
        """What the node's boundaries caught (:mod:`appchain.home.boundary`)."""
        key, bls_secret = home.load_node_keys()
        params = chain.genesis.params
        self.journal = Journal(history_path(home.path))
        """What this node finalized and signed, for the run checker (:mod:`appchain.lab.checker`)."""
        self.ledger = ChainLedger(chain)
        self.slots = DeferredSlots(chain.store)
        """The double-sign record: slots written off the event loop (:mod:`appchain.node.slots`)."""
        self._held: list[Action] = []
        """Actions waiting for the slots their signatures need to be on disk."""
        self._slots_due = trio.Event()
        self.clock_offset = config.clock_offset
        uptime = DEVNET_UPTIME if is_devnet_pace(params) else MAINNET_UPTIME
        self.core = NodeCore(
            CoreConfig(
                chain_id=chain.genesis.chain_id,
                timing=Timing(
                    stage_timeout_ms=config.stage_timeout_ms, round_timeout_ms=config.round_timeout_ms
                ),
                uptime=uptime,
                public_ip=config.public_ip,
                p2p_port=config.p2p_address[1],
                storage_port=config.served_storage_port,
                timer=time.perf_counter,
            ),
            Identity(key, bls_secret, GuardedSigner(key, JournaledSlots(self.slots, self.journal))),
            self.ledger,
            random_bytes=secrets.token_bytes,
            probe=self.probe,
        )
        self.host = Host(host_config(config, chain), key, self._on_frame, log=log, fatal=is_fatal)
        self.signature_clock = (
            SignatureClock().install() if os.environ.get(SIGNATURE_CLOCK_ENV) == "1" else None
        )
        self.spreader: Spreader[bytes] = Spreader(random.Random(secrets.randbits(64)))
        """Gossip seen, frames kept to answer a Want, hashes owed to each peer (by frame hash)."""
        self.topology = topology(config, params)
        self.seeds = {NodeKey(peer.node_key): (peer.host, peer.port) for peer in config.peers}
        self.gossip_peers = GossipPeers(
            self.core.node_key, self.topology, random.Random(secrets.randbits(64)), list(self.seeds)
        )
        """The gossip peers this node dials (:mod:`consensus.topology`)."""
        self.duty: frozenset[NodeKey] = frozenset()
        """The quorum members this node keeps direct connections to now (its duties now and
        the last :data:`DUTY_LINGER` ones)."""
        self._duties: deque[frozenset[NodeKey]] = deque(maxlen=DUTY_LINGER + 1)
        self.probed: dict[NodeKey, tuple[bool, float]] = {}
        """Obligations probes of nodes not connected: the answer and when (:meth:`probe`)."""
        self._to_probe: dict[NodeKey, None] = {}
        self._probe_due = trio.Event()
        self.counters = Counters()
        self.metrics: NodeMetrics | None = NodeMetrics(self)
        self.started = time.time()
        self.ledger.verified = self.core.mempool  # its transactions' signatures are checked once
        self.inbox = Inbox(inbox_limits(config))
        self.rpc_server: RpcServer | None = None
        """The public port's server, once :meth:`run` has started it."""
        self.storage_server: StorageServer | None = None
        """The storage port's server (HTTPS), once :meth:`run` has started it."""
        if home.ensure_certificate():
            log("info", "made the storage port's TLS certificate", cert=home.cert_path)
        self.storage_tls = home.storage_tls()
        self._arrived = trio.Event()
        log.context["node"] = bytes(self.core.node_key).hex()[:12]
        self.message_store = MessageStore(home.messages_path, sync=config.sync_writes)
        self.messages = SwarmLayer(
            self.message_store,
            key,
            self.contact_of,
            log=log,
            oxend=self._oxend,
            is_node=self._is_node,
            faults=self.faults,
            outside=OutsideRelay(relay_limits(config), log=log),
        )

    def now(self) -> float:
        """The node's clock for consensus: the wall clock plus ``clock_offset`` (0 but in a
        testnet rehearsing skew). Logs and the history journal keep the true wall clock."""
        return time.time() + self.clock_offset

    # -- running ----------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            with naming_listener("p2p_listen"):
                await nursery.start(self.host.run)
            self.retarget()
            await nursery.start(self.messages.run)
            with naming_listener("admin_listen"):
                await nursery.start(serve_admin, self)
            self.rpc_server = RpcServer(self, RpcLimits.from_config(self.config))
            with naming_listener("rpc_listen"):
                await nursery.start(serve_rpc, self.rpc_server)
            limits = RpcLimits.from_config(self.config)
            self.storage_server = StorageServer(self, limits, tls=self.storage_tls)
            with naming_listener("storage_listen"):
                await nursery.start(serve_storage, self.storage_server)
            plain = os.environ.get(PLAIN_STORAGE_ENV)
            if plain:
                bench = StorageServer(self, limits)  # the same routes and limits, no TLS
                await nursery.start(serve_on, split_address(plain), bench.serve)
            self.log(
                "info",
                "node started",
                height=self.core.height,
                final=self.core.final_height,
                p2p=self.config.p2p_listen,
                admin=self.config.admin_listen,
                rpc=self.config.rpc_listen,
                storage=self.config.storage_listen,
            )
            self.carry_out(self.core.start(self.now(), first_proof_in=1.0))
            self._follow_final(self.ledger.final_height)
            self.slots.write_at_once = False
            nursery.start_soon(self.faults.supervise, "slots", self._slot_writer)
            nursery.start_soon(self.faults.supervise, "core", self._core_loop)
            nursery.start_soon(self.faults.supervise, "peers", self._peer_loop)
            nursery.start_soon(self.faults.supervise, "probes", self._probe_loop)
            task_status.started()

    async def _core_loop(self) -> None:
        """Timers first, then the consensus frames waiting, then a slice of transactions: a
        flood of transactions delays them, never a Pulse round."""
        while True:
            now = self.now()
            wake = self.core.next_wake()
            if wake is not None and wake <= now:
                self.carry_out(self.core.on_time(now))
            if self.inbox:
                self.handle_slice()
            elif wake is None or wake > now:
                self.flush_gossip()
                self._arrived = trio.Event()
                with trio.move_on_after(1.0 if wake is None else min(1.0, wake - now)):
                    await self._arrived.wait()
                continue
            self.flush_gossip()  # the hashes owed go out once per turn, many to a Have
            await trio.sleep(0)  # let the host's tasks read and write between two slices

    async def _slot_writer(self) -> None:
        """Write the double-sign slots the core remembered, in a worker thread, then release what
        was held for them (:mod:`appchain.node.slots`)."""
        while True:
            await self._slots_due.wait()
            self._slots_due = trio.Event()
            while self.slots.pending:
                slots = self.slots.take()
                await trio.to_thread.run_sync(self.slots.write, slots)
                self.slots.written(slots)
            held, self._held = self._held, []
            self._carry_out(held)

    async def _peer_loop(self) -> None:
        """Keep peers (:meth:`retarget`); send each new peer a fresh proof of ours (so a node
        that just started learns where its peers serve at once; the first ones are also asked
        for the proofs they hold, to draw gossip peers from); ask for blocks whenever a new peer
        arrives (a node that starts behind catches up at once), and again while our tip looks
        stale (the peers asked may have had nothing to give). A connection is new by its start,
        not its key: a peer that restarted between two turns of the loop is connected again, and
        is new."""
        known: dict[NodeKey, float] = {}
        while True:
            self.retarget()
            connections = {key: peer.connected_at for key, peer in self.host.peers.items()}
            new = [key for key, since in connections.items() if known.get(key) != since]
            for peer in new:
                self.carry_out(self.core.on_peer_connected(peer, self.now()))
            for gone in known.keys() - connections.keys():
                self.spreader.drop_peer(gone)
            if new or self.looks_behind():
                self.carry_out(self.core.request_sync(self.now()))  # at most once a round timeout
            known = connections
            with trio.move_on_after(1.0):  # a new connection is greeted at once
                await self.host.connection_made.wait()

    def known_nodes(self) -> Collection[NodeKey]:
        """Every node this node knows where to reach: fresh uptime proofs, and the seeds (read
        lazily, :class:`~consensus.topology.FreshNodes`)."""
        return self.core.known_nodes(self.now(), also=self.seeds.keys())

    def address_of(self, key: NodeKey) -> tuple[str, int] | None:
        """Where ``key`` listens for peers: its uptime proof's address, else its seed entry."""
        entry = self.core.proofs.accepted.get(key)
        if entry is not None:
            return entry[0].public_ip, entry[0].p2p_port
        return self.seeds.get(key)

    def retarget(self) -> None:
        """Hand the host the nodes to keep connections to now: the gossip peers
        (:class:`~consensus.topology.GossipPeers`, redrawn as proofs and connections change) and
        the other members of the quorums this node sits in (duties change every block and
        round; the members of the last few duties stay a little longer, :data:`DUTY_LINGER`). The
        host closes what it dialled to the others."""
        now = self.now()
        chosen = self.gossip_peers.update(self.known_nodes(), self.host.peers, now)
        duty = self.core.duty_peers()
        if not self._duties or self._duties[-1] != duty:
            self._duties.append(duty)
        self.duty = frozenset().union(*self._duties)
        targets: dict[NodeKey, tuple[str, int]] = {}
        for key in (*chosen, *sorted(self.duty)):
            where = self.address_of(key)
            if where is not None:
                targets[key] = where
        self.host.retarget(targets)

    def gossip_connected(self) -> list[NodeKey]:
        """The peers gossip goes to and sync requests ask: every connection but those this node
        dialled for a duty alone. A peer that dialled us may count on us for gossip whatever we
        think of it (to a new node, every peer may be a quorum member of ours, and it must hear
        blocks from someone), so inbound connections always count."""
        chosen = set(self.gossip_peers.chosen)
        return [key for key, peer in self.host.peers.items() if not peer.dialled or key in chosen]

    # -- obligations probes ----------------------------------------------------------------------------

    def probe(self, worker: NodeKey) -> bool | None:
        """An obligations test of ``worker``: does its p2p port answer with its key? Connected is
        yes; else the answer of a recent probe (a connection and handshake, closed at once: this
        node keeps connections to a few peers, not to every node it tests); None (no vote this
        time) while the first probe runs. A node that never said where it listens (no uptime
        proof, no seed entry) does not answer: False, as an oxend tester finds it."""
        now = time.monotonic()
        if worker in self.host.peers:
            self.probed[worker] = (True, now)
            return True
        if self.address_of(worker) is None:
            return False
        found = self.probed.get(worker)
        fresh = found is not None and now - found[1] < self.core.config.uptime.interval
        if not fresh and len(self._to_probe) < PROBE_QUEUE:
            self._to_probe[worker] = None
            self._probe_due.set()
        return None if found is None else found[0]

    async def _probe_loop(self) -> None:
        limiter = trio.CapacityLimiter(PROBES_AT_ONCE)

        async def run(worker: NodeKey, host: str, port: int) -> None:
            async with limiter:
                self.probed[worker] = (await self.host.probe(worker, host, port), time.monotonic())

        async with trio.open_nursery() as nursery:
            while True:
                await self._probe_due.wait()
                self._probe_due = trio.Event()
                workers, self._to_probe = list(self._to_probe), {}
                for worker in workers:
                    where = self.address_of(worker)
                    if where is not None:
                        nursery.start_soon(run, worker, *where)
                if len(self.probed) > 4 * PROBE_QUEUE:  # forget the oldest answers
                    for key, _ in sorted(self.probed.items(), key=lambda item: item[1][1])[:PROBE_QUEUE]:
                        del self.probed[key]

    # -- frames in -----------------------------------------------------------------------------------

    def _on_frame(self, sender: NodeKey, payload: bytes) -> None:
        """From the host: queue the frame in the inbox (bounded per peer, see :mod:`appchain.node.inbox`).
        Its hash, taken once here, drops gossip we already have before it is decoded."""
        digest = blake3_256(payload)
        self.counters.arrived += 1
        if not self.spreader.is_new(digest):
            self.counters.duplicates += 1
            return
        if self.host.is_banned(sender):
            return
        refused = self.inbox.offer(sender, payload, digest)
        if refused is not None:
            self._dropped(sender, refused)
            return
        self._arrived.set()

    def _dropped(self, sender: NodeKey, reason: str) -> None:
        self.counters.dropped += 1
        if self.counters.dropped % 1000 == 1:
            self.log(
                "warn",
                "inbox full: frames dropped",
                peer=sender.hex()[:12],
                bound=reason,
                dropped=self.counters.dropped,
            )

    def handle_slice(self) -> None:
        """Handle up to :data:`FRAME_SLICE` waiting frames, consensus first, each peer in turn.

        Each frame is a boundary (:mod:`appchain.home.boundary`): an exception nothing expected drops
        that frame, logged and counted; the core verifies before it mutates, so the state and the
        chain are as they were."""
        for _ in range(FRAME_SLICE):
            frame = self.inbox.pop()
            if frame is None:
                return
            sender, payload, digest = frame
            try:
                self._handle_frame(sender, payload, digest)
            except Exception as exc:  # the frame's boundary: it is dropped, the node goes on
                if is_fatal(exc):
                    raise
                self.spreader.forget(digest)  # a copy sent again gets another chance
                self.faults.caught("frame", exc, peer=sender.hex()[:12])

    def _handle_frame(self, sender: NodeKey, payload: bytes, digest: bytes) -> None:
        if self.host.is_banned(sender):  # banned since it queued this: drop the rest unread
            self.counters.dropped += 1 + self.inbox.forget(sender)
            return
        self.counters.frames += 1
        try:
            message = decode_message(payload)
        except DecodeError as exc:
            self.counters.undecodable += 1
            self.host.penalize(sender, f"an undecodable message: {exc}")
            return
        if isinstance(message, ANSWERED_FROM_STORE) and self.host.backlog(sender) > ANSWER_BACKLOG:
            self.counters.dropped += 1  # it has not read our earlier answers: no more work for it
            return
        if isinstance(message, SYNC_REQUESTS):  # a joining node's state sync: from the store
            reply = answer(self.chain, message)
            if reply is not None:
                self.host.send(sender, encode(reply))
            return
        if isinstance(message, SYNC_RESPONSES):
            return  # late answers to our own state sync, which is over
        if isinstance(message, Have):
            want = self.spreader.on_have(message, self.now(), sender)
            if want is not None:
                self.host.send(sender, encode(want))
            return
        if isinstance(message, Want):
            self._on_want(message, sender)
            return
        gossip = isinstance(message, GOSSIP)
        if gossip:
            if not self.spreader.is_new(digest):  # a copy that arrived while the first one waited
                self.counters.duplicates += 1
                return
            self.spreader.remember(digest)
        if isinstance(message, TxBatch):
            self._on_batch(message, payload, sender)
            return
        actions = self.core.on_message(message, sender, self.now())
        if gossip and should_relay(message, actions, self.core.mempool):
            self.spread(message, digest, payload, exclude=sender)
        self.carry_out(actions)

    def _on_want(self, want: Want, sender: NodeKey) -> None:
        """The frames asked for that this node keeps, while the asker reads what it is sent."""
        for body in self.spreader.on_want(want):
            if self.host.backlog(sender) > ANSWER_BACKLOG or not self.host.send(sender, body):
                return

    def _on_batch(self, batch: TxBatch, payload: bytes, sender: NodeKey) -> None:
        """Take a batch into the mempool and pass it on to a few peers: as it came when all of it
        is new and kept here (its copies die at the frame hash), else only what it added to the
        mempool (checked, so no peer is punished for what we pass on), and nothing from a peer
        that sent a forgery, nor what its origin sent to every node. What it added is known by
        hash, as :func:`~consensus.gossip.should_relay` knows a single transaction: the mempool may also drop
        others while it takes the batch (a re-check on a new tip)."""
        mempool = self.core.mempool
        hashes = [compute_event_hash(tx) for tx in batch.txs]
        new = [tx_hash not in mempool for tx_hash in hashes]
        actions = self.core.on_message(batch, sender, self.now())
        entries = zip(batch.txs, hashes, new, strict=True)
        kept = tuple(tx for tx, tx_hash, fresh in entries if fresh and tx_hash in mempool)
        if kept and not batch.everyone and not any(isinstance(a, Penalize) for a in actions):
            digest = blake3_256(payload)
            if len(kept) < len(batch.txs):
                payload = encode(TxBatch(kept, everyone=False))
                digest = blake3_256(payload)
            self.spread(batch, digest, payload, exclude=sender)
        self.carry_out(actions)

    def submit_batch(self, txs: Sequence[Transaction]) -> list[bytes | InvalidEvent | MempoolFull]:
        """Transactions from the admin endpoint: each into our mempool, then those kept to every
        peer in as few frames as :data:`~consensus.messages.TX_BATCH` allows. One result per
        transaction: its hash, or why it was refused."""
        results: list[bytes | InvalidEvent | MempoolFull] = []
        kept: list[Transaction] = []
        state, now = self.ledger.state, self.now()
        for tx in txs:
            try:
                results.append(self.core.mempool.add(tx, state, now))
            except (InvalidEvent, MempoolFull) as exc:
                results.append(exc)
                continue
            kept.append(tx)
        connected = self.host.peers
        everyone = all(key in connected for key in self.known_nodes())  # every node we know of
        for start in range(0, len(kept), TX_BATCH):
            batch = TxBatch(tuple(kept[start : start + TX_BATCH]), everyone)
            payload = encode(batch)
            if everyone:  # nobody passes it on: every peer gets the frame itself
                self.spreader.remember(blake3_256(payload))
                self.host.broadcast(payload)
            else:
                self.spread(batch, blake3_256(payload), payload)
        return results

    def submit(self, tx: Transaction) -> bytes:
        """A transaction from the admin endpoint: into our mempool, then to every peer.

        Returns its hash; raises :class:`~state.errors.InvalidEvent` or
        :class:`~consensus.mempool.MempoolFull` saying why it was refused.
        """
        [result] = self.submit_batch([tx])
        if isinstance(result, Exception):
            raise result
        return result

    # -- actions out ---------------------------------------------------------------------------------

    def spread(self, message: Message, digest: bytes, payload: bytes, exclude: NodeKey | None = None) -> None:
        """Pass gossip on (:class:`~consensus.gossip.Spreader`) over the gossip connections (not
        those held only for a duty): the frame to a few of them now (none for an uptime proof,
        :func:`~consensus.gossip.relay_style`), its hash to the others at the next
        :meth:`flush_gossip`, as the simulator does."""
        push, urgent = relay_style(message)
        peers = self.gossip_connected()
        for peer in self.spreader.spread(digest, payload, peers, exclude, push=push, urgent=urgent):
            self.host.send(peer, payload)

    def flush_gossip(self) -> None:
        """Send the :class:`~consensus.messages.Have` messages owed (once per turn of the core loop)."""
        for peer, have in self.spreader.flush():
            self.host.send(peer, encode(have))

    def carry_out(self, actions: list[Action]) -> None:
        """Do what the core decided; held, in order, while a slot a signature needs is not on
        disk yet (and behind what is held already)."""
        if self.slots.pending or self._held:
            self._held.extend(actions)
            self._slots_due.set()
            return
        self._carry_out(actions)

    def _carry_out(self, actions: list[Action]) -> None:
        if any(isinstance(action, Applied) for action in actions):
            self.retarget()  # a new tip: new duties, dialled before the round's messages go out
        for action in actions:
            if isinstance(action, Send):
                self.host.send(action.to, encode(action.message))
            elif isinstance(action, Gossip):
                payload = encode(action.message)
                self.spread(action.message, blake3_256(payload), payload)
            elif isinstance(action, AskPeers):
                peers = self.gossip_connected() or self.host.connected
                payload = encode(action.message)
                for peer in _sample(peers, action.count):
                    self.host.send(peer, payload)
            elif isinstance(action, Applied):
                header = action.block.header
                self.log(
                    "info",
                    "block applied",
                    height=header.height,
                    round=header.round,
                    events=len(action.block.events),
                    producer=header.producer.hex()[:12],
                )
            elif isinstance(action, Finalized):
                self.log("info", "block final", height=action.height, hash=action.block_hash.hex()[:16])
                self.journal.final(action.height, action.block_hash, self.ledger.root_at(action.height))
                self._follow_final(action.height)
            elif isinstance(action, Penalize):
                points = -self.host.config.ban_score if action.drop else None
                self.host.penalize(action.peer, action.reason, points)
            elif isinstance(action, Equivocation):
                self.record_evidence(action.evidence)

    def record_evidence(self, evidence: Evidence) -> None:
        """Keep what the core caught: in the store (once per signer and slot), the log and /metrics."""
        if not self.chain.store.put_evidence(evidence):
            return
        self.log(
            "warn",
            "equivocation",
            kind=evidence.kind.value,
            height=evidence.height,
            round=evidence.round,
            stage=evidence.stage,
            signer=bytes(evidence.signer).hex(),
        )
        if self.metrics is not None:
            self.metrics.observe_evidence(evidence.kind.value)

    def _follow_final(self, height: int) -> None:
        """Hand the swarm layer the membership at a new final height (the layer follows only
        final blocks, so a reorg of the tail never moves a message)."""
        history, state = self.chain.history, self.ledger.state
        try:
            swarms = get_swarms(Overlay(lambda key: history.value_at(state, key, height)))
        except OutsideWindow:
            return  # just after a restart: the next final height will be in the window
        membership = {bytes(member): swarm.swarm_id for swarm in swarms for member in swarm.members}
        self.messages.on_final(height, self.ledger.block_hash_at(height), membership)

    def _oxend(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        """This node's own JSON-RPC, for a Session client's ``oxend_request``."""
        try:
            result: dict[str, Any] = call_method(self, endpoint, params)
        except RpcError as exc:
            raise ValueError(str(exc)) from None
        return result

    def _is_node(self, node_key: bytes) -> bool:
        return get_node(Overlay(self.ledger.state.get), node_key) is not None

    def contact_of(self, node_key: bytes) -> tuple[str, int, int] | None:
        """Where a node serves its storage endpoints: its uptime proof's address (ours: config)."""
        if node_key == bytes(self.core.node_key):
            config = self.config
            return config.public_ip, config.served_storage_port, config.p2p_address[1]
        entry = self.core.proofs.accepted.get(node_key)
        if entry is None:
            return None
        proof = entry[0]
        return proof.public_ip, proof.storage_port, proof.p2p_port

    # -- status ---------------------------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        """Why the chain moves or not (PROTOCOL.md §4a "Say why"), for ``status``, ``get_info``,
        ``/metrics``, the devnet's table and the network page.

        ``blocks`` says why no block is made (too few active nodes, or the last round of the next
        height this node took part in: its stage, reason and how many of the quorum it heard),
        given when that holds or when the tip is older than a block time and a round timeout;
        ``finality`` says what finality waits for (k of the needed checkpoint votes heard), given
        once the tip is two checkpoints past the final block. Both are None while things move."""
        core = self.core
        progress = core.progress()
        state = self.ledger.state
        stalled = self.tip_age_ms() > state.params.block_time + self.config.round_timeout_ms
        too_few = progress.active_nodes < progress.pulse_min_nodes
        failure = progress.last_failure
        lagging = progress.height - progress.final_height >= 2 * state.params.checkpoint_interval
        return {
            "stalled": stalled,
            "blocks": progress.blocks_reason() if stalled or too_few else None,
            "finality": progress.finality_reason() if lagging else None,
            "active_nodes": progress.active_nodes,
            "pulse_min_nodes": progress.pulse_min_nodes,
            "round": progress.round,
            "last_failed_round": None if failure is None else dataclasses.asdict(failure),
            "checkpoint": None
            if progress.checkpoint is None
            else {
                "height": progress.checkpoint,
                "votes": progress.checkpoint_votes,
                "needed": progress.checkpoint_needed,
            },
        }

    def tip_age_ms(self) -> int:
        """Milliseconds from our tip's timestamp to the node's clock (headers are in ms)."""
        return to_ms(self.now()) - self.ledger.state.timestamp

    def looks_behind(self) -> bool:
        """Our tip is older than four block times and a round timeout: the network has likely
        moved on.

        No floor under the block time: the old ``max(block_time, 1)`` second was a guard for a
        block time of 0, which the genesis check never allowed; in milliseconds it would have
        made a 250 ms chain wait 4 s instead of 1 s before noticing it is behind. The slack that
        keeps a synced node from looking behind is the round timeout term, which does not shrink
        with the block time: it covers a tip that is a failed round late, and clock skew up to it
        (devnet 6 s, the nemesis skews at most 3 s). A false alarm costs little: ``status`` says
        syncing and the node asks three peers for blocks, at most once a round timeout."""
        state = self.ledger.state
        return self.tip_age_ms() > 4 * state.params.block_time + self.config.round_timeout_ms

    def status(self) -> dict[str, Any]:
        state = self.ledger.state
        final = self.ledger.final_height
        behind = self.looks_behind()
        counts = self.host.counts()
        return {
            "running": True,
            "pid": os.getpid(),
            "rpc_url": self.config.rpc_url,
            "node_key": bytes(self.core.node_key).hex(),
            "chain_id": self.chain.genesis.chain_id,
            "genesis_hash": self.chain.genesis.hash.hex(),
            "height": state.height,
            "block_hash": state.block_hash.hex(),
            "state_root": state.root.hex(),
            "final_height": final,
            "final_root": self.ledger.root_at(final).hex(),
            "peers": len(self.host.peers),
            "peers_inbound": counts.inbound,
            "peers_outbound": counts.outbound,
            "duty_peers": len(self.duty),
            "gossip_peers": len(self.gossip_peers.chosen),
            "sync": "syncing" if behind else "synced",
            "round": self.core.round_id[1] if self.core.round is not None else None,
            "progress": self.progress(),
            "stage_seconds": {name: round(seconds, 3) for name, seconds in self.core.stage_times.items()},
            "mempool": len(self.core.mempool),
            "service_node": service_node_summary(state, self.core.node_key),
            "uptime_proofs": self.core.send_proofs,
            "produced": self.core.produced,
            "signed": self.core.signed,
            "p2p_violations": self.host.violations,
            "frames": self.counters.frames,
            "frames_arrived": self.counters.arrived,
            "frames_duplicate": self.counters.duplicates,
            "undecodable": self.counters.undecodable,
            "seconds": round(time.time() - self.started, 1),
            "cpu_seconds": round(time.process_time(), 3),
            "signatures": None if self.signature_clock is None else self.signature_clock.report(),
        }


def service_node_summary(state: State, node_key: NodeKey) -> dict[str, Any] | None:
    """A node's service-node state and decommission credit at the tip; None if not registered."""
    record = get_node(Overlay(state.get), node_key)
    if record is None:
        return None
    return {
        "status": NodeStatus(record.status).name.lower(),
        "credit": compute_credit(record, state.height, state.params),
    }


_random = secrets.SystemRandom()


def _sample(peers: list[NodeKey], count: int) -> list[NodeKey]:
    return _random.sample(peers, min(count, len(peers)))
