"""The token ledger: balances, nonces, fees, the reward pool and accrued rewards.

Keys: ``acct/<account>`` → :class:`Account`; ``pool`` → the reward pool balance;
``reward/<account>`` → :class:`RewardAccount` (accrued and not yet claimed, and lifetime).

Supply is never created after genesis: every rule moves amounts between balances, stakes,
locked stakes, the pool and accrued rewards, to the atomic unit.

Every transaction pays a fee, checked before anything else: its kind's base fee plus
``fee_per_byte`` times its encoded size, into the reward pool (Session's rule for name-service
fees, here for every fee). A sender who cannot pay it changes nothing.
"""

from __future__ import annotations

from state.context import BlockContext
from state.encoding import Decoder, Record, encode
from state.errors import BadNonce, InsufficientFunds, InvalidEvent
from state.events import (
    Allocation,
    ClaimRewards,
    Contribute,
    FundRewardPool,
    RegisterNode,
    RequestUnlock,
    SnsBuy,
    SnsRenew,
    SnsUpdate,
    Transaction,
    Transfer,
)
from state.params import ChainParams
from state.types import AccountKey, Atomic, Nonce
from state.view import Overlay

ACCOUNT_PREFIX = b"acct/"
REWARD_PREFIX = b"reward/"
POOL_KEY = b"pool"


class Account(Record, frozen=True):
    balance: Atomic
    nonce: Nonce
    """The nonce of the last transaction this account sent (0: none yet)."""


class RewardAccount(Record, frozen=True):
    accrued: Atomic
    """Rewards earned and not yet claimed."""
    lifetime: Atomic
    """Every reward ever accrued (what a reward attestation signs)."""


EMPTY_ACCOUNT = Account(Atomic(0), Nonce(0))
_account = Decoder(Account)
_reward = Decoder(RewardAccount)
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


def increase_balance(view: Overlay, account: AccountKey, amount: int) -> None:
    record = get_account(view, account)
    put_account(view, account, Account(Atomic(record.balance + amount), record.nonce))


def decrease_balance(view: Overlay, account: AccountKey, amount: int, what: str = "amount") -> None:
    record = get_account(view, account)
    if record.balance < amount:
        raise InsufficientFunds(f"balance {record.balance} is less than the {what} {amount}")
    put_account(view, account, Account(Atomic(record.balance - amount), record.nonce))


def get_pool_balance(view: Overlay) -> Atomic:
    raw = view.get(POOL_KEY)
    return Atomic(0) if raw is None else Atomic(_amount.decode(raw))


def put_pool_balance(view: Overlay, amount: int) -> None:
    view.put(POOL_KEY, encode(amount))


def increase_pool(view: Overlay, amount: int) -> None:
    put_pool_balance(view, get_pool_balance(view) + amount)


def get_reward_account(view: Overlay, account: AccountKey) -> RewardAccount:
    raw = view.get(REWARD_PREFIX + account)
    return RewardAccount(Atomic(0), Atomic(0)) if raw is None else _reward.decode(raw)


def accrue_reward(view: Overlay, account: AccountKey, amount: int) -> None:
    record = get_reward_account(view, account)
    view.put(
        REWARD_PREFIX + account,
        encode(RewardAccount(Atomic(record.accrued + amount), Atomic(record.lifetime + amount))),
    )


def compute_base_fee(params: ChainParams, tx: Transaction) -> int:
    if isinstance(tx, Transfer):
        return params.fee_transfer
    if isinstance(tx, RegisterNode):
        return params.fee_register_node
    if isinstance(tx, Contribute):
        return params.fee_contribute
    if isinstance(tx, RequestUnlock):
        return params.fee_request_unlock
    if isinstance(tx, ClaimRewards):
        return params.fee_claim_rewards
    if isinstance(tx, SnsBuy | SnsUpdate | SnsRenew):
        return params.fee_sns
    raise AssertionError(f"no fee for {type(tx).__name__}")


def compute_fee(params: ChainParams, tx: Transaction) -> int:
    """The fee ``tx`` pays: its kind's base fee plus the per-byte fee on its encoded size."""
    return compute_base_fee(params, tx) + params.fee_per_byte * len(encode(tx))


def check_nonce(tx: Transaction, used: int) -> None:
    """Raise :class:`BadNonce` unless ``tx`` carries the sender's next nonce (``used`` + 1): a
    nonce already used, or one beyond the next that leaves a gap. It reads nothing but the two
    numbers, so a mempool can ask it before paying for the signature."""
    if tx.nonce <= used:
        raise BadNonce(f"nonce {tx.nonce} is used: the sender's next nonce is {used + 1}")
    if tx.nonce > used + 1:
        raise BadNonce(f"nonce {tx.nonce} leaves a gap: the sender's next nonce is {used + 1}")


def charge_transaction(view: Overlay, tx: Transaction, ctx: BlockContext) -> None:
    """Check and take the fee, then check and bump the nonce: the start of every transaction."""
    sender = get_account(view, tx.sender)
    fee = compute_fee(ctx.params, tx)
    if sender.balance < fee:
        raise InsufficientFunds(f"balance {sender.balance} cannot pay the fee {fee}")
    check_nonce(tx, sender.nonce)
    put_account(view, tx.sender, Account(Atomic(sender.balance - fee), tx.nonce))
    increase_pool(view, fee)


def process_allocation(view: Overlay, event: Allocation) -> None:
    increase_balance(view, event.account, event.amount)


def process_fund_reward_pool(view: Overlay, event: FundRewardPool) -> None:
    increase_pool(view, event.amount)


def process_transfer(view: Overlay, tx: Transfer, ctx: BlockContext) -> None:
    if tx.amount <= 0:
        raise InvalidEvent("transfer amount must be positive")
    decrease_balance(view, tx.sender, tx.amount)
    increase_balance(view, tx.recipient, tx.amount)


def process_claim_rewards(view: Overlay, tx: ClaimRewards, ctx: BlockContext) -> None:
    record = get_reward_account(view, tx.sender)
    if record.accrued == 0:
        raise InvalidEvent("no accrued rewards to claim")
    view.put(REWARD_PREFIX + tx.sender, encode(RewardAccount(Atomic(0), record.lifetime)))
    increase_balance(view, tx.sender, record.accrued)
