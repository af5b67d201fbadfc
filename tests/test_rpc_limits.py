"""The public port's limits: connections, request rates, requests in flight, the loop's share,
deadlines against slow clients, body sizes; each refusal while another address is served.

Every client connects from 127.0.0.1; :class:`~tests.test_p2p_limits.FakeAddresses` makes some
come from other hosts. Loopback itself is exempt unless ``limit_loopback`` (tested too)."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import h11
import pytest
import trio

from appchain.messaging.layer import PEER_PATH
from appchain.messaging.requests import Reply
from appchain.rpc import methods as rpc
from appchain.rpc import server as rpc_server
from appchain.rpc.exchange import MAX_HEAD
from appchain.rpc.jsonrpc import method
from appchain.rpc.server import LIMITED, MAX_BODY, RpcLimits, RpcServer
from appchain.rpc.storage import StorageServer
from state.crypto import ed25519
from tests.test_p2p_limits import HONEST, JUNK, Clock, FakeAddresses

Connect = Callable[..., Awaitable["Client"]]


class Client:
    """A keep-alive HTTP/1.1 client on one connection (h11 on the client side)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.http = h11.Connection(h11.CLIENT)

    async def post_raw(
        self, path: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        fields = [("host", "node"), ("content-length", str(len(body))), *headers]
        await self.stream.send_all(self.http.send(h11.Request(method="POST", target=path, headers=fields)))
        await self.stream.send_all(self.http.send(h11.Data(data=body)) + self.http.send(h11.EndOfMessage()))
        return await self.answer()

    async def post(self, path: str, body: Any) -> tuple[int, dict[bytes, bytes], bytes]:
        await self.send_head(path, body := json.dumps(body).encode())
        await self.stream.send_all(self.http.send(h11.Data(data=body)) + self.http.send(h11.EndOfMessage()))
        return await self.answer()

    async def send_head(self, path: str, body: bytes) -> None:
        headers = [("host", "node"), ("content-type", "application/json"), ("content-length", str(len(body)))]
        await self.stream.send_all(self.http.send(h11.Request(method="POST", target=path, headers=headers)))

    async def answer(self) -> tuple[int, dict[bytes, bytes], bytes]:
        status, headers, body = 0, {}, b""
        with trio.fail_after(10):
            while True:
                event = self.http.next_event()
                if event is h11.NEED_DATA:
                    self.http.receive_data(await self.stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status, headers = event.status_code, dict(event.headers)
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    if self.http.our_state is h11.DONE:
                        self.http.start_next_cycle()
                    return status, headers, body
                else:
                    raise AssertionError(f"unexpected {event!r}")


def call(method: str = "no_such_method", call_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "method": method, "params": {}}


async def read_all(stream: trio.SocketStream) -> bytes:
    data = b""
    with trio.fail_after(10):
        try:
            while chunk := await stream.receive_some(65536):
                data += chunk
        except trio.BrokenResourceError:
            pass
    return data


class Storage:
    """A storage service whose requests wait until :attr:`release` is set (requests in flight)."""

    def __init__(self) -> None:
        self.inside = 0
        self.release = trio.Event()
        self.answer: Reply = Reply(200, {"ok": True})

    async def handle_body(self, body: bytes) -> Reply:
        self.inside += 1
        await self.release.wait()
        self.inside -= 1
        return self.answer


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.01)


@pytest.fixture
def addresses(monkeypatch: pytest.MonkeyPatch) -> FakeAddresses:
    fake = FakeAddresses(default="127.0.0.1")
    monkeypatch.setattr(rpc_server, "remote_address", fake)
    return fake


@pytest.fixture
def start(
    nursery: trio.Nursery, addresses: FakeAddresses
) -> Callable[..., Awaitable[tuple[RpcServer, Connect]]]:
    """Start a server with the given limits; returns it and ``connect(ip)`` for clients."""

    async def started(
        clock: Callable[[], float] | None = None, *, storage: bool = False, **limits: Any
    ) -> tuple[RpcServer, Connect]:
        """``storage``: the storage port's server (its limits are the same code), without TLS."""
        node = SimpleNamespace(metrics=None, messages=SimpleNamespace(service=Storage()))
        kind = StorageServer if storage else RpcServer
        server = kind(node, RpcLimits(**limits), **({"clock": clock} if clock else {}))  # type: ignore[arg-type]
        listeners = await nursery.start(functools.partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]

        async def connect(ip: str = "127.0.0.1") -> Client:
            return Client(await addresses.connect(port, ip))

        return server, connect

    return started


# -- connections ------------------------------------------------------------------------------------


async def test_connections_over_the_per_address_limit_are_refused(start: Any) -> None:
    server, connect = await start(max_connections_per_ip=3)
    held = [await connect(JUNK) for _ in range(3)]
    await until(lambda: server.connections.open == {JUNK: 3})
    extra = await connect(JUNK)
    answer = await read_all(extra.stream)  # refused at once, before it sends anything
    assert answer.startswith(b"HTTP/1.1 429 ") and answer.endswith(
        b"too many connections from this address\n"
    )
    assert server.refused == {"max_connections_per_ip": 1}
    other = await connect(HONEST)  # another address is served meanwhile
    assert (await other.post("/json_rpc", call()))[0] == 200
    await held[0].stream.aclose()
    await until(lambda: server.connections.open[JUNK] == 2)
    again = await connect(JUNK)  # a connection given back is served again
    status, _, body = await again.post("/json_rpc", call())
    assert status == 200 and json.loads(body)["error"]["code"] == -32601
    for client in (*held[1:], other, again):
        await client.stream.aclose()
    await until(lambda: server.connections.open == {} and server.open == 0)


async def test_connections_over_the_overall_limit_get_503(start: Any) -> None:
    server, connect = await start(max_open_connections=2)
    held = [await connect(JUNK), await connect(HONEST)]
    await until(lambda: server.open == 2)
    answer = await read_all((await connect("192.0.2.9")).stream)
    assert answer.startswith(b"HTTP/1.1 503 ") and server.refused == {"max_open_connections": 1}
    for client in held:
        await client.stream.aclose()


# -- requests ---------------------------------------------------------------------------------------


async def test_requests_over_the_rate_get_429_and_a_json_rpc_error_while_another_address_is_served(
    start: Any,
) -> None:
    clock = Clock()
    server, connect = await start(clock, requests_per_second_per_ip=1.0, request_burst_per_ip=3.0)
    flood, honest = await connect(JUNK), await connect(HONEST)
    statuses = [(await flood.post("/json_rpc", call()))[0] for _ in range(3)]
    status, headers, body = await flood.post("/json_rpc", call())
    assert statuses == [200] * 3 and status == 429 and headers[b"retry-after"] == b"1"
    error = json.loads(body)["error"]
    assert error["code"] == LIMITED and "at most 1 a second" in error["message"]
    assert (await honest.post("/json_rpc", call()))[0] == 200  # same connection kept alive, other address
    clock.now += 1.0
    assert (await flood.post("/json_rpc", call()))[0] == 200  # a token back a second later
    # a batch costs one per call: two of three answered, the third refused in place
    clock.now += 2.0
    status, _, body = await flood.post("/json_rpc", [call(call_id=n) for n in range(3)])
    codes = [answer["error"]["code"] for answer in json.loads(body)]
    assert status == 200 and codes == [-32601, -32601, LIMITED]
    assert server.refused == {"rate_per_ip": 2}


async def test_the_storage_port_refuses_over_the_rate_in_plain_text_counted_apart(start: Any) -> None:
    clock = Clock()
    rpc_port, rpc_connect = await start(clock, requests_per_second_per_ip=1.0, request_burst_per_ip=1.0)
    storage, connect = await start(
        clock, storage=True, requests_per_second_per_ip=1.0, request_burst_per_ip=1.0
    )
    storage.node.messages.service.release.set()
    flood = await connect(JUNK)
    assert (await flood.post("/storage_rpc/v1", {"method": "info"}))[0] == 200
    status, headers, body = await flood.post("/storage_rpc/v1", {"method": "info"})
    assert status == 429 and headers[b"retry-after"] == b"1"
    assert body.startswith(b"too many requests")  # plain text, as storage errors are
    assert (await (await rpc_connect(JUNK)).post("/json_rpc", call()))[0] == 200  # the RPC port's own budget
    assert storage.refused == {"rate_per_ip": 1} and rpc_port.refused == {}


async def test_requests_in_flight_are_capped_per_address_and_others_still_get_a_worker(start: Any) -> None:
    """One address fills its share of the worker slots with requests that hang; its next is
    refused, another address's request is handled, and a third waits its turn for a slot."""
    server, connect = await start(max_pending_per_ip=2, max_concurrent_requests=3, storage=True)
    storage = server.node.messages.service
    flood = [await connect(JUNK) for _ in range(3)]
    async with trio.open_nursery() as nursery:
        for client in flood[:2]:
            nursery.start_soon(client.post, "/storage_rpc/v1", {"method": "info"})
        await until(lambda: storage.inside == 2)
        status, _, body = await flood[2].post("/storage_rpc/v1", {"method": "info"})
        assert status == 429 and b"in flight" in body
        honest = await connect(HONEST)
        nursery.start_soon(honest.post, "/storage_rpc/v1", {"method": "info"})
        await until(lambda: storage.inside == 3)  # the third worker slot
        late = await connect("192.0.2.9")
        nursery.start_soon(late.post, "/storage_rpc/v1", {"method": "info"})
        await until(lambda: server.pending.open.get("192.0.2.9") == 1)
        await trio.sleep(0.1)
        assert storage.inside == 3  # waiting for a slot, not refused
        storage.release.set()
    assert storage.inside == 0 and server.refused == {"max_pending_per_ip": 1} and server.pending.open == {}


async def test_an_address_over_its_share_of_the_loop_is_refused_until_it_has_rested(
    start: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()

    def slow(node: Any, params: dict[str, Any]) -> str:
        clock.now += 2.0  # two seconds of the event loop
        return "done"

    monkeypatch.setitem(rpc.METHODS, "slow", method(slow))
    server, connect = await start(clock, busy_share_per_ip=0.5)
    greedy, honest = await connect(JUNK), await connect(HONEST)
    assert (await greedy.post("/json_rpc", call("slow")))[0] == 200  # 1 s in hand, now 1 s owed
    status, _, body = await greedy.post("/json_rpc", call())
    assert status == 429 and json.loads(body)["error"]["code"] == LIMITED and b"share" in body
    assert (await honest.post("/json_rpc", call()))[0] == 200
    clock.now += 1.0  # half of the debt paid back: still refused
    assert (await greedy.post("/json_rpc", call()))[0] == 429
    clock.now += 1.5
    assert (await greedy.post("/json_rpc", call()))[0] == 200
    assert server.refused == {"busy_per_ip": 2}


async def test_loopback_clients_are_exempt_unless_configured(start: Any) -> None:
    strict = {"requests_per_second_per_ip": 1.0, "request_burst_per_ip": 1.0}
    _, connect = await start(**strict)
    local = await connect()
    assert [(await local.post("/json_rpc", call()))[0] for _ in range(5)] == [200] * 5
    _, connect = await start(**strict, limit_loopback=True)
    local = await connect()
    assert [(await local.post("/json_rpc", call()))[0] for _ in range(3)] == [200, 429, 429]


# -- slow clients and big bodies ---------------------------------------------------------------------


async def test_slow_headers_bodies_and_idle_connections_are_closed_while_another_client_is_served(
    start: Any,
) -> None:
    deadlines = {"read_header_timeout": 0.4, "read_body_timeout": 0.4, "idle_timeout": 0.4}
    server, connect = await start(**deadlines)
    idle, slow_head, slow_body, honest = [await connect(f"198.51.100.{n}") for n in range(1, 5)]
    body = json.dumps(call()).encode()
    await slow_body.send_head("/json_rpc", body)
    started = trio.current_time()

    async def trickle(client: Client, data: bytes) -> None:
        try:
            for byte in data:  # a byte every 0.1 s: never idle, never done
                await client.stream.send_all(bytes([byte]))
                await trio.sleep(0.1)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            trickle, slow_head, b"POST /json_rpc HTTP/1.1\r\nHost: node\r\n" + b"X: y\r\n" * 100
        )
        nursery.start_soon(trickle, slow_body, body)
        for _ in range(5):  # served throughout
            assert (await honest.post("/json_rpc", call()))[0] == 200
            await trio.sleep(0.1)
        for client in (idle, slow_head, slow_body):
            assert await read_all(client.stream) == b""  # closed, nothing answered
        nursery.cancel_scope.cancel()
    assert trio.current_time() - started < 5
    assert server.refused == {"deadline": 3}
    assert (await honest.post("/json_rpc", call()))[0] == 200


async def test_a_client_that_does_not_read_its_answer_is_cut_at_the_write_deadline(start: Any) -> None:
    server, connect = await start(write_timeout=0.3, storage=True)
    storage = server.node.messages.service
    storage.release.set()
    storage.answer = Reply(200, "x" * (64 << 20))  # more than the socket buffers hold
    reader, other = await connect(JUNK), await connect(HONEST)
    body = json.dumps({"method": "info"}).encode()
    await reader.send_head("/storage_rpc/v1", body)
    await reader.stream.send_all(body)  # …and never reads the answer
    await until(lambda: server.refused.get("deadline") == 1)
    storage.answer = Reply(200, {"ok": True})
    assert (await other.post("/storage_rpc/v1", {"method": "info"}))[0] == 200


async def test_bodies_over_the_limit_get_413_declared_or_sent(start: Any) -> None:
    server, connect = await start()
    declared = await connect(JUNK)
    await declared.stream.send_all(
        b"POST /json_rpc HTTP/1.1\r\nHost: node\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
    )
    await declared.stream.send_eof()  # it gives up on sending (else the server listens a second)
    answer = await read_all(declared.stream)  # answered before the body is sent, then closed
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"code": -32600' in answer
    chunked = await connect(JUNK)  # no length declared: cut when it passes the limit
    await chunked.stream.send_all(
        b"POST /json_rpc HTTP/1.1\r\nHost: node\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (MAX_BODY // 2, b"x" * (MAX_BODY // 2))
    for _ in range(3):
        await chunked.stream.send_all(chunk)
    await chunked.stream.send_eof()
    assert (await read_all(chunked.stream)).startswith(b"HTTP/1.1 413 ")
    assert server.refused == {"too_big": 2}


async def test_heads_over_the_limit_and_unparsable_requests_are_answered_and_counted(start: Any) -> None:
    server, connect = await start()
    huge = await connect(JUNK)
    await huge.stream.send_all(
        b"POST /json_rpc HTTP/1.1\r\nHost: node\r\n" + b"X-Pad: " + b"y" * (MAX_HEAD + 1)
    )
    answer = await read_all(huge.stream)  # answered and closed before the head ends
    assert answer.startswith(b"HTTP/1.1 431 ") and b"connection: close" in answer
    garbage = await connect(JUNK)
    await garbage.stream.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
    assert (await read_all(garbage.stream)).startswith(b"HTTP/1.1 400 ")
    assert server.refused == {"malformed": 2}
    honest = await connect(HONEST)
    assert (await honest.post("/json_rpc", call()))[0] == 200


async def test_signed_swarm_requests_count_per_node_key_and_a_false_claim_per_address(
    start: Any,
) -> None:
    """Replication between swarm members is not throttled by the per-address budget of clients:
    a request signed by a service node is charged to that node's key. Claiming a node's key with
    a bad signature is charged to the address, and does not spend the node's budget."""
    member = ed25519.SigningKey(b"\x05" * 32)
    stranger = ed25519.SigningKey(b"\x06" * 32)
    server, connect = await start(
        requests_per_second_per_ip=0.001,
        request_burst_per_ip=2,
        node_requests_per_second=0.001,
        node_request_burst=5,
        storage=True,
    )
    server.node.messages.is_node = lambda key: key == member.public_key
    server.node.messages.handle_peer = peer_answer

    def signed(by: ed25519.SigningKey, body: bytes, claimed: bytes | None = None) -> list[tuple[str, str]]:
        return [
            ("x-node-key", (claimed or by.public_key).hex()),
            ("x-node-signature", base64.b64encode(by.sign(body)).decode()),
        ]

    body = b'{"method": "push", "params": {}}'
    node_client = await connect(JUNK)
    statuses = [(await node_client.post_raw(PEER_PATH, body, signed(member, body)))[0] for _ in range(5)]
    assert statuses == [200] * 5  # past the address's burst of 2
    assert (await node_client.post_raw(PEER_PATH, body, signed(member, body)))[0] == 429  # the key's burst
    assert server.refused.get("rate_per_node") == 1

    forger = await connect(HONEST)  # claims the member's key, signs with another
    forged = [
        (await forger.post_raw(PEER_PATH, body, signed(stranger, body, member.public_key)))[0]
        for _ in range(3)
    ]
    assert forged == [401, 401, 429]  # charged to its address: refused by the storage layer, then limited
    assert server.refused.get("rate_per_ip") == 1 and server.refused.get("rate_per_node") == 1
    unknown = await connect("192.0.2.77")  # a key that is no service node: an ordinary client
    plain = [(await unknown.post_raw(PEER_PATH, body, signed(stranger, body)))[0] for _ in range(3)]
    assert plain == [401, 401, 429]


async def peer_answer(body: bytes, key_hex: str, signature_b64: str) -> Reply:
    """The storage layer's side of a swarm request: it verifies the signature itself."""
    key, signature = bytes.fromhex(key_hex), base64.b64decode(signature_b64)
    if key != ed25519.SigningKey(b"\x05" * 32).public_key or not ed25519.verify(key, body, signature):
        return Reply(401, "peer request: not signed by a service node")
    return Reply(200, {"held": []})
