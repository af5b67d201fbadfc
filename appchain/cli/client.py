"""The client commands of ``appchain``: ``keys``, ``tx`` and ``query``.

They need no node home and no database: ``tx`` talks to a node's public JSON-RPC, and ``query``
is the light client (:mod:`appchain.client.lightclient`), which believes only what it verifies.

This module is their grammar (:func:`add_client_commands`); each command is a module beside it:
:mod:`appchain.cli.keys`, :mod:`appchain.cli.tx`, :mod:`appchain.cli.query` and
:mod:`appchain.cli.msg`, with the arguments checked first (:mod:`appchain.cli.arguments`) and the
light client's starting point (:mod:`appchain.cli.trust`).
"""

from __future__ import annotations

import argparse
from typing import Any

from appchain.cli.keys import cmd_keys_import, cmd_keys_new, cmd_keys_show
from appchain.cli.msg import cmd_msg
from appchain.cli.query import cmd_query
from appchain.cli.tx import cmd_tx


def _add_trust_arguments(parser: argparse.ArgumentParser, why: str) -> None:
    """The light client's starting point (:func:`choose_trust`)."""
    parser.add_argument("--genesis", default=None, help=f"start trusting from this genesis file, {why}")
    parser.add_argument("--checkpoint", default=None, help="HEIGHT:HASH of a checkpoint you trust")
    parser.add_argument(
        "--trust-file",
        default=None,
        help="where trusted checkpoints are kept, one per genesis (default: HOME/light/CHAIN.json)",
    )


def add_client_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, show and import account and node keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for action, handler, text in (
        ("new", cmd_keys_new, "create a key (an account key file, or --node keys in a home)"),
        ("show", cmd_keys_show, "show a key's public parts (--secret to print the seed)"),
        ("import", cmd_keys_import, "write a key from a seed read on standard input"),
    ):
        parser = key_commands.add_parser(action, help=text)
        parser.add_argument("--node", action="store_true", help="the node keys of a home (Ed25519 and BLS)")
        parser.add_argument("--home", default=None, help="the node's home (with --node)")
        if action == "show":
            parser.add_argument("file", nargs="?", help="an account key file")
            parser.add_argument("--secret", action="store_true", help="print the secret seed too")
        else:
            parser.add_argument("--out", default=None, help="the account key file to write (mode 0600)")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=handler)

    tx = commands.add_parser(
        "tx", help="build, sign and send a transaction, then wait until it is final (verified)"
    )
    tx_commands = tx.add_subparsers(dest="tx_command", required=True, metavar="KIND")

    def tx_parser(name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = tx_commands.add_parser(name, help=text)
        parser.add_argument("--key", required=True, help="the sender's account key file")
        parser.add_argument("--rpc", required=True, help="a node's RPC URL, e.g. http://127.0.0.1:26658")
        parser.add_argument(
            "--chain-id", default=None, help="default: the genesis's (--genesis), else the node's (--no-wait)"
        )
        parser.add_argument("--nonce", type=int, default=None, help="default: the account's next")
        parser.add_argument("--no-wait", action="store_true", help="return once the node accepted it")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for finality")
        _add_trust_arguments(parser, "to verify that a final block holds the transaction")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=cmd_tx)
        return parser

    transfer = tx_parser("transfer", "send SESH to an account")
    transfer.add_argument("--to", required=True)
    transfer.add_argument("--amount", required=True, help="SESH, e.g. 12.5")
    register = tx_parser("register", "register the node of a home and stake into it")
    register.add_argument("--node-home", required=True, help="the home holding the node's keys")
    register.add_argument("--amount", required=True, help="the operator's stake, SESH")
    register.add_argument("--fee-bp", type=int, default=0, help="operator fee, basis points (0-10000)")
    register.add_argument("--reserve", action="append", default=[], help="ACCOUNT=AMOUNT: a spot held open")
    contribute = tx_parser("contribute", "stake into a node that is not yet fully funded")
    contribute.add_argument("--node", required=True, help="the node key")
    contribute.add_argument("--amount", required=True, help="SESH")
    unlock = tx_parser("unlock", "ask for a node's exit (your stake returns after the unlock delay)")
    unlock.add_argument("--node", required=True)
    tx_parser("claim", "move your accrued rewards into your balance")
    buy = tx_parser("sns-buy", "buy a Session name")
    renew = tx_parser("sns-renew", "extend a name by one period")
    update = tx_parser("sns-update", "change a name's Session ID or owners (owner or backup owner)")
    for parser in (buy, renew, update):
        parser.add_argument("--name", required=True)
    buy.add_argument("--session-id", required=True, help="66 hex digits, 05…")
    update.add_argument("--session-id", default=None)
    for parser in (buy, update):
        parser.add_argument("--owner", default=None, help="default: the sender (buy) / unchanged (update)")
        parser.add_argument("--backup-owner", default=None)
    update.add_argument("--clear-backup-owner", action="store_true")

    query = commands.add_parser("query", help="ask nodes for state and verify it (light client)")
    query_commands = query.add_subparsers(dest="query_command", required=True, metavar="WHAT")
    for name, target, text in (
        ("balance", "account", "an account's balance and nonce"),
        ("rewards", "account", "an account's accrued rewards"),
        ("node", "pubkey", "a service node's record"),
        ("sns", "name", "a Session name's owner and Session ID (decrypted here)"),
    ):
        parser = query_commands.add_parser(name, help=text)
        parser.add_argument("target", metavar=target.upper())
        parser.add_argument(
            "--rpc", action="append", required=True, help="a node's RPC URL (repeat: ask several)"
        )
        parser.add_argument("--chain-id", default=None)
        _add_trust_arguments(parser, "to verify the answers")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=cmd_query)

    msg = commands.add_parser("msg", help="store, retrieve and delete Session messages in the swarms")
    msg_commands = msg.add_subparsers(dest="msg_command", required=True, metavar="ACTION")
    for name, text in (
        ("store", "store a message for your account in its swarm"),
        ("retrieve", "read your account's messages"),
        ("delete", "delete messages by hash"),
    ):
        parser = msg_commands.add_parser(name, help=text)
        parser.add_argument("--key", required=True, help="the account's key file (Ed25519 seed)")
        parser.add_argument("--rpc", required=True, help="a node's RPC URL, e.g. http://127.0.0.1:26658")
        parser.add_argument("--onion", action="store_true", help="through three random nodes (onion request)")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=cmd_msg)
        if name == "store":
            parser.add_argument("--data", default=None)
            parser.add_argument("--file", default=None)
            parser.add_argument("--ttl", type=float, default=14 * 86_400.0, help="seconds (default 14 days)")
        if name in ("store", "retrieve"):
            parser.add_argument("--namespace", type=int, default=0)
        if name == "retrieve":
            parser.add_argument("--last-hash", default="")
        if name == "delete":
            parser.add_argument("--hash", action="append", required=True)
