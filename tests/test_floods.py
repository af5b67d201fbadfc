"""Floods (:mod:`bench.floods`) against a node's doors.

In this process, each generator against the piece it attacks on 127.0.0.1 (a node's RPC server or
p2p host, fed to a node's core), the flooder's connections made to come from another host by
:class:`~tests.test_p2p_limits.FakeAddresses`: the node refuses what it must and keeps serving an
honest client from another address meanwhile.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from appchain import rpc_server
from appchain.home import Home
from appchain.node import Logger, Node
from appchain.rpc_server import RpcLimits, RpcServer
from bench.floods import (
    RPC_BATCH,
    Forgeries,
    Tally,
    count_rpc_answer,
    forged_p2p,
    forged_rpc,
    junk_p2p,
    oversized_http,
    slow_loris,
)
from consensus.messages import TxMessage, decode_message
from p2p import host as host_module
from p2p.host import Host, HostConfig
from p2p.secure import handshake
from state.encoding import encode
from state.errors import InvalidSignature
from state.events import validate_basic
from state.types import NodeKey
from tests.conftest import MakeHome
from tests.test_p2p import key
from tests.test_p2p_limits import HONEST, JUNK, FakeAddresses
from tests.test_rpc_limits import Client, call, until

Generator = Callable[[Tally], Awaitable[None]]


async def flood_for(seconds: float, *generators: Generator) -> list[Tally]:
    tallies = [Tally() for _ in generators]
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for generator, tally in zip(generators, tallies, strict=True):
                nursery.start_soon(generator, tally)
    return tallies


@pytest.fixture
def node(make_home: MakeHome) -> Iterator[Node]:
    """A node of the test devnet (not running: its pieces are driven by the test)."""
    home: Home = make_home()
    entry = json.loads((home.keys_path / "dev-nodes.json").read_text())["nodes"][0]
    home.write_node_keys(bytes.fromhex(entry["node_seed"]), bytes.fromhex(entry["bls_seed"]))
    with home.open_chain() as chain:
        running = Node(home, home.load_config(), chain, Logger("error", io.StringIO()))
        try:
            yield running
        finally:
            running.message_store.close()
            running.journal.close()


# -- the forgeries ---------------------------------------------------------------------------------------


def test_forgeries_are_distinct_and_every_one_fails_its_signature_first(node: Node) -> None:
    chain_id = node.chain.genesis.chain_id
    forgeries = Forgeries(chain_id)
    batch = [next(forgeries) for _ in range(20)]
    assert len({encode(tx) for tx in batch}) == 20  # new to the duplicate filter, each
    assert {type(tx).__name__ for tx in batch} == {"Transfer", "RegisterNode"}
    for tx in batch:
        with pytest.raises(InvalidSignature):
            validate_basic(tx, chain_id)
        assert decode_message(encode(TxMessage(tx))) == TxMessage(tx)


def test_rpc_answers_are_sorted_by_what_refused_them() -> None:
    tally = Tally()
    count_rpc_answer(tally, 429, b'{"error": {"code": -32005}}', 50)  # a whole batch refused unread
    count_rpc_answer(tally, 200, b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -32000}}', 1)
    answers = [
        {"error": {"code": -32005}},
        {"error": {"code": -32000}},
        {"result": {}},
        {"error": {"code": -1}},
    ]
    count_rpc_answer(tally, 200, json.dumps(answers).encode(), 4)
    count_rpc_answer(tally, 502, b"<html>", 3)
    assert tally == {
        "limited": 51,
        "rejected": 2,
        "refused": 53,
        "accepted": 1,
        "error_-1": 1,
        "http_502": 3,
    }


# -- the JSON-RPC door -------------------------------------------------------------------------------------


@pytest.fixture
def addresses(monkeypatch: pytest.MonkeyPatch) -> FakeAddresses:
    """Every connection comes from the junk host unless it was made through ``connect`` for
    another address."""
    fake = FakeAddresses(default=JUNK)
    monkeypatch.setattr(rpc_server, "remote_address", fake)
    monkeypatch.setattr(host_module, "remote_address", fake)
    return fake


@asynccontextmanager
async def serving_rpc(
    nursery: trio.Nursery, node: Any, **limits: Any
) -> AsyncIterator[tuple[RpcServer, int]]:
    server = RpcServer(node, RpcLimits(**limits))
    listeners = await nursery.start(functools.partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
    try:
        yield server, listeners[0].socket.getsockname()[1]
    finally:
        for listener in listeners:
            await listener.aclose()


async def honest_calls(addresses: FakeAddresses, port: int, path: str, body: Any, count: int) -> list[int]:
    """``count`` requests from the honest address, a new connection each; their statuses."""
    statuses = []
    for _ in range(count):
        client = Client(await addresses.connect(port, HONEST))
        statuses.append((await client.post(path, body))[0])
        await client.stream.aclose()
        await trio.sleep(0.05)
    return statuses


async def test_forged_transactions_by_json_rpc_are_refused_at_the_rate_or_the_signature(
    nursery: trio.Nursery, node: Node, addresses: FakeAddresses
) -> None:
    async with serving_rpc(nursery, node) as (server, port):
        honest: list[int] = []

        async def honest_client(tally: Tally) -> None:
            honest.extend(await honest_calls(addresses, port, "/json_rpc", call("get_info"), 10))
            await trio.sleep_forever()

        target = ("127.0.0.1", port)
        chain_id = node.chain.genesis.chain_id
        tally, _ = await flood_for(1.5, lambda t: forged_rpc(target, chain_id, t), honest_client)
    assert honest == [200] * 10
    assert tally["accepted"] == 0 and tally["rejected"] > 0 and tally["limited"] > 0
    unanswered = tally["sent"] - tally["refused"]  # in flight when the flood stopped: one per connection
    assert 0 <= unanswered <= RPC_BATCH * 16
    assert server.refused.get("rate_per_ip", 0) > 0 and len(node.core.mempool) == 0


async def test_oversized_and_slow_requests_are_refused_while_an_honest_client_is_served(
    nursery: trio.Nursery, node: Node, addresses: FakeAddresses
) -> None:
    deadlines = {"read_header_timeout": 0.3, "read_body_timeout": 0.3, "max_connections_per_ip": 8}
    async with serving_rpc(nursery, node, **deadlines) as (server, port):
        honest: list[int] = []

        async def honest_client(tally: Tally) -> None:
            honest.extend(await honest_calls(addresses, port, "/json_rpc", call(), 10))
            await trio.sleep_forever()

        target = ("127.0.0.1", port)
        big, slow, _ = await flood_for(
            2.0,
            lambda t: oversized_http(target, t, connections=4),
            lambda t: slow_loris(target, t, connections=12),
            honest_client,
        )
    assert honest == [200] * 10  # method not found, answered: the port was never held
    assert big["http_413"] > 0 and big["huge_head"] > 0 and big["closed"] > 0  # the huge head: cut
    assert slow["refused"] > 0 and slow["closed_unanswered"] > 0 and slow["answered_then_closed"] > 0
    assert server.refused["too_big"] > 0 and server.refused["deadline"] > 0
    assert server.refused["max_connections_per_ip"] > 0


# -- the p2p door --------------------------------------------------------------------------------------------


@asynccontextmanager
async def node_host(nursery: trio.Nursery, node: Node, **overrides: Any) -> AsyncIterator[Host]:
    """``node``'s p2p host on a free port of 127.0.0.1, its frames handled by the node's core."""
    config = HostConfig(chain_id=node.chain.genesis.chain_id, listen_port=0, **overrides)
    node.host = Host(config, node.host.identity, node._on_frame)
    scope = trio.CancelScope()

    async def core() -> None:
        with scope:
            while True:
                node.handle_slice()
                await trio.sleep(0.001)

    await nursery.start(node.host.run)
    nursery.start_soon(core)
    try:
        yield node.host
    finally:
        scope.cancel()


async def test_forged_transactions_over_p2p_get_the_peer_banned_then_its_address(
    nursery: trio.Nursery, node: Node, addresses: FakeAddresses
) -> None:
    async with node_host(nursery, node, inbound_burst_per_ip=100.0) as host:
        target = ("127.0.0.1", host.port)
        (tally,) = await flood_for(1.5, lambda t: forged_p2p(target, node.chain.genesis.chain_id, t))
        # an honest peer from another address still gets in
        stream = await addresses.connect(host.port, HONEST)
        with trio.fail_after(5):
            channel = await handshake(stream, key(90), chain_id=node.chain.genesis.chain_id, initiator=True)
        await until(lambda: NodeKey(key(90).public_key) in host.peers)
        await channel.aclose()
    assert tally["handshakes"] >= 1 and tally["sent"] >= 256 and tally["dropped"] >= 1
    assert tally["handshake_refused"] > 0  # its address banned with its first key
    assert len(host.banned_keys) == tally["handshakes"] and JUNK in host.banned_hosts
    assert host.refused.get("banned", 0) > 0 and len(node.core.mempool) == 0


async def test_junk_p2p_connections_are_refused_and_an_honest_peer_still_gets_in(
    nursery: trio.Nursery, node: Node, addresses: FakeAddresses
) -> None:
    async with node_host(nursery, node, handshake_timeout=0.3) as host:
        target = ("127.0.0.1", host.port)
        (tally,) = await flood_for(
            1.5, lambda t: junk_p2p(target, node.chain.genesis.chain_id, t, sockets=24)
        )
        stream = await addresses.connect(host.port, HONEST)
        with trio.fail_after(5):
            channel = await handshake(stream, key(91), chain_id=node.chain.genesis.chain_id, initiator=True)
        await until(lambda: NodeKey(key(91).public_key) in host.peers)
        await channel.aclose()
    assert tally["garbage"] > 0 and tally["half_handshake"] > 0 and tally["silent"] > 0
    assert tally["refused"] > 0 and host.violations >= 4 and JUNK in host.banned_hosts
    refusals = set(host.refused)
    assert refusals & {"rate_per_ip", "max_inbound_per_ip"} and "banned" in refusals
    assert HONEST not in host.banned_hosts
