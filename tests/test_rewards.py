"""Block rewards and claims by the cumulative index (PROTOCOL.md §5), checked by hand.

Each block only grows the index (``per_node += reward // payable``) and takes ``share x payable``
from the pool; a node is paid when it is settled (claim, decommission, deregistration, exit): the
operator fee off the sum of its shares, the rest pro rata to stake, the remainder back to the pool.
"""

from __future__ import annotations

import pytest

from state.effects import BlockRewarded, RewardPaid
from state.events import ClaimRewards, Contribute, NewState, RequestUnlock
from state.noderecords import NOT_EARNING
from state.nodes import NODE_PREFIX, compute_pending_rewards, is_payable, iter_nodes
from state.rewards import compute_block_reward, compute_node_payouts, get_index
from state.types import Atomic, NodeKey
from tests.chainsim import Sim, make_genesis


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    return make_genesis(nodes=12)


@pytest.fixture
def sim(net) -> Sim:  # type: ignore[no-untyped-def]
    return Sim(*net)


def test_block_reward_formula() -> None:
    from genesis.presets import MAINNET

    pool = 1_000_000 * 10**9
    assert compute_block_reward(pool, MAINNET) == pool * 1510 * 120 // (10_000 * 31_536_000)


def test_no_rewards_before_anyone_is_payable(sim: Sim) -> None:
    pool = sim.pool()
    sim.advance(sim.params.payable_delay - 1)
    assert sim.pool() == pool and get_index(sim.view).payable == 0
    assert not any(isinstance(e, (RewardPaid, BlockRewarded)) for e in sim.last.effects)  # type: ignore[union-attr]


def test_a_block_grows_the_index_and_touches_no_node(sim: Sim) -> None:
    sim.advance_to(sim.params.payable_delay)  # the genesis nodes start earning in this block
    assert get_index(sim.view).payable == 12
    pool, per_node = sim.pool(), get_index(sim.view).per_node
    pending = sim.block()
    share = compute_block_reward(pool, sim.params) // 12
    assert share > 0 and BlockRewarded(Atomic(share), 12) in pending.effects
    assert get_index(sim.view).per_node == per_node + share
    assert sim.pool() == pool - 12 * share  # what the division drops stays in the pool
    # no node record is written but the producer's (to the back of the queue): O(1) per block
    written = [key for key in pending.writes if key.startswith(NODE_PREFIX)]
    assert written == [NODE_PREFIX + pending.block.header.producer]
    assert not any(isinstance(e, RewardPaid) for e in pending.effects)
    sim.check()


def test_every_payable_node_earns_the_sum_of_the_shares(sim: Sim) -> None:
    sim.advance_to(sim.params.payable_delay - 1)
    shares = []
    for _ in range(5):
        pool = sim.pool()
        sim.block()
        shares.append(compute_block_reward(pool, sim.params) // 12)
    for _, node in iter_nodes(sim.view):
        # genesis nodes: the operator is the only contributor, so it gets fee and rest
        assert sim.accrued(node.operator) == 0  # nothing settled yet
        assert compute_pending_rewards(sim.view, node.operator) == sum(shares)
    sim.check()


def test_settlement_pays_fee_first_then_pro_rata_and_returns_the_remainder(sim: Sim) -> None:
    alice, bob, carol = sim.users[0], sim.users[1], sim.users[2]
    req = sim.params.staking_requirement
    node, tx = sim.new_node(alice, req // 2, fee_bp=1234)
    sim.block(tx)
    sim.block(sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(req // 3)))
    sim.block(sim.tx(Contribute, carol, node_key=node.public_key, amount=Atomic(req - req // 2 - req // 3)))
    record = sim.node(node.public_key)
    assert record is not None and record.reward_index == NOT_EARNING
    earned = 1_000_003
    payouts = dict(compute_node_payouts(record, earned))
    fee = earned * 1234 // 10_000
    rest = earned - fee
    assert payouts[alice.public_key] == fee + rest * (req // 2) // req
    assert payouts[bob.public_key] == rest * (req // 3) // req
    assert sum(payouts.values()) <= earned
    # it starts earning at its payable height, not before
    payable_at = record.activation_height + sim.params.payable_delay
    sim.advance_to(payable_at - 1)
    assert sim.node(node.public_key).reward_index == NOT_EARNING  # type: ignore[union-attr]
    sim.block()
    started = sim.node(node.public_key)
    assert started is not None and is_payable(started, sim.height, sim.params)
    sim.advance(7)
    # Bob claims: the node is settled, so Alice and Carol are paid too
    earned = get_index(sim.view).per_node - started.reward_index
    settled = dict(compute_node_payouts(started, earned))
    pool, before = sim.pool(), {k.public_key: sim.accrued(k.public_key) for k in (alice, carol)}
    reward = compute_block_reward(pool, sim.params)
    claim = sim.tx(ClaimRewards, bob)
    bob_balance = sim.balance(bob.public_key)
    pending = sim.block(claim)
    assert RewardPaid(NodeKey(node.public_key), Atomic(sum(settled.values()))) in pending.effects
    assert sim.balance(bob.public_key) == bob_balance + settled[bob.public_key] - sim.fee(claim)
    for key in (alice, carol):
        assert sim.accrued(key.public_key) == before[key.public_key] + settled[key.public_key]
    payable = get_index(sim.view).payable
    remainder = earned - sum(settled.values())
    assert sim.pool() == pool + sim.fee(claim) + remainder - reward // payable * payable
    assert sim.node(node.public_key).reward_index == get_index(sim.view).per_node - reward // payable  # type: ignore[union-attr]
    sim.check()


def test_claim_moves_settled_and_pending_rewards_to_the_balance(sim: Sim) -> None:
    sim.advance(sim.params.payable_delay + 3)
    operator = sim.operators[0]
    owed = sim.accrued(operator.public_key) + compute_pending_rewards(sim.view, operator.public_key)
    assert owed > 0
    balance = sim.balance(operator.public_key)
    claim = sim.tx(ClaimRewards, operator)
    sim.block(claim)
    assert sim.balance(operator.public_key) == balance + owed - sim.fee(claim)
    assert sim.accrued(operator.public_key) == 0
    assert compute_pending_rewards(sim.view, operator.public_key) > 0  # the claim block's share
    sim.refuse(sim.tx(ClaimRewards, sim.users[5]), match="no accrued rewards")
    sim.check()


def test_a_decommissioned_node_is_settled_and_earns_nothing_until_recommissioned(sim: Sim) -> None:
    sim.advance(sim.params.payable_delay)
    worker = sim.worker_in_next_quorum()
    assert worker is not None
    node = sim.node(worker)
    assert node is not None
    owed = compute_pending_rewards(sim.view, node.operator)
    payable = get_index(sim.view).payable
    pending = sim.block(sim.votes(worker, NewState.DECOMMISSION))
    assert any(isinstance(e, RewardPaid) and e.node_key == NodeKey(worker) for e in pending.effects)
    assert sim.accrued(node.operator) == owed  # settled, at the index before this block's share
    assert get_index(sim.view).payable == payable - 1
    assert sim.node(worker).reward_index == NOT_EARNING  # type: ignore[union-attr]
    sim.advance(3)
    assert compute_pending_rewards(sim.view, node.operator) == 0
    assert sim.accrued(node.operator) == owed
    while worker not in sim._quorum_for(sim.height + 1).workers:
        sim.block()
    sim.block(sim.votes(worker, NewState.RECOMMISSION))
    assert get_index(sim.view).payable == payable  # past its payable delay: earning again at once
    sim.block()
    assert compute_pending_rewards(sim.view, node.operator) > 0
    sim.check()


def test_a_node_leaving_is_settled_before_its_stake_returns(sim: Sim) -> None:
    alice = sim.users[0]
    node, tx = sim.new_node(alice, sim.params.staking_requirement)
    sim.block(tx)
    sim.advance(sim.params.payable_delay + 2)
    unlock = sim.tx(RequestUnlock, alice, node_key=node.public_key)
    sim.block(unlock)
    exit_at = sim.node(node.public_key).unlock_height  # type: ignore[union-attr]
    sim.advance_to(exit_at - 1)
    owed = compute_pending_rewards(sim.view, alice.public_key)
    before = sim.accrued(alice.public_key)
    payable = get_index(sim.view).payable
    pending = sim.block()  # the exit runs at the start of this block
    assert sim.node(node.public_key) is None
    assert RewardPaid(NodeKey(node.public_key), Atomic(owed)) in pending.effects
    assert sim.accrued(alice.public_key) == before + owed
    assert get_index(sim.view).payable == payable - 1
    assert compute_pending_rewards(sim.view, alice.public_key) == 0
    sim.check()


def test_a_node_recommissioned_before_its_payable_height_waits_for_it(sim: Sim) -> None:
    """The invalid case of the payable delay: a recommission does not start earning early."""
    node, tx = sim.new_node(sim.users[0], sim.params.staking_requirement)
    sim.block(tx)
    key = node.public_key
    record = sim.node(key)
    assert record is not None
    payable_at = record.activation_height + sim.params.payable_delay
    for new_state in (NewState.DECOMMISSION, NewState.RECOMMISSION):
        while key not in sim._quorum_for(sim.height + 1).workers:
            sim.block()
        sim.block(sim.votes(key, new_state))
    assert sim.height < payable_at - 1
    sim.advance_to(payable_at - 1)
    assert sim.node(key).reward_index == NOT_EARNING  # type: ignore[union-attr]
    payable = get_index(sim.view).payable
    sim.block()  # its scheduled payable height
    assert sim.node(key).reward_index != NOT_EARNING  # type: ignore[union-attr]
    assert get_index(sim.view).payable == payable + 1
    sim.check()
