"""The simulator: reproducible runs, and safety under faults within the tolerated bounds.

``APPCHAIN_SIM_SEEDS`` (default 20) sets how many seeds the safety test runs; CI keeps the
default, a longer soak runs more.
"""

from __future__ import annotations

import json
import os
import random

import pytest

from appchain.cli import main
from appchain.simulate import make_simulation
from consensus.faults import FaultSpecError, parse_faults
from consensus.simulator import Faults, SimConfig

SEEDS = int(os.environ.get("APPCHAIN_SIM_SEEDS", "20"))
NODES = 30
BLOCKS = 8


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


def test_finality_resumes_after_a_long_partition() -> None:
    halves = [set(range(15)), set(range(15, 30))]  # no side has two thirds: finality stalls
    faults = Faults(partitions=[(halves, 4.0, 40.0)])
    report = make_simulation(SimConfig(nodes=NODES, blocks=10, seed=5, faults=faults)).run()
    assert report["simulated_seconds"] > 40.0
    assert min(report["final_heights"]) >= 10 and report["roots_agree"] and report["safety_violations"] == 0


def test_fault_spec_errors_and_cli(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("loss=2", "crash=3@9-1", "byzantine=1:lazy", "bogus=1", "skew=x:1", "partition=0-99@1-2"):
        with pytest.raises(FaultSpecError):
            parse_faults(bad, SimConfig(nodes=NODES))
    assert main(["simulate", "--nodes", "12", "--blocks", "3", "--seed", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("final_heights", "roots_agree", "safety_violations", "double_signs"):
        assert key in report
    assert main(["simulate", "--nodes", "5"]) == 1
    assert main(["simulate", "--faults", "nonsense=1"]) == 1
    assert capsys.readouterr().err.count("\n") == 2


def test_round_zero_survives_four_dead_validators_and_five_move_to_the_next_round() -> None:
    """Eight of 30 nodes are down throughout: at each height, the round-0 quorum is known, so
    whether round 0 can make the block is known too."""
    from consensus.validation import compute_block_entropy, compute_block_quorum

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
