"""The fuzz targets (:mod:`tests.fuzz`) in CI: every seed and every input that once crashed a
node replays cleanly, and each target survives a short coverage-guided run (``make fuzz`` runs
10^6 inputs per target)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import TARGETS, regression_inputs

CI_RUNS = 1000
ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_and_past_crashes_replay_cleanly(name: str) -> None:
    target = TARGETS[name]
    try:
        for seed in target.seeds():
            target.run(seed)
        for path in regression_inputs(name):
            target.run(path.read_bytes())
    finally:
        target.close()


def test_a_frame_with_a_negative_chunk_part_is_refused_before_the_store() -> None:
    """The first input the fuzzer found: a ``chunk_request`` whose part was -27 reached
    ``int.to_bytes`` in the store and raised OverflowError in the node."""
    from consensus.messages import decode_message
    from state.encoding import DecodeError

    crash = (
        Path(__file__).parent / "fuzz_regressions" / "p2p_frame" / "chunk-request-negative-part"
    ).read_bytes()
    with pytest.raises(DecodeError):
        decode_message(crash)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_short_fuzzing_run_finds_nothing(name: str, tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: PLW1510 (the return code is asserted below, with the output)
        [sys.executable, "-m", "tests.fuzz", name, "--runs", str(CI_RUNS), "--corpus", str(tmp_path)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"fuzz {name}: {CI_RUNS} inputs, 0 crashes" in result.stdout
