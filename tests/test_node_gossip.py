"""The process node on a bounded topology (DESIGN.md "Topology at scale"), driven offline: what it
passes on, to whom and in what form; how it answers a peer's hashes and requests for frames,
junk among them; which nodes it hands the host to keep connections to; and its obligations
probes of nodes it keeps no connection to."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from appchain.node.node import ANSWER_BACKLOG, DUTY_LINGER, Node
from consensus.gossip import push_count
from consensus.messages import DIGEST_BATCH, Have, ProofsRequest, TxMessage, Want, decode_message
from consensus.topology import GossipPeers
from genesis.devnet import load_dev_accounts
from state.encoding import encode
from state.events import Transfer, sign_transaction
from state.hashing import blake3_256
from state.types import AccountKey, Atomic, Hash32, NodeKey, Nonce

PEERS = [NodeKey(bytes([0x10 + i]) * 32) for i in range(10)]
SENDER = PEERS[0]


@pytest.fixture
def node(offline_node: Node) -> Node:
    return offline_node


Sent = list[tuple[NodeKey, bytes]]


@pytest.fixture
def sent(node: Node, monkeypatch: pytest.MonkeyPatch) -> Sent:
    """What the node sends, with the ten PEERS connected."""
    frames: Sent = []
    monkeypatch.setattr(type(node.host), "connected", property(lambda _: list(PEERS)))
    # connections the peers dialled: each counts for gossip (gossip_connected)
    monkeypatch.setattr(node.host, "peers", {key: SimpleNamespace(dialled=False, queued=0) for key in PEERS})
    monkeypatch.setattr(node.host, "send", lambda key, payload: frames.append((key, payload)) or True)
    return frames


def _drain(node: Node) -> None:
    while node.inbox:
        node.handle_slice()


def _transfer(node: Node, nonce: int) -> Transfer:
    key = load_dev_accounts(node.home.keys_path / "dev-accounts.json")[-1]
    tx = Transfer(key.public_key, Nonce(nonce), AccountKey(b"\x42" * 32), Atomic(1000))
    signed = sign_transaction(node.chain.genesis.chain_id, tx, key)
    assert isinstance(signed, Transfer)
    return signed


def test_new_gossip_goes_whole_to_a_few_peers_and_as_a_hash_to_the_rest(node: Node, sent: Sent) -> None:
    frame = encode(TxMessage(_transfer(node, 1)))
    digest = blake3_256(frame)
    node._on_frame(SENDER, frame)
    _drain(node)
    others = set(PEERS) - {SENDER}
    bodies = [key for key, payload in sent if payload == frame]
    assert len(bodies) == push_count(len(others)) == 3 and set(bodies) <= others
    sent.clear()
    node.flush_gossip()  # once per turn of the core loop
    haves = {key: decode_message(payload) for key, payload in sent}
    assert set(haves) == others - set(bodies)  # never back to its sender, never twice to a peer
    assert all(have == Have((Hash32(digest),)) for have in haves.values())
    sent.clear()
    node.flush_gossip()
    assert sent == []  # owed once
    node._on_frame(PEERS[5], frame)  # a copy: dropped at its hash, unread
    assert not node.inbox and node.counters.duplicates == 1


def test_a_have_is_answered_with_a_want_of_what_is_missing_and_a_want_with_the_frames_kept(
    node: Node, sent: Sent
) -> None:
    frame = encode(TxMessage(_transfer(node, 1)))
    known = Hash32(blake3_256(frame))
    node._on_frame(SENDER, frame)
    _drain(node)
    sent.clear()
    unknown = Hash32(b"\x77" * 32)
    node._on_frame(PEERS[3], encode(Have((known, unknown))))
    _drain(node)
    assert sent == [(PEERS[3], encode(Want((unknown,))))]  # back to the announcer, only the missing
    sent.clear()
    node._on_frame(PEERS[4], encode(Have((unknown,))))
    _drain(node)
    assert sent == []  # asked of PEERS[3] already: not again before the retry delay
    node._on_frame(PEERS[6], encode(Want((unknown, known))))
    _drain(node)
    assert sent == [(PEERS[6], frame)]  # what it keeps; the rest silently missing


def test_a_want_is_not_answered_to_a_peer_that_does_not_read(
    node: Node, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = encode(TxMessage(_transfer(node, 1)))
    node._on_frame(SENDER, frame)
    _drain(node)
    sent.clear()
    monkeypatch.setattr(node.host, "backlog", lambda key: ANSWER_BACKLOG + 1)
    dropped = node.counters.dropped
    node._on_frame(PEERS[2], encode(Want((Hash32(blake3_256(frame)),))))
    _drain(node)
    assert sent == [] and node.counters.dropped == dropped + 1
    node._on_frame(PEERS[2], encode(ProofsRequest()))  # the directory too: hundreds of KB
    _drain(node)
    assert sent == [] and node.counters.dropped == dropped + 2


def test_junk_hashes_cost_their_sender_one_message_each(node: Node, sent: Sent) -> None:
    oversized = encode(Want(tuple(Hash32(i.to_bytes(32, "big")) for i in range(DIGEST_BATCH + 1))))
    node._on_frame(PEERS[1], oversized)
    node._on_frame(PEERS[1], encode(Have(())))  # empty
    node._on_frame(PEERS[1], encode(Have((Hash32(b"\x01" * 31),))))  # not a hash
    _drain(node)
    assert node.counters.undecodable == 3 and sent == []
    assert node.host.scores[bytes(PEERS[1])] == -3 * node.host.config.violation_points
    # hashes nobody will ever send: asked for once, remembered within a bound
    flood = [Hash32(i.to_bytes(32, "big")) for i in range(DIGEST_BATCH)]
    node._on_frame(PEERS[2], encode(Have(tuple(flood))))
    _drain(node)
    assert sent == [(PEERS[2], encode(Want(tuple(flood))))]


def test_the_host_is_told_the_gossip_peers_and_the_duty_peers(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = {PEERS[0]: ("127.0.0.1", 1000), PEERS[1]: ("127.0.0.1", 1001)}
    node.seeds = dict(seeds)
    topology = dataclasses.replace(node.topology, outbound=4)
    node.gossip_peers = GossipPeers(node.core.node_key, topology, node.spreader.rng, list(seeds))
    proofs = {key: ("127.0.0.2", 2000 + i) for i, key in enumerate(PEERS[2:], 2)}
    monkeypatch.setattr(node.core, "known_nodes", lambda now, also=(): [*proofs, *also])
    monkeypatch.setattr(node, "address_of", {**seeds, **proofs}.get)
    duty = frozenset(PEERS[7:])
    monkeypatch.setattr(node.core, "duty_peers", lambda: duty)
    node.retarget()
    chosen = node.gossip_peers.chosen
    assert len(chosen) == 4 and chosen[:2] == [PEERS[0], PEERS[1]]  # the seeds kept by preference
    assert set(node.host.targets) == {*chosen, *duty} and node.duty == duty
    assert all((t.host, t.port) == {**seeds, **proofs}[k] for k, t in node.host.targets.items())
    first = duty
    duty = frozenset()  # the duty is over: its members stay a few more duties
    node.retarget()
    assert set(node.host.targets) == {*chosen, *first} and node.duty == first
    for turn in range(DUTY_LINGER):
        duty = frozenset({PEERS[2]}) if turn % 2 == 0 else frozenset()
        node.retarget()
    assert set(node.host.targets) == {*chosen, PEERS[2]} and node.status()["duty_peers"] == 1
    status = node.status()
    assert status["gossip_peers"] == 4 and status["peers_inbound"] == status["peers_outbound"] == 0


def test_obligations_probe_a_node_not_connected_once_then_use_the_answer(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, stranger = PEERS[3], PEERS[4]
    monkeypatch.setattr(node, "address_of", lambda key: ("127.0.0.1", 9) if key == worker else None)
    assert node.probe(worker) is None and list(node._to_probe) == [worker]  # no vote before an answer
    assert node.probe(stranger) is False and list(node._to_probe) == [worker]  # said nowhere where it is
    node._to_probe.clear()
    node.probed[worker] = (False, 1e18)  # the probe's answer (fresh)
    assert node.probe(worker) is False and not node._to_probe
    node.probed[worker] = (True, -1e18)  # an old answer: used, and probed again
    assert node.probe(worker) is True and list(node._to_probe) == [worker]
