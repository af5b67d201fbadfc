"""Transactions from the command line: build, sign, send through a node's JSON-RPC, wait until final.

The node is trusted only to relay: the wallet reads the sender's next nonce from it
(``get_accounts``' ``pending_nonce``, which counts the sender's transactions waiting in the
mempool) and learns where the transaction landed by reading blocks (``get_block``'s
``tx_hashes``), but the transaction is signed here and its hash computed here, so a lying node
can delay it, never change it. Nor can it make the wallet say "final": that takes the light
client's proof that a certified block holds the transaction (``get_block``'s blob: the events,
hashed here to the header's ``events_root``, and headers linked to a certified checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from appchain.client.lightclient import RpcSource, SourceError, VerifyingClient
from state.encoding import encode
from state.events import Transaction, compute_event_hash
from state.types import ATOMIC_PER_COIN, MAX_U64, AccountKey

SCAN_BATCH = 50


class WalletError(Exception):
    """A transaction that cannot be built, is refused, or did not become final in time."""


def parse_amount(text: str) -> int:
    """SESH as a decimal (``"12.5"``) to atomic units, exactly; at most 9 decimals."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise WalletError(f"{text!r} is not an amount (SESH, e.g. 12.5)") from None
    atomic = value * ATOMIC_PER_COIN
    if not value.is_finite() or atomic != atomic.to_integral_value() or not 0 < atomic <= MAX_U64:
        raise WalletError(f"{text!r} is not a positive amount with at most 9 decimals")
    return int(atomic)


def format_amount(atomic: int) -> str:
    whole, fraction = divmod(atomic, ATOMIC_PER_COIN)
    return f"{whole}.{fraction:09d}".rstrip("0").rstrip(".") + " SESH"


def parse_key(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise WalletError(f"{what} must be 64 hex digits, not {text!r}")
    return raw


def next_nonce(source: RpcSource, account: AccountKey) -> int:
    """The nonce to sign the account's next transaction with: one above its ``pending_nonce``
    (its nonce counting its transactions in the node's mempool, so back-to-back transactions
    chain), or above its tip ``nonce`` from a node that does not report the pending one."""
    answer = source.call("get_accounts", {"addresses": [account.hex()]})
    accounts = answer.get("accounts")
    entry = accounts.get(account.hex()) if isinstance(accounts, dict) else None
    entry = entry if isinstance(entry, dict) else {}
    nonce, pending = entry.get("nonce"), entry.get("pending_nonce", entry.get("nonce"))
    for value in (nonce, pending):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_U64:
            raise SourceError(f"{source.url}: get_accounts answered without the account's nonce")
    assert isinstance(nonce, int) and isinstance(pending, int)
    if pending < nonce:
        raise SourceError(f"{source.url}: get_accounts answered a pending nonce below the account's nonce")
    return pending + 1


def top_heights(source: RpcSource) -> tuple[int, int]:
    """(top block height, final height) as the node reports them: where to look, not a proof."""
    info = source.call("get_info")
    height, final = info.get("height"), info.get("immutable_height")
    for value in (height, final):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_U64:
            raise SourceError(f"{source.url}: get_info answered without heights")
    assert isinstance(height, int) and isinstance(final, int)
    return height - 1, final


class Sent:
    def __init__(self, tx_hash: bytes, height: int, final_height: int) -> None:
        self.tx_hash = tx_hash
        self.height = height
        """The block that holds the transaction (-1: not waited for)."""
        self.final_height = final_height
        """The final height when the wallet saw that block final (at or above ``height``)."""


def send_and_wait(
    source: RpcSource,
    tx: Transaction,
    *,
    verifier: VerifyingClient | None = None,
    timeout: float = 120.0,
    poll: float = 0.5,
    wait: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> Sent:
    """Send ``tx``; unless ``wait`` is false, return once ``verifier`` (a light client) proved a
    final block holds it (:meth:`~appchain.client.lightclient.VerifyingClient.prove_inclusion`: a
    certified checkpoint at or above the block, the transaction among the events of its
    ``events_root``). The node's word alone (``tx_hashes``, ``immutable_height``) only says
    where to look; a block that lists the transaction but does not verify raises
    :class:`~appchain.client.lightclient.Lied`."""
    if wait and verifier is None:
        raise ValueError("waiting until a transaction is final needs a light client to verify it")
    tx_hash = compute_event_hash(tx)
    start, _final = top_heights(source)
    try:
        answer = source.call("send_transaction", {"tx_as_hex": encode(tx).hex()})
    except SourceError as exc:
        raise WalletError(f"the node refused the transaction: {exc}") from None
    if answer.get("tx_hash") != tx_hash.hex():
        raise WalletError(f"{source.url} reported another transaction hash than the one signed")
    if not wait:
        return Sent(tx_hash, -1, -1)
    assert verifier is not None
    deadline = clock() + timeout
    scanned = start
    found = -1
    while clock() < deadline:
        top, final = top_heights(source)
        if found < 0 and top > scanned:
            found = _find(source, tx_hash, scanned + 1, top)
            scanned = top
        if 0 <= found <= final:
            block = source.call("get_block", {"height": found})
            if _lists(block, tx_hash):  # still there now that it is final: prove it
                verifier.prove_inclusion(source, found, tx_hash)
                return Sent(tx_hash, found, final)
            found, scanned = -1, final  # it was in a block that lost fork choice: look again
        time.sleep(poll)
    where = "not yet in a block" if found < 0 else f"in block {found}, not yet final"
    raise WalletError(f"transaction {tx_hash.hex()} sent but {where} after {timeout:g} s")


def _lists(block: dict[str, Any], tx_hash: bytes) -> bool:
    """Whether a ``get_block`` answer lists ``tx_hash`` among its transactions."""
    hashes = block.get("tx_hashes")
    return isinstance(hashes, list) and tx_hash.hex() in hashes


def _find(source: RpcSource, tx_hash: bytes, low: int, high: int) -> int:
    """The height in ``[low, high]`` of the block holding ``tx_hash``, or -1."""
    for first in range(low, high + 1, SCAN_BATCH):
        heights = range(first, min(high, first + SCAN_BATCH - 1) + 1)
        answers: list[dict[str, Any]] = source.batch("get_block", [{"height": h} for h in heights])
        for height, answer in zip(heights, answers, strict=True):
            if _lists(answer, tx_hash):
                return height
    return -1
