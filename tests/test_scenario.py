"""A life story over 2,400 devnet blocks, every balance checked to the atomic unit.

Alice registers a fully staked node; Bob registers half a node and Carol funds the rest. Both
earn; Carol claims midway, which settles Bob's node. Alice's node is decommissioned and
recommissioned (its credit checked), Bob's is deregistered (stakes locked, then returned), Alice
exits through an unlock. At every block the chain's pool, settled rewards and balances are
compared with a model kept here by hand: the PROTOCOL.md §5 reward index over the nodes the story
says are payable, each node settled where the story settles it, plus the fees and stakes the
story moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from state.events import ClaimRewards, Contribute, NewState, RequestUnlock
from state.noderecords import NodeStatus
from state.nodes import compute_credit
from state.types import Atomic
from tests.chainsim import Sim, make_genesis

BLOCKS = 2_400


@dataclass
class ModelNode:
    fee_bp: int
    operator: bytes
    stakes: list[tuple[bytes, int]]
    active_from: int  # first activation
    payable: bool = True  # false while decommissioned or gone
    settled_at: int | None = None  # the model's index at the last settlement, while earning


@dataclass
class Model:
    """The expected chain, kept by hand: the reward index of PROTOCOL.md §5."""

    pool: int
    rate: tuple[int, int, int]  # reward_rate_bp, block_time (ms), seconds_per_year
    delay: int
    nodes: dict[bytes, ModelNode] = field(default_factory=dict)
    accrued: dict[bytes, int] = field(default_factory=dict)
    per_node: int = 0

    def settle(self, key: bytes) -> None:
        """Pay a node the shares since its last settlement: fee first, then pro rata to stake."""
        node = self.nodes[key]
        if node.settled_at is None:
            return
        earned = self.per_node - node.settled_at
        fee = earned * node.fee_bp // 10_000
        rest = earned - fee
        total = sum(amount for _, amount in node.stakes)
        self.accrued[node.operator] = self.accrued.get(node.operator, 0) + fee
        paid = fee
        for account, amount in node.stakes:
            self.accrued[account] = self.accrued.get(account, 0) + rest * amount // total
            paid += rest * amount // total
        self.pool += earned - paid  # what the divisions dropped
        node.settled_at = self.per_node

    def stop(self, key: bytes, *, leaves: bool = False) -> None:
        self.settle(key)
        self.nodes[key].payable, self.nodes[key].settled_at = False, None
        if leaves:
            del self.nodes[key]

    def end_block(self, height: int) -> None:
        for node in self.nodes.values():
            if node.payable and node.settled_at is None and height >= node.active_from + self.delay:
                node.settled_at = self.per_node  # starts earning with this block's share
        earning = [n for n in self.nodes.values() if n.settled_at is not None]
        if not earning:
            return
        rate_bp, block_time, year = self.rate
        share = self.pool * rate_bp * block_time // (10_000 * year * 1000) // len(earning)  # block_time: ms
        self.per_node += share
        self.pool -= share * len(earning)


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    return make_genesis(nodes=14, users=6)


@pytest.mark.slow
def test_the_life_of_two_nodes(net) -> None:  # type: ignore[no-untyped-def]
    sim = Sim(*net)
    params = sim.params
    req = params.staking_requirement
    alice, bob, carol = sim.users[0], sim.users[1], sim.users[2]
    people = {"alice": alice.public_key, "bob": bob.public_key, "carol": carol.public_key}
    balance = {name: sim.balance(key) for name, key in people.items()}
    model = Model(
        sim.pool(), (params.reward_rate_bp, params.block_time, params.seconds_per_year), params.payable_delay
    )
    for key, node in _genesis_nodes(sim):
        model.nodes[key] = ModelNode(
            node.operator_fee_bp, node.operator, [(c.account, c.amount) for c in node.contributions], 0
        )

    def block(*events, before_rewards=lambda: None):  # type: ignore[no-untyped-def]
        """Apply a block; ``before_rewards`` updates the model for what the block's events did."""
        for event in events:
            if hasattr(event, "sender"):
                model.pool += sim.fee(event)
        pending = sim.block(*events)
        before_rewards()
        model.end_block(sim.height)
        return pending

    def check() -> None:
        assert sim.pool() == model.pool, sim.height
        for name, key in people.items():
            assert sim.balance(key) == balance[name], (sim.height, name)
            assert sim.accrued(key) == model.accrued.get(key, 0), (sim.height, name)

    # h1: Alice registers a full node (fee 10%); Bob half of one (fee 5%)
    alice_node, register_a = sim.new_node(alice, req, fee_bp=1000)
    bob_node, register_b = sim.new_node(bob, req // 2, fee_bp=500)
    block(register_a, register_b)
    balance["alice"] -= req + sim.fee(register_a)
    balance["bob"] -= req // 2 + sim.fee(register_b)
    model.nodes[alice_node.public_key] = ModelNode(
        1000, alice.public_key, [(alice.public_key, req)], sim.height
    )
    check()
    # h2: Carol funds the rest of Bob's node: it activates
    fund = sim.tx(Contribute, carol, node_key=bob_node.public_key, amount=Atomic(req - req // 2))
    block(fund)
    balance["carol"] -= req - req // 2 + sim.fee(fund)
    model.nodes[bob_node.public_key] = ModelNode(
        500, bob.public_key, [(bob.public_key, req // 2), (carol.public_key, req - req // 2)], sim.height
    )
    assert sim.node(bob_node.public_key).status == NodeStatus.ACTIVE  # type: ignore[union-attr]
    check()

    def run_until(height: int) -> None:
        while sim.height < height:
            block()
            check()

    def when_worker(key: bytes, new_state: int, effect) -> None:  # type: ignore[no-untyped-def]
        """Wait until ``key`` is a worker of the next quorum, then vote ``new_state`` for it."""
        while key not in sim._quorum_for(sim.height + 1).workers:
            block()
            check()
        block(sim.votes(key, new_state), before_rewards=effect)

    # h300: Carol claims: Bob's node is settled (paying Bob too), her share reaches her balance
    run_until(299)
    claim = sim.tx(ClaimRewards, carol)

    def carol_claims() -> None:
        model.settle(bob_node.public_key)
        balance["carol"] += model.accrued.pop(carol.public_key)

    block(claim, before_rewards=carol_claims)
    balance["carol"] -= sim.fee(claim)
    assert model.accrued[bob.public_key] > 0
    check()

    # ~h400: Alice's node is decommissioned; ~50 blocks later recommissioned
    run_until(400)
    credit_before = compute_credit(sim.node(alice_node.public_key), sim.height + 1, params)  # type: ignore[arg-type]
    alice_model = model.nodes[alice_node.public_key]
    when_worker(alice_node.public_key, NewState.DECOMMISSION, lambda: model.stop(alice_node.public_key))
    down_at = sim.height
    activated = alice_model.active_from
    assert credit_before == min(params.credit_max, params.credit_initial + (down_at - activated) * 24 // 720)
    check()
    run_until(down_at + 50)
    when_worker(alice_node.public_key, NewState.RECOMMISSION, lambda: setattr(alice_model, "payable", True))
    record = sim.node(alice_node.public_key)
    assert record is not None
    expected_credit = max(0, credit_before - 2 * (sim.height - down_at))
    assert record.recommission_credit == expected_credit
    check()

    # ~h900: Bob's node is deregistered; stakes locked for deregistration_lock blocks
    run_until(900)
    when_worker(
        bob_node.public_key, NewState.DEREGISTER, lambda: model.stop(bob_node.public_key, leaves=True)
    )
    returns_at = sim.height + params.deregistration_lock
    check()
    run_until(returns_at - 1)
    block()
    balance["bob"] += req // 2
    balance["carol"] += req - req // 2
    check()

    # ~h1500: Alice requests her exit; she leaves unlock_delay blocks later with her stake
    run_until(1500)
    unlock = sim.tx(RequestUnlock, alice, node_key=alice_node.public_key)
    block(unlock)
    balance["alice"] -= sim.fee(unlock)
    exit_at = sim.height + params.unlock_delay
    check()
    run_until(exit_at - 1)
    block(before_rewards=lambda: model.stop(alice_node.public_key, leaves=True))  # the exit runs first
    balance["alice"] += req
    assert sim.node(alice_node.public_key) is None
    check()

    # the rest of the story: everyone claims what they earned
    run_until(BLOCKS - 1)
    claims = [sim.tx(ClaimRewards, key) for key in (alice, bob, carol) if sim.accrued(key.public_key)]
    before = {k: model.accrued.get(k, 0) for k in people.values()}
    block(*claims)
    for claim in claims:
        name = next(n for n, k in people.items() if k == claim.sender)
        balance[name] += before[claim.sender] - sim.fee(claim)
        model.accrued[claim.sender] = model.accrued.get(claim.sender, 0) - before[claim.sender]
    check()
    assert sim.height == BLOCKS
    assert all(sim.balance(k) > 0 for k in people.values())
    sim.check()


def _genesis_nodes(sim: Sim):  # type: ignore[no-untyped-def]
    from state.nodes import iter_nodes

    return iter_nodes(sim.view)
