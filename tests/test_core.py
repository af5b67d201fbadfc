"""Rules of the node core tested on their own: fork choice (PROTOCOL.md §4), checkpoint votes
aggregated into certificates, the bound on Pulse rounds, Pulse messages that arrive before their
round, and the uptime proof a new peer gets."""

from __future__ import annotations

import msgspec
import pytest

from appchain.cli.simulate import simulation_genesis
from consensus.checkpoint import compute_checkpoint_message, decode_bitset
from consensus.faults import parse_faults
from consensus.forkchoice import prefer_candidate
from consensus.messages import CheckpointVote
from consensus.node import EARLY_PULSE_LIMIT, MAX_ROUND, Finalized, NodeCore, Send
from consensus.pulse import PulseMessage
from consensus.quorum import compute_checkpoint_threshold
from consensus.simulator import Faults, SimConfig, Simulation
from consensus.uptime import DEVNET_UPTIME, UptimeProof
from consensus.validation import compute_block_entropy, compute_block_quorum
from state.block import Block
from state.checkpoints import get_checkpoint_quorum
from state.crypto import bls
from state.transition import execute_block
from state.types import Hash32
from state.view import Overlay

OURS, LOWER, HIGHER = b"\x05" * 32, b"\x01" * 32, b"\x09" * 32


@pytest.mark.parametrize(
    ("case", "kwargs", "prefer"),
    [
        ("lower round wins", {"our_round": 1, "candidate_round": 0, "candidate_hash": HIGHER}, True),
        ("higher round loses", {"our_round": 0, "candidate_round": 1, "candidate_hash": LOWER}, False),
        ("same round: lower hash wins", {"candidate_hash": LOWER}, True),
        ("same round: higher hash loses", {"candidate_hash": HIGHER}, False),
        ("the same block is no fork", {"candidate_hash": OURS}, False),
        (
            "a certified candidate wins over a lower round",
            {"our_round": 0, "candidate_round": 3, "candidate_hash": HIGHER, "certified_hash": HIGHER},
            True,
        ),
        (
            "our certified block stays against a lower round",
            {"our_round": 3, "candidate_round": 0, "candidate_hash": LOWER, "certified_hash": OURS},
            False,
        ),
        (
            "never at the final height",
            {"height": 8, "final_height": 8, "candidate_hash": LOWER, "candidate_round": 0, "our_round": 2},
            False,
        ),
        (
            "never below the final height",
            {"height": 7, "final_height": 8, "candidate_hash": LOWER, "certified_hash": LOWER},
            False,
        ),
    ],
)
def test_fork_choice(case: str, kwargs: dict[str, object], prefer: bool) -> None:
    args: dict[str, object] = {
        "height": 10,
        "final_height": 8,
        "our_round": 0,
        "our_hash": OURS,
        "candidate_round": 0,
        "candidate_hash": LOWER,
        "certified_hash": None,
        **kwargs,
    }
    assert prefer_candidate(**args) is prefer, case  # type: ignore[arg-type]


def _core_at_checkpoint() -> tuple[NodeCore, dict[bytes, bls.BlsSecretKey]]:
    """Node 0's core with blocks 1..4 applied from another run of the same network, but no
    certificate: checkpoint 4 waits for votes."""
    config = SimConfig(nodes=12, blocks=4, seed=9)
    _, start = simulation_genesis(config)
    source = Simulation(config, start)
    source.run()
    core = Simulation(config, start).nodes[0].core
    for height in range(1, 5):
        block = source.nodes[0].ledger.block_at(height)
        core.on_block(block, block.header.timestamp / 1000 + 1.0)  # the core's clock: seconds
    assert core.height == 4 and core.final_height == 0
    return core, {bytes(key.public_key): secret for key, secret in start.keys}


def test_a_vote_that_does_not_verify_never_enters_a_certificate() -> None:
    core, secrets = _core_at_checkpoint()
    state = core.ledger.state
    quorum = get_checkpoint_quorum(Overlay(state.get), 4)
    assert quorum is not None
    threshold = compute_checkpoint_threshold(len(quorum.members))
    message = compute_checkpoint_message(state.chain_id, 4, state.block_hash)
    others = [i for i, m in enumerate(quorum.members) if m.node_key != core.node_key]
    forger, honest = others[0], others[1:]

    def vote(member: int, payload: bytes = message) -> CheckpointVote:
        secret = secrets[bytes(quorum.members[member].node_key)]
        return CheckpointVote(4, state.block_hash, member, bls.sign(secret, payload))

    now = state.timestamp / 1000 + 2.0
    forged = vote(forger, compute_checkpoint_message(state.chain_id, 4, Hash32(bytes(32))))
    assert core.on_message(forged, quorum.members[forger].node_key, now) == []
    # our own vote, the forged one and threshold - 2 honest ones: enough votes, too few valid
    for member in honest[: threshold - 2]:
        actions = core.on_message(vote(member), quorum.members[member].node_key, now)
        assert not any(isinstance(a, Finalized) for a in actions)
    assert core.final_height == 0
    actions = core.on_message(
        vote(honest[threshold - 2]), quorum.members[honest[threshold - 2]].node_key, now
    )
    assert Finalized(4, state.block_hash) in actions and core.final_height == 4
    certificate = core.ledger.certificates[4]  # type: ignore[attr-defined]
    signers = set(decode_bitset(certificate.signers, len(quorum.members)))
    assert forger not in signers and len(signers) == threshold


def test_rounds_stop_at_the_guards_bound() -> None:
    core, _ = _core_at_checkpoint()
    now = core.ledger.state.timestamp / 1000 + 1e6
    assert core._start_round(core.height + 1, MAX_ROUND + 1, now) == []
    assert (core.height + 1, MAX_ROUND + 1) not in core.started


def test_a_member_whose_clock_runs_ahead_takes_part_in_every_round() -> None:
    """Node 1's clock is 0.3 s ahead, more than a message takes: it starts each round, and
    sends its handshake, before the others have started it. They keep it for the round (it was
    dropped, so node 1 was left out of every bitset, missed every duty and was decommissioned
    at the first test after the grace period, then recommissioned, then again)."""
    config = SimConfig(nodes=5, blocks=20, seed=3, faults=Faults(skew={1: 0.3}))
    _, start = simulation_genesis(config)
    sim = Simulation(config, start)
    report = sim.run()
    assert report["target_reached"] and report["roots_agree"]
    watcher, ahead = sim.nodes[0], sim.nodes[1].node_key
    duties = []
    for block in watcher.blocks:
        height = block.header.height
        entropy = compute_block_entropy(watcher.random_value_at, height)
        quorum = compute_block_quorum(watcher.states[height - 1], entropy, height, block.header.round)
        assert quorum is not None
        if ahead in quorum.validators:
            duties.append(bool(block.header.validators >> quorum.validators.index(ahead) & 1))
    assert len(duties) >= 15 and all(duties), duties
    assert watcher.state_changes == []


def test_a_node_back_within_the_round_it_started_before_its_crash_takes_part_in_the_next() -> None:
    """Round 0 of height 1 starts at t=2; node 2 crashes just after starting it and is back
    before it ends (t=3). Its guard holds that round's slots, so it starts the next one. With
    node 3 down for good, the 4-node chain needs nodes 0, 1 and 2 in every round (it waited for
    a block that could not come without it instead: the chain stopped at height 0 for good)."""
    config = parse_faults(
        "crash=3@1-100000,crash=2@2.05-3", SimConfig(nodes=4, blocks=10**9, seed=1, time_limit=120)
    )
    _, start = simulation_genesis(config)
    sim = Simulation(config, start)
    sim.run()
    assert min(sim.nodes[i].final_height for i in (0, 1, 2)) >= 8


def test_pulse_messages_are_kept_for_the_current_or_next_round_only_and_boundedly() -> None:
    core, _ = _core_at_checkpoint()
    height, now = core.height + 1, core.ledger.state.timestamp / 1000 + 0.5  # before round 0 starts

    def message(round_: int, sender: int = 0) -> PulseMessage:
        return PulseMessage(core.ledger.state.block_hash, height, round_, sender, 0, b"")

    for round_ in (0, 1, 2, 7):
        core.on_message(message(round_), None, now)
    later = height + 1
    core.on_message(PulseMessage(core.ledger.state.block_hash, later, 0, 0, 0, b""), None, now)
    assert sorted(core.early_pulse) == [(height, 0), (height, 1)]
    for index in range(2 * EARLY_PULSE_LIMIT):
        core.on_message(message(1, index % 11), None, now)
    assert sum(map(len, core.early_pulse.values())) == EARLY_PULSE_LIMIT
    core._start_round(height, 0, core.ledger.state.timestamp / 1000 + 2.0)
    assert (height, 0) not in core.early_pulse and (height, 1) in core.early_pulse


def test_a_peer_that_connects_gets_a_fresh_proof_at_once() -> None:
    """A node that just started knows where each peer serves once it connects (not a proof
    interval later): the peer sends it a proof signed now, which it accepts."""
    config = SimConfig(nodes=12, blocks=4, seed=9)
    _, start = simulation_genesis(config)
    sim = Simulation(config, start)
    peer, started = sim.nodes[0].core, sim.nodes[1].core
    now = float(start.genesis_time + 600)
    peer.directory_asks = 0  # it started long ago (a starting node also asks for proofs: test_topology)
    [action] = peer.on_peer_connected(started.node_key, now)
    assert isinstance(action, Send) and action.to == started.node_key
    proof = action.message
    assert isinstance(proof, UptimeProof) and proof.node_key == peer.node_key and proof.timestamp == int(now)
    assert bytes(peer.node_key) not in started.proofs.accepted
    started.on_message(proof, peer.node_key, now + 0.5)
    assert started.proofs.accepted[bytes(peer.node_key)][0] == proof
    peer.send_proofs = False  # an operator silenced it: it stays quiet to new peers too
    assert peer.on_peer_connected(started.node_key, now) == []


def test_a_template_stamped_too_far_ahead_of_the_validators_clock_is_refused() -> None:
    """The clock rule, judged only by a validator of a round under way: a template may be
    stamped at most ``max_template_lead_ms`` (the uptime proofs' ``max_skew``) ahead of the
    validator's clock; the edge is taken, a millisecond more is refused. A template stamped
    before its parent plus the block time is refused by the state rule (too early). The block
    stamped ahead is otherwise valid: applying it, as a replay would, reads no clock."""
    core, _ = _core_at_checkpoint()
    state = core.ledger.state
    height, start_ms = core.height + 1, state.timestamp + state.params.block_time
    quorum = compute_block_quorum(
        state, compute_block_entropy(core.ledger.random_value_at, height), height, 0
    )
    assert quorum is not None
    template = core._build_template(state, start_ms, quorum.producer, 0)
    assert template.header.timestamp == start_ms
    lead = core.max_template_lead_ms()
    assert lead == DEVNET_UPTIME.max_skew * 1000 == 5_000

    def valid(timestamp: int, now_ms: int) -> bool:
        block = Block(msgspec.structs.replace(template.header, timestamp=timestamp), template.events)
        return core._is_valid_template(block, height, 0, quorum.producer, now_ms / 1000)

    assert valid(start_ms, start_ms)  # honest: the round's start, judged once our round started
    ahead = start_ms + 60_000
    assert valid(ahead, ahead - lead)  # the edge
    assert not valid(ahead, ahead - lead - 1)  # too far ahead of our clock
    assert not valid(start_ms - 1, start_ms)  # too early: before the parent plus the block time
    assert not valid(start_ms - 1, start_ms + 10**6)  # whatever the clock says
    stamped_ahead = Block(msgspec.structs.replace(template.header, timestamp=ahead), template.events)
    execute_block(state, stamped_ahead, verify_signatures=False)  # the state rules read no clock


def test_the_template_lead_covers_the_skew_the_fault_schedules_inject() -> None:
    """The nemesis skews a node's clock by at most MAX_SKEW: templates between skewed nodes must
    still be accepted, so the lead a template may have is above it (and the uptime proofs'
    allowance, which it is, is what the schedules promise to stay under)."""
    from appchain.lab.nemesis import MAX_SKEW

    assert DEVNET_UPTIME.max_skew > MAX_SKEW
