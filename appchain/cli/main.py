"""``appchain``: the command line, in the style of oxend and CometBFT.

Exit statuses: the table in :mod:`appchain.cli.results`, which chooses them (0 success, 1 a user
mistake, 2 usage, 3 corruption, 4–5 ``simulate``, 6 a node that lied, 130 interrupted).

Commands that use a home take ``--home DIR``; without it, ``$APPCHAIN_HOME``, else
``~/.appchain``. Each holds the home's lock while it runs (one process per home); ``status``
only reads, so it shares the lock with other readers, and a starting node waits for them
(:mod:`appchain.home.guard`).

The commands live beside this module, by the room they work with: :mod:`appchain.cli.home`
(genesis files, init, replay, export and import, rollback, dev-chain), :mod:`appchain.cli.node`
(start, status), :mod:`appchain.cli.lab` (testnet, devnet, check-histories, simulate) and
:mod:`appchain.cli.client` (keys, tx, query, msg, which need no home). This module is the
grammar (:func:`build_parser`) and :func:`main`, which turns each error a user can cause into
one line and its exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from appchain.cli.client import add_client_commands
from appchain.cli.home import (
    cmd_dev_chain,
    cmd_export_events,
    cmd_export_genesis,
    cmd_genesis_new,
    cmd_genesis_validate,
    cmd_import_events,
    cmd_init,
    cmd_replay,
    cmd_rollback,
)
from appchain.cli.lab import cmd_check_histories, cmd_devnet, cmd_simulate, cmd_testnet
from appchain.cli.node import cmd_start, cmd_status
from appchain.cli.results import EXIT_CORRUPT, EXIT_INTERRUPTED, EXIT_USER_ERROR, ClientErrors
from appchain.home.chain import ChainError
from appchain.home.home import NodeConfig, default_home
from appchain.home.safefile import UnsafeTarget
from appchain.home.store import StoreCorrupt, StoreInUse
from appchain.lab.checker import RESUME_ROUNDS
from appchain.lab.testnet import DEFAULT_BASE_PORT
from genesis.devnet import DevKeyError
from genesis.document import GenesisError


def _positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="the node's home folder (default: $APPCHAIN_HOME, else ~/.appchain)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appchain", description="A service-node appchain node.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    genesis = commands.add_parser("genesis", help="create and check genesis files")
    genesis_commands = genesis.add_subparsers(dest="genesis_command", required=True, metavar="ACTION")
    new = genesis_commands.add_parser("new", help="write a devnet genesis with deterministic dev keys")
    new.add_argument("--nodes", type=int, required=True, help="funded service nodes")
    new.add_argument("--seed", required=True, help="seed of every dev key (same seed, same files)")
    new.add_argument("--out", required=True, help="genesis file to write; keys go to keys/ beside it")
    new.add_argument("--users", type=int, default=8, help="funded user accounts (default 8)")
    new.add_argument("--chain-id", default="appchain-devnet")
    new.add_argument("--force", action="store_true", help="overwrite an existing genesis file and keys/")
    new.set_defaults(handler=cmd_genesis_new)
    validate = genesis_commands.add_parser("validate", help="check a genesis file and print its hash")
    validate.add_argument("file")
    validate.set_defaults(handler=cmd_genesis_validate)

    init = commands.add_parser("init", help="create a node home from a genesis file")
    _add_home(init)
    init.add_argument("--genesis", required=True)
    init.add_argument("--snapshot-interval", type=int, default=NodeConfig.snapshot_interval)
    init.set_defaults(handler=cmd_init)

    dev = commands.add_parser("dev-chain", help="append blocks of random signed transactions")
    _add_home(dev)
    dev.add_argument("--blocks", type=int, required=True)
    dev.add_argument("--seed", required=True)
    dev.add_argument("--events-per-block", type=int, default=100)
    dev.add_argument(
        "--transfers-only", action="store_true", help="only transfers, no service-node or SNS events"
    )
    dev.set_defaults(handler=cmd_dev_chain)

    replay = commands.add_parser("replay", help="rebuild the state from genesis and check every root")
    _add_home(replay)
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.add_argument(
        "--verify-signatures", action="store_true", help="re-verify every signature (default: trust the log)"
    )
    replay.set_defaults(handler=cmd_replay)

    status = commands.add_parser("status", help="open the home (handshake) and show its tip")
    _add_home(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    export = commands.add_parser("export-events", help="write the event log to a file")
    _add_home(export)
    export.add_argument("--out", required=True)
    export.add_argument("--force", action="store_true", help="replace an existing file (a regular file only)")
    export.set_defaults(handler=cmd_export_events)

    export_genesis = commands.add_parser(
        "export-genesis", help="write the state at a final height as the genesis of a new chain"
    )
    _add_home(export_genesis)
    export_genesis.add_argument("--height", type=int, required=True, help="a final height")
    export_genesis.add_argument(
        "--out", required=True, help="the genesis file to write, in an existing folder"
    )
    export_genesis.add_argument(
        "--replace-nodes",
        type=int,
        default=None,
        metavar="N",
        help="replace the node set by N dev nodes staked from the reward pool (keys/ beside --out)",
    )
    export_genesis.add_argument(
        "--seed", default=None, help="dev key seed of --replace-nodes (default: chain id)"
    )
    export_genesis.add_argument(
        "--chain-id", default=None, help="the new chain id (default: the old one + -h<H>)"
    )
    export_genesis.add_argument(
        "--genesis-time",
        type=int,
        default=None,
        help="unix seconds (default: the timestamp of block H, in seconds rounded up)",
    )
    export_genesis.add_argument("--force", action="store_true", help="overwrite an existing file and keys/")
    export_genesis.set_defaults(handler=cmd_export_genesis)

    imp = commands.add_parser("import-events", help="rebuild a fresh home from an export")
    _add_home(imp)
    imp.add_argument("--in", dest="in_file", required=True)
    imp.add_argument(
        "--trust-signatures",
        action="store_true",
        help="skip verifying Pulse data and signatures (only for an export you made yourself)",
    )
    imp.set_defaults(handler=cmd_import_events)

    rollback = commands.add_parser("rollback", help="undo the non-final blocks above a height")
    _add_home(rollback)
    rollback.add_argument("--height", type=int, required=True)
    rollback.set_defaults(handler=cmd_rollback)

    start = commands.add_parser("start", help="run the node: p2p, consensus, admin endpoint (until Ctrl-C)")
    _add_home(start)
    start.set_defaults(handler=cmd_start)

    testnet = commands.add_parser("testnet", help="write N node homes for a local network")
    testnet.add_argument("--nodes", type=int, required=True)
    testnet.add_argument("--out", required=True, help="a new folder: genesis.json, keys/, node0 … node{N-1}")
    testnet.add_argument(
        "--base-port", type=int, default=DEFAULT_BASE_PORT, help="node i: p2p P+3i, admin P+3i+1, rpc P+3i+2"
    )
    testnet.add_argument("--seed", default=None, help="dev key seed (default: random)")
    testnet.add_argument("--spare", type=int, default=0, help="extra homes with keys not in the genesis")
    testnet.set_defaults(handler=cmd_testnet)

    devnet = commands.add_parser("devnet", help="start a local network of node processes with a live view")
    devnet.add_argument("--nodes", type=int, default=12)
    devnet.add_argument("--home", default=".devnet", help="the testnet folder (created when missing)")
    devnet.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    devnet.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: Ctrl-C)")
    devnet.add_argument(
        "--netns",
        action="store_true",
        help="each node in its own network namespace, as on its own host (root)",
    )
    devnet.set_defaults(handler=cmd_devnet)

    check = commands.add_parser(
        "check-histories", help="check the histories of a run's nodes: safety, double signs, roots, stalls"
    )
    check.add_argument("homes", nargs="+", metavar="HOME")
    check.add_argument("--json", action="store_true")
    check.add_argument(
        "--schedules",
        metavar="FILE",
        help="the fault record of a run (appchain.lab.nemesis): heals and fault times",
    )
    check.add_argument(
        "--healed-at", type=float, action="append", default=[], metavar="UNIX_TIME",
        help="a time faults were healed: finality must resume within --resume-within of it (repeatable)",
    )  # fmt: skip
    check.add_argument(
        "--resume-within", type=_positive_seconds, default=None, metavar="SECONDS",
        help=f"default: {RESUME_ROUNDS} Pulse round timeouts (the first home's config)",
    )  # fmt: skip
    check.set_defaults(handler=cmd_check_histories)
    sim = commands.add_parser("simulate", help="run N nodes in the deterministic network simulator")
    sim.add_argument("--nodes", type=int, default=30)
    sim.add_argument("--blocks", type=int, default=20, help="stop once every honest node has this many final")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--faults",
        default="",
        help="e.g. loss=0.05,crash=3@5-40,partition=0-9|10-29@6-40,floor=1-9@30,stall=30-1600",
    )
    sim.add_argument(
        "--internet",
        action="store_true",
        help="a bounded topology over a simulated WAN (8 gossip peers, quorum connections on duty,"
        " regions 20-300 ms apart, 1%% loss), mainnet's pace 12x faster; reports traffic per node",
    )
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(handler=cmd_simulate)

    add_client_commands(commands)
    return parser


def _version() -> str:
    try:
        return metadata.version("appchain")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "home" in args and args.home is None:
        args.home = default_home()
    try:
        status: int = args.handler(args)
    except GenesisError as exc:
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        print(f"error: genesis: {exc.problems[0]}{more}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (ChainError, StoreInUse, DevKeyError, UnsafeTarget) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ClientErrors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except StoreCorrupt as exc:
        print(f"fatal: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    except OSError as exc:  # a path the user named: missing, a folder, not writable, disk full
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status
