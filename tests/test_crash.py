"""Kill -9 a process appending blocks, at random moments, 20 times.

After every kill: the home opens cleanly (snapshot + replay handshake), holds every block the
process reported as written (same hash at the same height), and its root equals a fresh replay
of the same blocks from genesis.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appchain.home.chain import replay_from_genesis
from appchain.home.home import Home, NodeConfig
from appchain.home.store import BlockStore
from state.block import compute_block_hash
from tests.conftest import ROOT

KILLS = int(os.environ.get("APPCHAIN_CRASH_KILLS", "20"))


@pytest.mark.slow
def test_kill_minus_nine_loses_nothing_reported(tmp_path: Path, devnet_dir: Path) -> None:
    home, _ = Home.init(
        tmp_path / "home", devnet_dir / "genesis.json", NodeConfig(snapshot_interval=3, sync_writes=True)
    )
    rng = random.Random(2026)
    reported: dict[int, str] = {}
    for attempt in range(KILLS):
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_writer", str(home.path), f"crash-{attempt}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        opened = process.stdout.readline().split()
        assert opened[0] == "opened", opened
        # Wait for at least one block, then kill at a random moment while it keeps writing.
        line = process.stdout.readline().split()
        assert line and line[0] == "written", line
        deadline = time.monotonic() + rng.uniform(0.0, 0.25)
        os.set_blocking(process.stdout.fileno(), False)
        while time.monotonic() < deadline:
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait()
        os.set_blocking(process.stdout.fileno(), True)
        lines = [line, *(chunk.split() for chunk in process.stdout.read().splitlines())]
        process.stdout.close()
        for fields in lines:
            if len(fields) == 3 and fields[0] == "written":
                reported[int(fields[1])] = fields[2]

        with home.open_chain() as chain:  # must open cleanly: snapshot + tail replay
            tip = chain.height
            assert tip >= max(reported), f"kill {attempt}: lost blocks above {tip}"
            for height, block_hash in reported.items():
                header = chain.store.get_header(height)
                assert header is not None
                assert compute_block_hash(header).hex() == block_hash
            root = chain.state.root
        with BlockStore(home.db_path) as store:
            assert replay_from_genesis(store, home.load_genesis()).root == root
    assert len(reported) >= KILLS
