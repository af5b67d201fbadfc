"""One connection's HTTP/1.1, server side: requests in, answers out, each within its deadline.

Requests are parsed by httptools (llhttp, the parser of Node.js and of uvicorn): no hand-written
parsing here. It replaced h11, which parsed and wrote each storage-port request in ~55 µs of
Python, as much as the request's Ed25519 check; llhttp takes ~2 µs. What h11 decided beside the
parsing is kept as h11 decided it, so a client sees the same answers:

- **keep-alive**: a connection stays open after an answer unless the request is HTTP/1.0 or says
  ``connection: close``, or the answer says ``connection: close``; when the request asked to
  close and the answer does not say so, ``Connection: close`` ends the answer's headers;
- **answers**: ``HTTP/1.1 <status> `` (no reason phrase), then the headers as the server gives
  them, then the body; the answer to ``HEAD`` has GET's headers and no body;
- **refusals** (:class:`BadRequest`, counted as ``malformed`` by the server): a request llhttp
  cannot parse, or an HTTP/1.1 request without ``Host``, is 400; a head over :data:`MAX_HEAD`
  bytes is 431 as soon as that many bytes of it have come. Requests before a bad one on the same
  connection (pipelined) are answered first. A method llhttp does not know (``FOO /``) is 400
  where h11 passed it on to be answered 404 or 405, and a ``transfer-encoding`` other than
  chunked is 400 where h11 said 501.

A request whose head asks to switch protocols (``upgrade``, ``CONNECT``) is answered as any
other, and the connection closes after the answer: nothing here speaks another protocol.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import httptools
import trio

T = TypeVar("T")

MAX_HEAD = 16 * 1024
RECEIVE_SIZE = 65536


class Limits(Protocol):
    """The deadlines an exchange keeps (the server's :class:`~appchain.rpc.server.RpcLimits`)."""

    @property
    def idle_timeout(self) -> float: ...
    @property
    def read_header_timeout(self) -> float: ...
    @property
    def read_body_timeout(self) -> float: ...
    @property
    def write_timeout(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Request:
    """A request's line and headers (names in lower case, in the order sent)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: bytes
    keep_alive: bool
    """Whether the client keeps the connection after the answer (HTTP/1.1, no ``connection:
    close``), as h11 judged it."""


class BadRequest(Exception):
    """A request that cannot be parsed: answered ``status`` (400 or 431) and the connection closed."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class Cut(Exception):
    """The client closed the connection in the middle of a request."""


@dataclass(slots=True)
class _Incoming:
    request: Request
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    complete: bool = False


def _keeps_alive(version: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    """h11's rule: HTTP/1.1, and no ``close`` among the ``connection`` header's tokens."""
    if version < b"1.1":
        return False
    for name, value in headers:
        if name == b"connection" and b"close" in (token.strip().lower() for token in value.split(b",")):
            return False
    return True


class Exchange:
    """One connection's HTTP: requests in and answers out, each within its deadline."""

    def __init__(self, stream: trio.abc.Stream, limits: Limits) -> None:
        self.stream = stream
        self.limits = limits
        self.method = b""
        """The method of the request being answered (a HEAD answer carries no body)."""
        self._parser = httptools.HttpRequestParser(self)
        self._incoming: deque[_Incoming] = deque()
        """Requests whose heads are parsed, the one being answered first."""
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._in_head = False
        self._between = True
        """No request is begun and unfinished: the next byte starts one."""
        self._head_bytes = 0
        self._broken: BadRequest | None = None
        self._eof = False
        self._closing = False
        self._answered = False
        self._deadlines: trio.CancelScope | None = None

    # -- the parser's callbacks (httptools calls them from feed_data) ----------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers = b"", []
        self._in_head, self._between = True, False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        version = self._parser.get_http_version().encode()
        headers = self._headers
        if version == b"1.1" and not any(name == b"host" for name, _ in headers):
            self._broken = BadRequest(400, "Missing mandatory Host: header")
            raise self._broken  # stops the parser; raised once the requests before it are answered
        method = self._parser.get_method()
        request = Request(method, self._url, headers, version, _keeps_alive(version, headers))
        self._incoming.append(_Incoming(request))

    def on_body(self, body: bytes) -> None:
        incoming = self._incoming[-1]
        incoming.parts.append(body)
        incoming.size += len(body)

    def on_message_complete(self) -> None:
        self._incoming[-1].complete = True
        self._between = True

    # -- reading ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def deadlines(self) -> Iterator[None]:
        """One cancel scope for the connection, whose deadline each wait sets and clears (a scope
        entered and left for every read and write cost more than the rest of the exchange's
        Python): :class:`trio.TooSlowError` out of it when a deadline passed. Outside it, each
        wait has a scope of its own."""
        with trio.CancelScope() as scope:
            self._deadlines = scope
            try:
                yield
            finally:
                self._deadlines = None
        if scope.cancelled_caught:
            raise trio.TooSlowError

    async def _by(self, deadline: float, wait: Awaitable[T]) -> T:
        """``wait``'s result, by ``deadline`` (:class:`trio.TooSlowError` past it): on the
        connection's scope of :meth:`deadlines` when there is one, else on a scope of its own."""
        scope = self._deadlines
        if scope is None:
            with trio.CancelScope(deadline=deadline):
                return await wait
            raise trio.TooSlowError
        scope.deadline = deadline
        result = await wait
        scope.deadline = math.inf
        return result

    async def _receive(self, deadline: float) -> bytes:
        """The next bytes the client sent, by ``deadline`` (:class:`trio.TooSlowError` past it)."""
        return bytes(await self._by(deadline, self.stream.receive_some(RECEIVE_SIZE)))

    def _feed(self, data: bytes) -> None:
        """Parse what came; a parse error is kept for when the requests before it are answered."""
        if not data:
            self._eof = True
            return
        if self._broken is not None or self._closing:
            return  # nothing after a bad request or a protocol switch is read as HTTP
        started_in_head, started_between = self._in_head, self._between
        before = len(self._incoming)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._closing = True
        except httptools.HttpParserCallbackError:
            if self._broken is None:
                raise
        except httptools.HttpParserError as exc:
            self._broken = BadRequest(400, f"malformed request: {exc}")
        if self._in_head and self._broken is None:
            # bytes of a head not yet ended; a read that also ended an earlier request counts from
            # the next read on (where that request ended in it is not known)
            if len(self._incoming) == before:  # no head ended in this read
                if started_in_head:
                    self._head_bytes += len(data)
                elif started_between:
                    self._head_bytes = len(data)
            if self._head_bytes > MAX_HEAD:
                self._broken = BadRequest(431, "Receive buffer too long")

    async def head(self) -> Request | None:
        """The next request's line and headers: the first byte within ``idle_timeout``, the rest
        within ``read_header_timeout`` of it; None when the client closed between requests."""
        deadline = math.inf
        if self._in_head:  # it already sent some of the next request
            deadline = trio.current_time() + self.limits.read_header_timeout
        while not self._incoming:
            if self._broken is not None:
                raise self._broken
            if self._eof or self._closing:
                if self._in_head:
                    raise BadRequest(400, "peer unexpectedly closed connection")
                return None
            if deadline == math.inf:
                data = await self._receive(trio.current_time() + self.limits.idle_timeout)
                deadline = trio.current_time() + self.limits.read_header_timeout
            else:
                data = await self._receive(deadline)
            self._feed(data)
        request = self._incoming[0].request
        self.method = request.method
        return request

    async def body(self, limit: int) -> bytes | None:
        """The request's body, all of it within ``read_body_timeout``; None past ``limit`` bytes.
        (A body that came with its headers, as most do, is read without waiting.)"""
        incoming = self._incoming[0]
        deadline = trio.current_time() + self.limits.read_body_timeout
        while not incoming.complete:
            if incoming.size > limit:
                return None
            if self._broken is not None:
                raise self._broken
            if self._eof or self._closing:
                raise Cut
            self._feed(await self._receive(deadline))
        if incoming.size > limit:
            return None
        parts = incoming.parts
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # -- answering -------------------------------------------------------------------------------

    def _answer(self, status: int, body: bytes, kind: str, headers: tuple[tuple[str, str], ...]) -> bytes:
        """The bytes of a whole answer (see the module docstring); the answer to a HEAD request has
        the same headers and no body (its ``content-length`` is the body's that GET would get)."""
        fields = [("content-type", kind), ("content-length", str(len(body))), *headers]
        closes = any(
            name.lower() == "connection" and "close" in (t.strip().lower() for t in value.split(","))
            for name, value in fields
        )
        current = self._incoming[0].request if self._incoming else None
        if current is not None and not current.keep_alive:
            fields = [(name, value) for name, value in fields if name.lower() != "connection"]
            fields.append(("Connection", "close"))
            closes = True
        self._closing = self._closing or closes
        self._answered = True
        head = f"HTTP/1.1 {status} \r\n" + "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\n"
        data = head.encode("latin-1")
        return data if self.method == b"HEAD" else data + body

    async def respond(self, status: int, body: bytes, kind: str, *headers: tuple[str, str]) -> None:
        """The whole answer in one write, taken by the client within ``write_timeout``."""
        data = self._answer(status, body, kind, headers)
        await self._by(trio.current_time() + self.limits.write_timeout, self.stream.send_all(data))

    async def reject(self, status: int, reason: str) -> None:
        """Answer a request that cannot be served (431 for a head over :data:`MAX_HEAD`, 400 for
        one that cannot be parsed, 500 for one that failed inside), if nothing was answered on it
        yet; a word, not a wait, before the connection closes."""
        if self._answered:
            return
        with trio.move_on_after(1.0):
            try:
                data = self._answer(status, f"{reason}\n".encode(), "text/plain", (("connection", "close"),))
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    async def discard_rest(self, limit: int) -> None:
        """After a 413, read (and drop) what the client is still sending, for a moment: closing
        at once would make a client that is still writing see a broken pipe, not the answer."""
        received = 0
        with trio.move_on_after(1.0):
            while received < 2 * limit:
                data = await self.stream.receive_some(RECEIVE_SIZE)
                if not data:
                    return
                received += len(data)

    def next_cycle(self) -> bool:
        """Ready for the next request on this connection; False when it is to close."""
        if self._closing or not self._incoming[0].complete:
            return False
        self._incoming.popleft()
        self._answered = False
        self.method = b""
        return True
