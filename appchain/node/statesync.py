"""State sync in the process node: serving snapshots to joining peers, and joining by one.

Serving (:func:`answer`): a running node answers the state-sync requests of
:mod:`consensus.messages` from its store: its newest snapshot at a certified checkpoint, the
certified checkpoints from a height up (header, certificate and the quorum that signed it), a
range of headers, and snapshot chunk parts. What it does not hold it answers with nothing (an
empty list, or a part count of 0), so the asker turns to another peer at once.

Joining (:func:`sync_state`): before ``appchain start`` builds the node, a home that holds
only block 0 runs the :class:`~consensus.statesync.StateSync` machine over its own p2p host
(same key, same port) against its configured peers. A verified snapshot is installed in the
store (:meth:`appchain.home.chain.Chain.install_synced`) and the node then starts from it and fetches
the later blocks as any node catching up does. When no peer offers a snapshot far enough ahead
(``[sync] state_sync_min_gap``), or state sync fails :data:`ATTEMPTS` times, the node starts
from block 0 and syncs block by block; ``[sync] state_sync = false`` always does, and
``appchain replay`` rebuilds a home's state from its own log.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from appchain.home.chain import Chain
from consensus.messages import (
    HEADER_BATCH,
    LINK_BATCH,
    SYNC_REQUESTS,
    SYNC_RESPONSES,
    CheckpointLink,
    CheckpointsRequest,
    CheckpointsResponse,
    ChunkRequest,
    ChunkResponse,
    HeadersRequest,
    HeadersResponse,
    Message,
    SnapshotOffer,
    SnapshotsRequest,
    decode_message,
)
from consensus.node import Action, Penalize, Send
from consensus.statesync import StateSync, SyncConfig
from p2p.host import Host, HostConfig
from state.block import Header
from state.checkpoints import is_checkpoint_height
from state.crypto import ed25519
from state.encoding import DecodeError, encode
from state.snapshot import SnapshotManifest
from state.types import NodeKey

ATTEMPTS = 3
"""State sync attempts (each from fresh offers) before the node falls back to block sync."""
NO_PEER_SECONDS = 20.0
"""Without any peer connected this long, the node starts without state sync."""

Log = Callable[..., None]
"""The node's structured logger: ``log(level, event, **fields)``."""


# -- serving --------------------------------------------------------------------------------------


def answer(chain: Chain, message: Message) -> Message | None:
    """The answer to a state-sync request, from the store; None for anything else."""
    if isinstance(message, SnapshotsRequest):
        return SnapshotOffer(offered_snapshot(chain))
    if isinstance(message, CheckpointsRequest):
        return CheckpointsResponse(tuple(_links(chain, message.from_height)))
    if isinstance(message, HeadersRequest):
        return HeadersResponse(_headers(chain, message.from_height, message.to_height))
    if isinstance(message, ChunkRequest):
        found = chain.store.get_snapshot_part(message.height, message.index, message.part)
        if found is None or message.height > chain.final_height:
            return ChunkResponse(message.height, message.index, message.part, 0, ())
        parts, pairs = found
        return ChunkResponse(message.height, message.index, message.part, parts, tuple(pairs))
    return None


def offered_snapshot(chain: Chain) -> SnapshotManifest | None:
    """The newest snapshot cut by path, at a final checkpoint height whose certificate we hold."""
    store = chain.store
    interval = chain.genesis.params.checkpoint_interval
    for height in reversed(store.list_snapshots()):
        if height == 0 or height > chain.final_height or not is_checkpoint_height(height, interval):
            continue
        manifest = store.get_manifest(height)
        if manifest is not None and manifest.verifiable and store.get_certificate(height) is not None:
            return manifest
    return None


def _links(chain: Chain, start: int) -> list[CheckpointLink]:
    links: list[CheckpointLink] = []
    interval = chain.genesis.params.checkpoint_interval
    if start <= 0 or not is_checkpoint_height(start, interval):
        return links
    store = chain.store
    for height in range(start, chain.final_height + 1, interval):
        header, certificate = store.get_header(height), store.get_certificate(height)
        quorum = store.get_checkpoint_quorum(height, interval)
        if header is None or certificate is None or quorum is None or len(links) == LINK_BATCH:
            break
        links.append(CheckpointLink(header, certificate, quorum))
    return links


def _headers(chain: Chain, start: int, stop: int) -> tuple[Header, ...]:
    if not 0 <= start <= stop <= chain.height or stop - start >= HEADER_BATCH:
        return ()
    headers = []
    for height in range(start, stop + 1):
        header = chain.store.get_header(height)
        if header is None:
            return ()
        headers.append(header)
    return tuple(headers)


# -- joining --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinReport:
    outcome: str
    """``synced``, ``skipped`` or ``failed``."""
    reason: str
    height: int
    seconds: float
    banned: dict[bytes, float]
    """The peers banned for lying (node key → until, on the host's clock)."""


async def sync_state(
    chain: Chain,
    host_config: HostConfig,
    key: ed25519.SigningKey,
    peers: list[tuple[bytes, str, int]],
    config: SyncConfig,
    log: Log,
) -> JoinReport:
    """Join at a verified snapshot if one is far enough ahead; see the module docstring."""
    started = time.time()
    reason = "no peer is configured"
    banned: dict[bytes, float] = {}

    def report(status: str, why: str) -> JoinReport:
        return JoinReport(status, why, chain.height, time.time() - started, banned)

    for attempt in range(1, ATTEMPTS + 1):
        if not peers:
            break
        joiner = _Joiner(chain, host_config, key, peers, config, log)
        joiner.host.banned_keys.update(banned)
        machine = await joiner.run()
        banned = joiner.host.banned_keys
        if machine.result is not None:
            chain.install_synced(machine.result)
            return report("synced", "")
        reason = machine.reason
        if machine.phase == "skipped":
            return report("skipped", reason)
        log("warn", "state sync failed", attempt=attempt, reason=reason)
    return report("failed", reason)


def _log(log: Log, level: str, event: str, **fields: object) -> None:
    if callable(log):
        log(level, event, **fields)


class _Joiner:
    """One state-sync attempt: a p2p host and the machine, until the machine finishes."""

    def __init__(
        self,
        chain: Chain,
        host_config: HostConfig,
        key: ed25519.SigningKey,
        peers: list[tuple[bytes, str, int]],
        config: SyncConfig,
        log: Log,
    ) -> None:
        self.chain = chain
        self.log = log
        genesis_header = chain.store.get_header(0)
        assert genesis_header is not None, "a home always holds block 0's header"
        self.machine = StateSync(
            chain.genesis.chain_id, chain.genesis.params, genesis_header, chain.height, config
        )
        self.host = Host(host_config, key, self._on_frame, log=log)
        self.peers = peers
        self.inbox: deque[tuple[NodeKey, bytes]] = deque()
        self.arrived = trio.Event()

    def _on_frame(self, sender: NodeKey, payload: bytes) -> None:
        if len(self.inbox) < 10_000:
            self.inbox.append((sender, payload))
            self.arrived.set()

    async def run(self) -> StateSync:
        machine = self.machine
        async with trio.open_nursery() as nursery:
            await nursery.start(self.host.run)
            for node_key, host, port in self.peers:
                self.host.add_target(NodeKey(node_key), host, port)
            started = last_report = time.time()
            while not machine.finished:
                now = time.time()
                actions: list[Action] = []
                for peer in self.host.connected:
                    actions += machine.add_peer(peer, now)
                if not machine.peers and now - started > NO_PEER_SECONDS:
                    machine.phase, machine.reason = "skipped", "no peer answered"
                    break
                while self.inbox:
                    actions += self._handle(*self.inbox.popleft(), now)
                wake = machine.next_wake()
                if wake is not None and wake <= now:
                    actions += machine.on_time(now)
                self._carry_out(actions)
                if now - last_report >= 2.0:
                    last_report = now
                    self._report()
                self.arrived = trio.Event()
                with trio.move_on_after(0.2):
                    await self.arrived.wait()
            nursery.cancel_scope.cancel()
        return machine

    def _handle(self, sender: NodeKey, payload: bytes, now: float) -> list[Action]:
        try:
            message = decode_message(payload)
        except DecodeError as exc:
            self.host.penalize(sender, f"an undecodable message: {exc}")
            return []
        if isinstance(message, SYNC_RESPONSES):
            return self.machine.on_message(message, sender, now)
        if isinstance(message, SYNC_REQUESTS):
            reply = answer(self.chain, message)
            return [] if reply is None else [Send(sender, reply)]
        return []  # gossip for a running node: not yet ours

    def _carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.host.send(action.to, encode(action.message))
            elif isinstance(action, Penalize):
                points = -self.host.config.ban_score if action.drop else None
                self.log("warn", "state sync peer refused", peer=action.peer.hex()[:12], reason=action.reason)
                self.host.penalize(action.peer, action.reason, points)

    def _report(self) -> None:
        machine = self.machine
        fields: dict[str, object] = {"phase": machine.phase, "peers": len(machine.peers)}
        if machine.target:
            fields["target"] = machine.target
            fields["trusted"] = machine.light.height
        if machine.manifest is not None:
            fields["chunks"] = f"{len(machine.subtrees)}/{machine.manifest.chunks}"
        self.log("info", "state sync", **fields)
