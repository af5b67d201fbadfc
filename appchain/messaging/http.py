"""A small HTTP/1.1 client on trio and h11 (no hand-written parsing): what a node uses to reach
another node's storage endpoints, and the onion hops to forward."""

from __future__ import annotations

import h11
import trio

MAX_RESPONSE = 16 * 1024 * 1024


class HttpError(Exception):
    """The peer could not be reached, or answered something that is not HTTP."""


async def post(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """POST ``body``; the status code and the response body."""
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                connection = h11.Connection(h11.CLIENT)
                fields = [
                    ("host", f"{host}:{port}"),
                    ("content-length", str(len(body))),
                    ("connection", "close"),
                    *((headers or {}).items()),
                ]
                data = connection.send(h11.Request(method="POST", target=path, headers=fields))
                data += connection.send(h11.Data(data=body)) + connection.send(h11.EndOfMessage())
                await stream.send_all(data)
                status, received = 0, bytearray()
                while True:
                    event = connection.next_event()
                    if event is h11.NEED_DATA:
                        connection.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        received += event.data
                        if len(received) > MAX_RESPONSE:
                            raise HttpError(f"{host}:{port}: the answer is too large")
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        return status, bytes(received)
    except trio.TooSlowError:
        raise HttpError(f"{host}:{port}: no answer within {timeout:g} s") from None
    except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
        raise HttpError(f"{host}:{port}: {exc}") from None
