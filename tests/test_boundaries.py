"""No input stops a node: each request that once ended a node's process, sent over a real socket
to a node's real servers, and the boundaries that catch what no handler expected.

Every test here serves a real :class:`~appchain.node.node.Node` (the offline node of the test devnet:
its chain, its swarm layer, its metrics and its log) on 127.0.0.1 and talks to it as a client
would, over TCP. After each hostile request the node must still answer ``get_info`` with the same
chain. That the node also keeps *making blocks* afterwards is shown over a network of node
processes (``tests/test_network.py``, its hostile phase)."""

from __future__ import annotations

import functools
import io
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio

from appchain.home.boundary import Faults
from appchain.home.tls import client_context
from appchain.messaging.onion import ONION_PATH, XCHACHA20, Channel, Hop, combine
from appchain.node import admin
from appchain.node.log import Logger
from appchain.node.node import Node
from appchain.rpc import methods as rpc
from appchain.rpc.jsonrpc import Method, NoParams
from appchain.rpc.server import STORAGE_PATHS, RpcLimits, RpcServer
from appchain.rpc.storage import StorageServer
from consensus.messages import SignedBlock
from state.encoding import encode

U64_PLUS_ONE = 2**64
SURROGATE = '"\\ud800"'
"""A lone UTF-16 surrogate as JSON writes it: no Unicode text holds it."""


# -- a node served on real sockets ----------------------------------------------------------------


class Served:
    """An offline node whose public, storage (HTTPS) and admin servers listen on 127.0.0.1."""

    def __init__(self, node: Node, rpc_port: int, admin_port: int, storage_port: int) -> None:
        self.node = node
        self.rpc_port = rpc_port
        self.admin_port = admin_port
        self.storage_port = storage_port

    def log(self) -> str:
        stream = self.node.log.stream
        assert isinstance(stream, io.StringIO)
        return stream.getvalue()

    async def http(self, raw: bytes, *, storage: bool = False) -> bytes:
        """Send ``raw`` on a new connection, half-close it, and read all the node answers;
        ``storage``: to the storage port, over TLS (no half-close there: the last request of
        ``raw`` says ``connection: close``)."""
        if storage:
            tls = trio.SSLStream(
                await trio.open_tcp_stream("127.0.0.1", self.storage_port),
                client_context(),
                https_compatible=True,
            )
            async with tls:
                await tls.send_all(raw)
                return await _read_all(tls)
        stream = await trio.open_tcp_stream("127.0.0.1", self.rpc_port)
        async with stream:
            await stream.send_all(raw)
            await stream.send_eof()
            return await _read_all(stream)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST to the port that serves ``path``: the storage paths over TLS to the storage port."""
        head = (
            f"POST {path} HTTP/1.1\r\nhost: node\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        return parse_answer(await self.http(head.encode() + body, storage=path in STORAGE_PATHS))

    async def call(self, method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).encode()
        _status, answer = await self.post("/json_rpc", body)
        return strict_json(answer)

    async def admin(self, line: bytes) -> Any:
        stream = await trio.open_tcp_stream("127.0.0.1", self.admin_port)
        async with stream:
            await stream.send_all(line + b"\n")
            data = b""
            with trio.fail_after(10):
                while not data.endswith(b"\n"):
                    chunk = await stream.receive_some(65536)
                    assert chunk, "the admin endpoint closed without answering"
                    data += chunk
            return strict_json(data)

    def tip(self) -> tuple[int, bytes, int]:
        ledger = self.node.ledger
        return ledger.height, ledger.state.root, ledger.final_height

    async def still_serves(self, tip: tuple[int, bytes, int]) -> None:
        """The node answers ``get_info`` on a new connection, and its chain is as it was."""
        info = (await self.call("get_info"))["result"]
        assert info["height"] == tip[0] + 1 and info["immutable_height"] == tip[2]
        assert self.tip() == tip


async def _read_all(stream: trio.abc.Stream) -> bytes:
    data = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


def parse_answer(data: bytes) -> tuple[int, bytes]:
    """The status and body of the one HTTP answer in ``data``."""
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


def strict_json(data: bytes) -> Any:
    """Parse ``data`` as JSON the strict way: ``NaN``/``Infinity`` are no JSON."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"the node wrote {name}, which is not JSON")

    return json.loads(data, parse_constant=refuse)


@asynccontextmanager
async def serving(node: Node) -> AsyncIterator[Served]:
    node.rpc_server = server = RpcServer(node, RpcLimits())
    node.storage_server = storage = StorageServer(node, RpcLimits(), tls=node.storage_tls)
    async with trio.open_nursery() as nursery:
        ports = []
        for handler in (server.serve, functools.partial(admin._serve_connection, node), storage.serve):
            listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
            ports.append(listeners[0].socket.getsockname()[1])
        yield Served(node, *ports)
        nursery.cancel_scope.cancel()


@pytest.fixture
def node(offline_node: Node) -> Node:
    offline_node.log.threshold = 0  # the test reads every line
    return offline_node


# -- the requests that ended a node ----------------------------------------------------------------

PATHS = ["/", "/index.html", "/metrics", "/json_rpc", "/storage_rpc/v1", ONION_PATH, "/nope", "*"]


async def test_head_is_answered_with_the_headers_of_get_and_no_body_on_every_path(node: Node) -> None:
    async with serving(node) as served:
        tip = served.tip()
        for path in PATHS:
            head = f"HEAD {path} HTTP/1.1\r\nhost: node\r\n\r\n".encode()
            then = b"GET /nope HTTP/1.1\r\nhost: node\r\n\r\n"  # the same connection goes on
            answers = await served.http(head + then)
            first, _, rest = answers.partition(b"\r\n\r\n")
            assert rest.startswith(b"HTTP/1.1 404"), (path, answers[:300])  # no body came between
            status = int(first.split(b" ", 2)[1])
            expected = {"/": 200, "/index.html": 200, "/metrics": 200, "/json_rpc": 405}.get(path, 404)
            assert status == expected, (path, first)
            if status == 405:
                assert b"allow: POST" in first
            if path in ("/", "/metrics"):
                get = await served.http(
                    f"GET {path} HTTP/1.1\r\nhost: node\r\nconnection: close\r\n\r\n".encode()
                )
                length = re.search(rb"content-length: (\d+)", first)
                assert length is not None and int(length.group(1)) > 0
                if path == "/":  # the page does not change between two requests; the metrics do
                    assert int(length.group(1)) == len(parse_answer(get)[1])
        await served.still_serves(tip)
        assert node.faults.counts == {}


def _hostile_params(kind: type[msgspec.Struct], value: Any) -> dict[str, Any]:
    """Every parameter of ``kind`` that holds an integer, set to ``value``."""
    chosen = {}
    for field in msgspec.inspect.type_info(kind).fields:  # type: ignore[attr-defined]
        if _holds_integers(field.type):
            chosen[field.encode_name] = value
    return chosen


def _holds_integers(info: Any) -> bool:
    if isinstance(info, msgspec.inspect.IntType):
        return True
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_holds_integers(t) for t in info.types)
    if isinstance(info, msgspec.inspect.ListType):
        return _holds_integers(info.item_type)
    return False


@pytest.mark.parametrize("value", [U64_PLUS_ONE, -1, 2**63])
async def test_a_height_beyond_64_bits_is_refused_by_every_method_that_takes_one(
    node: Node, value: int
) -> None:
    takers = {name: m for name, m in rpc.METHODS.items() if _hostile_params(m.params, value)}
    assert {"get_checkpoints", "get_quorum_state", "get_block", "get_evidence", "get_state_proof"} <= set(
        takers
    )
    async with serving(node) as served:
        tip = served.tip()
        for name, method in takers.items():
            for field, hostile in _hostile_params(method.params, value).items():
                given = {field: [hostile] if field == "heights" else hostile}
                if name == "get_state_proof":
                    given["key"] = "00" * 32
                error = (await served.call(name, **given))["error"]
                assert error["code"] == -32602 and f"$.{field}" in error["message"], (name, field, error)
        await served.still_serves(tip)
        assert node.faults.counts == {}


async def test_an_id_no_json_can_echo_is_answered_with_valid_json(node: Node) -> None:
    async with serving(node) as served:
        tip = served.tip()
        for body, code in [
            (b'{"jsonrpc": "2.0", "id": 1e400, "method": "get_info"}', -32700),
            (b'{"jsonrpc": "2.0", "id": -1e400, "method": "get_info"}', -32700),
            (b'{"jsonrpc": "2.0", "id": NaN, "method": "get_info"}', -32700),
            (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "get_info"}', -32600),
            (b'{"jsonrpc": "2.0", "id": [1], "method": "get_info"}', -32600),
            (b'{"jsonrpc": "2.0", "id": ' + SURROGATE.encode() + b', "method": "get_info"}', -32700),
            (b'{"jsonrpc": "2.0", "id": 1, "method": ' + SURROGATE.encode() + b"}", -32700),
        ]:
            _status, answer = await served.post("/json_rpc", body)
            reply = strict_json(answer)
            assert reply["error"]["code"] == code and reply["id"] is None, (body, reply)
        batch = b'[{"jsonrpc": "2.0", "id": 1e400, "method": "get_info"}]'
        assert strict_json((await served.post("/json_rpc", batch))[1])["error"]["code"] == -32700
        # an id that is a number JSON holds is echoed as given
        reply = strict_json(
            (await served.post("/json_rpc", b'{"jsonrpc": "2.0", "id": 1e300, "method": "get_info"}'))[1]
        )
        assert reply["id"] == 1e300 and "result" in reply
        await served.still_serves(tip)


STORAGE_METHODS = [
    "store", "retrieve", "delete", "delete_all", "delete_before", "expire", "expire_all", "get_expiries",
    "get_swarm", "oxend_request", "info", "batch", "sequence", "ifelse", "revoke_subaccount",
    "unrevoke_subaccount",
]  # fmt: skip
STORAGE_FIELDS = [
    "pubkey", "pubKey", "pubkey_ed25519", "signature", "subaccount", "subaccount_sig", "data", "messages",
    "namespace", "last_hash", "lastHash", "endpoint", "timestamp", "sig_timestamp", "ttl", "expiry", "before",
    "max_count", "max_size", "extend", "shorten", "requests", "if", "then", "else",
]  # fmt: skip


async def test_surrogates_and_huge_integers_in_every_storage_field_are_refused(node: Node) -> None:
    async with serving(node) as served:
        tip = served.tip()
        owner = "05" + "11" * 32
        for method in STORAGE_METHODS:
            for field in STORAGE_FIELDS:
                for value in (SURROGATE, str(U64_PLUS_ONE), str(-U64_PLUS_ONE)):
                    body = f'{{"method": "{method}", "params": {{"pubkey": "{owner}", "{field}": {value}}}}}'
                    status, answer = await served.post("/storage_rpc/v1", body.encode())
                    refused = 400 <= status < 500  # a field the method ignores may be answered
                    assert refused or (status == 200 and value != SURROGATE), (method, field, value, status)
                    answer.decode("utf-8")  # the error text is Unicode
        # a surrogate as its raw UTF-8 bytes, and in the method name
        for body in [
            b'{"method": "store", "params": {"data": "\xed\xa0\x80"}}',
            b'{"method": ' + SURROGATE.encode() + b', "params": {}}',
        ]:
            assert (await served.post("/storage_rpc/v1", body))[0] == 400
        await served.still_serves(tip)
        assert node.faults.counts == {}


async def test_surrogates_at_the_onion_entry_and_inside_a_layer_are_refused(node: Node) -> None:
    async with serving(node) as served:
        tip = served.tip()
        ephemeral = Channel.ephemeral()
        metas = [
            '{"ephemeral_key": ' + SURROGATE + "}",
            '{"ephemeral_key": "' + ephemeral.public.hex() + '", "enc_type": ' + SURROGATE + "}",
            '{"ephemeral_key": "' + ephemeral.public.hex() + '", "hop_no": 18446744073709551616}',
            '{"ephemeral_key": "' + ephemeral.public.hex() + '", "hop_no": -18446744073709551616}',
        ]
        for meta in metas:
            body = len(b"blob").to_bytes(4, "little") + b"blob" + meta.encode()
            status, answer = await served.post(ONION_PATH, body)
            assert 400 <= status < 600, (meta, status)
            answer.decode("utf-8")
        # layers this node decrypts, holding surrogates where the next hop or the request would be
        own = Hop(bytes(node.core.node_key))
        for inner in [
            combine(b"{}", {"destination": "\ud800" * 32, "ephemeral_key": "11" * 32}),
            combine(b'{"method": "info", "params": {"x": "\\ud800"}}', {"headers": ""}),
            combine(b"", {"host": "\ud800", "target": "/x"}),
        ]:
            blob = ephemeral.encrypt(XCHACHA20, inner, own.x25519)
            status, answer = await served.post(
                ONION_PATH, combine(blob, {"ephemeral_key": ephemeral.public.hex(), "enc_type": XCHACHA20})
            )
            assert status < 500, (inner[:60], status, answer[:200])
        await served.still_serves(tip)
        assert node.faults.counts == {}


# -- the boundaries: a bug costs one request ---------------------------------------------------------


class NewKindOfBug(Exception):
    """An exception no handler in the node knows."""


def _raising(node: Node, params: NoParams) -> Any:
    raise NewKindOfBug("a bug no handler expected")


def _error_records(log: str) -> list[str]:
    return [line for line in log.splitlines() if " error unexpected error " in line]


async def test_a_method_that_raises_costs_one_call_and_is_logged_and_counted(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(rpc.METHODS, "get_staking_requirement", Method(_raising, NoParams))
    async with serving(node) as served:
        tip = served.tip()
        reply = await served.call("get_staking_requirement")
        assert reply["error"] == {"code": -32603, "message": "internal error (the node logged it)"}
        assert reply["id"] == 7
        log = served.log()
        records = _error_records(log)
        assert (
            len(records) == 1
            and "place=json_rpc" in records[0]
            and "method=get_staking_requirement" in records[0]
        )
        assert "    raise NewKindOfBug" in log and "NewKindOfBug: a bug no handler expected" in log
        # a batch: the other calls are answered
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "get_staking_requirement"},
            {"jsonrpc": "2.0", "id": 2, "method": "get_info"},
        ]
        answers = strict_json((await served.post("/json_rpc", json.dumps(batch).encode()))[1])
        assert answers[0]["error"]["code"] == -32603 and "result" in answers[1]
        metrics = parse_answer(await served.http(b"GET /metrics HTTP/1.1\r\nhost: n\r\n\r\n"))[1].decode()
        assert 'appchain_unexpected_errors_total{place="json_rpc"} 2.0' in metrics
        await served.still_serves(tip)


async def test_an_admin_method_that_raises_costs_one_call(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(admin.METHODS, "peers", Method(_raising, NoParams))
    async with serving(node) as served:
        reply = await served.admin(b'{"jsonrpc": "2.0", "id": 3, "method": "peers"}')
        assert reply["error"]["code"] == -32603 and reply["id"] == 3
        assert (await served.admin(b'{"jsonrpc": "2.0", "id": 4, "method": "status"}'))["result"]["running"]
        assert node.faults.counts == {"admin": 1}
        assert len(_error_records(served.log())) == 1


async def test_a_connection_whose_handler_raises_is_answered_500_and_the_server_goes_on(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(body: bytes) -> Any:
        raise NewKindOfBug("inside the storage RPC")

    monkeypatch.setattr(node.messages.service, "handle_body", broken)
    async with serving(node) as served:
        tip = served.tip()
        status, answer = await served.post("/storage_rpc/v1", b'{"method": "info", "params": {}}')
        assert status == 500 and b"internal error" in answer
        assert node.faults.counts == {"storage": 1}
        assert "NewKindOfBug: inside the storage RPC" in served.log()
        await served.still_serves(tip)


async def test_a_frame_handler_that_raises_drops_the_frame_and_the_node_goes_on(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = next(key for key in _other_nodes(node))
    tip = (node.ledger.height, node.ledger.state.root)

    def broken(*args: Any) -> Any:
        raise NewKindOfBug("inside the core")

    monkeypatch.setattr(node.core, "on_message", broken)
    payload = encode(SignedBlock(node.chain.store.get_block(0)))
    node._on_frame(peer, payload)
    node.handle_slice()
    assert node.faults.counts == {"frame": 1}
    assert (node.ledger.height, node.ledger.state.root) == tip
    assert "NewKindOfBug: inside the core" in node.log.stream.getvalue()  # type: ignore[attr-defined]
    assert node.metrics is not None
    assert b'appchain_unexpected_errors_total{place="frame"} 1.0' in node.metrics.render()
    monkeypatch.undo()
    node._on_frame(peer, payload)  # the same frame again: it was not taken for seen, and it is handled
    node.handle_slice()
    assert node.counters.frames == 2 and node.faults.counts == {"frame": 1}


def _other_nodes(node: Node) -> Iterator[Any]:
    from state.nodes import iter_nodes
    from state.types import NodeKey
    from state.view import Overlay

    for key, _ in iter_nodes(Overlay(node.ledger.state.get)):
        if key != node.core.node_key:
            yield NodeKey(key)


async def test_a_block_whose_execution_raises_midway_leaves_the_state_and_the_chain_as_they_were(
    make_home: Any, offline_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core verifies before it mutates: a bug while a valid block executes (here: on its
    second event) drops the frame, and the chain, its root and the log are as they were; the same
    block sent again, without the bug, is applied."""
    import state.transition

    node = offline_node
    source = make_home(1, per_block=5)  # the same devnet, one block further
    with source.open_chain() as chain:
        block = chain.store.get_block(1)
    assert len(block.events) >= 2
    before = (node.ledger.height, node.ledger.state.root, node.chain.store.get_applied())
    original = state.transition.process_event
    seen = []

    def breaks_on_the_second(*args: Any, **kwargs: Any) -> Any:
        seen.append(1)
        if len(seen) == 2:
            raise NewKindOfBug("midway through a block")
        return original(*args, **kwargs)

    monkeypatch.setattr(state.transition, "process_event", breaks_on_the_second)
    peer = next(_other_nodes(node))
    payload = encode(SignedBlock(block))
    node._on_frame(peer, payload)
    node.handle_slice()
    assert node.faults.counts == {"frame": 1} and len(seen) == 2
    assert (node.ledger.height, node.ledger.state.root, node.chain.store.get_applied()) == before
    monkeypatch.undo()
    node._on_frame(peer, payload)
    node.handle_slice()
    assert node.ledger.height == 1 and node.ledger.state.root == block.header.state_root


async def test_a_failing_long_lived_task_is_started_again(autojump_clock: Any) -> None:
    stream = io.StringIO()
    faults = Faults(Logger("info", stream))
    runs: list[float] = []

    async def flaky() -> None:
        runs.append(trio.current_time())
        if len(runs) < 4:
            raise NewKindOfBug(f"run {len(runs)}")

    await faults.supervise("flaky", flaky)
    assert len(runs) == 4 and faults.counts == {"task:flaky": 3}
    pauses = [round(b - a, 3) for a, b in itertools.pairwise(runs)]
    assert pauses == [0.5, 1.0, 2.0]  # doubling while it keeps failing
    assert stream.getvalue().count(" error unexpected error place=task:flaky") == 3


async def test_fatal_errors_pass_every_boundary() -> None:
    from appchain.home.store import StoreCorrupt

    faults = Faults(lambda *args, **kwargs: None)
    with pytest.raises(StoreCorrupt), faults.boundary("rpc"):
        raise StoreCorrupt("the log does not decode")

    async def corrupt() -> None:
        raise StoreCorrupt("a record does not decode")

    with pytest.raises(StoreCorrupt):
        await faults.supervise("corrupt", corrupt)
    assert faults.counts == {}


async def test_p2p_connections_are_boundaries_too(nursery: trio.Nursery) -> None:
    """An exception from the application's ``on_frame`` ends that peer's connection; the host
    goes on and the peer reconnects."""
    from p2p.host import Host, HostConfig
    from state.types import NodeKey
    from tests.test_p2p import connect, key, until

    arrived: list[bytes] = []

    def on_frame(sender: NodeKey, payload: bytes) -> None:
        if payload == b"bug":
            raise NewKindOfBug("in on_frame")
        arrived.append(payload)

    logged: list[str] = []
    config = HostConfig(chain_id="t", dial_backoff=(0.05, 0.2))
    a = Host(config, key(1), on_frame, log=lambda level, event, **f: logged.append(f"{level} {event}"))
    b = Host(config, key(2), lambda sender, payload: None)
    await nursery.start(a.run)
    await nursery.start(b.run)
    await connect(b, a)
    b.send(a.node_key, b"bug")
    await until(lambda: a.errors == 1 and b.node_key not in a.peers)
    assert "error unexpected error" in logged
    await until(lambda: b.node_key in a.peers and a.node_key in b.peers)  # b dials again
    b.send(a.node_key, b"fine")
    await until(lambda: arrived == [b"fine"])


def test_decode_json_refuses_what_no_answer_could_echo() -> None:
    from state.encoding import DecodeError, decode_json

    for text in [b"1e400", b"[-1e400]", b'"\\ud800"', b'{"\\udfff": 1}', b'"\xed\xa0\x80"', b'"a\\ud800b"']:
        with pytest.raises(DecodeError):
            decode_json(text)
    assert decode_json(b'"\\ud83d\\ude00"') == "\U0001f600"  # a pair is a character
    assert decode_json(b"[1e308, 18446744073709551616]") == [1e308, 2**64]
