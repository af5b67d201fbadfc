"""The double-sign guard and the one-node-per-home lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appchain.chain import ChainError
from appchain.guard import HomeLock
from appchain.store import BlockStore
from consensus.guard import CHECKPOINT, DoubleSign, GuardedSigner, MemorySlotRecord
from state.crypto import ed25519

KEY = ed25519.SigningKey(b"\x05" * 32)


@pytest.mark.parametrize("record_kind", ["memory", "leveldb"])
def test_one_payload_per_slot(record_kind: str, tmp_path: Path) -> None:
    db = BlockStore(tmp_path / "db", create=True)
    record = MemorySlotRecord() if record_kind == "memory" else db
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
                f"from appchain.guard import HomeLock; HomeLock(__import__('pathlib').Path({str(tmp_path)!r})).acquire()",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert other.returncode != 0 and "one process per home folder" in other.stderr
    with HomeLock(tmp_path):  # released: the next start succeeds
        pass
