"""Shared fixtures: vectors from ../shared/vectors (or tests/vectors), small devnets, chains."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appchain.cli.devchain import DevChainGenerator
from appchain.home.chain import Chain
from appchain.home.genesis_files import write_devnet
from appchain.home.home import Home, NodeConfig
from appchain.node.log import Logger
from appchain.node.node import Node
from genesis.devnet import load_dev_accounts, load_dev_nodes
from genesis.document import Genesis

ROOT = Path(__file__).resolve().parent.parent
VECTOR_DIRS = [ROOT.parent / "shared" / "vectors", ROOT / "tests" / "vectors"]


def vector_path(name: str) -> Path:
    for folder in VECTOR_DIRS:
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"test vector {name} not found in {VECTOR_DIRS}")


def load_vectors(name: str) -> Any:
    return json.loads(vector_path(name).read_text())


@pytest.fixture(scope="session")
def devnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("devnet")
    write_devnet(folder / "genesis.json", nodes=12, seed="tests", users=6)
    return folder


@pytest.fixture(scope="session")
def devnet_genesis(devnet_dir: Path) -> Genesis:
    from genesis.load import load_genesis

    return load_genesis(devnet_dir / "genesis.json")


MakeHome = Callable[..., Home]


@pytest.fixture
def make_home(tmp_path: Path, devnet_dir: Path) -> MakeHome:
    counter = iter(range(1_000_000))

    def make(blocks: int = 0, *, snapshot_interval: int = 1000, seed: str = "s", per_block: int = 20) -> Home:
        home, _ = Home.init(
            tmp_path / f"home{next(counter)}",
            devnet_dir / "genesis.json",
            NodeConfig(snapshot_interval=snapshot_interval, sync_writes=False),
        )
        if blocks:
            with home.open_chain() as chain:
                extend(chain, home, blocks, seed=seed, per_block=per_block)
        return home

    return make


@pytest.fixture
def offline_node(make_home: MakeHome) -> Iterator[Node]:
    """A node of the test devnet with node 0's keys, not running: its pieces are driven by the test."""
    home = make_home()
    entry = json.loads((home.keys_path / "dev-nodes.json").read_text())["nodes"][0]
    home.write_node_keys(bytes.fromhex(entry["node_seed"]), bytes.fromhex(entry["bls_seed"]))
    with home.open_chain() as chain:
        running = Node(home, home.load_config(), chain, Logger("error", io.StringIO()))
        try:
            yield running
        finally:
            running.message_store.close()
            running.journal.close()


def extend(chain: Chain, home: Home, blocks: int, *, seed: str = "s", per_block: int = 20) -> None:
    accounts = load_dev_accounts(home.keys_path / "dev-accounts.json")
    nodes = load_dev_nodes(home.keys_path / "dev-nodes.json")
    DevChainGenerator(chain, accounts, seed, events_per_block=per_block, nodes=nodes).run(blocks)


def unless_ci(missing: str | None) -> pytest.MarkDecorator:
    """Skip tests that need what this machine lacks (``missing`` says what, None: nothing), but
    never in CI: ``.ci/run`` runs as root with iproute2 installed and sets ``APPCHAIN_CI=1``, so
    there the tests run and a missing capability fails them instead of passing unseen."""
    in_ci = os.environ.get("APPCHAIN_CI") == "1"
    return pytest.mark.skipif(missing is not None and not in_ci, reason=f"not on this machine: {missing}")


PROCESS_NETWORK_GROUPS = {
    "test_netns": "networks-a",
    "test_network": "networks-a",
    "test_crash_network": "networks-a",
    "test_statesync_network": "networks-a",
    "test_liveness_network": "networks-b",
    "test_floods": "networks-a",
    "test_devnet": "networks-b",
    "test_evidence_network": "networks-b",
    "test_onion_relay_network": "networks-b",
    "test_topology_network": "networks-a",
}
"""Modules that run networks of node processes on real timers, in two groups of about equal
length (measured: about 320 s and 310 s on the 2-core machine, the 12-node liveness test alone
215 s of the second). ``make test`` runs the suite on two pytest-xdist workers with ``--dist loadgroup``: a
group runs on one worker, one test after another, so at most two networks compete for the two
cores at any moment (one per worker), while the in-process tests fill the gaps. One group for
all of them would be gentler still, but its tests alone run longer than CI's ten minutes."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the network modules' tests with their group (first: pytest-xdist reads the marks
    when its own hook runs, and would otherwise see none)."""
    for item in items:
        if item.module is not None:
            group = PROCESS_NETWORK_GROUPS.get(item.module.__name__.rsplit(".", 1)[-1])
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))
