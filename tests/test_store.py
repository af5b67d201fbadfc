"""The event log: atomic appends, snapshots, the start-up handshake and tamper detection."""

from __future__ import annotations

from pathlib import Path

import msgspec
import plyvel
import pytest

from appchain.home.chain import Chain, ChainError, ReplayMismatch, replay_from_genesis
from appchain.home.home import Home
from appchain.home.store import (
    APPLIED_KEY,
    DELTA_PREFIX,
    EVENTS_PREFIX,
    HEADER_PREFIX,
    Applied,
    BlockBody,
    BlockStore,
    StoreCorrupt,
    chunk_key,
    height_key,
)
from genesis.document import Genesis
from genesis.load import load_genesis
from state.block import Header, compute_block_hash
from state.encoding import decode, encode
from state.events import Transfer
from state.types import Atomic
from tests.conftest import MakeHome


def _open(home: Home) -> Chain:
    return home.open_chain()


def _tamper(home: Home, key: bytes, value: bytes | None) -> None:
    db = plyvel.DB(str(home.db_path))
    if value is None:
        db.delete(key)
    else:
        db.put(key, value)
    db.close()


def _read(home: Home, key: bytes) -> bytes:
    db = plyvel.DB(str(home.db_path))
    value = db.get(key)
    db.close()
    assert value is not None
    return value


def test_reopen_reaches_the_same_tip(make_home: MakeHome) -> None:
    home = make_home(12, snapshot_interval=5)
    with _open(home) as chain:
        tip, root = chain.state.block_hash, chain.state.root
        assert chain.height == 12
        assert chain.store.list_snapshots() == [5, 10]  # the two newest are kept
    with _open(home) as again:
        assert (again.state.block_hash, again.state.root) == (tip, root)


def test_snapshot_restart_equals_full_replay(make_home: MakeHome) -> None:
    home = make_home(23, snapshot_interval=4)
    with _open(home) as chain:
        from_snapshot = list(chain.state.items())
        root = chain.state.root
    with BlockStore(home.db_path) as store:
        full = replay_from_genesis(store, home.load_genesis())
    assert full.root == root
    assert list(full.items()) == from_snapshot


def test_every_block_record_is_written_with_its_tip(make_home: MakeHome) -> None:
    home = make_home(3)
    with BlockStore(home.db_path) as store:
        applied = store.get_applied()
        assert applied is not None and applied.height == 3
        for height in range(4):
            assert store.get_header(height) is not None
            assert store.get_body(height) is not None
            assert store.get_delta(height) is not None
        assert store.get_header(4) is None


def test_tampered_event_is_caught_at_its_height(make_home: MakeHome) -> None:
    home = make_home(8, snapshot_interval=1000)
    key = height_key(EVENTS_PREFIX, 6)
    body = decode(_read(home, key), BlockBody)
    events = list(body.events)
    first = next(i for i, e in enumerate(events) if isinstance(e, Transfer))
    events[first] = msgspec.structs.replace(events[first], amount=Atomic(events[first].amount + 1))
    _tamper(home, key, encode(BlockBody(tuple(events), body.signatures)))
    with pytest.raises(ReplayMismatch, match="height 6") as caught:
        _open(home)
    assert caught.value.height == 6
    assert "events root" in str(caught.value)


def test_tampered_header_root_is_caught(make_home: MakeHome) -> None:
    home = make_home(5)
    key = height_key(HEADER_PREFIX, 3)
    header = decode(_read(home, key), Header)
    _tamper(home, key, encode(msgspec.structs.replace(header, state_root=b"\x01" * 32)))
    with pytest.raises(ReplayMismatch, match="height 3"):
        _open(home)


def test_tampered_delta_is_caught(make_home: MakeHome) -> None:
    home = make_home(5)
    _tamper(home, height_key(DELTA_PREFIX, 4), encode([]))
    with pytest.raises(ReplayMismatch, match="height 4: the stored state delta"):
        _open(home)


def test_tampered_snapshot_is_caught(make_home: MakeHome) -> None:
    home = make_home(6, snapshot_interval=5)
    key = chunk_key(5, 0, 0)
    pairs = decode(_read(home, key), list[tuple[bytes, bytes]])
    pairs[0] = (pairs[0][0], pairs[0][1] + b"\x00")
    _tamper(home, key, encode(pairs))
    with pytest.raises(ReplayMismatch, match="height 5: the snapshot's entries"):
        _open(home)


def test_missing_block_and_garbage_are_corruption(make_home: MakeHome) -> None:
    home = make_home(4)
    _tamper(home, height_key(EVENTS_PREFIX, 2), b"\xc1garbage")
    with pytest.raises(StoreCorrupt, match="corrupt"):
        _open(home)
    _tamper(home, height_key(EVENTS_PREFIX, 2), None)
    with pytest.raises(StoreCorrupt, match="block 2 is missing"):
        _open(home)


def test_handshake_writes_nothing_on_a_mismatch(make_home: MakeHome) -> None:
    home = make_home(5)
    _tamper(home, height_key(DELTA_PREFIX, 4), encode([]))
    before = _snapshot_db(home.db_path)
    with pytest.raises(ReplayMismatch):
        _open(home)
    assert _snapshot_db(home.db_path) == before


def _snapshot_db(path: Path) -> dict[bytes, bytes]:
    db = plyvel.DB(str(path))
    data = dict(db.iterator())
    db.close()
    return data


def test_genesis_mismatch_is_refused(make_home: MakeHome, tmp_path: Path) -> None:
    from appchain.home.genesis_files import write_devnet

    home = make_home(1)
    other = write_devnet(tmp_path / "other" / "genesis.json", 2, "other")
    with pytest.raises(ChainError, match="genesis mismatch"):
        Chain.open(home.db_path, other, snapshot_interval=10)


def test_applied_marker_beyond_the_log_is_corruption(make_home: MakeHome) -> None:
    home = make_home(2)
    genesis: Genesis = load_genesis(home.genesis_path)
    _tamper(home, APPLIED_KEY, encode(Applied(9, b"\x00" * 32, b"\x00" * 32)))  # type: ignore[arg-type]
    with pytest.raises(StoreCorrupt, match="the applied tip is block 9, but its header is missing"):
        Chain.open(home.db_path, genesis, snapshot_interval=10)


def test_truncate_removes_the_tail_atomically_but_never_a_final_block(make_home: MakeHome) -> None:
    home = make_home(10, snapshot_interval=2)
    with _open(home) as chain:
        assert chain.final_height == 8  # the dev chain certifies its checkpoints
        header = chain.store.get_header(9)
        assert header is not None
        with pytest.raises(StoreCorrupt, match="would remove the final block 8"):
            chain.store.truncate(7, Applied(7, compute_block_hash(header), header.state_root))
        assert chain.store.get_header(10) is not None  # nothing was written
        chain.store.truncate(9, Applied(9, compute_block_hash(header), header.state_root))
        assert chain.store.get_header(10) is None
        assert chain.store.list_snapshots() == [8]  # 10 went with its block
    with _open(home) as reopened:
        assert reopened.height == 9
        assert reopened.state.root == header.state_root
