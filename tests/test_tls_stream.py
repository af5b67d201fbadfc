"""The storage port's TLS stream (OpenSSL on the socket, trio waiting for it): answers far larger than
the socket's buffers both ways, a client that closes without close_notify, a failed handshake
that the client sees as an alert and a close (not a reset), and a closed stream refusing use."""

from __future__ import annotations

import functools
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from appchain.home.tls import client_context, make_certificate, server_context
from appchain.rpc.tlsstream import accept_tls


@functools.cache
def context() -> ssl.SSLContext:
    folder = Path(tempfile.mkdtemp(prefix="appchain-tls-"))
    cert, key = make_certificate()
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    return server_context(folder / "cert.pem", folder / "key.pem")


async def with_server(
    serve: Callable[[trio.SocketStream], Awaitable[None]], client: Callable[[int], Awaitable[None]]
) -> None:
    """``serve`` each connection to a listener on 127.0.0.1 while ``client`` connects to its port."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        await client(listeners[0].socket.getsockname()[1])
        nursery.cancel_scope.cancel()


async def test_many_megabytes_each_way_and_a_close_without_close_notify() -> None:
    upload, answer = os.urandom(3_000_000), os.urandom(8_000_000)
    received: list[bytes] = []

    async def serve(stream: trio.SocketStream) -> None:
        tls = await accept_tls(stream, context())
        got = b""
        while len(got) < len(upload):
            got += await tls.receive_some(65536)
        received.append(got)
        await tls.send_all(answer)
        assert await tls.receive_some(65536) == b""  # the client closed without close_notify
        await tls.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await tls.send_all(b"x")

    async def client(port: int) -> None:
        raw = await trio.open_tcp_stream("127.0.0.1", port)
        tls = trio.SSLStream(raw, client_context(), server_hostname="n", https_compatible=True)
        await tls.send_all(upload)
        got = b""
        while len(got) < len(answer):
            await trio.sleep(0)  # a slow reader: the server waits on a full buffer
            got += await tls.receive_some(65536)
        assert got == answer
        await raw.aclose()

    await with_server(serve, client)
    assert received == [upload]


async def test_a_failed_handshake_is_broken_and_the_client_reads_a_close_not_a_reset() -> None:
    outcomes: list[str] = []

    async def serve(stream: trio.SocketStream) -> None:
        try:
            await accept_tls(stream, context())
        except trio.BrokenResourceError:
            outcomes.append("broken")

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nhost: n\r\n\r\n" + b"x" * 5000)
        seen = b""
        while data := await stream.receive_some(65536):  # a reset would raise here
            seen += data
        assert seen[:1] in (b"", b"\x15")  # nothing, or a TLS alert
        outcomes.append("closed")
        await trio.testing.wait_all_tasks_blocked()  # the server's handler has had its say

    await with_server(serve, client)
    assert sorted(outcomes) == ["broken", "closed"]
