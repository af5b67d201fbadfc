"""The token ledger: balances, nonces and the reward pool.

Keys: ``acct/<32-byte account>`` → :class:`Account`; ``pool`` → the reward pool balance.
Supply is never created after genesis: every transfer debits exactly what it credits.
"""

from __future__ import annotations

from state.encoding import Decoder, Record, encode
from state.errors import BadNonce, InsufficientFunds, InvalidEvent
from state.events import Allocation, FundRewardPool, Transfer
from state.types import AccountKey, Atomic, Nonce
from state.view import Overlay

ACCOUNT_PREFIX = b"acct/"
POOL_KEY = b"pool"


class Account(Record, frozen=True):
    balance: Atomic
    nonce: Nonce
    """The nonce of the last transaction this account sent (0: none yet)."""


EMPTY_ACCOUNT = Account(Atomic(0), Nonce(0))
_account = Decoder(Account)
_amount = Decoder(int)


def account_key(account: bytes) -> bytes:
    return ACCOUNT_PREFIX + account


def get_account(view: Overlay, account: AccountKey) -> Account:
    raw = view.get(ACCOUNT_PREFIX + account)
    return EMPTY_ACCOUNT if raw is None else _account.decode(raw)


def put_account(view: Overlay, account: AccountKey, record: Account) -> None:
    if record == EMPTY_ACCOUNT:
        view.delete(ACCOUNT_PREFIX + account)  # keep the map free of all-zero records
    else:
        view.put(ACCOUNT_PREFIX + account, encode(record))


def get_pool_balance(view: Overlay) -> Atomic:
    raw = view.get(POOL_KEY)
    return Atomic(0) if raw is None else Atomic(_amount.decode(raw))


def put_pool_balance(view: Overlay, amount: int) -> None:
    view.put(POOL_KEY, encode(amount))


def increase_balance(view: Overlay, account: AccountKey, amount: int) -> None:
    record = get_account(view, account)
    put_account(view, account, Account(Atomic(record.balance + amount), record.nonce))


def process_allocation(view: Overlay, event: Allocation) -> None:
    increase_balance(view, event.account, event.amount)


def process_fund_reward_pool(view: Overlay, event: FundRewardPool) -> None:
    put_pool_balance(view, get_pool_balance(view) + event.amount)


def process_transfer(view: Overlay, tx: Transfer) -> None:
    sender = get_account(view, tx.sender)
    if tx.nonce != sender.nonce + 1:
        raise BadNonce(f"nonce {tx.nonce} but the sender's next nonce is {sender.nonce + 1}")
    if sender.balance < tx.amount:
        raise InsufficientFunds(f"balance {sender.balance} is less than {tx.amount}")
    if tx.amount <= 0:
        raise InvalidEvent("transfer amount must be positive")
    put_account(view, tx.sender, Account(Atomic(sender.balance - tx.amount), tx.nonce))
    increase_balance(view, tx.recipient, tx.amount)
