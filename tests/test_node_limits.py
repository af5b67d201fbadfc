"""A node's pending work from peers: the inbox's bounds and turns, forged transactions from a
peer (banned after a few, the rest of its backlog never checked) and from JSON-RPC (refused at
the signature, before any other work), and requests answered only to peers that read."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from appchain.node.inbox import REQUEST_PREFIXES, TX_PREFIX, Inbox, InboxLimits, Kind, frame_kind
from appchain.node.node import ANSWER_BACKLOG, Node
from appchain.rpc.methods import handle_body
from consensus.messages import (
    CheckpointsRequest,
    ChunkRequest,
    HeadersRequest,
    ProofsRequest,
    SignedBlock,
    SnapshotOffer,
    SnapshotsRequest,
    SyncRequest,
    TxBatch,
    TxMessage,
    Want,
)
from genesis.devnet import load_dev_accounts
from state.crypto import ed25519
from state.encoding import encode
from state.errors import InvalidEvent
from state.events import Transfer, sign_transaction
from state.types import AccountKey, Atomic, Ed25519Signature, Hash32, NodeKey, Nonce

FLOODER, HONEST, THIRD = NodeKey(b"\x11" * 32), NodeKey(b"\x22" * 32), NodeKey(b"\x33" * 32)


# -- the inbox alone -------------------------------------------------------------------------------


def test_frames_are_told_apart_by_their_first_bytes() -> None:
    for request in (
        SyncRequest(1),
        SnapshotsRequest(),
        CheckpointsRequest(4),
        HeadersRequest(1, 2),
        ChunkRequest(4, 0, 0),
        Want((Hash32(bytes(32)),)),
        ProofsRequest(),
    ):
        assert frame_kind(encode(request)) is Kind.REQUEST
    tx = Transfer(AccountKey(b"\x01" * 32), Nonce(1), AccountKey(b"\x02" * 32), Atomic(1))
    assert encode(TxMessage(tx)).startswith(TX_PREFIX) and TX_PREFIX == b"\x92\xa2tx"
    assert frame_kind(encode(TxMessage(tx))) is Kind.TRANSACTION
    assert frame_kind(encode(SnapshotOffer(None))) is Kind.CONSENSUS
    assert frame_kind(b"\x92\xa5block") is Kind.CONSENSUS and frame_kind(b"") is Kind.CONSENSUS
    assert SignedBlock.__struct_config__.tag == "block" and len(REQUEST_PREFIXES) == 7


def test_each_peer_has_its_own_bounds_and_a_flood_is_dropped_not_queued() -> None:
    inbox = Inbox(InboxLimits(peer_frames=3, peer_requests=2, peer_transactions=4, peer_bytes=1000))
    request, tx = encode(SyncRequest(1)), TX_PREFIX + b"\x00" * 10
    assert [inbox.offer(FLOODER, request, b"r") for _ in range(3)] == [None, None, "peer_requests"]
    assert [inbox.offer(FLOODER, b"c", b"c") for _ in range(2)] == [None, "peer_frames"]
    assert [inbox.offer(FLOODER, tx, b"t") for _ in range(5)] == [None] * 4 + ["peer_transactions"]
    assert inbox.offer(HONEST, b"c", b"c") is None  # another peer is not touched by the flood
    assert inbox.offer(HONEST, TX_PREFIX + b"\x00" * 996, b"big") == "peer_bytes"  # 1 + 1000 bytes
    assert inbox.dropped == {"peer_requests": 1, "peer_frames": 1, "peer_transactions": 1, "peer_bytes": 1}
    assert len(inbox) == 3 + 4 + 1


def test_the_totals_bound_every_peer_together() -> None:
    inbox = Inbox(InboxLimits(frames=4, transactions=2, total_bytes=100))
    peers = [NodeKey(bytes([n]) * 32) for n in range(6)]
    assert [inbox.offer(peer, b"c", b"c") for peer in peers] == [None] * 4 + ["frames"] * 2
    tx = TX_PREFIX + b"\x00"
    assert [inbox.offer(peer, tx, b"t") for peer in peers[:3]] == [None, None, "transactions"]
    assert inbox.size == 4 + 2 * len(tx)
    inbox = Inbox(InboxLimits(total_bytes=100))
    assert [inbox.offer(peer, b"y" * 40, b"y") for peer in peers[:3]] == [None, None, "total_bytes"]


def test_consensus_first_then_each_peer_in_turn_and_a_banned_peer_is_forgotten() -> None:
    inbox = Inbox()
    tx = TX_PREFIX + b"\x00"
    for n in range(100):  # the flooder queued first, a hundred of each kind
        inbox.offer(FLOODER, b"flood%d" % n, b"")
        inbox.offer(FLOODER, tx + bytes([n]), b"")
    inbox.offer(HONEST, tx + b"honest", b"")
    inbox.offer(HONEST, b"honest", b"")
    inbox.offer(THIRD, b"third", b"")
    order = [inbox.pop() for _ in range(4)]
    assert [(frame[0], frame[1]) for frame in order if frame] == [
        (FLOODER, b"flood0"),
        (HONEST, b"honest"),  # second, not after the flooder's hundred
        (THIRD, b"third"),
        (FLOODER, b"flood1"),
    ]
    assert inbox.forget(FLOODER) == 98 + 100  # banned: its backlog goes unread
    last = inbox.pop()
    assert last is not None and last[1] == tx + b"honest"  # transactions once consensus is done
    assert inbox.pop() is None and len(inbox) == 0 and inbox.loads == {} and inbox.size == 0


# -- a node -----------------------------------------------------------------------------------------


@pytest.fixture
def node(offline_node: Node) -> Node:
    return offline_node


def _transfer(node: Node, nonce: int, *, forged: bool = False) -> Transfer:
    key = load_dev_accounts(node.home.keys_path / "dev-accounts.json")[-1]
    tx = Transfer(key.public_key, Nonce(nonce), AccountKey(b"\x42" * 32), Atomic(1000))
    signed = sign_transaction(node.chain.genesis.chain_id, tx, key)
    if forged:
        signed = msgspec.structs.replace(signed, signature=Ed25519Signature(bytes(64)))
    assert isinstance(signed, Transfer)
    return signed


def _forged_from(sender: int) -> Transfer:
    """A forgery each mempool must check in full: nonce 1 of a fresh account (its next nonce, so
    only the signature can refuse it), signed by nobody."""
    tx = Transfer(AccountKey(sender.to_bytes(32, "big")), Nonce(1), AccountKey(b"\x42" * 32), Atomic(1000))
    return msgspec.structs.replace(tx, signature=Ed25519Signature(bytes(64)))


def connect(node: Node, monkeypatch: pytest.MonkeyPatch, keys: list[NodeKey]) -> None:
    """Make ``keys`` the node's connected peers, each dialled by the other side (so each counts
    for gossip, :meth:`~appchain.node.node.Node.gossip_connected`)."""
    peers = {key: SimpleNamespace(dialled=False, queued=0) for key in keys}
    monkeypatch.setattr(node.host, "peers", peers)


@pytest.fixture
def verifies(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The public keys of every Ed25519 verification made."""
    calls: list[bytes] = []
    original = ed25519.verify

    def counted(public_key: bytes, message: bytes, signature: bytes) -> bool:
        calls.append(bytes(public_key))
        return original(public_key, message, signature)

    monkeypatch.setattr(ed25519, "verify", counted)
    return calls


def _drain(node: Node) -> None:
    while node.inbox:
        node.handle_slice()


def test_a_peer_flooding_forged_transactions_is_banned_and_its_backlog_never_checked(
    node: Node, verifies: list[bytes]
) -> None:
    ban_after = int(-node.host.config.ban_score // node.host.config.violation_points)
    for sender in range(1, 301):  # distinct frames: the gossip de-duplication does not stop them
        node._on_frame(FLOODER, encode(TxMessage(_forged_from(sender))))
    honest = _transfer(node, 1)
    node._on_frame(HONEST, encode(TxMessage(honest)))
    _drain(node)
    assert node.host.is_banned(bytes(FLOODER)) and not node.host.is_banned(bytes(HONEST))
    assert len(verifies) == ban_after + 1  # the forgeries up to the ban, and the honest one
    assert list(node.core.mempool.txs.values()) == [honest]
    assert node.counters.dropped == 300 - ban_after
    node._on_frame(FLOODER, encode(TxMessage(_transfer(node, 2000, forged=True))))  # after the ban
    assert not node.inbox and len(verifies) == ban_after + 1


def _relays(node: Node, monkeypatch: pytest.MonkeyPatch) -> list[tuple[NodeKey, bytes]]:
    """What the node sends, with FLOODER, HONEST and THIRD connected."""
    sent: list[tuple[NodeKey, bytes]] = []
    connect(node, monkeypatch, [FLOODER, HONEST, THIRD])
    monkeypatch.setattr(node.host, "send", lambda key, payload: sent.append((key, payload)) or True)
    return sent


def test_a_batch_all_new_is_passed_on_as_it_came_and_its_copies_die_at_the_hash(
    node: Node, verifies: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _relays(node, monkeypatch)
    batch = encode(TxBatch(tuple(_transfer(node, nonce) for nonce in (1, 2, 3)), everyone=False))
    node._on_frame(HONEST, batch)
    _drain(node)
    assert len(node.core.mempool) == 3 and len(verifies) == 3
    assert sorted(sent) == [(FLOODER, batch), (THIRD, batch)]  # as it came, not back to its sender
    node._on_frame(THIRD, batch)  # a copy
    assert not node.inbox and node.counters.duplicates == 1 and len(verifies) == 3
    sent.clear()
    node._on_frame(HONEST, encode(TxBatch((_transfer(node, 4),), everyone=True)))
    _drain(node)
    assert len(node.core.mempool) == 4 and sent == []  # its origin sent it to every node


def test_a_batch_partly_known_is_passed_on_as_what_was_kept(
    node: Node, verifies: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _relays(node, monkeypatch)
    first, second = _transfer(node, 1), _transfer(node, 2)
    node._on_frame(HONEST, encode(TxMessage(first)))
    _drain(node)
    sent.clear()
    node._on_frame(HONEST, encode(TxBatch((first, second), everyone=False)))
    _drain(node)
    assert len(verifies) == 2  # the one already waiting is not checked again
    assert sorted(sent) == [
        (FLOODER, encode(TxBatch((second,), everyone=False))),
        (THIRD, encode(TxBatch((second,), everyone=False))),
    ]
    sent.clear()
    node._on_frame(THIRD, encode(TxBatch((second, first), everyone=False)))  # nothing new: not passed on
    _drain(node)
    assert sent == [] and len(verifies) == 2


def test_a_batch_with_a_forgery_costs_its_sender_and_is_not_passed_on(
    node: Node, verifies: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _relays(node, monkeypatch)
    good, forged, after = _transfer(node, 1), _transfer(node, 2, forged=True), _transfer(node, 3)
    node._on_frame(FLOODER, encode(TxBatch((good, forged, after), everyone=False)))
    _drain(node)
    assert list(node.core.mempool.txs.values()) == [good]  # the batch ends at the forgery
    assert len(verifies) == 2 and sent == []
    assert node.host.scores[bytes(FLOODER)] < 0


def test_the_admin_batch_goes_to_the_peers_as_one_frame(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    broadcast: list[bytes] = []
    monkeypatch.setattr(node.host, "broadcast", lambda payload, exclude=None: broadcast.append(payload) or 0)
    sent = _relays(node, monkeypatch)
    connect(node, monkeypatch, [FLOODER, HONEST])
    node.seeds = {FLOODER: ("127.0.0.1", 1), HONEST: ("127.0.0.1", 2)}  # every node it knows
    txs = [_transfer(node, nonce) for nonce in (1, 2, 3, 4)]
    results = node.submit_batch([txs[0], txs[2], txs[1]])  # nonce 3 before 2: refused
    assert isinstance(results[0], bytes) and isinstance(results[1], InvalidEvent)
    assert isinstance(results[2], bytes)
    assert broadcast == [encode(TxBatch((txs[0], txs[1]), everyone=True))]  # every node has it
    node.seeds[THIRD] = ("127.0.0.1", 3)  # a node we know and are not connected to
    node.submit_batch([txs[2]])
    frame = encode(TxBatch((txs[2],), everyone=False))  # the peers pass it on
    assert len(broadcast) == 1 and sorted(sent) == [(FLOODER, frame), (HONEST, frame)]


def test_one_peers_backlog_does_not_delay_another_peers_frames(node: Node) -> None:
    limits = node.inbox.limits
    for _ in range(limits.peer_frames + 500):  # useless but valid frames (a late state-sync answer)
        node._on_frame(FLOODER, encode(SnapshotOffer(None)))
    assert node.inbox.dropped == {"peer_frames": 500}
    node._on_frame(HONEST, encode(SnapshotOffer(None)))
    node.handle_slice()  # one slice: the honest frame is the second handled
    assert HONEST not in node.inbox.loads and node.inbox.loads[FLOODER].frames > limits.peer_frames - 64
    assert node.metrics is not None
    assert b'appchain_inbox_dropped_total{reason="peer_frames"} 500.0' in node.metrics.render()


def test_requests_wait_a_few_per_peer_and_are_answered_only_to_peers_that_read(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    for height in range(1, 21):
        node._on_frame(FLOODER, encode(HeadersRequest(0, height)))
    assert node.inbox.loads[FLOODER].requests == node.inbox.limits.peer_requests
    assert node.inbox.dropped == {"peer_requests": 20 - node.inbox.limits.peer_requests}
    sent: list[tuple[NodeKey, bytes]] = []
    monkeypatch.setattr(node.host, "send", lambda key, payload: sent.append((key, payload)) or True)
    backlog = {FLOODER: ANSWER_BACKLOG + 1, HONEST: 0}  # the flooder has not read earlier answers
    monkeypatch.setattr(node.host, "backlog", lambda key: backlog[key])
    node._on_frame(HONEST, encode(HeadersRequest(0, 0)))
    dropped = node.counters.dropped
    _drain(node)
    assert [key for key, _ in sent] == [HONEST]
    assert node.counters.dropped == dropped + node.inbox.limits.peer_requests


def test_a_forged_transaction_by_json_rpc_is_refused_at_its_signature(
    node: Node, verifies: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_state_work(*args: Any) -> None:
        raise AssertionError("a forged transaction reached the state rules")

    monkeypatch.setattr("consensus.mempool.process_event", no_state_work)
    broadcast: list[bytes] = []
    monkeypatch.setattr(node.host, "broadcast", lambda payload, exclude=None: broadcast.append(payload) or 0)
    forged = _transfer(node, 1, forged=True)
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "send_transaction",
        "params": {"tx_as_hex": encode(forged).hex()},
    }
    answer = handle_body(node, json.dumps(call).encode())
    assert answer["error"]["code"] == -32000 and "signature does not verify" in answer["error"]["message"]
    assert len(verifies) == 1 and len(node.core.mempool) == 0 and broadcast == []
