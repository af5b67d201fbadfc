"""State sync, deterministically: the sans-IO machine against peers that answer from real stores.

Honest peers answer with :func:`appchain.node.statesync.answer` from a dev chain with certified
checkpoints; byzantine ones tamper with those answers. The joiner must reach the certified
snapshot, drop every peer that lied, install the snapshot, then apply the later blocks with
full checks and agree on every root; a restart and a replay from the installed base agree too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

import consensus.statesync
import state.snapshot
from appchain.home.chain import Chain, ChainError, replay_from_genesis
from appchain.home.exchange import export_events
from appchain.home.genesis_files import write_devnet
from appchain.home.home import Home, NodeConfig
from appchain.node.statesync import answer, offered_snapshot
from consensus.messages import (
    CheckpointsRequest,
    CheckpointsResponse,
    ChunkRequest,
    ChunkResponse,
    HeadersRequest,
    HeadersResponse,
    Message,
    SnapshotOffer,
)
from consensus.node import Penalize, Send
from consensus.statesync import StateSync, SyncConfig
from state.types import Hash32, NodeKey
from tests.conftest import extend

Server = Callable[[Message], Message | None]


def peer(name: str) -> NodeKey:
    return NodeKey(name.encode().ljust(32, b"."))


def run(machine: StateSync, servers: dict[NodeKey, Server], *, until: float = 120.0) -> list[Penalize]:
    """Deliver every request to its server and every answer back, with a clock that jumps to
    the machine's next deadline when nothing is in flight; returns the penalties."""
    now = 0.0
    penalties: list[Penalize] = []
    queue = []
    for key in servers:
        queue += machine.add_peer(key, now)
    while not machine.finished and now < until:
        if not queue:
            wake = machine.next_wake()
            now = max(now + 0.1, wake if wake is not None else now + 1.0)
            queue += machine.on_time(now)
            continue
        action = queue.pop(0)
        if isinstance(action, Penalize):
            penalties.append(action)
            continue
        assert isinstance(action, Send)
        reply = servers[action.to](action.message)
        if reply is not None:
            queue += machine.on_message(reply, action.to, now)
    return penalties


@pytest.fixture(scope="module")
def small_chunks() -> Iterator[None]:
    """Chunks of about 16 pairs sent in parts of 8, so a small chain has many of both."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state.snapshot, "CHUNK_TARGET", 16)
        patch.setattr(state.snapshot, "PART_SIZE", 8)
        patch.setattr(consensus.statesync, "PART_SIZE", 8)
        yield


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, small_chunks: None) -> Home:
    """A chain of 46 blocks with snapshots every 8: the newest certified one is at 40."""
    devnet = tmp_path_factory.mktemp("statesync-devnet")
    write_devnet(devnet / "genesis.json", nodes=12, seed="tests", users=6)
    home, _ = Home.init(
        tmp_path_factory.mktemp("statesync") / "source",
        devnet / "genesis.json",
        NodeConfig(snapshot_interval=8, sync_writes=False),
    )
    with home.open_chain() as chain:
        extend(chain, home, 46, per_block=10)
    return home


@pytest.fixture()
def served(source: Home) -> Iterator[Chain]:
    with source.open_chain() as chain:
        yield chain


def joiner_home(source: Home, tmp_path: Path) -> Home:
    home, _ = Home.init(tmp_path / "joiner", source.genesis_path, NodeConfig(sync_writes=False))
    return home


def machine_for(chain: Chain, *, min_gap: int = 8) -> StateSync:
    genesis_header = chain.store.get_header(0)
    assert genesis_header is not None
    return StateSync(
        chain.genesis.chain_id,
        chain.genesis.params,
        genesis_header,
        chain.height,
        SyncConfig(min_gap=min_gap, discovery=1.0, request_timeout=5.0, in_flight=2),
    )


def honest(chain: Chain) -> Server:
    return lambda message: answer(chain, message)


def test_offered_snapshot_is_the_newest_certified_one(served: Chain) -> None:
    manifest = offered_snapshot(served)
    assert manifest is not None and manifest.height == 40 and manifest.verifiable
    assert served.final_height >= 40


def test_join_from_honest_peers_then_follow_the_chain(served: Chain, source: Home, tmp_path: Path) -> None:
    home = joiner_home(source, tmp_path)
    with home.open_chain() as chain:
        machine = machine_for(chain)
        penalties = run(machine, {peer("a"): honest(served), peer("b"): honest(served)})
        assert machine.phase == "done", machine.reason
        assert penalties == []
        result = machine.result
        assert result is not None
        header40 = served.store.get_header(40)
        assert header40 is not None and result.state.root == header40.state_root
        chain.install_synced(result)
        assert (chain.height, chain.final_height, chain.base_height) == (40, 40, 40)
        for height in range(41, served.height + 1):  # the later blocks, every check on
            chain.append(served.store.get_block(height))
            header = served.store.get_header(height)
            assert header is not None and chain.state.root == header.state_root
        tip_root = chain.state.root
        with pytest.raises(ChainError, match="joined by state sync at height 40"):
            export_events(chain.store, chain.genesis.hash, b"", tmp_path / "out.events", chain_id="x")
        with pytest.raises(ChainError, match="fresh home"):
            chain.install_synced(result)
    with home.open_chain() as chain:  # a restart loads the base snapshot and replays the tail
        assert chain.height == served.height and chain.state.root == tip_root
        replayed = replay_from_genesis(chain.store, chain.genesis, verify_signatures=True)
        assert replayed.root == tip_root


def tamper_chunk(chain: Chain) -> Server:
    def serve(message: Message) -> Message | None:
        reply = answer(chain, message)
        if isinstance(reply, ChunkResponse) and reply.pairs:
            key, value = reply.pairs[0]
            return msgspec.structs.replace(reply, pairs=((key, value + b"x"), *reply.pairs[1:]))
        return reply

    return serve


def other_height(chain: Chain) -> Server:
    """Offers the snapshot at 32 as if it were at 40."""

    def serve(message: Message) -> Message | None:
        reply = answer(chain, message)
        if isinstance(reply, SnapshotOffer):
            older = chain.store.get_manifest(32)
            assert older is not None
            return SnapshotOffer(msgspec.structs.replace(older, height=40))
        return reply

    return serve


def wrong_root(chain: Chain) -> Server:
    """Offers the right height and block with a state root (and frontier) of its own."""

    def serve(message: Message) -> Message | None:
        reply = answer(chain, message)
        if isinstance(reply, SnapshotOffer) and reply.manifest is not None:
            older = chain.store.get_manifest(32)
            assert older is not None
            return SnapshotOffer(
                msgspec.structs.replace(reply.manifest, state_root=older.state_root, frontier=older.frontier)
            )
        return reply

    return serve


def forged_links(chain: Chain) -> Server:
    """Serves checkpoints whose certificates are signed by nobody it should be."""

    def serve(message: Message) -> Message | None:
        reply = answer(chain, message)
        if isinstance(reply, CheckpointsResponse) and reply.links:
            first = reply.links[0]
            certificate = msgspec.structs.replace(first.certificate, block_hash=Hash32(bytes(32)))
            return CheckpointsResponse((msgspec.structs.replace(first, certificate=certificate),))
        return reply

    return serve


def unlinked_headers(chain: Chain) -> Server:
    def serve(message: Message) -> Message | None:
        reply = answer(chain, message)
        if isinstance(reply, HeadersResponse) and reply.headers:
            first = msgspec.structs.replace(reply.headers[0], timestamp=reply.headers[0].timestamp + 1)
            return HeadersResponse((first, *reply.headers[1:]))
        return reply

    return serve


def fake_high(chain: Chain) -> Server:
    """Offers a snapshot far above any certified checkpoint."""

    def serve(message: Message) -> Message | None:
        reply = answer(chain, message)
        if isinstance(reply, SnapshotOffer) and reply.manifest is not None:
            return SnapshotOffer(msgspec.structs.replace(reply.manifest, height=4000))
        return reply

    return serve


@pytest.mark.parametrize(
    ("liar", "reason"),
    [
        (tamper_chunk, "chunk that does not verify"),
        (other_height, "snapshot that does not verify: the manifest names another block"),
        (wrong_root, "snapshot that does not verify: the manifest's state root"),
        (forged_links, "checkpoint that does not verify"),
        (unlinked_headers, "headers that do not link"),
        (fake_high, "above any certified checkpoint"),
    ],
)
def test_a_lying_peer_is_caught_and_the_join_completes_from_honest_ones(
    served: Chain, source: Home, tmp_path: Path, liar: Callable[[Chain], Server], reason: str
) -> None:
    home = joiner_home(source, tmp_path)
    with home.open_chain() as chain:
        machine = machine_for(chain)
        bad = peer("liar")
        # the liar first, so it is asked first whenever the machine has a choice
        servers = {bad: liar(served), peer("a"): honest(served), peer("b"): honest(served)}
        penalties = run(machine, servers)
        assert machine.phase == "done", machine.reason
        assert machine.result is not None
        header40 = served.store.get_header(40)
        assert header40 is not None and machine.result.state.root == header40.state_root
        assert [p.peer for p in penalties] and {p.peer for p in penalties} == {bad}
        assert any(reason in p.reason for p in penalties), [p.reason for p in penalties]
        chain.install_synced(machine.result)
        chain.append(served.store.get_block(41))


def test_only_liars_means_failure_not_a_bad_state(served: Chain, source: Home, tmp_path: Path) -> None:
    home = joiner_home(source, tmp_path)
    with home.open_chain() as chain:
        machine = machine_for(chain)
        run(machine, {peer("x"): tamper_chunk(served), peer("y"): tamper_chunk(served)})
        assert machine.phase == "failed" and machine.result is None
        assert chain.height == 0  # nothing installed


def test_no_snapshot_far_enough_ahead_skips(served: Chain, source: Home, tmp_path: Path) -> None:
    home = joiner_home(source, tmp_path)
    with home.open_chain() as chain:
        machine = machine_for(chain, min_gap=500)
        run(machine, {peer("a"): honest(served)})
        assert machine.phase == "skipped" and "height 40" in machine.reason
        # a fresh peer offers nothing: skipped as well
        machine = machine_for(chain)
        run(machine, {peer("a"): honest(chain)})
        assert machine.phase == "skipped"


def test_a_silent_peer_times_out_and_others_serve(served: Chain, source: Home, tmp_path: Path) -> None:
    home = joiner_home(source, tmp_path)
    with home.open_chain() as chain:
        machine = machine_for(chain)

        def silent_after_offer(message: Message) -> Message | None:
            reply = answer(served, message)
            return reply if isinstance(reply, SnapshotOffer) else None

        run(machine, {peer("mute"): silent_after_offer, peer("a"): honest(served)})
        assert machine.phase == "done"
        assert machine.strikes.get(peer("mute"), 0) >= 1


def test_serving_refuses_what_it_does_not_hold(served: Chain) -> None:
    missing = answer(served, ChunkRequest(24, 0, 0))  # pruned: only 32 and 40 are kept
    assert isinstance(missing, ChunkResponse) and missing.parts == 0
    assert answer(served, CheckpointsRequest(6)) == CheckpointsResponse(())  # not a checkpoint height
    assert answer(served, HeadersRequest(10, 5)) == HeadersResponse(())
    assert answer(served, HeadersRequest(0, 200)) == HeadersResponse(())
    links = answer(served, CheckpointsRequest(4))
    assert isinstance(links, CheckpointsResponse)
    assert [link.header.height for link in links.links] == list(range(4, served.final_height + 1, 4))


def synced_home(served: Chain, source: Home, tmp_path: Path) -> Home:
    home = joiner_home(source, tmp_path)
    with home.open_chain() as chain:
        machine = machine_for(chain)
        run(machine, {peer("a"): honest(served)})
        assert machine.result is not None
        chain.install_synced(machine.result)
    return home


def test_a_synced_node_serves_the_walk_past_its_base(served: Chain, source: Home, tmp_path: Path) -> None:
    home = synced_home(served, source, tmp_path)
    with home.open_chain() as chain:
        for height in range(41, served.height + 1):
            chain.append(served.store.get_block(height))
            certificate = served.store.get_certificate(height)
            if certificate is not None:
                chain.add_certificate(certificate)
        # a second joiner walks every checkpoint through the first one, past its base
        other = tmp_path / "second"
        second, _ = Home.init(other, source.genesis_path, NodeConfig(sync_writes=False))
        with second.open_chain() as fresh:
            walker = machine_for(fresh)
            run(walker, {peer("first"): honest(chain)})
            assert walker.phase == "done" and walker.target == 40
            links = answer(chain, CheckpointsRequest(4))
            assert isinstance(links, CheckpointsResponse)
            assert [link.header.height for link in links.links] == list(range(4, chain.final_height + 1, 4))


def test_a_damaged_base_snapshot_stops_the_start(served: Chain, source: Home, tmp_path: Path) -> None:
    from appchain.home.chain import ReplayMismatch
    from appchain.home.store import MANIFEST_PREFIX, StoreCorrupt, chunk_key, height_key
    from state.encoding import decode, encode
    from tests.test_store import _read, _tamper

    home = synced_home(served, source, tmp_path)
    manifest = served.store.get_manifest(40)
    assert manifest is not None and manifest.chunks >= 16
    key = chunk_key(40, next(i for i in range(manifest.chunks) if not manifest.chunk_is_empty(i)), 0)
    pairs = decode(_read(home, key), list[tuple[bytes, bytes]])
    pairs[0] = (pairs[0][0], pairs[0][1] + b"\x00")
    _tamper(home, key, encode(pairs))
    with pytest.raises(ReplayMismatch, match="height 40: the snapshot's entries"):
        home.open_chain()
    _tamper(home, height_key(MANIFEST_PREFIX, 40), None)
    with pytest.raises(StoreCorrupt, match="lost the snapshot it starts from"):
        home.open_chain()


def test_a_snapshot_installs_only_into_a_fresh_log(served: Chain, source: Home, tmp_path: Path) -> None:
    from appchain.home.store import StoreCorrupt

    home = synced_home(served, source, tmp_path)
    with home.open_chain() as chain, pytest.raises(StoreCorrupt, match="only block 0"):
        manifest = chain.store.get_manifest(40)
        assert manifest is not None
        chain.store.install_synced(manifest, [], [], [], {})


def test_a_synced_node_answers_headers_at_and_below_its_base_and_refuses_their_bodies(
    served: Chain, source: Home, tmp_path: Path
) -> None:
    """A node that joined at 40 holds some headers at and below it (block 0's, the checkpoints'
    it walked, the base's) but no bodies: the header methods answer them without the body's fields, the block methods refuse them with
    -32001, and none of it is a corrupt log (a ``StoreCorrupt`` would stop the node: the crash
    loop found one request doing so)."""
    from appchain.node.ledger import ChainLedger
    from appchain.rpc.jsonrpc import RpcError
    from appchain.rpc.methods import call_method
    from tests.helpers import served_node

    home = synced_home(served, source, tmp_path)
    with home.open_chain() as chain:
        node = served_node(chain=chain, ledger=ChainLedger(chain))
        tip = call_method(node, "get_last_block_header", {})["block_header"]
        assert tip["height"] == 40 and tip["state_root"] == chain.state.root.hex()
        for height in (0, 40):
            header = call_method(node, "get_block_header_by_height", {"height": height})["block_header"]
            expected = served.store.get_header(height)
            assert expected is not None and header["state_root"] == expected.state_root.hex()
            assert "num_txes" not in header and "block_size" not in header and "reward" not in header
            with pytest.raises(RpcError, match="joined by state sync at height 40") as refused:
                call_method(node, "get_block", {"height": height})
            assert refused.value.code == -32001
        headers = call_method(node, "get_block_headers_range", {"start_height": 40, "end_height": 40})[
            "headers"
        ]
        assert [h["height"] for h in headers] == [40]
        assert chain.store.get_header(1) is None
        with pytest.raises(RpcError, match="joined by state sync") as missing:
            call_method(node, "get_block_header_by_height", {"height": 1})
        assert missing.value.code == -32001
        chain.append(served.store.get_block(41))
        above = call_method(node, "get_block_headers_range", {"start_height": 40, "end_height": 41})[
            "headers"
        ]
        assert [h["height"] for h in above] == [40, 41] and "num_txes" in above[1]
        assert call_method(node, "get_block", {"height": 41})["block_header"]["height"] == 41


def test_no_public_method_reaches_what_a_synced_node_does_not_hold(
    served: Chain, source: Home, tmp_path: Path
) -> None:
    """Every public JSON-RPC method, asked about heights and hashes around a state-synced node's
    base (block 0, the base, just below it, the tip), answers or refuses with a JSON-RPC error:
    none reads a body or delta the node never had (the store would call that corruption and stop
    the node)."""
    from types import SimpleNamespace

    from appchain.node.ledger import ChainLedger
    from appchain.rpc.jsonrpc import RpcError
    from appchain.rpc.methods import METHODS, call_method
    from consensus.mempool import Mempool
    from consensus.uptime import PulseRecord
    from state.block import compute_block_hash
    from tests.helpers import served_node

    home = synced_home(served, source, tmp_path)
    with home.open_chain() as chain:
        chain.append(served.store.get_block(41))
        core = SimpleNamespace(
            node_key=bytes(32),
            mempool=Mempool(chain.state.chain_id),
            proofs=SimpleNamespace(accepted={}),
            pulse_record=PulseRecord(),
        )
        node = served_node(chain=chain, ledger=ChainLedger(chain), core=core, host=SimpleNamespace(peers={}))
        hashes = [compute_block_hash(h).hex() for h in (served.store.get_header(n) for n in (0, 39, 40)) if h]
        tries: list[dict[str, object]] = [{}]
        for height in (0, 1, 39, 40, 41):
            tries += [
                {"height": height},
                {"heights": [height]},
                {"start_height": height, "end_height": 41},
                {"start_height": height},
            ]
        for text in hashes:
            tries += [{"hash": text}, {"hashes": [text]}, {"txs_hashes": [text]}]
        answered = 0
        for name in sorted(METHODS):
            for params in tries:
                try:
                    call_method(node, name, params)
                    answered += 1
                except RpcError:
                    pass
        assert answered > len(METHODS)  # the sweep reaches the methods, not only their refusals
