"""A node that goes offline, in the simulator: the heights of its decommission, recommission and
deregistration match what the credit rules and the (pure) quorums say by hand; a recommissioned
node's Pulse record starts again (its misses from before are not held against it)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from appchain.cli.simulate import make_simulation
from consensus.simulator import Faults, SimConfig, SimNode, Simulation
from consensus.uptime import DEVNET_UPTIME
from state.events import NewState, StateChange
from state.noderecords import NodeStatus
from state.nodes import get_node
from state.obligations import get_quorum
from state.view import Overlay

OFFLINE = 5


def workers(watcher: SimNode, height: int) -> tuple[bytes, ...]:
    quorum = get_quorum(Overlay(watcher.states[height].get), height)
    assert quorum is not None
    return tuple(quorum.workers)


def changes_for(watcher: SimNode, node_key: bytes) -> list[tuple[int, StateChange]]:
    found = []
    for block in watcher.blocks:
        for event in block.events:
            if isinstance(event, StateChange):
                quorum = get_quorum(Overlay(watcher.states[event.quorum_height].get), event.quorum_height)
                assert quorum is not None
                if quorum.workers[event.worker_index] == node_key:
                    found.append((block.header.height, event))
    return found


def run(
    down_until: float, time_limit: float, watch: Callable[[Simulation], None] | None = None
) -> tuple[Simulation, SimNode, bytes]:
    faults = Faults(crashes=[(OFFLINE, 8.0, down_until)])
    sim = make_simulation(SimConfig(nodes=14, blocks=10_000, seed=4, time_limit=time_limit, faults=faults))
    sim.run(watch)
    return sim, sim.nodes[0], sim.nodes[OFFLINE].node_key


class PulseRecordsSince:
    """Watches every node's Pulse record of ``OFFLINE`` once it is recommissioned: it may hold no
    more duties than blocks since (Oxen resets the participation histories on recommission;
    kept, the misses of its outage decommission it again at its next test, and again, until its
    credit runs out)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        """(blocks since the recommission, duties in the record), at every watch and node."""

    def __call__(self, sim: Simulation) -> None:
        node_key = sim.nodes[OFFLINE].node_key
        for node in sim.nodes:
            record = get_node(Overlay(node.state.get), node_key)
            if node.up and record is not None and record.status == NodeStatus.ACTIVE and record.active_since:
                duties = len(node.core.pulse_record.duties.get(bytes(node_key), ()))
                self.seen.append((node.height - record.active_since, duties))


def first_test_after(watcher: SimNode, node_key: bytes, start: int) -> int:
    return next(h for h in range(start, watcher.height + 1) if node_key in workers(watcher, h))


@pytest.mark.slow
def test_offline_node_is_decommissioned_then_deregistered_when_its_credit_runs_out() -> None:
    sim, watcher, node_key = run(down_until=10_000, time_limit=300)
    params = watcher.state.params
    origin = sim.genesis.genesis_time
    changes = changes_for(watcher, node_key)
    assert [event.new_state for _, event in changes] == [NewState.DECOMMISSION, NewState.DEREGISTER]
    # decommission: the first test once the grace period is over and the node is down (t >= 8 s),
    # in a quorum where it is a worker; the votes land in the next block
    down_from = next(
        h for h in range(1, watcher.height + 1) if watcher.blocks[h - 1].header.timestamp / 1000 >= origin + 8
    )
    tested = first_test_after(watcher, node_key, max(DEVNET_UPTIME.grace, down_from))
    decommissioned = tested + 1
    assert changes[0] == (decommissioned, changes[0][1]) and changes[0][1].quorum_height == tested
    credit = min(
        params.credit_max,
        params.credit_initial + decommissioned * params.credit_per_period // params.credit_period,
    )
    # deregistration: the first test where the remaining credit (credit - blocks down) is below zero
    tested_again = first_test_after(watcher, node_key, decommissioned + credit + 1)
    assert changes[1][0] == tested_again + 1 and changes[1][1].quorum_height == tested_again


@pytest.mark.slow
def test_a_node_that_comes_back_is_recommissioned_with_the_credit_the_rules_give() -> None:
    # Runs with the same seed are identical until the restart fires: learn when the node is
    # decommissioned when it stays down, then bring it back 20 s after that.
    sim, watcher, node_key = run(down_until=10_000, time_limit=200)
    decommissioned = changes_for(watcher, node_key)[0][0]
    back = watcher.blocks[decommissioned - 1].header.timestamp / 1000 - sim.genesis.genesis_time + 20
    records = PulseRecordsSince()
    sim, watcher, node_key = run(down_until=back, time_limit=back + 120, watch=records)
    params = watcher.state.params
    changes = changes_for(watcher, node_key)
    kinds = [event.new_state for _, event in changes]
    assert kinds[:2] == [NewState.DECOMMISSION, NewState.RECOMMISSION]
    assert NewState.DEREGISTER not in kinds
    assert changes[0][0] == decommissioned
    recommissioned = changes[1][0]
    assert (
        watcher.blocks[recommissioned - 1].header.timestamp / 1000 > sim.genesis.genesis_time + back
    )  # once back
    node = get_node(Overlay(watcher.states[recommissioned].get), node_key)
    assert node is not None
    credit_at_decommission = min(
        params.credit_max,
        params.credit_initial + decommissioned * params.credit_per_period // params.credit_period,
    )
    assert node.decommission_credit == credit_at_decommission
    assert node.recommission_credit == max(0, credit_at_decommission - 2 * (recommissioned - decommissioned))
    assert sim.nodes[OFFLINE].height == watcher.height  # it caught up
    early = [duties for since, duties in records.seen if since < 8]  # watched before 8 new blocks
    assert early and all(duties <= since for since, duties in records.seen)
