"""The default devnet under outages: does finality keep growing while nodes come and go?

Writes the network ``make devnet`` runs (12 nodes, devnet parameters and Pulse timing, 127.0.0.1),
starts one ``appchain start`` per node, and then, for ``--minutes``: every ``--every`` seconds
kills one node picked at random (SIGKILL, any node but one already down) and starts it again
``--down`` seconds later. Every second it reads each answering node's final height.

It prints, at the end:

- the final height at the start and the end of the outages, and the longest stall of finality
  (the longest time during which no node's final height grew), with when it happened;
- the kills and restarts, and how long each restarted node took to reach the network's final
  height again;
- the history checker's verdict over every node's journal (:mod:`appchain.lab.checker`): safety
  violations, double signs, diverging roots.

Before PROTOCOL.md §4a, the first decommission of a killed node left 11 active nodes, fewer than
Pulse's 12, and the chain stopped for good; now it must go on all along.

Run: ``python -m bench.outage [--minutes 10] [--every 60] [--down 60] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from appchain.lab.checker import check_histories
from appchain.lab.testnet import (
    DEVNET_TIMING,
    PORTS_PER_NODE,
    poll_status,
    start_process,
    stop_processes,
    write_testnet,
)

NODES = 12


def free_base_port(count: int) -> int:
    import socket

    for base in range(30000, 60000, 500):
        try:
            sockets = []
            for port in range(base, base + count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sockets.append(sock)
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise RuntimeError("no free block of ports")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between two kills")
    parser.add_argument("--down", type=float, default=60.0, help="seconds a killed node stays down")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="outage-"))
    members = write_testnet(
        folder / "net", NODES, base_port=free_base_port(PORTS_PER_NODE * NODES), seed=f"outage{args.seed}"
    )
    processes: dict[int, subprocess.Popen[bytes]] = {i: start_process(m.home) for i, m in enumerate(members)}
    print(
        f"{NODES} nodes in {folder}; round timeout {DEVNET_TIMING['round_timeout_ms']} ms; seed {args.seed}"
    )
    try:
        started = time.monotonic()
        while max((s or {}).get("final_height", 0) for s in map(poll_status, members)) < 4:
            if time.monotonic() - started > 180:
                sys.exit("no final block within 180 s")
            time.sleep(1)
        print(f"first final block after {time.monotonic() - started:.0f} s; outages begin")
        down: dict[int, float] = {}
        kills: list[tuple[float, int]] = []
        restarts: list[tuple[float, int]] = []
        caught_up: dict[tuple[float, int], float] = {}
        best, best_at = 0, time.monotonic()
        stall, stall_between = 0.0, (0.0, 0.0)
        begin = time.monotonic()
        first_final = None
        next_kill = begin
        while (now := time.monotonic()) - begin < args.minutes * 60:
            if now >= next_kill:
                victim = rng.choice([i for i in range(NODES) if i not in down])
                processes[victim].kill()
                processes[victim].wait()
                down[victim] = now + args.down
                kills.append((now - begin, victim))
                print(f"{now - begin:6.0f} s  killed node {victim}", flush=True)
                next_kill += args.every
            for index, until in list(down.items()):
                if now >= until:
                    processes[index] = start_process(members[index].home)
                    del down[index]
                    restarts.append((now - begin, index))
                    print(f"{now - begin:6.0f} s  started node {index} again", flush=True)
            finals = {i: s["final_height"] for i, m in enumerate(members) if (s := poll_status(m))}
            top = max(finals.values(), default=0)
            if first_final is None:
                first_final = top
            if top > best:
                if now - best_at > stall:
                    stall, stall_between = now - best_at, (best_at - begin, now - begin)
                best, best_at = top, now
            for when, index in restarts:
                if (when, index) not in caught_up and finals.get(index, -1) >= top:
                    caught_up[(when, index)] = now - begin - when
            time.sleep(1.0)
        end = time.monotonic()
        if end - best_at > stall:
            stall, stall_between = end - best_at, (best_at - begin, end - begin)
        print()
        print(f"final height {first_final} -> {best} over {args.minutes:g} minutes of outages")
        print(
            f"longest stall of finality: {stall:.1f} s"
            f" (from {stall_between[0]:.0f} s to {stall_between[1]:.0f} s)"
        )
        print(f"kills: {len(kills)}, restarts: {len(restarts)}")
        for (when, index), seconds in sorted(caught_up.items()):
            print(f"  node {index} started at {when:.0f} s: at the final height {seconds:.0f} s later")
    finally:
        stop_processes(list(processes.values()))
    report = check_histories([m.home for m in members])
    print(
        f"history: {report.final_records} final records up to height {report.highest_final}; "
        f"safety violations {len(report.safety_violations)}, double signs {len(report.double_signs)}, "
        f"diverging roots {len(report.diverging_roots)}"
    )


if __name__ == "__main__":
    main()
