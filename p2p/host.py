"""The p2p host: listening, dialling, and one secure channel per peer, bounded and policed.

A :class:`Host` keeps connections to a set of *targets* (node key and address) that the application
chooses and replaces as it goes (:meth:`Host.retarget`: a node's few gossip peers and the members
of the quorums it is on duty in, :mod:`consensus.topology`), redialling with exponential backoff (a dial that
times out or is cut, as dials are across a partition, to a stopped process or through a reset,
only backs off: it is no violation, or a partition would get honest nodes banned; a connection
the other side hangs up at once backs off too, instead of redialling in a tight loop), and accepts
connections from anyone who completes the handshake (:mod:`p2p.secure`). It moves bytes only:
the application hands it payloads (:meth:`Host.send`, :meth:`Host.broadcast`) and receives each
peer's payloads through ``on_frame``; what they mean is not the host's business. A connection
this host dialled to a key no longer targeted is closed; one the other side dialled is left to
it (its initiator closes it when it no longer needs it). A payload sent to a target not connected
yet (a duty connection being opened: Pulse's first stage must not be lost) waits in a small
bounded buffer (``pending_frames``, ``pending_bytes``) and goes out when the connection is made,
or is dropped after ``pending_seconds``.

Per peer:

- a bounded send queue (``queue_bytes``): a frame that does not fit is refused (``send`` returns
  False) rather than buffered without end; a writer task drains the queue and coalesces
  everything waiting into one write;
- a frame budget (a token bucket of ``frames_per_second``): a peer that floods is dropped;
- an idle timeout: a writer with nothing to say sends a ping every third of it; a peer silent
  for the whole of it is dropped;
- a score: every protocol violation (a record that does not decrypt, an oversized or unknown
  frame, a failed handshake) and every application complaint (:meth:`Host.penalize`) costs
  points; at ``ban_score`` the peer's key and address are refused for ``ban_seconds``
  (loopback addresses are never banned by address: a devnet runs every node on 127.0.0.1).

Per remote address (:mod:`p2p.limits`: an IPv4 address or an IPv6 /64), before any byte is read:
at most ``max_inbound_per_ip`` inbound connections, in handshake or established, and new ones at
``inbound_per_second_per_ip`` (bursts of ``inbound_burst_per_ip``); and, over every address, at
most ``max_handshakes`` inbound handshakes at once (each costs a Diffie-Hellman and a signature
check) and ``max_peers`` inbound peers that are not targets (a target calling in is a
connection this node wants anyway, and dialled peers are not counted: they are bounded by the
targets). So one host's junk connections hold a few handshake and
peer slots, never all of them. A connection refused is closed at once and counted in
:attr:`Host.refused` by reason. Loopback addresses are exempt from the per-address limits unless
``limit_loopback`` (a devnet runs every node on 127.0.0.1). Outbound dials are not limited: this
node chose them.

One connection per node: when two end up open to the same node (both dialled at once), both
sides keep the one whose initiator has the lower node key, so they agree without talking.
Nothing a peer sends can stop the host: every error on a connection ends that connection. Each
connection, inbound or dialled, is a boundary: an exception nothing expected (a bug here or in
the application's ``on_frame``) is logged at ``error`` with its traceback, counted in
:attr:`Host.errors`, and closes that connection only; the errors the application calls fatal
(``fatal``: its store is corrupt) still stop it.
"""

from __future__ import annotations

import random
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from p2p.limits import AddressCounts, AddressRates, address_key, is_limited, remote_address
from p2p.secure import (
    DEFAULT_MAX_FRAME,
    HandshakeCut,
    HandshakeFailed,
    PeerClosed,
    ProtocolViolation,
    SecureChannel,
    handshake,
)
from state.crypto import ed25519
from state.types import NodeKey

PING = b"\x00"
DATA = b"\x01"

Log = Callable[..., None]
"""``log(level, event, **fields)``: the application's structured logger."""


def _no_log(level: str, event: str, **fields: Any) -> None:
    pass


def _never(exc: BaseException) -> bool:
    return False


class ListenFailed(OSError):
    """A listening socket could not be opened (its port in use, an address not on this machine,
    a port below 1024 without the right): the OS error, with the address asked for, so the
    application can name the setting that chose it."""

    def __init__(self, host: str, port: int, reason: OSError) -> None:
        super().__init__(reason.errno, reason.strerror or str(reason))
        self.host = host
        self.port = port


async def open_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """:func:`trio.open_tcp_listeners` on ``host:port``; :class:`ListenFailed` when it cannot."""
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise ListenFailed(host, port, exc) from None


@dataclass(frozen=True)
class HostConfig:
    chain_id: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    """0: any free port (see :attr:`Host.port` once running)."""
    version: str = ""
    max_peers: int = 64
    max_frame: int = DEFAULT_MAX_FRAME
    queue_bytes: int = 32 * 1024 * 1024
    handshake_timeout: float = 5.0
    idle_timeout: float = 30.0
    write_timeout: float = 20.0
    dial_backoff: tuple[float, float] = (0.25, 10.0)
    frames_per_second: float = 5_000.0
    frame_burst: float = 20_000.0
    violation_points: float = 25.0
    ban_score: float = -100.0
    ban_seconds: float = 60.0
    max_inbound_per_ip: int = 8
    """Inbound connections one address may hold, in handshake or established."""
    inbound_per_second_per_ip: float = 1.0
    inbound_burst_per_ip: float = 8.0
    """New inbound connections one address may open: a token bucket of this rate and burst."""
    max_handshakes: int = 32
    """Inbound handshakes in progress at once, over every address."""
    limit_loopback: bool = False
    """Apply the per-address limits to loopback addresses too (tests; a local proxy)."""
    pending_frames: int = 64
    pending_bytes: int = 1024 * 1024
    """Payloads sent to a target not connected yet, kept for it: at most this many, and bytes."""
    pending_seconds: float = 5.0
    """Seconds such a payload waits for the connection before it is dropped."""
    yield_dial: float = 0.5
    """Seconds a new target of a lower key is left to dial this host before it is dialled."""


@dataclass
class _Target:
    host: str
    port: int
    backoff: float = 0.0
    next_try: float = 0.0
    dialling: bool = False
    pending: deque[tuple[float, bytes]] = field(default_factory=deque)
    """Frames sent before the connection was made, with when they were sent."""
    pending_bytes: int = 0


@dataclass
class Peer:
    key: NodeKey
    channel: SecureChannel
    address: str
    connected_at: float
    outbox: deque[bytes] = field(default_factory=deque)
    queued: int = 0
    tokens: float = 0.0
    refilled: float = 0.0
    wake: trio.Event = field(default_factory=trio.Event)
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    closing: str = "replaced by a newer connection"
    """Why the connection ends when this host cancels it."""

    @property
    def dialled(self) -> bool:
        """Whether this host opened the connection (an outbound peer)."""
        return self.channel.initiator


@dataclass(frozen=True)
class PeerCounts:
    """What a host holds: connections the other side opened, ones it opened, and payloads waiting
    for a target to connect."""

    inbound: int
    outbound: int
    pending: int


class Host:
    def __init__(
        self,
        config: HostConfig,
        identity: ed25519.SigningKey,
        on_frame: Callable[[NodeKey, bytes], None],
        *,
        log: Log = _no_log,
        clock: Callable[[], float] = time.monotonic,
        fatal: Callable[[BaseException], bool] = _never,
    ) -> None:
        self.config = config
        self.fatal = fatal
        """Which exceptions no boundary may catch (the application's: a corrupt store)."""
        self.errors = 0
        """Unexpected exceptions caught at a connection's boundary."""
        self.identity = identity
        self.node_key = NodeKey(identity.public_key)
        self.on_frame = on_frame
        self.log = log
        self.clock = clock
        self.port = config.listen_port
        self.peers: dict[NodeKey, Peer] = {}
        self.connection_made = trio.Event()
        """Set (and replaced) each time a peer connects: the application waits on it to greet new
        peers at once rather than on its next poll."""
        self.targets: dict[NodeKey, _Target] = {}
        self.scores: dict[bytes, float] = {}
        self.banned_keys: dict[bytes, float] = {}
        self.banned_hosts: dict[str, float] = {}
        self.violations = 0
        self.inbound = AddressCounts(config.max_inbound_per_ip)
        self.inbound_rates = AddressRates(config.inbound_per_second_per_ip, config.inbound_burst_per_ip)
        self.handshakes = 0
        self.refused: dict[str, int] = {}
        """Inbound connections closed unserved, by reason."""
        self._nursery: trio.Nursery | None = None
        self._rng = random.Random()

    # -- the application's side ---------------------------------------------------------------------

    @property
    def connected(self) -> list[NodeKey]:
        return list(self.peers)

    def counts(self) -> PeerCounts:
        peers = self.peers.values()
        outbound = sum(1 for peer in peers if peer.dialled)
        pending = sum(len(target.pending) for target in self.targets.values())
        return PeerCounts(len(self.peers) - outbound, outbound, pending)

    def add_target(self, key: NodeKey, host: str, port: int) -> None:
        """Keep a connection to ``key`` at ``host:port`` (redialled with backoff when it drops)."""
        if key == self.node_key:
            return
        current = self.targets.get(key)
        if current is None or (current.host, current.port) != (host, port):
            self.targets[key] = self._moved(current, host, port, key)

    def retarget(self, targets: Mapping[NodeKey, tuple[str, int]]) -> None:
        """Keep connections to exactly ``targets`` (node key → host and port) from now on: the new
        ones are dialled, and a connection this host dialled to a key no longer among them is
        closed (one the other side dialled is left to it). A target that stays keeps its backoff
        and the payloads waiting for it."""
        old = self.targets
        new: dict[NodeKey, _Target] = {}
        for key, (host, port) in targets.items():
            if key == self.node_key:
                continue
            current = old.get(key)
            keep = current is not None and (current.host, current.port) == (host, port)
            new[key] = current if keep and current is not None else self._moved(current, host, port, key)
        self.targets = new
        dropped = [key for key in old if key not in new]
        for key in dropped:
            peer = self.peers.get(key)
            if peer is not None and peer.dialled:
                self._close(peer, "no longer a target")
        # an inbound connection of a dropped target (both sides dialled for a duty) now counts
        # against max_peers: past it, the newest such are closed (their duty is over here too)
        excess = self._untargeted_inbound() - self.config.max_peers
        if excess > 0:
            former = [self.peers[key] for key in dropped if key in self.peers and not self.peers[key].dialled]
            for peer in sorted(former, key=lambda p: p.connected_at, reverse=True)[:excess]:
                self._close(peer, "over max_peers once no longer a target")

    def _moved(self, current: _Target | None, host: str, port: int, key: NodeKey) -> _Target:
        """A new target, or one at a new address (what waited for the old one goes to the new
        one). A new target whose key is below ours is first left ``yield_dial`` seconds to dial
        us: when both sides want the connection (two members of a quorum), both keep the one
        the lower key dialled, and a frame written into the other one could be lost."""
        target = _Target(host, port)
        if current is not None:
            target.pending, target.pending_bytes = current.pending, current.pending_bytes
        elif bytes(key) < bytes(self.node_key):
            target.next_try = self.clock() + self.config.yield_dial
        return target

    def send(self, key: NodeKey, payload: bytes) -> bool:
        """Queue ``payload`` for ``key``: at once when connected, else in its small buffer when it
        is a target (sent when the connection is made, dropped after ``pending_seconds``); False
        when neither, or the queue or buffer is full."""
        peer = self.peers.get(key)
        if peer is not None:
            return self._enqueue(peer, DATA + payload)
        target = self.targets.get(key)
        return target is not None and self._hold(target, DATA + payload)

    async def probe(self, key: NodeKey, host: str, port: int) -> bool:
        """Whether ``key`` answers at ``host:port``: connected, or a connection and a handshake
        that proves its key, closed at once (an obligations test of a node this host keeps no
        connection to). Never raises for what the network or the other side does."""
        if key in self.peers:
            return True
        try:
            with trio.move_on_after(self.config.handshake_timeout) as scope:
                stream = await trio.open_tcp_stream(host, port)
                try:
                    await self._handshake(stream, initiator=True, expected=key)
                finally:
                    await trio.aclose_forcefully(stream)
        except (OSError, HandshakeFailed, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return not scope.cancelled_caught

    def broadcast(self, payload: bytes, exclude: NodeKey | None = None) -> int:
        """Queue ``payload`` for every connected peer but ``exclude``; returns how many took it."""
        frame = DATA + payload
        return sum(
            1 for key, peer in list(self.peers.items()) if key != exclude and self._enqueue(peer, frame)
        )

    def penalize(self, key: NodeKey, reason: str, points: float | None = None) -> None:
        """The application found ``key``'s frame invalid (undecodable, an invalid block…);
        ``points`` of ``-ban_score`` or more ban it at once."""
        self._score(bytes(key), points if points is not None else self.config.violation_points, reason)

    def backlog(self, key: NodeKey) -> int:
        """Bytes queued for ``key`` and not yet written (0 when not connected)."""
        peer = self.peers.get(key)
        return 0 if peer is None else peer.queued

    def is_banned(self, key: bytes) -> bool:
        return self.banned_keys.get(bytes(key), 0.0) > self.clock()

    # -- running ----------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await open_listeners(self.config.listen_host, self.config.listen_port)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.port = listeners[0].socket.getsockname()[1]
                nursery.start_soon(trio.serve_listeners, self._on_inbound, listeners)
                nursery.start_soon(self._dial_loop)
                self.log("info", "p2p listening", address=f"{self.config.listen_host}:{self.port}")
                task_status.started(self.port)
        finally:  # free the port at once (state sync's host hands it to the node's)
            for listener in listeners:
                await trio.aclose_forcefully(listener)

    async def _dial_loop(self) -> None:
        assert self._nursery is not None
        while True:
            now = self.clock()
            for key, target in list(self.targets.items()):
                if target.pending:
                    self._expire(target, now)
                if key in self.peers or target.dialling or target.next_try > now or self.is_banned(key):
                    continue
                target.dialling = True
                self._nursery.start_soon(self._dial, key, target)
            await trio.sleep(0.1)

    async def _dial(self, key: NodeKey, target: _Target) -> None:
        try:
            await self._dial_and_serve(key, target)
        except Exception as exc:
            self._unexpected(exc, peer=key.hex()[:16])
            self._back_off(target)

    async def _dial_and_serve(self, key: NodeKey, target: _Target) -> None:
        high = self.config.dial_backoff[1]
        try:
            with trio.move_on_after(self.config.handshake_timeout) as scope:
                stream = await trio.open_tcp_stream(target.host, target.port)
                try:
                    channel = await self._handshake(stream, initiator=True, expected=key)
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
            if scope.cancelled_caught:  # the network's doing as often as the peer's: never scored
                raise TimeoutError("the connection or the handshake timed out")
        except (OSError, HandshakeFailed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._back_off(target)
            if isinstance(exc, HandshakeFailed) and not isinstance(exc, HandshakeCut):
                self._score(bytes(key), self.config.violation_points, str(exc))
            self.log("debug", "dial failed", peer=key.hex()[:16], reason=str(exc) or type(exc).__name__)
            return
        finally:
            target.dialling = False
        connected = self.clock()
        await self._serve(channel, f"{target.host}:{target.port}")
        if self.clock() - connected >= high:
            target.backoff = 0.0  # it held: redial at once
        else:  # hung up at once (it banned us, or kept another connection): not in a tight loop
            self._back_off(target)

    def _back_off(self, target: _Target) -> None:
        low, high = self.config.dial_backoff
        target.backoff = min(high, max(low, target.backoff * 2))
        target.next_try = self.clock() + target.backoff * (0.5 + self._rng.random())

    async def _on_inbound(self, stream: trio.SocketStream) -> None:
        try:
            await self._accept(stream)
        except Exception as exc:
            self._unexpected(exc)
            await trio.aclose_forcefully(stream)

    def _unexpected(self, exc: Exception, **fields: Any) -> None:
        """The boundary of a connection: count and log what nothing expected (the connection
        ends); re-raise what the application calls fatal."""
        if self.fatal(exc):
            raise exc
        self.errors += 1
        text = "".join(traceback.format_exception(exc)).rstrip()
        error = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        self.log("error", "unexpected error", place="p2p", error=error, traceback=text, **fields)

    async def _accept(self, stream: trio.SocketStream) -> None:
        try:
            ip, port = remote_address(stream)
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        key = address_key(ip)
        limited = is_limited(ip, self.config.limit_loopback)
        refusal = self._refusal(key, limited)
        if refusal is not None:
            self._refuse(refusal, ip)
            await trio.aclose_forcefully(stream)
            return
        if limited:
            self.inbound.acquire(key)
        try:
            channel = await self._inbound_handshake(stream, ip)
            if channel is None:
                return
            if self.is_banned(channel.remote_key):
                self._refuse("banned", ip)
            elif self._over_inbound_limit(channel.remote_key):
                self._refuse("max_peers", ip)
            else:
                await self._serve(channel, f"{ip}:{port}")
                return
            await trio.aclose_forcefully(stream)
        finally:
            if limited:
                self.inbound.release(key)

    def _refusal(self, key: str, limited: bool) -> str | None:
        """Why a new inbound connection from the address ``key`` is refused (None: it is not)."""
        config = self.config
        if self.banned_hosts.get(key, 0.0) > self.clock():
            return "banned"
        if len(self.peers) >= config.max_peers + len(self.targets):  # no room whoever it is
            return "max_peers"
        if self.handshakes >= config.max_handshakes:
            return "max_handshakes"
        if limited and not self.inbound_rates.allow(key, self.clock()):
            return "rate_per_ip"
        if limited and self.inbound[key] >= config.max_inbound_per_ip:
            return "max_inbound_per_ip"
        return None

    def _untargeted_inbound(self) -> int:
        """Inbound connections of keys that are not targets: what ``max_peers`` bounds."""
        targets = self.targets
        return sum(1 for key, peer in self.peers.items() if not peer.dialled and key not in targets)

    def _over_inbound_limit(self, key: NodeKey) -> bool:
        """Whether an inbound connection of ``key``, handshake done, is one too many: not already a
        peer, nor a target (a connection this node wants anyway), with ``max_peers`` such held."""
        if key in self.peers or key in self.targets:
            return False
        return self._untargeted_inbound() >= self.config.max_peers

    def _refuse(self, reason: str, ip: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self.log("debug", "inbound connection refused", address=ip, reason=reason)

    async def _inbound_handshake(self, stream: trio.SocketStream, ip: str) -> SecureChannel | None:
        """The handshake of an accepted connection (counted in :attr:`handshakes` while it runs);
        None, the connection closed and the address scored, when it fails or times out."""
        self.handshakes += 1
        try:
            with trio.fail_after(self.config.handshake_timeout):
                return await self._handshake(stream, initiator=False, expected=None)
        except HandshakeCut:  # the client went away (or the network cut it): no violation
            await trio.aclose_forcefully(stream)
            return None
        except (HandshakeFailed, trio.TooSlowError, OSError, trio.BrokenResourceError) as exc:
            self.violations += 1
            self._score_host(ip, str(exc) or "handshake timed out")
            await trio.aclose_forcefully(stream)
            return None
        finally:
            self.handshakes -= 1

    async def _handshake(
        self, stream: trio.abc.Stream, *, initiator: bool, expected: NodeKey | None
    ) -> SecureChannel:
        return await handshake(
            stream,
            self.identity,
            chain_id=self.config.chain_id,
            initiator=initiator,
            listen_port=self.port,
            version=self.config.version,
            expected=expected,
            max_frame=self.config.max_frame + 1,  # the channel byte
        )

    # -- a connected peer ---------------------------------------------------------------------------

    async def _serve(self, channel: SecureChannel, address: str) -> None:
        key = channel.remote_key
        now = self.clock()
        if channel.initiator and key not in self.targets:  # retargeted while the dial ran
            await trio.aclose_forcefully(channel.stream)
            return
        peer = Peer(key, channel, address, now, tokens=self.config.frame_burst, refilled=now)
        current = self.peers.get(key)
        if current is not None:
            if self._initiator(channel) >= self._initiator(current.channel):
                await trio.aclose_forcefully(channel.stream)
                return
            current.cancel.cancel()
            # what waited for the replaced connection's writer goes out on this one
            peer.outbox, peer.queued = current.outbox, current.queued
            current.outbox, current.queued = deque(), 0
            peer.wake.set()
        self.peers[key] = peer
        target = self.targets.get(key)
        if target is not None and target.pending:
            self._release(target, peer)
        self.connection_made.set()  # wakes whoever waits for new peers, then a fresh event
        self.connection_made = trio.Event()
        self.log("info", "peer connected", peer=key.hex()[:16], address=address, peers=len(self.peers))
        reason = peer.closing
        try:
            with peer.cancel:
                reason = await self._run_peer(peer)
            if peer.cancel.cancelled_caught:
                reason = peer.closing
        finally:  # the host stopping (cancelled) too: close, so the peer sees it at once
            if self.peers.get(key) is peer:
                del self.peers[key]
            await trio.aclose_forcefully(channel.stream)
        self.log("info", "peer dropped", peer=key.hex()[:16], reason=reason, peers=len(self.peers))

    async def _run_peer(self, peer: Peer) -> str:
        """Read and write until either side fails; returns why the connection ended."""
        reason = "cancelled"

        async def run(loop: Callable[[Peer], Awaitable[None]], nursery: trio.Nursery) -> None:
            nonlocal reason
            try:
                await loop(peer)
            except ProtocolViolation as exc:
                reason = str(exc)
                self._score(bytes(peer.key), self.config.violation_points, reason)
            except PeerClosed:
                reason = "closed by the peer"
            except trio.TooSlowError:
                reason = "idle or too slow"
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                reason = type(exc).__name__
            except Exception as exc:  # the boundary: this connection ends, never the host
                reason = f"an unexpected {type(exc).__name__}"
                self._unexpected(exc, peer=peer.key.hex()[:16])
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, self._write_loop, nursery)
            nursery.start_soon(run, self._read_loop, nursery)
        return reason

    def _initiator(self, channel: SecureChannel) -> bytes:
        """The node key of whoever dialled ``channel`` (for the one-connection rule)."""
        return bytes(self.node_key if channel.initiator else channel.remote_key)

    async def _read_loop(self, peer: Peer) -> None:
        """Frames to :attr:`on_frame` as they come; :class:`trio.TooSlowError` after
        ``idle_timeout`` without any (one deadline for the connection, moved on at each batch:
        a cancel scope per read cost more than the read on a busy link)."""
        config = self.config
        with trio.CancelScope(deadline=trio.current_time() + config.idle_timeout) as idle:
            await self._read_frames(peer, idle)
        if idle.cancelled_caught:
            raise trio.TooSlowError

    async def _read_frames(self, peer: Peer, idle: trio.CancelScope) -> None:
        config = self.config
        while True:
            frames = await peer.channel.receive_batch()
            idle.deadline = trio.current_time() + config.idle_timeout
            now = self.clock()
            refill = (now - peer.refilled) * config.frames_per_second
            peer.tokens = min(config.frame_burst, peer.tokens + refill) - len(frames)
            peer.refilled = now
            if peer.tokens < 0:
                raise ProtocolViolation("more frames than the per-peer limit")
            for frame in frames:
                channel_byte = frame[:1]
                if channel_byte == DATA:
                    self.on_frame(peer.key, frame[1:])
                elif channel_byte != PING or len(frame) != 1:
                    raise ProtocolViolation("a frame of an unknown kind")

    async def _write_loop(self, peer: Peer) -> None:
        config = self.config
        while True:
            with trio.move_on_after(config.idle_timeout / 3):
                await peer.wake.wait()
            peer.wake = trio.Event()
            frames = list(peer.outbox) or [PING]
            peer.outbox.clear()
            peer.queued = 0
            with trio.fail_after(config.write_timeout):
                await peer.channel.send(frames)

    def _close(self, peer: Peer, reason: str) -> None:
        """End ``peer``'s connection: no longer a peer from now (its tasks end at their next turn)."""
        peer.closing = reason
        peer.cancel.cancel()
        if self.peers.get(peer.key) is peer:
            del self.peers[peer.key]

    def _hold(self, target: _Target, frame: bytes) -> bool:
        """Keep ``frame`` for a target not connected yet; False when its buffer is full."""
        config = self.config
        self._check_size(frame)
        now = self.clock()
        self._expire(target, now)
        full = len(target.pending) >= config.pending_frames
        if full or target.pending_bytes + len(frame) > config.pending_bytes:
            return False
        target.pending.append((now, frame))
        target.pending_bytes += len(frame)
        return True

    def _expire(self, target: _Target, now: float) -> None:
        """Drop what waited for ``target`` longer than ``pending_seconds``."""
        pending, oldest = target.pending, now - self.config.pending_seconds
        while pending and pending[0][0] < oldest:
            target.pending_bytes -= len(pending.popleft()[1])

    def _release(self, target: _Target, peer: Peer) -> None:
        """``target`` connected: what waited for it goes out, in order (the expired dropped)."""
        self._expire(target, self.clock())
        pending, target.pending, target.pending_bytes = target.pending, deque(), 0
        for _, frame in pending:
            self._enqueue(peer, frame)

    def _check_size(self, frame: bytes) -> None:
        if len(frame) > self.config.max_frame + 1:
            raise ValueError(f"a payload of {len(frame) - 1} bytes is over the frame limit")

    def _enqueue(self, peer: Peer, frame: bytes) -> bool:
        self._check_size(frame)
        if peer.queued + len(frame) > self.config.queue_bytes:
            return False
        peer.outbox.append(frame)
        peer.queued += len(frame)
        peer.wake.set()
        return True

    # -- scores and bans ------------------------------------------------------------------------------

    def _score(self, key: bytes, points: float, reason: str) -> None:
        self.violations += 1
        score = self.scores.get(key, 0.0) - points
        self.scores[key] = score
        self.log("warn", "peer misbehaved", peer=key.hex()[:16], reason=reason, score=score)
        if score <= self.config.ban_score:
            self.banned_keys[key] = self.clock() + self.config.ban_seconds
            self.scores[key] = 0.0
            peer = self.peers.get(NodeKey(key))
            if peer is not None:
                self._close(peer, "banned")
                self._ban_host(peer.address.rsplit(":", 1)[0])
            self.log("warn", "peer banned", peer=key.hex()[:16], seconds=self.config.ban_seconds)

    def _score_host(self, host: str, reason: str) -> None:
        """A failed inbound handshake: no key to blame, so the address is scored."""
        key = ("host:" + host).encode()
        score = self.scores.get(key, 0.0) - self.config.violation_points
        self.scores[key] = score
        self.log("warn", "handshake failed", address=host, reason=reason, score=score)
        if score <= self.config.ban_score:
            self._ban_host(host)
            self.scores[key] = 0.0

    def _ban_host(self, host: str) -> None:
        if is_limited(host, limit_loopback=False):
            self.banned_hosts[address_key(host)] = self.clock() + self.config.ban_seconds
