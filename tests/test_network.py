"""A real network: 12 node processes on 127.0.0.1 (``appchain start``), then a 13th.

One run, in phases, because starting a network is the expensive part:

1. blocks become final on every node;
2. hostile connections to one node (garbage, a cut handshake, a replayed handshake, a hello
   claiming another node's key, an oversized frame) are logged and dropped, and it keeps
   producing blocks; its admin endpoint answers bad requests with JSON-RPC errors;
3. a node killed with SIGKILL restarts, catches up and signs blocks again;
4. a 13th node registers by transaction, syncs from genesis, becomes active and is picked for
   quorums (it signs or produces blocks);
5. a node that stops sending uptime proofs is decommissioned on chain;

and after the processes stop, every home holds the same blocks and roots up to the lowest final
height, and replays from genesis to them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from appchain.admin import RpcError, call
from appchain.chain import replay_from_genesis
from appchain.home import Home
from appchain.testnet import NetworkMember, poll_status, start_process, stop_processes, write_testnet
from genesis.devnet import load_dev_accounts
from genesis.document import load_genesis
from p2p.host import DATA
from p2p.secure import HandshakeFailed, handshake
from state import sns
from state.crypto import bls, ed25519
from state.encoding import encode
from state.events import RegisterNode, SnsBuy, compute_node_proof_message, sign_transaction
from state.types import Atomic, BlsPublicKey, Bytes32, NodeKey, Nonce
from tests.exports import Recorder

NODES = 12


def free_port_block(count: int) -> int:
    """A base port with ``count`` free ports after it on 127.0.0.1 (checked by binding them)."""
    for base in range(21000, 60000, 97):
        sockets = []
        try:
            for offset in range(count):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", base + offset))
                sockets.append(sock)
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


def rpc(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + "/json_rpc", data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


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
    rewards = call_rpc("get_accrued_rewards", addresses=[operator])["result"]["balances"]
    assert isinstance(rewards[operator], int) and rewards[operator] >= 0
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
    assert call_rpc("ons_resolve", type=2, name_hash=name_hash.hex())["error"]["code"] == -32602
    assert call_rpc("ons_resolve", type=0, name_hash="xyz")["error"]["code"] == -32602


def registration(net: Path, spare: NetworkMember, chain_id: str, amount: int) -> RegisterNode:
    home = Home(spare.home)
    node_key, bls_secret = home.load_node_keys()
    sender = load_dev_accounts(net / "keys" / "accounts.json")[-1]  # a funded user
    bls_key = BlsPublicKey(bls.public_key(bls_secret))
    tx = RegisterNode(
        sender=sender.public_key,
        nonce=Nonce(1),
        node_key=NodeKey(node_key.public_key),
        bls_key=bls_key,
        bls_pop=bls.prove_possession(bls_secret),
        node_signature=node_key.sign(compute_node_proof_message(node_key.public_key, bls_key)),
        operator_fee_bp=500,
        amount=Atomic(amount),
    )
    signed = sign_transaction(chain_id, tx, sender)
    assert isinstance(signed, RegisterNode)
    return signed


@pytest.mark.slow
def test_a_network_of_node_processes(tmp_path: Path) -> None:
    net = tmp_path / "net"
    members = write_testnet(net, NODES, base_port=free_port_block(3 * (NODES + 1)), seed="e2e", spare=1)
    nodes, spare = members[:NODES], members[NODES]
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

        # 3. SIGKILL a node, restart it: it catches up and signs again
        killed = 2
        processes[killed].send_signal(signal.SIGKILL)
        processes[killed].wait()
        time.sleep(2.0)
        processes[killed] = start_process(nodes[killed].home)
        wait_for(
            "the restarted node to catch up and sign",
            lambda: (
                (s := status(nodes[killed])).get("height", 0) >= status(nodes[0]).get("height", 1 << 30) - 1
                and s.get("signed", 0) + s.get("produced", 0) > 0
            ),
            120,
        )

        # 4. a 13th node registers by transaction, syncs from genesis, becomes active, takes part
        tx = registration(net, spare, genesis.chain_id, genesis.params.staking_requirement)
        assert call(admin, "submit_transaction", {"tx": encode(tx).hex()})["hash"]
        sender = load_dev_accounts(net / "keys" / "accounts.json")[-1]
        conflicting = sign_transaction(
            genesis.chain_id, msgspec.structs.replace(tx, operator_fee_bp=600), sender
        )
        with pytest.raises(RpcError) as again:  # another transaction with the same nonce: refused
            call(admin, "submit_transaction", {"tx": encode(conflicting).hex()})
        assert again.value.code == -32000 and "nonce" in str(again.value)
        processes[NODES] = start_process(spare.home)
        wait_for(
            "the new node to be active and in quorums",
            lambda: (
                ((s := status(spare)).get("service_node") or {}).get("status") == "active"
                and s.get("signed", 0) + s.get("produced", 0) > 0
            ),
            150,
        )
        assert status(spare)["height"] >= status(nodes[0])["height"] - 2

        check_sns(f"http://127.0.0.1:{nodes[0].rpc_port}", net, genesis.chain_id)

        # 5. a node that stops its uptime proofs is decommissioned on chain
        quiet = nodes[5]
        assert call(("127.0.0.1", quiet.admin_port), "set_uptime_proofs", {"enabled": False}) == {
            "enabled": False
        }
        wait_for(
            "the quiet node to be decommissioned",
            lambda: (status(quiet).get("service_node") or {}).get("status") == "decommissioned",
            150,
        )
    finally:
        stop_processes(list(processes.values()))
    for process in processes.values():
        assert process.returncode is not None
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
    result = subprocess.run(
        [sys.executable, "-m", "appchain.cli", "devnet", "--home", str(folder), "--seconds", "25",
         "--base-port", str(free_port_block(3 * NODES))],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "started 12 node processes" in result.stdout
    assert "final roots agree at every height: True" in result.stdout
    pids = [int(p) for p in result.stdout.split("pids ", 1)[1].splitlines()[0].split(", ")]
    for pid in pids:  # every child was reaped: none is left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for index in range(NODES):
        assert "stopped" in (folder / f"node{index}" / "node.log").read_text()
