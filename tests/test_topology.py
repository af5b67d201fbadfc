"""The bounded topology's sans-IO pieces: gossip peers (:mod:`consensus.topology`), relay with
bodies and hashes (:mod:`consensus.gossip`), the core's duty peers and its directory of proofs."""

from __future__ import annotations

import random

import pytest

from appchain.cli.simulate import simulation_genesis
from consensus.gossip import (
    BODIES_KEPT,
    WANT_RETRY,
    WANTED_LIMIT,
    Spreader,
    push_count,
    relay_style,
    should_relay,
)
from consensus.messages import (
    DIGEST_BATCH,
    PROOF_BATCH,
    Certified,
    Have,
    Proofs,
    ProofsRequest,
    SignedBlock,
    Want,
    decode_message,
)
from consensus.node import Applied, Finalized, Penalize, ProofAccepted, Send
from consensus.simulator import SimConfig, Simulation
from consensus.topology import FreshNodes, GossipPeers, Topology
from consensus.uptime import DEVNET_UPTIME, ProofBook, UptimeProof
from consensus.validation import compute_block_entropy, compute_block_quorum
from state.checkpoints import get_checkpoint_quorum
from state.encoding import DecodeError, encode
from state.types import BlsPublicKey, Hash32, NodeKey
from state.view import Overlay


def keys(count: int, start: int = 1) -> list[NodeKey]:
    return [NodeKey(bytes([i]) * 32) for i in range(start, start + count)]


# -- gossip peers -------------------------------------------------------------------------------


def test_gossip_peers_are_bounded_and_drawn_from_the_known_nodes() -> None:
    me, *others = keys(101)
    peers = GossipPeers(me, Topology(outbound=8), random.Random(1))
    chosen = peers.update(set(others), set(), 0.0)
    assert len(chosen) == 8 and len(set(chosen)) == 8
    assert me not in chosen and set(chosen) <= set(others)
    assert peers.update(set(others), set(chosen), 1.0) == chosen  # connected: kept


def test_gossip_peers_with_fewer_known_nodes_than_the_bound() -> None:
    me, *others = keys(4)
    assert sorted(
        GossipPeers(me, Topology(outbound=8), random.Random(1)).update(set(others), set(), 0.0)
    ) == sorted(others)


def test_the_same_generator_draws_the_same_peers_whatever_the_order_of_the_known_set() -> None:
    me, *others = keys(60)
    first = GossipPeers(me, Topology(), random.Random(5)).update(others, set(), 0.0)
    second = GossipPeers(me, Topology(), random.Random(5)).update(list(reversed(others)), set(), 0.0)
    assert first == second


def test_configured_peers_are_kept_by_preference_and_count_in_the_bound() -> None:
    me, *others = keys(50)
    preferred = others[:3]
    peers = GossipPeers(me, Topology(outbound=5), random.Random(2), preferred=[me, *preferred, preferred[0]])
    chosen = peers.update(set(others[3:]), set(), 0.0)
    assert chosen[:3] == preferred and len(chosen) == 5
    # a preferred peer stays even when it never connects and has no proof; drawn ones do not
    later = peers.update(set(others[3:]), set(), 1_000.0)
    assert later[:3] == preferred and len(later) == 5


def test_a_drawn_peer_that_does_not_connect_is_replaced_after_the_grace() -> None:
    me, *others = keys(40)
    topology = Topology(outbound=4, dial_grace=10.0, refresh=1e9)
    peers = GossipPeers(me, topology, random.Random(3))
    chosen = peers.update(set(others), set(), 0.0)
    dead = chosen[0]
    alive = set(chosen[1:])
    assert dead in peers.update(set(others), alive, 9.0)  # within the grace
    after = peers.update(set(others), alive, 20.0)
    assert dead not in after and alive <= set(after) and len(after) == 4


def test_a_peer_without_a_fresh_proof_is_dropped_at_once() -> None:
    me, *others = keys(30)
    peers = GossipPeers(me, Topology(outbound=4), random.Random(4))
    chosen = peers.update(set(others), set(), 0.0)
    gone = chosen[1]
    after = peers.update(set(others) - {gone}, set(chosen), 1.0)
    assert gone not in after and len(after) == 4


def test_the_refresh_swaps_one_peer_at_a_time_and_never_an_anchor() -> None:
    me, *others = keys(200)
    topology = Topology(outbound=8, refresh=60.0, anchors=2)
    peers = GossipPeers(me, topology, random.Random(6))
    chosen = peers.update(set(others), set(), 0.0)
    anchors = chosen[:2]
    now, seen = 0.0, [chosen]
    for _ in range(10):
        now += 61.0
        before = set(seen[-1])
        after = peers.update(set(others), before, now)
        assert len(before - set(after)) == 1, "one swap a refresh"
        assert after[:2] == anchors
        seen.append(after)
    assert peers.update(set(others), set(seen[-1]), now + 30.0) == seen[-1]  # no swap between refreshes


def test_topology_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        Topology(outbound=0)
    with pytest.raises(ValueError):
        Topology(refresh=0)


def test_fresh_nodes_reads_the_proof_book() -> None:
    book = ProofBook(DEVNET_UPTIME)
    me, fresh, stale = keys(3)
    proof = UptimeProof(fresh, "10.0.0.1", 1, 2, (1, 0, 0), 0, BlsPublicKey(b"\x00" * 48))
    book.accepted[bytes(fresh)] = (proof, 100.0)
    book.accepted[bytes(stale)] = (proof, 100.0 - DEVNET_UPTIME.validity - 1)
    book.accepted[bytes(me)] = (proof, 100.0)
    view = FreshNodes(book, 100.0, me)
    assert list(view) == [fresh] and len(view) == 1
    assert fresh in view and stale not in view and me not in view


# -- relay ---------------------------------------------------------------------------------------


def test_push_count_is_the_ceiling_of_the_square_root() -> None:
    assert [push_count(n) for n in (0, 1, 2, 4, 5, 9, 10, 16, 17, 64)] == [0, 1, 2, 2, 3, 3, 4, 4, 5, 8]


def test_spread_pushes_to_a_few_and_owes_the_rest_a_hash() -> None:
    spreader: Spreader[bytes] = Spreader(random.Random(1))
    peers = keys(16)
    sender = peers[0]
    pushed = spreader.spread(b"d" * 32, b"body", peers, exclude=sender)
    assert len(pushed) == push_count(15) and sender not in pushed
    owed = set(spreader.owed)
    assert owed == set(peers) - set(pushed) - {sender}
    assert not spreader.is_new(b"d" * 32)
    flushed = spreader.flush()
    assert {peer for peer, _ in flushed} == owed and not spreader.owed
    assert all(have.digests == (Hash32(b"d" * 32),) for _, have in flushed)


def test_announce_only_gossip_pushes_nothing_and_urgent_gossip_says_so() -> None:
    spreader: Spreader[bytes] = Spreader(random.Random(1))
    assert spreader.spread(b"a" * 32, b"proof", keys(9), push=False) == []
    assert len(spreader.owed) == 9 and not spreader.urgent
    spreader.spread(b"b" * 32, b"block", keys(9), urgent=True)
    assert spreader.urgent
    spreader.flush()
    assert not spreader.urgent


def test_a_flush_splits_past_the_digest_batch() -> None:
    spreader: Spreader[bytes] = Spreader(random.Random(1))
    peer = keys(1)
    for i in range(DIGEST_BATCH + 5):
        spreader.spread(i.to_bytes(32, "big"), b"x", peer, push=False)
    sizes = [len(have.digests) for _, have in spreader.flush()]
    assert sizes == [DIGEST_BATCH, 5]


def test_have_asks_only_for_what_is_missing_and_not_twice_within_the_retry() -> None:
    spreader: Spreader[bytes] = Spreader(random.Random(1))
    known, missing = Hash32(b"k" * 32), Hash32(b"m" * 32)
    spreader.remember(bytes(known))
    want = spreader.on_have(Have((known, missing)), 0.0)
    assert want == Want((missing,))
    assert spreader.on_have(Have((missing,)), WANT_RETRY / 2) is None  # asked already
    assert spreader.on_have(Have((missing,)), WANT_RETRY + 0.1) == Want((missing,))  # asked again
    spreader.remember(bytes(missing))
    assert spreader.on_have(Have((missing,)), 100.0) is None


def test_the_hashes_asked_for_are_bounded() -> None:
    spreader: Spreader[bytes] = Spreader(random.Random(1))
    junk = [Hash32(i.to_bytes(32, "big")) for i in range(WANTED_LIMIT + 10)]
    for start in range(0, len(junk), DIGEST_BATCH):
        spreader.on_have(Have(tuple(junk[start : start + DIGEST_BATCH])), 0.0)
    assert len(spreader.wanted) == WANTED_LIMIT
    spreader.on_have(Have((Hash32(b"n" * 32),)), WANT_RETRY + 1)  # old asks forgotten: room again
    assert len(spreader.wanted) == 1


def test_want_is_answered_from_the_kept_bodies_only() -> None:
    spreader: Spreader[bytes] = Spreader(random.Random(1))
    spreader.spread(b"a" * 32, b"first", keys(2))
    for i in range(BODIES_KEPT):
        spreader.spread(i.to_bytes(32, "big"), b"later", keys(2))
    assert spreader.on_want(Want((Hash32(b"a" * 32),))) == []  # the oldest body was let go
    assert spreader.on_want(Want((Hash32((5).to_bytes(32, "big")), Hash32(b"z" * 32)))) == [b"later"]


def test_have_and_want_are_bounded_on_the_wire() -> None:
    with pytest.raises(DecodeError):
        decode_message(encode(Have(tuple(Hash32(bytes(32)) for _ in range(DIGEST_BATCH + 1)))))
    with pytest.raises(DecodeError):
        decode_message(encode(Want(())))
    assert decode_message(encode(ProofsRequest())) == ProofsRequest()


def test_what_is_relayed() -> None:
    sim = _network(nodes=12, blocks=4)
    node = sim.nodes[0]
    proof = node.core.proofs.accepted[bytes(node.node_key)][0]
    assert should_relay(proof, [ProofAccepted(proof.node_key)], set())
    assert not should_relay(proof, [], set()), "a proof refused (too soon, unknown) goes no further"
    assert relay_style(proof) == (False, False)
    block = SignedBlock(node.ledger.block_at(4))
    assert should_relay(block, [Applied(block.block, ())], set())
    assert not should_relay(block, [], set()), "a block not applied here is not passed on"
    assert relay_style(block) == (True, True)
    certified = Certified(node.ledger.certificates_from(4)[0])
    assert should_relay(certified, [Finalized(4, certified.certificate.block_hash)], set())
    assert not should_relay(certified, [], set())
    assert relay_style(certified) == (True, True)
    assert relay_style(Want((Hash32(bytes(32)),))) == (True, False)  # anything else: pushed, trickled
    assert not should_relay(Want((Hash32(bytes(32)),)), [Penalize(node.node_key, "x")], set())


# -- the core's duties and directory --------------------------------------------------------------


def _network(nodes: int = 30, blocks: int = 4) -> Simulation:
    config = SimConfig(nodes=nodes, blocks=blocks, seed=3, verify_once=True)
    sim = Simulation(config, simulation_genesis(config)[1])
    sim.run()
    return sim


def test_duty_peers_are_the_members_of_the_quorums_a_node_sits_in() -> None:
    sim = _network()
    reference = sim.nodes[0]
    state, height = reference.ledger.state, reference.height
    entropy = compute_block_entropy(reference.ledger.random_value_at, height + 1)
    quorum = compute_block_quorum(state, entropy, height + 1, 0)
    assert quorum is not None
    members = {quorum.producer, *quorum.validators}
    checkpoints = []
    interval = state.params.checkpoint_interval
    first = reference.final_height - reference.final_height % interval + interval
    for checkpoint in range(first, height + interval + 1, interval):
        found = get_checkpoint_quorum(Overlay(state.get), checkpoint)
        if found is not None:
            checkpoints.append({m.node_key for m in found.members})
    outsiders = 0
    for node in sim.nodes:
        if node.height != height:
            continue
        duties = node.core.duty_peers()
        assert node.node_key not in duties
        if node.node_key in members:
            assert members - {node.node_key} <= duties
        in_checkpoint = [c for c in checkpoints if node.node_key in c]
        for c in in_checkpoint:
            assert c - {node.node_key} <= duties
        next_round = compute_block_quorum(state, entropy, height + 1, 1)
        assert next_round is not None
        in_round_one = node.node_key in {next_round.producer, *next_round.validators}
        if node.node_key not in members and not in_checkpoint and not in_round_one:
            assert duties == frozenset()
            outsiders += 1
        assert node.core.duty_peers() is duties  # once per tip and round
    assert outsiders > 0


def test_a_new_peer_gets_our_last_proof_and_is_asked_for_its_proofs_by_a_starting_node() -> None:
    sim = _network(nodes=12, blocks=2)
    core, peer = sim.nodes[0].core, sim.nodes[1].node_key
    core.directory_asks = 1
    now = sim.now
    first = core.on_peer_connected(peer, now)
    proofs = [a.message for a in first if isinstance(a, Send) and isinstance(a.message, UptimeProof)]
    assert [a.message for a in first if isinstance(a, Send) and isinstance(a.message, ProofsRequest)]
    assert proofs and proofs[0] == core.proofs.accepted[bytes(core.node_key)][0], "the proof gossiped last"
    second = core.on_peer_connected(sim.nodes[2].node_key, now)
    assert not [a for a in second if isinstance(a, Send) and isinstance(a.message, ProofsRequest)]
    # the answer: every fresh proof it holds, in batches; taken in by a node that knew none
    answer = sim.nodes[3].core.on_message(ProofsRequest(), sim.nodes[0].node_key, now)
    batches = [a.message for a in answer if isinstance(a, Send) and isinstance(a.message, Proofs)]
    assert batches and all(len(b.proofs) <= PROOF_BATCH for b in batches)
    total = sum(len(b.proofs) for b in batches)
    assert total == sum(
        1 for key in sim.nodes[3].core.proofs.accepted if sim.nodes[3].core.proofs.is_fresh(key, now)
    )
    newcomer = sim.nodes[4].core
    newcomer.proofs.accepted.clear()
    for batch in batches:
        newcomer.on_message(batch, sim.nodes[3].node_key, now)
    assert len(newcomer.proofs.accepted) == total
    assert sim.nodes[3].core.on_message(ProofsRequest(), None, now) == []


def test_nothing_goes_back_to_a_peer_that_announced_it() -> None:
    spreader: Spreader[bytes] = Spreader(random.Random(1))
    peers = keys(9)
    digest = Hash32(b"h" * 32)
    spreader.on_have(Have((digest,)), 0.0, peers[0])
    spreader.on_have(Have((digest,)), 0.1, peers[1])
    pushed = spreader.spread(bytes(digest), b"body", peers, exclude=peers[2])
    owed = set(spreader.owed)
    assert not {peers[0], peers[1], peers[2]} & (set(pushed) | owed)
    assert set(pushed) | owed == set(peers[3:])
    # a peer that announces it after we owed it our Have is not sent it
    late = next(iter(owed))
    spreader.on_have(Have((digest,)), 0.2, late)
    assert late not in {peer for peer, _ in spreader.flush()}
