"""The operator's own tools never get in the node's way (issue 18, point 6): a listener whose port
is taken is named by its setting in one line, and ``appchain status`` polled while a node starts
never keeps it from starting."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from appchain.home import Home, PeerAddress, render_config
from appchain.testnet import write_testnet
from tests.test_network import free_port_block

APPCHAIN = [sys.executable, "-m", "appchain.cli"]


def one_node(folder: Path) -> Home:
    """A one-node testnet's home on free ports of 127.0.0.1 (p2p P, admin P+1, rpc P+2)."""
    write_testnet(folder, 1, base_port=free_port_block(3), seed="operators", sync_writes=False)
    return Home(folder / "node0")


@pytest.mark.parametrize(
    ("setting", "section", "state_sync"),
    [
        ("p2p_listen", "p2p", True),  # a fresh home state-syncs first, on the p2p address
        ("p2p_listen", "p2p", False),
        ("admin_listen", "admin", False),
        ("rpc_listen", "rpc", False),
    ],
)
def test_a_port_in_use_names_its_setting(
    tmp_path: Path, setting: str, section: str, state_sync: bool
) -> None:
    home = one_node(tmp_path / "net")
    config = home.load_config()
    # with state sync, a fresh home first listens on the p2p address to ask its peers for a
    # snapshot (one that never answers, here); without, the node opens p2p, admin, rpc in turn
    peers = (PeerAddress(b"\x07" * 32, "127.0.0.1", config.rpc_address[1] + 1),) if state_sync else ()
    config = dataclasses.replace(config, state_sync=state_sync, peers=peers)
    home.config_path.write_text(render_config(config))
    host, port = getattr(config, setting.replace("_listen", "_address"))
    with socket.create_server((host, port)):  # another process's listener, as far as the node sees
        started = subprocess.run(
            [*APPCHAIN, "start", "--home", str(home.path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert started.returncode == 1, started.stderr
    assert "Traceback" not in started.stderr
    assert ("asking peers for snapshots" in started.stderr) is state_sync
    assert started.stderr.splitlines()[-1] == (
        f"error: {setting} {host}:{port} is in use (another process listens there): "
        f"change [{section}] listen in config.toml"
    )
    # the home and its databases were closed: a command takes the home at once and reads block 0
    status = subprocess.run(
        [*APPCHAIN, "status", "--home", str(home.path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["running"] is False


def test_an_address_not_on_this_machine_names_its_setting(tmp_path: Path) -> None:
    home = one_node(tmp_path / "net")
    config = home.load_config()
    port = config.rpc_address[1]
    home.config_path.write_text(render_config(dataclasses.replace(config, rpc_listen=f"192.0.2.1:{port}")))
    started = subprocess.run(
        [*APPCHAIN, "start", "--home", str(home.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 1 and "Traceback" not in started.stderr
    assert started.stderr.splitlines()[-1] == (
        f"error: rpc_listen 192.0.2.1:{port} cannot be opened (Cannot assign requested address): "
        "change [rpc] listen in config.toml"
    )
