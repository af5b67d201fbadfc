"""State sync between real processes: a fresh node joins at a certified snapshot over p2p.

Two node processes serve a chain of 100 blocks (a dev chain with certified checkpoints, built
in-process and copied into both homes) over a genesis of 12,000 funded accounts; beside them,
three byzantine peers run in this process: each relays an honest node's answers, one with a
tampered chunk, one offering another height's snapshot, one offering a snapshot with a wrong
root. A fresh node (``appchain start``, state sync on) must join at the snapshot of height 96,
refuse the three liars by name, reach the tip, agree on every later root, and answer a request
for a block below its base with a clear error.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import trio

from appchain.home.home import Home, PeerAddress, render_config
from appchain.lab.testnet import (
    PORTS_PER_NODE,
    NetworkMember,
    poll_status,
    start_process,
    stop_processes,
    write_testnet,
)
from appchain.node.settings import VERSION
from consensus.messages import (
    SYNC_REQUESTS,
    SYNC_RESPONSES,
    ChunkResponse,
    Message,
    SnapshotOffer,
    decode_message,
)
from genesis.presets import DEVNET
from p2p.host import Host, HostConfig
from state.crypto import ed25519
from state.encoding import DecodeError, encode
from state.types import Hash32, NodeKey
from tests.conftest import extend
from tests.test_network import free_port_block, with_node_logs

Tamper = Callable[[Message], Message]


def tampered_chunk(message: Message) -> Message:
    if isinstance(message, ChunkResponse) and message.pairs:
        key, value = message.pairs[-1]
        return msgspec.structs.replace(message, pairs=(*message.pairs[:-1], (key, value + b"\x01")))
    return message


def other_height(message: Message) -> Message:
    """The snapshot of 96 offered as 100's (a certified checkpoint too)."""
    if isinstance(message, SnapshotOffer) and message.manifest is not None:
        return SnapshotOffer(msgspec.structs.replace(message.manifest, height=message.manifest.height + 4))
    return message


def wrong_root(message: Message) -> Message:
    if isinstance(message, SnapshotOffer) and message.manifest is not None:
        root = Hash32(bytes(b ^ 0xFF for b in message.manifest.state_root))
        return SnapshotOffer(msgspec.structs.replace(message.manifest, state_root=root))
    return message


class Relay:
    """A byzantine peer: passes the joiner's state-sync requests to an honest node and its
    answers back, through ``tamper``."""

    def __init__(
        self, chain_id: str, port: int, upstream: NetworkMember, tamper: Tamper, seed: bytes
    ) -> None:
        self.key = ed25519.SigningKey(seed)
        self.upstream = NodeKey(upstream.node_key)
        self.upstream_port = upstream.p2p_port
        self.tamper = tamper
        self.asker: NodeKey | None = None
        self.host = Host(
            HostConfig(chain_id=chain_id, listen_port=port, version=VERSION), self.key, self._on_frame
        )

    def _on_frame(self, sender: NodeKey, payload: bytes) -> None:
        try:
            message = decode_message(payload)
        except DecodeError:
            return
        if sender == self.upstream and isinstance(message, SYNC_RESPONSES) and self.asker is not None:
            self.host.send(self.asker, encode(self.tamper(message)))
        elif sender != self.upstream and isinstance(message, SYNC_REQUESTS):
            self.asker = sender
            self.host.send(self.upstream, payload)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.host.run(task_status=task_status)

    def peer_address(self) -> PeerAddress:
        return PeerAddress(bytes(self.key.public_key), "127.0.0.1", self.host.config.listen_port)


def rpc(member: NetworkMember, method: str, params: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{member.rpc_port}/json_rpc", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer: dict[str, Any] = json.loads(reply.read())
    return answer


def configure(member: NetworkMember, **changes: Any) -> None:
    home = Home(member.home)
    home.config_path.write_text(render_config(dataclasses.replace(home.load_config(), **changes)))


def test_a_fresh_node_joins_by_state_sync_and_refuses_liars(tmp_path: Path) -> None:
    base = free_port_block(PORTS_PER_NODE * 15)
    members = write_testnet(
        tmp_path / "net",
        12,
        base_port=base,
        seed="statesync",
        users=12_000,
        spare=1,
        # the 100th block about now, once built (genesis_time in s, block_time in ms)
        genesis_time=int(time.time()) + 10 - 100 * DEVNET.block_time // 1000,
        sync_writes=False,
    )
    servers, joiner = members[:2], members[-1]
    source = Home(servers[0].home)
    configure(servers[0], snapshot_interval=32)
    with source.open_chain() as chain:
        extend(chain, source, 100, per_block=20)
        tip, final = chain.height, chain.final_height
        tip_root = chain.state.root.hex()
    assert (tip, final) == (100, 100)
    shutil.rmtree(Home(servers[1].home).db_path)
    shutil.copytree(source.db_path, Home(servers[1].home).db_path)
    configure(servers[1], snapshot_interval=32)
    chain_id = source.load_genesis().chain_id
    relay_ports = base + PORTS_PER_NODE * 14
    relays = [
        Relay(chain_id, relay_ports + i, servers[i % 2], tamper, bytes([0x50 + i]) * 32)
        for i, tamper in enumerate((tampered_chunk, other_height, wrong_root))
    ]
    honest = [PeerAddress(m.node_key, "127.0.0.1", m.p2p_port) for m in servers]
    configure(joiner, peers=tuple([*honest, *(r.peer_address() for r in relays)]), state_sync_min_gap=50)

    processes = [start_process(m.home) for m in servers]
    try:
        trio.run(_join, processes, servers, joiner, relays, tip, tip_root)
    except* AssertionError as group:
        failure = group.exceptions[0]
        assert isinstance(failure, AssertionError)
        raise with_node_logs(failure, [*servers, joiner], lines=25) from None
    finally:
        stop_processes(processes)


async def _join(
    processes: list[Any],
    servers: list[NetworkMember],
    joiner: NetworkMember,
    relays: list[Relay],
    tip: int,
    tip_root: str,
) -> None:
    async with trio.open_nursery() as nursery:
        for relay in relays:
            await nursery.start(relay.run)
        await wait_in_thread("the serving nodes", lambda: all(poll_status(m) for m in servers), 60)
        for relay, upstream in zip(relays, [servers[0], servers[1], servers[0]], strict=True):
            relay.host.add_target(NodeKey(upstream.node_key), "127.0.0.1", upstream.p2p_port)
        await wait_in_thread(
            "the relays' upstreams", lambda: all(r.upstream in r.host.connected for r in relays), 30
        )
        started = time.monotonic()
        processes.append(start_process(joiner.home))

        def at_tip() -> bool:
            status = poll_status(joiner)
            return bool(status) and status["height"] == tip and status["state_root"] == tip_root

        await wait_in_thread("the joiner at the tip", at_tip, 120)
        joined = time.monotonic() - started
        nursery.cancel_scope.cancel()
    log = (joiner.home / "node.log").read_text()
    assert "state sync done height=96" in log, log[-3000:]
    refused = [line for line in log.splitlines() if "state sync peer refused" in line]
    for relay, reason in zip(
        relays,
        ["chunk that does not verify", "the manifest names another block", "state root is not the certified"],
        strict=True,
    ):
        mine = [line for line in refused if f"peer={bytes(relay.key.public_key).hex()[:12]}" in line]
        assert any(reason in line for line in mine), (reason, refused)
    # every later root agrees with the source's headers
    for height in range(97, tip + 1):
        ours = rpc(joiner, "get_block_header_by_height", {"height": height})["result"]["block_header"]
        theirs = rpc(servers[0], "get_block_header_by_height", {"height": height})["result"]["block_header"]
        assert ours == theirs
    below = rpc(joiner, "get_block", {"height": 50})
    assert "joined by state sync at height 96" in below["error"]["message"]
    print(f"joined by state sync in {joined:.1f} s")


async def wait_in_thread(what: str, condition: Callable[[], bool], seconds: float) -> None:
    """Wait until ``condition`` (blocking calls, run on a thread) holds; fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await trio.to_thread.run_sync(condition):
            return
        await trio.sleep(0.5)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
