"""``appchain testnet`` and ``appchain devnet``: N real node processes on 127.0.0.1.

``testnet --nodes N --out DIR`` writes::

    DIR/genesis.json        one devnet genesis with N funded service nodes (genesis time: now)
    DIR/keys/               its dev keys (UNSAFE: derived from the seed)
    DIR/node0 … node{N-1}   node homes: config.toml (ports, a few seed peers, devnet Pulse
                            deadlines), genesis, database with block 0,
                            keys/node_ed25519.key and node_bls.key (mode 0600)
    DIR/spare0 …            with ``--spare K``: homes whose keys are not in the genesis, for
                            rehearsing a registration

Seeds: node ``i``'s configured peers are the next :data:`SEEDS` nodes of a ring (``i+1``,
``i+2``, ``i+3``, modulo N; a spare's are the first genesis nodes), never every node: the rest it
learns from their uptime proofs, and it keeps a bounded set of gossip peers
(:mod:`consensus.topology`).

Ports (:data:`PORTS_PER_NODE` a node): node ``i`` listens for peers on ``base_port + 4i``, for
its operator (admin) on ``base_port + 4i + 1``, for JSON-RPC on ``base_port + 4i + 2`` and on its
storage port (HTTPS) on ``base_port + 4i + 3``; spares follow the nodes.
Every node listens on 127.0.0.1 unless ``hosts`` gives each its own address (nodes in network
namespaces, :mod:`appchain.lab.netns`): then it listens for peers, JSON-RPC and storage on that address,
announces it in its uptime proofs, and its peers are dialled there; admin stays on 127.0.0.1
(of the node's own namespace).

``devnet`` creates such a folder when it is missing, starts one ``appchain start`` process per
node, shows a live view (height, final height, round, peers, mempool per node) until Ctrl-C or
``--seconds``, then stops them all (SIGTERM, then SIGKILL after a grace period): no process
outlives it.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import blake3

from appchain.home.chain import ChainError
from appchain.home.genesis_files import write_devnet
from appchain.home.home import Home, NodeConfig, PeerAddress
from appchain.home.safefile import UnsafeTarget, check_folder_target
from appchain.node.admin import AdminError, AdminTimeout, AdminUnavailable, Connect, RpcError, call
from genesis.load import load_genesis
from genesis.presets import DEVNET
from state.crypto import ed25519
from state.encoding import decode_json
from state.params import ChainParams

DEVNET_TIMING = {"stage_timeout_ms": 1_000, "round_timeout_ms": 6_000}
"""A testnet's Pulse deadlines, milliseconds (config.toml's ``[consensus]``)."""
DEFAULT_BASE_PORT = 26656
LOCALHOST = "127.0.0.1"
PORTS_PER_NODE = 4
"""p2p, admin, JSON-RPC and storage: a test reserving ports for N nodes reserves N times this."""
SEEDS = 3
"""Configured peers per node (a ring: the next three)."""


@dataclasses.dataclass(frozen=True)
class NetworkMember:
    home: Path
    node_key: bytes
    p2p_port: int
    admin_port: int
    rpc_port: int
    storage_port: int
    host: str = LOCALHOST
    """Where the node listens for peers, JSON-RPC and storage (its admin endpoint: 127.0.0.1, always)."""


def seed_peers(nodes: Sequence[NetworkMember], member: NetworkMember) -> list[NetworkMember]:
    """``member``'s configured peers among the genesis ``nodes``: the next :data:`SEEDS` of the
    ring after it (a spare, not in the ring: the first ones)."""
    start = nodes.index(member) + 1 if member in nodes else 0
    ring = [nodes[(start + k) % len(nodes)] for k in range(min(SEEDS, len(nodes)))]
    return [other for other in dict.fromkeys(ring) if other is not member]


def spare_seeds(seed: str, index: int) -> tuple[bytes, bytes]:
    """The (node, BLS) key seeds of spare ``index``: public, like every dev key."""
    node_seed = blake3.blake3(f"appchain testnet spare {seed} {index}".encode()).digest()
    return node_seed, blake3.blake3(b"bls" + node_seed).digest()


def write_testnet(
    out: Path,
    nodes: int,
    *,
    base_port: int = DEFAULT_BASE_PORT,
    seed: str | None = None,
    spare: int = 0,
    users: int = 4,
    genesis_time: int | None = None,
    params: ChainParams = DEVNET,
    stage_timeout_ms: int = DEVNET_TIMING["stage_timeout_ms"],
    round_timeout_ms: int = DEVNET_TIMING["round_timeout_ms"],
    sync_writes: bool = True,
    hosts: Sequence[str] | None = None,
    state_sync: bool = True,
) -> list[NetworkMember]:
    """Write a testnet folder; returns every home, the genesis nodes first. ``hosts``: one
    listening address per home (nodes, then spares); default 127.0.0.1 for all."""
    if hosts is not None and len(hosts) != nodes + spare:
        raise ChainError(f"{len(hosts)} hosts given for {nodes + spare} homes")
    try:
        check_folder_target(out)
    except UnsafeTarget as exc:
        raise ChainError(str(exc)) from None
    if out.exists() and any(out.iterdir()):
        raise ChainError(f"{out} is not empty: choose a new folder for the testnet")
    if not 0 < base_port <= 65535 - PORTS_PER_NODE * (nodes + spare):
        raise ChainError(f"--base-port {base_port} leaves no room for {nodes + spare} nodes' ports")
    seed = seed or os.urandom(8).hex()
    genesis_file = out / "genesis.json"
    write_devnet(
        genesis_file,
        nodes,
        seed,
        users=users,
        genesis_time=int(time.time()) if genesis_time is None else genesis_time,
        params=params,
    )
    seeds = [
        (bytes.fromhex(entry["node_seed"]), bytes.fromhex(entry["bls_seed"]))
        for entry in decode_json((out / "keys" / "nodes.json").read_bytes())["nodes"]
    ]
    seeds += [spare_seeds(seed, i) for i in range(spare)]
    names = [f"node{i}" for i in range(nodes)] + [f"spare{i}" for i in range(spare)]
    members = []
    for i, (name, (node_seed, _)) in enumerate(zip(names, seeds, strict=True)):
        first = base_port + PORTS_PER_NODE * i
        node_key = ed25519.SigningKey(node_seed).public_key
        host = LOCALHOST if hosts is None else hosts[i]
        members.append(NetworkMember(out / name, node_key, first, first + 1, first + 2, first + 3, host))
    for member, (node_seed, bls_seed) in zip(members, seeds, strict=True):
        peers = tuple(
            PeerAddress(other.node_key, other.host, other.p2p_port)
            for other in seed_peers(members[:nodes], member)
        )
        config = NodeConfig(
            snapshot_interval=100,
            sync_writes=sync_writes,
            p2p_listen=f"{member.host}:{member.p2p_port}",
            admin_listen=f"{LOCALHOST}:{member.admin_port}",
            rpc_listen=f"{member.host}:{member.rpc_port}",
            storage_listen=f"{member.host}:{member.storage_port}",
            peers=peers,
            stage_timeout_ms=stage_timeout_ms,
            round_timeout_ms=round_timeout_ms,
            public_ip=member.host,
            state_sync=state_sync,
        )
        home, _ = Home.init(member.home, genesis_file, config)
        home.write_node_keys(node_seed, bls_seed)
    return members


def read_testnet(folder: Path) -> list[NetworkMember]:
    """The homes of a testnet folder written by :func:`write_testnet`, genesis nodes first."""
    load_genesis(folder / "genesis.json")  # a clear error if this is not a testnet folder
    homes = sorted(folder.glob("node*"), key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 1 << 30)
    members = []
    for path in homes:
        home = Home(path)
        config = home.load_config()
        key, _ = home.load_node_keys()
        ports = (
            config.p2p_address[1],
            config.admin_address[1],
            config.rpc_address[1],
            config.storage_address[1],
        )
        members.append(NetworkMember(path, key.public_key, *ports, config.p2p_address[0]))
    if not members:
        raise ChainError(f"{folder} holds no node homes (node0, node1, …)")
    return members


def start_process(
    home: Path,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    wrapper: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``appchain start --home HOME`` as a child process, its log in ``HOME/node.log``.
    ``wrapper`` comes first on the command line (``ip netns exec NAME``: it execs the node, so
    the child's pid is the node's)."""
    output = (log or home / "node.log").open("ab")
    try:
        return subprocess.Popen(
            [*wrapper, sys.executable, "-m", "appchain.cli", "start", "--home", str(home)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    finally:
        output.close()


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGTERM each, wait up to ``grace`` seconds, SIGKILL whoever is left; reap them all."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Problem(enum.Enum):
    """Why a node gave no status."""

    REFUSED = "refused"
    """Nothing listens at its admin address: starting, or gone."""
    TIMEOUT = "not answering"
    """Connected, but no reply in time: stopped (SIGSTOP), hung or overloaded."""
    ERROR = "error"
    """It answered a JSON-RPC error."""
    MALFORMED = "malformed"
    """It answered something that is not a JSON-RPC reply, or a status without its fields."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a node's admin endpoint gave for ``status``: a well-formed status, or why there is none."""

    status: dict[str, Any] | None
    problem: Problem | None = None
    reason: str = ""
    """One line: the address and what went wrong (empty with a status)."""


STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "height": (int,),
    "final_height": (int,),
    "final_root": (str,),
    "round": (int, type(None)),
    "peers": (int,),
    "mempool": (int,),
    "sync": (str,),
    "service_node": (dict, type(None)),
}
"""The fields of a node's status that the devnet's view and summary read, and their types."""


def probe_status(
    member: NetworkMember, timeout: float = 1.0, connect: Connect = socket.create_connection
) -> Answer:
    """The node's admin ``status``, or why there is none; never raises for anything the node does
    (refuses, hangs, answers an error or garbage). ``connect`` opens the socket
    (:func:`appchain.lab.netns.Namespaces.connector` for a node in a network namespace)."""
    address = (LOCALHOST, member.admin_port)
    try:
        result = call(address, "status", timeout=timeout, connect=connect)
    except AdminTimeout as exc:
        return Answer(None, Problem.TIMEOUT, str(exc))
    except AdminUnavailable as exc:
        return Answer(None, Problem.REFUSED, str(exc))
    except RpcError as exc:
        return Answer(None, Problem.ERROR, f"error {exc.code} from {LOCALHOST}:{member.admin_port}: {exc}")
    except AdminError as exc:
        return Answer(None, Problem.MALFORMED, str(exc))
    if not isinstance(result, dict):
        why = f"a JSON {type(result).__name__}, not an object"
    else:
        wrong = [name for name, kinds in STATUS_FIELDS.items() if not _is_a(result.get(name, ...), kinds)]
        if not wrong:
            return Answer(result)
        why = f"{wrong[0]} missing or of the wrong type"
    return Answer(None, Problem.MALFORMED, f"malformed status from {LOCALHOST}:{member.admin_port}: {why}")


def _is_a(value: object, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def poll_status(
    member: NetworkMember, timeout: float = 1.0, connect: Connect = socket.create_connection
) -> dict[str, Any] | None:
    """The node's admin ``status``; None while it gives none (:func:`probe_status` says why)."""
    return probe_status(member, timeout, connect).status
