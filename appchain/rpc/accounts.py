"""Accounts at the tip (*added*: oxend keeps no accounts): ``get_accounts`` (balance, nonce and the
nonce once this node's mempool is applied) and ``get_accrued_rewards`` (also
``get_accrued_batched_earnings``, oxend's name; settled plus what settling
the account's nodes would pay, as a claim would move it).

A light client proves a balance with ``get_state_proof`` (:mod:`appchain.rpc.proofs`) instead.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from appchain.rpc.jsonrpc import MAX_KEYS, Addresses, Params, RpcError, Text
from appchain.rpc.served import PublicNode, tip_view
from state.ledger import REWARD_PREFIX, get_account, get_reward_account
from state.nodes import compute_pending_rewards, iter_nodes
from state.types import AccountKey


def account_param(text: str) -> bytes:
    try:
        account = bytes.fromhex(text)
    except ValueError:
        account = b""
    if len(account) != 32:
        raise RpcError(-32602, f"{text[:80]!r} is not a 32-byte hex account key")
    return account


class AccountsParams(Params, frozen=True):
    addresses: Addresses


class EarningsParams(Params, frozen=True):
    addresses: Annotated[list[Text], msgspec.Meta(max_length=MAX_KEYS)] = msgspec.field(default_factory=list)
    """None or empty: every account with rewards (oxend: every address in its batching DB)."""


def _accounts_param(params: AccountsParams) -> list[bytes]:
    return [account_param(text) for text in params.addresses]


def get_accrued_rewards(node: PublicNode, params: EarningsParams) -> dict[str, Any]:
    """What a claim at the tip would move to each balance: the settled rewards in the account's
    reward ledger plus what settling the account's nodes would pay it (rewards settle lazily,
    PROTOCOL.md §5). oxend's ``get_accrued_batched_earnings`` shape: ``addresses`` and
    ``amounts`` in step; with no addresses, every account that holds settled rewards or
    contributes to a node (oxend: every address in its batching database). ``balances``,
    ``settled`` and ``pending`` (*added*) give the same by address, and the two parts."""
    view = tip_view(node)
    if params.addresses:
        accounts = [account_param(text) for text in params.addresses]
    else:
        accounts = sorted(_rewarded_accounts(node))
    balances, settled, pending = {}, {}, {}
    for account in accounts:
        name = account.hex()
        settled[name] = get_reward_account(view, AccountKey(account)).accrued
        pending[name] = compute_pending_rewards(view, account)
        balances[name] = settled[name] + pending[name]
    return {
        "status": "OK",
        "addresses": list(balances),
        "amounts": list(balances.values()),
        "balances": balances,
        "settled": settled,
        "pending": pending,
        "height": node.ledger.height,
    }


def _rewarded_accounts(node: PublicNode) -> set[bytes]:
    """Every account that holds settled rewards or contributes to a node."""
    state = node.ledger.state
    accounts = {bytes(key) for key, _ in state.prefixed(REWARD_PREFIX)}
    for _, record in iter_nodes(tip_view(node)):
        accounts.update(bytes(c.account) for c in record.contributions)
    return accounts


def get_accounts(node: PublicNode, params: AccountsParams) -> dict[str, Any]:
    """Balances and nonces at the tip (*added*: oxend keeps no accounts), and each account's
    ``pending_nonce``: its nonce once its transactions waiting in this node's mempool are
    applied. A wallet signs its next transaction with ``pending_nonce + 1`` (with the tip's nonce,
    a second transaction sent before the first is in a block reuses its nonce and is refused);
    a light client proves a balance with ``get_state_proof`` instead."""
    view = tip_view(node)
    state = node.ledger.state
    accounts = {}
    for account in _accounts_param(params):
        record = get_account(view, AccountKey(account))
        accounts[account.hex()] = {
            "balance": record.balance,
            "balance_str": str(record.balance),
            "nonce": record.nonce,
            "pending_nonce": node.core.mempool.get_pending_nonce(AccountKey(account), state),
        }
    return {"status": "OK", "accounts": accounts, "height": node.ledger.height}
