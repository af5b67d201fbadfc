"""The public JSON-RPC as oxend 10's clients call it: the block explorer (oxen-observer) and
Session's seed call. Each answer is checked against oxend's shapes (field names, JSON types,
orders: ``core_rpc_server_commands_defs.h`` of oxen-core v10.6.0), on a 45-block dev chain
served in-process, and the invalid cases (unknown hashes, heights out of range) are refused.
The one HTTP test sends the seed call exactly as Session Desktop does (``SeedNodeAPI.ts``)."""

from __future__ import annotations

import base64
import functools
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
import trio

from appchain.home.chain import Chain
from appchain.home.home import Home, NodeConfig
from appchain.messaging.rpc import HARDFORK
from appchain.node import admin
from appchain.node.ledger import ChainLedger
from appchain.rpc.methods import ALIASES, handle_body
from appchain.rpc.server import RpcLimits, RpcServer
from consensus.mempool import Mempool
from consensus.uptime import PulseRecord
from state.block import compute_block_hash
from state.events import Contribute, RegisterNode, SnsBuy, compute_event_hash
from state.ledger import compute_fee
from state.sns import NAME_PREFIX, get_name
from state.supply import compute_supply
from state.view import Overlay
from tests.conftest import extend
from tests.helpers import served_node
from tests.test_rpc_limits import Client


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, devnet_dir: Path) -> Iterator[Chain]:
    home, _ = Home.init(
        tmp_path_factory.mktemp("oxend") / "home", devnet_dir / "genesis.json", NodeConfig(sync_writes=False)
    )
    with home.open_chain() as opened:
        extend(opened, home, 45, per_block=30)
        yield opened


@pytest.fixture
def node(chain: Chain) -> Any:
    core = SimpleNamespace(
        node_key=bytes(32),
        mempool=Mempool(chain.state.chain_id),
        proofs=SimpleNamespace(accepted={}),
        pulse_record=PulseRecord(),
    )
    ledger = ChainLedger(chain)
    return served_node(chain=chain, ledger=ledger, core=core, host=SimpleNamespace(peers={}))


def call(node: Any, method: str, **params: Any) -> dict[str, Any]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    answer: dict[str, Any] = json.loads(json.dumps(handle_body(node, body)))
    return answer


def result(node: Any, method: str, **params: Any) -> dict[str, Any]:
    answer = call(node, method, **params)
    assert "result" in answer, answer
    return answer["result"]  # type: ignore[no-any-return]


def error(node: Any, method: str, **params: Any) -> tuple[int, str]:
    answer = call(node, method, **params)
    assert "error" in answer, answer
    return answer["error"]["code"], answer["error"]["message"]


def has_shape(value: dict[str, Any], shape: dict[str, type | tuple[type, ...]]) -> None:
    """Every field of ``shape`` is in ``value`` with that JSON type (a bool is not an int)."""
    for name, kind in shape.items():
        assert name in value, name
        field = value[name]
        assert isinstance(field, kind), (name, field)
        if kind is int:
            assert not isinstance(field, bool), name


# oxend 10's field names and JSON types (core_rpc_server_commands_defs.h)
BLOCK_HEADER = {
    "major_version": int, "minor_version": int, "timestamp": int, "prev_hash": str, "nonce": int,
    "orphan_status": bool, "height": int, "depth": int, "hash": str, "difficulty": int,
    "cumulative_difficulty": int, "reward": int, "coinbase_payouts": int, "block_size": int,
    "block_weight": int, "num_txes": int, "miner_tx_hash": str, "service_node_winner": str,
}  # fmt: skip
GET_INFO = {
    "status": str, "height": int, "target_height": int, "immutable_height": int, "immutable_block_hash": str,
    "pulse_ideal_timestamp": int, "pulse_target_timestamp": int, "difficulty": int, "target": int,
    "hard_fork": int, "tx_pool_size": int, "mainnet": bool, "testnet": bool, "devnet": bool, "nettype": str,
    "top_block_hash": str, "cumulative_difficulty": int, "block_size_limit": int, "block_weight_limit": int,
    "offline": bool, "untrusted": bool, "database_size": int, "version": str, "status_line": str,
}  # fmt: skip
SERVICE_NODE = {
    "service_node_pubkey": str, "registration_height": int, "registration_hf_version": int,
    "requested_unlock_height": int, "last_reward_block_height": int, "last_reward_transaction_index": int,
    "active": bool, "funded": bool, "state_height": int, "earned_downtime_blocks": int,
    "service_node_version": list, "storage_server_version": list, "contributors": list,
    "total_contributed": int, "total_reserved": int, "staking_requirement": int, "portions_for_operator": int,
    "swarm_id": int, "swarm": str, "operator_address": str, "public_ip": str, "storage_port": int,
    "pubkey_ed25519": str, "pubkey_x25519": str, "last_uptime_proof": int, "storage_server_reachable": bool,
    "storage_server_first_unreachable": int, "storage_server_last_unreachable": int,
    "storage_server_last_reachable": int, "lokinet_reachable": bool, "lokinet_first_unreachable": int,
    "lokinet_last_unreachable": int, "lokinet_last_reachable": int,
}  # fmt: skip
TX_ENTRY = {"tx_hash": str, "as_json": str, "size": int, "in_pool": bool, "double_spend_seen": bool}
POOL_TX = {
    "id_hash": str, "tx_json": str, "blob_size": int, "weight": int, "fee": int, "receive_time": int,
    "relayed": bool, "last_relayed_time": int, "do_not_relay": bool, "kept_by_block": bool, "tx_blob": str,
}  # fmt: skip


# -- transport ----------------------------------------------------------------------------------------


def test_calls_without_jsonrpc_or_id_are_answered_as_oxend_answers_them(node: Any) -> None:
    for request, expected_id in [
        ({"method": "hard_fork_info"}, ""),  # neither "jsonrpc" nor "id"
        ({"jsonrpc": "2.0", "method": "hard_fork_info"}, ""),
        ({"jsonrpc": "1.0", "id": 7, "method": "hard_fork_info"}, 7),  # "jsonrpc" is never read
        ({"id": None, "method": "hard_fork_info"}, None),
        ({"id": "abc", "method": "hard_fork_info"}, "abc"),
    ]:
        answer = handle_body(node, json.dumps(request).encode())
        assert answer["id"] == expected_id and answer["result"]["version"] == HARDFORK[0], request
    batch = handle_body(node, json.dumps([{"method": "hard_fork_info"}, {"method": "nope"}]).encode())
    assert [(a["id"], "result" in a) for a in batch] == [("", True), ("", False)]
    # invalid: an id that is an object, no method, a call that is not an object
    for request in ({"id": {}, "method": "get_info"}, {"id": 1}, [5]):
        answer = handle_body(node, json.dumps(request).encode())
        answer = answer[0] if isinstance(answer, list) else answer
        assert answer["error"]["code"] == -32600, request


SEED_CALL = (
    b'{"jsonrpc":"2.0","method":"get_n_service_nodes","params":{"active_only":true,"fields":{"public_ip":true,'
    b'"storage_port":true,"pubkey_x25519":true,"pubkey_ed25519":true,"requested_unlock_height":true,'
    b'"height":true}}}'
)
"""Session Desktop's seed call, byte for byte (``SeedNodeAPI.ts``): no id, fields as an object."""


async def test_the_session_seed_call_is_answered_as_desktop_requires(
    node: Any, nursery: trio.Nursery
) -> None:
    node.messages = SimpleNamespace()
    server = RpcServer(node, RpcLimits())
    listeners = await nursery.start(functools.partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
    client = Client(await trio.open_tcp_stream("127.0.0.1", listeners[0].socket.getsockname()[1]))
    headers = [("content-type", "application/json"), ("user-agent", "WhatsApp")]
    status, answer_headers, body = await client.post_raw("/json_rpc", SEED_CALL, headers)
    assert status == 200 and answer_headers[b"content-type"] == b"application/json"  # exactly
    answer = json.loads(body)
    assert answer["id"] == "" and answer["jsonrpc"] == "2.0"
    seeded = answer["result"]
    assert isinstance(seeded["height"], int) and seeded["height"] == node.ledger.height
    states = seeded["service_node_states"]
    assert states and all(
        set(entry)
        == {"public_ip", "storage_port", "pubkey_x25519", "pubkey_ed25519", "requested_unlock_height"}
        for entry in states
    )
    for entry in states:
        has_shape(entry, {k: SERVICE_NODE[k] for k in entry})
    # an unknown method over HTTP: still 200, a JSON-RPC error, the same content type
    status, answer_headers, body = await client.post_raw("/json_rpc", b'{"method":"nope"}', headers)
    assert status == 200 and answer_headers[b"content-type"] == b"application/json"
    assert json.loads(body)["error"]["code"] == -32601


def test_the_oxend_aliases_answer_as_their_methods(node: Any) -> None:
    assert set(ALIASES) == {
        "get_n_service_nodes",
        "get_all_service_nodes",
        "lns_resolve",
        "lns_names_to_owners",
        "get_accrued_batched_earnings",
    }
    for alias, name in ALIASES.items():
        params: dict[str, Any] = {}
        if name == "ons_resolve":
            params = {"type": 0, "name_hash": "00" * 32}
        if name == "ons_names_to_owners":
            params = {"entries": [{"name_hash": "00" * 32, "types": [0]}]}
        assert call(node, alias, **params) == call(node, name, **params), alias


# -- blocks ------------------------------------------------------------------------------------------


def test_block_headers_by_height_hash_and_range_have_oxend_shapes(node: Any, chain: Chain) -> None:
    tip = node.ledger.height
    by_height = result(node, "get_block_header_by_height", height=10, get_tx_hashes=True)["block_header"]
    has_shape(by_height, BLOCK_HEADER)
    block = chain.store.get_block(10)
    assert by_height["hash"] == compute_block_hash(block.header).hex() and by_height["depth"] == tip - 10
    assert (
        by_height["nonce"] == 0 and by_height["difficulty"] == 1_000_000 and by_height["miner_tx_hash"] == ""
    )
    assert (by_height["major_version"], by_height["minor_version"]) == HARDFORK
    assert by_height["tx_hashes"] == [compute_event_hash(e).hex() for e in block.events]
    assert by_height["num_txes"] == len(block.events) > 0 and by_height["block_size"] > 0
    by_hash = result(node, "get_block_header_by_hash", hash=by_height["hash"], get_tx_hashes=True)
    assert by_hash["block_header"] == by_height
    many = result(node, "get_block_header_by_hash", hashes=[by_height["hash"], by_height["prev_hash"]])
    assert [h["height"] for h in many["block_headers"]] == [10, 9] and "tx_hashes" not in many[
        "block_headers"
    ][0]
    headers = result(node, "get_block_headers_range", start_height=5, end_height=12)["headers"]
    assert [h["height"] for h in headers] == list(range(5, 13))  # inclusive, ascending
    assert all(h["prev_hash"] == p["hash"] for p, h in itertools.pairwise(headers))
    # the reward is what the block paid into the nodes' rewards: nothing before the nodes are
    # payable (20 blocks on this chain), a share for each payable node after
    assert all(h["reward"] == 0 for h in headers)
    later = result(node, "get_block_headers_range", start_height=25, end_height=40)["headers"]
    assert all(h["reward"] >= 0 for h in later) and any(h["reward"] > 0 for h in later)
    # invalid: unknown hash, not a hash, heights out of range, start above end
    assert error(node, "get_block_header_by_hash", hash="ab" * 32)[0] == -32001
    assert error(node, "get_block_header_by_hash", hash="xyz")[0] == -32602
    assert error(node, "get_block_header_by_hash")[0] == -32602
    assert error(node, "get_block_header_by_height", height=tip + 1)[0] == -32001
    assert error(node, "get_block_headers_range", start_height=3, end_height=tip + 1)[0] == -32001
    assert error(node, "get_block_headers_range", start_height=8, end_height=7)[0] == -32001
    assert error(node, "get_block_headers_range", start_height=-1, end_height=7)[0] == -32602


def test_get_block_by_height_or_hash_gives_oxends_block_json(node: Any, chain: Chain) -> None:
    by_height = result(node, "get_block", height=20)
    by_hash = result(node, "get_block", hash=by_height["block_header"]["hash"])
    assert by_hash == by_height
    block = chain.store.get_block(20)
    assert by_height["tx_hashes"] == [compute_event_hash(e).hex() for e in block.events]
    assert "tx_hashes" not in by_height["block_header"]
    parsed = json.loads(by_height["json"])
    assert list(parsed) == [
        "major_version", "minor_version", "timestamp", "prev_id", "nonce", "pulse", "miner_tx",
        "tx_hashes", "signatures", "height", "service_node_winner_key", "reward",
    ]  # fmt: skip
    assert parsed["miner_tx"]["vin"] == [{"gen": {"height": 20}}] and parsed["miner_tx"]["vout"] == []
    assert parsed["prev_id"] == block.header.prev_hash.hex() and parsed["tx_hashes"] == by_height["tx_hashes"]
    assert [s["voter_index"] for s in parsed["signatures"]] == [index for index, _ in block.signatures]
    assert parsed["reward"] == by_height["block_header"]["reward"]
    assert error(node, "get_block", hash="cd" * 32)[0] == -32001
    assert error(node, "get_block", height=node.ledger.height + 1)[0] == -32001
    assert error(node, "get_block")[0] == -32602


# -- transactions ------------------------------------------------------------------------------------


def events_of(chain: Chain, kind: type) -> list[tuple[int, Any]]:
    return [
        (b.header.height, e)
        for b in chain.store.iter_blocks(1, chain.height)
        for e in b.events
        if isinstance(e, kind)
    ]


def test_get_transactions_answers_in_request_order_with_extra_and_misses(node: Any, chain: Chain) -> None:
    params = chain.state.params
    (reg_height, registration), *_ = events_of(chain, RegisterNode)
    (_, contribution), *_ = events_of(chain, Contribute)
    (_, buy), *_ = events_of(chain, SnsBuy)
    hashes = [compute_event_hash(e).hex() for e in (buy, registration, contribution)]
    unknown = "ee" * 32
    answer = result(
        node, "get_transactions", txs_hashes=[hashes[0], unknown, *hashes[1:]],
        decode_as_json=True, tx_extra=True, stake_info=True,
    )  # fmt: skip
    assert [t["tx_hash"] for t in answer["txs"]] == hashes and answer["missed_tx"] == [unknown]
    for entry in answer["txs"]:
        has_shape(entry, {**TX_ENTRY, "block_height": int, "block_timestamp": int, "extra": dict})
        assert entry["in_pool"] is False and "as_hex" not in entry
        as_json = json.loads(entry["as_json"])
        assert (
            as_json["vin"] == []
            and as_json["extra"] == []
            and isinstance(as_json["rct_signatures"]["txnFee"], int)
        )
    ons, reg, contrib = answer["txs"]
    assert (
        ons["extra"]["ons"]["buy"] is True
        and ons["extra"]["ons"]["name_hash"] == base64.b64encode(buy.name_hash).decode()
    )
    assert json.loads(ons["as_json"])["type"] == 4
    assert reg["block_height"] == reg_height and reg["stake_amount"] == registration.amount
    assert reg["extra"]["sn_registration"]["fee"] == registration.operator_fee_bp * 100  # millionths
    (operator, *reserved) = reg["extra"]["sn_registration"]["contributors"]
    assert operator == {
        "wallet": registration.sender.hex(),
        "amount": registration.amount,
        "portion": registration.amount * 1_000_000 // params.staking_requirement,  # millionths
    }
    assert len(reserved) == len(registration.reserved)
    assert reg["extra"]["sn_registration"]["hardfork"] == HARDFORK[0]
    assert json.loads(reg["as_json"])["rct_signatures"]["txnFee"] == compute_fee(params, registration)
    assert contrib["extra"]["sn_contributor"] == contribution.sender.hex()
    # without decode_as_json: the canonical bytes, as oxend's as_hex
    plain = result(node, "get_transactions", txs_hashes=[hashes[0]])["txs"][0]
    assert "as_json" not in plain and "extra" not in plain and plain["size"] == len(plain["as_hex"]) // 2
    # invalid: not a hash (oxend's failed status, not an error); nothing found: no txs key
    assert result(node, "get_transactions", txs_hashes=["xyz"])["status"].startswith("Failed to parse")
    assert "txs" not in result(node, "get_transactions", txs_hashes=[unknown])


def test_the_mempool_is_the_transaction_pool(node: Any, chain: Chain) -> None:
    assert "transactions" not in result(node, "get_transaction_pool")  # empty: omitted, as oxend
    (_, tx), *_ = events_of(chain, SnsBuy)
    pending = tx.__class__(**{**{f: getattr(tx, f) for f in tx.__struct_fields__}, "nonce": 10**6})
    tx_hash = compute_event_hash(pending)
    node.core.mempool.txs[tx_hash] = pending
    pool = result(node, "get_transaction_pool", tx_extra=True)["transactions"]
    assert len(pool) == 1
    has_shape(pool[0], {**POOL_TX, "extra": dict})
    assert pool[0]["id_hash"] == tx_hash.hex() and pool[0]["fee"] == compute_fee(chain.state.params, pending)
    assert json.loads(pool[0]["tx_json"])["type"] == 4
    found = result(node, "get_transactions", txs_hashes=[tx_hash.hex()])["txs"][0]
    assert found["in_pool"] is True and "block_height" not in found


def test_fee_estimate_and_the_admin_coinbase_sum(node: Any, chain: Chain) -> None:
    params = chain.state.params
    fees = result(node, "get_fee_estimate", grace_blocks=10)
    has_shape(
        fees,
        {"fee_per_byte": int, "fee_per_output": int, "blink_fee_per_byte": int, "blink_fee_per_output": int},
    )
    assert (fees["fee_per_byte"], fees["fee_per_output"]) == (params.fee_per_byte, params.fee_transfer)
    line = json.dumps({"id": 1, "method": "get_coinbase_tx_sum", "params": {"height": 0, "count": 2**31 - 1}})
    summed = json.loads(admin.answer(node, line.encode()))["result"]
    paid = sum(
        compute_fee(params, e)
        for b in chain.store.iter_blocks(1, chain.height)
        for e in b.events
        if hasattr(e, "signature")
    )
    assert summed == {
        "status": "OK",
        "emission_amount": compute_supply(chain.state).total,  # block 0 made all of it; nothing is minted
        "fee_amount": paid,
        "burn_amount": 0,
    }
    later = json.loads(
        admin.answer(node, b'{"id":2,"method":"get_coinbase_tx_sum","params":{"height":5,"count":1}}')
    )
    block = chain.store.get_block(5)
    assert later["result"]["emission_amount"] == 0
    assert later["result"]["fee_amount"] == sum(
        compute_fee(params, e) for e in block.events if hasattr(e, "signature")
    )
    bad = json.loads(admin.answer(node, b'{"id":3,"method":"get_coinbase_tx_sum","params":{"height":-1}}'))
    assert bad["error"]["code"] == -32602


# -- the chain's head, hard fork and nodes ------------------------------------------------------------


def test_get_info_and_the_hard_fork_agree_with_the_storage_replies(node: Any) -> None:
    info = result(node, "get_info")
    has_shape(info, GET_INFO)
    assert info["hard_fork"] == HARDFORK[0] and info["height"] == node.ledger.height + 1
    assert info["database_size"] % 10**9 == 0 and info["database_size"] > 0  # rounded up, as oxend's public
    assert "service_node" not in info and "." not in info["version"]  # admin only; major version only
    hard_fork = result(node, "hard_fork_info")
    assert (hard_fork["version"], hard_fork["revision"]) == HARDFORK and hard_fork["enabled"] is True
    listed = result(node, "get_service_nodes")
    assert (listed["hardfork"], listed["snode_revision"]) == HARDFORK  # what SS forms its hf from
    operator = json.loads(admin.answer(node, b'{"id":1,"method":"get_info"}'))["result"]
    assert operator["service_node"] is False and operator["version"].count(".") == 2
    assert 0 < operator["database_size"] <= info["database_size"]


def test_service_node_entries_have_oxends_fields_units_and_participation(node: Any, chain: Chain) -> None:
    states = result(node, "get_service_nodes")["service_node_states"]
    assert states
    for entry in states:
        has_shape(entry, SERVICE_NODE)
        assert entry["registration_hf_version"] == HARDFORK[0]
    view = Overlay(chain.state.get)
    from state.nodes import get_node

    for entry in states:
        record = get_node(view, bytes.fromhex(entry["service_node_pubkey"]))
        assert record is not None
        assert entry["operator_fee"] == record.operator_fee_bp * 100  # millionths; the chain keeps bp
        assert entry["portions_for_operator"] == 0xFFFFFFFFFFFFFFFC * record.operator_fee_bp // 10_000
    voted = [e for e in states if "checkpoint_participation" in e]
    assert voted, "some node sat in a certified checkpoint's quorum"
    for entry in voted:
        records = entry["checkpoint_participation"]
        assert 0 < len(records) <= 8 and [r["height"] for r in records] == sorted(
            r["height"] for r in records
        )
        assert all(set(r) == {"height", "voted", "is_pulse"} and r["height"] % 4 == 0 for r in records)
    assert any(r["voted"] for e in voted for r in e["checkpoint_participation"])
    # the quorum state spans oxend's 256 heights on the public port, no more
    tip = node.ledger.height
    assert "quorums" in result(node, "get_quorum_state", start_height=max(tip - 55, 0), end_height=tip)
    assert error(node, "get_quorum_state", start_height=0, end_height=256)[0] == -32602


def test_checkpoints_come_newest_first_with_their_signers(node: Any, chain: Chain) -> None:
    newest = result(node, "get_checkpoints", count=3)["checkpoints"]
    final = chain.final_height
    assert [c["height"] for c in newest] == [final - final % 4 - 4 * i for i in range(3)]
    for checkpoint in newest:
        has_shape(
            checkpoint,
            {
                "version": int,
                "type": str,
                "height": int,
                "block_hash": str,
                "signatures": list,
                "prev_height": int,
            },
        )
        indexes = [s["voter_index"] for s in checkpoint["signatures"]]
        assert (
            indexes
            and indexes == sorted(indexes)
            and all(len(s["signature"]) == 192 for s in checkpoint["signatures"])
        )
    ascending = result(node, "get_checkpoints", start_height=8, end_height=20)["checkpoints"]
    assert [c["height"] for c in ascending] == [8, 12, 16, 20]
    below = result(node, "get_checkpoints", end_height=20, count=2)["checkpoints"]
    assert [c["height"] for c in below] == [20, 16]
    assert "checkpoints" not in result(node, "get_checkpoints", start_height=final + 100)


# -- names and rewards -------------------------------------------------------------------------------


def test_names_to_owners_takes_oxends_entries_and_omits_no_match(node: Any, chain: Chain) -> None:
    name_hash, _ = next(iter(chain.state.prefixed(NAME_PREFIX)))
    record = get_name(Overlay(chain.state.get), name_hash)
    assert record is not None
    padded = base64.b64encode(name_hash).decode()
    answer = result(node, "ons_names_to_owners", entries=[{"name_hash": padded, "types": [0]}])
    (entry,) = answer["entries"]
    assert entry["name_hash"] == padded and entry["owner"] == record.owner.hex() and entry["entry_index"] == 0
    assert (entry["txid"] == record.update_id.hex() and "backup_owner" not in entry) or record.backup_owner
    written = result(node, "get_transactions", txs_hashes=[entry["txid"]])["txs"][0]
    assert entry["update_height"] == written["block_height"]
    # types 1 and 2 (wallet, lokinet) are valid and never match: no entries key at all
    for types in ([1], [2], [1, 2]):
        assert "entries" not in result(
            node, "ons_names_to_owners", entries=[{"name_hash": padded, "types": types}]
        )
    assert "entries" not in result(
        node, "ons_names_to_owners", entries=[{"name_hash": "00" * 32, "types": [0]}]
    )
    # the bare form (ours) still works
    assert result(node, "ons_names_to_owners", entries=[name_hash.hex()])["entries"] == [entry]
    # invalid: an unknown type, a hash of the wrong length, no types
    assert error(node, "ons_names_to_owners", entries=[{"name_hash": padded, "types": [7]}])[0] == -32602
    assert error(node, "ons_names_to_owners", entries=[{"name_hash": padded[:40], "types": [0]}])[0] == -32602
    assert error(node, "ons_names_to_owners", entries=[{"name_hash": padded, "types": []}])[0] == -32602


def test_ons_resolve_takes_hex_and_padded_or_unpadded_base64(node: Any, chain: Chain) -> None:
    name_hash, _ = next(iter(chain.state.prefixed(NAME_PREFIX)))
    padded = base64.b64encode(name_hash).decode()
    assert padded.endswith("=") and len(padded) == 44
    answers = [
        result(node, "ons_resolve", type=0, name_hash=h) for h in (name_hash.hex(), padded, padded[:-1])
    ]
    assert answers[0] == answers[1] == answers[2] and set(answers[0]) == {"encrypted_value", "nonce"}
    assert result(node, "lns_resolve", type=0, name_hash=padded[:-1]) == answers[0]
    assert result(node, "ons_resolve", type=2, name_hash=padded) == {}  # lokinet: never registered here
    for bad in ("xyz", padded[:-2], padded + "=", name_hash.hex()[:-2]):
        code, message = error(node, "ons_resolve", type=0, name_hash=bad)
        assert code == -32602 and "43/44 base64" in message, bad
    assert error(node, "ons_resolve", type=9, name_hash=padded)[0] == -32602


def test_accrued_earnings_without_addresses_answer_for_every_account(node: Any) -> None:
    every = result(node, "get_accrued_batched_earnings")
    assert len(every["addresses"]) == len(every["amounts"]) > 0
    assert every["addresses"] == sorted(every["addresses"]) and all(
        isinstance(a, int) for a in every["amounts"]
    )
    some = every["addresses"][:2]
    asked = result(node, "get_accrued_rewards", addresses=some)
    assert asked["addresses"] == some and asked["amounts"] == every["amounts"][:2]
    assert asked["balances"] == dict(zip(some, asked["amounts"], strict=True))
    assert error(node, "get_accrued_rewards", addresses=["beef"])[0] == -32602


def test_pulse_participation_lists_each_duty_with_its_height_and_round(node: Any) -> None:
    """oxend's ``pulse_participation``: the duties the node saw, oldest first, each ``{height,
    voted, is_pulse: true, pulse_round}``; left out for a node with none (an empty list)."""
    states = result(node, "get_service_nodes")["service_node_states"]
    first, second = (bytes.fromhex(e["service_node_pubkey"]) for e in states[:2])
    node.core.pulse_record.note_round((first, second), 0b01, height=40, round_=0)
    node.core.pulse_record.note_round((first,), 0b0, height=41, round_=2)
    entries = {e["service_node_pubkey"]: e for e in result(node, "get_service_nodes")["service_node_states"]}
    assert entries[first.hex()]["pulse_participation"] == [
        {"height": 40, "voted": True, "is_pulse": True, "pulse_round": 0},
        {"height": 41, "voted": False, "is_pulse": True, "pulse_round": 2},
    ]
    assert entries[first.hex()]["pulse_votes"] == {"participated": 1, "missed": 1}
    assert entries[second.hex()]["pulse_participation"] == [
        {"height": 40, "voted": False, "is_pulse": True, "pulse_round": 0}
    ]
    assert all("pulse_participation" not in e for e in states), "no duties seen: left out"


def test_oxends_seconds_stay_seconds_and_the_milliseconds_are_added(node: Any, chain: Chain) -> None:
    """Headers and the block time are milliseconds here; every field oxend gives in seconds is
    still seconds (timestamps rounded down, ``target`` rounded up so a sub-second chain does not
    say 0), and the exact values come as the added ``timestamp_ms`` and ``target_ms``."""
    state = chain.state
    info = result(node, "get_info")
    assert (info["target"], info["target_ms"]) == (
        -(-state.params.block_time // 1000),
        state.params.block_time,
    )
    assert info["checkpoint_interval"] == state.params.checkpoint_interval == 4
    next_round_ms = state.timestamp + state.params.block_time
    assert info["pulse_ideal_timestamp"] == info["pulse_target_timestamp"] == next_round_ms // 1000
    header = chain.store.get_header(20)
    assert header is not None and header.timestamp % 1000 == 0  # this devnet's blocks are 1 s apart
    shown = result(node, "get_block_header_by_height", height=20)["block_header"]
    assert (shown["timestamp"], shown["timestamp_ms"]) == (header.timestamp // 1000, header.timestamp)
    assert json.loads(result(node, "get_block", height=20)["json"])["timestamp"] == header.timestamp // 1000
    event = compute_event_hash(chain.store.get_block(20).events[0]).hex()
    [entry] = result(node, "get_transactions", txs_hashes=[event])["txs"]
    assert entry["block_timestamp"] == header.timestamp // 1000
    params = state.params
    try:
        state.params = msgspec.structs.replace(params, block_time=250)
        fast = result(node, "get_info")
        assert (fast["target"], fast["target_ms"]) == (1, 250)
        state.params = msgspec.structs.replace(params, block_time=1_500)
        assert result(node, "get_info")["target"] == 2
    finally:
        state.params = params
