"""Coverage-guided fuzzing of every decoder that takes bytes from outside (atheris).

Each target takes one input and runs it through the code a node runs on bytes from the network
or from a user, then checks what must hold whatever the bytes are:

=================  ==============================================================================
target             the path, and what it must never do
=================  ==============================================================================
``p2p_frame``      a frame after the handshake: :func:`consensus.messages.decode_message`, then the
                   node core (:meth:`NodeCore.on_message`), the state-sync server
                   (:func:`appchain.node.statesync.answer`) and a joining node's state sync. Raise
                   anything, or change the chain: nobody without the keys can make a valid block,
                   so the tip, its root and the final height must stay as they were.
``block``          a block as a peer sends it: decode, Pulse check, execution against the tip. Raise
                   anything but :class:`InvalidBlock`; execution is pure, so the state is unchanged.
``genesis``        a genesis file: :func:`genesis.load.parse_genesis_json`. Raise anything but
                   :class:`GenesisError`.
``json_rpc``       a ``POST /json_rpc`` body, call or batch, against a node with a real chain: raise
                   anything (every refusal is a JSON-RPC error object); change the chain.
``storage_rpc``    a ``POST /storage_rpc/v1`` body: raise anything (refusals are HTTP statuses).
``onion``          an onion request body at the entry node, and (``onion_layer``) a layer that
                   decrypts, holding the fuzzed bytes, so the parsing behind the decryption is
                   reached too: raise anything (refusals are HTTP statuses).
``public_port``    bytes to a running node's public port, ``admin_port`` to its admin port,
``admin_port``     ``p2p_port`` to its p2p port (before and after a valid handshake) and
``p2p_port``       ``storage_port`` to its HTTPS storage port (before and after the TLS handshake),
``storage_port``   over real TCP (:mod:`tests.fuzz_sockets`): after each input the node answers
                   ``get_info``, caught nothing at a boundary, and its chain is unchanged.
=================  ==============================================================================

Run one target: ``python -m tests.fuzz TARGET [--runs N] [--corpus DIR]``; every target:
``make fuzz`` (``FUZZ_RUNS``, 10^6 by default). Each prints how many inputs it ran. A crash
writes the input that caused it (libFuzzer's ``crash-…`` file); put it in
``tests/fuzz_regressions/<target>/`` and ``tests/test_fuzz.py`` replays it from then on.
CI runs each target for a bounded number of inputs (``tests/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

from tests import fuzz_sockets as sockets

REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
PACKAGES = ("state", "consensus", "appchain", "genesis", "p2p")
"""Instrumented for coverage (the libraries they call are not: their branches are not ours)."""
NOW = 1_800_000_000.0


@dataclass
class Target:
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    modules: tuple[str, ...]
    """Our modules it runs: imported under instrumentation before it starts."""
    close: Callable[[], None] = lambda: None
    """Stops what the target started (the socket targets' node)."""


# -- a small real chain, built once per process ---------------------------------------------------


@cache
def _world() -> SimpleNamespace:
    """A node home with a 24-block dev chain (certified checkpoints, a snapshot at 16), its
    node core, and a fresh home for a joining node's state sync."""
    from appchain.home.genesis_files import write_devnet
    from appchain.home.home import Home, NodeConfig
    from appchain.node.ledger import ChainLedger
    from consensus.guard import GuardedSigner
    from consensus.node import CoreConfig, Identity, NodeCore
    from consensus.pulse import Timing
    from consensus.statesync import StateSync, SyncConfig
    from consensus.uptime import DEVNET_UPTIME
    from state.encoding import decode_json
    from tests.conftest import extend
    from tests.helpers import served_node

    folder = Path(tempfile.mkdtemp(prefix="appchain-fuzz-"))
    atexit.register(shutil.rmtree, folder, True)
    write_devnet(folder / "genesis.json", nodes=12, seed="fuzz", users=6)
    home, _ = Home.init(
        folder / "home", folder / "genesis.json", NodeConfig(snapshot_interval=16, sync_writes=False)
    )
    dev_node = decode_json((folder / "keys" / "nodes.json").read_bytes())["nodes"][0]
    home.write_node_keys(bytes.fromhex(dev_node["node_seed"]), bytes.fromhex(dev_node["bls_seed"]))
    chain = home.open_chain()
    extend(chain, home, 26, per_block=8)
    following = [chain.store.get_block(height) for height in (25, 26)]
    chain.rollback(24)  # blocks 25 and 26 stay valid next blocks: the block target's seeds
    key, bls_secret = home.load_node_keys()
    ledger = ChainLedger(chain)
    core = NodeCore(
        CoreConfig(chain_id=chain.genesis.chain_id, timing=Timing(1_000, 6_000), uptime=DEVNET_UPTIME),
        Identity(key, bls_secret, GuardedSigner(key, chain.store)),
        ledger,
        random_bytes=bytes,
        probe=lambda worker: True,
    )
    core.start(NOW)
    joiner_home, _ = Home.init(folder / "joiner", folder / "genesis.json", NodeConfig(sync_writes=False))
    joiner = joiner_home.open_chain()
    genesis_header = joiner.store.get_header(0)
    assert genesis_header is not None
    machine = StateSync(
        joiner.genesis.chain_id, joiner.genesis.params, genesis_header, 0, SyncConfig(min_gap=4)
    )
    sender = bytes(range(32))
    machine.add_peer(sender, NOW)  # type: ignore[arg-type]
    node = served_node(chain=chain, ledger=ledger, core=core)
    return SimpleNamespace(
        chain=chain, ledger=ledger, core=core, machine=machine, sender=sender, node=node, following=following
    )


def _tip(world: SimpleNamespace) -> tuple[int, bytes, bytes, int]:
    chain = world.chain
    return chain.height, chain.state.block_hash, chain.state.root, chain.final_height


# -- targets ----------------------------------------------------------------------------------------


def p2p_frame(data: bytes) -> None:
    from appchain.node.statesync import answer
    from consensus.messages import SYNC_REQUESTS, SYNC_RESPONSES, decode_message
    from state.encoding import DecodeError

    try:
        message = decode_message(data)
    except DecodeError:
        return
    world = _world()
    before = _tip(world)
    if isinstance(message, SYNC_REQUESTS):
        answer(world.chain, message)
    elif isinstance(message, SYNC_RESPONSES):
        world.machine.on_message(message, world.sender, NOW)
    else:
        world.core.on_message(message, world.sender, NOW)
    if _tip(world) != before:
        raise AssertionError("a fuzzed frame changed the chain")


def _p2p_seeds() -> list[bytes]:
    from consensus.messages import (
        TX_BATCH,
        CheckpointsRequest,
        ChunkRequest,
        Have,
        HeadersRequest,
        Proofs,
        ProofsRequest,
        SignedBlock,
        SnapshotsRequest,
        SyncRequest,
        TxBatch,
        TxMessage,
        Want,
    )
    from state.encoding import encode
    from state.events import TRANSACTIONS
    from state.hashing import blake3_256

    chain = _world().chain
    block = chain.store.get_block(chain.height)
    txs = tuple(event for event in block.events if isinstance(event, TRANSACTIONS))
    refused = [  # a batch over TX_BATCH, an entry that is no transaction (decoding refuses both)
        encode(["txs", [txs[0]] * (TX_BATCH + 1), False]),
        encode(["txs", [txs[0], ["transfer", 1]], False]),
    ]
    return refused + [
        encode(message)
        for message in (
            SignedBlock(block),
            *(
                [TxBatch(txs[:3], everyone=False), TxBatch(txs[:1], everyone=True), TxMessage(txs[0])]
                if txs
                else []
            ),
            SyncRequest(3),
            Have((blake3_256(encode(SignedBlock(block))),)),
            Want((blake3_256(encode(SignedBlock(block))),)),
            ProofsRequest(),
            Proofs(()),
            SnapshotsRequest(),
            CheckpointsRequest(4),
            HeadersRequest(2, 9),
            ChunkRequest(16, 0, 0),
        )
    ]


def block(data: bytes) -> None:
    from consensus.validation import check_pulse
    from state.encoding import DecodeError
    from state.errors import InvalidBlock
    from state.transition import execute_block

    try:
        decoded = _block_decoder().decode(data)
    except DecodeError:
        return
    world = _world()
    before = _tip(world)
    state = world.chain.state
    try:
        check_pulse(state, decoded, world.chain.random_value_at)
        execute_block(state, decoded)
    except InvalidBlock:
        pass
    if _tip(world) != before:
        raise AssertionError("executing a fuzzed block changed the state")


@cache
def _block_decoder() -> Any:
    from state.block import Block
    from state.encoding import Decoder

    return Decoder(Block)


def _block_seeds() -> list[bytes]:
    from state.encoding import encode

    world = _world()
    return [encode(world.chain.store.get_block(world.chain.height)), *(encode(b) for b in world.following)]


def genesis(data: bytes) -> None:
    from genesis.document import GenesisError
    from genesis.load import parse_genesis_json

    with contextlib.suppress(GenesisError):
        parse_genesis_json(data)


@cache
def _genesis_file() -> bytes:
    from appchain.home.genesis_files import write_devnet

    folder = Path(tempfile.mkdtemp(prefix="appchain-fuzz-genesis-"))
    write_devnet(folder / "genesis.json", nodes=12, seed="fuzz-genesis", users=2)
    data = (folder / "genesis.json").read_bytes()
    shutil.rmtree(folder, ignore_errors=True)
    return data


def json_rpc(data: bytes) -> None:
    from appchain.rpc.methods import handle_body

    world = _world()
    before = _tip(world)
    answer = handle_body(world.node, data)
    json.dumps(answer)  # what the server sends must encode
    if _tip(world) != before:
        raise AssertionError("a fuzzed JSON-RPC body changed the chain")


def _json_rpc_seeds() -> list[bytes]:
    _world()
    calls = [
        {"jsonrpc": "2.0", "id": 1, "method": "get_info"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "get_service_nodes",
            "params": {"limit": 3, "active_only": True},
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "get_state_proof",
            "params": {"namespace": "account", "key": "00" * 32},
        },
        {"jsonrpc": "2.0", "id": 4, "method": "get_checkpoint", "params": {"height": 8}},
        {"jsonrpc": "2.0", "id": 5, "method": "get_block", "params": {"height": 3}},
        {
            "jsonrpc": "2.0",
            "id": 6,
            "method": "get_quorum_state",
            "params": {"start_height": 1, "end_height": 9},
        },
    ]
    return [json.dumps(call).encode() for call in calls] + [json.dumps(calls[:3]).encode()]


@cache
def _storage() -> Any:
    from appchain.messaging.rpc import StorageService
    from appchain.messaging.store import MessageStore
    from appchain.messaging.swarm import Member
    from state.crypto import ed25519

    key = ed25519.SigningKey(b"\x09" * 32)
    member = Member(key.public_key, "127.0.0.1", 1000)

    class OneSwarm:
        def owning_swarm(self, owner: bytes) -> int | None:
            return 0

        def members(self, swarm_id: int) -> list[Member]:
            return [member]

        def my_swarm(self) -> int | None:
            return 0

        def height(self) -> int:
            return 100

    async def forward(member: Member, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("a swarm of one forwards nothing")

    folder = Path(tempfile.mkdtemp(prefix="appchain-fuzz-storage-"))
    atexit.register(shutil.rmtree, folder, True)
    store = MessageStore(folder / "messages", sync=False)
    return StorageService(store, key, OneSwarm(), forward=forward, clock=lambda: NOW)


def storage_rpc(data: bytes) -> None:
    service = _storage()
    reply = trio.run(service.handle_body, data)
    reply.encode()


def _storage_seeds() -> list[bytes]:
    import base64

    from state.crypto import ed25519

    _storage()
    user = ed25519.SigningKey(b"\x44" * 32)
    owner = "05" + user.public_key.hex()
    ms = int(NOW * 1000)
    store = {"pubkey": owner, "timestamp": ms, "ttl": 60_000, "data": base64.b64encode(b"hello").decode()}
    signature = base64.b64encode(user.sign(f"retrieve{ms}".encode())).decode()
    retrieve = {
        "pubkey": owner,
        "pubkey_ed25519": user.public_key.hex(),
        "timestamp": ms,
        "signature": signature,
    }
    bodies = [
        {"method": "store", "params": store},
        {"method": "retrieve", "params": retrieve},
        {"method": "get_swarm", "params": {"pubkey": owner}},
        {"method": "expire", "params": {"pubkey": owner, "messages": ["abc"], "expiry": ms + 1000}},
        {"method": "info", "params": {}},
    ]
    return [json.dumps(body).encode() for body in bodies]


@cache
def _onion() -> Any:
    from appchain.messaging.onion import OnionProcessor
    from state.crypto import ed25519

    key = ed25519.SigningKey(b"\x21" * 32)

    async def storage(request: bytes) -> tuple[int, Any]:
        return 200, {"ok": len(request)}

    async def relay(node_key: bytes, body: bytes) -> tuple[int, bytes, str]:
        return 502, b"no relay in the fuzzer", "text/plain"

    return key, OnionProcessor(key, storage, relay, lambda k: True)


def onion(data: bytes) -> None:
    _, processor = _onion()
    status, body, _ = trio.run(processor.handle, data)
    if not 100 <= status <= 599 or not isinstance(body, bytes):
        raise AssertionError(f"an onion answer of status {status}")


def onion_layer(data: bytes) -> None:
    """The fuzzed bytes as the plaintext of a layer this node can decrypt."""
    from appchain.messaging.onion import XCHACHA20, Channel, Hop, combine

    key, _ = _onion()
    layer = Channel.ephemeral()
    blob = layer.encrypt(XCHACHA20, data, Hop(key.public_key).x25519)
    onion(combine(blob, {"ephemeral_key": layer.public.hex(), "enc_type": XCHACHA20}))


def _onion_seeds() -> list[bytes]:
    from appchain.messaging.onion import Hop, build

    key, _ = _onion()
    request = build(json.dumps({"method": "info", "params": {}}).encode(), [], Hop(key.public_key))
    return [request.body]


def _onion_layer_seeds() -> list[bytes]:
    from appchain.messaging.onion import combine

    _onion()
    return [
        combine(json.dumps({"method": "info"}).encode(), {"headers": ""}),
        combine(b"", {"host": "example.org", "target": "/x"}),
        combine(b"{}", {"destination": "00" * 32, "ephemeral_key": "11" * 32, "enc_type": "xchacha20"}),
    ]


SERVERS = (
    "appchain.node.node",
    "appchain.rpc.server",
    "appchain.rpc.methods",
    "appchain.node.admin",
    "appchain.rpc.jsonrpc",
    "appchain.messaging.rpc",
    "appchain.messaging.onion",
    "appchain.messaging.layer",
    "p2p.host",
    "p2p.secure",
)
"""The node's servers: what the socket targets (:mod:`tests.fuzz_sockets`) reach."""
CHAIN = (
    "appchain.node.statesync",
    "consensus.node",
    "consensus.statesync",
    "consensus.validation",
    "state.transition",
)
TARGETS: dict[str, Target] = {
    "p2p_frame": Target(p2p_frame, _p2p_seeds, CHAIN),
    "block": Target(block, _block_seeds, CHAIN),
    "genesis": Target(genesis, lambda: [_genesis_file()], ("genesis.load",)),
    "json_rpc": Target(json_rpc, _json_rpc_seeds, (*CHAIN, "appchain.rpc.methods")),
    "storage_rpc": Target(storage_rpc, _storage_seeds, ("appchain.messaging.rpc",)),
    "onion": Target(onion, _onion_seeds, ("appchain.messaging.onion",)),
    "onion_layer": Target(onion_layer, _onion_layer_seeds, ("appchain.messaging.onion",)),
    "public_port": Target(sockets.public_port, sockets.public_seeds, SERVERS, sockets.stop),
    "admin_port": Target(sockets.admin_port, sockets.admin_seeds, SERVERS, sockets.stop),
    "p2p_port": Target(sockets.p2p_port, sockets.p2p_seeds, (*SERVERS, *CHAIN), sockets.stop),
    "storage_port": Target(sockets.storage_port, sockets.storage_seeds, SERVERS, sockets.stop),
}


def regression_inputs(name: str) -> list[Path]:
    folder = REGRESSIONS / name
    return sorted(folder.iterdir()) if folder.is_dir() else []


def main() -> None:
    parser = argparse.ArgumentParser(description="Fuzz one decoder of outside input with atheris.")
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--corpus", type=Path, help="a corpus folder to grow (default: a fresh one)")
    args = parser.parse_args()
    import atheris

    target = TARGETS[args.target]
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix=f"fuzz-{args.target}-"))
    corpus.mkdir(parents=True, exist_ok=True)
    # instrument our packages for coverage as they load: every module a target runs, and the
    # world the targets share (the seeds build it)
    with atheris.instrument_imports(include=list(PACKAGES)):
        for module in target.modules:
            importlib.import_module(module)
        seeds = target.seeds()  # builds what the target runs against (a chain, a store, a key)
    for index, seed in enumerate(seeds):
        (corpus / f"seed-{index}").write_bytes(seed)
    for path in regression_inputs(args.target):
        target.run(path.read_bytes())  # known crashers first: they must pass now
    count = 0

    def one(data: bytes) -> None:
        nonlocal count
        count += 1
        target.run(data)
        if count == args.runs:
            print(f"fuzz {args.target}: {count} inputs, 0 crashes", flush=True)

    atheris.Setup([sys.argv[0], f"-runs={args.runs}", "-max_len=65536", str(corpus)], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
