"""Block rewards and claims (PROTOCOL.md §5), checked against the formula by hand."""

from __future__ import annotations

import pytest

from state.effects import RewardPaid
from state.events import ClaimRewards, Contribute
from state.nodes import is_payable, iter_nodes
from state.rewards import compute_block_reward, compute_node_payouts
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
    assert sim.pool() == pool
    assert not any(isinstance(e, RewardPaid) for e in sim.last.effects)  # type: ignore[union-attr]


def test_first_payable_block_splits_exactly(sim: Sim) -> None:
    sim.advance_to(sim.params.payable_delay - 1)
    pool = sim.pool()
    nodes = [(k, n) for k, n in iter_nodes(sim.view)]
    accrued = {n.operator: sim.accrued(n.operator) for _, n in nodes}
    pending = sim.block()
    reward = pool * 1510 * sim.params.block_time // (10_000 * 31_536_000)
    share = reward // len(nodes)
    # genesis nodes: one contributor (the operator), fee 10%: the operator gets the whole share
    for key, node in nodes:
        fee = share * 1000 // 10_000
        rest = share - fee
        assert sim.accrued(node.operator) == accrued[node.operator] + fee + rest
        assert RewardPaid(key, Atomic(fee + rest)) in pending.effects
    assert sim.pool() == pool - share * len(nodes)
    sim.check()


def test_operator_fee_then_pro_rata_with_remainders_kept(sim: Sim) -> None:
    alice, bob, carol = sim.users[0], sim.users[1], sim.users[2]
    req = sim.params.staking_requirement
    node, tx = sim.new_node(alice, req // 2, fee_bp=1234)
    sim.block(tx)
    sim.block(sim.tx(Contribute, bob, node_key=node.public_key, amount=Atomic(req // 3)))
    sim.block(sim.tx(Contribute, carol, node_key=node.public_key, amount=Atomic(req - req // 2 - req // 3)))
    record = sim.node(node.public_key)
    assert record is not None
    share = 1_000_003
    payouts = dict(compute_node_payouts(record, share))
    fee = share * 1234 // 10_000
    rest = share - fee
    assert payouts[alice.public_key] == fee + rest * (req // 2) // req
    assert payouts[bob.public_key] == rest * (req // 3) // req
    assert sum(payouts.values()) <= share
    # now run to the node's payable height and compare the accruals with the rule by hand
    sim.advance_to(record.activation_height + sim.params.payable_delay - 1)
    pool = sim.pool()
    payable = [(k, n) for k, n in iter_nodes(sim.view) if is_payable(n, sim.height + 1, sim.params)]
    before = {a: sim.accrued(a) for a in (alice.public_key, bob.public_key, carol.public_key)}
    sim.block()
    share = compute_block_reward(pool, sim.params) // len(payable)
    mine = dict(compute_node_payouts(record, share))
    for account, earlier in before.items():
        assert sim.accrued(account) == earlier + mine.get(account, 0)
    paid = sum(sum(a for _, a in compute_node_payouts(n, share)) for _, n in payable)
    assert sim.pool() == pool - paid  # what the divisions dropped stayed in the pool
    sim.check()


def test_claim_moves_accrued_rewards_to_the_balance(sim: Sim) -> None:
    sim.advance(sim.params.payable_delay + 3)
    operator = sim.operators[0]
    accrued = sim.accrued(operator.public_key)
    assert accrued > 0
    balance = sim.balance(operator.public_key)
    claim = sim.tx(ClaimRewards, operator)
    sim.block(claim)
    earned_this_block = sim.accrued(operator.public_key)  # the claim block paid rewards too
    assert sim.balance(operator.public_key) == balance + accrued - sim.fee(claim)
    assert earned_this_block > 0
    sim.refuse(sim.tx(ClaimRewards, sim.users[5]), match="no accrued rewards")
    sim.check()


def test_decommissioned_nodes_earn_nothing(sim: Sim) -> None:
    from state.events import NewState

    sim.advance(sim.params.payable_delay)
    worker = sim.worker_in_next_quorum()
    assert worker is not None
    sim.block(sim.votes(worker, NewState.DECOMMISSION))
    node = sim.node(worker)
    assert node is not None
    before = sim.accrued(node.operator)
    pending = sim.block()
    assert sim.accrued(node.operator) == before
    assert not any(isinstance(e, RewardPaid) and e.node_key == NodeKey(worker) for e in pending.effects)
