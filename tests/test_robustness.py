"""Every user mistake is one clear line, every corruption a loud stop, nothing is lost.

The table runs each command with its bad input in a subprocess (so a crash of the interpreter
shows as a crash, not as a caught exception) and asserts: the documented exit code, exactly one
``error:`` or ``fatal:`` line, no traceback, and, where a home is involved, that the home is
untouched: its ``status --json`` and its files are what they were before the command.

Exit codes (``appchain/cli/results.py``): 1 user error, 2 usage, 3 corruption, 4 unsafe simulation,
5 simulation short of its target, 130 interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import plyvel
import pytest

from appchain.cli.main import main
from appchain.home.exchange import ExportedBlock, ExportHeader
from appchain.home.genesis_files import write_devnet
from appchain.home.home import Home, NodeConfig
from appchain.home.keyfile import write_seed
from appchain.home.store import APPLIED_KEY, DELTA_PREFIX, EVENTS_PREFIX, HEADER_PREFIX, Applied, height_key
from appchain.node.admin import call as admin_call
from state.block import Header, compute_block_hash
from state.encoding import decode, encode
from tests.conftest import ROOT, extend
from tests.exports import frames_of, write_frames
from tests.servers import FakeServer, Respond, RunningNode, http_answer, rpc_reply, seed_for, storage_tls

DEEP = b"[" * 300_000
"""A few hundred KB of nesting: enough to overflow the C stack of a recursive parser."""

LEVELDB_BOOKKEEPING = ("LOG", "LOG.old", "LOCK", "CURRENT")


class Servers:
    """What the client rows are pointed at: scripted fakes (:data:`FAKES`), started with the
    module's world, and one node process, started the first time a row asks for it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fakes = {name: FakeServer(respond) for name, respond in FAKES.items()}
        tls = storage_tls(root)
        storage = {name: FakeServer(respond, tls) for name, respond in FAKES.items()}
        seeds = {name: FakeServer(seed_for(storage[name])) for name in FAKES}
        self.seeds = {name: seed.url for name, seed in seeds.items()}
        """A message client's ``--rpc``: it lists one node, whose storage port is the fake (over TLS)."""
        self.named = {seeds[name].url: storage[name].url for name in FAKES}
        """The server a message client's error names, for its ``--rpc``."""
        self._others = [*storage.values(), *seeds.values()]
        self._node: RunningNode | None = None

    def url(self, name: str, *, storage: bool = False) -> str:
        if name == "admin":
            return self.node.admin_url
        return self.seeds[name] if storage else self.fakes[name].url

    @property
    def node(self) -> RunningNode:
        if self._node is None:
            self._node = RunningNode(self.root / "node-net")
        return self._node

    def stop(self) -> None:
        for fake in [*self.fakes.values(), *self._others]:
            fake.stop()
        if self._node is not None:
            self._node.stop()


@dataclass
class World:
    root: Path
    net: Path  # genesis.json of the devnet
    home: Path  # a healthy home at height 12, final 12
    export: Path  # the home's export
    servers: Servers


def cli(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appchain.cli", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
    )


def status_of(home: Path) -> tuple[int, str]:
    """``status --json`` of a home, run in this process (exit code and output)."""
    result = cli("status", "--home", home, "--json")
    return result.returncode, result.stdout


def files_of(home: Path) -> dict[str, str]:
    """The home's files and their hashes, less LevelDB's own bookkeeping, which every open
    renews (the write-ahead log and manifest get new numbers; after a clean close the log is
    empty, so any record written would show as a new table file at the next open)."""
    found = {}
    for path in sorted(home.rglob("*")):
        name = path.name
        if not path.is_file() or name in LEVELDB_BOOKKEEPING or name in ("node.lock", "start.lock"):
            continue
        if name.startswith("MANIFEST-") or name.endswith(".log"):
            continue
        found[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def records_of(home: Path) -> dict[str, str]:
    """Every record of the home's database (key → value hash); the table files' hashes where
    the database cannot be read at all (a row that damaged it)."""
    try:
        db = plyvel.DB(str(home / "data" / "chain"))
    except plyvel.Error:
        return {k: v for k, v in files_of(home).items() if k.startswith("data/")}
    try:
        return {key.hex(): hashlib.sha256(value).hexdigest() for key, value in db.iterator()}
    except plyvel.Error:
        return {k: v for k, v in files_of(home).items() if k.startswith("data/")}
    finally:
        db.close()


def fingerprint(home: Path) -> tuple[tuple[int, str], dict[str, str], dict[str, str]]:
    """What a command that fails must leave as it was: the status, the home's own files (config,
    genesis, keys) and the records of its database."""
    own = {k: v for k, v in files_of(home).items() if not k.startswith("data/")}
    return status_of(home), own, records_of(home)


def outside_files(folder: Path, home: Path | None) -> dict[str, str]:
    """Every entry under ``folder`` but outside ``home`` (a refused command's target, say): a
    regular file by its content's hash, a link by where it points, anything else by its kind."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if home is not None and (path == home or home in path.parents):
            continue
        if path.is_symlink():
            found[str(path)] = "link to " + os.readlink(path)
        elif path.is_fifo():
            found[str(path)] = "fifo"
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            found[str(path)] = "folder"
    return found


def copy_home(world: World, tmp: Path, name: str = "copy") -> Path:
    target = tmp / name
    shutil.copytree(world.home, target)
    return target


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("robust")
    net = root / "net" / "genesis.json"
    write_devnet(net, nodes=12, seed="robust", users=4)
    home, _ = Home.init(root / "home", net, NodeConfig(snapshot_interval=4))
    with home.open_chain() as chain:
        extend(chain, home, 12, seed="robust", per_block=10)
        assert chain.final_height == 12
    export = root / "chain.events"
    assert main(["export-events", "--home", str(home.path), "--out", str(export)]) == 0
    # One open after the writer closed moves LevelDB's log into a table: from here on an
    # open that writes nothing leaves every table file as it is.
    first = fingerprint(home.path)
    assert first[0][0] == 0
    assert fingerprint(home.path) == first, "opening a home must not change its files"
    servers = Servers(root)
    try:
        yield World(root, net, home.path, export, servers)
    finally:
        servers.stop()


# -- the table -------------------------------------------------------------------------------------


Setup = Callable[["World", Path], tuple[list[str | Path], Path | None]]


@dataclass
class Row:
    """One bad input: ``setup`` prepares it and returns the arguments and the home involved."""

    point: int  # the numbered point of the issue this row covers
    name: str
    setup: Callable[[World, Path], tuple[list[str | Path], Path | None]]
    code: int
    says: str  # a piece of the error line
    prefix: str = "error:"
    env: dict[str, str] | None = None
    issue: int = 7  # the issue whose points ``point`` numbers (7: the first table; 18: files, client)
    names_server: bool = False  # the error line names the server (its --rpc host:port)
    unchanged: Callable[[World], object] | None = None  # what must read the same after the command


def _deep_genesis_validate(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    (tmp / "deep.json").write_bytes(DEEP)
    return ["genesis", "validate", tmp / "deep.json"], None


def _deep_genesis_init(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    (tmp / "deep.json").write_bytes(DEEP)
    return ["init", "--home", tmp / "new", "--genesis", tmp / "deep.json"], None


def _deep_config(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = copy_home(w, tmp)
    (home / "config.toml").write_bytes(b"a = " + DEEP)
    return ["status", "--home", home], home


def _deep_keys(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = copy_home(w, tmp)
    (home / "keys" / "dev-accounts.json").write_bytes(DEEP)
    return ["dev-chain", "--home", home, "--blocks", "1", "--seed", "x"], home


def _fresh(w: World, tmp: Path) -> Path:
    home, _ = Home.init(tmp / "fresh", w.net)
    status_of(home.path)  # settle LevelDB's log into a table (see the world fixture)
    return home.path


def _deep_embedded_genesis(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    frames = frames_of(w.export)
    header = decode(frames[0], ExportHeader)
    frames[0] = encode(msgspec.structs.replace(header, genesis_file=DEEP))
    export = write_frames(tmp / "deep.events", frames)
    fresh = _fresh(w, tmp)
    return ["import-events", "--home", fresh, "--in", export], fresh


def _final_above_tip(w: World, tmp: Path, command: list[str]) -> tuple[list[str | Path], Path | None]:
    """What a torn write-ahead log left in the issue: blocks above 9 lost, the final marker at 12."""
    home = copy_home(w, tmp)
    db = plyvel.DB(str(home / "data" / "chain"))
    try:
        header = decode(db.get(height_key(HEADER_PREFIX, 9)), Header)
        for height in range(10, 13):
            for prefix in (HEADER_PREFIX, EVENTS_PREFIX, DELTA_PREFIX):
                db.delete(height_key(prefix, height))
        db.put(APPLIED_KEY, encode(Applied(9, compute_block_hash(header), header.state_root)))
    finally:
        db.close()
    status_of(home)  # settle LevelDB's log, so the table compares files after the damage
    return [*command, "--home", home], home


def _table_file(home: Path) -> Path:
    tables = sorted((home / "data" / "chain").glob("*.ldb"), key=lambda p: p.stat().st_size)
    return tables[-1]  # the largest: it holds the blocks


def _truncated_table(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = copy_home(w, tmp)
    table = _table_file(home)
    with table.open("r+b") as f:
        f.truncate(table.stat().st_size // 2)
    return ["status", "--home", home], home


def _overwritten_table(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = copy_home(w, tmp)
    table = _table_file(home)
    with table.open("r+b") as f:
        f.seek(table.stat().st_size // 3)
        f.write(b"\x00" * 4096)
    return ["replay", "--home", home], home


def _altered_pulse_signature(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    frames = frames_of(w.export)
    exported = decode(frames[1 + 5], ExportedBlock)
    block = exported.block
    index, signature = block.signatures[0]
    forged = (index, bytes([signature[0] ^ 1]) + signature[1:])
    block = msgspec.structs.replace(block, signatures=(forged, *block.signatures[1:]))
    frames[1 + 5] = encode(ExportedBlock(block, exported.certificate))
    export = write_frames(tmp / "forged.events", frames)
    fresh = _fresh(w, tmp)
    return ["import-events", "--home", fresh, "--in", export], fresh


def _other_chain_id(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    frames = frames_of(w.export)
    header = decode(frames[0], ExportHeader)
    frames[0] = encode(msgspec.structs.replace(header, chain_id="another-chain"))
    export = write_frames(tmp / "other.events", frames)
    fresh = _fresh(w, tmp)
    return ["import-events", "--home", fresh, "--in", export], fresh


def _other_embedded_genesis(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    other = write_devnet(tmp / "other" / "genesis.json", nodes=12, seed="other", users=1)
    assert other.chain_id == "appchain-devnet"
    frames = frames_of(w.export)
    header = decode(frames[0], ExportHeader)
    genesis_file = (tmp / "other" / "genesis.json").read_bytes()
    frames[0] = encode(msgspec.structs.replace(header, genesis_file=genesis_file))
    export = write_frames(tmp / "other.events", frames)
    fresh = _fresh(w, tmp)
    return ["import-events", "--home", fresh, "--in", export], fresh


def _import_from_folder(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    fresh = _fresh(w, tmp)
    return ["import-events", "--home", fresh, "--in", tmp], fresh


def _init_home_is_a_file(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    (tmp / "a-file").write_text("x")
    return ["init", "--home", tmp / "a-file", "--genesis", w.net], None


def _genesis_out_folder(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    return ["genesis", "new", "--nodes", "1", "--seed", "s", "--out", tmp], None


def _export_to_folder(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    (tmp / "out").mkdir()
    return ["export-events", "--home", w.home, "--out", tmp / "out"], w.home


def _config_not_utf8(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = copy_home(w, tmp)
    (home / "config.toml").write_bytes(b"[storage]\nsnapshot_interval = 4 # \xff\xfe\n")
    return ["status", "--home", home], home


def _no_funded_accounts(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = copy_home(w, tmp)
    (home / "keys" / "dev-accounts.json").write_text('{"accounts": []}')
    return ["dev-chain", "--home", home, "--blocks", "1", "--seed", "x"], home


def _too_many_events(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    return [
        "dev-chain",
        "--home",
        w.home,
        "--blocks",
        "1",
        "--seed",
        "x",
        "--events-per-block",
        "20000",
    ], w.home


def _broken_key_file(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = copy_home(w, tmp)
    (home / "keys" / "dev-nodes.json").write_text('{"nodes": [{"node_seed": "zz", "bls_seed": "00"}]}')
    return ["dev-chain", "--home", home, "--blocks", "1", "--seed", "x"], home


def _args(*args: str) -> Callable[[World, Path], tuple[list[str | Path], Path | None]]:
    return lambda w, tmp: (list(args), None)


def _init_interval_zero(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    return ["init", "--home", tmp / "new", "--genesis", w.net, "--snapshot-interval", "0"], None


def _bad_chain_id(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    return [
        "genesis",
        "new",
        "--nodes",
        "1",
        "--seed",
        "s",
        "--chain-id",
        "BAD ID",
        "--out",
        tmp / "g.json",
    ], None


def _genesis_overwrite(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    return ["genesis", "new", "--nodes", "12", "--seed", "robust", "--out", w.net], w.home


# -- issue 18: no command destroys a file ----------------------------------------------------------


def _with_node_keys(w: World, tmp: Path) -> Path:
    """A copy of the world's home holding node keys (node 0's dev keys)."""
    home = copy_home(w, tmp)
    entry = json.loads((home / "keys" / "dev-nodes.json").read_text())["nodes"][0]
    Home(home).write_node_keys(bytes.fromhex(entry["node_seed"]), bytes.fromhex(entry["bls_seed"]))
    status_of(home)  # settle LevelDB's log (see the world fixture)
    return home


def _existing(tmp: Path, name: str = "old.events") -> Path:
    target = tmp / name
    target.write_bytes(b"somebody's work")
    return target


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "fifo")
    return tmp / "fifo"


def _symlink(tmp: Path) -> Path:
    (tmp / "link").symlink_to(_existing(tmp, "real"))
    return tmp / "link"


def _export_events(target: Callable[[World, Path], Path], *more: str) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
        return ["export-events", "--home", w.home, "--out", target(w, tmp), *more], w.home

    return setup


def _export_events_into_home(path: Callable[[Path, Path], Path]) -> Setup:
    """export-events --force of a home with node keys onto ``path(home, tmp)``: one of its own files."""

    def setup(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
        home = _with_node_keys(w, tmp)
        return ["export-events", "--home", home, "--out", path(home, tmp), "--force"], home

    return setup


def _through_a_linked_folder(home: Path, tmp: Path) -> Path:
    (tmp / "linked").symlink_to(home)
    return tmp / "linked" / "genesis.json"


def _export_genesis(target: Callable[[Path], Path]) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
        out = target(tmp)
        return ["export-genesis", "--home", w.home, "--height", "12", "--out", out, "--force"], w.home

    return setup


def _query_trust_file(target: Callable[[Path], Path]) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
        url = f"http://127.0.0.1:{closed_port()}"
        trust = target(tmp)
        return ["query", "balance", "00" * 32, "--rpc", url, "--genesis", w.net, "--trust-file", trust], None

    return setup


def _keys_new_into_home(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = _with_node_keys(w, tmp)
    return ["keys", "new", "--out", home / "keys" / "wallet.key"], home


def _genesis_new_over_home(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = copy_home(w, tmp)
    return ["genesis", "new", "--nodes", "1", "--seed", "s", "--out", home / "genesis.json", "--force"], home


def _testnet_into_home(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
    home = copy_home(w, tmp)
    return ["testnet", "--nodes", "1", "--out", home / "data" / "net"], home


def _history_line(line: bytes) -> Setup:
    """check-histories on a copy of the home whose history holds one good line, then ``line``."""

    def setup(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
        home = copy_home(w, tmp)
        good = b'{"at": 1.5, "final": 4, "hash": "aa", "root": "bb"}\n'
        (home / "data" / "history.jsonl").write_bytes(good + line + b"\n" + good)
        return ["check-histories", home], home

    return setup


def _bad_base64(path: str, body: bytes) -> bytes:
    """Base64 where a node puts hex (JSON-RPC) and base64 that does not decode (storage)."""
    if path.startswith("/storage_rpc"):
        return http_answer(200, {"messages": [{"hash": "h1", "timestamp": 1, "data": "not*base64!"}]})

    def result(method: str, params: dict[str, Any]) -> object:
        if method == "get_info":
            return {"status": "OK", "height": 9, "immutable_height": 4, "chain_id": "appchain-devnet"}
        if method == "get_accounts":
            return {
                "accounts": {
                    a: {"nonce": "AAAAAQ==", "pending_nonce": "AAAAAQ=="} for a in params["addresses"]
                }
            }
        blob = "q83vEjRWeJA="
        return {"height": params.get("height"), "key": params.get("key"), "value": blob, "header": blob,
                "links": [], "proof": blob, "checkpoint_height": 4}  # fmt: skip

    return rpc_reply(body, result)


def _misdirected_without_ip(path: str, body: bytes) -> bytes:
    """421 (another swarm's account) naming a member without its address."""
    return http_answer(421, {"snodes": [{"pubkey_ed25519": "00" * 32, "port_https": 22021}]}, "Misdirected")


FAKES: dict[str, Respond] = {
    "non-HTTP bytes": lambda path, body: b"SSH-2.0-OpenSSH_9.6p1\r\n",
    "a 70 KB header line": lambda path, body: b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 70_000 + b"\r\n\r\n",
    "a JSON list": lambda path, body: http_answer(200, [1, 2, 3]),
    "bad base64": _bad_base64,
    "421 without ip": _misdirected_without_ip,
}


def _client(command: str, server: str) -> Setup:
    """``command`` (tx, query or msg) against ``server`` (a fake of :data:`FAKES`, or a node's admin port)."""

    def setup(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
        url = w.servers.url(server, storage=command == "msg")
        key = tmp / "me.key"
        write_seed(key, bytes(range(32)))
        argv: dict[str, list[str | Path]] = {
            "tx": ["tx", "transfer", "--key", key, "--rpc", url, "--to", "00" * 32, "--amount", "1",
                   "--genesis", w.net, "--trust-file", tmp / "trust.json"],
            "query": ["query", "balance", "00" * 32, "--rpc", url, "--genesis", w.net,
                      "--trust-file", tmp / "trust.json"],
            "msg": ["msg", "retrieve", "--key", key, "--rpc", url],
        }  # fmt: skip
        return argv[command], None

    return setup


def _tx_to_node(*more: str, kind: str = "transfer") -> Setup:
    """``tx`` from a funded account of the running node's testnet, with ``more`` arguments."""

    def setup(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
        node = w.servers.node
        key = node.user_key(tmp / "user.key")
        what: list[str | Path] = ["--to", "00" * 32, "--amount", "1"]
        if kind == "register":
            node_home = tmp / "operated"
            Home(node_home).write_node_keys(bytes(32), bytes([1]) * 32)
            what = ["--node-home", node_home, "--amount", "100"]
        return ["tx", kind, "--key", key, "--rpc", node.url, *what, *more], None

    return setup


def _mempool(w: World) -> object:
    """What a broadcast would change on the running node: its mempool and the account's nonces."""
    node = w.servers.node
    account = node.user()
    accounts = node.call("get_accounts", addresses=[account.public_key.hex()])["accounts"]
    status = admin_call(("127.0.0.1", node.member.admin_port), "status")
    return status["mempool"], accounts


def _msg_store(*more: str) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[list[str | Path], Path | None]:
        key = tmp / "me.key"
        write_seed(key, bytes(range(32)))
        return [
            "msg",
            "store",
            "--key",
            key,
            "--rpc",
            w.servers.url("a JSON list"),
            "--data",
            "hi",
            *more,
        ], None

    return setup


ARGUMENT_ROWS = [
    *(Row(3, f"tx --timeout {value}", _tx_to_node("--timeout", value), 1,
          "--timeout", issue=18, unchanged=_mempool) for value in ("nan", "-5", "inf", "0")),
    Row(3, "tx --no-wait --timeout nan", _tx_to_node("--no-wait", "--timeout", "nan"), 1,
        "--timeout nan must be a number of seconds above 0", issue=18, unchanged=_mempool),
    Row(5, "tx --nonce 2^64", _tx_to_node("--nonce", str(2**64)), 1, f"--nonce {2**64} must be from 1",
        issue=18, unchanged=_mempool),
    Row(5, "tx --nonce 0", _tx_to_node("--nonce", "0"), 1, "--nonce 0 must be from 1", issue=18,
        unchanged=_mempool),
    Row(5, "tx register --fee-bp 2^64", _tx_to_node("--fee-bp", str(2**64), kind="register"), 1,
        f"--fee-bp {2**64} must be from 0 to 10000", issue=18, unchanged=_mempool),
    *(Row(5, f"msg store --ttl {value}", _msg_store("--ttl", value), 1, "--ttl", issue=18)
      for value in ("nan", "inf", "1e308", "-1", "5")),
    Row(5, "msg store --namespace 2^15", _msg_store("--namespace", "32768"), 1,
        "--namespace 32768 must be from -32768 to 32767", issue=18),
    Row(5, "tx --rpc without http://", lambda w, t: (["tx", "claim", "--key", t / "k", "--rpc", "127.0.0.1:1"],
        None), 1, "is not an http:// URL", issue=18),
]  # fmt: skip


SERVER_SAYS = {
    "admin": "not an HTTP answer",
    "non-HTTP bytes": "not an HTTP answer",
    "a 70 KB header line": "a line longer than 64 KiB",
    "a JSON list": "answered a JSON list",
}
CLIENT_ROWS = [
    *(Row(5, f"{command} against {server}", _client(command, server), 1, says, issue=18, names_server=True)
      for server, says in SERVER_SAYS.items() for command in ("tx", "query", "msg")),
    Row(5, "tx against bad base64", _client("tx", "bad base64"), 1, "without the account's nonce",
        issue=18, names_server=True),
    Row(5, "query against bad base64", _client("query", "bad base64"), 6, "lied: its 'value' is not hex",
        issue=18, names_server=True),
    Row(5, "msg against bad base64", _client("msg", "bad base64"), 1, "its data is not base64", issue=18,
        names_server=True),
    Row(5, "tx against a 421 without ip", _client("tx", "421 without ip"), 1, "HTTP 421", issue=18,
        names_server=True),
    Row(5, "query against a 421 without ip", _client("query", "421 without ip"), 1, "HTTP 421", issue=18,
        names_server=True),
    Row(5, "msg against a 421 without ip", _client("msg", "421 without ip"), 1, "None is not an address",
        issue=18, names_server=True),
]  # fmt: skip


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FILE_ROWS = [
    Row(2, "export-events --out onto an existing file", _export_events(lambda w, t: _existing(t)), 1,
        "already exists: pass --force to overwrite it", issue=18),
    Row(2, "export-events --force onto the home's node key",
        _export_events_into_home(lambda h, t: h / "keys" / "node_ed25519.key"), 1, "no command writes there",
        issue=18),
    Row(2, "export-events --force onto the home's key, through ..",
        _export_events_into_home(lambda h, t: h / "data" / ".." / "keys" / "node_bls.key"), 1,
        "(its keys folder)", issue=18),
    Row(2, "export-events --force onto the home's genesis.json",
        _export_events_into_home(lambda h, t: h / "genesis.json"), 1, "(its genesis file)", issue=18),
    Row(2, "export-events --force onto genesis.json through a linked folder",
        _export_events_into_home(_through_a_linked_folder), 1, "no command writes there", issue=18),
    Row(2, "export-events --force onto config.toml",
        _export_events_into_home(lambda h, t: h / "config.toml"), 1, "(its configuration)", issue=18),
    Row(2, "export-events --force onto a FIFO", _export_events(lambda w, t: _fifo(t), "--force"), 1,
        "is not a regular file", issue=18),
    Row(2, "export-events --force onto a symlink", _export_events(lambda w, t: _symlink(t), "--force"), 1,
        "is a symbolic link", issue=18),
    Row(2, "export-events --force onto /dev/null", _export_events(lambda w, t: Path("/dev/null"), "--force"),
        1, "is not a regular file", issue=18),
    Row(2, "export-genesis --force onto a FIFO", _export_genesis(_fifo), 1, "is not a regular file",
        issue=18),
    Row(2, "export-genesis --force onto a symlink", _export_genesis(_symlink), 1, "is a symbolic link",
        issue=18),
    Row(2, "export-genesis --force onto /dev/null", _export_genesis(lambda t: Path("/dev/null")), 1,
        "is not a regular file", issue=18),
    Row(2, "query --trust-file a FIFO", _query_trust_file(_fifo), 1, "is not a regular file", issue=18),
    Row(2, "query --trust-file a symlink", _query_trust_file(_symlink), 1, "is a symbolic link", issue=18),
    Row(2, "query --trust-file /dev/null", _query_trust_file(lambda t: Path("/dev/null")), 1,
        "is not a regular file", issue=18),
    Row(2, "keys new --out into a home's keys/", _keys_new_into_home, 1, "(its keys folder)", issue=18),
    Row(2, "genesis new --force onto a home's genesis.json", _genesis_new_over_home, 1,
        "(its genesis file)", issue=18),
    Row(2, "testnet --out inside a home's database folder", _testnet_into_home, 1,
        "(its database folder)", issue=18),
    Row(5, "check-histories, a line that is not UTF-8", _history_line(b'{"at": 2, "hash": "\xff"}'), 1,
        "history.jsonl:2: not valid JSON: not UTF-8 text", issue=18),
    Row(5, "check-histories, a deeply nested line", _history_line(DEEP), 1,
        "history.jsonl:2: not valid JSON: nested deeper than 64 levels", issue=18),
]  # fmt: skip


ROWS = [
    Row(1, "genesis validate, deep nesting", _deep_genesis_validate, 1, "nested deeper than 64"),
    Row(1, "init, deep nesting", _deep_genesis_init, 1, "nested deeper than 64"),
    Row(1, "config.toml, deep nesting", _deep_config, 1, "nested too deeply"),
    Row(1, "dev key file, deep nesting", _deep_keys, 1, "nested deeper than 64"),
    Row(1, "export's embedded genesis, deep nesting", _deep_embedded_genesis, 1, "nested deeper than 64"),
    Row(2, "status, final marker above the tip", lambda w, t: _final_above_tip(w, t, ["status"]), 3,
        "final marker names block 12, above the applied tip 9", prefix="fatal:"),
    Row(2, "dev-chain, final marker above the tip",
        lambda w, t: _final_above_tip(w, t, ["dev-chain", "--blocks", "1", "--seed", "x"]), 3,
        "final blocks were lost", prefix="fatal:"),
    Row(2, "rollback, final marker above the tip",
        lambda w, t: _final_above_tip(w, t, ["rollback", "--height", "5"]), 3,
        "final blocks were lost", prefix="fatal:"),
    Row(3, "status, truncated table file", _truncated_table, 3, "cannot read", prefix="fatal:"),
    Row(3, "replay, overwritten table file", _overwritten_table, 3, "cannot read", prefix="fatal:"),
    Row(5, "import, altered Pulse signature (verified by default)", _altered_pulse_signature, 1,
        "import refused at height 5"),
    Row(5, "import, another chain id", _other_chain_id, 1, "the export is of chain 'another-chain'"),
    Row(5, "import, another embedded genesis", _other_embedded_genesis, 1, "embedded genesis file hashes to"),
    Row(6, "import-events --in DIR", _import_from_folder, 1, "is a folder"),
    Row(6, "init --home FILE", _init_home_is_a_file, 1, "is not a folder"),
    Row(6, "genesis new --out DIR", _genesis_out_folder, 1, "is a folder"),
    Row(6, "export-events --out DIR", _export_to_folder, 1, "is a folder"),
    Row(6, "config.toml not UTF-8", _config_not_utf8, 1, "not UTF-8"),
    Row(6, "dev-chain, no funded accounts", _no_funded_accounts, 1, "lists no accounts"),
    Row(6, "dev-chain --events-per-block 20000", _too_many_events, 1, "above the chain's limit 10000"),
    Row(6, "dev-chain, broken dev key file", _broken_key_file, 1, "nodes[0].node_seed must be 32 bytes"),
    Row(6, "simulate skew=4:nan", _args("simulate", "--nodes", "12", "--faults", "skew=4:nan"), 1,
        "skew (seconds) must be a finite number"),
    Row(7, "init --snapshot-interval 0", _init_interval_zero, 1, "--snapshot-interval must be a positive"),
    Row(7, "genesis new --chain-id 'BAD ID'", _bad_chain_id, 1, "--chain-id 'BAD ID'"),
    Row(7, "simulate latency=nan", _args("simulate", "--nodes", "12", "--faults", "latency=nan"), 1,
        "latency (seconds) must be a finite number"),
    Row(7, "simulate latency=-1", _args("simulate", "--nodes", "12", "--faults", "latency=-1"), 1,
        "latency (seconds) must be a finite number of at least 0"),
    Row(7, "simulate jitter=-0.5", _args("simulate", "--nodes", "12", "--faults", "jitter=-0.5"), 1,
        "jitter (seconds) must be a finite number"),
    Row(7, "simulate short of --blocks", _args("simulate", "--nodes", "12", "--blocks", "2", "--faults",
        "partition=0-5|6-11@0-1000"), 5, "did not all finalize 2 blocks"),
    Row(8, "unknown command is a usage error", _args("frobnicate"), 2, "invalid choice"),
    Row(8, "genesis new over an existing genesis", _genesis_overwrite, 1, "pass --force to overwrite"),
    *FILE_ROWS,
    *CLIENT_ROWS,
    *ARGUMENT_ROWS,
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.issue}.{r.point}: {r.name}" for r in ROWS])
def test_bad_input_is_one_line_and_touches_nothing(world: World, tmp_path: Path, row: Row) -> None:
    args, home = row.setup(world, tmp_path)
    before = fingerprint(home) if home is not None else None
    net_before = world.net.read_bytes()
    others_before = outside_files(tmp_path, home)
    unchanged_before = None if row.unchanged is None else row.unchanged(world)
    result = cli(*args, env=row.env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == row.code, output
    assert "Traceback" not in output
    marked = [line for line in result.stderr.splitlines() if "error:" in line or "fatal:" in line]
    assert len(marked) == 1, result.stderr
    (line,) = marked
    if row.code != 2:  # argparse's own line reads "appchain: error: …"
        assert line.startswith(row.prefix), line
    assert row.says in line, line
    if row.names_server:
        url = str(args[args.index("--rpc") + 1])
        url = world.servers.named.get(url, url)  # a message client names the storage port it asked
        assert url.removeprefix("http://") in line, line
    if home is not None:
        assert fingerprint(home) == before, f"{row.name} changed the home"
    assert world.net.read_bytes() == net_before
    assert outside_files(tmp_path, home) == others_before, "a file outside the home changed"
    if row.unchanged is not None:
        assert row.unchanged(world) == unchanged_before, "the command acted (something was sent)"
    assert Path("/dev/null").is_char_device()
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"
    if row.point == 7 and args[0] == "init":
        assert not (tmp_path / "new").exists(), "a refused init must not create the home"
    if row.point == 7 and args[0] == "genesis":
        assert not (tmp_path / "g.json").exists(), "a refused genesis must not be written"


def test_every_point_of_the_issue_has_rows() -> None:
    assert {row.point for row in ROWS if row.issue == 7} >= {1, 2, 3, 5, 6, 7, 8}  # 4: the two-process test
    # 4 (the light client's trust and tx's finality) is in test_light.py and test_wallet.py
    assert {row.point for row in ROWS if row.issue == 18} >= {2, 3, 5}


def test_force_replaces_a_regular_file_and_only_that(world: World, tmp_path: Path) -> None:
    """Issue 18, point 2, the valid case: ``--force`` replaces an existing regular file, whole."""
    target = _existing(tmp_path)
    result = cli("export-events", "--home", world.home, "--out", target, "--force")
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == world.export.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.events"]


# -- conveniences (point 8) ------------------------------------------------------------------------


def test_version_default_home_and_missing_folders(world: World, tmp_path: Path) -> None:
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("appchain ")
    by_env = cli("status", "--json", env={"APPCHAIN_HOME": str(world.home)})
    assert by_env.returncode == 0 and json.loads(by_env.stdout) == json.loads(status_of(world.home)[1])
    no_home = cli("status", env={"APPCHAIN_HOME": str(tmp_path / "absent")})
    assert no_home.returncode == 1 and "is not a node home" in no_home.stderr
    # ~/.appchain when nothing names a home
    env = {k: v for k, v in os.environ.items() if k != "APPCHAIN_HOME"}
    result = subprocess.run(
        [sys.executable, "-m", "appchain.cli", "status"],
        capture_output=True, text=True, check=False, cwd=ROOT, env={**env, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 1 and f"{tmp_path / '.appchain'} is not a node home" in result.stderr
    # genesis new makes missing folders, and --force overwrites
    out = tmp_path / "a" / "b" / "genesis.json"
    assert cli("genesis", "new", "--nodes", "1", "--seed", "s", "--out", out).returncode == 0
    assert (out.parent / "keys" / "accounts.json").exists()
    again = cli("genesis", "new", "--nodes", "2", "--seed", "s", "--out", out, "--force")
    assert again.returncode == 0 and "2 service nodes" in again.stdout


# -- a busy home (point 4): two processes ---------------------------------------------------------


@contextmanager
def holding(*args: str) -> Iterator[subprocess.Popen[str]]:
    """A second process running ``python -c``-style ``args`` until the block ends (by its pid)."""
    process = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "holding"
        yield process
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


HOLD_HOME = """
import sys, pathlib
from appchain.home.home import Home
home = Home(pathlib.Path(sys.argv[1]))
with home.lock("dev-chain"), home.open_chain():
    print("holding", flush=True)
    sys.stdin.read()
"""

HOLD_DATABASE = """
import sys, pathlib
from appchain.home.store import BlockStore
with BlockStore(pathlib.Path(sys.argv[1]) / "data" / "chain"):
    print("holding", flush=True)
    sys.stdin.read()
"""


def test_a_busy_home_is_a_user_error_across_processes(world: World, tmp_path: Path) -> None:
    home = copy_home(world, tmp_path)
    before = files_of(home)
    with holding("-c", HOLD_HOME, str(home)) as holder:
        for command in (["status"], ["replay"], ["dev-chain", "--blocks", "1", "--seed", "x"]):
            result = cli(*command, "--home", home)
            assert result.returncode == 1, result.stderr
            assert result.stderr == (
                f"error: {home} is in use by process {holder.pid} (dev-chain): one process per home folder\n"
            )
    # a process that opened the database without the home lock: LevelDB's own lock says it
    with holding("-c", HOLD_DATABASE, str(home)):
        result = cli("status", "--home", home)
        assert result.returncode == 1
        assert (
            result.stderr
            == f"error: the database at {home / 'data' / 'chain'} is in use by another process\n"
        )
    assert files_of(home) == before
    assert cli("status", "--home", home).returncode == 0  # both gone: the home opens again


# -- an interrupted import (point 5) ---------------------------------------------------------------


def test_an_interrupted_import_leaves_the_home_as_it_was(world: World, tmp_path: Path) -> None:
    long_home = copy_home(world, tmp_path, "long")
    with Home(long_home).open_chain() as chain:
        extend(chain, Home(long_home), 150, seed="long", per_block=40)
    export = tmp_path / "long.events"
    assert cli("export-events", "--home", long_home, "--out", export).returncode == 0
    fresh = _fresh(world, tmp_path)
    before = fingerprint(fresh)
    process = subprocess.Popen(
        [sys.executable, "-m", "appchain.cli", "import-events", "--home", str(fresh), "--in", str(export)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    first = process.stderr.readline()  # the first progress line: blocks are being written
    assert first.startswith("import ["), first
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=120) == 130, rest
    assert "Traceback" not in rest
    assert "error: import interrupted at height" in rest and "as it was before the import" in rest
    assert status_of(fresh) == before[0]
    # and the same import, left alone, completes
    assert cli("import-events", "--home", fresh, "--in", export).returncode == 0
    assert json.loads(status_of(fresh)[1])["height"] == 162


# -- a torn write-ahead log (point 2): never a silent loss -----------------------------------------


@pytest.mark.slow
def test_a_torn_log_never_loses_final_blocks_silently(world: World, tmp_path: Path) -> None:
    home = copy_home(world, tmp_path, "writer")
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_writer", str(home), "torn"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    for _ in range(30):  # let it write (and certify) a few checkpoints
        assert writer.stdout.readline().startswith(("opened", "written"))
    writer.kill()
    writer.wait()
    writer.stdout.close()
    (log,) = (home / "data" / "chain").glob("*.log")
    size = log.stat().st_size
    assert size > 0, "the killed writer left its last writes in the log"
    for fraction in (0.1, 0.35, 0.6, 0.85):
        for damage in ("cut", "garbage"):
            torn = tmp_path / f"torn-{fraction}-{damage}"
            shutil.copytree(home, torn)
            torn_log = torn / "data" / "chain" / log.name
            with torn_log.open("r+b") as f:
                if damage == "cut":
                    f.truncate(int(size * fraction))
                else:
                    f.seek(int(size * fraction))
                    f.write(bytes(range(256)) * 2)
            result = cli("status", "--home", torn, "--json")
            assert "Traceback" not in result.stderr
            if damage == "cut":  # a crash mid-write: the partial batch is dropped, the rest opens
                assert result.returncode == 0, result.stderr
                status = json.loads(result.stdout)
                assert status["final_height"] <= status["height"]
                replay = cli("replay", "--home", torn, "--json")
                assert (
                    replay.returncode == 0 and json.loads(replay.stdout)["state_root"] == status["state_root"]
                )
            else:  # damage inside the log: a loud stop, not a log with a hole in it
                assert result.returncode == 3 and result.stderr.startswith("fatal: "), result.stderr
                assert result.stderr.count("\n") == 1


# -- the parsers themselves (point 1) --------------------------------------------------------------


def test_deep_nesting_is_refused_by_every_parser_without_a_crash() -> None:
    script = """
import sys, tomllib, msgspec
import state.crypto.bls
state.crypto.bls.secret_key_from_seed(bytes(32))  # loads py_ecc, which raises the recursion limit
assert "py_ecc" in sys.modules
from state.encoding import DecodeError, decode_json
assert sys.getrecursionlimit() <= 1000, sys.getrecursionlimit()
deep = b"[" * 300_000
for parse in (msgspec.json.decode, lambda d: tomllib.loads("a = " + d.decode())):
    try:
        parse(deep)
    except (RecursionError, msgspec.DecodeError, tomllib.TOMLDecodeError):
        pass
try:
    decode_json(deep)
except DecodeError as exc:
    print(exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout == "not valid JSON: nested deeper than 64 levels\n"
