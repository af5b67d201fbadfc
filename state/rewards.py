"""Block rewards (PROTOCOL.md §5; Session's ``RewardRatePool.sol``).

At the end of every block the pool pays ``pool x reward_rate_bp x block_time // (10,000 x
seconds_per_year)``: 15.1% a year pro-rated to one block target, rounded down. It is split
equally among the payable nodes (``share = reward // count``, nodes in key order). Within a node
the operator fee comes off first (``share x fee_bp // 10,000``, to the operator), and the rest is
split pro rata to stake (``rest x stake // total``, each rounded down). Only what is paid leaves
the pool: every remainder the integer divisions drop stays in it, so the supply is conserved to
the atomic unit. Payments accrue in the reward ledger (:mod:`state.ledger`) until claimed.
"""

from __future__ import annotations

from state import ledger
from state.context import BlockContext
from state.effects import RewardPaid
from state.nodes import ServiceNode, compute_stake, is_payable, iter_nodes
from state.params import ChainParams
from state.types import AccountKey, Atomic
from state.view import Overlay


def compute_block_reward(pool: int, params: ChainParams) -> int:
    return pool * params.reward_rate_bp * params.block_time // (10_000 * params.seconds_per_year)


def compute_node_payouts(node: ServiceNode, share: int) -> list[tuple[AccountKey, int]]:
    """How one node's ``share`` is paid: operator fee first, the rest pro rata to stake."""
    fee = share * node.operator_fee_bp // 10_000
    rest = share - fee
    total = compute_stake(node)
    payouts: dict[AccountKey, int] = {node.operator: fee}
    for contribution in node.contributions:
        amount = rest * contribution.amount // total
        payouts[contribution.account] = payouts.get(contribution.account, 0) + amount
    return [(account, amount) for account, amount in payouts.items() if amount > 0]


def distribute_rewards(view: Overlay, ctx: BlockContext) -> None:
    payable = [(key, node) for key, node in iter_nodes(view) if is_payable(node, ctx.height, ctx.params)]
    if not payable:
        return
    reward = compute_block_reward(ledger.get_pool_balance(view), ctx.params)
    share = reward // len(payable)
    if share == 0:
        return
    paid = 0
    for key, node in payable:
        node_paid = 0
        for account, amount in compute_node_payouts(node, share):
            ledger.accrue_reward(view, account, amount)
            node_paid += amount
        paid += node_paid
        view.emit(RewardPaid(key, Atomic(node_paid)))
    ledger.put_pool_balance(view, ledger.get_pool_balance(view) - paid)
