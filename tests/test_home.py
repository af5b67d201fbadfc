"""Node home folders and their config.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from appchain.home.chain import ChainError
from appchain.home.home import Home, NodeConfig, parse_config


def test_defaults_and_values() -> None:
    assert parse_config("") == NodeConfig()
    config = parse_config("[storage]\nsnapshot_interval = 7\nsync_writes = false\n")
    assert config == NodeConfig(snapshot_interval=7, sync_writes=False)
    for loopback in ("127.0.0.1:9", "127.5.0.1:9", "localhost:9", "[::1]:9"):
        assert parse_config(f'[admin]\nlisten = "{loopback}"\n').admin_listen == loopback
    ports = '[p2p]\nlisten = "127.0.0.1:0"\n[admin]\nlisten = "127.0.0.1:0"\n[rpc]\nlisten = "127.0.0.1:0"\n'
    assert parse_config(ports).rpc_address == ("127.0.0.1", 0)  # any free port, for each: no clash
    config = parse_config("[sync]\nstate_sync = false\nstate_sync_min_gap = 64\n")
    assert config == NodeConfig(state_sync=False, state_sync_min_gap=64)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[storage\n", "config.toml:"),
        ("[network]\n", "unknown section 'network'"),
        ("[storage]\nsnapshots = 3\n", "unknown setting storage.snapshots"),
        ("[storage]\nsnapshot_interval = 0\n", "must be a positive integer"),
        ("[storage]\nsnapshot_interval = true\n", "must be a positive integer"),
        ("[rpc]\nproof_window = 0\n", "rpc.proof_window must be a positive integer"),
        ("[rpc]\nproof_window = true\n", "rpc.proof_window must be a positive integer"),
        ("[storage]\nsync_writes = 1\n", "must be true or false"),
        ('[sync]\nstate_sync = "yes"\n', "sync.state_sync must be true or false"),
        ("[sync]\nstate_sync_min_gap = 0\n", "sync.state_sync_min_gap must be a positive integer"),
        ("[sync]\nfast = true\n", "unknown setting sync.fast"),
        ("[p2p]\noutbound_peers = 0\n", "p2p.outbound_peers must be a positive integer"),
        ('[p2p]\noutbound_peers = "8"\n', "p2p.outbound_peers must be a positive integer"),
        ('[admin]\nlisten = "0.0.0.0:26657"\n', "admin.listen must be a loopback address"),
        ('[admin]\nlisten = "10.1.2.3:26657"\n', "admin.listen must be a loopback address"),
        ('[admin]\nlisten = "node.example:26657"\n', "admin.listen must be a loopback address"),
        ('[p2p]\nlisten = "0.0.0.0:26658"\n', "p2p.listen and rpc.listen both use port 26658: each listener"),
        ('[rpc]\nlisten = "127.0.0.1:26657"\n', "admin.listen and rpc.listen both use port 26657"),
        ('[storage]\nlisten = "0.0.0.0:26658"\n', "rpc.listen and storage.listen both use port 26658"),
        ("[storage]\nlisten = 22021\n", "storage.listen must be a string host:port"),
        ('[storage]\nlisten = "22021"\n', "storage.listen '22021' is not host:port"),
    ],
)
def test_bad_config_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ChainError, match=message):
        parse_config(text)


def test_init_writes_a_config_the_parser_reads_back(tmp_path: Path, devnet_dir: Path) -> None:
    home, genesis = Home.init(tmp_path / "h", devnet_dir / "genesis.json", NodeConfig(snapshot_interval=9))
    assert home.load_config() == NodeConfig(snapshot_interval=9, sync_writes=True)
    assert home.load_genesis() == genesis
    assert (home.keys_path / "dev-accounts.json").exists()
    with pytest.raises(ChainError, match="already initialised"):
        Home.init(tmp_path / "h", devnet_dir / "genesis.json")


def test_every_key_file_of_a_testnet_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Node keys, BLS keys and the dev key lists (seeds, if public ones) are all written 0600."""
    from appchain.lab.testnet import write_testnet

    write_testnet(tmp_path / "net", 2, seed="modes", spare=1)
    key_files = [
        path for path in (tmp_path / "net").rglob("*") if path.parent.name == "keys" and path.is_file()
    ]
    assert {path.name for path in key_files} >= {
        "nodes.json",
        "accounts.json",
        "node_ed25519.key",
        "node_bls.key",
        "dev-accounts.json",
        "dev-nodes.json",
    }
    assert {str(path.relative_to(tmp_path)): path.stat().st_mode & 0o777 for path in key_files} == {
        str(path.relative_to(tmp_path)): 0o600 for path in key_files
    }
