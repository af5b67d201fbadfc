"""State sync: how a new node joins at a recent certified snapshot instead of replaying from genesis.

Sans-IO, like the rest of the core: messages and time in (:meth:`StateSync.on_message`,
:meth:`StateSync.on_time`), :class:`~consensus.node.Send` and :class:`~consensus.node.Penalize`
actions out; the trio driver is :mod:`appchain.node.statesync`. It trusts nothing but the genesis:

1. **Offers.** Every peer is asked which snapshot it serves (:class:`SnapshotsRequest`); the
   offers are collected for :attr:`SyncConfig.discovery` seconds (or until every peer answered).
   The target is the highest height offered. When it is less than :attr:`SyncConfig.min_gap`
   blocks above the node's own height, state sync is not worth it: the outcome is ``skipped``
   and the node catches up block by block.
2. **Trust.** A :class:`~consensus.light.LightClient` walks the certified checkpoints from
   genesis up to the target, a batch at a time, from any peer. A link that does not verify
   (a certificate that is not two thirds of the quorum the previous checkpoint committed to)
   drops that peer; when no peer can go further, offers above the height reached are lies, and
   the peers that made them are scored down.
3. **Manifest.** Each offered manifest at the target height is checked against the certified
   header (:func:`state.snapshot.check_manifest`): another height, another block, another root
   or a frontier that does not hash to the root drops the peer that offered it. The peers whose
   manifest checks are the chunk sources.
4. **Fetch.** The headers of the entropy lag below the snapshot (the Pulse quorums of the next
   blocks draw on them) are fetched and linked to the certified header by their hashes. The
   chunks are fetched part by part, each chunk whole from one source, several in flight per
   source; a chunk is checked alone when its last part arrives (:func:`state.snapshot.check_chunk`).
   A chunk that fails drops its source and is fetched from another; a request that times out is
   given to another source (three timeouts and the source is no longer asked).
5. **Done.** The checked subtrees join into the tree, whose root must be the certified root
   (:func:`state.snapshot.assemble_state`): :attr:`StateSync.result` holds the state and what
   made it trusted, for the driver to install. ``failed`` when no source is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.checkpoint import CheckpointCertificate
from consensus.light import LightClient, Untrusted
from consensus.messages import (
    CheckpointsRequest,
    CheckpointsResponse,
    ChunkRequest,
    ChunkResponse,
    HeadersRequest,
    HeadersResponse,
    Message,
    SnapshotOffer,
    SnapshotsRequest,
)
from consensus.node import Action, Penalize, Send
from consensus.quorum import ENTROPY_LAG_FIRST
from state.block import Header, compute_block_hash
from state.checkpoints import checkpoint_quorum_key, decode_checkpoint_quorum
from state.encoding import DecodeError, encode
from state.params import ChainParams
from state.smt import Subtree
from state.snapshot import (
    PART_SIZE,
    InvalidSnapshot,
    SnapshotManifest,
    assemble_state,
    check_chunk,
    check_manifest,
)
from state.state import State
from state.types import NodeKey

Pair = tuple[bytes, bytes]
STRIKES = 3
"""Timeouts after which a peer is no longer asked for anything."""


@dataclass(frozen=True)
class SyncConfig:
    min_gap: int = 500
    """Sync only when the best snapshot is at least this many blocks above our height."""
    discovery: float = 3.0
    """Seconds to collect offers after the first peer is asked (less if all answered)."""
    request_timeout: float = 10.0
    """Seconds before an unanswered request goes to another peer."""
    in_flight: int = 4
    """Chunks fetched at once from one source."""


@dataclass
class SyncResult:
    """A verified snapshot and everything that made it trusted, for the store."""

    manifest: SnapshotManifest
    state: State
    chunks: list[list[Pair]]
    headers: list[Header]
    """Every checkpoint header walked, and the headers of the entropy lag below the snapshot."""
    certificates: list[CheckpointCertificate]
    """The certificates of the checkpoints walked."""
    quorums: dict[int, bytes]
    """The encoded quorum that certified each checkpoint walked."""


@dataclass
class _Fetch:
    """One chunk being fetched from one source."""

    peer: NodeKey
    deadline: float
    parts: int = 0
    received: dict[int, tuple[Pair, ...]] = field(default_factory=dict)


class StateSync:
    def __init__(
        self,
        chain_id: str,
        params: ChainParams,
        genesis_header: Header,
        height: int,
        config: SyncConfig,
    ) -> None:
        self.chain_id = chain_id
        self.params = params
        self.height = height
        self.config = config
        self.light = LightClient(chain_id, genesis_header, params.checkpoint_interval)
        self.phase = "discover"
        """discover → trust → fetch → done; or skipped, or failed."""
        self.reason = ""
        self.peers: list[NodeKey] = []
        self.strikes: dict[NodeKey, int] = {}
        self.offers: dict[NodeKey, SnapshotManifest | None] = {}
        self.discovery_ends: float | None = None
        self.target = 0
        self.walked: dict[int, tuple[CheckpointCertificate, bytes]] = {}
        self.asked: dict[NodeKey, tuple[Message, float]] = {}
        """The one trust or header request outstanding per peer, and its deadline."""
        self.exhausted: set[NodeKey] = set()
        """Peers that answered the walk with nothing more."""
        self.manifest: SnapshotManifest | None = None
        self.sources: list[NodeKey] = []
        self.todo: list[int] = []
        self.fetching: dict[int, _Fetch] = {}
        self.failed_by: dict[int, set[NodeKey]] = {}
        self.subtrees: dict[int, Subtree] = {}
        self.pairs: dict[int, list[Pair]] = {}
        self.lag_headers: list[Header] | None = None
        self.result: SyncResult | None = None

    @property
    def finished(self) -> bool:
        return self.phase in ("done", "skipped", "failed")

    # -- peers --------------------------------------------------------------------------------------

    def add_peer(self, peer: NodeKey, now: float) -> list[Action]:
        if peer in self.peers or self.strikes.get(peer, 0) >= STRIKES:
            return []
        self.peers.append(peer)
        if self.phase != "discover":
            return self._drive(now)
        if self.discovery_ends is None:
            self.discovery_ends = now + self.config.discovery
        return [Send(peer, SnapshotsRequest())]

    def _drop(self, peer: NodeKey, reason: str, now: float) -> list[Action]:
        """``peer`` served something provably wrong: never ask it again, and ban it."""
        self.strikes[peer] = STRIKES
        self._forget(peer)
        self.asked.pop(peer, None)
        for index, fetch in list(self.fetching.items()):
            if fetch.peer == peer:
                del self.fetching[index]
                self.todo.insert(0, index)
        return [Penalize(peer, reason, drop=True)]

    def _strike(self, peer: NodeKey) -> None:
        self.strikes[peer] = self.strikes.get(peer, 0) + 1
        if self.strikes[peer] >= STRIKES:
            self._forget(peer)

    def _forget(self, peer: NodeKey) -> None:
        """Ask ``peer`` for nothing more (its own outstanding requests time out or are dropped)."""
        for where in (self.peers, self.sources):
            if peer in where:
                where.remove(peer)

    # -- time ---------------------------------------------------------------------------------------

    def next_wake(self) -> float | None:
        times = [deadline for _, deadline in self.asked.values()]
        times += [fetch.deadline for fetch in self.fetching.values()]
        if self.phase == "discover" and self.discovery_ends is not None:
            times.append(self.discovery_ends)
        return min(times, default=None)

    def on_time(self, now: float) -> list[Action]:
        if self.finished:
            return []
        for peer, (_, deadline) in list(self.asked.items()):
            if deadline <= now:
                del self.asked[peer]
                self._strike(peer)
        for index, fetch in list(self.fetching.items()):
            if fetch.deadline <= now:
                del self.fetching[index]
                self.todo.insert(0, index)
                self._strike(fetch.peer)
        return self._drive(now)

    # -- messages -----------------------------------------------------------------------------------

    def on_message(self, message: Message, sender: NodeKey, now: float) -> list[Action]:
        if self.finished:
            return []
        if isinstance(message, SnapshotOffer):
            if self.phase == "discover" and sender in self.peers and sender not in self.offers:
                self.offers[sender] = message.manifest
            return self._drive(now)
        if isinstance(message, ChunkResponse):
            return self._on_chunk(message, sender, now)
        request = self.asked.get(sender)
        if request is None:
            return []  # not asked (or too late): ignore
        if isinstance(message, CheckpointsResponse) and isinstance(request[0], CheckpointsRequest):
            del self.asked[sender]
            return self._on_links(message, sender, now)
        if isinstance(message, HeadersResponse) and isinstance(request[0], HeadersRequest):
            del self.asked[sender]
            return self._on_headers(message, request[0], sender, now)
        return []

    def _drive(self, now: float) -> list[Action]:
        if self.phase == "discover":
            waited = self.discovery_ends is not None and now >= self.discovery_ends
            answered = bool(self.peers) and all(peer in self.offers for peer in self.peers)
            if not (waited or answered):
                return []
            if not self.offers:
                if waited and self.peers:  # they were asked and said nothing: ask again
                    self.discovery_ends = now + self.config.discovery
                    return [Send(peer, SnapshotsRequest()) for peer in self.peers]
                return []
            return self._choose_target(now)
        if self.phase == "trust":
            return self._walk(now)
        if self.phase == "fetch":
            return self._fetch(now)
        return []

    # -- 1. choosing the target ---------------------------------------------------------------------

    def _choose_target(self, now: float) -> list[Action]:
        heights = [m.height for m in self.offers.values() if m is not None and m.verifiable]
        best = max(heights, default=0)
        if best < self.height + self.config.min_gap or best <= 0:
            self.phase, self.reason = "skipped", f"the best snapshot offered is at height {best}"
            return []
        self.target = best
        self.phase = "trust"
        return self._walk(now)

    # -- 2. walking the checkpoints -----------------------------------------------------------------

    def _walk(self, now: float) -> list[Action]:
        if self.light.height >= self.target:
            return self._choose_manifest(now)
        if any(isinstance(request, CheckpointsRequest) for request, _ in self.asked.values()):
            return []
        candidates = [p for p in self.peers if p not in self.exhausted and p not in self.asked]
        if not candidates:
            if any(p not in self.exhausted for p in self.peers):
                return []  # the others are busy
            return self._unreachable(now)
        # prefer the peers that offered the target
        candidates.sort(key=lambda p: (self._offered(p) != self.target, self.strikes.get(p, 0)))
        peer = candidates[0]
        request = CheckpointsRequest(self.light.height + self.params.checkpoint_interval)
        self.asked[peer] = (request, now + self.config.request_timeout)
        return [Send(peer, request)]

    def _offered(self, peer: NodeKey) -> int:
        manifest = self.offers.get(peer)
        return -1 if manifest is None else manifest.height

    def _on_links(self, message: CheckpointsResponse, sender: NodeKey, now: float) -> list[Action]:
        if not message.links:
            self.exhausted.add(sender)
            return self._walk(now)
        for link in message.links:
            if self.light.height >= self.target:
                break
            try:
                quorum = decode_checkpoint_quorum(link.quorum)
                keys = [member.bls_key for member in quorum.members]
                self.light.accept_checkpoint(link.header, link.certificate, keys)
            except (DecodeError, Untrusted) as exc:
                return self._drop(
                    sender, f"served a checkpoint that does not verify: {exc}", now
                ) + self._walk(now)
            self.walked[link.header.height] = (link.certificate, link.quorum)
        self.exhausted.clear()  # we moved on: everyone may have the next ones
        return self._walk(now)

    def _unreachable(self, now: float) -> list[Action]:
        """No peer can walk past ``light.height``: offers above it were not certified."""
        actions: list[Action] = []
        reached = self.light.height
        for peer, manifest in list(self.offers.items()):
            if manifest is not None and manifest.height > reached:
                self.offers[peer] = None
                if peer in self.peers:
                    self._strike(peer)
                actions.append(
                    Penalize(peer, f"offered a snapshot at {manifest.height}, above any certified checkpoint")
                )
        self.exhausted.clear()
        return actions + self._choose_target(now)

    # -- 3. the manifest ----------------------------------------------------------------------------

    def _choose_manifest(self, now: float) -> list[Action]:
        header = self.light.headers[self.target]
        block_hash = compute_block_hash(header)
        actions: list[Action] = []
        good: dict[bytes, list[NodeKey]] = {}
        manifests: dict[bytes, SnapshotManifest] = {}
        for peer, manifest in self.offers.items():
            if manifest is None or manifest.height != self.target or peer not in self.peers:
                continue
            try:
                check_manifest(
                    manifest, height=header.height, block_hash=block_hash, state_root=header.state_root
                )
            except InvalidSnapshot as exc:
                actions += self._drop(peer, f"offered a snapshot that does not verify: {exc}", now)
                continue
            encoded = encode(manifest)
            good.setdefault(encoded, []).append(peer)
            manifests[encoded] = manifest
        if not good:
            for peer, manifest in self.offers.items():
                if manifest is not None and manifest.height == self.target:
                    self.offers[peer] = None
            return actions + self._choose_target(now)
        best = max(good, key=lambda encoded: len(good[encoded]))
        self.manifest = manifests[best]
        self.sources = good[best]
        self.todo = [i for i in range(self.manifest.chunks) if not self.manifest.chunk_is_empty(i)]
        for index in range(self.manifest.chunks):
            if self.manifest.chunk_is_empty(index):
                self.subtrees[index] = None
                self.pairs[index] = []
        self.phase = "fetch"
        return actions + self._fetch(now)

    # -- 4. headers and chunks ----------------------------------------------------------------------

    def _lag_range(self) -> tuple[int, int]:
        return max(0, self.target - ENTROPY_LAG_FIRST), self.target - 1

    def _fetch(self, now: float) -> list[Action]:
        actions = self._ask_headers(now) + self._ask_chunks(now) + self._maybe_done()
        if self.finished:
            return actions
        chunks_left = bool(self.todo or self.fetching)
        headers_left = self.lag_headers is None and not any(
            isinstance(request, HeadersRequest) for request, _ in self.asked.values()
        )
        if (chunks_left and not self.sources) or (headers_left and not self.peers):
            self.phase, self.reason = "failed", "no peer is left to serve the snapshot"
        return actions

    def _ask_headers(self, now: float) -> list[Action]:
        if self.lag_headers is not None or any(isinstance(r, HeadersRequest) for r, _ in self.asked.values()):
            return []
        idle = [p for p in self.peers if p not in self.asked]
        if not idle:
            return []
        peer = min(idle, key=lambda p: (p not in self.sources, self.strikes.get(p, 0)))
        request = HeadersRequest(max(0, self.target - ENTROPY_LAG_FIRST), self.target - 1)
        self.asked[peer] = (request, now + self.config.request_timeout)
        return [Send(peer, request)]

    def _ask_chunks(self, now: float) -> list[Action]:
        actions: list[Action] = []
        load = dict.fromkeys(self.sources, 0)
        for fetch in self.fetching.values():
            if fetch.peer in load:
                load[fetch.peer] += 1
        waiting = []
        for index in self.todo:
            tried = self.failed_by.get(index, set())
            choices = [p for p in self.sources if load[p] < self.config.in_flight and p not in tried]
            if not choices:
                choices = [p for p in self.sources if load[p] < self.config.in_flight]
            if not choices:
                waiting.append(index)
                continue
            peer = min(choices, key=lambda p: load[p])
            load[peer] += 1
            self.fetching[index] = _Fetch(peer, now + self.config.request_timeout)
            actions.append(Send(peer, ChunkRequest(self.target, index, 0)))
        self.todo = waiting
        return actions

    def _on_headers(
        self, message: HeadersResponse, request: HeadersRequest, sender: NodeKey, now: float
    ) -> list[Action]:
        headers = list(message.headers)
        if not headers:
            self._strike(sender)  # it does not hold them: ask another
            return self._fetch(now)
        expected = list(range(request.from_height, request.to_height + 1))
        if [h.height for h in headers] != expected:
            return self._drop(sender, "served headers of heights not asked for", now) + self._fetch(now)
        try:
            self.light.accept_linked(headers)
        except Untrusted as exc:
            return self._drop(sender, f"served headers that do not link: {exc}", now) + self._fetch(now)
        self.lag_headers = headers
        return self._fetch(now)

    def _on_chunk(self, message: ChunkResponse, sender: NodeKey, now: float) -> list[Action]:
        fetch = self.fetching.get(message.index)
        if fetch is None or fetch.peer != sender or message.height != self.target:
            return []  # not asked of it (or too late)
        if message.parts == 0:  # it no longer holds this snapshot
            del self.fetching[message.index]
            self.todo.insert(0, message.index)
            if sender in self.sources:
                self.sources.remove(sender)
            return self._fetch(now)
        assert self.manifest is not None
        if len(message.pairs) > PART_SIZE or message.parts > self.manifest.entries // PART_SIZE + 1:
            return self._refuse_chunk(message.index, sender, "a part larger than a snapshot can hold", now)
        if fetch.parts == 0:  # the first part says how many there are: ask for the rest
            if message.part != 0:
                return []
            fetch.parts = message.parts
            fetch.received[0] = message.pairs
            fetch.deadline = now + self.config.request_timeout
            actions: list[Action] = [
                Send(sender, ChunkRequest(self.target, message.index, part))
                for part in range(1, message.parts)
            ]
            return actions + self._chunk_complete(message.index, fetch, now)
        if message.parts != fetch.parts or not 0 <= message.part < fetch.parts:
            return self._refuse_chunk(message.index, sender, "a chunk whose parts do not agree", now)
        fetch.received[message.part] = message.pairs
        fetch.deadline = now + self.config.request_timeout
        return self._chunk_complete(message.index, fetch, now)

    def _chunk_complete(self, index: int, fetch: _Fetch, now: float) -> list[Action]:
        if len(fetch.received) < fetch.parts:
            return []
        pairs = [pair for part in range(fetch.parts) for pair in fetch.received[part]]
        assert self.manifest is not None
        try:
            self.subtrees[index] = check_chunk(self.manifest, index, pairs)
        except InvalidSnapshot as exc:
            return self._refuse_chunk(index, fetch.peer, str(exc), now)
        del self.fetching[index]
        self.pairs[index] = pairs
        return self._fetch(now)

    def _refuse_chunk(self, index: int, peer: NodeKey, reason: str, now: float) -> list[Action]:
        self.failed_by.setdefault(index, set()).add(peer)
        return self._drop(peer, f"served a snapshot chunk that does not verify: {reason}", now) + self._fetch(
            now
        )

    # -- 5. done ------------------------------------------------------------------------------------

    def _maybe_done(self) -> list[Action]:
        manifest = self.manifest
        if manifest is None or self.lag_headers is None or len(self.subtrees) < manifest.chunks:
            return []
        subtrees = [self.subtrees[i] for i in range(manifest.chunks)]
        chunks = [self.pairs[i] for i in range(manifest.chunks)]
        state = assemble_state(
            self.chain_id, self.params, manifest, subtrees, (pair for chunk in chunks for pair in chunk)
        )
        heights = sorted(self.walked)
        headers = [self.light.headers[h] for h in heights] + self.lag_headers
        quorums = {h: self.walked[h][1] for h in heights}
        # the quorum of the next checkpoint is in the snapshot (block ``target`` chose it); kept
        # beside the others so this node can serve the walk past its base, as its delta would
        following = self.target + self.params.checkpoint_interval
        next_quorum = state.get(checkpoint_quorum_key(following))
        if next_quorum is not None:
            quorums[following] = next_quorum
        self.result = SyncResult(
            manifest=manifest,
            state=state,
            chunks=chunks,
            headers=headers,
            certificates=[self.walked[h][0] for h in heights],
            quorums=quorums,
        )
        self.phase = "done"
        return []
