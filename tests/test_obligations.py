"""Obligations quorums, state changes and decommission credits (PROTOCOL.md §3)."""

from __future__ import annotations

import pytest

from state.effects import (
    NodeDecommissioned,
    NodeDeregistered,
    NodeRecommissioned,
    StakeReturned,
    SwarmChanged,
)
from state.events import NewState, Vote
from state.nodes import NodeStatus, compute_credit, compute_reward_queue
from state.obligations import compute_obligations_quorum
from state.swarms import UNASSIGNED_SWARM_ID
from state.types import NodeKey
from tests.chainsim import Sim, make_genesis, replace


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    return make_genesis(nodes=14)


@pytest.fixture
def sim(net) -> Sim:  # type: ignore[no-untyped-def]
    sim = Sim(*net)
    sim.advance(2)  # quorums exist from block 1 on
    return sim


def active_worker(sim: Sim) -> bytes:
    worker = sim.worker_in_next_quorum(lambda n: n.status == NodeStatus.ACTIVE)
    assert worker is not None
    return worker


def test_quorum_is_a_pure_function_of_its_inputs(net) -> None:  # type: ignore[no-untyped-def]
    sim = Sim(*net)
    params = sim.params
    keys = [NodeKey(bytes([i]) * 32) for i in range(30)]
    a = compute_obligations_quorum(keys, [], b"seed", params)
    assert a is not None and a == compute_obligations_quorum(list(reversed(keys)), [], b"seed", params)
    assert len(a.validators) == 10 and len(a.workers) == 20  # min(rest, max(50, rest // 100))
    assert not set(a.validators) & set(a.workers)
    assert compute_obligations_quorum(keys, [], b"other", params) != a
    assert compute_obligations_quorum(keys[:9], [], b"seed", params) is None


def test_decommission_then_recommission_with_credit_rules(sim: Sim) -> None:
    worker = active_worker(sim)
    node = sim.node(worker)
    assert node is not None
    credit = compute_credit(node, sim.height + 1, sim.params)
    assert credit == sim.params.credit_initial + (sim.height + 1) * 24 // 720
    pending = sim.block(sim.votes(worker, NewState.DECOMMISSION, reasons=0b101))
    decommissioned_at = sim.height
    record = sim.node(worker)
    assert record is not None and record.status == NodeStatus.DECOMMISSIONED
    assert record.swarm_id == UNASSIGNED_SWARM_ID
    assert NodeDecommissioned(NodeKey(worker), credit, 0b101, 0b101) in pending.effects
    assert any(isinstance(e, SwarmChanged) and e.node_key == worker for e in pending.effects)
    sim.check()
    # credit drops one per block while decommissioned
    assert compute_credit(record, decommissioned_at + 10, sim.params) == credit - 10
    sim.advance(9)
    recommission = sim.votes(worker, NewState.RECOMMISSION)
    pending = sim.block(recommission)
    down = sim.height - decommissioned_at
    expected = max(0, credit - 2 * down)
    assert NodeRecommissioned(NodeKey(worker), expected) in pending.effects
    record = sim.node(worker)
    assert record is not None and record.status == NodeStatus.ACTIVE
    assert compute_credit(record, sim.height, sim.params) == expected
    assert record.last_reward_height == sim.height  # back of the queue, with this block's producer
    assert record.swarm_id != UNASSIGNED_SWARM_ID
    sim.check()


def test_too_few_votes(sim: Sim) -> None:
    worker = active_worker(sim)
    sim.refuse(sim.votes(worker, NewState.DECOMMISSION, count=6), match="6 votes, 7 needed")


def test_a_bad_signature_or_a_non_member_is_refused(sim: Sim) -> None:
    worker = active_worker(sim)
    good = sim.votes(worker, NewState.DECOMMISSION)
    forged = sim.votes(worker, NewState.DECOMMISSION, sign=lambda i, m: sim.users[0].sign(m))
    sim.refuse(forged, match="does not verify")
    stranger = replace(good, votes=(*good.votes[:6], Vote(12, 0, good.votes[6].signature)))
    sim.refuse(stranger, match="validator index 12 is not in the quorum")
    twice = replace(good, votes=(*good.votes[:6], good.votes[0]))
    sim.refuse(twice, match="voted twice")
    other_state = replace(good, new_state=NewState.DEREGISTER)
    sim.refuse(other_state, match="does not verify")


def test_stale_and_future_votes(sim: Sim) -> None:
    worker = active_worker(sim)
    votes = sim.votes(worker, NewState.DECOMMISSION)
    sim.advance(sim.params.vote_lifetime + 1)
    if sim.node(worker) is not None:
        sim.refuse(votes, match="not valid at height")
    future = replace(votes, quorum_height=sim.height + 5)
    sim.refuse(future, match="not valid at height")


def test_old_votes_cannot_be_replayed_after_a_later_change(sim: Sim) -> None:
    worker = active_worker(sim)
    decommission = sim.votes(worker, NewState.DECOMMISSION)
    sim.block(decommission)
    # the same worker in a later quorum: recommission it
    for _ in range(30):
        if worker in sim._quorum_for(sim.height + 1).workers:
            break
        sim.block()
    sim.block(sim.votes(worker, NewState.RECOMMISSION))
    sim.refuse(decommission, match="stale")


def test_illegal_transitions(sim: Sim) -> None:
    worker = active_worker(sim)
    sim.refuse(sim.votes(worker, NewState.RECOMMISSION), match="only a decommissioned node")
    sim.block(sim.votes(worker, NewState.DECOMMISSION))
    for _ in range(30):
        if worker in sim._quorum_for(sim.height + 1).workers:
            break
        sim.block()
    sim.refuse(sim.votes(worker, NewState.DECOMMISSION), match="only an active node")
    sim.refuse(sim.votes(worker, NewState.IP_CHANGE_PENALTY), match="only an active node")


def test_low_credit_means_deregister_not_decommission(sim: Sim) -> None:
    worker = active_worker(sim)
    sim.block(sim.votes(worker, NewState.DECOMMISSION))
    # stay down 30 blocks: recommissioned with max(0, 60 - 60) = 0 credit
    for _ in range(60):
        if sim.height >= 30 + 3 and worker in sim._quorum_for(sim.height + 1).workers:
            break
        sim.block()
    sim.block(sim.votes(worker, NewState.RECOMMISSION))
    record = sim.node(worker)
    assert (
        record is not None
        and compute_credit(record, sim.height, sim.params) < sim.params.decommission_min_credit
    )
    for _ in range(60):
        if worker in sim._quorum_for(sim.height + 1).workers:
            break
        sim.block()
    sim.refuse(sim.votes(worker, NewState.DECOMMISSION), match="deregister instead")
    pending = sim.block(sim.votes(worker, NewState.DEREGISTER))
    assert any(isinstance(e, NodeDeregistered) for e in pending.effects)


def test_deregistered_stakes_return_after_the_lock(sim: Sim) -> None:
    worker = active_worker(sim)
    node = sim.node(worker)
    assert node is not None
    operator = node.operator
    pending = sim.block(sim.votes(worker, NewState.DEREGISTER))
    returns_at = sim.height + sim.params.deregistration_lock
    assert NodeDeregistered(NodeKey(worker), returns_at) in pending.effects  # type: ignore[arg-type]
    assert sim.node(worker) is None
    sim.check()  # the stake is now counted as locked
    before = sim.balance(operator)
    sim.advance_to(returns_at - 1)
    assert sim.balance(operator) == before
    last = sim.block()
    assert StakeReturned(NodeKey(worker), operator, sim.params.staking_requirement) in last.effects
    assert sim.balance(operator) == before + sim.params.staking_requirement
    sim.check()


def test_ip_change_penalty_sends_the_node_to_the_back(sim: Sim) -> None:
    worker = active_worker(sim)
    assert sim.node(worker).last_reward_height < sim.height  # type: ignore[union-attr]
    sim.block(sim.votes(worker, NewState.IP_CHANGE_PENALTY))
    tail = compute_reward_queue(sim.view)[-2:]  # this block's producer went to the back too
    assert worker in tail
    assert sim.node(worker).last_reward_height == sim.height  # type: ignore[union-attr]


def test_the_producer_goes_to_the_back_of_the_queue(sim: Sim) -> None:
    leader = compute_reward_queue(sim.view)[0]
    sim.block()
    assert compute_reward_queue(sim.view)[-1] == leader
    assert sim.node(leader).last_reward_height == sim.height  # type: ignore[union-attr]


def test_reward_queue_order(sim: Sim) -> None:
    queue = compute_reward_queue(sim.view)
    nodes = [sim.node(k) for k in queue]
    order = [(n.last_reward_height, n.registration_index) for n in nodes if n is not None]
    assert order == sorted(order)


def test_votes_must_name_a_real_worker_and_quorum(sim: Sim) -> None:
    worker = active_worker(sim)
    good = sim.votes(worker, NewState.DECOMMISSION)
    sim.refuse(
        replace(good, worker_index=len(sim._quorum_for(sim.height + 1).workers)),
        match="worker index .* is not in the quorum",
    )
    sim.refuse(replace(good, quorum_height=0), match="no obligations quorum at height 0")
    sim.refuse(replace(good, new_state=9), match="unknown new state 9")
