"""``appchain devnet`` outlives its nodes' faults (issue 18, point 6): a node process that exits is
reported with its exit code and last log line and started again with backoff; a node that hangs,
answers an error or garbage is shown as such; the view itself never crashes.

The supervisor and the view are driven with fake processes and a fake clock; one test runs the
real command over three node processes, kills one with SIGKILL and stops another with SIGSTOP."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console

from appchain.lab.devnet import LiveView, Supervisor, describe_exit, last_log_line
from appchain.lab.testnet import (
    PORTS_PER_NODE,
    Answer,
    NetworkMember,
    Problem,
    poll_status,
    probe_status,
    write_testnet,
)
from tests.test_admin_call import fake_admin, sends, stalls
from tests.test_network import free_port_block, wait_for


@dataclass
class FakeProcess:
    pid: int
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def supervised(tmp_path: Path, count: int = 2) -> tuple[Supervisor, Clock, list[FakeProcess]]:
    clock, started = Clock(), [FakeProcess(100 + i) for i in range(count)]
    pids = iter(range(200, 300))

    def start(index: int) -> Any:
        process = FakeProcess(next(pids))
        started.append(process)
        return process

    (tmp_path / "node.log").write_text("2026 info node started\n2026 error fatal: the disk is full\n\n")
    supervisor = Supervisor(
        cast(Any, started[:count]), start, lambda index: tmp_path / "node.log", clock=clock
    )
    return supervisor, clock, started


# -- the supervisor ------------------------------------------------------------------------------------


def test_an_exit_is_reported_and_restarted_after_a_doubling_backoff(tmp_path: Path) -> None:
    supervisor, clock, processes = supervised(tmp_path)
    assert supervisor.check() == []
    processes[1].code = -9
    clock.now += 5
    assert supervisor.check() == [
        "node 1 (pid 101) was killed by SIGKILL (exit code -9) after 5 s; "
        "last log line: 2026 error fatal: the disk is full; restarting in 1 s"
    ]
    assert supervisor.nodes[1].down and supervisor.check() == []  # reported once
    clock.now += 0.9
    assert supervisor.check() == []
    clock.now += 0.1
    assert supervisor.check() == ["node 1 restarted: pid 200 (restart 1)"]
    waits = []
    for _ in range(7):  # it keeps exiting at once: 2, 4, 8, 16, then 30 s at most
        processes[-1].code = 3
        waits.append(supervisor.check()[0].rsplit("restarting in ", 1)[1])
        clock.now = supervisor.nodes[1].restart_at or 0.0
        assert supervisor.check()[0].startswith("node 1 restarted")
    assert waits == ["2 s", "4 s", "8 s", "16 s", "30 s", "30 s", "30 s"]
    clock.now += 60  # up a minute: the next exit is a new episode
    processes[-1].code = 1
    assert supervisor.check()[0].endswith("exited with code 1 after 60 s; last log line: "
                                          "2026 error fatal: the disk is full; restarting in 1 s")  # fmt: skip
    assert supervisor.nodes[0].restarts == 0 and supervisor.nodes[1].restarts == 8
    assert [p.pid for p in supervisor.processes] == [100, 207]


def test_a_restart_that_cannot_start_is_tried_again(tmp_path: Path) -> None:
    supervisor, clock, processes = supervised(tmp_path, 1)
    tries = []

    def refuse(index: int) -> Any:
        tries.append(index)
        raise OSError(24, "Too many open files")

    supervisor.start = refuse
    processes[0].code = 1
    supervisor.check()
    clock.now += 1
    assert supervisor.check() == ["node 0 could not be started: Too many open files; trying again in 2 s"]
    assert supervisor.nodes[0].down and tries == [0]


def test_exit_codes_and_log_lines_are_described(tmp_path: Path) -> None:
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(-15) == "was killed by SIGTERM (exit code -15)"
    assert describe_exit(-200) == "was killed by signal 200 (exit code -200)"
    assert last_log_line(tmp_path / "absent.log") == "(no log: No such file or directory)"
    (tmp_path / "empty.log").write_text("\n \n")
    assert last_log_line(tmp_path / "empty.log") == "(the log is empty)"
    (tmp_path / "long.log").write_bytes(b"x" * 20_000 + b"\n\xff" + b"y" * 500 + b"\n")
    line = last_log_line(tmp_path / "long.log")
    assert line.startswith("\ufffdyyy") and len(line) == 200 and line.endswith("…")


# -- the view ------------------------------------------------------------------------------------------

STATUS = {
    "height": 4, "final_height": 4, "final_root": "ab", "round": None, "peers": 2, "mempool": 0,
    "sync": "synced", "service_node": {"status": "active", "credit": 60},
}  # fmt: skip


def test_the_view_shows_each_kind_of_answer_and_announces_changes(tmp_path: Path) -> None:
    supervisor, clock, processes = supervised(tmp_path, 5)
    members = [NetworkMember(tmp_path / f"node{i}", b"", 1, 2, 3, 4) for i in range(5)]
    answers = [Answer(STATUS)] * 5
    view = LiveView(members, lambda index: answers[index], supervisor)
    try:
        assert view.refresh() == []
        answers = [
            Answer(STATUS),
            Answer(None, Problem.TIMEOUT, "the node at 127.0.0.1:2 did not answer within 0.5 s"),
            Answer(None, Problem.ERROR, "error -32603 from 127.0.0.1:2: internal [error]"),
            Answer(None, Problem.MALFORMED, "malformed reply from 127.0.0.1:2: a JSON list, not an object"),
            Answer(None, Problem.REFUSED, "no node answers at 127.0.0.1:2: Connection refused"),
        ]
        assert view.refresh() == [
            "node 1 (pid 101) not answering: the node at 127.0.0.1:2 did not answer within 0.5 s",
            "node 2 (pid 102) error: error -32603 from 127.0.0.1:2: internal [error]",
            "node 3 (pid 103) malformed: malformed reply from 127.0.0.1:2: a JSON list, not an object",
            "node 4 (pid 104) refused: no node answers at 127.0.0.1:2: Connection refused",
        ]
        assert view.refresh() == []  # announced once
        processes[4].code = -9
        clock.now += 1
        events = view.refresh()
        assert events[0].startswith("node 4 (pid 104) was killed by SIGKILL")
        text = _text(view)
        for shown in ("did not answer within 0.5 s", "error -32603", "internal [error]", "a JSON list",
                      "was killed by SIGKILL (exit code -9), restart in 1 s"):  # fmt: skip
            assert shown in text, (shown, text)
        clock.now += 1
        answers[1] = Answer(STATUS)
        assert view.refresh() == ["node 4 restarted: pid 200 (restart 1)", "node 1 answers again"]
        assert "starting" in _text(view)  # the new process refuses until it listens: not a fault
        assert view.statuses == [STATUS] * 5  # the last status of each, for the summary
    finally:
        view.close()


def test_a_bug_in_polling_costs_its_row_not_the_view(tmp_path: Path) -> None:
    supervisor, _, _ = supervised(tmp_path, 2)
    members = [NetworkMember(tmp_path / f"node{i}", b"", 1, 2, 3, 4) for i in range(2)]

    def probe(index: int) -> Answer:
        if index == 1:
            raise KeyError("result")
        return Answer(STATUS)

    view = LiveView(members, probe, supervisor)
    try:
        view.refresh()
        assert view.answers[1] == Answer(None, Problem.ERROR, "polling failed: KeyError: 'result'")
        assert "polling failed" in _text(view)
    finally:
        view.close()


def _text(view: LiveView) -> str:
    console = Console(file=io.StringIO(), width=400)
    console.print(view.table(time.monotonic()))
    return cast(io.StringIO, console.file).getvalue()


# -- probing a node's status ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "problem", "reason"),
    [
        (b'{"jsonrpc": "2.0", "id": 1, "result": [1]}\n', Problem.MALFORMED, "a JSON list, not an object"),
        (b'{"jsonrpc": "2.0", "id": 1, "result": {"height": 1}}\n', Problem.MALFORMED,
         "final_height missing or of the wrong type"),
        (b'{"jsonrpc": "2.0", "id": 1, "result": {"height": true}}\n', Problem.MALFORMED,
         "height missing or of the wrong type"),
        (b'{"jsonrpc": "2.0", "id": 1}\n', Problem.MALFORMED, "neither result and error"),
        (b"garbage\n", Problem.MALFORMED, "not valid JSON"),
        (b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "boom"}}\n', Problem.ERROR,
         "error -32603 from 127.0.0.1:"),
    ],
)  # fmt: skip
def test_probe_status_names_what_a_node_answered(reply: bytes, problem: Problem, reason: str) -> None:
    with fake_admin(sends(reply)) as (_, port):
        answer = probe_status(NetworkMember(Path(), b"", 0, port, 0, 0), timeout=2.0)
    assert answer.status is None and answer.problem is problem and reason in answer.reason


def test_probe_status_of_a_silent_or_absent_node() -> None:
    with fake_admin(stalls) as (_, port):
        assert probe_status(NetworkMember(Path(), b"", 0, port, 0, 0), timeout=0.3).problem is Problem.TIMEOUT
    assert probe_status(NetworkMember(Path(), b"", 0, port, 0, 0), timeout=0.3).problem is Problem.REFUSED
    good = (
        b'{"jsonrpc": "2.0", "id": 1, "result": '
        + repr(STATUS).replace("'", '"').replace("None", "null").encode()
    )
    with fake_admin(sends(good + b"}\n")) as (_, port):
        assert probe_status(NetworkMember(Path(), b"", 0, port, 0, 0)) == Answer(STATUS)


# -- the real command -----------------------------------------------------------------------------------


def test_devnet_restarts_a_killed_node_and_shows_a_stopped_one(tmp_path: Path) -> None:
    """Three node processes (too few for blocks: the test is about the processes, not the chain)."""
    folder = tmp_path / "devnet"
    members = write_testnet(
        folder, 3, base_port=free_port_block(3 * PORTS_PER_NODE), seed="devnet", sync_writes=False
    )
    devnet = subprocess.Popen(
        [sys.executable, "-m", "appchain.cli", "devnet", "--home", str(folder), "--seconds", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    output = devnet.stdout
    assert output is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(output.readline, "")), daemon=True)
    reader.start()
    pids: list[int] = []
    stopped: int | None = None
    try:
        wait_for("every node to answer", lambda: all(poll_status(m) for m in members), 60)
        pids = [cast(dict[str, Any], poll_status(m))["pid"] for m in members]
        os.kill(pids[1], signal.SIGKILL)
        os.kill(pids[2], signal.SIGSTOP)
        stopped = pids[2]

        def printed(start: str) -> str:
            """The first line the devnet printed (after its time stamp) that starts so; or ''."""
            return next((line.split(" s  ", 1)[1] for line in list(lines) if f" s  {start}" in line), "")

        killed = f"node 1 (pid {pids[1]}) was killed by SIGKILL (exit code -9) after "
        wait_for("the devnet to report the kill", lambda: printed(killed) != "", 30)
        assert "; last log line: 20" in printed(killed) and printed(killed).endswith("; restarting in 1 s\n")
        wait_for("the devnet to show the stopped node", lambda: printed(f"node 2 (pid {pids[2]})") != "", 30)
        assert printed(f"node 2 (pid {pids[2]})") == (
            f"node 2 (pid {pids[2]}) not answering: the node at 127.0.0.1:{members[2].admin_port} "
            "did not answer within 0.5 s\n"
        )
        wait_for("the restart", lambda: printed("node 1 restarted") != "", 30)
        new_pid = int(printed("node 1 restarted").split("pid ")[1].split(" ")[0])
        assert new_pid not in pids
        pids.append(new_pid)
        wait_for(
            "the restarted node to answer", lambda: (poll_status(members[1]) or {}).get("pid") == new_pid, 60
        )
        assert devnet.poll() is None  # the devnet kept running through both
        os.kill(stopped, signal.SIGCONT)
        stopped = None
        wait_for("node 2 to answer again", lambda: printed("node 2 answers again") != "", 30)
        devnet.send_signal(signal.SIGINT)  # as Ctrl-C: the devnet stops every node it runs
        devnet.wait(timeout=60)
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        if devnet.poll() is None:
            devnet.kill()
            devnet.wait()
        reader.join(timeout=10)
        for pid in pids:  # whatever is left of ours, by pid (only after a failure above)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert devnet.returncode == 1  # three nodes make no block: "no block became final"
    printed_all = "".join(lines)
    assert (
        "interrupted: stopped 3 node processes" in printed_all
        and "node 1 was restarted 1 time" in printed_all
    )
    for pid in pids:  # the devnet stopped and reaped every node, the restarted one too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
