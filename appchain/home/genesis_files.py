"""A genesis file and the dev keys beside it, written to disk: ``genesis new``, ``testnet`` and
``export-genesis`` write through here.

The layout is ``<folder>/genesis.json`` and ``<folder>/keys/`` (``nodes.json``,
``accounts.json``, ``node-<i>.json``: :func:`genesis.devnet.dev_key_files`), which is what
``appchain init`` copies into a home. Documents are built in :mod:`genesis` (which does no I/O);
the files are written by :mod:`appchain.home.safefile`'s rules: each whole or not at all, an existing
one replaced only with ``--force`` and only if it is a regular file, never a home's own file.
:func:`check_genesis_target` runs those checks for every file first, so a refusal comes before
any work and nothing is half written.
"""

from __future__ import annotations

from pathlib import Path

from appchain.home.safefile import (
    KEYS_FOLDER,
    UnsafeTarget,
    check_folder_target,
    check_target,
    write_atomically,
)
from genesis.devnet import DEFAULT_GENESIS_TIME, DevNode, create_devnet_genesis, dev_key_files
from genesis.document import Genesis, dump_genesis
from genesis.presets import DEVNET
from state.crypto import ed25519
from state.params import ChainParams


def check_genesis_target(out: Path, *, with_keys: bool, force: bool) -> None:
    """Refuse ``out`` (and its ``keys/`` folder with ``with_keys``) as targets, before any work.

    Raises :class:`~appchain.home.safefile.UnsafeTarget` naming the first refused file.
    """
    check_target(out, force=force)
    if not with_keys:
        return
    keys = out.parent / KEYS_FOLDER
    check_folder_target(keys)
    if keys.exists() and not force:
        raise UnsafeTarget(f"{keys} already exists: pass --force to overwrite it")
    if keys.is_dir():
        for name in ("nodes.json", "accounts.json"):
            check_target(keys / name, force=force)


def write_genesis_file(out: Path, genesis: Genesis, *, force: bool) -> None:
    """The genesis file, in its canonical form."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, dump_genesis(genesis).encode(), force=force)


def write_dev_keys(
    keys: Path, dev_nodes: list[DevNode], dev_users: list[ed25519.SigningKey], *, force: bool
) -> None:
    """The dev key files in the folder ``keys`` (created when missing), each mode 0600."""
    check_folder_target(keys)
    keys.mkdir(exist_ok=True)
    files = dev_key_files(dev_nodes, dev_users)
    for name in files:  # every file checked before the first is written
        check_target(keys / name, force=force)
    for name, data in files.items():
        write_atomically(keys / name, data, force=force, mode=0o600)


def write_devnet(
    out: Path,
    nodes: int,
    seed: str,
    *,
    users: int = 8,
    chain_id: str = "appchain-devnet",
    genesis_time: int = DEFAULT_GENESIS_TIME,
    params: ChainParams = DEVNET,
    force: bool = False,
) -> Genesis:
    """Write a devnet genesis (:func:`genesis.devnet.create_devnet_genesis`) to ``out`` and its
    dev keys to ``keys/`` beside it; with ``force``, existing regular files are replaced."""
    genesis, dev_nodes, dev_users = create_devnet_genesis(
        nodes, seed, users=users, chain_id=chain_id, genesis_time=genesis_time, params=params
    )
    check_genesis_target(out, with_keys=False, force=force)
    keys = out.parent / KEYS_FOLDER
    check_folder_target(keys)
    if keys.is_dir():
        for name in dev_key_files(dev_nodes, dev_users):
            check_target(keys / name, force=force)
    write_genesis_file(out, genesis, force=force)
    write_dev_keys(keys, dev_nodes, dev_users, force=force)
    return genesis
