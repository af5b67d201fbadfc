"""The node's HTTP servers, on trio, with limits per remote address: the public RPC port
(JSON-RPC, ``/metrics`` and the network page, plain HTTP as oxend's RPC port is) and, through
:class:`RpcServer`'s connection and request handling, the storage port
(:mod:`appchain.rpc.storage`, HTTPS).

Each connection's HTTP/1.1 is an :class:`~appchain.rpc.exchange.Exchange` (requests parsed by
httptools, no hand-written parsing); each connection is served by one task, with keep-alive.
Routes of the RPC port: ``POST /json_rpc`` (:mod:`appchain.rpc.methods`), ``GET /metrics`` and
``GET /``. ``HEAD`` is answered as HTTP says, on every path: the headers
``GET`` would get, no body (a load balancer's health check, ``curl -I``); a known path asked with
another method gets 405 and ``allow``, an unknown one 404 (the storage paths with a line saying
they are served on the storage port, over HTTPS).

A server made with a TLS context (the storage port's) shakes hands before it reads a request,
within ``read_header_timeout``, after the connection limits let the connection in; a handshake
that fails (a client speaking plain HTTP to it, a scanner, a client refusing the certificate)
costs that connection only and is counted (``tls_handshake``).

Each connection is a boundary (:mod:`appchain.home.boundary`): an exception its handler did not
expect is logged with its traceback and counted (``rpc``), answered 500 if nothing was answered
yet, and closes that connection only.

Limits (:class:`RpcLimits`, the ``[rpc]`` settings of config.toml). *Per address* means per
:func:`p2p.limits.address_key`: an IPv4 address, or the /64 of an IPv6 one.

- **Connections**, before any byte is read: at most ``max_open_connections`` over every address
  (the next is answered 503 and closed; CometBFT's default, 900) and ``max_connections_per_ip``
  per address (429).
- **Deadlines** against slow clients (slow-loris): a request's first byte within
  ``idle_timeout``, its headers within ``read_header_timeout`` of that byte, its body within
  ``read_body_timeout`` of the headers, and the answer taken within ``write_timeout``. A
  connection that misses one is closed. Headers are at most 16 KiB: more is answered 431 and the
  connection closed, as is a request that does not parse (400), both counted as ``malformed``. A
  body is at most :data:`MAX_BODY` on ``/json_rpc`` and :data:`appchain.rpc.storage.STORAGE_MAX_BODY` on the
  storage port (413, refused on its declared length before it is sent).
- **Requests**, per address: a token bucket of ``requests_per_second_per_ip`` and
  ``request_burst_per_ip`` (a JSON-RPC batch costs one per call); at most ``max_pending_per_ip``
  requests received and not yet answered; and for JSON-RPC, ``busy_share_per_ip`` seconds of
  calls a second (bursts of :data:`BUSY_BURST`): the methods run on the node's one event loop,
  beside consensus, so a few expensive calls a second could take it over where a high rate of
  cheap ones would not. A request over a limit is answered 429 with ``retry-after: 1``, its body
  read and the connection kept; on ``/json_rpc`` the body is a JSON-RPC error
  :data:`LIMITED` (-32005, "limit exceeded" as EIP-1474 numbers it), and in a batch each call
  over a limit is answered with that error while the others are answered.
- **Fairness**: at most ``max_concurrent_requests`` requests are handled at once; the others wait
  their turn in arrival order (trio's :class:`~trio.CapacityLimiter` is first come, first served),
  and one address holds at most ``max_pending_per_ip`` places. Between two calls of a batch the
  loop lets other tasks (consensus) run.
- **Service nodes**: a swarm member's request (``PEER_PATH``) whose service-node signature
  verifies is counted against its node key (``node_requests_per_second``, ``node_request_burst``)
  instead of its address, since replication grows with client traffic; a failed signature counts
  against the address.

The storage server limits each client IP to 300 requests a second in bursts of 600; the defaults
here are lower (100, 200) because its requests run on threads beside its node, while these run on
the consensus loop. Loopback clients are exempt from the per-address limits unless
``limit_loopback`` (a devnet's nodes and the operator's tools all connect from 127.0.0.1); the
overall limits and the deadlines apply to everyone. Refusals are counted by reason in
:attr:`RpcServer.refused`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import trio

from appchain.home.boundary import is_fatal
from appchain.home.home import NodeConfig
from appchain.messaging.layer import PEER_PATH
from appchain.messaging.onion import ONION_PATH
from appchain.rpc.exchange import BadRequest, Cut, Exchange, Request
from appchain.rpc.jsonrpc import encode_answer, error_reply, request_id, serve_on
from appchain.rpc.methods import answer_one, join_answers, read_calls
from appchain.rpc.served import PublicNode
from appchain.rpc.tlsstream import TLSStream, accept_tls
from p2p.limits import AddressCounts, AddressRates, address_key, is_limited, remote_address
from state.crypto import ed25519

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JSON_RPC_PATH = "/json_rpc"
STORAGE_RPC_PATH = "/storage_rpc/v1"
STORAGE_PATHS = (STORAGE_RPC_PATH, PEER_PATH, ONION_PATH)
"""The storage port's paths a Session client or another node posts to (served at the storage port,
not here: a request for one at the RPC port is told where to go)."""
PAGE_PATHS = ("/", "/index.html")
_ALLOWED: dict[str, tuple[bytes, ...]] = {
    JSON_RPC_PATH: (b"POST",),
    **{path: (b"GET", b"HEAD") for path in ("/metrics", *PAGE_PATHS)},
}
"""The methods each known path serves (405 with ``allow`` for another; HEAD is GET's)."""
MAX_BODY = 1024 * 1024
BUSY_BURST = 1.0
"""Seconds of JSON-RPC calls an address may take at once before its share applies."""
LIMITED = -32005
RETRY_AFTER = ("retry-after", "1")


@dataclass(frozen=True)
class RpcLimits:
    """The ``[rpc]`` limits (see the module docstring); the defaults are config.toml's."""

    max_open_connections: int = 900
    max_connections_per_ip: int = 32
    requests_per_second_per_ip: float = 100.0
    request_burst_per_ip: float = 200.0
    busy_share_per_ip: float = 0.25
    max_pending_per_ip: int = 16
    max_concurrent_requests: int = 64
    read_header_timeout: float = 10.0
    read_body_timeout: float = 30.0
    write_timeout: float = 30.0
    idle_timeout: float = 60.0
    limit_loopback: bool = False
    node_requests_per_second: float = 600.0
    node_request_burst: float = 1200.0

    @classmethod
    def from_config(cls, config: NodeConfig) -> RpcLimits:
        return cls(
            max_open_connections=config.rpc_max_open_connections,
            max_connections_per_ip=config.rpc_max_connections_per_ip,
            requests_per_second_per_ip=config.rpc_requests_per_second_per_ip,
            request_burst_per_ip=config.rpc_request_burst_per_ip,
            busy_share_per_ip=config.rpc_busy_share_per_ip,
            max_pending_per_ip=config.rpc_max_pending_per_ip,
            max_concurrent_requests=config.rpc_max_concurrent_requests,
            read_header_timeout=config.rpc_read_header_timeout,
            read_body_timeout=config.rpc_read_body_timeout,
            write_timeout=config.rpc_write_timeout,
            idle_timeout=config.rpc_idle_timeout,
            limit_loopback=config.rpc_limit_loopback,
            node_requests_per_second=config.rpc_node_requests_per_second,
            node_request_burst=config.rpc_node_request_burst,
        )


@dataclass(frozen=True)
class Client:
    """Who is on a connection: the address key its limits are counted under, and whether the
    per-address limits apply to it (not to loopback, unless configured)."""

    key: str
    limited: bool


def _fixed_answer(status: str, text: str) -> bytes:
    """A whole HTTP answer sent before any request is read (an exchange answers requests; there is
    none)."""
    body = text.encode() + b"\n"
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


TOO_MANY_CONNECTIONS = _fixed_answer("429 Too Many Requests", "too many connections from this address")
SERVER_FULL = _fixed_answer("503 Service Unavailable", "too many open connections: try again later")


def _acknowledge_now(stream: trio.SocketStream | socket.socket) -> None:
    """Acknowledge the client's last handshake bytes at once (Linux ``TCP_QUICKACK``).

    In TLS 1.3 the client speaks last in the handshake (its Finished), then sends its request. The
    server has nothing to send back until it has that request, so its kernel delays the ACK (up
    to 40 ms); a client that leaves Nagle's algorithm on (Python's ``http.client`` does) holds the
    request until that ACK comes. Measured on the loopback: 43 ms a new connection, 0.5 ms with
    the ACK sent at once. Session Desktop opens a new connection for every request."""
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError):
            stream.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def refusal_text(limits: RpcLimits, reason: str) -> str:
    """What a client over a per-address limit is told."""
    if reason == "rate_per_ip":
        rate, burst = limits.requests_per_second_per_ip, limits.request_burst_per_ip
        return f"too many requests from this address: at most {rate:g} a second, in bursts of {burst:g}"
    if reason == "rate_per_node":
        rate, burst = limits.node_requests_per_second, limits.node_request_burst
        return f"too many requests from this service node: at most {rate:g} a second, in bursts of {burst:g}"
    if reason == "max_pending_per_ip":
        return f"too many requests in flight from this address: at most {limits.max_pending_per_ip}"
    share = limits.busy_share_per_ip
    return f"this address has used its share of the node's time ({share:g} s a second): try again shortly"


class RpcServer:
    """Serves the public port's connections under :class:`RpcLimits`; with ``tls``, over TLS."""

    PLACE = "rpc"
    """Where an unexpected exception is counted (``appchain_unexpected_errors``)."""
    PEER_TARGETS: tuple[str, ...] = ()
    """Paths whose requests may be signed by a service node (counted per node key): the storage
    port's, none here."""

    def __init__(
        self,
        node: PublicNode,
        limits: RpcLimits | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.node = node
        self.tls = tls
        self.limits = limits = limits or RpcLimits()
        self.clock = clock
        self.open = 0
        self.connections = AddressCounts(limits.max_connections_per_ip)
        self.pending = AddressCounts(limits.max_pending_per_ip)
        self.rates = AddressRates(limits.requests_per_second_per_ip, limits.request_burst_per_ip)
        self.busy = AddressRates(limits.busy_share_per_ip, BUSY_BURST)
        self.node_rates = AddressRates(limits.node_requests_per_second, limits.node_request_burst)
        self.workers = trio.CapacityLimiter(limits.max_concurrent_requests)
        self.refused: dict[str, int] = {}
        """Connections and requests refused, and connections closed on a deadline, by reason."""

    # -- connections ----------------------------------------------------------------------------

    async def serve(self, stream: trio.SocketStream) -> None:
        try:
            ip, _ = remote_address(stream)
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        client = Client(address_key(ip), is_limited(ip, self.limits.limit_loopback))
        refusal = self._connection_refusal(client)
        if refusal is not None:
            self._count(refusal)
            answer = SERVER_FULL if refusal == "max_open_connections" else TOO_MANY_CONNECTIONS
            if self.tls is None:  # over TLS, plain words would be garbage: no handshake is spent on it
                with trio.move_on_after(1):  # a word, not a wait: the client may not be reading
                    await stream.send_all(answer)
            await trio.aclose_forcefully(stream)
            return
        self.open += 1
        if client.limited:
            self.connections.acquire(client.key)
        try:
            served = stream if self.tls is None else await self._handshake(stream, self.tls)
            if served is not None:
                await self._serve_connection(Exchange(served, self.limits), client)
        finally:
            self.open -= 1
            if client.limited:
                self.connections.release(client.key)

    async def _handshake(self, stream: trio.SocketStream, context: ssl.SSLContext) -> TLSStream | None:
        """The connection once its TLS handshake is done, within ``read_header_timeout``; None
        (the connection closed and counted) when it failed or took too long."""
        with trio.CancelScope(deadline=trio.current_time() + self.limits.read_header_timeout):
            try:
                tls = await accept_tls(stream, context)
            except (trio.BrokenResourceError, trio.ClosedResourceError):  # ssl.SSLError comes wrapped
                self._count("tls_handshake")
                await trio.aclose_forcefully(stream)
                return None
            _acknowledge_now(tls.socket)
            return tls
        self._count("deadline")
        await trio.aclose_forcefully(stream)
        return None

    def _connection_refusal(self, client: Client) -> str | None:
        if self.open >= self.limits.max_open_connections:
            return "max_open_connections"
        if client.limited and self.connections[client.key] >= self.limits.max_connections_per_ip:
            return "max_connections_per_ip"
        return None

    async def _serve_connection(self, exchange: Exchange, client: Client) -> None:
        try:
            with exchange.deadlines():
                while (request := await exchange.head()) is not None:
                    if not await self._serve_request(exchange, request, client) or not exchange.next_cycle():
                        return
        except trio.TooSlowError:
            self._count("deadline")
        except BadRequest as exc:
            self._count("malformed")
            await exchange.reject(exc.status, str(exc))
        except (Cut, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except Exception as exc:  # the boundary: this connection fails, never the node
            if is_fatal(exc):
                raise
            self.node.faults.caught(self.PLACE, exc, client=client.key)
            await exchange.reject(500, "internal error (the node logged it)")
        finally:
            await trio.aclose_forcefully(exchange.stream)

    # -- requests -------------------------------------------------------------------------------

    async def _serve_request(self, exchange: Exchange, request: Request, client: Client) -> bool:
        """Answer one request; False when the connection is to be closed."""
        target = request.target.decode("latin-1")
        limit = self.body_limit
        declared = dict(request.headers).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > limit:  # refused before it is sent
            await self._too_big(exchange, target, limit)
            return False
        claim = self._service_node_claim(request) if target in self.PEER_TARGETS and client.limited else None
        refusal = None if claim is not None else self._request_refusal(client)
        holds = refusal is None and claim is None and client.limited
        if holds:
            self.pending.acquire(client.key)
        try:
            body = await exchange.body(limit)
            if body is None:
                await self._too_big(exchange, target, limit)
                return False
            if claim is not None:
                refusal = self._service_node_refusal(claim, body, client)
            if refusal is not None:
                self._count(refusal)
                await self._refuse(exchange, target, refusal)
                return True
            await self._take_worker()
            try:
                await self._route(exchange, request, target, body, client)
            finally:
                self.workers.release()
        finally:
            if holds:
                self.pending.release(client.key)
        return True

    async def _take_worker(self) -> None:
        """A place among ``max_concurrent_requests``: at once when one is free and nobody waits
        (no trip through the scheduler, which ``async with`` the limiter always makes), else in
        arrival order as the limiter gives them."""
        try:
            self.workers.acquire_nowait()
        except trio.WouldBlock:
            await self.workers.acquire()

    def _service_node_claim(self, request: Request) -> tuple[bytes, bytes] | None:
        """The (node key, signature) a swarm member's request carries, when the key is a service
        node's (nothing is verified yet); None for anything else."""
        fields = dict(request.headers)
        try:
            key = bytes.fromhex(fields.get(b"x-node-key", b"").decode("latin-1"))
            signature = base64.b64decode(fields.get(b"x-node-signature", b""), validate=True)
        except ValueError:
            return None
        if len(key) != ed25519.PUBLIC_KEY_SIZE or not self.node.messages.is_node(key):
            return None
        return key, signature

    def _service_node_refusal(self, claim: tuple[bytes, bytes], body: bytes, client: Client) -> str | None:
        """A request signed by a service node: replication follows client traffic, so it is
        counted per node key (``node_requests_per_second``, as the storage server gives service
        nodes their own budget by key) rather than per address. The signature is verified before
        anything is charged; a request whose signature fails is charged to its address like any
        other, so claiming a node's key neither spends that node's budget nor escapes a limit.
        (The storage layer verifies it again: one more Ed25519 check, ~60 µs, for a simple path.)"""
        key, signature = claim
        if not ed25519.verify(key, body, signature):
            return self._request_refusal(client)
        return None if self.node_rates.allow(key.hex(), self.clock()) else "rate_per_node"

    def _request_refusal(self, client: Client) -> str | None:
        """Why a request from ``client`` is refused (None: it is not); spends a rate token."""
        if not client.limited:
            return None
        if self.pending[client.key] >= self.limits.max_pending_per_ip:
            return "max_pending_per_ip"
        if not self.rates.allow(client.key, self.clock()):
            return "rate_per_ip"
        return None

    body_limit = MAX_BODY
    """The largest request body served (413 beyond)."""

    async def _refuse(self, exchange: Exchange, target: str, reason: str) -> None:
        text = refusal_text(self.limits, reason)
        if target == JSON_RPC_PATH:
            body = encode_answer(error_reply(None, LIMITED, text))
            await exchange.respond(429, body, "application/json", RETRY_AFTER)
        else:
            await exchange.respond(429, text.encode(), "text/plain", RETRY_AFTER)

    async def _too_big(self, exchange: Exchange, target: str, limit: int) -> None:
        self._count("too_big")
        if target == JSON_RPC_PATH:
            error = encode_answer(error_reply(None, -32600, f"a body over {MAX_BODY} bytes"))
            await exchange.respond(413, error, "application/json")
        else:
            await exchange.respond(413, b"Request body too large", "text/plain")
        await exchange.discard_rest(limit)

    async def _route(
        self, exchange: Exchange, request: Request, target: str, body: bytes, client: Client
    ) -> None:
        node, method = self.node, request.method
        allowed = _ALLOWED.get(target)
        if method == b"HEAD":
            method = b"GET"  # the same answer, its body left out by the exchange
        if allowed is not None and request.method not in allowed:
            names = ", ".join(name.decode() for name in allowed)
            text = f"{request.method.decode('latin-1')} is not served at {target}: use {names}\n"
            await exchange.respond(405, text.encode(), "text/plain", ("allow", names))
        elif method == b"POST" and target == JSON_RPC_PATH:
            status, payload = await self._json_rpc(body, client)
            await exchange.respond(status, payload, "application/json")
        elif method == b"GET" and target == "/metrics":
            if node.metrics is None:
                await exchange.respond(404, b"this node keeps no metrics\n", "text/plain")
                return
            await exchange.respond(200, node.metrics.render(), METRICS_TYPE)
        elif method == b"GET" and target in PAGE_PATHS:
            await exchange.respond(200, network_page(), "text/html; charset=utf-8")
        elif target in STORAGE_PATHS:
            port = node.config.served_storage_port
            text = f"not found: {target} is served over HTTPS on the storage port ({port}), not here\n"
            await exchange.respond(404, text.encode(), "text/plain")
        else:
            known = b"not found: POST /json_rpc, GET /metrics, GET /\n"
            await exchange.respond(404, known, "text/plain")

    async def _json_rpc(self, body: bytes, client: Client) -> tuple[int, bytes]:
        """The status and body answering a JSON-RPC body, each call under the client's limits."""
        calls = read_calls(body)
        if isinstance(calls, dict):
            return 200, encode_answer(calls)
        answers: list[dict[str, Any] | None] = []
        refused = False
        for index, call in enumerate(calls.items):
            if index:
                await trio.sleep(0)  # let consensus run between two calls of a batch
            reason = self._call_refusal(client, first=index == 0)
            if reason is None:
                answers.append(self._timed_answer(call, client))
                continue
            refused = True
            self._count(reason)
            answers.append(error_reply(request_id(call), LIMITED, refusal_text(self.limits, reason)))
        answer = join_answers(calls, answers)
        status = 429 if refused and not calls.batch else 200
        return status, b"" if answer is None else encode_answer(answer)

    def _call_refusal(self, client: Client, *, first: bool) -> str | None:
        """Why a call is refused: its address is over its share of the loop, or (after the first
        call of a body, which the request paid for) over its rate."""
        if not client.limited:
            return None
        now = self.clock()
        if not self.busy.has_tokens(client.key, now):
            return "busy_per_ip"
        if not first and not self.rates.allow(client.key, now):
            return "rate_per_ip"
        return None

    def _timed_answer(self, call: object, client: Client) -> dict[str, Any] | None:
        started = self.clock()
        answer = answer_one(self.node, call)
        if client.limited:
            now = self.clock()
            self.busy.spend(client.key, now, now - started)
        return answer

    def _count(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


@functools.cache
def network_page() -> bytes:
    """The network page (``appchain/rpc/static/network.html``): one file, no build step, no outside
    assets; it reads everything through this endpoint's public JSON-RPC."""
    return resources.files("appchain.rpc").joinpath("static/network.html").read_bytes()


async def serve_rpc(
    server: RpcServer, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on the node's RPC address (``[rpc] listen``) and serve each connection with ``server``,
    which the node made and keeps (its refusals are counted in ``/metrics``)."""
    await serve_on(server.node.config.rpc_address, server.serve, task_status=task_status)
