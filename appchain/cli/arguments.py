"""The client commands' arguments, checked before anything is read or sent: numbers within the
bounds of the fields they fill, seconds, URLs, chain ids, names; the sender's key file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from appchain.cli.results import ClientError
from appchain.client.http import parse_url
from appchain.home.keyfile import read_seed
from appchain.messaging.rpc import TTL_MAXIMUM, TTL_MAXIMUM_PRIVATE, TTL_MINIMUM
from appchain.messaging.store import is_public_inbox
from genesis.document import CHAIN_ID
from state import sns
from state.crypto import ed25519
from state.events import MAX_FEE_BP
from state.types import MAX_U64, Bytes32

MAX_TIMEOUT = 86_400.0
"""``tx --timeout``: at most a day (finality takes seconds on a devnet, minutes on mainnet)."""


def check_integer(value: int | None, flag: str, low: int, high: int) -> None:
    """``value`` (None: not given) within [low, high]: the bounds of the field it fills."""
    if value is not None and not low <= value <= high:
        raise ClientError(f"{flag} {value} must be from {low} to {high}")


def check_seconds(value: float, flag: str, low: float, high: float, *, above_low: bool = False) -> None:
    """A number of seconds within its bounds; NaN and infinities fail (every comparison with NaN is false)."""
    inside = (low < value if above_low else low <= value) and value <= high
    if not inside:
        lowest = f"above {low:g}" if above_low else f"from {low:g}"
        raise ClientError(f"{flag} {value!r} must be a number of seconds {lowest} to {high:g}")


def check_urls(urls: list[str]) -> None:
    for url in urls:
        try:
            parse_url(url)
        except ValueError as exc:
            raise ClientError(f"--rpc {exc}") from None


def check_chain_id(chain_id: str | None) -> None:
    if chain_id is not None and not CHAIN_ID.match(chain_id):
        raise ClientError(
            f"--chain-id {chain_id!r}: 1 to 64 of lowercase letters, digits, '.', '_', '-', "
            "starting with a letter or digit"
        )


def check_tx_arguments(args: argparse.Namespace) -> None:
    """Every ``tx`` argument that needs no file and no node, checked before anything is sent."""
    check_urls([args.rpc])
    check_chain_id(args.chain_id)
    check_seconds(args.timeout, "--timeout", 0.0, MAX_TIMEOUT, above_low=True)
    check_integer(args.nonce, "--nonce", 1, MAX_U64)
    if args.tx_command == "register":
        check_integer(args.fee_bp, "--fee-bp", 0, MAX_FEE_BP)


def check_msg_arguments(args: argparse.Namespace) -> None:
    """Every ``msg`` argument that needs no file and no node: the URL, namespace, TTL."""
    check_urls([args.rpc])
    if args.msg_command in ("store", "retrieve"):
        check_integer(args.namespace, "--namespace", -32768, 32767)
    if args.msg_command == "store":
        longest = TTL_MAXIMUM if is_public_inbox(args.namespace) else TTL_MAXIMUM_PRIVATE
        check_seconds(args.ttl, "--ttl", TTL_MINIMUM / 1000, longest / 1000)


def read_sender(args: argparse.Namespace) -> ed25519.SigningKey:
    return ed25519.SigningKey(read_seed(Path(args.key)))


def parse_name_hash(name: str) -> Bytes32:
    try:
        return Bytes32(sns.compute_name_hash(sns.normalize_name(name)))
    except sns.InvalidName as exc:
        raise ClientError(str(exc)) from None
