"""A node's home folder: its configuration, genesis, database and keys.

::

    <home>/config.toml       node settings (not consensus): [storage] snapshot_interval, sync_writes
    <home>/genesis.json      the chain's genesis file (its hash is checked at every start)
    <home>/data/chain/       the LevelDB database (appchain.store)
    <home>/keys/             keys; dev-accounts.json when initialised from a devnet genesis
    <home>/node.lock         held by the one process using the home (appchain.guard.HomeLock)

A command that names no ``--home`` uses ``$APPCHAIN_HOME``, else ``~/.appchain`` (as CometBFT
uses ``$CMTHOME`` else ``~/.cometbft``, and oxend ``~/.oxen``).
"""

from __future__ import annotations

import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from appchain.chain import Chain, ChainError, ProgressCallback
from appchain.guard import HomeLock
from genesis.document import Genesis, load_genesis

HOME_ENV = "APPCHAIN_HOME"


def default_home() -> Path:
    """``$APPCHAIN_HOME``, else ``~/.appchain``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".appchain")


CONFIG_TEMPLATE = """\
# appchain node configuration. These settings are the node's own, not the chain's rules.

[storage]
# Blocks between state snapshots: a restart replays at most this many blocks.
snapshot_interval = {snapshot_interval}
# fsync every block write, so a block reported as written survives a power loss.
sync_writes = {sync_writes}
"""


@dataclass(frozen=True)
class NodeConfig:
    snapshot_interval: int = 1000
    sync_writes: bool = True

    def __post_init__(self) -> None:
        interval = self.snapshot_interval
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ChainError("snapshot_interval must be a positive integer")


def parse_config(text: str, source: str = "config.toml") -> NodeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChainError(f"{source}: {exc}") from None
    except RecursionError:
        raise ChainError(f"{source}: nested too deeply") from None
    unknown = set(data) - {"storage"}
    if unknown:
        raise ChainError(f"{source}: unknown section {sorted(unknown)[0]!r}")
    storage = data.get("storage", {})
    unknown = set(storage) - {"snapshot_interval", "sync_writes"}
    if unknown:
        raise ChainError(f"{source}: unknown setting storage.{sorted(unknown)[0]}")
    interval = storage.get("snapshot_interval", NodeConfig.snapshot_interval)
    sync = storage.get("sync_writes", NodeConfig.sync_writes)
    if not isinstance(sync, bool):
        raise ChainError(f"{source}: storage.sync_writes must be true or false")
    try:
        return NodeConfig(snapshot_interval=interval, sync_writes=sync)
    except ChainError as exc:
        raise ChainError(f"{source}: storage.{exc}") from None


class Home:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.config_path = path / "config.toml"
        self.genesis_path = path / "genesis.json"
        self.db_path = path / "data" / "chain"
        self.keys_path = path / "keys"

    @classmethod
    def init(cls, path: Path, genesis_file: Path, config: NodeConfig | None = None) -> tuple[Home, Genesis]:
        """Create a home from a genesis file: config, genesis copy, database with block 0."""
        home = cls(path)
        if path.exists() and not path.is_dir():
            raise ChainError(f"{path} is not a folder")
        if home.genesis_path.exists() or home.db_path.exists():
            raise ChainError(f"{path} is already initialised")
        genesis = load_genesis(genesis_file)  # raises GenesisError listing every problem
        config = config or NodeConfig()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ChainError(f"cannot create {path}: {exc.strerror}") from None
        home.config_path.write_text(
            CONFIG_TEMPLATE.format(
                snapshot_interval=config.snapshot_interval, sync_writes=str(config.sync_writes).lower()
            )
        )
        shutil.copyfile(genesis_file, home.genesis_path)
        for name in ("accounts", "nodes"):  # dev keys beside a devnet genesis (unsafe by design)
            source = genesis_file.parent / "keys" / f"{name}.json"
            if source.exists():
                home.keys_path.mkdir(exist_ok=True)
                shutil.copyfile(source, home.keys_path / f"dev-{name}.json")
        home.db_path.parent.mkdir(parents=True, exist_ok=True)
        Chain.create(home.db_path, genesis, snapshot_interval=config.snapshot_interval).close()
        return home, genesis

    def load_config(self) -> NodeConfig:
        if not self.config_path.is_file():
            raise ChainError(f"{self.path} is not a node home (no config.toml): run `appchain init`")
        try:
            text = self.config_path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ChainError(f"{self.config_path}: not UTF-8 text (byte {exc.start})") from None
        return parse_config(text, str(self.config_path))

    def lock(self, purpose: str) -> HomeLock:
        """The home's lock, for a command about to use its database (``with home.lock(…):``).

        Checks first that this is a node home, so no lock file is left in a folder that is not.
        """
        self.load_config()
        return HomeLock(self.path, purpose)

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
        )
