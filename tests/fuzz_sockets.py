"""Fuzzing at the socket: raw bytes to a running node's real ports, over real TCP connections.

The decoder targets of :mod:`tests.fuzz` call functions; these reach a node the way an attacker
does. A real :class:`~appchain.node.node.Node` (a home of the fuzz devnet with a 24-block chain,
started by :meth:`Node.run`, every listener on 127.0.0.1) runs in a thread of the fuzzing
process, so the fuzzer's coverage sees its code. Each input opens connections to one of its ports:

================  ==================================================================================
target            what one input sends
================  ==================================================================================
``public_port``   one to three HTTP requests on one connection: any method, target, version and
                  headers (lengths that lie, chunked bodies), and bodies built from every JSON-RPC
                  method's parameters, the storage RPC's fields and onion layers (some encrypted
                  to the node's key), filled with hostile values: integers beyond 64 bits,
                  ``1e400``, ``NaN``, lone surrogates, deep nesting, wrong types, huge batches; or
                  the input's bytes as they are
``admin_port``    lines of JSON-RPC to the operator's endpoint, built the same way from its
                  methods, or the raw bytes
``p2p_port``      raw bytes before any handshake, or after a valid one (under a fresh node key):
                  raw bytes, or frames holding the input's bytes or a consensus message from it
``storage_port``  the HTTPS storage port: the input's bytes after a valid TLS handshake, or
                  where the handshake belongs, or HTTP requests built as for ``public_port``
================  ==================================================================================

After every input the target asks ``get_info`` on a new connection and the node must answer it;
the node must not have caught anything at a boundary (a 500, a -32603 or a dropped connection
would mean a handler met an exception it did not expect: a bug, reported as a crash with the
node's log), its thread must be alive, and the chain (tip, root, final height) unchanged.

Inputs are read with :class:`Reader`, a few lines of our own over the input's bytes, so that a
seed is readable: its first byte picks the mode (``0``: the rest as it is).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import io
import json
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import blake3
import trio

NOW_GUARD = 10.0
"""Seconds an input's connections may take before the target calls the node stuck."""


# -- a node in a thread ----------------------------------------------------------------------------


@dataclasses.dataclass
class Served:
    """The node, its ports, and its thread."""

    node: Any
    rpc_port: int
    admin_port: int
    p2p_port: int
    storage_port: int
    thread: threading.Thread
    token: trio.lowlevel.TrioToken
    cancel: Callable[[], None]
    log: io.StringIO
    folder: Path
    failure: list[BaseException]

    def stop(self) -> None:
        """Cancel the node's nursery (it closes its database) and wait for its thread."""
        if self.thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self.cancel, trio_token=self.token)
            self.thread.join(30)
        shutil.rmtree(self.folder, ignore_errors=True)

    def tip(self) -> tuple[int, bytes, bytes, int]:
        ledger = self.node.ledger
        return ledger.height, ledger.state.block_hash, ledger.state.root, ledger.final_height

    def caught(self) -> dict[str, int]:
        return {**self.node.faults.counts, "p2p": self.node.host.errors}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@cache
def served() -> Served:
    """Start the node once per process (its home in a fresh folder)."""
    from appchain.home.genesis_files import write_devnet
    from appchain.home.home import Home, NodeConfig
    from appchain.node.log import Logger
    from appchain.node.node import Node
    from state.encoding import decode_json
    from tests.conftest import extend

    folder = Path(tempfile.mkdtemp(prefix="appchain-fuzz-sockets-"))
    write_devnet(folder / "genesis.json", nodes=12, seed="fuzz-sockets", users=6)
    p2p, admin, rpc, storage = _free_ports(4)
    config = NodeConfig(
        snapshot_interval=16,
        sync_writes=False,
        p2p_listen=f"127.0.0.1:{p2p}",
        admin_listen=f"127.0.0.1:{admin}",
        rpc_listen=f"127.0.0.1:{rpc}",
        storage_listen=f"127.0.0.1:{storage}",
    )
    home, _ = Home.init(folder / "home", folder / "genesis.json", config)
    dev_node = decode_json((folder / "keys" / "nodes.json").read_bytes())["nodes"][0]
    home.write_node_keys(bytes.fromhex(dev_node["node_seed"]), bytes.fromhex(dev_node["bls_seed"]))
    with home.open_chain() as chain:
        extend(chain, home, 24, per_block=8)
    log = io.StringIO()
    started = threading.Event()
    holder: dict[str, Any] = {}
    failure: list[BaseException] = []

    async def main() -> None:
        with home.open_chain() as chain:
            node = Node(home, home.load_config(), chain, Logger("info", log))
            holder["node"] = node
            try:
                async with trio.open_nursery() as nursery:
                    holder["cancel"] = nursery.cancel_scope.cancel
                    holder["token"] = trio.lowlevel.current_trio_token()
                    await nursery.start(node.run)
                    started.set()
            finally:
                node.message_store.close()
                node.journal.close()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            failure.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=run, name="fuzzed-node", daemon=True)
    thread.start()
    started.wait(120)
    if failure or "node" not in holder:
        raise RuntimeError(f"the fuzzed node did not start: {failure!r}\n{log.getvalue()[-3000:]}")
    result = Served(
        holder["node"],
        rpc,
        admin,
        p2p,
        storage,
        thread,
        holder["token"],
        holder["cancel"],
        log,
        folder,
        failure,
    )
    atexit.register(result.stop)
    return result


# -- reading an input --------------------------------------------------------------------------


class Reader:
    """Reads choices from an input's bytes; past the end, every choice is the first."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def number(self, below: int) -> int:
        return self.byte() % below if below > 1 else 0

    def pick(self, options: list[Any]) -> Any:
        return options[self.number(len(options))]

    def take(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        self.at += len(chunk)
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self.data))


HOSTILE_NUMBERS = [
    "0", "1", "-1", "4", "9223372036854775807", "9223372036854775808", "18446744073709551615",
    "18446744073709551616", "-18446744073709551616", "1" + "0" * 40, "1e400", "-1e400", "1e308",
    "1.5", "-0.0", "NaN", "Infinity", "-Infinity", "0x10", "1" * 5000,
]  # fmt: skip
HOSTILE_STRINGS = [
    '""', '"\\ud800"', '"\\udfff\\ud800"', '"a\\u0000b"', '"' + "00" * 32 + '"', '"' + "ff" * 33 + '"',
    '"05' + "11" * 32 + '"', '"all"', '"' + "A" * 88 + '"', '"' + "x" * 70_000 + '"', '"\\n"',
    '"\xed\xa0\x80"', '"aGVsbG8="', '"' + "=" * 5 + '"', '"\\\\"',
]  # fmt: skip
HOSTILE_SHAPES = [
    "null", "true", "false", "[]", "{}", "[1, 2]", '{"a": 1, "a": 2}', "[" * 63 + "]" * 63,
    "[" * 65 + "]" * 65, "[" * 5000, '{"x":' * 70 + "1" + "}" * 70,
]  # fmt: skip


def hostile_value(reader: Reader) -> str:
    kind = reader.number(3)
    pool = (HOSTILE_NUMBERS, HOSTILE_STRINGS, HOSTILE_SHAPES)[kind]
    return str(reader.pick(pool))


def _field_names(kind: Any) -> list[str]:
    import msgspec

    return [field.encode_name for field in msgspec.inspect.type_info(kind).fields]


@cache
def _rpc_methods() -> dict[str, list[str]]:
    from appchain.rpc import methods as rpc

    return {name: _field_names(method.params) for name, method in rpc.METHODS.items()}


@cache
def _admin_methods() -> dict[str, list[str]]:
    from appchain.node import admin

    return {name: _field_names(method.params) for name, method in admin.METHODS.items()}


STORAGE_METHODS = {
    "store": ["pubkey", "timestamp", "ttl", "data", "namespace", "signature", "sig_timestamp", "pubkey_ed25519"],
    "retrieve": ["pubkey", "timestamp", "signature", "namespace", "last_hash", "max_count", "max_size"],
    "delete": ["pubkey", "messages", "signature", "pubkey_ed25519", "subaccount", "subaccount_sig"],
    "delete_all": ["pubkey", "timestamp", "signature", "namespace"],
    "delete_before": ["pubkey", "before", "signature", "namespace"],
    "expire": ["pubkey", "messages", "expiry", "signature", "shorten", "extend"],
    "expire_all": ["pubkey", "expiry", "signature", "namespace"],
    "get_expiries": ["pubkey", "messages", "timestamp", "signature"],
    "get_swarm": ["pubkey"],
    "oxend_request": ["endpoint", "params"],
    "info": [],
    "batch": ["requests"],
    "sequence": ["requests"],
    "ifelse": ["if", "then", "else"],
    "revoke_subaccount": ["pubkey", "revoke", "timestamp", "signature"],
    "unrevoke_subaccount": ["pubkey", "unrevoke", "timestamp", "signature"],
}  # fmt: skip


def _object(reader: Reader, fields: list[str]) -> str:
    chosen = [name for name in fields if reader.number(3)] + (["unknown"] if reader.number(8) == 0 else [])
    parts = [f'"{name}": {hostile_value(reader)}' for name in chosen]
    return "{" + ", ".join(parts) + "}"


def json_rpc_call(reader: Reader, methods: dict[str, list[str]]) -> str:
    names = sorted(methods)
    name = reader.pick([*names, "no_such_method"])
    params = _object(reader, methods.get(name, [])) if reader.number(6) else hostile_value(reader)
    call_id = reader.pick(["1", '"x"', "null", "1e400", '"\\ud800"', "[1]", "1.5"])
    jsonrpc = reader.pick(['"2.0"', '"2.0"', '"1.0"', "2"])
    return f'{{"jsonrpc": {jsonrpc}, "id": {call_id}, "method": "{name}", "params": {params}}}'


def json_rpc_body(reader: Reader) -> bytes:
    if reader.number(4) == 0:
        count = reader.pick([0, 1, 2, 50, 51, 500])
        calls = [json_rpc_call(reader, _rpc_methods()) for _ in range(min(count, 4))]
        calls += calls[:1] * max(0, count - len(calls))
        return ("[" + ", ".join(calls) + "]").encode()
    return json_rpc_call(reader, _rpc_methods()).encode()


def storage_body(reader: Reader) -> bytes:
    name = reader.pick([*sorted(STORAGE_METHODS), "nope"])
    params = _object(reader, STORAGE_METHODS.get(name, []))
    return f'{{"method": "{name}", "params": {params}}}'.encode()


def onion_body(reader: Reader, node_key: bytes) -> bytes:
    from appchain.messaging.onion import AES_GCM, XCHACHA20, Channel, Hop

    meta = _object(reader, ["ephemeral_key", "enc_type", "hop_no", "headers", "destination", "host"]).encode()
    blob = reader.take(reader.number(64))
    if reader.number(2):  # a layer this node decrypts, holding a storage request or hostile JSON
        inner = storage_body(reader) if reader.number(2) else blob
        inner_meta = _object(reader, ["headers", "destination", "ephemeral_key", "enc_type", "host", "json"])
        layer = len(inner).to_bytes(4, "little") + inner + inner_meta.encode()
        channel = Channel.ephemeral()
        enc_type = reader.pick([XCHACHA20, AES_GCM])
        blob = channel.encrypt(enc_type, layer, Hop(node_key).x25519)
        meta = json.dumps({"ephemeral_key": channel.public.hex(), "enc_type": enc_type}).encode()
    size = len(blob) if reader.number(8) else reader.pick([0, len(blob) + 1, 2**32 - 1])
    return size.to_bytes(4, "little") + blob + meta


PATHS = ["/json_rpc", "/storage_rpc/v1", "/onion_req/v2", "/storage_cc/v1", "/metrics", "/", "/index.html"]
ODD_PATHS = ["*", "//", "/json_rpc?x=1", "/%00", "http://x/json_rpc", "/" + "a" * 9000]
METHODS = ["POST", "POST", "GET", "HEAD", "PUT", "OPTIONS", "DELETE", "CONNECT", "TRACE", "P\x00ST"]
HEADER_NAMES = [
    "content-type", "connection", "expect", "x-node-key", "x-node-signature", "transfer-encoding",
    "content-length", "host", "x-" + "h" * 20_000,
]  # fmt: skip
HEADER_VALUES = [
    "application/json", "close", "keep-alive", "100-continue", "chunked", "gzip, chunked", "-1",
    "18446744073709551616", "0", "11" * 32, "=" * 88, "\x00", "a" * 20_000,
]  # fmt: skip


def http_request(reader: Reader, node_key: bytes) -> bytes:
    method = reader.pick(METHODS)
    path = reader.pick(PATHS) if reader.number(6) else reader.pick(ODD_PATHS)
    kind = reader.number(4)
    if kind == 0:
        body = json_rpc_body(reader)
    elif kind == 1:
        body = storage_body(reader)
    elif kind == 2:
        body = onion_body(reader, node_key)
    else:
        body = reader.take(reader.number(200))
    version = reader.pick(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x"])
    headers = [("host", "node")]
    for _ in range(reader.number(4)):
        headers.append((reader.pick(HEADER_NAMES), reader.pick(HEADER_VALUES)))
    length = reader.number(8)
    chunked = any(name == "transfer-encoding" for name, _ in headers)
    if chunked:
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if length else body
    elif length:  # else: none, or a lie (the other headers may hold one)
        declared = len(body) if length > 2 else reader.pick([len(body) + 5, max(0, len(body) - 3)])
        headers.append(("content-length", str(declared)))
    head = f"{method} {path} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    return head.encode("utf-8", "surrogateescape") + body


# -- talking to the node -----------------------------------------------------------------------


def exchange(port: int, data: bytes, *, keep_reading: bool = True) -> bytes:
    """Send ``data`` on a new connection, close our side, and read what the node answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=NOW_GUARD) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except TimeoutError:
            raise
        except OSError:  # it answered and closed before taking all of it: its right
            pass
        answer = b""
        with contextlib.suppress(ConnectionError):
            while keep_reading and (chunk := sock.recv(65536)):
                answer += chunk
        return answer


GET_INFO = b'{"jsonrpc": "2.0", "id": 1, "method": "get_info"}'


def _strict_json(data: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"the node wrote {name}, which is not JSON")

    return json.loads(data, parse_constant=refuse)


def check_answers(answer: bytes) -> None:
    """Whatever the node wrote back parses as HTTP, and every JSON body in it is valid JSON."""
    import h11

    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "n")]))
    client.send(h11.EndOfMessage())
    client.receive_data(answer)
    client.receive_data(b"")
    kind, body = b"", b""
    while True:
        try:
            event = client.next_event()
        except h11.RemoteProtocolError:  # several answers (pipelined): this client read one
            return
        if isinstance(event, h11.Response):
            if event.status_code == 500:  # the node's own failure (501, 503, 505 are refusals)
                raise AssertionError(f"the node answered {event.status_code}: {answer[:300]!r}")
            kind = dict(event.headers).get(b"content-type", b"")
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            if kind.startswith(b"application/json") and body:
                _strict_json(body)
            return
        else:
            return


def assert_alive(node: Served, before: tuple[int, bytes, bytes, int], caught: dict[str, int]) -> None:
    """The node answers ``get_info``, caught nothing at a boundary, and its chain is as it was."""
    if node.failure or not node.thread.is_alive():
        raise AssertionError(f"the node's process ended: {node.failure!r}\n{node.log.getvalue()[-4000:]}")
    deadline_ok = _drained(node)
    head = f"POST /json_rpc HTTP/1.1\r\nhost: n\r\ncontent-length: {len(GET_INFO)}\r\n\r\n".encode()
    answer = exchange(node.rpc_port, head + GET_INFO)
    _, _, body = answer.partition(b"\r\n\r\n")
    if not answer.startswith(b"HTTP/1.1 200") or "result" not in _strict_json(body):
        raise AssertionError(f"get_info was not answered: {answer[:300]!r}")
    if node.caught() != caught:
        raise AssertionError(
            f"a handler met an exception it did not expect: {node.caught()} (was {caught})\n"
            + node.log.getvalue()[-6000:]
        )
    if node.tip() != before:
        raise AssertionError(f"the chain changed: {before} -> {node.tip()}")
    if not deadline_ok:
        raise AssertionError("the node's inbox did not drain within its guard time")


def _drained(node: Served) -> bool:
    """Wait until the frames an input sent were handled (their exceptions are this input's)."""
    import time

    deadline = time.monotonic() + NOW_GUARD
    while node.node.inbox and time.monotonic() < deadline:
        time.sleep(0.001)
    return not node.node.inbox


# -- the targets -------------------------------------------------------------------------------


def public_port(data: bytes) -> None:
    node = served()
    before, caught = node.tip(), node.caught()
    reader = Reader(data)
    if reader.number(4) == 0:
        payload = reader.rest()
    else:
        node_key = bytes(node.node.core.node_key)
        payload = b"".join(http_request(reader, node_key) for _ in range(1 + reader.number(3)))
    check_answers(exchange(node.rpc_port, payload))
    assert_alive(node, before, caught)


def admin_port(data: bytes) -> None:
    node = served()
    before, caught = node.tip(), node.caught()
    reader = Reader(data)
    if reader.number(4) == 0:
        payload = reader.rest()
    else:
        lines = [json_rpc_call(reader, _admin_methods()) for _ in range(1 + reader.number(3))]
        payload = "\n".join(lines).encode("utf-8", "surrogateescape") + b"\n"
    for line in exchange(node.admin_port, payload).splitlines():
        _strict_json(line)
    assert_alive(node, before, caught)


def storage_port(data: bytes) -> None:
    """The storage port (HTTPS): the input's bytes over TLS (mode 0), the input's bytes where the
    TLS handshake belongs (1), or HTTP requests over TLS built as for :func:`public_port`."""
    node = served()
    before, caught = node.tip(), node.caught()
    reader = Reader(data)
    mode = reader.number(4)
    if mode == 1:
        exchange(node.storage_port, reader.rest())
    else:
        if mode == 0:
            payload = reader.rest()
        else:
            node_key = bytes(node.node.core.node_key)
            payload = b"".join(http_request(reader, node_key) for _ in range(1 + reader.number(3)))
        check_answers(trio.run(tls_exchange, node.storage_port, payload))
    assert_alive(node, before, caught)


@cache
def _client_tls() -> ssl.SSLContext:
    """As Session clients reach a service node: TLS, the self-signed certificate not checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def tls_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` over a new TLS connection, end our side (TCP FIN under the TLS stream, so
    the server sees the end of the requests), and read what the node answers."""
    with trio.fail_after(NOW_GUARD):
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        tls = trio.SSLStream(tcp, _client_tls(), https_compatible=True)
        answer = b""
        try:
            await tls.do_handshake()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await tls.send_all(data)
                await tcp.send_eof()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while chunk := await tls.receive_some(65536):
                    answer += chunk
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the node may refuse the connection (its limits): that is its right
        finally:
            await trio.aclose_forcefully(tls)
        return answer


def p2p_port(data: bytes) -> None:
    node = served()
    before, caught = node.tip(), node.caught()
    reader = Reader(data)
    mode = reader.number(4)
    if mode == 0:
        exchange(node.p2p_port, reader.rest(), keep_reading=False)
    else:
        trio.run(_after_handshake, node, reader, mode)
    assert_alive(node, before, caught)


async def _after_handshake(node: Served, reader: Reader, mode: int) -> None:
    """A valid handshake under a node key of the input's own, then raw bytes (mode 1) or frames
    (2: the input's bytes as payloads; 3: a consensus message decoded from them, re-encoded)."""
    from p2p.secure import handshake
    from state.crypto import ed25519

    identity = ed25519.SigningKey(blake3.blake3(reader.data).digest())
    chain_id = node.node.chain.genesis.chain_id
    with trio.fail_after(NOW_GUARD):
        stream = await trio.open_tcp_stream("127.0.0.1", node.p2p_port)
        async with stream:
            try:
                channel = await handshake(stream, identity, chain_id=chain_id, initiator=True)
            except Exception:
                return  # the node may refuse us (a ban from an earlier input): that is its right
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                if mode == 1:
                    await stream.send_all(reader.rest())
                else:
                    await channel.send(list(_frames(reader, mode)))
                await trio.sleep(0)


def _frames(reader: Reader, mode: int) -> Iterator[bytes]:
    from consensus.messages import decode_message
    from state.encoding import DecodeError, encode

    for _ in range(1 + reader.number(4)):
        payload = reader.take(1 + reader.number(250) * 8)
        if mode == 3:
            with contextlib.suppress(DecodeError):
                payload = encode(decode_message(payload))
        yield reader.pick([DATA_FRAME, DATA_FRAME, b"\x00", b"\x07"]) + payload


DATA_FRAME = b"\x01"


# -- seeds -----------------------------------------------------------------------------------------


def _http(path: str, body: bytes, method: str = "POST") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nhost: n\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body


def public_seeds() -> list[bytes]:
    served()
    raw = [
        _http("/json_rpc", GET_INFO),
        _http(
            "/json_rpc",
            b'{"jsonrpc": "2.0", "id": 1, "method": "get_checkpoints", "params": {"start_height": 4}}',
        ),
        _http("/json_rpc", b'[{"jsonrpc": "2.0", "id": 1, "method": "get_block", "params": {"height": 3}}]'),
        _http("/storage_rpc/v1", b'{"method": "info", "params": {}}'),
        _http("/", b"", "GET") + _http("/metrics", b"", "HEAD"),
    ]
    return [b"\x00" + request for request in raw] + [bytes([1, 5, 9, 2]) * 8, bytes(range(1, 60))]


def admin_seeds() -> list[bytes]:
    served()
    lines = [
        b'{"jsonrpc": "2.0", "id": 1, "method": "status"}\n',
        b'{"jsonrpc": "2.0", "id": 2, "method": "peers"}\n',
    ]
    return [b"\x00" + line for line in lines] + [bytes([1, 3, 7, 2, 9]) * 6]


def storage_seeds() -> list[bytes]:
    served()
    requests = [
        _http("/storage_rpc/v1", b'{"method": "info", "params": {}}'),
        _http("/get_stats/v1", b"", "GET") + _http("/ping_test/v1", b""),
        _http("/storage_rpc/v1", b'{"method": "retrieve", "params": {"pubkey": "05' + b"ab" * 32 + b'"}}'),
    ]
    return [b"\x00" + request for request in requests] + [b"\x01\x16\x03\x01garbage", bytes([2, 5, 9, 2]) * 8]


def p2p_seeds() -> list[bytes]:
    from consensus.messages import Have, ProofsRequest, SignedBlock, SyncRequest, Want
    from state.encoding import encode
    from state.hashing import blake3_256

    node = served()
    block = encode(SignedBlock(node.node.chain.store.get_block(3)))
    sync = encode(SyncRequest(2))
    digest = blake3_256(block)
    gossip = [encode(Have((digest, bytes(32)))), encode(Want((digest,))), encode(ProofsRequest())]
    return [
        b"\x00garbage",
        bytes([1]) + b"junk after the handshake",
        bytes([2, 0, 0, 1]) + sync,
        bytes([3, 0, 1, 0]) + block,
        *(bytes([3, 0, 1, 0]) + message for message in gossip),
    ]


def stop() -> None:
    """Stop the node, if this process started it."""
    if served.cache_info().currsize:
        served().stop()
        served.cache_clear()
