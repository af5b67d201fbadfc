"""A small HTTP/1.1 client on trio and h11 (no hand-written parsing), with keep-alive connections:
what a node uses to reach another node's storage port, and the onion hops to forward.

Storage ports speak HTTPS with a self-signed certificate (:mod:`appchain.home.tls`), so the pool
connects over TLS without checking it, as the storage server does when it reaches another node:
the node's identity is proven by what travels inside (an onion layer only the named node can
decrypt, a swarm member's request signed with its node key), never by the certificate. A kept
connection saves the handshake (an RSA signature on the serving side) on every later request.
"""

from __future__ import annotations

import ssl

import h11
import trio

MAX_RESPONSE = 16 * 1024 * 1024


class HttpError(Exception):
    """The peer could not be reached, or answered something that is not HTTP."""


class HttpTimeout(HttpError):
    """The peer did not answer within the timeout."""


class ConnectionPool:
    """Keep-alive connections to other nodes, reused for the next request to the same address:
    a store is forwarded to every swarm member, so a new TCP connection per forward would cost
    more than the store itself. A connection found closed is replaced once (every request a node
    sends another is idempotent: stores, hand-overs, pulls, onion layers)."""

    MAX_IDLE = 4

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        """Connect over TLS with this context (a node's pool: :func:`appchain.home.tls.client_context`);
        None: plain HTTP (tests of the HTTP alone)."""
        self._idle: dict[tuple[str, int], list[tuple[trio.abc.Stream, h11.Connection]]] = {}

    async def post(
        self,
        host: str,
        port: int,
        path: str,
        body: bytes,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> tuple[int, bytes]:
        idle = self._idle.setdefault((host, port), [])
        for attempt in range(2):
            reused = attempt == 0 and bool(idle)
            try:
                with trio.fail_after(timeout):
                    if reused:
                        stream, connection = idle.pop()
                    else:
                        stream, connection = await self._connect(host, port), h11.Connection(h11.CLIENT)
                    try:
                        status, answer = await _exchange(stream, connection, host, port, path, body, headers)
                    except BaseException:
                        await trio.aclose_forcefully(stream)
                        raise
            except trio.TooSlowError:
                raise HttpTimeout(f"{host}:{port}: no answer within {timeout:g} s") from None
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as exc:
                # a failed TLS handshake arrives as BrokenResourceError (ssl.SSLError inside)
                if reused:
                    continue  # the peer closed the idle connection: once more on a new one
                raise HttpError(f"{host}:{port}: {exc}") from None
            if (
                connection.our_state is h11.DONE
                and connection.their_state is h11.DONE
                and len(idle) < self.MAX_IDLE
            ):
                connection.start_next_cycle()
                idle.append((stream, connection))
            else:
                await trio.aclose_forcefully(stream)
            return status, answer
        raise HttpError(f"{host}:{port}: the connection closed")  # not reached: the loop returns or raises

    async def _connect(self, host: str, port: int) -> trio.abc.Stream:
        """A new connection, its TLS handshake done (within the request's timeout)."""
        stream = await trio.open_tcp_stream(host, port)
        if self.tls is None:
            return stream
        tls = trio.SSLStream(stream, self.tls, https_compatible=True)
        try:
            await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return tls


async def _exchange(
    stream: trio.abc.Stream,
    connection: h11.Connection,
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str] | None,
) -> tuple[int, bytes]:
    fields = [("host", f"{host}:{port}"), ("content-length", str(len(body))), *((headers or {}).items())]
    data = connection.send(h11.Request(method="POST", target=path, headers=fields))
    data += connection.send(h11.Data(data=body)) + connection.send(h11.EndOfMessage())
    await stream.send_all(data)
    status, received = 0, bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            chunk = await stream.receive_some(65536)
            if not chunk and status == 0:
                raise trio.BrokenResourceError("closed before an answer")
            connection.receive_data(bytes(chunk))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            received += event.data
            if len(received) > MAX_RESPONSE:
                raise HttpError(f"{host}:{port}: the answer is too large")
        elif isinstance(event, h11.EndOfMessage):
            return status, bytes(received)
        elif isinstance(event, h11.ConnectionClosed):
            raise trio.BrokenResourceError("closed before the end of the answer")
