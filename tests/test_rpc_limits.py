"""One address cannot hold the public endpoint: past its connection limit it is answered 429 and
closed, while a connection it gives back is served again."""

from __future__ import annotations

import functools
import json
from types import SimpleNamespace

import trio

from appchain.rpc import HostLimit


async def _read_all(stream: trio.SocketStream) -> bytes:
    data = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


async def test_connections_over_the_per_host_limit_are_refused(nursery: trio.Nursery) -> None:
    limit = HostLimit(per_host=3)
    handler = functools.partial(limit.serve, SimpleNamespace(metrics=None))
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
    await trio.sleep(0.1)
    assert sum(limit.open.values()) == 3
    extra = await trio.open_tcp_stream("127.0.0.1", port)
    answer = await _read_all(extra)  # refused at once, before it sends anything
    assert answer.startswith(b"HTTP/1.1 429 ") and answer.endswith(
        b"too many connections from this address\n"
    )
    assert limit.refused == 1
    await held[0].aclose()
    await trio.sleep(0.1)
    again = await trio.open_tcp_stream("127.0.0.1", port)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "no_such_method"}).encode()
    request = (
        b"POST /json_rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await again.send_all(request)
    reply = await _read_all(again)
    assert reply.startswith(b"HTTP/1.1 200 ") and b"unknown method" in reply
    for stream in held[1:]:
        await stream.aclose()
    await trio.sleep(0.1)
    assert limit.open == {}
