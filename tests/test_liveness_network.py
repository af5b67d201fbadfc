"""The chain never stops for good (PROTOCOL.md §4a), shown on networks of node processes.

- **Four nodes.** They finalize blocks; with one of them stopped the other three go on (blocks
  of 2 of 3 validator signatures, certificates of 3 of 4 checkpoint votes) and the stopped node
  stays active: removing it would take the active set below ``pulse_min_nodes``. With two
  stopped the chain waits and ``status`` says why; once they are back it resumes within one
  round timeout.
- **Twelve nodes, one never started.** Blocks become final all along; the missing node is
  decommissioned by the obligations quorum (11 active: Pulse goes on with quorums of 10
  validators); when it is started it syncs, is recommissioned by votes and signs again. Then
  five nodes are stopped with SIGSTOP for 90 s, more than a third of Pulse and of the
  checkpoint quorum: the chain waits, and after they resume the history checker finds no
  safety violation and finality resumes within three round timeouts.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from appchain.lab.checker import RESUME_ROUNDS, check_histories
from appchain.lab.testnet import (
    DEVNET_TIMING,
    PORTS_PER_NODE,
    NetworkMember,
    poll_status,
    start_process,
    stop_processes,
    write_testnet,
)
from tests.test_network import free_port_block, wait_for

ROUND_TIMEOUT = DEVNET_TIMING["round_timeout_ms"] / 1000  # seconds


def status(member: NetworkMember) -> dict[str, Any]:
    return poll_status(member, timeout=2.0) or {}


def rpc(member: NetworkMember, method: str, **params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{member.rpc_port}/json_rpc", data=body)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["result"]


def node_state(observer: NetworkMember, node: NetworkMember) -> str:
    """``node``'s state on chain as ``observer`` answers it ("unknown" while it does not answer)."""
    try:
        answer = rpc(observer, "get_service_nodes", service_node_pubkeys=[node.node_key.hex()])
    except OSError:  # starting, or stopped
        return "unknown"
    entries = answer["service_node_states"]
    return str(entries[0]["status"]) if entries else "unregistered"


def final(member: NetworkMember) -> int:
    return int(status(member).get("final_height", -1))


def popcount(value: int) -> int:
    return bin(value).count("1")


@pytest.fixture
def processes() -> Any:
    started: dict[int, subprocess.Popen[bytes]] = {}
    yield started
    for process in started.values():
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
    stop_processes(list(started.values()))


@pytest.mark.slow
def test_four_nodes_go_on_with_three_and_wait_with_two(tmp_path: Path, processes: Any) -> None:
    members = write_testnet(tmp_path / "net", 4, base_port=free_port_block(4 * PORTS_PER_NODE), seed="four")
    for i, member in enumerate(members):
        processes[i] = start_process(member.home)
    live = members[:2]
    wait_for("a final checkpoint on the four", lambda: all(final(m) >= 4 for m in members), 90)

    # one stopped: the three go on, with 2 of 3 signatures and 3 of 4 checkpoint votes
    processes[3].send_signal(signal.SIGSTOP)
    stopped_at = final(members[0])
    wait_for("two more checkpoints without node 3", lambda: final(members[0]) >= stopped_at + 8, 120)
    top = status(members[0])["final_height"]
    headers = rpc(members[0], "get_block_header_by_height", heights=list(range(stopped_at + 1, top + 1)))
    bitsets = [h["pulse"]["validator_bitset"] for h in headers["block_headers"]]
    assert all(popcount(b) >= 2 for b in bitsets) and any(popcount(b) == 2 for b in bitsets)
    certificates = rpc(members[0], "get_checkpoints", start_height=stopped_at + 4)["checkpoints"]
    assert certificates and all(popcount(int(c["signers"], 16)) == 3 for c in certificates)
    assert node_state(members[0], members[3]) == "active"  # removing it would break the floor
    progress = status(members[0])["progress"]
    assert progress["active_nodes"] == 4 and progress["pulse_min_nodes"] == 4

    # two stopped: the chain waits, and says why
    processes[2].send_signal(signal.SIGSTOP)
    waited = status(members[0])["height"]
    time.sleep(3 * ROUND_TIMEOUT)
    wait_for(
        "status to say why no block comes",
        lambda: all((status(m).get("progress") or {}).get("blocks") for m in live),
        4 * ROUND_TIMEOUT,
    )
    assert status(members[0])["height"] <= waited + 1  # one block may have been under way
    reason = status(members[0])["progress"]["blocks"]
    assert "round" in reason and "quorum members" in reason, reason
    info = rpc(members[1], "get_info")["progress"]
    assert info["stalled"] and info["blocks"]

    # back: blocks resume within one round timeout
    held = status(members[0])["height"]
    for i in (2, 3):
        processes[i].send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    wait_for(
        "a block after the resume", lambda: status(members[0]).get("height", 0) > held, 3 * ROUND_TIMEOUT
    )
    assert time.monotonic() - resumed <= ROUND_TIMEOUT + 2.0  # a round, and a poll's slack
    wait_for("finality after the resume", lambda: all(final(m) >= held + 4 for m in members), 60)
    report = check_histories([m.home for m in members])
    assert not report.safety_violations and not report.double_signs and not report.diverging_roots


@pytest.mark.slow
def test_twelve_nodes_one_never_started_then_five_stopped_for_90_s(tmp_path: Path, processes: Any) -> None:
    members = write_testnet(
        tmp_path / "net", 12, base_port=free_port_block(12 * PORTS_PER_NODE), seed="twelve"
    )
    missing = members[11]
    for i, member in enumerate(members[:11]):
        processes[i] = start_process(member.home)
    observer = members[0]

    # blocks become final all along, and the node that never started is decommissioned
    wait_for("node 11 decommissioned", lambda: node_state(observer, missing) == "decommissioned", 300)
    assert status(observer)["progress"]["active_nodes"] == 11
    reached = final(observer)
    wait_for("finality going on with 11 active", lambda: final(observer) >= reached + 8, 90)

    # started, it syncs, is recommissioned by obligations votes and signs again
    processes[11] = start_process(missing.home)
    wait_for(
        "node 11 synced", lambda: status(missing).get("height", 0) >= status(observer)["height"] - 2, 120
    )
    wait_for("node 11 recommissioned", lambda: node_state(observer, missing) == "active", 120)
    wait_for(
        "node 11 signing again",
        lambda: status(missing).get("signed", 0) + status(missing).get("produced", 0) > 0,
        180,
    )

    # five stopped for 90 s: more than a third of Pulse (7 of 11 needed) and of the checkpoints
    stopped = [3, 5, 7, 9, 11]
    before = final(observer)
    for i in stopped:
        processes[i].send_signal(signal.SIGSTOP)
    time.sleep(90)
    assert final(observer) <= before + 4  # at most what was under way when they stopped
    for i in stopped:
        processes[i].send_signal(signal.SIGCONT)
    resumed = time.time()
    wait_for("finality after the resume", lambda: final(observer) > before + 4, 6 * ROUND_TIMEOUT)
    report = check_histories(
        [m.home for m in members], healed_at=[resumed], resume_within=RESUME_ROUNDS * ROUND_TIMEOUT
    )
    assert not report.safety_violations and not report.double_signs and not report.diverging_roots, report
    assert not report.late_resumes, report.resumes
