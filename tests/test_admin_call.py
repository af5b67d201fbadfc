"""``appchain.node.admin.call`` against a fake admin endpoint (127.0.0.1, port 0) that answers each
kind of broken reply: every one is a typed error with one line naming the address and what was
wrong, never a KeyError, a JSONDecodeError or a hang past the timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from appchain.node import admin
from appchain.node.admin import AdminTimeout, AdminUnavailable, MalformedReply, RpcError, call

Script = Callable[[socket.socket], None]
"""What the fake server does once it has read the request line."""


def sends(data: bytes) -> Script:
    def script(conn: socket.socket) -> None:
        try:
            conn.sendall(data)
        except OSError:  # the caller gave up first (a reply over the limit)
            return

    return script


def stalls(conn: socket.socket) -> None:
    time.sleep(2.0)  # the caller's timeout is far shorter; the socket is closed after


def drips(conn: socket.socket) -> None:
    for _ in range(40):  # a byte every 50 ms, never a line end: each read alone is quick
        try:
            conn.sendall(b" ")
        except OSError:
            return
        time.sleep(0.05)


@contextmanager
def fake_admin(script: Script) -> Iterator[tuple[str, int]]:
    """A one-connection server on 127.0.0.1 that reads a request line, then runs ``script``."""
    server = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            requests.append(data)
            script(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[:2]
    finally:
        server.close()
        thread.join(timeout=5)
    assert requests and requests[0].startswith(b'{"jsonrpc": "2.0", "id": 1, "method": "status"')


MALFORMED = [
    (b"hello\n", "not valid JSON"),
    (b'"\xc3\x28"\n', "not valid JSON: not UTF-8 text"),
    (b"[1, 2]\n", "a JSON list, not an object"),
    (b'"result"\n', "a JSON str, not an object"),
    (b'{"jsonrpc": "2.0", "id": 1}\n', "neither result and error"),
    (b'{"jsonrpc": "2.0", "id": 1, "result": 1, "error": {"code": 1, "message": "m"}}\n', "both result"),
    (b'{"jsonrpc": "2.0", "id": 1, "error": "boom"}\n', "an error that is not {code: integer"),
    (b'{"jsonrpc": "2.0", "id": 1, "error": {"code": "7", "message": "m"}}\n', "an error that is not"),
    (b'{"jsonrpc": "2.0", "id": 1, "error": {"code": true, "message": "m"}}\n', "an error that is not"),
    (b'{"jsonrpc": "2.0", "id": 1, "error": {"code": 7}}\n', "an error that is not"),
    (b'{"jsonrpc": "2.0", "id": 2, "result": {}}\n', "id 2, not 1"),
    (b'{"jsonrpc": "2.0", "result": {}}\n', "id None, not 1"),
    (b'{"jsonrpc": "2.0", "id": 1, "result": 1, "result": 2}\n', "not valid JSON: duplicate key"),
    (b'{"jsonrpc": "2.0", "id": 1, "result": NaN}\n', "not valid JSON"),
    (b"[" * 200_000 + b"]" * 200_000 + b"\n", "nested deeper than"),
    (b'{"jsonrpc": "2.0", "id": 1, "res', "the connection closed after 32 bytes of a reply"),
    (b"", "the connection closed before replying"),
]


@pytest.mark.parametrize(("reply", "expected"), MALFORMED, ids=[m[1][:30] for m in MALFORMED])
def test_a_malformed_reply_is_one_typed_error(reply: bytes, expected: str) -> None:
    with fake_admin(sends(reply)) as address, pytest.raises(MalformedReply) as caught:
        call(address, "status", timeout=5.0)
    message = str(caught.value)
    assert message.startswith(f"malformed reply from 127.0.0.1:{address[1]}: ")
    assert expected in message and "\n" not in message


def test_a_reply_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "MAX_REPLY", 1000)
    huge = sends(b'{"result": "' + b"x" * 200_000 + b'"}\n')
    with (
        fake_admin(huge) as address,
        pytest.raises(MalformedReply, match="over 1000 bytes without a line end"),
    ):
        call(address, "status")


def test_an_error_reply_is_an_rpc_error_on_one_line() -> None:
    text = (
        b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "refused:\\n  '
        + b"y" * 500
        + b'"}}\n'
    )
    with fake_admin(sends(text)) as address, pytest.raises(RpcError) as caught:
        call(address, "status")
    assert caught.value.code == -32000
    message = str(caught.value)
    assert message.startswith("refused: yyy") and "\n" not in message and len(message) == admin.MAX_ERROR_TEXT


def test_a_good_reply_gives_its_result() -> None:
    with fake_admin(sends(b'{"jsonrpc": "2.0", "id": 1, "result": {"height": 5}}\n')) as address:
        assert call(address, "status") == {"height": 5}


@pytest.mark.parametrize("script", [stalls, drips], ids=["silent", "drips bytes"])
def test_a_node_that_does_not_finish_its_reply_times_out(script: Script) -> None:
    with fake_admin(script) as address:
        started = time.monotonic()
        with pytest.raises(
            AdminTimeout, match=f"the node at 127.0.0.1:{address[1]} did not answer within 0.4 s"
        ):
            call(address, "status", timeout=0.4)
        assert time.monotonic() - started < 1.0  # the whole exchange is bounded, not each read


def test_nothing_listening_is_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    with pytest.raises(AdminUnavailable, match=f"no node answers at 127.0.0.1:{port}: Connection refused"):
        call(("127.0.0.1", port), "status", timeout=1.0)
