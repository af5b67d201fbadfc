"""A node's home folder: its configuration, genesis, database and keys.

::

    <home>/config.toml       node settings (not consensus): [storage] snapshot_interval, sync_writes
    <home>/genesis.json      the chain's genesis file (its hash is checked at every start)
    <home>/data/chain/       the LevelDB database (appchain.store)
    <home>/keys/             keys; dev-accounts.json when initialised from a devnet genesis
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from appchain.chain import Chain, ChainError, ProgressCallback
from genesis.document import Genesis, load_genesis

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


def parse_config(text: str, source: str = "config.toml") -> NodeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChainError(f"{source}: {exc}") from None
    unknown = set(data) - {"storage"}
    if unknown:
        raise ChainError(f"{source}: unknown section {sorted(unknown)[0]!r}")
    storage = data.get("storage", {})
    unknown = set(storage) - {"snapshot_interval", "sync_writes"}
    if unknown:
        raise ChainError(f"{source}: unknown setting storage.{sorted(unknown)[0]}")
    interval = storage.get("snapshot_interval", NodeConfig.snapshot_interval)
    sync = storage.get("sync_writes", NodeConfig.sync_writes)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ChainError(f"{source}: storage.snapshot_interval must be a positive integer")
    if not isinstance(sync, bool):
        raise ChainError(f"{source}: storage.sync_writes must be true or false")
    return NodeConfig(snapshot_interval=interval, sync_writes=sync)


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
        if home.genesis_path.exists() or home.db_path.exists():
            raise ChainError(f"{path} is already initialised")
        genesis = load_genesis(genesis_file)  # raises GenesisError listing every problem
        config = config or NodeConfig()
        path.mkdir(parents=True, exist_ok=True)
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
        if not self.config_path.exists():
            raise ChainError(f"{self.path} is not a node home (no config.toml): run `appchain init`")
        return parse_config(self.config_path.read_text(), str(self.config_path))

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
