"""A full disk: the home on a small tmpfs the test mounts. The writer stops with one ``fatal:``
line naming the block it could not write, nothing written before is lost or corrupt, and once
there is room again the home opens, replays from genesis to the same root, and goes on.

Needs root (to mount); CI runs as root. The blocks come from ``appchain dev-chain``, which
appends through the same :meth:`appchain.home.chain.Chain.append_pending` and one-batch store write as
a running node."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appchain.home.genesis_files import write_devnet
from appchain.home.home import Home, NodeConfig
from tests.conftest import unless_ci

pytestmark = unless_ci(None if os.geteuid() == 0 else "root (mounting a tmpfs)")


def appchain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 (the caller checks the return code and the output)
        [sys.executable, "-m", "appchain.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_writer_cleanly_and_loses_nothing(small_disk: Path, tmp_path: Path) -> None:
    write_devnet(tmp_path / "genesis.json", nodes=12, seed="disk", users=6)
    home, _ = Home.init(small_disk / "home", tmp_path / "genesis.json", NodeConfig(snapshot_interval=50))
    full = appchain(
        "dev-chain",
        "--home",
        str(home.path),
        "--blocks",
        "100000",
        "--events-per-block",
        "100",
        "--seed",
        "d",
    )
    lines = full.stderr.strip().splitlines()
    assert full.returncode != 0, full.stdout[-500:]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    assert len(fatal) == 1 and "Traceback" not in full.stderr, full.stderr[-2000:]
    assert "No space left on device" in fatal[0] or "IO error" in fatal[0], fatal[0]
    failed = re.search(r"block (\d+)", fatal[0])

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    status = appchain("status", "--home", str(home.path), "--json")
    assert status.returncode == 0, status.stderr
    tip = json.loads(status.stdout)
    assert tip["height"] > 0
    if failed is not None:  # every block before the one it could not write is there
        assert tip["height"] == int(failed.group(1)) - 1
    replay = appchain("replay", "--home", str(home.path), "--json")
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["state_root"] == tip["state_root"]
    more = appchain(
        "dev-chain", "--home", str(home.path), "--blocks", "3", "--events-per-block", "10", "--seed", "e"
    )
    assert more.returncode == 0, more.stderr
    after = json.loads(appchain("status", "--home", str(home.path), "--json").stdout)
    assert after["height"] == tip["height"] + 3
