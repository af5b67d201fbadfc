"""The simulator: reproducible runs, and safety under faults within the tolerated bounds.

``APPCHAIN_SIM_SEEDS`` sets how many seeds the randomized tests run: by default 20 for the
30-node faults and 50 for the outages of 4 to 14 nodes (CI keeps the defaults; ``make soak``
runs 1,000 of each).
"""

from __future__ import annotations

import itertools
import json
import os
import random

import pytest

from appchain.cli.main import main
from appchain.cli.simulate import make_simulation
from consensus.faults import BYZANTINE_KINDS, FaultSpecError, parse_faults
from consensus.simulator import STOP_SPACING, Faults, SimConfig, Simulation, Stall, ToFloor, VerdictMemo
from consensus.validation import compute_block_entropy, compute_block_quorum
from genesis.presets import DEVNET
from state.crypto import ed25519
from state.events import NewState, StateChange
from state.noderecords import NodeStatus
from state.nodes import get_node
from state.obligations import get_quorum
from state.state import state_index
from state.view import Overlay

SEEDS = int(os.environ.get("APPCHAIN_SIM_SEEDS", "20"))
OUTAGE_SEEDS = int(os.environ.get("APPCHAIN_SIM_SEEDS", "50"))
NODES = 30
BLOCKS = 8
FLOOR = DEVNET.pulse_min_nodes
OUTAGE_TIMING = {"block_time_ms": 6_000, "stage_timeout_ms": 500, "round_timeout_ms": 3_000}
OUTAGE_ROUND = OUTAGE_TIMING["round_timeout_ms"] / 1000
"""The outage runs' round timeout, seconds (simulated time)."""
"""Timing of the outage runs. Short Pulse deadlines make 256 failed rounds 13 simulated minutes;
blocks 4 s apart (the devnet's 2 s would do too, at twice the blocks) let a decommission take a
handful of blocks, since the uptime rules are in seconds (a proof is stale 20 s after the last,
a node unreachable after 14 s) and credits in blocks (60 before a decommissioned node is
deregistered)."""
STALL_ROUNDS = 256


def random_faults(seed: int) -> Faults:
    """Faults within the tolerated bounds: under a third of nodes faulty at once, every crash and
    partition ends, a majority side always exists."""
    rng = random.Random(seed)
    faulty = rng.sample(range(NODES), rng.randint(0, 6))
    byzantine = {n: rng.choice(["equivocate", "withhold", "double-sign", "garbage"]) for n in faulty[:3]}
    crashes = []
    for node in faulty[3:]:
        down = rng.uniform(2, 20)
        crashes.append((node, down, down + rng.uniform(3, 25)))
    partitions = []
    if rng.random() < 0.4:
        minority = set(rng.sample(range(NODES), rng.randint(1, 9)))
        start = rng.uniform(2, 15)
        partitions.append(([minority, set(range(NODES)) - minority], start, start + rng.uniform(5, 25)))
    skew = {n: rng.uniform(-0.4, 0.4) for n in rng.sample(range(NODES), rng.randint(0, 3))}
    return Faults(
        loss=rng.choice([0.0, 0.02, 0.05]),
        crashes=crashes,
        partitions=partitions,
        skew=skew,
        byzantine=byzantine,
    )


def random_outages(seed: int) -> SimConfig:
    """A network of 4 to 14 nodes through the outages of PROTOCOL.md §4a, among the faults of
    :func:`random_faults` scaled to it. Networks of 4 to 7 are drawn three times as often as
    those of 11 to 14: they are where the §4a rules differ most (every node in every quorum),
    and a block costs a third as much.

    The outage: the active set shrunk to the floor (:class:`ToFloor`: nodes stopped in waves
    until it is at ``pulse_min_nodes``, and in half the runs one more, which the floor keeps
    active), or a producer and validators stopped for more than 256 rounds (:class:`Stall`), or
    (up to 10 nodes: the longest runs) the stall and then the shrink; the nodes come back one by
    one (or, after a stall, maybe together). Around it, on other nodes: one byzantine member in half the networks of 7 nodes
    or more, crashes and a partition each shorter than a decommission takes (a proof is stale
    20 s after the last, a node unreachable after 14 s: 10 s at most), loss, and clock skew
    under half a Pulse stage. Each node has one fault at most: a node decommissioned twice
    would be deregistered on its second failure (its credit is spent by then), which is the
    rule, but then it could not come back.
    """
    rng = random.Random(seed)
    nodes = rng.choices(range(FLOOR, 15), weights=[3, 3, 3, 3, 2, 2, 2, 1, 1, 1, 1])[0]
    spare = rng.sample(range(nodes), nodes)  # nodes not given a fault yet
    byzantine = {}
    if nodes >= 7 and rng.random() < 0.5:
        byzantine[spare.pop()] = rng.choice(BYZANTINE_KINDS)
    story = rng.choice(["floor", "stall", "stall, then floor"] if nodes <= 10 else ["floor", "stall"])
    start, floors, stalls = rng.uniform(10, 40), [], []
    if "stall" in story:
        back = start + OUTAGE_ROUND * rng.uniform(STALL_ROUNDS + 2, STALL_ROUNDS + 10)
        # back one by one, unless the shrink follows: a node decommissioned after the stall (down
        # when blocks resumed) is recommissioned with less credit than a decommission needs
        stagger = 0.0 if "floor" in story else rng.choice([0.0, rng.uniform(1, 5)])
        stalls.append(Stall(start, back, stagger))
        start = back + rng.uniform(10, 40)
    if "floor" in story:
        count = nodes - FLOOR + rng.choice([0, 1])
        floors.append(ToFloor(tuple(spare[:count]), start, rng.uniform(5, 20), rng.uniform(1, 5)))
        del spare[:count]
    crashes = []
    for node in spare[: rng.randint(0, 2)]:
        down = rng.uniform(5, start + 60)
        crashes.append((node, down, down + rng.uniform(2, 10)))
    partitions = []
    if rng.random() < 0.4:
        minority = set(rng.sample(range(nodes), rng.randint(1, max(1, (nodes - 1) // 3))))
        begin = rng.uniform(5, start + 60)
        partitions.append(([minority, set(range(nodes)) - minority], begin, begin + rng.uniform(2, 10)))
    skew = {n: rng.uniform(-0.2, 0.2) for n in rng.sample(range(nodes), rng.randint(0, 2))}
    faults = Faults(
        loss=rng.choice([0.0, 0.02, 0.05]),
        crashes=crashes,
        partitions=partitions,
        skew=skew,
        byzantine=byzantine,
        floors=floors,
        stalls=stalls,
    )
    return SimConfig(
        nodes=nodes,
        blocks=10**9,
        seed=seed,
        faults=faults,
        time_limit=3_000,
        verify_once=True,
        **OUTAGE_TIMING,
    )


def healed_and_grown_back(sim: Simulation) -> bool:
    """Every fault over, finality resumed after the last heal, every honest node active again."""
    reference = sim.reference()
    if reference is None or not sim.is_final_after_heals():
        return False
    view = Overlay(reference.state.get)
    return all(is_active(view, n.node_key) for n in sim.honest_nodes())


def is_active(view: Overlay, node_key: bytes) -> bool:
    record = get_node(view, node_key)
    return record is not None and record.status == NodeStatus.ACTIVE


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(OUTAGE_SEEDS))
def test_safety_finality_and_regrowth_through_outages(seed: int) -> None:
    """Every safety property through the outages of :func:`random_outages`; after the last heal
    finality resumes and every honest node is active again (the ones decommissioned while down
    recommissioned by obligations votes); a shrink to the floor reached it and never went under."""
    config = random_outages(seed)
    faults = config.faults
    sim = make_simulation(config)
    report = sim.run(until=healed_and_grown_back)
    assert report["safety_violations"] == 0, report
    assert report["roots_agree"], report
    assert report["double_signs"] == 0, report
    assert set(report["accused"]) <= set(faults.byzantine), report
    assert healed_and_grown_back(sim), (faults, report)
    assert report["smallest_active"] >= FLOOR, report
    if faults.floors:
        assert report["smallest_active"] == FLOOR, report  # shrunk to the floor, then grew back
        [shrink] = [outage for outage in report["outages"] if outage["kind"] == "floor"]
        assert shrink["floor_reached"] is not None, report


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SEEDS))
def test_safety_and_finality_under_faults(seed: int) -> None:
    faults = random_faults(seed)
    report = make_simulation(SimConfig(nodes=NODES, blocks=BLOCKS, seed=seed, faults=faults)).run()
    assert report["safety_violations"] == 0, report
    assert report["roots_agree"], report
    assert report["double_signs"] == 0, report
    assert set(report["accused"]) <= set(faults.byzantine), report  # no evidence against the honest
    honest = [h for i, h in enumerate(report["final_heights"]) if i not in faults.byzantine]
    assert min(honest) >= BLOCKS, (faults, report)  # finality resumed after every heal and restart


def test_the_same_seed_gives_the_same_run() -> None:
    faults = "loss=0.05,crash=3@3-20,partition=0-5|6-29@4-15,byzantine=1:equivocate,skew=2:0.3"
    runs = []
    for _ in range(2):
        config = parse_faults(faults, SimConfig(nodes=NODES, blocks=6, seed=7))
        runs.append(json.dumps(make_simulation(config).run(), sort_keys=True))
    assert runs[0] == runs[1]
    other = parse_faults(faults, SimConfig(nodes=NODES, blocks=6, seed=8))
    assert json.dumps(make_simulation(other).run(), sort_keys=True) != runs[0]


def test_equivocating_producers_never_finalise_two_blocks() -> None:
    byzantine = dict.fromkeys(range(0, 9, 2), "equivocate")
    report = make_simulation(
        SimConfig(nodes=NODES, blocks=8, seed=3, faults=Faults(byzantine=byzantine))
    ).run()
    assert report["safety_violations"] == 0 and report["roots_agree"]
    assert min(h for i, h in enumerate(report["final_heights"]) if i not in byzantine) >= 8


def outage_run(nodes: int, seed: int, faults: Faults) -> Simulation:
    """A run of :data:`OUTAGE_TIMING` until every fault is over, finality resumed after the last
    heal and every node is active again (or 3,000 simulated seconds)."""
    config = SimConfig(
        nodes=nodes,
        blocks=10**9,
        seed=seed,
        faults=faults,
        time_limit=3_000,
        verify_once=True,
        **OUTAGE_TIMING,
    )
    sim = make_simulation(config)
    sim.run(until=healed_and_grown_back)
    return sim


def test_a_height_that_fails_more_than_256_rounds_is_made_when_the_nodes_are_back() -> None:
    """PROTOCOL.md §4a: rounds are 16 bits and a failing height keeps starting them. The next
    producer and a validator of a 5-node network stop for 270 round timeouts: with 3 of its 5
    up, no round has a producer and the 3 signatures a block needs. Once they are back, the
    height is made in the round under way (past 255), every honest node has that block, and
    finality resumes; a node that came back took part in it."""
    timeout = OUTAGE_ROUND
    sim = outage_run(5, 2, Faults(stalls=[Stall(30.0, 30.0 + 270 * timeout)]))
    report = sim.report()
    assert report["safety_violations"] == 0 and report["roots_agree"] and report["double_signs"] == 0
    assert sim.is_final_after_heals(), report
    [record] = sim.outages
    stopped = {node for node, _ in record.stopped}
    stopped_at, back = record.stopped[0][1], record.back[-1][1]
    assert len(stopped) == 2 and back - stopped_at == 270 * timeout
    watcher = sim.nodes[next(i for i in range(5) if i not in stopped)]
    [height] = [b.header.height for b in watcher.blocks if b.header.round > 0]  # the one that failed
    block, parent = watcher.blocks[height - 1], watcher.blocks[height - 2]
    assert parent.header.timestamp / 1000 < stopped_at < block.header.timestamp / 1000
    # the schedule in integer milliseconds: the template is stamped with its round's start
    round_start_ms = (
        parent.header.timestamp
        + OUTAGE_TIMING["block_time_ms"]
        + block.header.round * OUTAGE_TIMING["round_timeout_ms"]
    )
    assert block.header.timestamp == round_start_ms
    round_start = round_start_ms / 1000
    assert block.header.round > 255 and back - timeout <= round_start <= back + timeout  # the round under way
    for node in sim.honest_nodes():
        assert node.final_height >= height and node.ledger.block_at(height) == block
    entropy = compute_block_entropy(watcher.random_value_at, height)
    quorum = compute_block_quorum(watcher.states[height - 1], entropy, height, block.header.round)
    assert quorum is not None
    signers = {quorum.producer} | {quorum.validators[index] for index, _ in block.signatures}
    assert signers & {sim.nodes[node].node_key for node in stopped}


def test_the_active_set_shrinks_to_the_floor_holds_there_and_grows_back() -> None:
    """14 nodes, 11 of them stopped in waves (PROTOCOL.md §4a): 10 are decommissioned, and the
    active set reaches the floor of 4; the 11th stays active while down (no state change takes
    the set below the floor) and the chain goes on with 3 of 4. Back one by one, each
    decommissioned node is recommissioned by obligations votes, and all 14 end active."""
    stopped = tuple(range(1, 12))
    sim = outage_run(14, 3, Faults(floors=[ToFloor(stopped, 30.0, hold=40.0, stagger=3.0)]))
    report = sim.report()
    assert report["safety_violations"] == 0 and report["roots_agree"] and report["double_signs"] == 0
    assert healed_and_grown_back(sim), report
    assert report["smallest_active"] == FLOOR and report["active_at_end"] == 14
    [record] = sim.outages
    assert record.floor_reached is not None and [node for node, _ in record.stopped] == list(stopped)
    extra = record.stopped[-1][0]
    watcher = sim.nodes[0]
    at_floor = [
        state
        for state, block in zip(watcher.states[1:], watcher.blocks, strict=True)
        if record.floor_reached + 2 * STOP_SPACING < block.header.timestamp / 1000 < record.back[0][1]
    ]
    assert len(at_floor) >= 3  # blocks made at the floor, with the extra node down
    for state in at_floor:
        view = Overlay(state.get)
        assert len(state_index(state).active) == FLOOR and is_active(view, sim.nodes[extra].node_key)
    changes = {}
    for height, block in enumerate(watcher.blocks, 1):
        for event in block.events:
            if isinstance(event, StateChange):
                quorum = get_quorum(Overlay(watcher.states[event.quorum_height].get), event.quorum_height)
                assert quorum is not None
                node = sim.by_key[quorum.workers[event.worker_index]].index
                changes.setdefault(node, []).append((height, event.new_state))
    assert set(changes) >= set(stopped[:-1])  # every node stopped above the floor was decommissioned
    for node, history in changes.items():
        kinds = [kind for _, kind in history]
        assert kinds == [NewState.DECOMMISSION, NewState.RECOMMISSION] * (len(kinds) // 2), (node, history)
    first = min(
        height for history in changes.values() for height, kind in history if kind == NewState.RECOMMISSION
    )
    assert len(state_index(watcher.states[first - 1]).active) == FLOOR  # recommissioned at the floor, by 4


def test_verifying_each_signature_once_changes_nothing_but_the_time() -> None:
    """The memo of :class:`VerdictMemo` answers as the verify functions do (bad signatures too:
    a garbage-sending member signs nothing valid), and puts them back after the run."""
    spec = "loss=0.05,crash=3@3-20,byzantine=1:garbage,byzantine=2:double-sign,floor=4-5@15+5/2"
    reports = []
    for once in (False, True):
        config = parse_faults(spec, SimConfig(nodes=8, blocks=6, seed=4, verify_once=once, **OUTAGE_TIMING))
        reports.append(make_simulation(config).run())
    assert reports[0] == reports[1] and reports[0]["accused"] == [2]
    verify = ed25519.verify
    with VerdictMemo() as memo:
        key = ed25519.SigningKey(bytes(32))
        signature = key.sign(b"m")
        assert ed25519.verify is not verify
        assert [ed25519.verify(key.public_key, b"m", signature) for _ in range(2)] == [True, True]
        assert ed25519.verify(key.public_key, b"n", signature) is False
        assert len(memo.verdicts) == 2
    assert ed25519.verify is verify and not memo.verdicts


def test_finality_resumes_after_a_long_partition() -> None:
    halves = [set(range(15)), set(range(15, 30))]  # no side has two thirds: finality stalls
    faults = Faults(partitions=[(halves, 4.0, 40.0)])
    report = make_simulation(SimConfig(nodes=NODES, blocks=10, seed=5, faults=faults)).run()
    assert report["simulated_seconds"] > 40.0
    assert min(report["final_heights"]) >= 10 and report["roots_agree"] and report["safety_violations"] == 0


def test_fault_spec_errors_and_cli(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (
        "loss=2",
        "crash=3@9-1",
        "crash=3-5@1-9/x",
        "byzantine=1:lazy",
        "bogus=1",
        "skew=x:1",
        "partition=0-99@1-2",
        "floor=1-99@30",
        "floor=1-9@-1",
        "floor=1-9@30+x/5",
        "stall=40-10",
        "stall=10-40/-1",
    ):
        with pytest.raises(FaultSpecError):
            parse_faults(bad, SimConfig(nodes=NODES))
    assert main(["simulate", "--nodes", "4", "--blocks", "3", "--seed", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("final_heights", "roots_agree", "safety_violations", "double_signs", "smallest_active"):
        assert key in report
    assert main(["simulate", "--nodes", "3"]) == 1
    assert main(["simulate", "--faults", "nonsense=1"]) == 1
    assert capsys.readouterr().err.count("\n") == 2


def test_the_outage_items_of_a_fault_spec() -> None:
    faults = parse_faults(
        "crash=7-9@5-40/4,floor=3+1-2@30+20/6,floor=4@9,stall=50-900/2.5,stall=60-70", SimConfig(nodes=12)
    ).faults
    assert faults.crashes == [(7, 5.0, 40.0), (8, 5.0, 44.0), (9, 5.0, 48.0)]  # back one by one
    assert faults.floors == [ToFloor((3, 1, 2), 30.0, 20.0, 6.0), ToFloor((4,), 9.0, 10.0, 5.0)]
    assert faults.stalls == [Stall(50.0, 900.0, 2.5), Stall(60.0, 70.0, 0.0)]


def test_round_zero_survives_four_dead_validators_and_five_move_to_the_next_round() -> None:
    """Eight of 30 nodes are down throughout: at each height, the round-0 quorum is known, so
    whether round 0 can make the block is known too."""
    dead = set(range(8))
    faults = Faults(crashes=[(n, 0.0, 10_000.0) for n in dead])
    sim = make_simulation(SimConfig(nodes=NODES, blocks=12, seed=11, faults=faults, time_limit=400))
    sim.run()
    watcher = sim.nodes[29]
    dead_keys = {sim.nodes[n].node_key for n in dead}
    seen = {"round 0": 0, "later round": 0}
    for height in range(1, watcher.height + 1):
        state = watcher.states[height - 1]
        entropy = compute_block_entropy(watcher.random_value_at, height)
        quorum = compute_block_quorum(state, entropy, height, 0)
        assert quorum is not None
        dead_validators = sum(v in dead_keys for v in quorum.validators)
        block_round = watcher.blocks[height - 1].header.round
        if quorum.producer in dead_keys or dead_validators >= 5:
            assert block_round >= 1, (height, dead_validators)
            seen["later round"] += 1
        else:
            assert block_round == 0, (height, dead_validators)
            seen["round 0"] += 1
    assert seen["round 0"] and seen["later round"]


async def test_the_run_on_trios_mock_clock_is_the_same_run(autojump_clock) -> None:  # type: ignore[no-untyped-def]
    import trio

    config = parse_faults(
        "loss=0.05,crash=3@3-20,byzantine=1:garbage", SimConfig(nodes=NODES, blocks=5, seed=9)
    )
    expected = make_simulation(config).run()
    config = parse_faults(
        "loss=0.05,crash=3@3-20,byzantine=1:garbage", SimConfig(nodes=NODES, blocks=5, seed=9)
    )
    started = trio.current_time()
    report = await make_simulation(config).run_on_trio()
    assert report == expected
    assert trio.current_time() - started == pytest.approx(report["simulated_seconds"], abs=1e-3)


def test_blocks_a_quarter_second_apart() -> None:
    """Sub-second blocks: a 250 ms chain on a fast network makes each height in round 0, stamped
    exactly 250 ms after its parent (the schedule is integer milliseconds; no timestamp is
    truncated to a second), and finalises them. A simulation refuses a genesis whose block time
    is not its own."""
    config = SimConfig(
        nodes=12, blocks=24, seed=2, latency=0.005, jitter=0.005, block_time_ms=250, stage_timeout_ms=500,
        round_timeout_ms=2_000,
    )  # fmt: skip
    sim = make_simulation(config)
    report = sim.run()
    assert report["target_reached"] and report["roots_agree"] and report["rounds_used"] == 0, report
    headers = [block.header for block in sim.nodes[0].blocks]
    assert len(headers) >= 24 and all(h.round == 0 for h in headers)
    assert {b.timestamp - a.timestamp for a, b in itertools.pairwise(headers)} == {250}
    assert report["simulated_seconds"] < 24 * 0.25 + 3  # a few stages of latency beyond the schedule
    with pytest.raises(ValueError, match="the genesis block time is 250 ms, the simulation's 2000 ms"):
        Simulation(SimConfig(nodes=12), sim.genesis)
