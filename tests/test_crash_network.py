"""Crash loops: one node of a real network killed with SIGKILL at random moments, and restarted.

Six node processes on 127.0.0.1 (``appchain start``, devnet Pulse timings): while the victim is
down the other five make blocks (a quorum of 1 + 5 needs 4 validators, PROTOCOL.md §4a; before
it, Pulse needed 12 active nodes and this loop ran 13); the genesis gives every node the largest
decommission credit, so a victim killed a hundred times is decommissioned at worst, never
deregistered. Every node writes
a snapshot every 4 blocks (at each checkpoint, so peers can serve them to a state sync).

One node, the victim, is killed ``APPCHAIN_CRASH_LOOP_KILLS`` times (CI: one per phase; ``make
soak``: 100) at random moments drawn from a seeded RNG (``APPCHAIN_CRASH_LOOP_SEED``, printed),
cycling through the phases:

``append``     running normally, producing, signing and appending blocks: a uniform moment
               within two block times;
``messages``   a client stores messages to it through the storage RPC as fast as it answers
               (three threads); every store it acknowledged (its own success in the reply) is
               recorded;
``snapshot``   around the write of a block that carries a snapshot: a moment drawn around when
               that block is due;
``sync``       restarted after being down long enough to be behind (3–5 s): killed after one
               of the blocks it applies while catching up;
``statesync``  a fresh home (its data removed, block 0 only, state sync on with a small gap):
               killed while it joins by state sync.

After every kill, on a copy of its data taken while it is down (the node restarts on the
original, exactly as the kill left it): the chain opens (the start-up handshake: snapshot and
tail replay), its root equals :func:`replay_from_genesis` of its blocks, every block it had
reported final (recorded through its JSON-RPC while it ran) is there with the same hash, and
every message it had acknowledged is in its message store. The restarted process logs no
``fatal:``/``error:`` line and no traceback, stays up, and rejoins: its height reaches the
network's and it signs again (when active: a decommissioned node is in no quorum). After a
rejoin every acknowledged message is readable from it. At the end every acknowledged message is
readable from the victim (a fresh home pulls them back from its swarm), the histories of every
node show no double sign and no two final blocks at one height, and the victim's home replays
from genesis to the root it holds, on the network's blocks.

A decommission of the victim (seen by node 0) takes it out of its swarm: it hands its messages
over and drops them, by design; the messages it acknowledged in a phase during or before which it
was decommissioned are then checked only at the end (when it is back and has pulled them again).
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest

from appchain.client.messages import ClientError, SessionAccount, StorageClient
from appchain.client.messages import Node as StorageNode
from appchain.home.chain import Chain, replay_from_genesis
from appchain.home.home import Home
from appchain.home.tls import client_context
from appchain.lab.checker import check_histories
from appchain.lab.testnet import (
    PORTS_PER_NODE,
    NetworkMember,
    poll_status,
    start_process,
    stop_processes,
    write_testnet,
)
from appchain.messaging.store import MessageStore, hash_bytes
from genesis.presets import DEVNET
from state.block import compute_block_hash
from state.crypto import ed25519
from tests.test_network import free_port_block, with_node_logs
from tests.test_statesync_network import configure

KILLS = int(os.environ.get("APPCHAIN_CRASH_LOOP_KILLS", "5"))
SEED = int(os.environ.get("APPCHAIN_CRASH_LOOP_SEED", "2026"))
NODES = 6
PHASES = ("append", "messages", "snapshot", "sync", "statesync")
SNAPSHOT_INTERVAL = 4
VICTIM_SNAPSHOT_INTERVAL = 2
BLOCK_TIME = DEVNET.block_time / 1000  # seconds (the parameter is in ms)
STORERS = 3
APPLIED = re.compile(r" block applied .*\bheight=(\d+) ")
FAILURE = re.compile(r"^(fatal:|error:|Traceback)")
Landed = Callable[[int], "str | None"]
"""How a kill landed (a note for the tally), from the tip of the home it left."""


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)
    corrupt_restarts: int = 0
    lost_blocks: int = 0
    lost_messages: int = 0
    final_blocks: set[tuple[int, int]] = field(default_factory=set)
    """(home, height) of every block the victim reported final (a fresh home is a new one)."""
    block_checks: int = 0
    acknowledged: int = 0
    message_checks: int = 0
    replays: int = 0
    roots_compared: int = 0
    rejoin_seconds: list[float] = field(default_factory=list)
    decommissions: int = 0
    notes: Counter[str] = field(default_factory=Counter)
    """How kills landed: before or after the snapshot block, during catch-up, mid state sync."""

    def summary(self) -> str:
        worst = max(self.rejoin_seconds, default=0.0)
        return (
            f"kills {sum(self.kills.values())} by phase {dict(self.kills)}; corrupt restarts "
            f"{self.corrupt_restarts}; lost blocks {self.lost_blocks} ({len(self.final_blocks)} final blocks "
            f"recorded, {self.block_checks} checks); lost messages {self.lost_messages} "
            f"({self.acknowledged} acknowledged, {self.message_checks} checks); replays from genesis "
            f"{self.replays}; roots reported after a restart equal to the replay's {self.roots_compared}; "
            f"max time to rejoin {worst:.1f} s over {len(self.rejoin_seconds)} rejoins; decommissions "
            f"{self.decommissions}; landed {dict(self.notes)}"
        )


class Tip(NamedTuple):
    """The tip a kill left: height, block hash, and the root a replay from genesis reaches."""

    height: int
    block_hash: bytes
    root: bytes


class Acknowledged(NamedTuple):
    """A store the victim acknowledged: whose, on which of its homes, after how many decommissions."""

    account: SessionAccount
    home: int
    decommissions: int


class LogTail:
    """The lines a node process appends to its log, from where it was when the process started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.start = self.offset
        self._partial = b""

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in complete]

    def since_start(self) -> list[str]:
        with self.path.open("rb") as log:
            log.seek(self.start)
            return log.read().decode(errors="replace").splitlines()


def json_rpc(member: NetworkMember, method: str, params: dict[str, Any], timeout: float = 5.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{member.rpc_port}/json_rpc", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())["result"]


class FinalRecorder(threading.Thread):
    """Polls the victim for the blocks it reports final (hash by height), and node 0 for whether
    the victim is still active (a decommission hands its messages over)."""

    def __init__(self, victim: NetworkMember, watcher: NetworkMember, on_decommission: Callable[[], None]):
        super().__init__(daemon=True)
        self.victim, self.watcher = victim, watcher
        self.on_decommission = on_decommission
        self.final: dict[int, str] = {}
        self.lock = threading.Lock()
        self.generation = 0
        self.stopping = threading.Event()
        self.active = True
        self.floor: int | None = 1
        """The lowest height to record (None: from the first final height reported)."""

    def reset(self) -> None:
        """A fresh home: what the old one reported is gone with it, by design (and it holds no
        block below the snapshot it joins at)."""
        with self.lock:
            self.final = {}
            self.generation += 1
            self.floor = None

    def snapshot(self) -> dict[int, str]:
        with self.lock:
            return dict(self.final)

    def run(self) -> None:
        while not self.stopping.wait(0.4):
            self._watch_activity()
            self._record_finals()

    def _watch_activity(self) -> None:
        try:
            states = json_rpc(
                self.watcher,
                "get_service_nodes",
                {"service_node_pubkeys": [self.victim.node_key.hex()], "fields": ["active"]},
            )["service_node_states"]
        except (OSError, http.client.HTTPException, KeyError, ValueError):
            return
        active = bool(states and states[0]["active"])
        if self.active and not active:
            self.on_decommission()
        self.active = active

    def _record_finals(self) -> None:
        with self.lock:
            generation, known, floor = self.generation, max(self.final, default=None), self.floor
        try:
            final = json_rpc(self.victim, "get_info", {})["immutable_height"]
            start = known + 1 if known is not None else final if floor is None else floor
            heights = list(range(start, final + 1))[:1000]
            if not heights:
                return
            headers = json_rpc(self.victim, "get_block_header_by_height", {"heights": heights})[
                "block_headers"
            ]
        except (OSError, http.client.HTTPException, KeyError, ValueError):
            return  # down, or restarting
        with self.lock:
            if generation == self.generation:
                self.final.update({h["height"]: h["hash"] for h in headers if h["immutable"]})


class Storers:
    """Threads storing messages to the victim as fast as it answers; the hashes it acknowledged."""

    def __init__(self, victim: NetworkMember, accounts: list[SessionAccount], tag: str) -> None:
        self.node = StorageNode(victim.node_key, "127.0.0.1", victim.storage_port)
        self.client = StorageClient(f"http://127.0.0.1:{victim.rpc_port}")
        self.key = victim.node_key.hex()
        self.accounts = accounts
        self.tag = tag
        self.acknowledged: list[tuple[SessionAccount, str]] = []
        self.copies: list[int] = []
        """How many swarm members confirmed each acknowledged store (the victim's included)."""
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._store, args=(a,), daemon=True) for a in accounts]

    def __enter__(self) -> Storers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _store(self, account: SessionAccount) -> None:
        number = 0
        while not self.stopping.is_set():
            number += 1
            data = f"{self.tag} {account.session_id[:8]} {number}".encode()
            try:
                status, body = self.client.call_node(self.node, "store", account.store(data))
            except (ClientError, http.client.HTTPException):
                time.sleep(0.05)  # killed: no answer, so nothing acknowledged
                continue
            if status == 200 and isinstance(body, dict) and isinstance(body.get("swarm"), dict):
                mine = body["swarm"].get(self.key, {})
                if "hash" in mine and not mine.get("failed"):
                    self.acknowledged.append((account, mine["hash"]))
                    self.copies.append(sum(1 for answer in body["swarm"].values() if "hash" in answer))
            else:
                time.sleep(0.05)  # refused (not in the account's swarm yet, after a recommission)


def readable(member: NetworkMember, account: SessionAccount) -> set[str] | str:
    """The hashes ``member`` serves for ``account``, or why it does not answer with them."""
    client = StorageClient(f"http://127.0.0.1:{member.rpc_port}")
    node = StorageNode(member.node_key, "127.0.0.1", member.storage_port)
    hashes: set[str] = set()
    last = ""
    while True:
        try:
            status, body = client.call_node(node, "retrieve", account.retrieve(last_hash=last))
        except (ClientError, http.client.HTTPException) as exc:
            return str(exc)
        if status != 200:
            return f"HTTP {status}: {body}"
        hashes.update(m["hash"] for m in body["messages"])
        if not body.get("more") or not body["messages"]:
            return hashes
        last = body["messages"][-1]["hash"]


class CrashLoop:
    def __init__(self, members: list[NetworkMember], scratch: Path, seed: int) -> None:
        self.members = members
        self.victim = members[-1]
        self.reference = members[0]
        self.scratch = scratch
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.tail = LogTail(self.victim.home / "node.log")
        self.acknowledged: dict[str, Acknowledged] = {}
        """Every message the victim acknowledged, by hash (the current home's and earlier ones')."""
        self.accounts = [SessionAccount(ed25519.SigningKey(bytes([0x40 + i]) * 32)) for i in range(STORERS)]
        self.recorder = FinalRecorder(self.victim, self.reference, self._decommissioned)
        self.state_sync_seconds = 0.5
        """The longest join by state sync seen so far: kills in that phase are drawn within it."""
        self.behind = 0
        self.first_status: dict[str, Any] | None = None
        """The restarted victim's first answer to a status request."""

    def _decommissioned(self) -> None:
        self.tally.decommissions += 1

    def still_held(self, account: SessionAccount | None = None) -> set[str]:
        """The messages the victim acknowledged that its home must still hold: those of this home,
        unless it was decommissioned since (it hands them over and drops them then)."""
        return {
            text
            for text, ack in self.acknowledged.items()
            if ack.home == self.recorder.generation
            and ack.decommissions == self.tally.decommissions
            and account in (None, ack.account)
        }

    # -- processes ------------------------------------------------------------------------------

    def start_network(self) -> None:
        for index, member in enumerate(self.members):
            self.processes[index] = start_process(member.home)
        self.process = self.processes[len(self.members) - 1]
        self.wait("every node to answer", lambda: all(poll_status(m) for m in self.members), 180)
        self.wait("the victim to take part", self.rejoined, 120)
        self.recorder.start()
        # the first kill's check then has final blocks to look for, however slow the machine
        self.wait("the victim to report a final block", lambda: bool(self.recorder.snapshot()), 120)
        for account in self.accounts:
            swarm = json_post_storage(self.reference, "get_swarm", {"pubkey": account.session_id})
            assert self.victim.node_key.hex() in {s["pubkey_ed25519"] for s in swarm["snodes"]}

    def start_victim(self) -> float:
        self.tail = LogTail(self.victim.home / "node.log")
        self.first_status = None
        self.process = self.processes[len(self.members) - 1] = start_process(self.victim.home)
        return time.monotonic()

    def kill_victim(self, phase: str) -> None:
        assert self.process is not None
        self.check_alive()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.tally.kills[phase] += 1
        self.check_log_clean()

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            self.tally.corrupt_restarts += 1
            raise AssertionError(f"the victim exited with {self.process.returncode} after a restart")

    def check_log_clean(self) -> None:
        failures = [line for line in self.tail.since_start() if FAILURE.match(line)]
        if failures:
            self.tally.corrupt_restarts += 1
            raise AssertionError(f"the victim logged {failures[0]!r}")

    def stop_all(self) -> None:
        self.recorder.stopping.set()
        stop_processes(list(self.processes.values()))

    # -- waiting ----------------------------------------------------------------------------------

    def wait(self, what: str, condition: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process is not None and self.process.poll() is not None:
                self.check_alive()
            time.sleep(0.25)
        raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")

    def wait_line(self, pattern: re.Pattern[str], seconds: float) -> re.Match[str]:
        """The next line of the victim's log matching ``pattern`` (polled every 5 ms)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in self.tail.lines():
                found = pattern.search(line)
                if found:
                    return found
            self.check_alive()
            time.sleep(0.005)
        raise AssertionError(f"timed out after {seconds:.0f} s waiting for {pattern.pattern!r} in the log")

    def rejoined(self) -> bool:
        """Its height follows the network's, and it signs again when it is in quorums (active)."""
        mine, theirs = poll_status(self.victim), poll_status(self.reference)
        if self.first_status is None:
            self.first_status = mine
        if not mine or not theirs or mine["height"] < theirs["height"] - 1:
            return False
        active = (mine.get("service_node") or {}).get("status") == "active"
        return not active or mine["signed"] + mine["produced"] > 0

    def rejoin(self, started: float) -> None:
        self.wait("the restarted victim to rejoin", self.rejoined, 180)
        self.tally.rejoin_seconds.append(time.monotonic() - started)
        self.check_messages_readable()

    def wait_active(self) -> None:
        """The victim active at its tip and at node 0's (so no decommission is on its way)."""
        self.wait(
            "the victim to be active (in its swarm)",
            lambda: (
                self.recorder.active
                and ((poll_status(self.victim) or {}).get("service_node") or {}).get("status") == "active"
            ),
            240,
        )

    # -- the checks -----------------------------------------------------------------------------

    def check_crashed_home(self, kill: int) -> Tip:
        """Open a copy of the killed home's data as a restart does (the handshake), replay its
        blocks from genesis, look for every block it reported final and every message it
        acknowledged; returns the tip's height, hash and root."""
        copy = self.scratch / f"kill{kill}"
        home = Home(self.victim.home)
        shutil.copytree(home.db_path, copy / "chain")
        if home.messages_path.exists():  # (a node killed before it ever ran has none yet)
            shutil.copytree(home.messages_path, copy / "messages")
        genesis = home.load_genesis()
        try:
            chain = Chain.open(
                copy / "chain", genesis, snapshot_interval=VICTIM_SNAPSHOT_INTERVAL, sync=False
            )
        except Exception as exc:
            self.tally.corrupt_restarts += 1
            raise AssertionError(f"kill {kill}: the killed home does not open: {exc}") from exc
        with chain:
            tip = Tip(chain.height, chain.state.block_hash, chain.state.root)
            replayed = replay_from_genesis(chain.store, genesis)
            self.tally.replays += 1
            assert replayed.root == chain.state.root, f"kill {kill}: the replay reaches another root"
            for height, block_hash in sorted(self.recorder.snapshot().items()):
                self.tally.final_blocks.add((self.recorder.generation, height))
                self.tally.block_checks += 1
                header = chain.store.get_header(height)
                if header is None or compute_block_hash(header).hex() != block_hash:
                    self.tally.lost_blocks += 1
        with MessageStore(copy / "messages", sync=False) as store:
            for text in self.still_held():
                self.tally.message_checks += 1
                digest = hash_bytes(text)
                if digest is None or store.locate(digest) is None:
                    self.tally.lost_messages += 1
        shutil.rmtree(copy)
        return tip

    def check_reported_root(self, tip: Tip) -> None:
        """The restarted victim reports, for the block the kill left at its tip, the root the
        replay reached (its first status when it answered at that height; else its header)."""
        first = self.first_status
        if first is not None and first["height"] == tip.height:
            reported = first["state_root"]
        else:
            header = json_rpc(self.victim, "get_block_header_by_height", {"height": tip.height})[
                "block_header"
            ]
            if header["hash"] != tip.block_hash.hex():
                self.tally.notes["root: the tip was rolled back"] += 1
                return
            reported = header["state_root"]
        assert reported == tip.root.hex(), (
            f"the victim reports root {reported} at {tip.height}, not the replay's"
        )
        self.tally.roots_compared += 1

    def check_messages_readable(self) -> None:
        """Every message the victim acknowledged (and must still hold) is readable from it. Out
        of its swarm (421) it must have been decommissioned: node 0's view of it is polled every
        0.4 s, so the decommission is waited for a moment."""
        for account in self.accounts:
            if not self.still_held(account):
                continue
            held = readable(self.victim, account)
            if isinstance(held, str) and held.startswith("HTTP 421"):
                self.wait(
                    "the decommission that took the victim out",
                    functools.partial(self._nothing_held, account),
                    10,
                )
                continue
            assert not isinstance(held, str), f"the victim does not answer a retrieve: {held}"
            missing = self.still_held(account) - held
            assert not missing, f"{len(missing)} acknowledged messages not readable from the victim"

    def _nothing_held(self, account: SessionAccount) -> bool:
        return not self.still_held(account)

    # -- the phases: each ends with the victim killed, and says how the kill landed ----------------

    def kill_while_appending(self) -> Landed:
        time.sleep(self.rng.uniform(0.0, 2 * BLOCK_TIME))
        self.kill_victim("append")
        return lambda tip: None

    def kill_while_storing(self, kill: int) -> Landed:
        self.wait_active()
        decommissions = self.tally.decommissions
        with Storers(self.victim, self.accounts, f"kill {kill}") as storers:
            self.wait("stores acknowledged", lambda: len(storers.acknowledged) >= 5, 60)
            time.sleep(self.rng.uniform(0.0, 1.5))
            self.kill_victim("messages")
        for account, text in storers.acknowledged:
            self.acknowledged[text] = Acknowledged(account, self.recorder.generation, decommissions)
        self.tally.acknowledged += len(storers.acknowledged)
        self.tally.notes["messages: acknowledged, held by fewer than every member"] += sum(
            1 for copies in storers.copies if copies < NODES
        )
        return lambda tip: None

    def kill_around_snapshot(self) -> Landed:
        """Killed about when the next block carrying a snapshot is due (blocks come every
        ``BLOCK_TIME`` seconds, give or take a tenth)."""
        while True:
            height = int(self.wait_line(APPLIED, 60)[1])
            if (height + 1) % VICTIM_SNAPSHOT_INTERVAL == 0:
                break
        time.sleep(self.rng.uniform(BLOCK_TIME - 0.2, BLOCK_TIME + 0.2))
        self.kill_victim("snapshot")
        return lambda tip: f"snapshot: killed {'before' if tip <= height else 'after'} its block was written"

    def kill_while_catching_up(self) -> Landed:
        """Killed after one of the blocks it applies while catching up."""
        self.wait_line(re.compile(r" node started "), 120)
        for _ in range(self.rng.randint(1, max(1, self.behind - 1))):
            height = int(self.wait_line(APPLIED, 60)[1])
        time.sleep(self.rng.uniform(0.0, 0.05))
        network = (poll_status(self.reference) or {}).get("height", 0)
        self.kill_victim("sync")
        return lambda tip: f"sync: killed {'while behind' if height < network else 'once caught up'}"

    def kill_during_state_sync(self) -> Landed:
        """Killed while it joins by state sync (a moment within the longest join seen so far)."""
        self.wait_line(re.compile(r"state sync: asking peers"), 120)
        time.sleep(self.rng.uniform(0.0, self.state_sync_seconds))
        self.kill_victim("statesync")
        installed = any("state sync done" in line for line in self.tail.since_start())
        return lambda tip: (
            f"statesync: killed {'after' if installed else 'before'} the snapshot was installed"
        )

    def fresh_home(self) -> None:
        """The victim's data removed: a home at block 0 with its keys and config (state sync on)."""
        assert self.process is not None
        stop_processes([self.process])
        self.check_log_clean()
        home = Home(self.victim.home)
        shutil.rmtree(home.path / "data")
        home.db_path.parent.mkdir(parents=True)
        Chain.create(home.db_path, home.load_genesis(), snapshot_interval=VICTIM_SNAPSHOT_INTERVAL).close()
        self.recorder.reset()

    # -- the loop -----------------------------------------------------------------------------------

    def kill(self, phase: str, kill: int) -> Landed:
        if phase == "append":
            return self.kill_while_appending()
        if phase == "messages":
            return self.kill_while_storing(kill)
        if phase == "snapshot":
            return self.kill_around_snapshot()
        if phase == "sync":
            return self.kill_while_catching_up()
        return self.kill_during_state_sync()

    def restart(self, upcoming: str, tip: Tip) -> None:
        """Start the victim again on the home the kill left, as the next phase needs it."""
        if upcoming == "sync":  # down long enough to be behind, then killed catching up
            time.sleep(self.rng.uniform(3.0, 5.0))
            self.behind = (poll_status(self.reference) or {}).get("height", tip.height) - tip.height
            self.start_victim()
            return
        self.rejoin(self.start_victim())
        self.check_reported_root(tip)
        self._note_state_sync_time()
        if upcoming == "statesync":
            self.fresh_home()
            self.start_victim()

    def run(self, kills: int) -> None:
        began = time.monotonic()
        for kill in range(kills):
            phase = PHASES[kill % len(PHASES)]
            landed = self.kill(phase, kill)
            tip = self.check_crashed_home(kill)
            note = landed(tip.height)
            if note is not None:
                self.tally.notes[note] += 1
            print(f"kill {kill} at {time.monotonic() - began:.1f} s: {phase}, tip {tip.height}", flush=True)
            upcoming = PHASES[(kill + 1) % len(PHASES)] if kill + 1 < kills else "append"
            self.restart(upcoming, tip)

    def _note_state_sync_time(self) -> None:
        for line in self.tail.since_start():
            if "state sync done" in line:
                seconds = float(line.rsplit("seconds=", 1)[1].split()[0])
                self.state_sync_seconds = max(self.state_sync_seconds, seconds)

    def _holds(self, account: SessionAccount, wanted: set[str]) -> bool:
        held = readable(self.victim, account)
        return not isinstance(held, str) and wanted <= held

    def finish(self) -> None:
        """Every acknowledged message readable from the victim (pulled back where it lost them)."""
        self.wait_active()
        self.wait("the victim to rejoin at the end", self.rejoined, 180)
        for account in self.accounts:
            wanted = {text for text, ack in self.acknowledged.items() if ack.account is account}
            self.wait(
                "every acknowledged message readable from the victim",
                functools.partial(self._holds, account, wanted),
                120,
            )
        self.check_log_clean()


def json_post_storage(member: NetworkMember, method: str, params: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"https://127.0.0.1:{member.storage_port}/storage_rpc/v1",
        data=json.dumps({"method": method, "params": params}).encode(),
    )
    with urllib.request.urlopen(request, timeout=20, context=client_context()) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_a_node_killed_at_random_moments_loses_nothing_and_rejoins(tmp_path: Path) -> None:
    print(f"crash loop: seed {SEED}, {KILLS} kills (APPCHAIN_CRASH_LOOP_SEED, APPCHAIN_CRASH_LOOP_KILLS)")
    params = msgspec.structs.replace(DEVNET, credit_initial=DEVNET.credit_max)
    members = write_testnet(
        tmp_path / "net",
        NODES,
        base_port=free_port_block(PORTS_PER_NODE * NODES),
        seed="crash",
        users=3000,
        params=params,
    )
    for member in members:
        configure(member, snapshot_interval=SNAPSHOT_INTERVAL)
    configure(members[-1], snapshot_interval=VICTIM_SNAPSHOT_INTERVAL, state_sync_min_gap=8)
    (tmp_path / "scratch").mkdir()
    loop = CrashLoop(members, tmp_path / "scratch", SEED)
    try:
        loop.start_network()
        loop.run(KILLS)
        loop.finish()
    except AssertionError as failure:
        raise with_node_logs(
            AssertionError(f"{failure}\nseed {SEED}: {loop.tally.summary()}"), members, lines=20
        ) from failure
    finally:
        loop.stop_all()
    tally = loop.tally
    print(f"crash loop: seed {SEED}: {tally.summary()}")
    report = check_histories([m.home for m in members])
    assert report.ok, report.to_json()
    home = Home(loop.victim.home)
    with home.open_chain() as chain, Home(loop.reference.home).open_chain() as reference:
        assert replay_from_genesis(chain.store, chain.genesis).root == chain.state.root
        common = min(chain.final_height, reference.final_height)
        assert chain.store.get_header(common) == reference.store.get_header(common)
    assert tally.corrupt_restarts == tally.lost_blocks == tally.lost_messages == 0, tally.summary()
    assert set(tally.kills) == set(PHASES[: min(KILLS, len(PHASES))]) and tally.final_blocks
    assert tally.message_checks > 0 or KILLS < 2
