"""``appchain devnet`` (``make devnet``): a local network of real node processes, watched live.

It creates a testnet folder when there is none (:func:`appchain.testnet.write_testnet`: a fresh
genesis whose time is now, one home per node with its keys and every other node as a peer),
starts one ``appchain start`` process per node on 127.0.0.1, and shows a live table, refreshed
every second from each node's admin endpoint: height, final height, Pulse round, peers,
mempool, sync state and the node's service-node status. Ctrl-C (or ``--seconds``) stops every
process (SIGTERM, then SIGKILL after a grace period) and prints what the network did: the final
height every node reached, and whether their final roots agree.

Each node logs to ``<folder>/node<i>/node.log``.

``--netns`` (root only) runs each node in its own Linux network namespace with its own address,
all joined by a bridge (:mod:`appchain.netns`), as if on separate hosts; the view polls each
node's admin endpoint inside its namespace, and on exit every process and namespace of the run
is removed. A folder for ``--netns`` is written with the namespaces' addresses, so it is used
with ``--netns`` only.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from appchain.netns import NetnsTestnet
from appchain.testnet import (
    DEFAULT_BASE_PORT,
    NetworkMember,
    poll_status,
    read_testnet,
    start_process,
    stop_processes,
    write_testnet,
)

EXIT_NO_PROGRESS = 1
Status = dict[str, Any] | None


def render(
    members: list[NetworkMember],
    statuses: list[Status],
    codes: list[int | None],
    started: float,
    where: str = "on 127.0.0.1",
) -> Table:
    elapsed = time.monotonic() - started
    finals = [s["final_height"] for s in statuses if s]
    table = Table(
        title=f"devnet: {len(members)} node processes {where}, {elapsed:.0f} s"
        + (f", final height {min(finals)}..{max(finals)}" if finals else ", starting"),
        caption=f"logs: {members[0].home.parent}/node<i>/node.log; Ctrl-C stops every node",
    )
    for column in ("node", "height", "final", "round", "peers", "mempool", "sync", "service node"):
        table.add_column(
            column, justify="right" if column in ("height", "final", "round", "peers", "mempool") else "left"
        )
    for index, (status, code) in enumerate(zip(statuses, codes, strict=True)):
        if code is not None:
            table.add_row(str(index), "-", "-", "-", "-", "-", f"[red]exited {code}[/red]", "-")
        elif status is None:
            table.add_row(str(index), "…", "…", "…", "…", "…", "starting", "…")
        else:
            node = status.get("service_node") or {}
            table.add_row(
                str(index),
                str(status["height"]),
                str(status["final_height"]),
                "-" if status["round"] is None else str(status["round"]),
                str(status["peers"]),
                str(status["mempool"]),
                status["sync"],
                f"{node.get('status', '-')}, credit {node.get('credit', '-')}" if node else "-",
            )
    return table


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
    processes = [start_process(member.home) for member in members]
    console.print(f"started {len(processes)} node processes: pids {', '.join(str(p.pid) for p in processes)}")
    view = LiveView(members, lambda: [poll_status(m, timeout=0.5) for m in members], processes)
    try:
        interrupted = view.run(console, seconds)
    finally:
        view.last_poll()
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
        view = LiveView(
            net.members,
            lambda: net.statuses(timeout=0.5),
            processes,
            where=f"in namespaces on {spaces.subnet}",
        )
        try:
            interrupted = view.run(console, seconds)
        finally:
            view.last_poll()
    code = view.summary(console, interrupted)
    console.print(
        f"removed namespaces {spaces.bridge} and {spaces.node(0)} … {spaces.node(spaces.nodes - 1)}"
    )
    return code


class LiveView:
    """The live table, refreshed every second, and the summary once the nodes are stopped."""

    def __init__(
        self,
        members: list[NetworkMember],
        poll: Callable[[], list[Status]],
        processes: list[subprocess.Popen[bytes]],
        where: str = "on 127.0.0.1",
    ) -> None:
        self.members = members
        self.poll = poll
        self.processes = processes
        self.where = where
        self.statuses: list[Status] = [None] * len(members)

    def run(self, console: Console, seconds: float) -> bool:
        """Until ``seconds`` (0: Ctrl-C) or every process exited; True when interrupted."""
        started = time.monotonic()
        try:
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                while not seconds or time.monotonic() - started < seconds:
                    self.statuses = self.poll()
                    codes = [process.poll() for process in self.processes]
                    live.update(render(self.members, self.statuses, codes, started, self.where))
                    if all(code is not None for code in codes):
                        break
                    time.sleep(1.0)
        except KeyboardInterrupt:
            return True
        return False

    def last_poll(self) -> None:
        """The statuses just before the nodes stop (kept where a node no longer answers)."""
        self.statuses = [s or f for s, f in zip(self.poll(), self.statuses, strict=True)]

    def summary(self, console: Console, interrupted: bool) -> int:
        statuses = self.statuses
        console.print()
        console.print(
            ("interrupted: " if interrupted else "") + f"stopped {len(self.processes)} node processes"
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
