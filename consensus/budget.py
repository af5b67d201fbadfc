"""How many events a producer puts in a template: as many as its validators can execute in time.

A validator executes the template during the Pulse template stage and must answer before the
stage's deadline. A template of the chain's ``max_block_events`` (10,000) takes seconds to execute
in Python on a loaded machine, far beyond a devnet's 1 s stage: under a backlog every round then
failed at its template stage, one after another, and the chain stopped making blocks while the
mempools filled (``bench.devnet --rate 1400`` showed it). The chain's limit is a validity rule;
this is the producer's own choice of how full to make a valid block, the way a miner chooses
which transactions to take (CometBFT's ``max_bytes`` and Oxen's block weight limit are the hard
caps; what a proposer fits under them is its own).

Each node keeps a limit it adjusts on what executing the templates it validates took on its own
clock (not its own builds: the producer executes alone, its validators all at once, so on shared
cores a validator's time is the one the stage waits for, several times the producer's). An
execution over ``TEMPLATE_SHARE`` of the stage timeout shrinks the limit in proportion; a full
template executed well within it lets the limit grow, by at most a quarter a block, up to the
chain's limit; a backup round's producer takes half its limit (the round before may have failed
for its template's size). Targeting the time rather than a cost per event
keeps the block's fixed costs (the tree's root, the checkpoint commitment) from reading as a
per-event cost that small blocks would then never outgrow. The validators run the same code on
similar machines; the share leaves them room for a slower core, the network and their other
work. The count never affects validity nor replay: a block of any size up to the chain's limit
stays valid. The simulator has no wall clock to measure with, so it gives no timer and makes
full templates as before (deterministic runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TEMPLATE_SHARE = 0.5
"""Share of the template stage's timeout a template may take to execute, as last measured."""
INITIAL_TEMPLATE_EVENTS = 1_000
"""The limit before anything is measured: a second of transfers at this project's test rates."""
MIN_TEMPLATE_EVENTS = 100
"""However slow the measure says this machine is, a template may take this many events."""
MAX_GROWTH = 1.25
"""A limit grows at most this much a block (a full template executed well within the budget)."""
FULL = 0.9
"""A template of at least this share of the limit counts as full (the limit was what held it)."""


@dataclass
class TemplateBudget:
    """The number of events a template may carry, kept to what executes within the budget."""

    stage_seconds: float
    timer: Callable[[], float] | None
    """A wall clock (``time.perf_counter``); None: no measuring and no cap (the simulator)."""
    events: int = INITIAL_TEMPLATE_EVENTS

    @property
    def seconds(self) -> float:
        """What a template may take to execute."""
        return TEMPLATE_SHARE * self.stage_seconds

    def start(self) -> float:
        return self.timer() if self.timer is not None else 0.0

    def observe(self, events: int, started: float) -> None:
        """An execution of ``events`` events that began at ``started`` (from :meth:`start`) ended now."""
        if self.timer is None:
            return
        took = max(self.timer() - started, 1e-6)
        if took > self.seconds:
            self.events = max(MIN_TEMPLATE_EVENTS, min(self.events, round(events * self.seconds / took)))
        elif events >= FULL * self.events:
            self.events = round(self.events * min(MAX_GROWTH, self.seconds / took))

    def limit(self, chain_limit: int, round_: int = 0) -> int:
        """The events a template of ``round_`` may carry now: the chain's limit, capped by the
        time budget (halved for a backup round)."""
        if self.timer is None:
            return chain_limit
        events = self.events if round_ == 0 else self.events // 2
        return max(MIN_TEMPLATE_EVENTS, min(chain_limit, events))
