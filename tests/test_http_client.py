"""The one request helper of the client commands (:mod:`appchain.client.http`): every way a server
can fail to be our RPC is one :class:`ServerError` naming its URL, and the JSON-RPC layer on top
(:class:`appchain.client.lightclient.RpcSource`) refuses every wrong shape the same way."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import pytest

from appchain.client.http import ServerError, decode_answer, parse_url, post
from appchain.client.lightclient import RpcSource, SourceError
from tests.servers import FakeServer, Respond, http_answer


def answering(raw: bytes) -> Respond:
    return lambda path, body: raw


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in held:
            sock.close()
        listener.close()


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


ANSWERS = {
    "non-HTTP bytes": (b"SSH-2.0-OpenSSH_9.6p1\r\n", "not an HTTP answer"),
    "nothing at all": (b"", "closed the connection without answering"),
    "a 70 KB header line": (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", "longer than 64 KiB"),
    "200 headers": (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n", "not a usable HTTP answer"),
    "a body cut short": (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}", "cut short"),
    "a body too large": (http_answer(200, b"x" * 2000), "larger than 1000 bytes"),
}


@pytest.mark.parametrize("name", ANSWERS)
def test_a_server_that_is_not_http_is_one_error_naming_it(name: str) -> None:
    raw, says = ANSWERS[name]
    with FakeServer(answering(raw)) as server, pytest.raises(ServerError, match=says) as caught:
        post(server.url + "/json_rpc", b"{}", timeout=5, max_answer=1000)
    assert str(caught.value).startswith(server.url + "/json_rpc: ") and "\n" not in str(caught.value)


def test_unreachable_silent_and_malformed_urls(silent: str) -> None:
    with pytest.raises(ServerError, match="cannot reach the node"):
        post(closed_url(), b"{}", timeout=5)
    with pytest.raises(ServerError, match=r"no answer within 0.3 s"):
        post(silent, b"{}", timeout=0.3)
    for bad in ("127.0.0.1:26658", "ftp://host/", "http://", "http://host:99999", "http://u:p@host/"):
        with pytest.raises(ValueError):
            parse_url(bad)
        with pytest.raises(ServerError):
            post(bad, b"{}", timeout=1)
    assert parse_url("http://127.0.0.1:26658").port == 26658
    assert parse_url("https://node.example/rpc?x=1").path == "/rpc?x=1"


def test_an_answer_that_is_not_json_or_nests_too_deep_is_refused() -> None:
    for body, says in ((b"<html>", "is not JSON"), (b"[" * 100_000, "nested deeper than 64")):
        with FakeServer(answering(http_answer(200, body))) as server:
            answer = post(server.url, b"{}", timeout=5)
            with pytest.raises(ServerError, match=says):
                decode_answer(answer)


RPC_ANSWERS = {
    "a JSON list": (http_answer(200, [1, 2]), "answered a JSON list, not a JSON-RPC reply"),
    "no result": (http_answer(200, {"jsonrpc": "2.0", "id": 0}), "a JSON-RPC reply without a result"),
    "a result that is a string": (http_answer(200, {"id": 0, "result": "x"}), "the JSON-RPC result is a string"),
    "an error": (http_answer(200, {"id": 0, "error": {"code": -32601, "message": "unknown method"}}),
                 "it refused: 'unknown method' (code -32601)"),
    "HTTP 429": (http_answer(429, {"error": {"code": -32005, "message": "slow down"}}, "Too Many"),
                 "HTTP 429: 'slow down'"),
    "HTTP 421 without a body": (http_answer(421, b"", "Misdirected"), "not JSON"),
}  # fmt: skip


@pytest.mark.parametrize("name", RPC_ANSWERS)
def test_a_json_rpc_reply_of_the_wrong_shape_is_one_error(name: str) -> None:
    raw, says = RPC_ANSWERS[name]
    with FakeServer(answering(raw)) as server:
        with pytest.raises(SourceError, match=re.escape(says)) as caught:
            RpcSource(server.url).call("get_info")
        with pytest.raises(SourceError):
            RpcSource(server.url).batch("get_checkpoint", [{"height": 4}, {"height": 8}])
    assert server.url in str(caught.value) and "\n" not in str(caught.value)
