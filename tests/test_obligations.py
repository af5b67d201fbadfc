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
from state.noderecords import NodeStatus
from state.nodes import compute_credit, compute_reward_queue
from state.obligations import compute_obligations_quorum, compute_vote_threshold
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
    assert compute_obligations_quorum([], keys, b"seed", params) is None  # no active node: none


@pytest.mark.parametrize("active", [4, 7, 10, 11])
def test_a_small_quorum_is_every_active_node_and_tests_them_all(net, active: int) -> None:  # type: ignore[no-untyped-def]
    """PROTOCOL.md §4a: q = min(10, N) validators; with N <= 10 every active node validates and
    every active and decommissioned node is a worker, so a small network still tests them all."""
    params = Sim(*net).params
    keys = [NodeKey(bytes([i]) * 32) for i in range(active)]
    down = [NodeKey(bytes([100 + i]) * 32) for i in range(2)]
    quorum = compute_obligations_quorum(keys, down, b"seed", params)
    assert quorum is not None and len(quorum.validators) == min(10, active)
    if active <= 10:
        assert set(quorum.validators) == set(keys) and set(quorum.workers) == set(keys + down)
    else:
        assert not set(quorum.validators) & set(quorum.workers)
    for worker in quorum.workers:
        expected = -(-7 * (len(quorum.validators) - (worker in quorum.validators)) // 10)
        assert compute_vote_threshold(quorum, worker, params) == expected
    assert compute_vote_threshold(quorum, down[0], params) == -(-7 * min(10, active) // 10)


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
    worker = sim.worker_in_next_quorum(  # not the last block's producer: already at the back
        lambda n: n.status == NodeStatus.ACTIVE and n.last_reward_height < sim.height
    )
    assert worker is not None
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


# -- PROTOCOL.md §4a: small networks and the floor ----------------------------------------------------


@pytest.fixture(scope="module")
def four():  # type: ignore[no-untyped-def]
    return make_genesis(nodes=4)


@pytest.fixture(scope="module")
def five():  # type: ignore[no-untyped-def]
    return make_genesis(nodes=5)


def test_a_validator_never_votes_on_itself(five) -> None:  # type: ignore[no-untyped-def]
    sim = Sim(*five)
    sim.advance(2)
    quorum = sim._quorum_for(sim.height + 1)
    worker = next(w for w in quorum.workers if w in quorum.validators)
    me = quorum.validators.index(worker)
    needed = compute_vote_threshold(quorum, worker, sim.params)
    assert needed == 3  # 7 x (5 - 1) / 10, rounded up: of the four others
    others = [i for i in range(len(quorum.validators)) if i != me]
    sim.refuse(sim.votes(worker, NewState.DECOMMISSION, voters=[me, *others[:2]]), match="voted on itself")
    sim.refuse(sim.votes(worker, NewState.DECOMMISSION, voters=others[:2]), match="2 votes, 3 needed")
    sim.block(sim.votes(worker, NewState.DECOMMISSION, voters=others[:3]))  # 5 active -> 4: allowed
    record = sim.node(worker)
    assert record is not None and record.status == NodeStatus.DECOMMISSIONED
    sim.check()


def test_no_state_change_takes_the_active_set_below_the_floor(four) -> None:  # type: ignore[no-untyped-def]
    sim = Sim(*four)
    sim.advance(2)
    assert sim.params.pulse_min_nodes == 4
    worker = active_worker(sim)
    for new_state in (NewState.DECOMMISSION, NewState.DEREGISTER):
        sim.refuse(sim.votes(worker, new_state), match="fewer than pulse_min_nodes")
    # what does not remove an active node still applies: an IP-change penalty
    sim.block(sim.votes(worker, NewState.IP_CHANGE_PENALTY))
    record = sim.node(worker)
    assert record is not None and record.status == NodeStatus.ACTIVE


def test_a_decommissioned_node_may_still_be_deregistered_at_the_floor(five) -> None:  # type: ignore[no-untyped-def]
    """Deregistering a node that is already out of the active set removes no active node."""
    sim = Sim(*five)
    sim.advance(2)
    worker = active_worker(sim)
    sim.block(sim.votes(worker, NewState.DECOMMISSION))  # 5 -> 4 active: the floor
    other = active_worker(sim)
    sim.refuse(sim.votes(other, NewState.DECOMMISSION), match="fewer than pulse_min_nodes")
    sim.block(sim.votes(worker, NewState.DEREGISTER))
    assert sim.node(worker) is None
    sim.check()


def test_a_finished_unlock_waits_while_the_active_set_is_at_the_floor(four) -> None:  # type: ignore[no-untyped-def]
    from state.events import RequestUnlock

    sim = Sim(*four)
    sim.advance(2)
    node_key, node = next((k, n) for k, n in ((k, sim.node(k)) for k in sim.node_keys) if n is not None)
    operator = next(o for o in sim.operators if o.public_key == node.operator)
    sim.block(sim.tx(RequestUnlock, operator, node_key=NodeKey(node_key)))
    record = sim.node(node_key)
    assert record is not None
    due = record.unlock_height
    sim.advance_to(due + 3)
    record = sim.node(node_key)
    assert record is not None and record.status == NodeStatus.ACTIVE and record.unlock_height == due + 4
    sim.check()
    # a fifth node becomes active: the set is above the floor, and the waiting node leaves
    new_node, register = sim.new_node(sim.users[0], sim.params.staking_requirement)
    sim.block(register)
    assert sim.node(new_node.public_key).status == NodeStatus.ACTIVE  # type: ignore[union-attr]
    sim.advance(2)
    assert sim.node(node_key) is None
    sim.check()
