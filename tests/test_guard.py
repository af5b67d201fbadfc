"""The double-sign guard and the one-node-per-home lock."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio
import trio.testing

from appchain.home.chain import ChainError
from appchain.home.guard import HomeInUse, HomeLock
from appchain.home.store import BlockStore
from appchain.node import run as node_module
from appchain.node.log import Logger
from appchain.node.node import Node
from appchain.node.run import holding_home
from appchain.node.slots import DeferredSlots
from consensus.guard import CHECKPOINT, DoubleSign, GuardedSigner, MemorySlotRecord, SlotRecord
from consensus.messages import SyncRequest
from consensus.node import Send
from state.crypto import ed25519
from state.encoding import encode
from state.types import NodeKey
from tests.conftest import MakeHome

KEY = ed25519.SigningKey(b"\x05" * 32)


@pytest.mark.parametrize("record_kind", ["memory", "leveldb", "deferred"])
def test_one_payload_per_slot(record_kind: str, tmp_path: Path) -> None:
    db = BlockStore(tmp_path / "db", create=True)
    record: SlotRecord = {"memory": MemorySlotRecord(), "leveldb": db, "deferred": DeferredSlots(db)}[
        record_kind
    ]
    if isinstance(record, DeferredSlots):
        record.write_at_once = False  # every slot waits for a writer: the guard holds all the same
    signer = GuardedSigner(KEY, record)
    # the very first slot is guarded too (cometbft #5435: a check that checked nothing for N=1)
    first = signer.sign(1, 0, 5, b"block A")
    assert ed25519.verify(KEY.public_key, b"block A", first)
    assert signer.sign(1, 0, 5, b"block A") == first  # a retry of the same payload is fine
    with pytest.raises(DoubleSign, match="height 1, round 0, stage 5"):
        signer.sign(1, 0, 5, b"block B")
    # other slots are independent
    signer.sign(1, 1, 5, b"block B")
    signer.sign(1, 0, CHECKPOINT, b"block B")
    signer.sign(2, 0, 5, b"block B")
    db.close()


def test_a_deferred_slot_is_durable_once_written_and_refused_meanwhile(tmp_path: Path) -> None:
    db = BlockStore(tmp_path / "db", create=True)
    slots = DeferredSlots(db)
    slots.write_at_once = False
    signer = GuardedSigner(KEY, slots)
    signer.sign(7, 2, 5, b"first")
    assert db.get_slot(7, 2, 5) is None and list(slots.pending) == [(7, 2, 5)]
    taken = slots.take()
    with pytest.raises(DoubleSign):  # while it is being written
        signer.sign(7, 2, 5, b"second")
    slots.write(taken)
    slots.written(taken)
    assert slots.pending == {} and slots.writing == {}
    signer.sign(8, 0, 5, b"never written")  # lost with the process: it never left it
    db.close()
    db = BlockStore(tmp_path / "db")
    signer = GuardedSigner(KEY, DeferredSlots(db))
    with pytest.raises(DoubleSign):
        signer.sign(7, 2, 5, b"second")
    signer.sign(8, 0, 5, b"another")
    db.close()


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    db = BlockStore(tmp_path / "db", create=True)
    GuardedSigner(KEY, db).sign(7, 2, 5, b"first")
    db.close()
    db = BlockStore(tmp_path / "db")
    signer = GuardedSigner(KEY, db)
    with pytest.raises(DoubleSign):
        signer.sign(7, 2, 5, b"second")
    signer.sign(7, 2, 5, b"first")
    db.forget_slots_below(8)
    signer.sign(7, 2, 5, b"second")  # a pruned (final) height is no longer recorded
    db.close()


def test_a_home_runs_one_node(tmp_path: Path) -> None:
    with HomeLock(tmp_path):
        with pytest.raises(ChainError, match="in use by process"):
            HomeLock(tmp_path).acquire()
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from appchain.home.guard import HomeLock; HomeLock(__import__('pathlib').Path({str(tmp_path)!r})).acquire()",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert other.returncode != 0 and "one process per home folder" in other.stderr
    with HomeLock(tmp_path):  # released: the next start succeeds
        pass


def test_a_starting_node_waits_out_the_readers_inside_and_keeps_new_ones_out(tmp_path: Path) -> None:
    first, second = HomeLock(tmp_path, "status", shared=True), HomeLock(tmp_path, "status", shared=True)
    first.acquire()
    second.acquire()  # read-only commands share the home
    node = HomeLock(tmp_path, "start")
    assert node.try_acquire_for_node() is False  # readers inside: the node waits
    for late in (HomeLock(tmp_path, "status", shared=True), HomeLock(tmp_path, "rollback")):
        with pytest.raises(HomeInUse) as caught:  # nobody enters once a node is starting
            late.acquire()
        assert caught.value.by_node and caught.value.holder == f"process {os.getpid()} (start)"
    first.release()
    assert node.try_acquire_for_node() is False
    second.release()
    assert node.try_acquire_for_node() is True
    assert (tmp_path / "node.lock").read_text() == f"process {os.getpid()} (start)"
    with pytest.raises(HomeInUse) as caught:
        HomeLock(tmp_path, "start").try_acquire_for_node()  # a second node: refused at once
    assert caught.value.by_node
    node.release()
    with HomeLock(tmp_path, "status", shared=True):  # the node is gone: readers enter again
        pass


def test_a_node_refuses_at_once_a_command_that_writes(tmp_path: Path) -> None:
    with HomeLock(tmp_path, "rollback"):
        node = HomeLock(tmp_path, "start")
        with pytest.raises(HomeInUse, match=r"in use by process \d+ \(rollback\)") as caught:
            node.try_acquire_for_node()
        assert not caught.value.by_node and not node.holds_gate  # the gate is let go at once
        with pytest.raises(HomeInUse, match=r"\(rollback\)") as caught:
            HomeLock(tmp_path, "status", shared=True).acquire()  # a reader waits for no writer
        assert not caught.value.by_node
    with HomeLock(tmp_path, "status", shared=True), pytest.raises(HomeInUse, match="read-only commands"):
        HomeLock(tmp_path, "replay").acquire()
    node = HomeLock(tmp_path, "start")
    assert node.try_acquire_for_node() is True  # the writer gone: its description is replaced whole
    assert (tmp_path / "node.lock").read_text() == (tmp_path / "start.lock").read_text() == node.description
    node.release()


def test_the_node_takes_its_home_once_a_slow_reader_leaves(tmp_path: Path, make_home: MakeHome) -> None:
    home = make_home()
    reader = home.lock("status", shared=True)
    reader.acquire()
    lines = io.StringIO()
    log = Logger("info", lines)

    async def start() -> None:
        async with holding_home(home, log) as lock:
            assert lock.held

    timer = threading.Timer(0.3, reader.release)
    timer.start()
    started = time.monotonic()
    trio.run(start)
    assert time.monotonic() - started >= 0.25
    assert "waiting for read-only commands to leave the home" in lines.getvalue()


def test_a_reader_that_never_leaves_is_named_after_the_wait(
    make_home: MakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_module, "READERS_WAIT", 0.2)
    home = make_home()
    with home.lock("status", shared=True):

        async def start() -> None:
            async with holding_home(home, Logger("error", io.StringIO())):
                raise AssertionError("the home was taken while a reader held it")

        with pytest.raises(HomeInUse, match=r"is in use by read-only commands for over 0.2 s"):
            trio.run(start)
        with pytest.raises(HomeInUse, match=r"in use by read-only commands \(status\)"):
            home.lock("replay").acquire()  # the gate was let go: commands see the reader, not a node


async def test_a_signature_leaves_the_node_only_once_its_slot_is_on_disk(
    offline_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, peer = offline_node, NodeKey(b"\x22" * 32)
    sent: list[bytes] = []
    monkeypatch.setattr(node.host, "send", lambda key, payload: sent.append(payload) or True)
    gate, write = threading.Event(), node.slots.write

    def held_write(slots: dict[tuple[int, int, int], bytes]) -> None:
        assert gate.wait(30)
        write(slots)

    monkeypatch.setattr(node.slots, "write", held_write)
    node.slots.write_at_once = False  # as Node.run sets it when it starts the writer
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node._slot_writer)
        node.core.identity.signer.sign(9, 0, 5, b"a Pulse message")
        node.carry_out([Send(peer, SyncRequest(1))])  # what the core returned with that signature
        node.carry_out([Send(peer, SyncRequest(2))])  # later actions wait behind it, in order
        await trio.testing.wait_all_tasks_blocked()
        assert sent == [] and node.chain.store.get_slot(9, 0, 5) is None
        gate.set()
        with trio.fail_after(30):
            while len(sent) < 2:
                await trio.sleep(0.001)
        assert sent == [encode(SyncRequest(1)), encode(SyncRequest(2))]
        assert node.chain.store.get_slot(9, 0, 5) is not None
        node.carry_out([Send(peer, SyncRequest(3))])  # nothing waits for a slot: out at once
        assert sent[-1] == encode(SyncRequest(3))
        nursery.cancel_scope.cancel()
