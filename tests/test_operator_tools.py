"""The operator's own tools never get in the node's way (issue 18, point 6): a listener whose port
is taken is named by its setting in one line, and ``appchain status`` polled while a node starts
never keeps it from starting."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from appchain.home.home import Home, NodeConfig, PeerAddress, render_config
from appchain.lab.testnet import (
    PORTS_PER_NODE,
    NetworkMember,
    poll_status,
    start_process,
    stop_processes,
    write_testnet,
)
from tests.test_network import free_port_block, wait_for

APPCHAIN = [sys.executable, "-m", "appchain.cli"]


def one_node(folder: Path) -> Home:
    """A one-node testnet's home on free ports of 127.0.0.1 (p2p P, admin P+1, rpc P+2, storage P+3)."""
    write_testnet(folder, 1, base_port=free_port_block(PORTS_PER_NODE), seed="operators", sync_writes=False)
    return Home(folder / "node0")


@pytest.mark.parametrize(
    ("setting", "section", "state_sync"),
    [
        ("p2p_listen", "p2p", True),  # a fresh home state-syncs first, on the p2p address
        ("p2p_listen", "p2p", False),
        ("admin_listen", "admin", False),
        ("rpc_listen", "rpc", False),
        ("storage_listen", "storage", False),
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


POLLER = """
import contextlib, io, json, sys, time, traceback
from appchain.cli.main import main

home, out = sys.argv[1], open(sys.argv[2], "w")
while True:  # until the test stops it: status every 50 ms, through the CLI's own entry point
    stdout, stderr, began = io.StringIO(), io.StringIO(), time.time()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(["status", "--home", home, "--json"])
        except BaseException:
            code, stderr = None, io.StringIO(traceback.format_exc())
    out.write(json.dumps({"code": code, "out": stdout.getvalue(), "err": stderr.getvalue(), "began": began}) + "\\n")
    out.flush()
    time.sleep(0.05)
"""


def test_status_polled_every_50_ms_never_keeps_a_node_from_starting(tmp_path: Path) -> None:
    home = one_node(tmp_path / "net")
    config = home.load_config()
    outputs = [tmp_path / f"poller{i}.jsonl" for i in range(2)]
    pollers = [
        subprocess.Popen([sys.executable, "-c", POLLER, str(home.path), str(out)], stderr=subprocess.PIPE)
        for out in outputs
    ]  # two monitoring scripts: their reads overlap, as a stream of status polls would
    node: subprocess.Popen[bytes] | None = None
    try:
        wait_for("both pollers to read the stopped home", lambda: all(_results(o) for o in outputs), 60)
        node = start_process(home.path)
        wait_for("the node's admin endpoint", lambda: poll_status(_member(config)) is not None, 60)
        up = time.time()
        assert "node started" in (home.path / "node.log").read_text()
        seen = sum(len(_results(o)) for o in outputs)
        wait_for(
            "more status polls of the running node",
            lambda: sum(len(_results(o)) for o in outputs) > seen + 10,
            60,
        )
    finally:
        for poller in pollers:
            poller.kill()
            poller.wait()
        if node is not None:
            stop_processes([node])
    assert node.returncode == 0
    log = (home.path / "node.log").read_text()
    assert "in use" not in log and "Traceback" not in log
    kinds = set()
    for output in outputs:
        for result in _results(output):
            assert result["code"] == 0 and result["err"] == "", result  # never an error, never a traceback
            status = json.loads(result["out"])
            if not status["running"]:
                kinds.add("stored")
                assert status["height"] == 0
            elif not status["answering"]:
                kinds.add("starting")
                assert status["holder"] == f"process {node.pid} (start)" and status["admin_error"]
            else:
                kinds.add("running")
                assert status["pid"] == node.pid and status["height"] == 0
            if result["began"] > up:  # once the node answers, status reports the running node
                assert status["running"] and status["answering"], status
    assert {"stored", "running"} <= kinds, kinds


def _results(path: Path) -> list[dict[str, Any]]:
    """The whole lines a poller wrote so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


def _member(config: NodeConfig) -> NetworkMember:
    return NetworkMember(
        Path(),
        b"",
        config.p2p_address[1],
        config.admin_address[1],
        config.rpc_address[1],
        config.storage_address[1],
    )
