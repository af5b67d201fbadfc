"""The storage port: its certificate (made as the storage server makes its own, kept in the home),
its HTTPS routes, the RPC port no longer serving them, and what a handshake that fails costs."""

from __future__ import annotations

import base64
import datetime
import functools
import json
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from appchain.client.http import ServerError, post
from appchain.home.chain import ChainError
from appchain.home.home import Home
from appchain.home.safefile import UnsafeTarget, check_target
from appchain.home.tls import client_context, make_certificate
from appchain.messaging.http import ConnectionPool
from appchain.node.node import Node
from appchain.rpc.server import RpcLimits
from appchain.rpc.storage import StorageServer
from tests.conftest import MakeHome
from tests.test_boundaries import parse_answer, serving
from tests.test_operator_tools import APPCHAIN, one_node

# -- the certificate -------------------------------------------------------------------------------


def test_the_certificate_is_made_as_the_storage_server_makes_its_own() -> None:
    now = datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC)
    cert_pem, key_pem = make_certificate(now)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.version is x509.Version.v3 and cert.serial_number == 1
    assert cert.subject.rfc4514_string() == "O=Oxen,CN=localhost,C=AU"  # RFC 4514 lists it reversed
    assert [a.oid._name for a in cert.subject] == ["countryName", "commonName", "organizationName"]
    assert cert.issuer == cert.subject
    assert cert.not_valid_before_utc == now
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=10_000)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048 and key.public_numbers().e == 65537
    assert [e.oid for e in cert.extensions] == [x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER]
    key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())  # self-signed
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, not encrypted


def test_init_makes_the_pair_keeps_an_existing_one_and_an_older_home_gets_one(make_home: MakeHome) -> None:
    home = make_home()
    assert home.cert_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert home.tls_key_path.stat().st_mode & 0o777 == 0o600
    before = home.cert_path.read_bytes(), home.tls_key_path.read_bytes()
    assert home.ensure_certificate() is False
    assert (home.cert_path.read_bytes(), home.tls_key_path.read_bytes()) == before
    assert isinstance(home.storage_tls(), ssl.SSLContext)
    # a home made before the storage port served HTTPS: the next start makes the pair
    home.cert_path.unlink()
    home.tls_key_path.unlink()
    assert home.ensure_certificate() is True and home.cert_path.read_bytes() != before[0]
    home.storage_tls()


def test_init_keeps_a_pair_the_folder_already_holds(tmp_path: Path, devnet_dir: Path) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    cert, key = make_certificate()
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    home, _ = Home.init(folder, devnet_dir / "genesis.json")
    assert home.cert_path.read_bytes() == cert and home.tls_key_path.read_bytes() == key


def test_half_a_pair_or_a_damaged_one_is_one_line_naming_the_file(make_home: MakeHome) -> None:
    home = make_home()
    home.tls_key_path.unlink()
    with pytest.raises(ChainError, match=r"key\.pem is missing beside .*cert\.pem: restore it, or remove"):
        home.ensure_certificate()
    with pytest.raises(ChainError, match=r"key\.pem not found"):
        home.storage_tls()
    other = make_home()
    other.cert_path.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    with pytest.raises(ChainError, match=r"cert\.pem: not a PEM certificate \(remove it and key\.pem"):
        other.storage_tls()
    third = make_home()
    third.cert_path.write_bytes(make_certificate()[0])  # another pair's certificate
    with pytest.raises(ChainError, match=r"key\.pem: not the private key of cert\.pem") as caught:
        third.storage_tls()
    assert "\n" not in str(caught.value)


def test_no_command_writes_over_the_pair(make_home: MakeHome) -> None:
    home = make_home()
    for path, what in ((home.cert_path, "TLS certificate"), (home.tls_key_path, "TLS key")):
        with pytest.raises(UnsafeTarget, match=f"its storage port's {what}"):
            check_target(path, force=True)


def test_a_damaged_certificate_stops_the_start_with_one_line(tmp_path: Path) -> None:
    home = one_node(tmp_path / "net")
    home.cert_path.write_text("garbage\n")
    started = subprocess.run(
        [*APPCHAIN, "start", "--home", str(home.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 1 and "Traceback" not in started.stderr, started.stderr
    assert started.stderr.splitlines()[-1] == (
        f"error: {home.cert_path}: not a PEM certificate (remove it and key.pem to make a new pair)"
    )


def test_a_home_without_the_pair_gets_it_at_start_and_says_so(tmp_path: Path) -> None:
    home = one_node(tmp_path / "net")
    home.cert_path.unlink()
    home.tls_key_path.unlink()
    process = subprocess.Popen(
        [*APPCHAIN, "start", "--home", str(home.path)], stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "node started" in line:
                break
            if "made the storage port's TLS certificate" in line:
                assert str(home.cert_path) in line
                break
        else:
            raise AssertionError("the node stopped without saying it made its certificate")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert home.cert_path.is_file() and home.tls_key_path.stat().st_mode & 0o777 == 0o600


# -- the port --------------------------------------------------------------------------------------


@pytest.fixture
def node(offline_node: Node) -> Node:
    return offline_node


async def test_the_storage_port_serves_the_storage_servers_routes_over_https(node: Node) -> None:
    async with serving(node) as served:
        info = await served.post("/storage_rpc/v1", b'{"method": "info", "params": {}}')
        assert info[0] == 200 and json.loads(info[1])["version"] == [2, 8, 0]
        ping = await served.http(
            b"POST /ping_test/v1 HTTP/1.1\r\nhost: n\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            storage=True,
        )
        key = base64.b64encode(bytes(node.core.node_key)).decode()
        assert parse_answer(ping) == (200, b"") and f"X-Oxen-Snode-Pubkey: {key}\r\n".encode() in ping
        stats = await served.http(
            b"GET /get_stats/v1 HTTP/1.1\r\nhost: n\r\nconnection: close\r\n\r\n", storage=True
        )
        assert parse_answer(stats) == (200, b'{"version":"2.8.0"}')
        for method, path in (
            ("GET", "/nope"),
            ("POST", "/json_rpc"),
            ("GET", "/metrics"),
            ("GET", "/storage_rpc/v1"),
        ):
            raw = f"{method} {path} HTTP/1.1\r\nhost: n\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            answer = await served.http(raw.encode(), storage=True)
            assert parse_answer(answer) == (404, f"{method} {path} Not Found".encode()), answer
        # the RPC port serves neither the storage RPC nor onion requests, and says where they are
        for path in ("/storage_rpc/v1", "/onion_req/v2", "/storage_cc/v1"):
            raw = f"POST {path} HTTP/1.1\r\nhost: n\r\ncontent-length: 2\r\n\r\n{{}}".encode()
            status, text = parse_answer(await served.http(raw))
            port = node.config.served_storage_port
            assert (status, text) == (
                404,
                f"not found: {path} is served over HTTPS on the storage port ({port}), not here\n".encode(),
            )
        # the certificate served is the home's
        stream = await trio.open_tcp_stream("127.0.0.1", served.storage_port)
        async with trio.SSLStream(stream, client_context(), https_compatible=True) as tls:
            await tls.do_handshake()
            der = tls.getpeercert(binary_form=True)
        home_cert = x509.load_pem_x509_certificate(node.home.cert_path.read_bytes())
        assert der == home_cert.public_bytes(serialization.Encoding.DER)
        assert node.faults.counts == {}


async def test_plain_http_or_garbage_at_the_tls_port_costs_one_connection_and_is_counted(node: Node) -> None:
    async with serving(node) as served:
        for hello in (
            b"POST /storage_rpc/v1 HTTP/1.1\r\nhost: n\r\ncontent-length: 0\r\n\r\n",
            b"\x16\x03\x01\xff\xff" + b"x" * 64,
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", served.storage_port)
            async with stream:
                await stream.send_all(hello)
                with trio.fail_after(10):
                    while await stream.receive_some(65536):
                        pass  # the server closes it (OpenSSL may send an alert first)
        metrics = parse_answer(await served.http(b"GET /metrics HTTP/1.1\r\nhost: n\r\n\r\n"))[1].decode()
        assert 'appchain_storage_refused_total{reason="tls_handshake"} 2.0' in metrics
        info = await served.post("/storage_rpc/v1", b'{"method": "info", "params": {}}')
        assert info[0] == 200  # the port goes on serving
        assert node.faults.counts == {}


async def test_a_node_reaches_another_nodes_storage_port_over_tls_and_keeps_the_connection(
    node: Node,
) -> None:
    async with serving(node) as served:
        pool = ConnectionPool(client_context())
        for _ in range(3):
            status, answer = await pool.post(
                "127.0.0.1", served.storage_port, "/storage_rpc/v1", b'{"method": "info", "params": {}}'
            )
            assert status == 200 and b'"version"' in answer
        assert len(pool._idle[("127.0.0.1", served.storage_port)]) == 1  # one connection, kept
        plain = ConnectionPool()  # a client without TLS gets no answer it could take for one
        with pytest.raises(Exception, match=r"127\.0\.0\.1"):
            await plain.post(
                "127.0.0.1",
                served.storage_port,
                "/storage_rpc/v1",
                b'{"method": "info", "params": {}}',
                timeout=5,
            )


async def test_the_clients_post_skips_the_check_only_when_told(node: Node) -> None:
    async with serving(node) as served:
        url = f"https://127.0.0.1:{served.storage_port}/storage_rpc/v1"
        answer = await trio.to_thread.run_sync(
            lambda: post(url, b'{"method": "info", "params": {}}', timeout=10, verify=False)
        )
        assert answer.status == 200
        with pytest.raises(
            ServerError,
            match=r"^https://127\.0\.0\.1:\d+/storage_rpc/v1: no TLS connection \(CERTIFICATE_VERIFY_FAILED\)$",
        ):
            await trio.to_thread.run_sync(lambda: post(url, b"{}", timeout=10))


async def test_a_tls13_client_with_nagle_on_is_not_held_by_a_delayed_ack(node: Node) -> None:
    """A new connection's request, sent right after the handshake by a client that leaves Nagle's
    algorithm on, is answered without waiting out the server's delayed ACK (40 ms on Linux): the
    server acknowledges the handshake's last bytes at once (``TCP_QUICKACK``)."""
    context = client_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3  # the client speaks last in the handshake
    request = b"POST /storage_rpc/v1 HTTP/1.1\r\nhost: n\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"

    def ask(port: int) -> float:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            tls = context.wrap_socket(plain)  # no TCP_NODELAY: Nagle on
            started = time.perf_counter()
            tls.sendall(request[:40])  # two writes: the second waits for the first's ACK
            tls.sendall(request[40:])
            while tls.recv(65536):
                pass
            return time.perf_counter() - started

    async with serving(node) as served:
        times = sorted([await trio.to_thread.run_sync(ask, served.storage_port) for _ in range(7)])
    assert times[3] < 0.02, times  # the median: ~1 ms, where a delayed ACK costs 40


async def test_a_connection_over_the_limits_is_closed_unanswered_at_the_tls_port(node: Node) -> None:
    """The RPC port answers 503 in words; the TLS port has no handshake to spend on one, and plain
    words to a TLS client would be garbage: it closes the connection, counted."""
    server = StorageServer(node, RpcLimits(max_open_connections=1), tls=node.storage_tls)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        held = trio.SSLStream(
            await trio.open_tcp_stream("127.0.0.1", port), client_context(), https_compatible=True
        )
        await held.do_handshake()
        extra = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(10):
            assert await extra.receive_some(65536) == b""  # closed, nothing said
        assert server.refused == {"max_open_connections": 1}
        await held.send_all(b"GET /get_stats/v1 HTTP/1.1\r\nhost: n\r\nconnection: close\r\n\r\n")
        assert (await held.receive_some(65536)).startswith(b"HTTP/1.1 200 ")  # the one inside is served
        await held.aclose()
        await extra.aclose()
        nursery.cancel_scope.cancel()
