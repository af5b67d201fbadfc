"""Randomized fault schedules over nodes in network namespaces, Jepsen-style: made, run, recorded.

:func:`generate_schedule` turns a seed into a list of timed :class:`Fault` s, each healed (its
``end`` is its heal); the same seed and node count give the same schedule. :func:`run_schedule`
applies one to a running :class:`~appchain.netns.NetnsTestnet` on the wall clock and appends
what it did, with the true times, to a record (JSON lines) that ``appchain check-histories
--schedules FILE`` reads. :func:`wait_until_settled` is how each schedule starts from a healed
network.

Kinds of fault (each ends with a clean restore):

==============  ===================================================================================
``split``       a partition into two groups (5/7 of 12 nodes), silent drops both ways
``bridge``      two halves that cannot reach each other, and one node that reaches both
``isolate``     one node's link cut at the bridge
``producer``    the node due to produce the next block (asked of a node when the fault starts)
                isolated
``flap``        one node's link cut and restored repeatedly (``period``: one cut and one restore)
``pause``       one node process stopped (SIGSTOP), then continued (SIGCONT)
``skew``        one node's clock moved by ``offset`` seconds (its ``clock_offset``), then back
``slow``        one to three nodes' connections through :mod:`appchain.relay` (``delay``, ``loss``)
==============  ===================================================================================

A schedule holds at most one of ``split`` and ``bridge``, and one to three faults on single
nodes, each on a different node (``producer`` picks its node when it starts, so it may land on
another fault's node). Every fault starts in the first :data:`START_WITHIN` seconds.

Bounds, and why (PROTOCOL.md §3, §4, with 12 nodes):

- Pulse needs 12 active nodes, so in a 12-node network every node is in every quorum and losing
  one active node stops block production for good (nothing can recommission it without blocks);
  a node that missed more than 4 of its last 8 Pulse duties is decommissioned. So a fault that
  silences one node lasts at most :data:`MAX_SILENCE` seconds (about two blocks), and the next
  schedule waits until no node has missed more than :data:`SETTLED_MISSES` of its last 8.
- A 5/7 split (and a bridge node between 5 and 6) leaves no side with a producer and 7
  validators: no block is made on either side, so no fork and no decommission; finality needs 8
  of 12 checkpoint votes and resumes once healed. Partitions last up to :data:`MAX_PARTITION`.
- Clock skew stays under the uptime proofs' 5 s allowance (devnet ``max_skew``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from appchain.netns import NetnsError, NetnsTestnet

START_WITHIN = 2.0
MAX_PARTITION = 6.0
MAX_SILENCE = 3.5
MAX_SKEW = 3.0
SETTLED_MISSES = 1
SINGLE_NODE_KINDS = ("isolate", "producer", "flap", "pause", "skew", "slow")
PARTITION_KINDS = ("split", "bridge")
KINDS = PARTITION_KINDS + SINGLE_NODE_KINDS


@dataclass(frozen=True)
class Fault:
    """One fault: ``start`` and ``end`` in seconds from the schedule's start (``end``: healed)."""

    kind: str
    start: float
    end: float
    nodes: tuple[int, ...] = ()
    """The nodes it hits: the bridge node of a ``bridge``; empty for ``split`` and ``producer``."""
    sides: tuple[tuple[int, ...], ...] = ()
    """The two groups that cannot reach each other (``split``, ``bridge``)."""
    offset: float = 0.0
    delay: float = 0.0
    loss: float = 0.0
    period: float = 0.0

    def describe(self) -> str:
        return f"{self._what()} at {self.start:.1f}-{self.end:.1f} s"

    def _what(self) -> str:
        first = self.nodes[0] if self.nodes else None
        if self.kind == "split":
            return f"split {len(self.sides[0])}/{len(self.sides[1])}"
        if self.kind == "bridge":
            return f"bridge node {first} between {len(self.sides[0])} and {len(self.sides[1])}"
        if self.kind == "producer":
            return "the next producer isolated" + ("" if first is None else f" (node {first})")
        if self.kind == "flap":
            return f"node {first}'s link flapping every {self.period:.1f} s"
        if self.kind == "skew":
            return f"node {first}'s clock {self.offset:+.1f} s"
        if self.kind == "slow":
            return f"nodes {list(self.nodes)} relayed ({self.delay * 1000:.0f} ms, loss {self.loss:.0%})"
        return f"node {first} {'isolated' if self.kind == 'isolate' else 'paused (SIGSTOP)'}"


@dataclass(frozen=True)
class Schedule:
    seed: int
    nodes: int
    faults: tuple[Fault, ...]

    @property
    def length(self) -> float:
        return max(f.end for f in self.faults)


def generate_schedule(seed: int, nodes: int = 12) -> Schedule:
    """The schedule of ``seed`` over ``nodes`` nodes (12 or more: Pulse's minimum)."""
    if nodes < 12:
        raise ValueError(f"{nodes} nodes: Pulse needs 12 active nodes, so a schedule needs 12")
    rng = random.Random(seed)
    faults: list[Fault] = []
    spared: set[int] = set()  # a bridge node is not also silenced
    shape = rng.choice([*PARTITION_KINDS, None])
    if shape is not None:
        start = rng.uniform(0, START_WITHIN)
        end = start + rng.uniform(2.0, MAX_PARTITION)
        order = rng.sample(range(nodes), nodes)
        small = nodes * 5 // 12
        if shape == "split":
            sides = (tuple(sorted(order[:small])), tuple(sorted(order[small:])))
            faults.append(Fault("split", start, end, sides=sides))
        else:
            sides = (tuple(sorted(order[1 : small + 1])), tuple(sorted(order[small + 1 :])))
            faults.append(Fault("bridge", start, end, nodes=(order[0],), sides=sides))
            spared.add(order[0])
    kinds = rng.sample(SINGLE_NODE_KINDS, rng.randint(1, 3))
    victims = rng.sample([i for i in range(nodes) if i not in spared], len(kinds) + 2)
    for kind in kinds:
        start = rng.uniform(0, START_WITHIN)
        end = start + rng.uniform(1.5, MAX_SILENCE)
        if kind == "producer":
            faults.append(Fault("producer", start, end))
        elif kind == "flap":
            faults.append(Fault("flap", start, end, nodes=(victims.pop(),), period=rng.uniform(0.6, 1.4)))
        elif kind == "skew":
            offset = rng.choice([-1, 1]) * rng.uniform(0.5, MAX_SKEW)
            faults.append(Fault("skew", start, end, nodes=(victims.pop(),), offset=round(offset, 2)))
        elif kind == "slow":
            slowed = tuple(sorted(victims.pop() for _ in range(rng.randint(1, 3)) if victims))
            end = start + rng.uniform(2.0, MAX_PARTITION)  # slow, not silenced
            delay, loss = round(rng.uniform(0.01, 0.15), 3), rng.choice([0.0, 0.01, 0.03, 0.05])
            faults.append(Fault("slow", start, end, nodes=slowed, delay=delay, loss=loss))
        else:
            faults.append(Fault(kind, start, end, nodes=(victims.pop(),)))
    faults.sort(key=lambda f: (f.start, f.kind))
    return Schedule(
        seed, nodes, tuple(replace(f, start=round(f.start, 2), end=round(f.end, 2)) for f in faults)
    )


# -- running -------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One timed action of a running schedule."""

    at: float
    fault: int
    heal: bool
    action: Callable[[], None]


@dataclass
class Applied:
    """What a fault did, with the wall-clock times it started and was healed."""

    fault: Fault
    nodes: tuple[int, ...] = ()
    applied_at: float = 0.0
    healed_at: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self.fault),
            "nodes": list(self.nodes or self.fault.nodes),
            "label": replace(self.fault, nodes=self.nodes or self.fault.nodes).describe(),
            "applied_at": round(self.applied_at, 3),
            "healed_at": round(self.healed_at, 3),
            "notes": self.notes,
        }


def _steps(net: NetnsTestnet, index: int, applied: Applied) -> list[Step]:
    """The timed actions of one fault: its start, its heal, and a flap's cuts between."""
    fault, spaces = applied.fault, net.namespaces

    def step(at: float, heal: bool, action: Callable[[], None]) -> Step:
        return Step(at, index, heal, action)

    if fault.kind in PARTITION_KINDS:
        side, other = fault.sides
        return [
            step(fault.start, False, lambda: spaces.block(side, other)),
            step(fault.end, True, lambda: spaces.unblock(side, other)),
        ]
    if fault.kind == "producer":

        def isolate_producer() -> None:
            producer = next_producer(net)
            applied.nodes = (producer,)
            spaces.cut(producer)

        return [
            step(fault.start, False, isolate_producer),
            step(fault.end, True, lambda: spaces.restore(applied.nodes[0])),
        ]
    node = fault.nodes[0]
    if fault.kind == "isolate":
        return [
            step(fault.start, False, lambda: spaces.cut(node)),
            step(fault.end, True, lambda: spaces.restore(node)),
        ]
    if fault.kind == "flap":
        steps, at, down = [], fault.start, True
        while at < fault.end:
            steps.append(
                step(at, False, (lambda: spaces.cut(node)) if down else (lambda: spaces.restore(node)))
            )
            at, down = at + fault.period / 2, not down
        if not down:  # the last step cut the link: restore it at the end
            steps.append(step(fault.end, True, lambda: spaces.restore(node)))
        else:
            steps[-1].heal = True
        return steps
    if fault.kind == "pause":
        return [
            step(fault.start, False, lambda: net.pause(node)),
            step(fault.end, True, lambda: net.resume(node)),
        ]
    if fault.kind == "skew":
        return [
            step(fault.start, False, lambda: set_clock_offset(net, node, fault.offset)),
            step(fault.end, True, lambda: set_clock_offset(net, node, 0.0)),
        ]
    if fault.kind == "slow":

        def slow_down() -> None:
            net.start_relay(fault.delay, fault.loss, seed=index)
            spaces.relay(fault.nodes)

        def speed_up() -> None:
            spaces.unrelay(fault.nodes)
            net.stop_relay()

        return [step(fault.start, False, slow_down), step(fault.end, True, speed_up)]
    raise NetnsError(f"unknown fault kind {fault.kind!r}")


def set_clock_offset(net: NetnsTestnet, node: int, seconds: float) -> None:
    net.admin(node, "set_clock_offset", {"seconds": seconds})


def next_producer(net: NetnsTestnet) -> int:
    """The node due to produce the next block (round 0), as the highest node that answers sees it."""
    statuses = net.statuses(timeout=1.0)
    ranked = sorted((s["height"], i) for i, s in enumerate(statuses) if s is not None)
    for _, index in reversed(ranked):
        try:
            answer = net.json_rpc(index, "get_quorum_state", {"quorum_type": 3})
        except (OSError, NetnsError):
            continue
        for quorum in answer["quorums"]:
            producer = net.index_of(quorum["quorum"]["workers"][0])
            if producer is not None:
                return producer
    raise NetnsError("no node answers get_quorum_state: cannot find the next producer")


def run_schedule(net: NetnsTestnet, schedule: Schedule, record: Path | None = None) -> list[Applied]:
    """Apply ``schedule`` now, heal every fault, append the record line; returns what was done.
    Every fault applied is healed even when a step fails (then the error is raised)."""
    applied = [Applied(fault) for fault in schedule.faults]
    steps = sorted(
        (s for i, a in enumerate(applied) for s in _steps(net, i, a)), key=lambda s: (s.at, s.heal)
    )
    started = time.time()
    done: list[Step] = []
    try:
        for step in steps:
            time.sleep(max(0.0, started + step.at - time.time()))
            step.action()
            done.append(step)
            now = time.time()
            if step.heal:
                applied[step.fault].healed_at = now
            elif not applied[step.fault].applied_at:
                applied[step.fault].applied_at = now
    finally:
        _heal_the_rest(steps, done)
        if record is not None:
            line = {
                "seed": schedule.seed,
                "started_at": round(started, 3),
                "healed_at": round(max((a.healed_at for a in applied), default=started), 3),
                "faults": [a.to_json() for a in applied],
            }
            with record.open("a") as out:
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
    return applied


def _heal_the_rest(steps: list[Step], done: list[Step]) -> None:
    """After a failed step: run the heals of the faults that were applied and not healed."""
    started = {s.fault for s in done if not s.heal}
    healed = {s.fault for s in done if s.heal}
    for step in steps:
        if step.heal and step.fault in started - healed:
            step.action()


# -- between schedules ---------------------------------------------------------------------------------


def wait_for_final_after(net: NetnsTestnet, healed_at: float, final_before: int, seconds: float) -> float:
    """Wait until a node reports a final height above ``final_before``; the seconds it took from
    ``healed_at`` (as seen by polling; the checker measures it exactly from the histories)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if max((s["final_height"] for s in net.statuses(timeout=1.0) if s), default=-1) > final_before:
            return time.time() - healed_at
        time.sleep(0.2)
    raise NetnsError(f"finality did not resume within {seconds:.0f} s of the last heal")


def settled(net: NetnsTestnet) -> str | None:
    """Why the network is not settled yet, or None: every node answers and is active, and none has
    missed more than :data:`SETTLED_MISSES` of its last Pulse duties (as the highest node sees)."""
    statuses = net.statuses(timeout=1.0)
    missing = [i for i, s in enumerate(statuses) if s is None]
    if missing:
        return f"nodes {missing} do not answer"
    highest = max(range(len(statuses)), key=lambda i: statuses[i]["height"])  # type: ignore[index]
    entries = net.json_rpc(highest, "get_service_nodes", {"fields": ["active", "pulse_votes"]})
    states = entries["service_node_states"]
    inactive = [e for e in states if not e["active"]]
    if inactive:
        return f"{len(inactive)} nodes are not active"
    worst = max(e["pulse_votes"]["missed"] for e in states)
    if worst > SETTLED_MISSES:
        return f"a node missed {worst} of its last Pulse duties"
    return None


def wait_until_settled(net: NetnsTestnet, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    reason = settled(net)
    while reason is not None:
        if time.monotonic() > deadline:
            raise NetnsError(f"the network did not settle in {seconds:.0f} s: {reason}")
        time.sleep(0.5)
        reason = settled(net)


def highest_final(net: NetnsTestnet) -> int:
    return max((s["final_height"] for s in net.statuses(timeout=1.0) if s), default=0)


@dataclass
class ScheduleRun:
    schedule: Schedule
    applied: list[Applied]
    healed_at: float
    resumed_after: float
    """Seconds from the last heal to a higher final height, as polled (the checker's is exact)."""


def run_schedules(
    net: NetnsTestnet,
    seeds: list[int],
    record: Path,
    *,
    resume_within: float,
    log: Callable[[str], None] = print,
) -> list[ScheduleRun]:
    """Each seed's schedule in turn on ``net``, each from a settled network; after each, wait for
    a new final block (up to twice ``resume_within``: the checker judges the limit exactly)."""
    runs = []
    for number, seed in enumerate(seeds, 1):
        wait_until_settled(net)
        schedule = generate_schedule(seed, len(net.members))
        applied = run_schedule(net, schedule, record)
        healed_at = max(a.healed_at for a in applied)
        resumed = wait_for_final_after(net, healed_at, highest_final(net), 2 * resume_within)
        runs.append(ScheduleRun(schedule, applied, healed_at, resumed))
        labels = "; ".join(replace(a.fault, nodes=a.nodes or a.fault.nodes).describe() for a in applied)
        log(f"schedule {number}/{len(seeds)} (seed {seed}): {labels}; final {resumed:.1f} s after the heal")
    return runs
