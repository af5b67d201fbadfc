"""A real network: 12 node processes on 127.0.0.1 (``appchain start``), then a 13th.

One run, in phases, because starting a network is the expensive part:

1. blocks become final on every node; the JSON-RPC answers oxend's shapes and refuses bad calls;
2. hostile connections to one node (garbage, a cut handshake, a replayed handshake, a hello
   claiming another node's key, an oversized frame) are logged and dropped, and it keeps
   producing blocks; its admin endpoint answers bad requests with JSON-RPC errors; each request
   that once ended a node's process (HEAD, a height of 2^64, a lone surrogate in a storage or
   onion field, an ``id`` of 1e400) is answered, and the node goes on making blocks;
3. a node killed with SIGKILL restarts, catches up and signs blocks again;
4. the CLI flow of a new operator (``appchain keys``, ``tx``, ``query``): keys, funds, a
   registration of the 13th node, a contribution, the node active (it syncs from genesis and
   signs or produces blocks), rewards claimed, an unlock, the stake back; every result proven by
   the light client against two nodes; an SNS name bought, resolved and proven. Meanwhile a 14th
   node registers: the chain forms a second swarm, and every account's messages end up held by
   exactly its swarm's members;
5. a node that stops sending uptime proofs is decommissioned on chain, hands its messages over
   and stops serving;

Messages (phase 3 on): stored through any node, read through any member, a member killed and
restarted pulls what it missed, and 3-hop onion requests give what direct requests give.

and after the processes stop, every home holds the same blocks and roots up to the lowest final
height, and replays from genesis to them. The devnet test opens the network page in headless
Chromium and reads /metrics.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from appchain.client.messages import SessionAccount, StorageClient
from appchain.home.chain import replay_from_genesis
from appchain.home.home import Home
from appchain.home.keyfile import read_seed
from appchain.home.tls import client_context
from appchain.lab.checker import check_histories
from appchain.lab.testnet import (
    PORTS_PER_NODE,
    NetworkMember,
    poll_status,
    start_process,
    stop_processes,
    write_testnet,
)
from appchain.node.admin import RpcError, call
from genesis.devnet import load_dev_accounts
from genesis.load import load_genesis
from genesis.presets import DEVNET
from p2p.host import DATA
from p2p.secure import HandshakeFailed, handshake
from state import sns
from state.crypto import bls, ed25519
from state.encoding import encode
from state.events import RegisterNode, SnsBuy, compute_node_proof_message, sign_transaction
from state.types import Atomic, BlsPublicKey, Bytes32, NodeKey, Nonce
from tests.exports import Recorder

NODES = 12


#: Test processes each search their own stretch of 127.0.0.1's ports, below the kernel's ephemeral
#: range (32768 and up), so two pytest-xdist workers never hand out the same block: a block is free
#: only until its nodes bind it, and a worker starting its network a moment after another would
#: otherwise find the same ports still unbound.
PORT_STRETCHES = 4
PORT_FIRST, PORT_LAST = 21000, 32700
_handed_out = [0]  # where this worker's next search starts, past its last block


def free_port_block(count: int) -> int:
    """A base port with ``count`` free ports after it on 127.0.0.1 (checked by binding them).

    The search starts in this test worker's own stretch, after the block it handed out last.
    """
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    width = (PORT_LAST - PORT_FIRST) // PORT_STRETCHES
    first = PORT_FIRST + (worker % PORT_STRETCHES) * width
    for step in range(0, width, 97):
        offset = (_handed_out[0] + step) % max(1, width - count)
        base = first + offset
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            _handed_out[0] = offset + count
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no block of free ports")


def wait_for(what: str, condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def with_node_logs(
    failure: AssertionError, members: Sequence[NetworkMember], lines: int = 12
) -> AssertionError:
    """``failure`` with the end of every node's log: a CI run leaves nothing else behind."""
    tails = []
    for member in members:
        log = member.home / "node.log"
        text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else ["(no log)"]
        tails.append(f"--- {member.home.name}/node.log\n" + "\n".join(text))
    return AssertionError(f"{failure}\n" + "\n".join(tails))


def status(member: NetworkMember) -> dict[str, Any]:
    result = poll_status(member, timeout=2.0)
    return result or {}


class Impostor:
    """Signs hellos with its own key while claiming another node's: the node must refuse it."""

    def __init__(self, claimed: bytes) -> None:
        self.public_key = claimed
        self._key = ed25519.SigningKey(b"\x77" * 32)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


async def hostile_connections(port: int, chain_id: str, victim: bytes) -> None:
    async def raw(data: bytes) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.move_on_after(10):
            try:
                await stream.send_all(data)
                while await stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
        await stream.aclose()

    await raw(bytes(range(256)) * 8)  # garbage
    await raw((300).to_bytes(2, "big") + b"\x00" * 20)  # a handshake cut short

    recorder = Recorder(await trio.open_tcp_stream("127.0.0.1", port))
    channel = await handshake(recorder, ed25519.SigningKey(b"\x55" * 32), chain_id=chain_id, initiator=True)
    await channel.send([DATA + b"\xc1"])  # not a message: penalised, then the connection dropped
    await channel.aclose()
    await raw(bytes(recorder.sent))  # the same handshake, replayed

    stream = await trio.open_tcp_stream("127.0.0.1", port)
    with contextlib.suppress(HandshakeFailed):  # the node refuses the hello and hangs up
        await handshake(stream, Impostor(victim), chain_id=chain_id, initiator=True)  # type: ignore[arg-type]
    await stream.aclose()

    stream = await trio.open_tcp_stream("127.0.0.1", port)
    channel = await handshake(
        stream, ed25519.SigningKey(b"\x66" * 32), chain_id=chain_id, initiator=True, max_frame=1 << 30
    )
    with contextlib.suppress(trio.BrokenResourceError):  # the node hangs up part way
        await channel.send([DATA + bytes(17 * 1024 * 1024)])  # over the 16 MiB frame limit
    await channel.aclose()


GET_INFO = b'{"jsonrpc": "2.0", "id": 1, "method": "get_info"}'


def deadly_requests() -> list[bytes]:
    """Requests each of which once ended a node's process (issue 18): HEAD on any path, a height
    of 2^64, a lone surrogate echoed into an error text, an ``id`` of 1e400."""

    def post(path: str, body: bytes) -> bytes:
        head = f"POST {path} HTTP/1.1\r\nhost: n\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
        return head.encode() + body

    def call(method: str, params: str) -> bytes:
        return post(
            "/json_rpc", f'{{"jsonrpc": "2.0", "id": 1, "method": "{method}", "params": {params}}}'.encode()
        )

    surrogate = '"\\ud800"'
    owner = '"05' + "11" * 32 + '"'
    meta = '{"ephemeral_key": ' + surrogate + "}"
    return [
        *(
            f"HEAD {path} HTTP/1.1\r\nhost: n\r\n\r\n".encode()
            for path in ("/", "/json_rpc", "/metrics", "/x")
        ),
        call("get_checkpoints", '{"start_height": 18446744073709551616}'),
        call("get_quorum_state", '{"start_height": 18446744073709551616}'),
        call("get_block", '{"height": 18446744073709551616}'),
        call("get_evidence", '{"from_height": 18446744073709551616}'),
        post(
            "/storage_rpc/v1",
            f'{{"method": "store", "params": {{"pubkey": {owner}, "data": {surrogate}}}}}'.encode(),
        ),
        post("/storage_rpc/v1", f'{{"method": "retrieve", "params": {{"pubkey": {surrogate}}}}}'.encode()),
        post("/onion_req/v2", len(b"blob").to_bytes(4, "little") + b"blob" + meta.encode()),
        post("/json_rpc", b'{"jsonrpc": "2.0", "id": 1e400, "method": "get_info"}'),
    ]


def raw_http(port: int, request: bytes, *, tls: bool = False) -> bytes:
    """Send one raw request, half-close, and read the whole answer; ``tls``: to a storage port,
    over TLS (no half-close there: the request says ``connection: close``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        sock = client_context().wrap_socket(plain) if tls else plain
        sock.sendall(request)
        if not tls:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def rpc(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + "/json_rpc", data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@dataclass
class StorageReply:
    status: int
    body: Any


def storage_rpc(member: NetworkMember, method: str, params: dict[str, Any]) -> StorageReply:
    """``POST /storage_rpc/v1`` as a Session client sends it."""
    request = urllib.request.Request(
        f"https://127.0.0.1:{member.storage_port}/storage_rpc/v1",
        data=json.dumps({"method": method, "params": params}).encode(),
    )
    try:
        with urllib.request.urlopen(request, timeout=20, context=client_context()) as response:
            return StorageReply(response.status, json.loads(response.read()))
    except urllib.error.HTTPError as error:
        text = error.read()
        return StorageReply(error.code, json.loads(text) if text.startswith(b"{") else text.decode())


def store_message(member: NetworkMember, user: ed25519.SigningKey, data: bytes) -> StorageReply:
    params = {
        "pubkey": "05" + user.public_key.hex(),
        "timestamp": int(time.time() * 1000),
        "ttl": 3_600_000,
        "data": base64.b64encode(data).decode(),
    }
    return storage_rpc(member, "store", params)


def retrieve_messages(member: NetworkMember, user: ed25519.SigningKey) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    signature = base64.b64encode(user.sign(f"retrieve{now}".encode())).decode()
    reply = storage_rpc(
        member, "retrieve", {"pubkey": "05" + user.public_key.hex(), "timestamp": now, "signature": signature}
    )
    assert reply.status == 200, reply
    messages: list[dict[str, Any]] = reply.body["messages"]
    return messages


def registration(net: Path, member: NetworkMember, chain_id: str, amount: int) -> RegisterNode:
    """A full-stake registration of ``member``'s node by a funded dev account."""
    node_key, bls_secret = Home(member.home).load_node_keys()
    sender = load_dev_accounts(net / "keys" / "accounts.json")[0]
    bls_key = BlsPublicKey(bls.public_key(bls_secret))
    tx = RegisterNode(
        sender=sender.public_key,
        nonce=Nonce(1),
        node_key=NodeKey(node_key.public_key),
        bls_key=bls_key,
        bls_pop=bls.prove_possession(bls_secret),
        node_signature=node_key.sign(compute_node_proof_message(node_key.public_key, bls_key)),
        operator_fee_bp=0,
        amount=Atomic(amount),
    )
    signed = sign_transaction(chain_id, tx, sender)
    assert isinstance(signed, RegisterNode)
    return signed


def admin_messages(member: NetworkMember) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = call(("127.0.0.1", member.admin_port), "messages", {})
    except (RpcError, OSError):
        return {"held": {"unreachable": 1}, "swarm": "?"}
    return answer


def swarms_settled(members: list[NetworkMember], users: list[ed25519.SigningKey]) -> int:
    """The number of swarms owning ``users``' accounts when every node holds exactly the accounts
    its swarm owns (as ``get_swarm`` says) and each account is held by all of its swarm's
    members; 0 while that is not so."""
    by_key = {m.node_key.hex(): m for m in members}
    owners: dict[str, set[str]] = {}
    for account in users:
        pubkey = "05" + account.public_key.hex()
        reply = storage_rpc(members[0], "get_swarm", {"pubkey": pubkey})
        owners[pubkey] = {s["pubkey_ed25519"] for s in reply.body["snodes"]}
    if any(not keys <= set(by_key) for keys in owners.values()):
        return 0
    for key, member in by_key.items():
        held_here = {owner for owner in admin_messages(member)["held"] if owner in owners}
        if held_here != {owner for owner, keys in owners.items() if key in keys}:
            return 0
    return len({frozenset(keys) for keys in owners.values()})


def held(member: NetworkMember, user: ed25519.SigningKey) -> set[str]:
    """The hashes a node serves for ``user`` (none while it does not serve the account)."""
    now = int(time.time() * 1000)
    signature = base64.b64encode(user.sign(f"retrieve{now}".encode())).decode()
    params = {"pubkey": "05" + user.public_key.hex(), "timestamp": now, "signature": signature}
    try:
        reply = storage_rpc(member, "retrieve", params)
    except OSError:
        return set()
    return {m["hash"] for m in reply.body["messages"]} if reply.status == 200 else set()


def rpc_result(url: str, method: str, **params: Any) -> Any:
    _, answer = rpc(url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode())
    return answer["result"]


def cli(home: Path, *argv: str, stdin: str = "", expect: int = 0) -> str:
    """Run ``appchain ARGV`` (light client state under ``home``); its stdout, or its stderr when
    it is expected to fail."""
    result = subprocess.run(
        [sys.executable, "-m", "appchain.cli", *argv],
        input=stdin, capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "APPCHAIN_HOME": str(home / "client")},
    )  # fmt: skip
    assert result.returncode == expect, (argv, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout if expect == 0 else result.stderr


def check_json_rpc(url: str, staking_requirement: int) -> None:
    """The public JSON-RPC answers oxend's shapes, and bad requests with JSON-RPC errors."""
    status, info = rpc(url, b'{"jsonrpc": "2.0", "id": 1, "method": "get_info"}')
    result = info["result"]
    assert status == 200 and result["status"] == "OK" and result["immutable_height"] >= 8
    assert result["height"] >= result["immutable_height"] + 1 and len(result["top_block_hash"]) == 64
    assert result["staking_requirement"] == staking_requirement and result["pulse"] is True
    _, last = rpc(url, b'{"jsonrpc": "2.0", "id": 2, "method": "get_last_block_header"}')
    assert last["result"]["block_header"]["height"] >= result["immutable_height"]
    _, first = rpc(
        url, b'{"jsonrpc": "2.0", "id": 3, "method": "get_block_header_by_height", "params": {"height": 1}}'
    )
    header = first["result"]["block_header"]
    assert header["height"] == 1 and header["immutable"] and header["depth"] >= 1
    _, block = rpc(url, b'{"jsonrpc": "2.0", "id": 4, "method": "get_block", "params": {"height": 1}}')
    assert block["result"]["block_header"] == {**header, "depth": block["result"]["block_header"]["depth"]}
    batch = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "hard_fork_info"} for i in range(3)]).encode()
    assert [a["id"] for a in rpc(url, batch)[1]] == [0, 1, 2]

    def call_rpc(method: str, **params: Any) -> Any:
        return rpc(url, json.dumps({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}).encode())[
            1
        ]

    listed = call_rpc("get_service_nodes")["result"]
    entries = listed["service_node_states"]
    assert len(entries) == NODES and all(e["active"] and e["funded"] for e in entries)
    for name in ("service_node_pubkey", "pubkey_ed25519", "pubkey_x25519", "pubkey_bls", "public_ip",
                 "storage_port", "registration_height", "requested_unlock_height", "last_reward_block_height",
                 "earned_downtime_blocks", "swarm_id", "swarm", "staking_requirement", "total_contributed",
                 "portions_for_operator", "operator_fee", "operator_address", "contributors", "pulse_votes",
                 "last_decommission_reason_consensus_all", "last_decommission_reason_consensus_any"):  # fmt: skip
        assert name in entries[0], name
    assert entries[0]["total_contributed"] == staking_requirement == entries[0]["contributors"][0]["amount"]
    assert len(entries[0]["pubkey_x25519"]) == 64 and entries[0]["public_ip"] == "127.0.0.1"
    one = call_rpc(
        "get_service_nodes",
        service_node_pubkeys=[entries[3]["service_node_pubkey"]],
        fields=["active", "swarm"],
    )
    assert one["result"]["service_node_states"] == [{"active": True, "swarm": entries[3]["swarm"]}]
    assert len(call_rpc("get_service_nodes", limit=2)["result"]["service_node_states"]) == 2
    polled = call_rpc("get_service_nodes", poll_block_hash=listed["block_hash"])["result"]
    assert polled["unchanged"] is True or polled["block_hash"] != listed["block_hash"]
    assert call_rpc("get_service_nodes", fields=5)["error"]["code"] == -32602
    own = call_rpc("get_service_node_status")["result"]["service_node_state"]
    assert (
        own["registered"]
        and own["active"]
        and own["service_node_pubkey"] in {e["service_node_pubkey"] for e in entries}
    )
    pulse = call_rpc("get_quorum_state", quorum_type=3)["result"]["quorums"]
    assert (
        len(pulse) == 1
        and len(pulse[0]["quorum"]["validators"]) == 11
        and len(pulse[0]["quorum"]["workers"]) == 1
    )
    tip = listed["height"]
    checkpoint_height = tip - tip % 4
    kept = call_rpc("get_quorum_state", start_height=checkpoint_height, end_height=tip, quorum_type=1)[
        "result"
    ]["quorums"]
    assert kept and all(q["height"] % 4 == 0 and len(q["quorum"]["validators"]) == NODES for q in kept)
    assert call_rpc("get_quorum_state", start_height=5, end_height=1)["error"]["code"] == -32602
    checkpoints = call_rpc("get_checkpoints", start_height=0)["result"]
    heights = [c["height"] for c in checkpoints["checkpoints"]]
    assert heights and all(h % 4 == 0 for h in heights) and max(heights) <= checkpoints["immutable_height"]
    operator = entries[0]["operator_address"]
    accrued = call_rpc("get_accrued_rewards", addresses=[operator])["result"]
    rewards = accrued["balances"]
    assert isinstance(rewards[operator], int) and rewards[operator] >= 0
    assert rewards[operator] == accrued["settled"][operator] + accrued["pending"][operator]
    assert call_rpc("get_accrued_rewards", addresses=["beef"])["error"]["code"] == -32602
    for body, code in (
        (b'{"jsonrpc": "2.0", "id": 5, "method": "get_wallet_seed"}', -32601),
        (b'{"jsonrpc": "2.0", "id": 6, "method": "get_block", "params": {"height": "one"}}', -32602),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "get_block", "params": {"height": 99999999}}', -32001),
        (b'{"jsonrpc": "2.0", "id": 8, "method": "send_transaction", "params": {"tx_as_hex": "00"}}', -32602),
        (b"{not json", -32700),
        (b"[" * 5000, -32700),
        (json.dumps([{"jsonrpc": "2.0", "id": i, "method": "get_info"} for i in range(51)]).encode(), -32600),
    ):
        status, answer = rpc(url, body)
        assert status == 200 and answer["error"]["code"] == code, (body[:60], answer)
    status, answer = rpc(url, b" " * (2 * 1024 * 1024))
    assert status == 413 and answer["error"]["code"] == -32600


def check_sns(url: str, net: Path, chain_id: str) -> None:
    """A name bought through send_transaction resolves through ons_resolve and names_to_owners."""
    buyer = load_dev_accounts(net / "keys" / "accounts.json")[-2]
    session_id = b"\x05" + bytes(range(32))
    value = sns.encrypt_value("alice", session_id, b"\x24" * 24)
    name_hash = sns.compute_name_hash("alice")
    buy = sign_transaction(
        chain_id, SnsBuy(buyer.public_key, Nonce(1), Bytes32(name_hash), value, buyer.public_key), buyer
    )

    def call_rpc(method: str, **params: Any) -> Any:
        return rpc(url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode())[
            1
        ]

    assert call_rpc("ons_resolve", type=0, name_hash=name_hash.hex())["result"] == {}  # not bought yet
    assert call_rpc("send_transaction", tx_as_hex=encode(buy).hex())["result"]["status"] == "OK"
    wait_for(
        "the name to resolve",
        lambda: call_rpc("ons_resolve", type=0, name_hash=name_hash.hex())["result"] != {},
        60,
    )
    resolved = call_rpc("ons_resolve", type=0, name_hash=base64.b64encode(name_hash).decode())["result"]
    stored = bytes.fromhex(resolved["encrypted_value"]) + bytes.fromhex(resolved["nonce"])
    assert sns.decrypt_value("alice", stored) == session_id
    owners = call_rpc("ons_names_to_owners", entries=[name_hash.hex(), "00" * 32])["result"]["entries"]
    assert [(e["entry_index"], e["owner"]) for e in owners] == [(0, buyer.public_key.hex())]
    by_owner = call_rpc("ons_owners_to_names", entries=["00" * 32, buyer.public_key.hex()])["result"][
        "entries"
    ]
    padded = base64.b64encode(name_hash).decode()  # oxend's form of a name hash in answers
    assert [(e["request_index"], e["name_hash"]) for e in by_owner] == [(1, padded)]
    assert call_rpc("ons_owners_to_names", entries=["xyz"])["error"]["code"] == -32602
    accounts = call_rpc("get_accounts", addresses=[buyer.public_key.hex()])["result"]["accounts"]
    assert accounts[buyer.public_key.hex()]["nonce"] == 1
    assert accounts[buyer.public_key.hex()]["balance_str"] == str(accounts[buyer.public_key.hex()]["balance"])
    assert call_rpc("ons_resolve", type=2, name_hash=name_hash.hex())["result"] == {}  # lokinet: none here
    assert call_rpc("ons_resolve", type=3, name_hash=name_hash.hex())["error"]["code"] == -32602
    assert call_rpc("ons_resolve", type=0, name_hash="xyz")["error"]["code"] == -32602


@pytest.mark.slow
def test_a_network_of_node_processes(tmp_path: Path) -> None:
    net = tmp_path / "net"
    # the devnet rules with shorter delays, so the operator's whole life fits in the test
    params = msgspec.structs.replace(DEVNET, payable_delay=4, unlock_delay=8, small_contributor_lock=8)
    members = write_testnet(
        net,
        NODES,
        base_port=free_port_block(PORTS_PER_NODE * (NODES + 2)),
        seed="e2e",
        spare=2,
        params=params,
    )
    nodes, spare, second = members[:NODES], members[NODES], members[NODES + 1]
    genesis = load_genesis(net / "genesis.json")
    processes: dict[int, subprocess.Popen[bytes]] = {i: start_process(m.home) for i, m in enumerate(nodes)}
    try:
        # 1. blocks become final everywhere
        wait_for(
            "8 final blocks on every node",
            lambda: all(status(m).get("final_height", 0) >= 8 for m in nodes),
            150,
        )

        # `appchain status` asks the running node (it holds the database)
        shown = subprocess.run(
            [sys.executable, "-m", "appchain.cli", "status", "--home", str(nodes[0].home), "--json"],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        running = json.loads(shown.stdout)
        assert running["running"] and running["final_height"] >= 8 and running["peers"] >= NODES - 1
        assert running["genesis_hash"] == genesis.hash.hex() and len(running["final_root"]) == 64
        assert running["service_node"]["status"] == "active"
        assert running["rpc_url"] == f"http://127.0.0.1:{nodes[0].rpc_port}"
        check_json_rpc(running["rpc_url"], genesis.params.staking_requirement)

        # 2. hostile connections to node 1; it keeps producing blocks
        victim = nodes[1]
        before = status(victim)["height"]
        trio.run(hostile_connections, victim.p2p_port, genesis.chain_id, nodes[0].node_key)
        wait_for("node 1 to go on", lambda: status(victim).get("height", 0) >= before + 3, 60)
        log = (victim.home / "node.log").read_text()
        assert "handshake failed" in log and "peer misbehaved" in log
        assert status(victim)["p2p_violations"] >= 4
        admin = ("127.0.0.1", nodes[0].admin_port)
        for method, params, code in (
            ("no_such_method", {}, -32601),
            ("submit_transaction", {"tx": "zz"}, -32602),
            ("set_uptime_proofs", {"enabled": "yes"}, -32602),
        ):
            with pytest.raises(RpcError) as caught:
                call(admin, method, params)
            assert caught.value.code == code
        with socket.create_connection(admin, timeout=5) as sock:
            sock.sendall(b"[" * 100_000 + b"\n")
            assert json.loads(sock.makefile().readline())["error"]["code"] == -32700

        # 2b. the requests that once ended a node's process: node 0 answers each, and goes on
        before = status(nodes[0])["height"]
        for request in deadly_requests():
            storage = request.startswith((b"POST /storage_rpc/", b"POST /onion_req/"))
            port = nodes[0].storage_port if storage else nodes[0].rpc_port
            answer = raw_http(port, request, tls=storage)
            assert answer.startswith(b"HTTP/1.1 "), (request[:80], answer[:200])
            assert int(answer[9:12]) < 500, (request[:80], answer[:300])
            assert b"Infinity" not in answer and b"NaN" not in answer
            code, info = rpc(f"http://127.0.0.1:{nodes[0].rpc_port}", GET_INFO)
            assert code == 200 and info["result"]["height"] >= before, request[:80]
        wait_for("node 0 to go on making blocks", lambda: status(nodes[0]).get("height", 0) >= before + 3, 60)
        assert "error unexpected error" not in (nodes[0].home / "node.log").read_text()

        # 3. SIGKILL a node, restart it: it catches up and signs again, and gets back from its
        # swarm the messages stored while it was down
        killed = 2
        user = ed25519.SigningKey(b"\x07" * 32)
        before = store_message(nodes[0], user, b"before the kill")
        assert before.status == 200 and len(before.body["swarm"]) == NODES  # one swarm of 12
        processes[killed].send_signal(signal.SIGKILL)
        processes[killed].wait()
        during = store_message(nodes[1], user, b"while it was down")
        assert during.status == 200
        assert during.body["swarm"][nodes[killed].node_key.hex()]["failed"] is True
        assert sum(1 for r in during.body["swarm"].values() if "hash" in r) == NODES - 1
        time.sleep(0.5)
        processes[killed] = start_process(nodes[killed].home)
        wait_for(
            "the restarted node to catch up and sign",
            lambda: (
                (s := status(nodes[killed])).get("height", 0) >= status(nodes[0]).get("height", 1 << 30) - 1
                and s.get("signed", 0) + s.get("produced", 0) > 0
            ),
            120,
        )
        # a restart is not a failed test: the node was never decommissioned (a 12-node network with
        # one node down could not form a Pulse quorum again)
        url0 = f"http://127.0.0.1:{nodes[0].rpc_port}"
        states = {
            n["service_node_pubkey"]: n for n in rpc_result(url0, "get_service_nodes")["service_node_states"]
        }
        assert states[nodes[killed].node_key.hex()]["active"] is True
        wanted = {before.body["hash"], during.body["hash"]}
        wait_for(
            "the restarted node to hold every message of its swarm",
            lambda: held(nodes[killed], user) == wanted,
            60,
        )
        for member in (nodes[0], nodes[7], nodes[11]):  # stored through any node, read through any
            assert {m["hash"] for m in retrieve_messages(member, user)} == wanted
        for path, port in (("/storage_rpc/v1", nodes[0].storage_port), ("/json_rpc", nodes[0].rpc_port)):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:  # a body over the
                sock = client_context().wrap_socket(plain) if path != "/json_rpc" else plain  # limit: unread
                sock.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 20000000\r\n\r\n".encode())
                assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 413")
        # the same through 3-hop onion requests (a Session ID account, signed with its Ed25519 key)
        cli(tmp_path, "keys", "new", "--out", str(tmp_path / "session.key"))
        stored = json.loads(cli(tmp_path, "msg", "store", "--key", str(tmp_path / "session.key"), "--rpc", url0,
                                "--data", "through the onion", "--onion", "--json"))  # fmt: skip
        assert len(stored["via"]) == 4 and len(set(stored["via"])) == 4  # three hops, then a swarm member
        assert sum(1 for r in stored["swarm"].values() if "hash" in r) == NODES
        account = SessionAccount(ed25519.SigningKey(read_seed(tmp_path / "session.key")))
        direct = StorageClient(url0).call(account.session_id, "retrieve", account.retrieve())
        onion = StorageClient(f"http://127.0.0.1:{nodes[4].rpc_port}", onion=True)
        routed = onion.call(account.session_id, "retrieve", account.retrieve())
        assert direct[0] == routed[0] == 200 and direct[1]["messages"] == routed[1]["messages"]
        assert [base64.b64decode(m["data"]) for m in routed[1]["messages"]] == [b"through the onion"]

        # 4. the CLI flow a new operator follows: keys, funds, registration, a contribution, the
        # node active and paid, rewards claimed, unlock, the stake back; every step waits until
        # final, and the light client proves the results against two nodes
        urls = [f"http://127.0.0.1:{nodes[0].rpc_port}", f"http://127.0.0.1:{nodes[3].rpc_port}"]
        url = urls[0]
        verified = ("--genesis", str(net / "genesis.json"))  # tx: the light client proves finality
        # meanwhile a 14th node registers (through the admin endpoint): with 14 active nodes the
        # chain forms a second swarm, and the messages of the accounts it takes move to it
        tx = registration(net, second, genesis.chain_id, genesis.params.staking_requirement)
        assert call(("127.0.0.1", nodes[0].admin_port), "submit_transaction", {"tx": encode(tx).hex()})[
            "hash"
        ]
        processes[NODES + 1] = start_process(second.home)
        users = [ed25519.SigningKey(bytes([80 + i]) * 32) for i in range(12)]
        for index, account in enumerate(users):
            assert store_message(nodes[index % NODES], account, b"before the split").status == 200
        funder_seed = load_dev_accounts(net / "keys" / "accounts.json")[-1].seed
        cli(tmp_path, "keys", "import", "--out", str(tmp_path / "funder.key"), stdin=funder_seed.hex())
        operator = json.loads(cli(tmp_path, "keys", "new", "--out", str(tmp_path / "op.key"), "--json"))[
            "account"
        ]
        friend = json.loads(cli(tmp_path, "keys", "new", "--out", str(tmp_path / "friend.key"), "--json"))[
            "account"
        ]
        node_key = json.loads(cli(tmp_path, "keys", "show", "--node", "--home", str(spare.home), "--json"))[
            "node_key"
        ]
        requirement = genesis.params.staking_requirement // 10**9  # SESH
        for account, amount in ((operator, requirement), (friend, requirement // 4 + 1)):
            sent = cli(tmp_path, "tx", "transfer", "--key", str(tmp_path / "funder.key"), "--rpc", url,
                       *verified, "--to", account, "--amount", str(amount))  # fmt: skip
            assert "is final: in block" in sent
        cli(tmp_path, "tx", "register", "--key", str(tmp_path / "op.key"), "--rpc", url, *verified,
            "--node-home", str(spare.home), "--amount", str(requirement * 3 // 4), "--fee-bp", "500")  # fmt: skip
        again = cli(tmp_path, "tx", "transfer", "--key", str(tmp_path / "op.key"), "--rpc", url,
                    *verified, "--to", friend, "--amount", "1", "--nonce", "1", expect=1)  # fmt: skip
        assert "nonce" in again  # the nonce the registration used
        processes[NODES] = start_process(spare.home)
        refused = cli(tmp_path, "tx", "contribute", "--key", str(tmp_path / "friend.key"), "--rpc", url,
                      *verified, "--node", node_key, "--amount", str(requirement), expect=1)  # fmt: skip
        assert "refused" in refused  # more than the open stake
        cli(tmp_path, "tx", "contribute", "--key", str(tmp_path / "friend.key"), "--rpc", url, *verified,
            "--node", node_key, "--amount", str(requirement // 4))  # fmt: skip
        wait_for(
            "the new node to be active and in quorums",
            lambda: (
                ((s := status(spare)).get("service_node") or {}).get("status") == "active"
                and s.get("signed", 0) + s.get("produced", 0) > 0
            ),
            150,
        )
        assert status(spare)["height"] >= status(nodes[0])["height"] - 2
        wait_for(
            "the 14th node to be active",
            lambda: (status(second).get("service_node") or {}).get("status") == "active",
            120,
        )
        running = [*nodes, spare, second]
        wait_for(
            "two swarms, each node holding exactly the accounts its swarm owns",
            lambda: swarms_settled(running, [user, *users]) == 2,
            120,
        )
        for member in running:  # the messages stored before the split are where their owners are
            owners_here = admin_messages(member)["held"]
            if "05" + user.public_key.hex() in owners_here:
                assert held(member, user) == wanted
        light = ["--genesis", str(net / "genesis.json"), *(a for u in urls for a in ("--rpc", u))]
        shown = json.loads(cli(tmp_path, "query", "node", node_key, *light, "--json"))
        assert shown["status"] == "active" and shown["operator"] == operator and len(shown["sources"]) == 2
        wait_for(
            "the operator to be paid",
            lambda: rpc_result(url, "get_accrued_rewards", addresses=[operator])["balances"][operator] > 0,
            120,
        )
        before = json.loads(cli(tmp_path, "query", "balance", operator, *light, "--json"))["balance"]
        cli(tmp_path, "tx", "claim", "--key", str(tmp_path / "op.key"), "--rpc", url, *verified)
        claimed = json.loads(cli(tmp_path, "query", "balance", operator, *light, "--json"))
        assert claimed["balance"] > before - 10**9 // 1000  # rewards in, one claim fee out
        rewards = json.loads(cli(tmp_path, "query", "rewards", operator, *light, "--json"))
        assert rewards["lifetime"] > 0
        cli(tmp_path, "tx", "unlock", "--key", str(tmp_path / "op.key"), "--rpc", url, *verified,
            "--node", node_key)  # fmt: skip
        wait_for(
            "the node to leave and the stake to return",
            lambda: json.loads(cli(tmp_path, "query", "node", node_key, *light, "--json"))["absent"],
            120,
        )
        returned = json.loads(cli(tmp_path, "query", "balance", operator, *light, "--json"))["balance"]
        assert returned >= claimed["balance"] + genesis.params.staking_requirement * 3 // 4 - 10**9 // 100

        check_sns(url, net, genesis.chain_id)
        wait_for(  # resolved at the tip; the light client proves it once a checkpoint covers it
            "the name to be final",
            lambda: not json.loads(cli(tmp_path, "query", "sns", "alice", *light, "--json"))["absent"],
            60,
        )
        name = json.loads(cli(tmp_path, "query", "sns", "alice", *light, "--json"))
        assert name["session_id"] == "05" + bytes(range(32)).hex() and not name["expired"]
        assert json.loads(cli(tmp_path, "query", "sns", "nobody-has-this", *light, "--json"))["absent"]
        assert "absent (proven)" in cli(tmp_path, "query", "balance", "ab" * 32, *light)

        # 5. a node that stops its uptime proofs is decommissioned on chain (13 active before it,
        # so 12 after: Pulse goes on; PROTOCOL.md §4 needs 12)
        quiet = nodes[5]
        assert call(("127.0.0.1", quiet.admin_port), "set_uptime_proofs", {"enabled": False}) == {
            "enabled": False
        }
        wait_for(
            "the quiet node to be decommissioned",
            lambda: (status(quiet).get("service_node") or {}).get("status") == "decommissioned",
            150,
        )
        # it leaves its swarm once that is final: it hands its messages over and stops serving
        wait_for(
            "the decommissioned node to hand its messages over",
            lambda: not admin_messages(quiet)["held"] and admin_messages(quiet)["swarm"] is None,
            120,
        )
        assert storage_rpc(quiet, "retrieve", {"pubkey": "05" + user.public_key.hex()}).status == 421
        serving = [m for m in (*nodes, second) if m is not quiet]
        assert swarms_settled(serving, users) == 2  # every account still held by all its owners
    except AssertionError as failure:
        raise with_node_logs(failure, members) from failure
    finally:
        stop_processes(list(processes.values()))
    for process in processes.values():
        assert process.returncode is not None
    # the histories of every node: no two final blocks at a height, no double sign, one root each
    report = check_histories([m.home for m in members])
    print(f"history check: {report.to_json()}")
    assert report.ok and report.final_records > 0 and report.signatures > 0, report.to_json()
    # every home: the same blocks up to the lowest final height, and a replay reaches them
    homes = [Home(m.home) for m in members]
    chains = [home.open_chain() for home in homes]
    try:
        final = min(chain.final_height for chain in chains)
        assert final >= 8
        headers = {chain.store.get_header(final) for chain in chains}
        assert len(headers) == 1
        replayed = replay_from_genesis(chains[killed].store, chains[killed].genesis, verify_signatures=True)
        assert replayed.root == chains[killed].state.root
    finally:
        for chain in chains:
            chain.close()
    assert not [p for p in processes.values() if p.poll() is None]


@pytest.mark.slow
def test_devnet_starts_the_processes_shows_them_and_stops_them_all(tmp_path: Path) -> None:
    folder = tmp_path / "devnet"
    base = free_port_block(PORTS_PER_NODE * NODES)
    devnet = subprocess.Popen(
        [sys.executable, "-m", "appchain.cli", "devnet", "--home", str(folder), "--seconds", "40",
         "--base-port", str(base)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{base + 2}"  # node 0's RPC port
        verified = ("--genesis", str(folder / "genesis.json"))
        wait_for("a final checkpoint on node 0", lambda: _final_height(url) >= 4, 60)
        check_metrics(url)
        seed = load_dev_accounts(folder / "keys" / "accounts.json")[0].seed.hex()
        cli(tmp_path, "keys", "import", "--out", str(tmp_path / "user.key"), stdin=seed)
        session_id = "05" + "5a" * 32
        cli(tmp_path, "tx", "sns-buy", "--key", str(tmp_path / "user.key"), "--rpc", url, *verified,
            "--name", "carol", "--session-id", session_id)  # fmt: skip
        check_network_page(url, "carol", session_id)
        stdout, stderr = devnet.communicate(timeout=180)
    finally:
        if devnet.poll() is None:
            devnet.kill()
            devnet.wait()
    assert devnet.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "started 12 node processes" in stdout
    assert "final roots agree at every height: True" in stdout
    pids = [int(p) for p in stdout.split("pids ", 1)[1].splitlines()[0].split(", ")]
    for pid in pids:  # every child was reaped: none is left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for index in range(NODES):
        assert "stopped" in (folder / f"node{index}" / "node.log").read_text()


def _final_height(url: str) -> int:
    try:
        return int(rpc_result(url, "get_info")["immutable_height"])
    except (OSError, KeyError):
        return -1


def check_metrics(url: str) -> None:
    """Prometheus text at /metrics: the node's own state, and the RPC calls it answered."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    info = rpc_result(url, "get_info")
    assert values["appchain_final_height"] <= info["immutable_height"]
    assert values["appchain_height"] >= values["appchain_final_height"] >= 4
    assert values["appchain_peers"] == NODES - 1 and values["appchain_mempool_transactions"] >= 0
    assert 100 <= values["appchain_template_event_limit"] <= 10_000
    assert values['appchain_service_node_state{state="active"}'] == 1
    assert values['appchain_rpc_calls_total{method="get_info",outcome="ok"}'] >= 1
    assert 'appchain_rpc_call_seconds_bucket{le="0.01",method="get_info"}' in values
    assert any(name.startswith("appchain_pulse_stage_seconds{") for name in values)


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def check_network_page(url: str, name: str, session_id: str) -> None:
    """The page at / in headless Chromium shows what get_info and get_service_nodes say, and its
    SNS lookup decrypts a name bought just now (hashing and decryption run in the page)."""
    assert BROWSER is not None, "chromium is not installed (.ci/run installs it; apt-get install chromium)"
    before = rpc_result(url, "get_info")
    dom = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=6000",
         "--dump-dom", url + f"/#sns={name.upper()}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    after = rpc_result(url, "get_info")

    def text_of(element_id: str) -> str:
        start = dom.index(f'id="{element_id}"')
        return dom[dom.index(">", start) + 1 : dom.index("<", start)]

    assert text_of("error") == ""
    assert before["height"] - 1 <= int(text_of("height")) <= after["height"] - 1
    assert before["immutable_height"] <= int(text_of("final-height")) <= after["immutable_height"]
    shown_height = int(dom.split('data-loaded-height="', 1)[1].split('"', 1)[0])
    nodes = rpc_result(url, "get_service_nodes")["service_node_states"]
    assert int(text_of("node-count")) == len(nodes) == NODES
    assert int(text_of("active-count")) == sum(n["active"] for n in nodes)
    rows = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("<tr ")[1:]
    for row, entry in zip(rows, nodes, strict=True):
        cells = [cell.split(">", 1)[1] for cell in row.split("</td>")[:-1]]
        assert row.startswith(f'data-key="{entry["service_node_pubkey"]}"')
        assert cells[1] == entry["status"] and cells[3] == entry["swarm"]
        assert abs(int(cells[2]) - entry["earned_downtime_blocks"]) <= after["height"] - shown_height
    # past Pulse quorums are not kept, so the shown one is checked by its shape and its height: the
    # quorum of a block after the one the page loaded, drawn from the registered nodes
    pulse_height = int(text_of("pulse-height"))
    assert shown_height < pulse_height <= after["height"] + 1
    keys = {n["service_node_pubkey"] for n in nodes}
    validators = dom.split('id="pulse-validators">', 1)[1].split("</ol>", 1)[0].split("<li")[1:]
    shown_quorum = [v.split(">", 1)[1].split("</li>", 1)[0] for v in validators] + [text_of("pulse-producer")]
    assert len(set(shown_quorum)) == len(shown_quorum) == 12 and set(shown_quorum) <= keys
    assert f'data-session-id="{session_id}"' in dom and f"{name} → Session ID {session_id}" in dom
