"""The producer's template budget: as many events as validators execute within a stage."""

from __future__ import annotations

import pytest

from appchain.cli.simulate import simulation_genesis
from consensus.budget import (
    INITIAL_TEMPLATE_EVENTS,
    MAX_GROWTH,
    MIN_TEMPLATE_EVENTS,
    TemplateBudget,
)
from consensus.simulator import SimConfig, Simulation
from consensus.validation import compute_block_entropy, compute_block_quorum
from genesis.devnet import derive_node
from state.ledger import get_account
from state.transition import execute_block
from state.view import Overlay
from tests.helpers import transfer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_without_a_clock_a_template_takes_the_chains_limit() -> None:
    budget = TemplateBudget(stage_seconds=1.0, timer=None)
    budget.observe(10_000, budget.start())
    assert budget.limit(10_000) == 10_000
    assert budget.events == INITIAL_TEMPLATE_EVENTS  # nothing measured


def _executed(budget: TemplateBudget, clock: FakeClock, events: int, seconds: float) -> None:
    started = budget.start()
    clock.now += seconds
    budget.observe(events, started)


def test_the_limit_follows_what_executing_a_template_took() -> None:
    """Over the budget (half the stage) the limit shrinks in proportion, never under the floor;
    a full template well within it lets the limit grow, by at most a quarter a block, never past
    the chain's limit; a template that was not full, or that took about the budget, changes
    nothing; a backup round's template takes half."""
    clock = FakeClock()
    budget = TemplateBudget(stage_seconds=1.0, timer=clock)
    assert budget.seconds == 0.5 and budget.limit(10_000) == INITIAL_TEMPLATE_EVENTS
    assert budget.limit(10_000, round_=1) == INITIAL_TEMPLATE_EVENTS // 2
    _executed(budget, clock, 1_000, 1.0)  # twice the budget
    assert budget.limit(10_000) == 500
    _executed(budget, clock, 500, 100.0)  # a machine that stalled
    assert budget.limit(10_000) == MIN_TEMPLATE_EVENTS
    assert budget.limit(10_000, round_=2) == MIN_TEMPLATE_EVENTS  # the floor holds for backups too
    _executed(budget, clock, 100, 0.001)  # full and fast: grows by at most a quarter
    assert budget.limit(10_000) == MAX_GROWTH * MIN_TEMPLATE_EVENTS
    _executed(budget, clock, 125, 0.45)  # full, within the budget, but not a quarter within: grows less
    assert budget.limit(10_000) == 139
    _executed(budget, clock, 20, 0.001)  # not full: the limit was not what held the template
    assert budget.limit(10_000) == 139
    for _ in range(50):
        _executed(budget, clock, budget.limit(10_000), 0.001)
    assert budget.limit(10_000) == 10_000  # never above the chain's limit
    assert budget.limit(500) == 500


def test_a_producer_fills_its_template_only_up_to_its_budget_and_the_block_is_valid() -> None:
    """With a backlog of 250 transfers and a budget of 100 events, the template takes the first
    100 in arrival order, and validators execute it; without a clock (the simulator) it takes
    all 250. The next template takes the next ones."""
    config = SimConfig(nodes=12, blocks=1, seed=9)
    _, start = simulation_genesis(config)
    core = Simulation(config, start).nodes[0].core
    state = core.ledger.state
    operator = derive_node(f"sim-{config.seed}", 0).operator
    nonce = get_account(Overlay(state.get), operator.public_key).nonce
    now = state.timestamp / 1000 + 1.0
    for i in range(250):
        core.mempool.add(transfer(state, operator, bytes(32), 1, nonce + 1 + i), state, now)
    height, start_ms = 1, state.timestamp + state.params.block_time
    quorum = compute_block_quorum(
        state, compute_block_entropy(core.ledger.random_value_at, height), height, 0
    )
    assert quorum is not None

    full = core._build_template(state, start_ms, quorum.producer, 0)
    assert len(full.events) == 250

    clock = FakeClock()
    core.budget = TemplateBudget(stage_seconds=1.0, timer=clock, events=MIN_TEMPLATE_EVENTS)
    capped = core._build_template(state, start_ms, quorum.producer, 0)
    assert len(capped.events) == MIN_TEMPLATE_EVENTS
    assert capped.events == full.events[:MIN_TEMPLATE_EVENTS]
    execute_block(state, capped, verify_signatures=True)  # a valid block
    assert len(core.mempool) == 250  # the rest waits for the next template


def test_the_mempool_keeps_a_few_templates_worth_and_refuses_more_as_full() -> None:
    """Beyond BACKLOG_TEMPLATES templates' worth (as measured), a newcomer is refused as full
    instead of being re-checked at every block; without a clock (the simulator) the pool keeps
    its configured capacity."""
    from consensus.mempool import MempoolFull
    from consensus.node import BACKLOG_TEMPLATES

    config = SimConfig(nodes=12, blocks=1, seed=9)
    _, start = simulation_genesis(config)
    core = Simulation(config, start).nodes[0].core
    assert core.mempool.backlog is None
    state = core.ledger.state
    operator = derive_node(f"sim-{config.seed}", 1).operator
    nonce = get_account(Overlay(state.get), operator.public_key).nonce
    now = state.timestamp / 1000 + 1.0
    core.budget = TemplateBudget(stage_seconds=1.0, timer=FakeClock(), events=MIN_TEMPLATE_EVENTS)
    core._bound_backlog(state)
    room = BACKLOG_TEMPLATES * MIN_TEMPLATE_EVENTS
    assert core.mempool.backlog == room
    txs = [transfer(state, operator, bytes(32), 1, nonce + 1 + i) for i in range(room + 1)]
    assert core.on_transactions(txs, None, now) == []
    assert len(core.mempool) == room
    with pytest.raises(MempoolFull, match="next blocks' worth"):
        core.mempool.add(txs[-1], state, now)
