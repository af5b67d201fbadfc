"""The process node's parts that need no network: config, keys, mempool, the admin protocol,
signatures checked once, messages on the wire."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from appchain.home.chain import ChainError
from appchain.home.home import Home, NodeConfig, PeerAddress, parse_config, render_config
from appchain.lab.testnet import read_testnet, write_testnet
from appchain.node.admin import answer
from appchain.node.inbox import TX_PREFIX, Kind, frame_kind
from appchain.node.settings import host_config, inbox_limits
from appchain.rpc.server import RpcLimits
from consensus.mempool import Mempool, MempoolFull
from consensus.messages import TX_BATCH, SignedBlock, SyncRequest, TxBatch, TxMessage, decode_message
from genesis.build import create_genesis_state
from genesis.devnet import load_dev_accounts
from genesis.document import Genesis
from state.crypto import ed25519
from state.encoding import DecodeError, encode
from state.errors import BadNonce, InvalidBlock, InvalidEvent, InvalidSignature
from state.events import Transfer, compute_event_hash, sign_transaction
from state.transition import execute_block, propose_block
from state.types import AccountKey, Atomic, Nonce
from tests.helpers import next_block

# -- config and keys ----------------------------------------------------------------------------------


def test_every_setting_round_trips_through_the_file() -> None:
    config = NodeConfig(
        snapshot_interval=7,
        sync_writes=False,
        p2p_listen="127.0.0.1:4000",
        peers=(PeerAddress(b"\x01" * 32, "127.0.0.1", 4002), PeerAddress(b"\x02" * 32, "localhost", 4004)),
        max_peers=9,
        admin_listen="127.0.0.1:4001",
        rpc_listen="127.0.0.1:4003",
        storage_listen="0.0.0.0:4005",
        stage_timeout_ms=500,
        round_timeout_ms=3_000,
        public_ip="203.0.113.7",
        storage_port=22021,
        log_level="debug",
        **LIMITS,
        clock_offset=-2.5,
    )
    assert parse_config(render_config(config)) == config
    assert parse_config("[node]\nclock_offset = 3\n").clock_offset == 3.0 and NodeConfig().clock_offset == 0


LIMITS: dict[str, Any] = {
    "p2p_max_peers_per_ip": 3,
    "p2p_connections_per_second_per_ip": 0.5,
    "p2p_connection_burst_per_ip": 4,
    "p2p_max_handshakes": 5,
    "p2p_peer_pending_frames": 600,
    "p2p_peer_pending_transactions": 700,
    "p2p_peer_pending_bytes": 800,
    "p2p_limit_loopback": True,
    "rpc_max_open_connections": 90,
    "rpc_max_connections_per_ip": 9,
    "rpc_requests_per_second_per_ip": 12.5,
    "rpc_request_burst_per_ip": 25,
    "rpc_busy_share_per_ip": 0.1,
    "rpc_max_pending_per_ip": 6,
    "rpc_max_concurrent_requests": 7,
    "rpc_read_header_timeout": 1.5,
    "rpc_read_body_timeout": 2.5,
    "rpc_write_timeout": 3.5,
    "rpc_idle_timeout": 4.5,
    "rpc_limit_loopback": True,
    "rpc_node_requests_per_second": 60.5,
    "rpc_node_request_burst": 121,
}


def test_the_limit_settings_reach_the_host_the_inbox_and_the_rpc_server() -> None:
    config = NodeConfig(**LIMITS)
    host = host_config(config, SimpleNamespace(genesis=SimpleNamespace(chain_id="c")))  # type: ignore[arg-type]
    assert (host.max_inbound_per_ip, host.inbound_per_second_per_ip, host.inbound_burst_per_ip) == (3, 0.5, 4)
    assert (host.max_handshakes, host.limit_loopback) == (5, True)
    inbox = inbox_limits(config)
    assert (inbox.peer_frames, inbox.peer_transactions, inbox.peer_bytes) == (600, 700, 800)
    rpc = RpcLimits.from_config(config)
    assert {f"rpc_{name}": getattr(rpc, name) for name in RpcLimits.__dataclass_fields__} == {
        name: value for name, value in LIMITS.items() if name.startswith("rpc_")
    }
    defaults = parse_config(render_config(NodeConfig()))
    assert defaults == NodeConfig() and RpcLimits.from_config(defaults) == RpcLimits()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[p2p]\nlisten = "nowhere"\n', "p2p.listen 'nowhere' is not host:port"),
        ('[p2p]\nlisten = "127.0.0.1:70000"\n', "is not host:port"),
        ('[p2p]\npeers = ["abc@127.0.0.1:1"]\n', "is not <64 hex digits of node key>@host:port"),
        ('[p2p]\npeers = "x"\n', "p2p.peers must be a list of strings"),
        ("[p2p]\nmax_peers = 0\n", "p2p.max_peers must be a positive integer"),
        (
            "[consensus]\nstage_timeout_ms = 0\n",
            "consensus.stage_timeout_ms must be a whole number of milliseconds from 1 to 3600000",
        ),
        (
            "[consensus]\nround_timeout_ms = 6.0\n",
            "consensus.round_timeout_ms must be a whole number of millis",
        ),
        (
            "[consensus]\nround_timeout_ms = true\n",
            "consensus.round_timeout_ms must be a whole number of millis",
        ),
        ("[consensus]\nstage_timeout_ms = 7000\nround_timeout_ms = 6000\n", "stage_timeout_ms must be below"),
        (
            "[consensus]\nstage_timeout = 1.0\n",
            "consensus.stage_timeout is now consensus.stage_timeout_ms, in milliseconds"
            " (e.g. stage_timeout = 1.0 becomes stage_timeout_ms = 1000)",
        ),
        (
            "[consensus]\nround_timeout = 6\n",
            "consensus.round_timeout is now consensus.round_timeout_ms, in milliseconds"
            " (e.g. round_timeout = 6 becomes round_timeout_ms = 6000)",
        ),
        ('[log]\nlevel = "loud"\n', "log.level must be one of debug, info, warn, error"),
        ("[node]\nstorage_port = -1\n", "node.storage_port must be a port number"),
        ('[node]\nclock_offset = "2s"\n', "node.clock_offset must be a number of seconds"),
        ("[node]\nclock_offset = true\n", "node.clock_offset must be a number of seconds"),
        ("[node]\nclock_offset = 3601\n", "node.clock_offset must be from -3600 to 3600 seconds"),
        ("[node]\nclock_offset = -inf\n", "node.clock_offset must be from -3600 to 3600 seconds"),
        ("[node]\nclock_offset = nan\n", "node.clock_offset must be from -3600 to 3600 seconds"),
        ("p2p = 3\n", "[p2p] must be a table"),
        ("[p2p]\nmax_peers_per_ip = 0\n", "p2p.max_peers_per_ip must be a positive integer"),
        ('[p2p]\npeer_pending_bytes = "1"\n', "p2p.peer_pending_bytes must be a positive integer"),
        ("[p2p]\nlimit_loopback = 1\n", "p2p.limit_loopback must be true or false"),
        ("[p2p]\nconnections_per_second_per_ip = 0\n", "must be a number above 0"),
        (
            "[rpc]\nrequests_per_second_per_ip = -5\n",
            "rpc.requests_per_second_per_ip must be a number above 0",
        ),
        ("[rpc]\nbusy_share_per_ip = true\n", "rpc.busy_share_per_ip must be a number above 0"),
        ("[rpc]\nmax_pending_per_ip = 0\n", "rpc.max_pending_per_ip must be a positive integer"),
        ("[rpc]\nread_header_timeout = 0\n", "rpc.read_header_timeout must be a number of seconds above 0"),
        ("[rpc]\nmax_open_connections = 1.5\n", "rpc.max_open_connections must be a positive integer"),
    ],
)
def test_bad_network_settings_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ChainError) as caught:
        parse_config(text)
    assert message in str(caught.value)


def test_node_keys_are_private_and_never_overwritten(tmp_path: Path, devnet_dir: Path) -> None:
    home, _ = Home.init(tmp_path / "h", devnet_dir / "genesis.json")
    with pytest.raises(ChainError, match="has no node keys"):
        home.load_node_keys()
    home.write_node_keys(b"\x01" * 32, b"\x02" * 32)
    assert home.node_key_path.stat().st_mode & 0o777 == 0o600
    key, _ = home.load_node_keys()
    assert key.public_key == ed25519.SigningKey(b"\x01" * 32).public_key
    with pytest.raises(ChainError, match="keys are never overwritten"):
        home.write_node_keys(b"\x03" * 32, b"\x04" * 32)
    os.chmod(home.node_key_path, 0o644)
    with pytest.raises(ChainError, match="is readable by others"):
        home.load_node_keys()
    os.chmod(home.node_key_path, 0o600)
    home.node_key_path.write_text("not hex\n")
    with pytest.raises(ChainError, match="must hold 32 bytes of hex"):
        home.load_node_keys()


def test_a_testnet_folder_is_complete_and_never_written_twice(tmp_path: Path) -> None:
    members = write_testnet(tmp_path / "net", 3, base_port=40000, seed="t", spare=1)
    assert [m.home.name for m in members] == ["node0", "node1", "node2", "spare0"]
    assert [(m.p2p_port, m.admin_port, m.rpc_port, m.storage_port) for m in members] == [
        (40000, 40001, 40002, 40003),
        (40004, 40005, 40006, 40007),
        (40008, 40009, 40010, 40011),
        (40012, 40013, 40014, 40015),
    ]
    config = Home(members[1].home).load_config()
    assert config.storage_address == ("127.0.0.1", 40007) and config.served_storage_port == 40007
    assert read_testnet(tmp_path / "net") == members[:3]  # the spare is not a node of the folder
    assert {p.port for p in config.peers} == {40000, 40008}  # every other genesis node
    assert config.stage_timeout_ms == 1_000 and config.round_timeout_ms == 6_000
    keys = {Home(m.home).load_node_keys()[0].public_key for m in members}
    assert len(keys) == 4
    with pytest.raises(ChainError, match="is not empty"):
        write_testnet(tmp_path / "net", 3)
    with pytest.raises(ChainError, match="leaves no room"):
        write_testnet(tmp_path / "other", 3, base_port=65530)


# -- the mempool -------------------------------------------------------------------------------------


@pytest.fixture
def funded(devnet_dir: Path, devnet_genesis: Genesis) -> tuple[Any, list[ed25519.SigningKey]]:
    state, _ = create_genesis_state(devnet_genesis)
    return state, load_dev_accounts(devnet_dir / "keys" / "accounts.json")


def _transfer(chain_id: str, key: ed25519.SigningKey, nonce: int, amount: int = 1000) -> Transfer:
    tx = sign_transaction(
        chain_id, Transfer(key.public_key, Nonce(nonce), AccountKey(b"\x42" * 32), Atomic(amount)), key
    )
    assert isinstance(tx, Transfer)
    return tx


def test_the_mempool_chains_nonces_and_refuses_what_does_not_apply(funded: Any) -> None:
    state, keys = funded
    pool = Mempool(state.chain_id, capacity=3)
    alice = keys[-1]
    first, second = _transfer(state.chain_id, alice, 1), _transfer(state.chain_id, alice, 2)
    assert pool.add(first, state, 0) == compute_event_hash(first)
    pool.add(second, state, 0)  # nonce 2 applies on top of nonce 1, still waiting
    assert pool.add(first, state, 0) == compute_event_hash(first) and len(pool) == 2  # no duplicate
    with pytest.raises(InvalidEvent, match="nonce"):
        pool.add(_transfer(state.chain_id, alice, 2, amount=5), state, 0)  # the same nonce again
    with pytest.raises(InvalidEvent, match="nonce"):
        pool.add(_transfer(state.chain_id, alice, 9), state, 0)  # a gap
    forged = msgspec.structs.replace(_transfer(state.chain_id, alice, 3), amount=Atomic(1))
    with pytest.raises(InvalidSignature):
        pool.add(forged, state, 0)
    poor = ed25519.SigningKey(b"\x09" * 32)
    with pytest.raises(InvalidEvent):
        pool.add(_transfer(state.chain_id, poor, 1), state, 0)  # no balance for the fee
    pool.add(_transfer(state.chain_id, keys[-2], 1), state, 0)
    with pytest.raises(MempoolFull):
        pool.add(_transfer(state.chain_id, keys[-3], 1), state, 0)
    assert pool.take(2) == [first, second]


def test_a_used_nonce_is_refused_before_its_signature_is_checked(
    funded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, keys = funded
    pool = Mempool(state.chain_id)
    alice = keys[-1]
    a1 = _transfer(state.chain_id, alice, 1)
    pending = next_block(state, [a1])
    state = state.copy()
    from state.transition import commit_block

    commit_block(state, pending)
    checked: list[bytes] = []
    verify = ed25519.verify

    def counting(key: bytes, message: bytes, signature: bytes) -> bool:
        checked.append(signature)
        return verify(key, message, signature)

    monkeypatch.setattr(ed25519, "verify", counting)
    with pytest.raises(BadNonce, match="used"):
        pool.add(a1, state, 0)  # a late gossip copy of what the block included
    forged_stale = msgspec.structs.replace(a1, amount=Atomic(1))
    with pytest.raises(BadNonce, match="used"):
        pool.add(forged_stale, state, 0)  # no signature could make it apply: not checked
    assert checked == []
    a2 = _transfer(state.chain_id, alice, 2)
    pool.add(a2, state, 0)
    with pytest.raises(BadNonce, match="used"):
        pool.add(_transfer(state.chain_id, alice, 2, amount=5), state, 0)  # used by a2, waiting
    assert len(checked) == 1
    forged_fresh = msgspec.structs.replace(_transfer(state.chain_id, alice, 3), amount=Atomic(1))
    with pytest.raises(InvalidSignature):
        pool.add(forged_fresh, state, 0)  # an unused nonce: checked in full, and refused
    assert len(checked) == 2 and pool.take(10) == [a2]
    forged_gap = msgspec.structs.replace(_transfer(state.chain_id, alice, 5), amount=Atomic(1))
    with pytest.raises(BadNonce, match="gap"):
        pool.add(forged_gap, state, 0)  # beyond the next nonce: no signature could make it apply
    assert len(checked) == 2


def test_after_a_block_the_mempool_keeps_only_what_still_applies(funded: Any) -> None:
    state, keys = funded
    pool = Mempool(state.chain_id)
    alice, bob = keys[-1], keys[-2]
    a1, a2, b1 = (
        _transfer(state.chain_id, alice, 1),
        _transfer(state.chain_id, alice, 2),
        _transfer(state.chain_id, bob, 1),
    )
    for tx in (a1, a2, b1):
        pool.add(tx, state, 0)
    # another producer's block spends bob's nonce 1 differently, and includes alice's nonce 1
    other_b1 = _transfer(state.chain_id, bob, 1, amount=7)
    pending = next_block(state, [a1, other_b1])
    state = state.copy()
    from state.transition import commit_block

    commit_block(state, pending)
    pool.on_block(pending.block.events, state, 0)
    assert pool.take(10) == [a2]  # a1 included, b1 now a used nonce


def test_the_pending_nonce_counts_an_accounts_waiting_transactions(funded: Any) -> None:
    state, keys = funded
    pool = Mempool(state.chain_id)
    alice, bob = keys[-1], keys[-2]
    assert pool.get_pending_nonce(alice.public_key, state) == 0  # nothing waits: the tip's nonce
    a1, a2 = _transfer(state.chain_id, alice, 1), _transfer(state.chain_id, alice, 2)
    pool.add(a1, state, 0)
    pool.add(a2, state, 0)
    pool.add(_transfer(state.chain_id, bob, 1), state, 0)
    assert pool.get_pending_nonce(alice.public_key, state) == 2
    assert pool.get_pending_nonce(bob.public_key, state) == 1
    assert pool.get_pending_nonce(AccountKey(b"\x55" * 32), state) == 0
    pool.remove(a2)  # the view is dropped: the waiting transactions are counted instead
    assert pool.get_pending_nonce(alice.public_key, state) == 1
    pending = next_block(state, [a1])  # a block takes alice's first: her tip nonce is 1 now
    state = state.copy()
    from state.transition import commit_block

    commit_block(state, pending)
    assert pool.get_pending_nonce(alice.public_key, state) == 1  # a stale view is not read
    pool.on_block(pending.block.events, state, 0)
    assert pool.get_pending_nonce(alice.public_key, state) == 1
    assert pool.get_pending_nonce(bob.public_key, state) == 1


def test_signatures_a_mempool_checked_are_not_checked_again(funded: Any) -> None:
    state, keys = funded
    good = _transfer(state.chain_id, keys[-1], 1)
    pending = next_block(state, [good])
    forged = msgspec.structs.replace(good, amount=Atomic(good.amount + 1))  # the signature no longer fits
    block = msgspec.structs.replace(pending.block, events=(forged,))
    producer = pending.block.header.producer
    template = propose_block(
        state,
        [forged],
        pending.block.header.timestamp,
        producer=producer,
        verified={compute_event_hash(forged)},
    )
    with pytest.raises(InvalidBlock, match="signature"):
        execute_block(state, template.block)  # nobody vouched for it: checked, refused
    assert execute_block(state, template.block, verified={compute_event_hash(forged)})  # vouched for: trusted
    with pytest.raises(InvalidBlock):
        execute_block(state, block)


# -- messages and the admin protocol ------------------------------------------------------------------


def test_messages_decode_to_their_type_and_garbage_is_refused(funded: Any) -> None:
    state, keys = funded
    tx = TxMessage(_transfer(state.chain_id, keys[-1], 1))
    assert decode_message(encode(tx)) == tx
    assert encode(tx).startswith(TX_PREFIX)  # how the node queues transactions apart, undecoded
    assert decode_message(encode(SyncRequest(5))) == SyncRequest(5)
    assert not encode(SyncRequest(5)).startswith(TX_PREFIX)
    for junk in (b"", b"\xc1", encode(["block", 5]), encode(["nope", 1]), b"\x92\xa2tx\x01"):
        with pytest.raises(DecodeError):
            decode_message(junk)
    assert SignedBlock.__struct_config__.tag == "block"


def test_a_transaction_batch_decodes_whole_or_not_at_all(funded: Any) -> None:
    state, keys = funded
    txs = tuple(_transfer(state.chain_id, keys[-1], nonce) for nonce in range(1, 4))
    batch = TxBatch(txs, everyone=False)
    assert decode_message(encode(batch)) == batch and frame_kind(encode(batch)) is Kind.TRANSACTION
    flagged = TxBatch(txs, everyone=True)
    assert decode_message(encode(flagged)) == flagged and frame_kind(encode(flagged)) is Kind.TRANSACTION
    assert decode_message(encode(TxBatch(txs * (TX_BATCH // 3), everyone=False))) == TxBatch(
        txs * (TX_BATCH // 3), everyone=False
    )
    entry = encode(txs[0])
    too_many = encode(["txs", [txs[0]] * (TX_BATCH + 1), False])
    malformed = (
        encode(["txs", [], False]),  # empty
        too_many,  # oversized
        encode(["txs", [txs[0], ["transfer", 1]], False]),  # an entry that is no transaction
        encode(["txs", [txs[0], SyncRequest(5)], False]),  # an entry of another message
        encode(["txs", txs[0], False]),  # not a list
        b"\x93\xa3txs\x91" + entry[:-1],  # an entry cut short
        encode(["txs", list(txs), False]) + b"\x00",  # trailing bytes
        encode(["txs", list(txs), 1]),  # a flag that is no bool
        encode(["txs", list(txs)]),  # no flag (a short form would also pass for another lane)
        encode(["txs", list(txs), True, True]),  # a field too many
    )
    for junk in malformed:
        with pytest.raises(DecodeError):
            decode_message(junk)


class FakeNode:
    def __init__(self) -> None:
        self.submitted: list[Any] = []
        self.batches: list[int] = []

    def status(self) -> dict[str, int]:
        return {"height": 3}

    def submit(self, tx: Any) -> bytes:
        if tx.nonce > 1:
            raise InvalidEvent("nonce 2 is not the next")
        self.submitted.append(tx)
        return compute_event_hash(tx)

    def submit_batch(self, txs: list[Any]) -> list[bytes | InvalidEvent]:
        self.batches.append(len(txs))
        results: list[bytes | InvalidEvent] = []
        for tx in txs:
            try:
                results.append(self.submit(tx))
            except InvalidEvent as exc:
                results.append(exc)
        return results


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"{", -32700),
        (b"[" * 10_000, -32700),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": 5}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "mine_bitcoin"}', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "submit_transaction", "params": {"tx": "zz"}}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "submit_transaction", "params": [1]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "set_uptime_proofs", "params": {"enabled": 1}}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "set_clock_offset", "params": {"seconds": "1"}}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "set_clock_offset", "params": {"seconds": false}}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "set_clock_offset", "params": {"seconds": -4000}}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "submit_transactions", "params": {"txs": 5}}', -32602),
    ],
)
def test_the_admin_endpoint_answers_bad_requests_with_errors(line: bytes, code: int) -> None:
    reply = json.loads(answer(FakeNode(), line))  # type: ignore[arg-type]
    assert reply["error"]["code"] == code and "result" not in reply


@pytest.mark.parametrize(
    "line",
    [b'{"jsonrpc": "1.0", "method": "status"}', b'{"method": "status"}', b'{"id": 7, "method": "status"}'],
)
def test_the_admin_endpoint_reads_neither_the_version_nor_needs_an_id(line: bytes) -> None:
    """As oxend: "jsonrpc" is not read, and a call without an id is answered with ``"id": ""``."""
    reply = json.loads(answer(FakeNode(), line))  # type: ignore[arg-type]
    assert reply["result"]["height"] == 3
    assert reply["id"] == json.loads(line).get("id", "")


def test_the_admin_endpoint_submits_and_says_why_it_refuses(funded: Any) -> None:
    state, keys = funded
    node = FakeNode()
    good = encode(_transfer(state.chain_id, keys[-1], 1)).hex()
    bad = encode(_transfer(state.chain_id, keys[-1], 2)).hex()
    reply = json.loads(
        answer(
            node,
            json.dumps(
                {"jsonrpc": "2.0", "id": 7, "method": "submit_transaction", "params": {"tx": good}}
            ).encode(),
        )
    )  # type: ignore[arg-type]
    assert reply["id"] == 7 and len(reply["result"]["hash"]) == 64 and len(node.submitted) == 1
    reply = json.loads(
        answer(
            node,
            json.dumps(
                {"jsonrpc": "2.0", "id": 8, "method": "submit_transaction", "params": {"tx": bad}}
            ).encode(),
        )
    )  # type: ignore[arg-type]
    assert reply["error"]["code"] == -32000 and "nonce 2 is not the next" in reply["error"]["message"]
    batch = {"jsonrpc": "2.0", "id": 9, "method": "submit_transactions", "params": {"txs": [good, bad, "zz"]}}
    results = json.loads(answer(node, json.dumps(batch).encode()))["result"]  # type: ignore[arg-type]
    assert "hash" in results[0] and "nonce" in results[1]["error"] and "hex" in results[2]["error"]
    assert node.batches == [2]  # what decodes goes to the node in one batch
    batch["params"] = {"txs": ["zz", bad, good, "00"]}
    results = json.loads(answer(node, json.dumps(batch).encode()))["result"]  # type: ignore[arg-type]
    assert "hex" in results[0]["error"] and "refused: nonce" in results[1]["error"]
    assert "hash" in results[2] and "hex" in results[3]["error"] and node.batches == [2, 2]
    assert json.loads(answer(node, b'{"jsonrpc": "2.0", "id": 1, "method": "status"}'))["result"] == {
        "height": 3
    }  # type: ignore[arg-type]
