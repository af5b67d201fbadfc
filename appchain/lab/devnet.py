"""``appchain devnet`` (``make devnet``): a local network of real node processes, watched live.

It creates a testnet folder when there is none (:func:`appchain.lab.testnet.write_testnet`: a fresh
genesis whose time is now, one home per node with its keys and every other node as a peer),
starts one ``appchain start`` process per node on 127.0.0.1, and shows a live table, refreshed
every second from each node's admin endpoint: height, final height, Pulse round, peers,
mempool, sync state and the node's service-node status. Ctrl-C (or ``--seconds``) stops every
process (SIGTERM, then SIGKILL after a grace period) and prints what the network did: the final
height every node reached, and whether their final roots agree.

Each node logs to ``<folder>/node<i>/node.log``.

The devnet outlives its nodes' faults. A node process that exits is reported (its exit code and
the last line of its log) and started again after a backoff (:class:`Supervisor`: 1 s, doubling
up to 30 s, back to 1 s once a process has stayed up a minute). Each node's row says what its
admin endpoint gave (:func:`appchain.lab.testnet.probe_status`, all polled at once, each within
half a second): its status, or that it is starting, not answering (a stopped or hung process),
answered an error, or answered something malformed. Exits, restarts and a node that stops or
resumes answering are also printed as lines above the table, so they stay on screen.

``--netns`` (root only) runs each node in its own Linux network namespace with its own address,
all joined by a bridge (:mod:`appchain.lab.netns`), as if on separate hosts; the view polls each
node's admin endpoint inside its namespace, and on exit every process and namespace of the run
is removed. A folder for ``--netns`` is written with the namespaces' addresses, so it is used
with ``--netns`` only.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from appchain.lab.netns import NetnsTestnet
from appchain.lab.testnet import (
    DEFAULT_BASE_PORT,
    Answer,
    NetworkMember,
    Problem,
    probe_status,
    read_testnet,
    start_process,
    stop_processes,
    write_testnet,
)

EXIT_NO_PROGRESS = 1
Status = dict[str, Any] | None
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STEADY_SECONDS = 60.0
"""A process that stayed up this long before it exited is restarted after :data:`FIRST_BACKOFF`
again: its earlier exits were a different episode."""
POLL_TIMEOUT = 0.5
LOG_LINE_CHARS = 200


def describe_exit(code: int) -> str:
    """``exited with code 3`` or ``was killed by SIGKILL (exit code -9)``."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name} (exit code {code})"


def last_log_line(path: Path) -> str:
    """The last non-blank line of a node's log (its end read only), clipped; or why there is none."""
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - 8192))
            tail = log.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc.strerror or exc})"
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    if not lines:
        return "(the log is empty)"
    line = lines[-1]
    return line if len(line) <= LOG_LINE_CHARS else line[: LOG_LINE_CHARS - 1] + "…"


@dataclass
class NodeProcess:
    """One node's process under the :class:`Supervisor`."""

    process: subprocess.Popen[bytes]
    started: float
    backoff: float = FIRST_BACKOFF
    """The wait before the next restart."""
    restarts: int = 0
    exit_code: int | None = None
    """The last exit's code (kept after a restart, for the view)."""
    restart_at: float | None = None
    """When the process is started again; None while it runs."""

    @property
    def down(self) -> bool:
        return self.restart_at is not None


class Supervisor:
    """Keeps every node process running: notices one that exited, reports it, and starts it again
    after a backoff (first, doubling up to most; back to first once a process stayed up steady
    seconds). ``start(i)`` starts node ``i``'s process; ``log_path(i)`` is its log."""

    def __init__(
        self,
        processes: list[subprocess.Popen[bytes]],
        start: Callable[[int], subprocess.Popen[bytes]],
        log_path: Callable[[int], Path],
        *,
        clock: Callable[[], float] = time.monotonic,
        first: float = FIRST_BACKOFF,
        most: float = MAX_BACKOFF,
        steady: float = STEADY_SECONDS,
    ) -> None:
        self.start = start
        self.log_path = log_path
        self.clock = clock
        self.first, self.most, self.steady = first, most, steady
        now = clock()
        self.nodes = [NodeProcess(process, now, backoff=first) for process in processes]

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The current process of every node (an exited one until it is restarted)."""
        return [node.process for node in self.nodes]

    def check(self) -> list[str]:
        """Notice exits and start what is due; returns a line for each."""
        now = self.clock()
        events: list[str] = []
        for index, node in enumerate(self.nodes):
            if node.restart_at is None:
                code = node.process.poll()
                if code is None:
                    continue
                up = now - node.started
                if up >= self.steady:
                    node.backoff = self.first
                node.exit_code = code
                node.restart_at = now + node.backoff
                events.append(
                    f"node {index} (pid {node.process.pid}) {describe_exit(code)} after {up:.0f} s; "
                    f"last log line: {last_log_line(self.log_path(index))}; "
                    f"restarting in {node.backoff:g} s"
                )
                node.backoff = min(node.backoff * 2, self.most)
            elif now >= node.restart_at:
                try:
                    process = self.start(index)
                except OSError as exc:
                    node.restart_at = now + node.backoff
                    events.append(
                        f"node {index} could not be started: {exc.strerror or exc}; "
                        f"trying again in {node.backoff:g} s"
                    )
                    node.backoff = min(node.backoff * 2, self.most)
                    continue
                node.process, node.started, node.restart_at = process, now, None
                node.restarts += 1
                events.append(f"node {index} restarted: pid {process.pid} (restart {node.restarts})")
        return events


def render(
    members: list[NetworkMember],
    nodes: list[NodeProcess],
    answers: list[Answer],
    answered: list[bool],
    started: float,
    where: str = "on 127.0.0.1",
    now: float | None = None,
) -> Table:
    """The live table: a row per node, its status or what stands in its place. ``now``: the
    supervisor's clock, for the time left before a restart (default: the monotonic clock)."""
    now = time.monotonic() if now is None else now
    finals = [a.status["final_height"] for a in answers if a.status]
    caption = f"logs: {members[0].home.parent}/node<i>/node.log; Ctrl-C stops every node"
    why = explain_stall(answers)
    if why:
        caption = "\n".join(f"[yellow]{escape(line)}[/yellow]" for line in why) + "\n" + caption
    table = Table(
        title=f"devnet: {len(members)} node processes {where}, {time.monotonic() - started:.0f} s"
        + (f", final height {min(finals)}..{max(finals)}" if finals else ", starting"),
        caption=caption,
    )
    numbers = ("pid", "height", "final", "round", "peers", "mempool", "restarts")
    for column in (
        "node",
        "pid",
        "height",
        "final",
        "round",
        "peers",
        "mempool",
        "state",
        "service node",
        "restarts",
    ):
        table.add_column(column, justify="right" if column in numbers else "left")
    for index, (node, answer, once) in enumerate(zip(nodes, answers, answered, strict=True)):
        restarts = str(node.restarts)
        if node.restart_at is not None:
            assert node.exit_code is not None
            wait = max(0.0, node.restart_at - now)
            state = f"[red]{describe_exit(node.exit_code)}, restart in {wait:.0f} s[/red]"
            table.add_row(str(index), "-", "-", "-", "-", "-", "-", state, "-", restarts)
            continue
        pid = str(node.process.pid)
        status = answer.status
        if status is None:
            table.add_row(
                str(index), pid, "…", "…", "…", "…", "…", _problem_cell(answer, once), "…", restarts
            )
            continue
        service = status.get("service_node") or {}
        table.add_row(
            str(index),
            pid,
            str(status["height"]),
            str(status["final_height"]),
            "-" if status["round"] is None else str(status["round"]),
            str(status["peers"]),
            str(status["mempool"]),
            escape(status["sync"]),
            escape(f"{service.get('status', '-')}, credit {service.get('credit', '-')}") if service else "-",
            restarts,
        )
    return table


def explain_stall(answers: list[Answer]) -> list[str]:
    """Why the chain is not moving, when it is not (PROTOCOL.md §4a "Say why"): what the most
    advanced node that answers says of its blocks and its finality (``status.progress``)."""
    statuses = [a.status for a in answers if a.status and isinstance(a.status.get("progress"), dict)]
    if not statuses:
        return []
    ahead = max(statuses, key=lambda status: (status["height"], status["final_height"]))
    progress = ahead["progress"]
    lines = []
    if progress.get("blocks"):
        lines.append(f"no new block: {progress['blocks']}")
    if progress.get("finality"):
        lines.append(f"finality stalled: {progress['finality']}")
    return lines


def _problem_cell(answer: Answer, answered_before: bool) -> str:
    if answer.problem is Problem.REFUSED and not answered_before:
        return "starting"
    color = "yellow" if answer.problem in (Problem.REFUSED, Problem.TIMEOUT) else "red"
    kind = answer.problem.value if answer.problem is not None else "no status"
    reason = answer.reason.split(": ", 1)[-1] if answer.problem is not Problem.ERROR else answer.reason
    return f"[{color}]{escape(kind)}: {escape(reason[:80])}[/{color}]"


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the devnet as Ctrl-C does (every node stopped), not the devnet alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_devnet(
    folder: Path,
    nodes: int = 12,
    *,
    base_port: int = DEFAULT_BASE_PORT,
    seconds: float = 0.0,
    netns: bool = False,
) -> int:
    console = Console(soft_wrap=True)
    if netns:
        return _run_in_namespaces(console, folder, nodes, base_port, seconds)
    if not (folder / "genesis.json").exists():
        members = write_testnet(folder, nodes, base_port=base_port)
        console.print(f"created a {nodes}-node testnet in {folder} (genesis {folder / 'genesis.json'})")
    else:
        members = read_testnet(folder)
        console.print(f"using the testnet in {folder} ({len(members)} nodes)")
    with _sigterm_as_interrupt():
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for member in members:  # one by one: if a start fails, those started are stopped
                processes.append(start_process(member.home))
            console.print(
                f"started {len(processes)} node processes: pids {', '.join(str(p.pid) for p in processes)}"
            )
            supervisor = Supervisor(
                processes,
                lambda index: start_process(members[index].home),
                lambda index: members[index].home / "node.log",
            )
            view = LiveView(members, lambda index: probe_status(members[index], POLL_TIMEOUT), supervisor)
            try:
                interrupted = view.run(console, seconds)
            finally:
                view.last_poll()
                view.close()
                processes = supervisor.processes  # the restarted ones too
        finally:
            stop_processes(processes)
    return view.summary(console, interrupted)


def _run_in_namespaces(console: Console, folder: Path, nodes: int, base_port: int, seconds: float) -> int:
    new = not (folder / "genesis.json").exists()
    with NetnsTestnet(folder, nodes, base_port=base_port, state_sync=False) as net:
        spaces = net.namespaces
        if new:
            console.print(f"created a {nodes}-node testnet in {folder} for network namespaces")
        else:
            console.print(f"using the testnet in {folder} ({len(net.members)} nodes)")
        console.print(
            f"namespaces {spaces.node(0)} … {spaces.node(spaces.nodes - 1)} and bridge {spaces.bridge}, "
            f"subnet {spaces.subnet}"
        )
        processes = [net.processes[i] for i in range(len(net.members))]
        console.print(
            f"started {len(processes)} node processes: pids {', '.join(str(p.pid) for p in processes)}"
        )
        supervisor = Supervisor(processes, net.start, lambda index: net.members[index].home / "node.log")
        view = LiveView(
            net.members,
            lambda index: net.probe(index, POLL_TIMEOUT),
            supervisor,
            where=f"in namespaces on {spaces.subnet}",
        )
        try:
            interrupted = view.run(console, seconds)
        finally:
            view.last_poll()
            view.close()
    code = view.summary(console, interrupted)
    console.print(
        f"removed namespaces {spaces.bridge} and {spaces.node(0)} … {spaces.node(spaces.nodes - 1)}"
    )
    return code


class LiveView:
    """The live table, refreshed every second, and the summary once the nodes are stopped.

    Each refresh lets the :class:`Supervisor` restart what exited, then asks every node at once
    (``probe(i)``, in threads); nothing a node does ends the view. A failure of the polling code
    itself costs that node's row, not the devnet (the view's one boundary)."""

    def __init__(
        self,
        members: list[NetworkMember],
        probe: Callable[[int], Answer],
        supervisor: Supervisor,
        where: str = "on 127.0.0.1",
    ) -> None:
        self.members = members
        self.probe = probe
        self.supervisor = supervisor
        self.where = where
        count = len(members)
        self.answers = [Answer(None, Problem.REFUSED, "starting")] * count
        self.statuses: list[Status] = [None] * count
        """Each node's last status (kept while it does not answer), for the summary."""
        self.answered = [False] * count
        """Whether the node's current process has answered yet (else a refusal means starting)."""
        self.silent = [False] * count
        """Whether the node gives no status for another reason than starting (announced once, and
        again when it answers)."""
        self._pids = [process.pid for process in supervisor.processes]
        self._pool = ThreadPoolExecutor(max_workers=min(32, count), thread_name_prefix="devnet-poll")

    def _probe_safely(self, index: int) -> Answer:
        try:
            return self.probe(index)
        except Exception as exc:  # a bug in polling costs this row, not the devnet
            return Answer(None, Problem.ERROR, f"polling failed: {type(exc).__name__}: {exc}")

    def poll(self) -> list[Answer]:
        return list(self._pool.map(self._probe_safely, range(len(self.members))))

    def refresh(self) -> list[str]:
        """One turn: restarts and exits, then every node's answer; returns the lines to print."""
        events = self.supervisor.check()
        self.answers = self.poll()
        for index, (node, answer) in enumerate(zip(self.supervisor.nodes, self.answers, strict=True)):
            if node.process.pid != self._pids[index]:  # a new process: it has not answered yet
                self._pids[index] = node.process.pid
                self.answered[index] = self.silent[index] = False
            if node.down:
                continue
            if answer.status is not None:
                self.statuses[index] = answer.status
                if self.silent[index]:
                    events.append(f"node {index} answers again")
                self.answered[index], self.silent[index] = True, False
                continue
            starting = answer.problem is Problem.REFUSED and not self.answered[index]
            if not starting and not self.silent[index] and node.process.poll() is None:
                assert answer.problem is not None
                events.append(
                    f"node {index} (pid {node.process.pid}) {answer.problem.value}: {answer.reason}"
                )
                self.silent[index] = True
        return events

    def table(self, started: float) -> Table:
        nodes, clock = self.supervisor.nodes, self.supervisor.clock
        return render(self.members, nodes, self.answers, self.answered, started, self.where, clock())

    def run(self, console: Console, seconds: float) -> bool:
        """Until ``seconds`` (0: Ctrl-C or SIGTERM); True when interrupted."""
        started = time.monotonic()
        try:
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                while not seconds or time.monotonic() - started < seconds:
                    for event in self.refresh():
                        stamp = f"{time.monotonic() - started:5.0f} s  "
                        live.console.print(stamp + event, markup=False, highlight=False)
                    live.update(self.table(started))
                    time.sleep(1.0)
        except KeyboardInterrupt:
            return True
        return False

    def last_poll(self) -> None:
        """The statuses just before the nodes stop (kept where a node no longer answers)."""
        for index, answer in enumerate(self.poll()):
            if answer.status is not None:
                self.statuses[index] = answer.status

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def summary(self, console: Console, interrupted: bool) -> int:
        statuses = self.statuses
        console.print()
        console.print(
            ("interrupted: " if interrupted else "") + f"stopped {len(self.supervisor.nodes)} node processes"
        )
        for index, node in enumerate(self.supervisor.nodes):
            if node.restarts:
                console.print(
                    f"node {index} was restarted {node.restarts} time{'s' if node.restarts > 1 else ''}"
                )
        reached = [s["final_height"] for s in statuses if s]
        roots = {(s["final_height"], s["final_root"]) for s in statuses if s}
        by_height: dict[int, set[str]] = {}
        for height, root in roots:
            by_height.setdefault(height, set()).add(root)
        agree = all(len(r) == 1 for r in by_height.values())
        if not reached or max(reached) == 0:
            console.print("[red]no block became final[/red]: see the node logs")
            return EXIT_NO_PROGRESS
        console.print(
            f"final heights {min(reached)}..{max(reached)}; final roots agree at every height: {agree}"
        )
        return 0 if agree else EXIT_NO_PROGRESS


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".devnet")
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    sys.exit(run_devnet(folder, seconds=seconds))


if __name__ == "__main__":
    main()
