"""``appchain keys``: create, show and import account keys (a seed file, mode 0600) and a home's
node keys (Ed25519 and BLS). Seeds are read from standard input, never the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519

from appchain.cli.results import ClientError
from appchain.home.home import Home, default_home
from appchain.home.keyfile import read_seed, write_seed
from state.crypto import bls, ed25519


def cmd_keys_new(args: argparse.Namespace) -> int:
    if args.node:
        home = Home(_home(args))
        home.write_node_keys(os.urandom(32), os.urandom(32))
        return _show_node(home, secret=False, as_json=args.json)
    path = _out(args)
    write_seed(path, os.urandom(32))
    return _show_account(path, secret=False, as_json=args.json)


def cmd_keys_show(args: argparse.Namespace) -> int:
    if args.node:
        return _show_node(Home(_home(args)), secret=args.secret, as_json=args.json)
    if args.file is None:
        raise ClientError("keys show: name the key file (or --node --home DIR)")
    return _show_account(Path(args.file), secret=args.secret, as_json=args.json)


def cmd_keys_import(args: argparse.Namespace) -> int:
    """Seeds come from standard input, never the command line (which other users can read)."""
    lines = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    wanted = 2 if args.node else 1
    seeds = []
    for line in lines:
        try:
            seeds.append(bytes.fromhex(line))
        except ValueError:
            seeds.append(b"")
    if len(seeds) != wanted or any(len(seed) != 32 for seed in seeds):
        what = "two lines: the node key seed, then the BLS seed" if args.node else "one line: the seed"
        raise ClientError(f"keys import: standard input must hold {what} (64 hex digits each)")
    if args.node:
        home = Home(_home(args))
        home.write_node_keys(seeds[0], seeds[1])
        return _show_node(home, secret=False, as_json=args.json)
    path = _out(args)
    write_seed(path, seeds[0])
    return _show_account(path, secret=False, as_json=args.json)


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home) if args.home is not None else default_home()


def _out(args: argparse.Namespace) -> Path:
    if args.out is None:
        raise ClientError("name the key file to write with --out FILE (or --node --home DIR)")
    return Path(args.out)


def _show_account(path: Path, *, secret: bool, as_json: bool) -> int:
    key = ed25519.SigningKey(read_seed(path))
    shown = {"account": key.public_key.hex(), "file": str(path)}
    if secret:
        shown["seed"] = key.seed.hex()
    _emit(shown, as_json)
    return 0


def _show_node(home: Home, *, secret: bool, as_json: bool) -> int:
    node_key, bls_secret = home.load_node_keys()
    shown = {
        "node_key": node_key.public_key.hex(),
        "pubkey_x25519": crypto_sign_ed25519_pk_to_curve25519(node_key.public_key).hex(),
        "pubkey_bls": bls.public_key(bls_secret).hex(),
        "folder": str(home.keys_path),
    }
    if secret:
        shown["node_seed"] = read_seed(home.node_key_path).hex()
        shown["bls_seed"] = read_seed(home.bls_key_path).hex()
    _emit(shown, as_json)
    return 0


def _emit(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(shown, sort_keys=True))
    else:
        for name, value in shown.items():
            print(f"{name}: {value}")
