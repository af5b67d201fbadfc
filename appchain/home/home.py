"""A node's home folder: its configuration, genesis, database and keys.

::

    <home>/config.toml       node settings (not consensus): [storage] snapshot_interval, sync_writes
    <home>/cert.pem, key.pem the storage port's self-signed TLS certificate and its key (mode 0600),
                             made at init, or at the first start of a home made before (appchain.home.tls)
    <home>/genesis.json      the chain's genesis file (its hash is checked at every start)
    <home>/data/chain/       the LevelDB database (appchain.home.store)
    <home>/keys/             node_ed25519.key and node_bls.key (hex seeds, mode 0600); dev-accounts.json
                             and dev-nodes.json when initialised from a devnet genesis
    <home>/node.lock         held by the process using the home, or shared by read-only commands
    <home>/start.lock        held by a node from the moment it starts: commands keep out (appchain.home.guard)

A command that names no ``--home`` uses ``$APPCHAIN_HOME``, else ``~/.appchain`` (as CometBFT
uses ``$CMTHOME`` else ``~/.cometbft``, and oxend ``~/.oxen``).
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import ssl
import tomllib
from dataclasses import dataclass
from pathlib import Path

from appchain.home.chain import DEFAULT_PROOF_WINDOW, Chain, ChainError, ProgressCallback
from appchain.home.guard import HomeLock
from appchain.home.keyfile import KeyFileError, read_seed, write_seed
from appchain.home.safefile import (
    BLS_KEY_FILE,
    CERT_FILE,
    CONFIG_FILE,
    DATA_FOLDER,
    GENESIS_FILE,
    KEYS_FOLDER,
    NODE_KEY_FILE,
    TLS_KEY_FILE,
    UnsafeTarget,
    check_folder_target,
    write_atomically,
)
from appchain.home.tls import CertificateError, server_context, write_certificate
from genesis.document import Genesis
from genesis.load import load_genesis
from state.crypto import bls, ed25519

HOME_ENV = "APPCHAIN_HOME"


def default_home() -> Path:
    """``$APPCHAIN_HOME``, else ``~/.appchain``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".appchain")


MAX_CLOCK_OFFSET = 3600
"""The largest clock skew a node may be configured with, either way (an hour: beyond any test)."""
ONION_HOP_TIMEOUT = 30.0
"""Seconds a hop of an onion request waits for the next one's answer: the storage server's 30 s
(``onion_processing.cpp``); a relay to an outside server must time out before it."""


@dataclass(frozen=True)
class PeerAddress:
    """A peer to keep connected: ``<node key hex>@<host>:<port>`` in the config."""

    node_key: bytes
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.node_key.hex()}@{self.host}:{self.port}"


@dataclass(frozen=True)
class NodeConfig:
    """``config.toml``: the node's own settings, not the chain's rules."""

    snapshot_interval: int = 1000
    sync_writes: bool = True
    p2p_listen: str = "127.0.0.1:26656"
    peers: tuple[PeerAddress, ...] = ()
    outbound_peers: int = 8
    """Gossip peers this node dials: the configured ones first, then drawn from uptime proofs."""
    max_peers: int = 64
    """Inbound connections at most, of nodes this node does not want itself (dialled peers and
    the members of its quorums while on duty are not counted)."""
    admin_listen: str = "127.0.0.1:26657"
    rpc_listen: str = "127.0.0.1:26658"
    storage_listen: str = "127.0.0.1:26659"
    """The storage port (HTTPS): the storage RPC, onion requests and the swarm members' requests."""
    proof_window: int = DEFAULT_PROOF_WINDOW
    stage_timeout_ms: int = 10_000
    """Pulse: the longest a stage may take, milliseconds (:class:`consensus.pulse.Timing`)."""
    round_timeout_ms: int = 60_000
    """Pulse: the longest a round may take, milliseconds; round ``r`` of a height starts
    ``r x round_timeout_ms`` after round 0."""
    public_ip: str = "127.0.0.1"
    storage_port: int = 0
    log_level: str = "info"
    state_sync: bool = True
    state_sync_min_gap: int = 500
    p2p_max_peers_per_ip: int = 8
    p2p_connections_per_second_per_ip: float = 1.0
    p2p_connection_burst_per_ip: int = 8
    p2p_max_handshakes: int = 32
    p2p_peer_pending_frames: int = 2_000
    p2p_peer_pending_transactions: int = 10_000
    p2p_peer_pending_bytes: int = 64 * 1024 * 1024
    p2p_limit_loopback: bool = False
    rpc_max_open_connections: int = 900
    rpc_max_connections_per_ip: int = 32
    rpc_requests_per_second_per_ip: float = 100.0
    rpc_request_burst_per_ip: int = 200
    rpc_busy_share_per_ip: float = 0.25
    rpc_max_pending_per_ip: int = 16
    rpc_max_concurrent_requests: int = 64
    rpc_read_header_timeout: float = 10.0
    rpc_read_body_timeout: float = 30.0
    rpc_write_timeout: float = 30.0
    rpc_idle_timeout: float = 60.0
    rpc_limit_loopback: bool = False
    rpc_node_requests_per_second: float = 600.0
    rpc_node_request_burst: int = 1200
    onion_relay_timeout: float = 25.0
    onion_relay_max_response: int = 16 * 1024 * 1024
    onion_relay_private_targets: bool = False
    clock_offset: float = 0.0
    """Seconds added to every wall-clock read the node makes for consensus (block timestamps, Pulse
    round timing, uptime proofs): 0 in production; a testnet sets it to rehearse clock skew."""

    def __post_init__(self) -> None:
        interval = self.snapshot_interval
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ChainError("snapshot_interval must be a positive integer")
        if not is_loopback(self.admin_address[0]):
            raise ChainError("admin.listen must be a loopback address (127.0.0.1, ::1 or localhost)")
        listeners = {
            "p2p.listen": self.p2p_address,
            "admin.listen": self.admin_address,
            "rpc.listen": self.rpc_address,
            "storage.listen": self.storage_address,
        }
        for first, second in itertools.combinations(listeners, 2):
            port = listeners[first][1]
            if port and port == listeners[second][1]:  # then "in use" would blame another process
                raise ChainError(f"{first} and {second} both use port {port}: each listener needs its own")
        if self.stage_timeout_ms >= self.round_timeout_ms:
            raise ChainError("consensus.stage_timeout_ms must be below consensus.round_timeout_ms")
        if self.onion_relay_timeout >= ONION_HOP_TIMEOUT:
            raise ChainError(
                f"onion.relay_timeout must be below {ONION_HOP_TIMEOUT:g} seconds"
                " (what a hop waits for the next)"
            )
        if not -MAX_CLOCK_OFFSET <= self.clock_offset <= MAX_CLOCK_OFFSET:  # NaN too
            raise ChainError(
                f"node.clock_offset must be from -{MAX_CLOCK_OFFSET} to {MAX_CLOCK_OFFSET} seconds"
            )

    @property
    def p2p_address(self) -> tuple[str, int]:
        return split_address(self.p2p_listen)

    @property
    def admin_address(self) -> tuple[str, int]:
        return split_address(self.admin_listen)

    @property
    def rpc_address(self) -> tuple[str, int]:
        return split_address(self.rpc_listen)

    @property
    def storage_address(self) -> tuple[str, int]:
        return split_address(self.storage_listen)

    @property
    def rpc_url(self) -> str:
        return f"http://{self.rpc_listen}"

    @property
    def served_storage_port(self) -> int:
        """The storage port announced in uptime proofs: ``[node] storage_port`` (a port forwarded
        to this one), or the port ``[storage] listen`` names if it is 0."""
        return self.storage_port or self.storage_address[1]


LOG_LEVELS = ("debug", "info", "warn", "error")


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not host:port")
    return host, int(port)


def parse_peer(text: str) -> PeerAddress:
    key, sep, address = text.partition("@")
    try:
        node_key = bytes.fromhex(key)
    except ValueError:
        node_key = b""
    if not sep or len(node_key) != 32:
        raise ValueError(f"{text!r} is not <64 hex digits of node key>@host:port")
    return PeerAddress(node_key, *split_address(address))


_P2P_LIMITS = (
    "max_peers_per_ip",
    "connections_per_second_per_ip",
    "connection_burst_per_ip",
    "max_handshakes",
    "peer_pending_frames",
    "peer_pending_transactions",
    "peer_pending_bytes",
    "limit_loopback",
)
_RPC_LIMITS = (
    "max_open_connections",
    "max_connections_per_ip",
    "requests_per_second_per_ip",
    "request_burst_per_ip",
    "busy_share_per_ip",
    "max_pending_per_ip",
    "max_concurrent_requests",
    "read_header_timeout",
    "read_body_timeout",
    "write_timeout",
    "idle_timeout",
    "limit_loopback",
    "node_requests_per_second",
    "node_request_burst",
)
_SCHEMA: dict[str, dict[str, str]] = {
    "storage": {
        "snapshot_interval": "snapshot_interval",
        "sync_writes": "sync_writes",
        "listen": "storage_listen",
    },
    "p2p": {
        "listen": "p2p_listen",
        "peers": "peers",
        "outbound_peers": "outbound_peers",
        "max_peers": "max_peers",
        **{name: f"p2p_{name}" for name in _P2P_LIMITS},
    },
    "admin": {"listen": "admin_listen"},
    "rpc": {
        "listen": "rpc_listen",
        "proof_window": "proof_window",
        **{name: f"rpc_{name}" for name in _RPC_LIMITS},
    },
    "consensus": {"stage_timeout_ms": "stage_timeout_ms", "round_timeout_ms": "round_timeout_ms"},
    "node": {"public_ip": "public_ip", "storage_port": "storage_port", "clock_offset": "clock_offset"},
    "log": {"level": "log_level"},
    "sync": {"state_sync": "state_sync", "state_sync_min_gap": "state_sync_min_gap"},
    "onion": {
        "relay_timeout": "onion_relay_timeout",
        "relay_max_response": "onion_relay_max_response",
        "relay_private_targets": "onion_relay_private_targets",
    },
}


_BOOLEANS = {
    "sync_writes",
    "state_sync",
    "p2p_limit_loopback",
    "rpc_limit_loopback",
    "onion_relay_private_targets",
}
_COUNTS = {
    "snapshot_interval",
    "outbound_peers",
    "max_peers",
    "proof_window",
    "state_sync_min_gap",
    "p2p_max_peers_per_ip",
    "p2p_connection_burst_per_ip",
    "p2p_max_handshakes",
    "p2p_peer_pending_frames",
    "p2p_peer_pending_transactions",
    "p2p_peer_pending_bytes",
    "rpc_max_open_connections",
    "rpc_max_connections_per_ip",
    "rpc_request_burst_per_ip",
    "rpc_max_pending_per_ip",
    "rpc_max_concurrent_requests",
    "rpc_node_request_burst",
    "onion_relay_max_response",
}
_RATES = {
    "p2p_connections_per_second_per_ip",
    "rpc_requests_per_second_per_ip",
    "rpc_busy_share_per_ip",
    "rpc_node_requests_per_second",
}
_MILLISECONDS = {"stage_timeout_ms", "round_timeout_ms"}
MAX_TIMEOUT_MS = 3_600_000
"""The longest Pulse deadline config.toml accepts (an hour)."""
RENAMED = {
    ("consensus", "stage_timeout"): "stage_timeout_ms",
    ("consensus", "round_timeout"): "round_timeout_ms",
}
"""Settings that were renamed when their unit changed: the old name is refused with a line naming
the new one (a number of seconds read as milliseconds would be 1000 times too short)."""
_SECONDS = {
    "rpc_read_header_timeout",
    "rpc_read_body_timeout",
    "rpc_write_timeout",
    "rpc_idle_timeout",
    "onion_relay_timeout",
}


def _check(field: str, value: object) -> object:
    """One setting's value, checked; raises ValueError saying what it must be."""
    if field in _BOOLEANS:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
    elif field in _COUNTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("must be a positive integer")
    elif field in _RATES:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1e9:
            raise ValueError("must be a number above 0")
        value = float(value)
    elif field == "storage_port":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise ValueError("must be a port number")
    elif field in _MILLISECONDS:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_TIMEOUT_MS:
            raise ValueError(f"must be a whole number of milliseconds from 1 to {MAX_TIMEOUT_MS}")
    elif field in _SECONDS:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 3600:
            raise ValueError("must be a number of seconds above 0")
        value = float(value)
    elif field == "clock_offset":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number of seconds")
        value = float(value)
    elif field in ("p2p_listen", "admin_listen", "rpc_listen", "storage_listen"):
        if not isinstance(value, str):
            raise ValueError("must be a string host:port")
        split_address(value)
    elif field == "peers":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError("must be a list of strings")
        value = tuple(parse_peer(item) for item in value)
    elif field == "public_ip":
        if not isinstance(value, str) or not value:
            raise ValueError("must be an address")
    elif field == "log_level" and value not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return value


def parse_config(text: str, source: str = "config.toml") -> NodeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChainError(f"{source}: {exc}") from None
    except RecursionError:
        raise ChainError(f"{source}: nested too deeply") from None
    unknown = set(data) - set(_SCHEMA)
    if unknown:
        raise ChainError(f"{source}: unknown section {sorted(unknown)[0]!r}")
    values: dict[str, object] = {}
    for section, fields in _SCHEMA.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ChainError(f"{source}: [{section}] must be a table")
        for name in sorted(table):
            if (section, name) in RENAMED:
                new, old = RENAMED[section, name], table[name]
                seconds = old if isinstance(old, int | float) and not isinstance(old, bool) else 1.0
                raise ChainError(
                    f"{source}: {section}.{name} is now {section}.{new}, in milliseconds"
                    f" (e.g. {name} = {seconds!r} becomes {new} = {round(seconds * 1000)})"
                )
        unknown = set(table) - set(fields)
        if unknown:
            raise ChainError(f"{source}: unknown setting {section}.{sorted(unknown)[0]}")
        for name, field in fields.items():
            if name in table:
                try:
                    values[field] = _check(field, table[name])
                except ValueError as exc:
                    raise ChainError(f"{source}: {section}.{name} {exc}") from None
    try:
        return NodeConfig(**values)  # type: ignore[arg-type]
    except ChainError as exc:
        raise ChainError(f"{source}: {exc}") from None


def render_config(config: NodeConfig) -> str:
    peers = "".join(f'\n    "{peer}",' for peer in config.peers)
    return f"""\
# appchain node configuration. These settings are the node's own, not the chain's rules.

[storage]
# Blocks between state snapshots: a restart replays at most this many blocks.
snapshot_interval = {config.snapshot_interval}
# fsync every block write, so a block reported as written survives a power loss.
sync_writes = {str(config.sync_writes).lower()}
# The storage port: HTTPS with the home's cert.pem and key.pem, as Session clients reach a service
# node (POST /storage_rpc/v1, /onion_req/v2, /ping_test/v1; see docs/storage.md). Its requests are
# limited as the [rpc] settings say, counted apart from the RPC port's.
listen = "{config.storage_listen}"

[p2p]
# Where this node accepts peer connections (Noise XX, bound to the node key).
listen = "{config.p2p_listen}"
# Seed peers, kept by preference: "<node key hex>@host:port". More are learnt from uptime proofs.
peers = [{peers}{chr(10) if peers else ""}]
# Gossip peers this node dials (the seeds first, then nodes drawn from uptime proofs, swapped
# slowly); blocks, transactions and proofs spread over them. Never a connection to every node.
outbound_peers = {config.outbound_peers}
# Inbound peers at most (dialled peers, and the members of this node's quorums while on duty,
# are not counted).
max_peers = {config.max_peers}
# Per remote address (IPv4, or an IPv6 /64): inbound connections, in handshake or established,
# and new connections a second (a token bucket of this rate and burst). Beyond: closed at once.
max_peers_per_ip = {config.p2p_max_peers_per_ip}
connections_per_second_per_ip = {config.p2p_connections_per_second_per_ip}
connection_burst_per_ip = {config.p2p_connection_burst_per_ip}
# Inbound handshakes in progress at once, over every address (each costs a key exchange).
max_handshakes = {config.p2p_max_handshakes}
# Work one peer may have waiting for this node: consensus frames, transactions, bytes of all.
# Frames beyond are dropped (the peer may send them again).
peer_pending_frames = {config.p2p_peer_pending_frames}
peer_pending_transactions = {config.p2p_peer_pending_transactions}
peer_pending_bytes = {config.p2p_peer_pending_bytes}
# The per-address limits skip loopback addresses (a devnet runs every node on 127.0.0.1);
# true applies them there too.
limit_loopback = {str(config.p2p_limit_loopback).lower()}

[admin]
# The operator's endpoint (status, submit a transaction): keep it on the loopback.
listen = "{config.admin_listen}"

[rpc]
# The public JSON-RPC endpoint: POST /json_rpc (see docs/rpc.md).
listen = "{config.rpc_listen}"
# Blocks below the tip whose state is kept for get_state_proof (memory grows with it).
proof_window = {config.proof_window}
# Open connections over every address (keep it below the process's file limit), then per remote
# address (IPv4, or an IPv6 /64). Beyond either, a connection is answered 503 or 429 and closed.
max_open_connections = {config.rpc_max_open_connections}
max_connections_per_ip = {config.rpc_max_connections_per_ip}
# Requests per remote address: a token bucket of this rate and burst (a JSON-RPC batch costs
# one per call), and at most max_pending_per_ip received and not yet answered. Beyond: HTTP 429,
# with a JSON-RPC error -32005 on /json_rpc.
requests_per_second_per_ip = {config.rpc_requests_per_second_per_ip}
request_burst_per_ip = {config.rpc_request_burst_per_ip}
max_pending_per_ip = {config.rpc_max_pending_per_ip}
# Requests of swarm members (/storage_cc/v1) whose service-node signature verifies are counted
# per node key instead, at this rate and burst (replication follows client traffic); a request
# whose signature fails counts against its address like any other.
node_requests_per_second = {config.rpc_node_requests_per_second}
node_request_burst = {config.rpc_node_request_burst}
# Seconds of JSON-RPC work one address may take a second (the calls run on the node's one event
# loop, beside consensus); an address over its share is answered -32005 until it has rested.
busy_share_per_ip = {config.rpc_busy_share_per_ip}
# Requests handled at once over every address (the others wait their turn, first come first served).
max_concurrent_requests = {config.rpc_max_concurrent_requests}
# Seconds: a request's headers must arrive within read_header_timeout of its first byte, its body
# within read_body_timeout of its headers, an answer must be taken within write_timeout, and a
# kept-alive connection may wait idle_timeout for its next request. Else it is closed.
read_header_timeout = {config.rpc_read_header_timeout}
read_body_timeout = {config.rpc_read_body_timeout}
write_timeout = {config.rpc_write_timeout}
idle_timeout = {config.rpc_idle_timeout}
# The per-address limits skip loopback clients (this machine: the operator's tools, a devnet's
# nodes). Set true when a reverse proxy on this machine forwards public traffic here.
limit_loopback = {str(config.rpc_limit_loopback).lower()}

[consensus]
# Pulse deadlines in milliseconds: a stage, and a whole round (mainnet 10000 and 60000).
stage_timeout_ms = {config.stage_timeout_ms}
round_timeout_ms = {config.round_timeout_ms}

[node]
# The address and storage port announced in uptime proofs (storage_port 0: the port of
# [storage] listen; set it when a router forwards another port to that one).
public_ip = "{config.public_ip}"
storage_port = {config.storage_port}
# Seconds added to the node's clock for consensus (testnets rehearsing clock skew); keep 0.
clock_offset = {config.clock_offset}

[log]
# debug, info, warn or error
level = "{config.log_level}"

[sync]
# A fresh node joins at a recent certified snapshot fetched from its peers (each chunk checked
# against the certified state root) when one is at least state_sync_min_gap blocks ahead;
# false: always fetch and replay every block from genesis.
state_sync = {str(config.state_sync).lower()}
state_sync_min_gap = {config.state_sync_min_gap}

[onion]
# Onion requests whose last layer names an outside server (Session's open groups, file server):
# seconds for the whole exchange (below the 30 s a hop waits for the next), the largest answer
# passed back (bytes; what a hop accepts from the next), and whether targets on private,
# loopback or link-local addresses are allowed (keep false on a public node).
relay_timeout = {config.onion_relay_timeout}
relay_max_response = {config.onion_relay_max_response}
relay_private_targets = {str(config.onion_relay_private_targets).lower()}
"""


class Home:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.config_path = path / CONFIG_FILE
        self.genesis_path = path / GENESIS_FILE
        self.db_path = path / DATA_FOLDER / "chain"
        self.messages_path = path / DATA_FOLDER / "messages"
        self.keys_path = path / KEYS_FOLDER

    @classmethod
    def init(cls, path: Path, genesis_file: Path, config: NodeConfig | None = None) -> tuple[Home, Genesis]:
        """Create a home from a genesis file: config, genesis copy, database with block 0.

        The folder may exist (with node keys made by ``keys new --node``, say) but holds no
        configuration, genesis or database yet, and lies in no other home's own files."""
        home = cls(path)
        try:
            check_folder_target(path)
        except UnsafeTarget as exc:
            raise ChainError(str(exc)) from None
        if any(p.exists() or p.is_symlink() for p in (home.config_path, home.genesis_path, home.db_path)):
            raise ChainError(f"{path} is already initialised")
        genesis = load_genesis(genesis_file)  # raises GenesisError listing every problem
        config = config or NodeConfig()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ChainError(f"cannot create {path}: {exc.strerror}") from None
        write_atomically(home.config_path, render_config(config).encode(), force=False, home_file=True)
        write_atomically(home.genesis_path, genesis_file.read_bytes(), force=False, home_file=True)
        for name in ("accounts", "nodes"):  # dev keys beside a devnet genesis (unsafe by design)
            source = genesis_file.parent / KEYS_FOLDER / f"{name}.json"
            if source.exists():
                home.keys_path.mkdir(exist_ok=True)
                target = home.keys_path / f"dev-{name}.json"
                # seeds, even if public ones: 0600
                write_atomically(target, source.read_bytes(), force=False, mode=0o600, home_file=True)
        home.ensure_certificate()
        home.db_path.parent.mkdir(parents=True, exist_ok=True)
        Chain.create(home.db_path, genesis, snapshot_interval=config.snapshot_interval).close()
        return home, genesis

    @property
    def cert_path(self) -> Path:
        return self.path / CERT_FILE

    @property
    def tls_key_path(self) -> Path:
        return self.path / TLS_KEY_FILE

    def ensure_certificate(self) -> bool:
        """Make the storage port's certificate and key if the home has neither (True); an
        existing pair is kept (False). See :mod:`appchain.home.tls`."""
        try:
            return write_certificate(self.cert_path, self.tls_key_path)
        except CertificateError as exc:
            raise ChainError(str(exc)) from None

    def storage_tls(self) -> ssl.SSLContext:
        """The TLS context the storage port serves with, from the home's pair; a
        :class:`ChainError` naming the file when it cannot be used."""
        try:
            return server_context(self.cert_path, self.tls_key_path)
        except CertificateError as exc:
            raise ChainError(str(exc)) from None

    def load_config(self) -> NodeConfig:
        if not self.config_path.is_file():
            raise ChainError(f"{self.path} is not a node home (no config.toml): run `appchain init`")
        try:
            text = self.config_path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ChainError(f"{self.config_path}: not UTF-8 text (byte {exc.start})") from None
        return parse_config(text, str(self.config_path))

    @property
    def node_key_path(self) -> Path:
        return self.keys_path / NODE_KEY_FILE

    @property
    def bls_key_path(self) -> Path:
        return self.keys_path / BLS_KEY_FILE

    def write_node_keys(self, node_seed: bytes, bls_seed: bytes) -> None:
        """The node's secret key seeds, hex, in files only the owner may read (0600); never in a
        folder inside another home's own files."""
        try:
            check_folder_target(self.path)
        except UnsafeTarget as exc:
            raise ChainError(str(exc)) from None
        for path in (self.node_key_path, self.bls_key_path):
            if path.exists():
                raise ChainError(f"{path} already exists: keys are never overwritten")
        try:
            write_seed(self.node_key_path, node_seed, home_file=True)
            write_seed(self.bls_key_path, bls_seed, home_file=True)
        except KeyFileError as exc:
            raise ChainError(str(exc)) from None

    def load_node_keys(self) -> tuple[ed25519.SigningKey, bls.BlsSecretKey]:
        """The node key and BLS secret; refused if the files are readable by others."""
        for path in (self.node_key_path, self.bls_key_path):
            if not path.is_file():
                raise ChainError(f"{path} not found: this home has no node keys (see `appchain keys new`)")
        try:
            node_seed, bls_seed = read_seed(self.node_key_path), read_seed(self.bls_key_path)
        except KeyFileError as exc:
            raise ChainError(str(exc)) from None
        return ed25519.SigningKey(node_seed), bls.secret_key_from_seed(bls_seed)

    def lock(self, purpose: str, *, shared: bool = False) -> HomeLock:
        """The home's lock, for a command about to use its database (``with home.lock(…):``);
        ``shared`` for one that only reads (see :mod:`appchain.home.guard`).

        Checks first that this is a node home, so no lock file is left in a folder that is not.
        """
        self.load_config()
        return HomeLock(self.path, purpose, shared=shared)

    def load_genesis(self) -> Genesis:
        if not self.genesis_path.exists():
            raise ChainError(f"{self.path} has no genesis.json: run `appchain init`")
        return load_genesis(self.genesis_path)

    def open_chain(self, progress: ProgressCallback | None = None) -> Chain:
        config = self.load_config()
        return Chain.open(
            self.db_path,
            self.load_genesis(),
            snapshot_interval=config.snapshot_interval,
            sync=config.sync_writes,
            progress=progress,
            proof_window=config.proof_window,
        )
