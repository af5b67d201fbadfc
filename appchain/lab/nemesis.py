"""Randomized fault schedules over nodes in network namespaces, Jepsen-style: made, run, recorded.

:func:`generate_schedule` turns a seed into a list of timed :class:`Fault` s, each healed (its
``end`` is its heal); the same seed and node count give the same schedule. :func:`run_schedule`
applies one to a running :class:`~appchain.lab.netns.NetnsTestnet` on the wall clock and appends
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
``slow``        one to three nodes' connections through :mod:`appchain.lab.relay` (``delay``, ``loss``)
``crash``       one to three node processes killed (SIGKILL) together and started again one by
                one, ``stagger`` seconds apart (the last at ``end``)
``floor``       node processes killed in waves until the active set is at ``pulse_min_nodes``
                (each wave once the last is decommissioned, as large as the rest can still
                decommission: :func:`consensus.simulator.compute_wave`), then ``extra`` more,
                which the floor keeps active; ``hold`` seconds later started again one by one,
                ``stagger`` apart, and recommissioned by obligations votes (PROTOCOL.md §4a).
                Its nodes are chosen when it runs; ``end`` bounds when it heals
``stall``       the next producer and validators killed together, so that at most T of the active
                nodes are left (T: the signatures a block needs) and no round can make the block,
                for 4 to 10 round timeouts; then started again together or one by one,
                ``stagger`` apart (the last at ``end``)
==============  ===================================================================================

A schedule is either one outage (``floor`` or ``stall``, a third of the schedules) or at most
one of ``split`` and ``bridge`` with one to three faults on single nodes (``crash`` among
them), each on a different node (``producer`` picks its node when it starts, so it may land on
another fault's node). Every fault starts in the first :data:`START_WITHIN` seconds.

Bounds, and why (PROTOCOL.md §3, §4, §4a, with 12 nodes):

- Before §4a, Pulse needed 12 active nodes: in a 12-node network one decommission stopped the
  chain for good, so a fault on single nodes was held to 3.5 s (about two blocks of the devnet's 2 s then;
  three and a half at its 1 s now, still not more than 4: a node that missed more than 4 of its
  last 8 Pulse duties is decommissioned). Now Pulse runs down to
  ``pulse_min_nodes`` (4) and a node that is back is recommissioned by votes, so such a fault
  lasts up to :data:`MAX_SILENCE` seconds, half of them longer than a decommission takes (about
  10 s of missed duties, a proof stale after 20 s): the silenced node is decommissioned, the
  chain goes on without it, and it is recommissioned once back. The next schedule waits until
  every node is active again and none has missed more than :data:`SETTLED_MISSES` of its last
  8 duties.
- Every decommission costs the node credit (PROTOCOL.md §3: a recommissioned node keeps its
  credit less twice the blocks it was out), and a node with under 60 blocks of credit is
  deregistered instead, for good. So an outage picks, when it runs, nodes with at least
  :data:`MIN_CREDIT` blocks of credit (devnet nodes start with 60: the test network gives them
  more, see ``tests/test_netns.py``), and a shrink stops at the deepest it can.
- A 5/7 split (and a bridge node between 5 and 6) leaves no side with a producer and 7
  validators: no block is made on either side, so no fork and no decommission; finality needs 8
  of 12 checkpoint votes and resumes once healed. Partitions last up to :data:`MAX_PARTITION`.
- Clock skew stays under the uptime proofs' 5 s allowance (devnet ``max_skew``), which is also
  how far ahead of a validator's clock a Pulse template may be stamped
  (:meth:`consensus.node.NodeCore.max_template_lead_ms`).
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from appchain.home.home import Home
from appchain.lab.namespaces import NetnsError
from appchain.lab.netns import NetnsTestnet
from consensus.quorum import PULSE_VALIDATORS, compute_pulse_threshold
from consensus.simulator import compute_wave
from genesis.load import load_genesis
from state.params import ChainParams

START_WITHIN = 2.0
MAX_PARTITION = 6.0
SHORT_SILENCE = 3.5
"""A fault on single nodes this short decommissions no one (the bound before PROTOCOL.md §4a)."""
MAX_SILENCE = 30.0
MAX_SKEW = 3.0
SETTLED_MISSES = 1
SINGLE_NODE_KINDS = ("isolate", "producer", "flap", "pause", "skew", "slow", "crash")
PARTITION_KINDS = ("split", "bridge")
OUTAGE_KINDS = ("floor", "stall")
KINDS = PARTITION_KINDS + SINGLE_NODE_KINDS + OUTAGE_KINDS
OUTAGE_SHARE = 1 / 3
"""The share of schedules that are one outage."""
STALL_ROUNDS = (4, 10)
"""A stall lasts this many round timeouts (the fewest, the most)."""
FLOOR_SHRINK = 240.0
"""Seconds a shrink may take to reach the floor before it brings its nodes back anyway."""
MIN_CREDIT = 300
"""Blocks of credit a node needs for an outage to take it (5 minutes of 1 s devnet blocks)."""
STOP_SPACING = 1.0
"""Seconds between two nodes an outage kills in one go."""
RESTART_WAIT = 60.0
"""Seconds a restarted node has to answer ``status``."""


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
    stagger: float = 0.0
    """Seconds between two restarts (``crash``, ``floor``, ``stall``)."""
    hold: float = 0.0
    """Seconds a ``floor`` stays at the floor before its nodes come back."""
    extra: int = 0
    """Nodes a ``floor`` kills at the floor, which the floor keeps active."""

    def describe(self) -> str:
        if self.kind == "floor":  # its end is only a bound: it heals when the chain allows
            return f"{self._what()} from {self.start:.1f} s"
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
        back = f"back {self.stagger:.1f} s apart" if self.stagger else "back together"
        if self.kind == "crash":
            return f"nodes {list(self.nodes)} killed, {back}"
        if self.kind == "floor":
            stopped = f" (nodes {list(self.nodes)})" if self.nodes else ""
            return f"nodes killed down to the floor and {self.extra} more{stopped}, {back}"
        if self.kind == "stall":
            stopped = f" (nodes {list(self.nodes)})" if self.nodes else ""
            return f"the next producer and validators killed{stopped}, {back}"
        return f"node {first} {'isolated' if self.kind == 'isolate' else 'paused (SIGSTOP)'}"


@dataclass(frozen=True)
class Schedule:
    seed: int
    nodes: int
    faults: tuple[Fault, ...]

    @property
    def length(self) -> float:
        return max(f.end for f in self.faults)


def generate_schedule(seed: int, nodes: int = 12, *, round_timeout: float = 6.0) -> Schedule:
    """The schedule of ``seed`` over ``nodes`` nodes: 12 to 14 (the partitions are sized for
    them: beyond 14 a side of 8 would make blocks alone). ``round_timeout``: the network's, in
    seconds (config.toml's ``round_timeout_ms`` / 1000), for the length of a stall."""
    if not 12 <= nodes <= 14:
        raise ValueError(f"{nodes} nodes: schedules are made for 12 to 14 nodes")
    rng = random.Random(seed)
    if rng.random() < OUTAGE_SHARE:
        return Schedule(seed, nodes, (_outage(rng, nodes, round_timeout),))
    faults: list[Fault] = []
    spared: set[int] = set()  # a bridge node is not also silenced
    shape = rng.choice([*PARTITION_KINDS, None])
    if shape is not None:
        start = rng.uniform(0, START_WITHIN)
        end = start + rng.uniform(2.0, MAX_PARTITION)
        order = rng.sample(range(nodes), nodes)
        small = nodes - 7  # the other side: 7 (split) or 6 and a bridge node
        if shape == "split":
            sides = (tuple(sorted(order[:small])), tuple(sorted(order[small:])))
            faults.append(Fault("split", start, end, sides=sides))
        else:
            sides = (tuple(sorted(order[1 : small + 1])), tuple(sorted(order[small + 1 :])))
            faults.append(Fault("bridge", start, end, nodes=(order[0],), sides=sides))
            spared.add(order[0])
    kinds = rng.sample(SINGLE_NODE_KINDS, rng.randint(1, 3))
    victims = rng.sample([i for i in range(nodes) if i not in spared], len(kinds) + 4)
    for kind in kinds:
        start = rng.uniform(0, START_WITHIN)
        # short (no one decommissioned) or long (decommissioned, then recommissioned)
        end = (
            start + rng.uniform(1.5, SHORT_SILENCE)
            if rng.random() < 0.5
            else start + rng.uniform(SHORT_SILENCE, MAX_SILENCE)
        )
        if kind == "producer":
            faults.append(Fault("producer", start, end))
        elif kind == "flap":
            faults.append(Fault("flap", start, end, nodes=(victims.pop(),), period=rng.uniform(0.6, 1.4)))
        elif kind == "skew":
            offset = rng.choice([-1, 1]) * rng.uniform(0.5, MAX_SKEW)
            faults.append(Fault("skew", start, end, nodes=(victims.pop(),), offset=round(offset, 2)))
        elif kind == "slow":
            slowed = tuple(sorted(victims.pop() for _ in range(rng.randint(1, 3)) if victims))
            delay, loss = round(rng.uniform(0.01, 0.15), 3), rng.choice([0.0, 0.01, 0.03, 0.05])
            faults.append(Fault("slow", start, end, nodes=slowed, delay=delay, loss=loss))
        elif kind == "crash":
            crashed = tuple(victims.pop() for _ in range(rng.randint(1, 3)))
            stagger = round(rng.uniform(1.0, 4.0), 2)
            end = max(end, start + 1.5 + stagger * (len(crashed) - 1))
            faults.append(Fault("crash", start, end, nodes=crashed, stagger=stagger))
        else:
            faults.append(Fault(kind, start, end, nodes=(victims.pop(),)))
    faults.sort(key=lambda f: (f.start, f.kind))
    return Schedule(
        seed, nodes, tuple(replace(f, start=round(f.start, 2), end=round(f.end, 2)) for f in faults)
    )


def _outage(rng: random.Random, nodes: int, round_timeout: float) -> Fault:
    """A ``floor`` (its ``end`` the latest it may heal: the shrink's bound, the hold and every
    restart) or a ``stall`` of 4 to 10 round timeouts before its first restart (its ``end``: the
    last); their nodes are chosen when they run."""
    start = round(rng.uniform(0, START_WITHIN), 2)
    if rng.random() < 0.5:
        hold, stagger = round(rng.uniform(3.0, 15.0), 2), round(rng.uniform(1.0, 4.0), 2)
        end = start + FLOOR_SHRINK + hold + nodes * (stagger + RESTART_WAIT)  # the latest it may heal
        return Fault("floor", start, round(end, 2), stagger=stagger, hold=hold, extra=rng.randint(0, 1))
    rounds = rng.randint(*STALL_ROUNDS)
    stagger = rng.choice([0.0, round(rng.uniform(1.0, 4.0), 2)])
    last = start + rounds * round_timeout + stagger * (stall_size(nodes) - 1)
    return Fault("stall", start, round(last, 2), stagger=stagger)


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


def fault_steps(
    net: NetnsTestnet, index: int, applied: Applied, rng: random.Random, params: ChainParams
) -> list[Step]:
    """The timed actions of one fault: its start, its heal, and a flap's cuts or restarts
    between. A ``floor`` is one action that starts, waits on the chain, and heals."""
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
    if fault.kind == "floor":
        return [step(fault.start, True, lambda: shrink_to_floor(net, applied, rng, params))]
    if fault.kind in ("crash", "stall"):
        if fault.kind == "crash":
            count = len(fault.nodes)

            def stop() -> None:
                applied.nodes = fault.nodes
                for node in fault.nodes:
                    net.crash(node)

        else:
            count = stall_size(len(net.members))

            def stop() -> None:
                stall(net, applied, rng)

        back = fault.end - fault.stagger * (count - 1)  # the first restart; the last at the end
        steps = [step(fault.start, False, stop)]
        if not fault.stagger:
            return [*steps, step(back, True, lambda: restart_all(net, applied.nodes))]
        for number in range(count - 1):
            steps.append(
                step(
                    back + number * fault.stagger,
                    False,
                    functools.partial(_restart_nth, net, applied, number),
                )
            )
        # the last restart brings back whoever is still down (after a failed step too)
        return [
            *steps,
            step(back + (count - 1) * fault.stagger, True, lambda: restart_all(net, applied.nodes)),
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


def _threshold(active: int) -> int:
    """Validator signatures a block needs with ``active`` active nodes (PROTOCOL.md §4a)."""
    return compute_pulse_threshold(min(PULSE_VALIDATORS, active - 1))


def stall_size(active: int) -> int:
    """Nodes a stall kills of ``active`` active ones: all but T (5 of 12, 6 of 13, 7 of 14)."""
    return active - _threshold(active)


def _restart_nth(net: NetnsTestnet, applied: Applied, number: int) -> None:
    if number < len(applied.nodes) and applied.nodes[number] in net.crashed:
        net.restart(applied.nodes[number], RESTART_WAIT)


def restart_all(net: NetnsTestnet, nodes: tuple[int, ...] | list[int]) -> None:
    """Start every node of ``nodes`` still crashed at once, then wait until each answers."""
    down = [node for node in nodes if node in net.crashed]
    for node in down:
        net.restart(node, RESTART_WAIT, wait=False)
    for node in down:
        net.wait_for(node, RESTART_WAIT)


def service_nodes(net: NetnsTestnet) -> dict[int, dict[str, Any]]:
    """Each registered node's ``active`` and credit (``earned_downtime_blocks``) by index, as
    the highest node that answers sees them."""
    statuses = net.statuses(timeout=1.0)
    ranked = sorted(((s["height"], i) for i, s in enumerate(statuses) if s is not None), reverse=True)
    fields = ["service_node_pubkey", "active", "earned_downtime_blocks"]
    for _, index in ranked:
        try:
            answer = net.json_rpc(index, "get_service_nodes", {"fields": fields})
        except (OSError, NetnsError):
            continue
        view = {}
        for entry in answer["service_node_states"]:
            node = net.index_of(entry["service_node_pubkey"])
            if node is not None:
                view[node] = entry
        return view
    raise NetnsError("no node answers get_service_nodes")


def _candidates(net: NetnsTestnet, view: dict[int, dict[str, Any]], rng: random.Random) -> list[int]:
    """Active nodes an outage may kill: up, with :data:`MIN_CREDIT` blocks of credit or more
    (so that it is decommissioned, not deregistered, and its credit lasts), the most first."""
    up = [
        node
        for node, entry in view.items()
        if entry["active"]
        and node not in net.crashed
        and node not in net.paused
        and entry["earned_downtime_blocks"] >= MIN_CREDIT
    ]
    rng.shuffle(up)
    return sorted(up, key=lambda node: -view[node]["earned_downtime_blocks"])


def shrink_to_floor(net: NetnsTestnet, applied: Applied, rng: random.Random, params: ChainParams) -> None:
    """A ``floor``: kill nodes in waves until the active set is at ``pulse_min_nodes``, then
    ``extra`` more; ``hold`` seconds later start them again one by one, in the order they were
    killed. Gives up shrinking after :data:`FLOOR_SHRINK` seconds (noted); every node it killed
    is started again whatever happens."""
    fault, killed = applied.fault, list[int]()
    applied.applied_at = time.time()
    try:
        deadline = time.monotonic() + FLOOR_SHRINK
        while True:
            view = service_nodes(net)
            active = [node for node, entry in view.items() if entry["active"]]
            waiting = [node for node in killed if node in active]  # not decommissioned yet
            room = len(active) - params.pulse_min_nodes
            if room <= 0:
                applied.notes.append(
                    f"floor reached: {len(active)} active, {time.time() - applied.applied_at:.0f} s"
                )
                for node in _candidates(net, view, rng)[: fault.extra]:
                    net.crash(node)
                    killed.append(node)
                    applied.nodes = tuple(killed)
                break
            if time.monotonic() > deadline:
                applied.notes.append(f"floor not reached in {FLOOR_SHRINK:.0f} s: {len(active)} active")
                break
            more = room - len(waiting)
            if more > 0:
                wave = min(compute_wave(len(active), len(waiting), params), more)
                chosen = _candidates(net, view, rng)[:wave]
                if len(chosen) < wave:
                    applied.notes.append(f"{len(chosen)} of {wave} nodes with enough credit to kill")
                for node in chosen:
                    net.crash(node)
                    killed.append(node)
                    applied.nodes = tuple(killed)
                    time.sleep(STOP_SPACING)
            time.sleep(1.0)
        time.sleep(fault.hold)
    finally:
        for number, node in enumerate(killed):
            if number:
                time.sleep(fault.stagger)
            if node in net.crashed:
                net.restart(node, RESTART_WAIT)


def stall(net: NetnsTestnet, applied: Applied, rng: random.Random) -> None:
    """A ``stall``: kill the next producer and other active nodes, together, until at most T of
    the active nodes are left (T: the signatures a block needs), so that no round succeeds."""
    view = service_nodes(net)
    active = [node for node, entry in view.items() if entry["active"]]
    producer = next_producer(net)
    others = [node for node in _candidates(net, view, rng) if node != producer]
    rng.shuffle(others)
    victims = ([producer] if producer in active else []) + others
    applied.nodes = tuple(victims[: stall_size(len(active))])
    for node in applied.nodes:
        net.crash(node)


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
    rng = random.Random(schedule.seed)  # the outages' choices when they run
    params = load_genesis(net.folder / "genesis.json").params
    steps = sorted(
        (s for i, a in enumerate(applied) for s in fault_steps(net, i, a, rng, params)),
        key=lambda s: (s.at, s.heal),
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
    round_timeout = Home(net.members[0].home).load_config().round_timeout_ms / 1000
    for number, seed in enumerate(seeds, 1):
        wait_until_settled(net)
        schedule = generate_schedule(seed, len(net.members), round_timeout=round_timeout)
        applied = run_schedule(net, schedule, record)
        healed_at = max(a.healed_at for a in applied)
        resumed = wait_for_final_after(net, healed_at, highest_final(net), 2 * resume_within)
        runs.append(ScheduleRun(schedule, applied, healed_at, resumed))
        labels = "; ".join(replace(a.fault, nodes=a.nodes or a.fault.nodes).describe() for a in applied)
        log(f"schedule {number}/{len(seeds)} (seed {seed}): {labels}; final {resumed:.1f} s after the heal")
    return runs
