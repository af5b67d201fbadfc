"""Onion requests to outside servers (:mod:`appchain.messaging.relay`): three hops in process, the
last posting over real HTTP to a v4 ``lsrpc`` server on the loopback; the storage server's URL
rules; the public-relay limits (non-public targets, answer size, timeout) and their counters;
the ``[onion]`` settings. The same through node processes: ``test_onion_relay_network.py``."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
from typing import Any

import pytest

from appchain.home.chain import ChainError
from appchain.home.home import NodeConfig, parse_config, render_config
from appchain.messaging.onion import AES_GCM, XCHACHA20, Answer, Hop, OnionProcessor
from appchain.messaging.relay import OutsideRelay, RelayLimits, Target, is_public, parse_target
from state.crypto import ed25519
from tests.onion_server import V4Server, onion_to_server, read_v4_answer, v4_request


class Path3:
    """Three nodes' onion processors relaying to each other in process, each with its own relay
    to outside servers under ``limits``."""

    def __init__(self, limits: RelayLimits, **relay: Any) -> None:
        self.keys = [ed25519.SigningKey(bytes([40 + i]) * 32) for i in range(3)]
        self.relays = [OutsideRelay(limits, **relay) for _ in self.keys]
        self.nodes = {
            bytes(key.public_key): OnionProcessor(key, self._storage, self._relay, self._known, outside=relay)
            for key, relay in zip(self.keys, self.relays, strict=True)
        }
        self.hops = [Hop(key.public_key) for key in self.keys]

    def _known(self, key: bytes) -> bool:
        return key in self.nodes

    async def _storage(self, request: bytes) -> tuple[int, Any]:
        raise AssertionError("no storage request in these tests")

    async def _relay(self, key: bytes, body: bytes) -> Answer:
        return await self.nodes[key].handle(body)

    async def send(self, body: bytes) -> Answer:
        return await self.nodes[self.hops[0].ed25519].handle(body)

    def counts(self) -> tuple[int, dict[str, int], dict[str, int]]:
        """The exit hop's counters (the guard and the middle hop never relay to a server)."""
        assert all(r.relayed == 0 and not r.refused and not r.failed for r in self.relays[:2])
        exit_ = self.relays[2]
        return exit_.relayed, exit_.refused, exit_.failed


LOOPBACK = RelayLimits(private_targets=True)


@pytest.fixture
def server() -> Any:
    server = V4Server()
    yield server
    server.stop()


@pytest.mark.parametrize("enc_type", [AES_GCM, XCHACHA20])
async def test_a_v4_request_through_three_hops_to_a_server_and_back(server: V4Server, enc_type: str) -> None:
    path = Path3(LOOPBACK)
    request = onion_to_server(
        v4_request("POST", "/echo", b'{"text":"hi"}'),
        path.hops,
        server.x25519,
        host="127.0.0.1",
        port=server.port,
        enc_type=enc_type,
    )
    status, body, content_type = await path.send(request.body)
    assert status == 200 and content_type == "application/octet-stream"
    meta, content = read_v4_answer(request, server.x25519, body)  # not encrypted again by the node
    assert meta == {"code": 201, "headers": {"content-type": "application/json"}}
    assert json.loads(content) == {"echo": '{"text":"hi"}', "pad": ""}
    (seen,) = server.seen
    # the exit hop posted its whole decrypted layer: the server found its key in the layer's JSON
    assert seen["meta"]["host"] == "127.0.0.1" and seen["meta"]["ephemeral_key"] == request.final.public.hex()
    assert seen["request"]["endpoint"] == "/echo"
    assert path.counts() == (1, {}, {})
    # a code the server answers inside its encrypted answer is the server's, not the relay's
    missing = onion_to_server(v4_request("GET", "/nothing"), path.hops, server.x25519, host="127.0.0.1",
                              port=server.port)  # fmt: skip
    status, body, _ = await path.send(missing.body)
    assert status == 200 and read_v4_answer(missing, server.x25519, body) == (
        {"code": 404, "headers": {"content-type": "application/json"}},
        b"no such endpoint",
    )


async def test_the_servers_http_status_and_a_chunked_answer_come_back_as_they_are(server: V4Server) -> None:
    path = Path3(LOOPBACK)
    server.chunked = True
    request = onion_to_server(v4_request("POST", "/echo", b"x" * 9000), path.hops, server.x25519,
                              host="127.0.0.1", port=server.port)  # fmt: skip
    status, body, _ = await path.send(request.body)
    assert status == 200 and json.loads(read_v4_answer(request, server.x25519, body)[1])["echo"] == "x" * 9000
    # a target path the server does not serve: its 404 comes back, unencrypted, as it sent it
    wrong = onion_to_server(b"", path.hops, server.x25519, host="127.0.0.1", port=server.port,
                            target="/loki/v3/lsrpc")  # fmt: skip
    assert (await path.send(wrong.body))[:2] == (404, b"not found")
    assert path.counts() == (2, {}, {})


def sealed_refusal(request: Any, hops: list[Hop], answer: Answer) -> dict[str, Any]:
    """The exit hop's answer sealed to the client's key for that hop."""
    status, body, _ = answer
    assert status == 200
    opened = request.layers[-1].decrypt(request.enc_type, base64.b64decode(body), hops[-1].x25519)
    result: dict[str, Any] = json.loads(opened)
    return result


@pytest.mark.parametrize(
    "change",
    [
        {"target": "/oxen/v4/lsrpc?x=1"},
        {"target": "/room/abc/messages"},
        {"target": "/oxen/v4/lsrpcx"},
        {"target": "oxen/v4/lsrpc"},
        {"protocol": "ftp"},
        {"port": 0},
        {"port": "443"},
        {"host": ""},
        {"host": "user@127.0.0.1"},
        {"host": 12},
    ],
)
async def test_a_target_the_storage_server_would_not_relay_to_is_an_invalid_url(
    server: V4Server, change: dict[str, Any]
) -> None:
    path = Path3(LOOPBACK)
    request = onion_to_server(
        b"x", path.hops, server.x25519, host="127.0.0.1", port=server.port, extra=change
    )
    answer = await path.send(request.body)
    assert sealed_refusal(request, path.hops, answer) == {"status": 400, "body": "Invalid url"}
    assert server.seen == [] and path.counts() == (0, {"invalid_url": 1}, {})


async def test_a_processor_without_a_relay_answers_invalid_url(server: V4Server) -> None:
    key = ed25519.SigningKey(b"\x61" * 32)

    async def unused(*args: Any) -> Any:
        raise AssertionError("not called")

    alone = OnionProcessor(key, unused, unused, lambda k: False)
    hops = [Hop(key.public_key)]
    request = onion_to_server(b"x", hops, server.x25519, host="127.0.0.1", port=server.port)
    assert sealed_refusal(request, hops, await alone.handle(request.body)) == {
        "status": 400,
        "body": "Invalid url",
    }
    assert server.seen == []


async def test_non_public_targets_are_refused_unless_the_setting_allows_them(server: V4Server) -> None:
    path = Path3(RelayLimits())
    request = onion_to_server(v4_request("POST", "/echo", b"a"), path.hops, server.x25519, host="127.0.0.1",
                              port=server.port)  # fmt: skip
    assert (await path.send(request.body))[:2] == (
        403,
        b"Forbidden target: 127.0.0.1 is not a public address",
    )
    assert server.seen == [] and path.counts() == (0, {"non_public": 1}, {})

    # a name is resolved first and every address it resolves to is checked: one private address
    # among public ones is enough to refuse
    async def mixed(host: str, port: int) -> list[str]:
        assert host == "sogs.example"
        return ["93.184.216.34", "10.1.2.3"]

    path = Path3(RelayLimits(), resolver=mixed)
    request = onion_to_server(b"x", path.hops, server.x25519, host="sogs.example", port=server.port)
    assert (await path.send(request.body))[0] == 403
    assert path.counts() == (0, {"non_public": 1}, {})

    # allowed: the connection goes to the address that was checked (the name is not resolved again),
    # and the server is asked for the name the layer gave
    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    path = Path3(LOOPBACK, resolver=loopback)
    request = onion_to_server(v4_request("POST", "/echo", b"b"), path.hops, server.x25519,
                              host="sogs.invalid", port=server.port)  # fmt: skip
    status, body, _ = await path.send(request.body)
    assert status == 200 and json.loads(read_v4_answer(request, server.x25519, body)[1])["echo"] == "b"
    assert path.counts() == (1, {}, {})


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("not an address", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_an_answer_over_the_size_limit_is_refused(server: V4Server) -> None:
    limits = RelayLimits(max_response=4096, private_targets=True)
    for chunked in (False, True):  # announced by content-length, or found while reading chunks
        server.chunked = chunked
        server.padding = 5000
        path = Path3(limits)
        request = onion_to_server(v4_request("POST", "/echo", b"big"), path.hops, server.x25519,
                                  host="127.0.0.1", port=server.port)  # fmt: skip
        status, body, _ = await path.send(request.body)
        assert (status, body) == (
            502,
            f"http://127.0.0.1:{server.port}/oxen/v4/lsrpc: Response too large (> 4096 bytes)".encode(),
        )
        assert path.counts() == (0, {}, {"too_large": 1})
        server.padding = 3000  # under the limit: passed back
        request = onion_to_server(v4_request("POST", "/echo", b"ok"), path.hops, server.x25519,
                                  host="127.0.0.1", port=server.port)  # fmt: skip
        assert (await path.send(request.body))[0] == 200
        assert path.counts() == (1, {}, {"too_large": 1})


async def test_a_server_that_does_not_answer_in_time_or_at_all(server: V4Server) -> None:
    server.delay = 2.0
    path = Path3(RelayLimits(timeout=0.5, private_targets=True))
    request = onion_to_server(v4_request("POST", "/echo", b"slow"), path.hops, server.x25519,
                              host="127.0.0.1", port=server.port)  # fmt: skip
    status, body, _ = await path.send(request.body)
    assert (status, body) == (
        504,
        f"http://127.0.0.1:{server.port}/oxen/v4/lsrpc: no answer within 0.5 s".encode(),
    )
    assert path.counts() == (0, {}, {"timeout": 1})
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    request = onion_to_server(b"x", path.hops, server.x25519, host="127.0.0.1", port=closed)
    status, body, _ = await path.send(request.body)
    assert status == 502 and body.startswith(
        f"http://127.0.0.1:{closed}/oxen/v4/lsrpc: cannot connect".encode()
    )
    assert path.counts() == (0, {}, {"timeout": 1, "connect": 1})
    # an https target whose server does not speak TLS: the handshake fails
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_in_plain_text() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_in_plain_text, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    request = onion_to_server(b"x", path.hops, server.x25519, host="127.0.0.1", port=port, protocol="https")
    status, body, _ = await path.send(request.body)
    thread.join(timeout=10)
    listener.close()
    assert status == 502 and body.startswith(f"https://127.0.0.1:{port}/oxen/v4/lsrpc: TLS failed".encode())
    assert path.counts() == (0, {}, {"timeout": 1, "connect": 1, "tls": 1})


def test_https_targets_are_verified() -> None:
    """Chain and host name, TLS 1.2 at least, as the storage server's client (verification on)."""
    context = OutsideRelay().ssl_context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_targets_and_their_urls() -> None:
    meta = {"host": "open.getsession.org", "target": "/oxen/v4/lsrpc"}
    assert parse_target(meta) == Target("https", "open.getsession.org", 443, "/oxen/v4/lsrpc")
    assert parse_target(meta).url == "https://open.getsession.org/oxen/v4/lsrpc"
    assert (
        parse_target({**meta, "protocol": "http", "port": 80}).url
        == "http://open.getsession.org/oxen/v4/lsrpc"
    )
    # the storage server's default port is 443 whatever the protocol
    assert parse_target({**meta, "protocol": "http"}).url == "http://open.getsession.org:443/oxen/v4/lsrpc"
    assert parse_target({**meta, "host": "::1", "port": 8443}).url == "https://[::1]:8443/oxen/v4/lsrpc"
    assert parse_target({**meta, "host": "[::1]"}).bare_host == "::1"


def test_onion_settings() -> None:
    defaults = NodeConfig()
    assert (defaults.onion_relay_timeout, defaults.onion_relay_max_response) == (25.0, 16 * 1024 * 1024)
    assert defaults.onion_relay_private_targets is False
    config = parse_config(
        "[onion]\nrelay_timeout = 5\nrelay_max_response = 1000\nrelay_private_targets = true\n"
    )
    assert (
        config.onion_relay_timeout,
        config.onion_relay_max_response,
        config.onion_relay_private_targets,
    ) == (
        5.0,
        1000,
        True,
    )
    assert parse_config(render_config(config)) == config
    for bad, message in (
        (
            "relay_timeout = 30",
            "config.toml: onion.relay_timeout must be below 30 seconds (what a hop waits for the next)",
        ),
        ("relay_timeout = 0", "config.toml: onion.relay_timeout must be a number of seconds above 0"),
        ("relay_max_response = -1", "config.toml: onion.relay_max_response must be a positive integer"),
        ("relay_private_targets = 1", "config.toml: onion.relay_private_targets must be true or false"),
        ("relay_anything = 1", "config.toml: unknown setting onion.relay_anything"),
    ):
        with pytest.raises(ChainError) as caught:
            parse_config(f"[onion]\n{bad}\n")
        assert str(caught.value) == message
