"""Block rewards (PROTOCOL.md §5; Session's ``RewardRatePool.sol``), by a cumulative index.

At the end of every block the pool pays ``pool x reward_rate_bp x block_time // (10,000 x
seconds_per_year x 1,000)``: 15.1% a year pro-rated to one block target, rounded down, split
equally among the payable nodes. ``block_time`` is in milliseconds and the year in seconds, hence
the 1,000: when the unit moved from seconds to milliseconds both sides of the division grew by
exactly 1,000, so mainnet's (and any whole-second chain's) rewards are what they were to the
atomic unit. No node is visited for it: the state keeps a cumulative index (``meta/rewards``
→ :class:`RewardIndex`: what one node payable since genesis would have earned, and how many nodes
are payable). Each block ``share = reward // payable``; the index grows by ``share`` and the pool
pays ``share x payable`` (what the division drops stays in it). O(1) per block whatever the size of
the network (F1-style, as Cosmos ``x/distribution``).

A payable node keeps ``reward_index``, the index at which it was last *settled*. Settling pays
``index - reward_index``: the operator fee first (``earned x fee_bp // 10,000``, to the operator),
the rest pro rata to stake (``rest x stake // total``, each rounded down), into the reward ledger
(:mod:`state.ledger`); the remainder the divisions drop goes back to the pool, so the supply is
conserved to the atomic unit. :mod:`state.nodes` settles a node when it stops being payable
(decommission, deregistration, exit) and when anyone holding a stake in it claims, and starts it
earning when it becomes payable: ``payable_delay`` blocks after its first activation (work
scheduled at that height, not a scan) or at a recommission after that. (A node's stakes change
only before it is active, so no settlement is needed for that.) The reward ledger's ``lifetime``,
what a reward attestation signs, counts settled rewards only. A node earns exactly the
sum of the per-block shares, as a per-block split would; only the rounding of the split happens
once per settlement instead of once per block.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from state import ledger
from state.context import BlockContext
from state.effects import BlockRewarded, RewardPaid
from state.encoding import Decoder, Record, encode
from state.noderecords import NOT_EARNING, ServiceNode
from state.params import ChainParams
from state.types import AccountKey, Atomic, NodeKey
from state.view import Overlay

REWARD_INDEX_KEY = b"meta/rewards"


class RewardIndex(Record, frozen=True):
    per_node: int
    """The sum of every block's share since genesis."""
    payable: int
    """How many nodes earn the next block's share."""


_index = Decoder(RewardIndex)


def compute_block_reward(pool: int, params: ChainParams) -> int:
    """One block's reward out of a pool of ``pool`` (``block_time`` in ms, the year in seconds)."""
    return pool * params.reward_rate_bp * params.block_time // (10_000 * params.seconds_per_year * 1000)


def get_index(view: Overlay) -> RewardIndex:
    raw = view.get(REWARD_INDEX_KEY)
    return RewardIndex(0, 0) if raw is None else _index.decode(raw)


def _put_index(view: Overlay, index: RewardIndex) -> None:
    view.put(REWARD_INDEX_KEY, encode(index))


def compute_node_payouts(node: ServiceNode, earned: int) -> list[tuple[AccountKey, int]]:
    """How ``earned`` is paid: operator fee first, the rest pro rata to stake (rounded down)."""
    fee = earned * node.operator_fee_bp // 10_000
    rest = earned - fee
    total = sum(c.amount for c in node.contributions)
    payouts: dict[AccountKey, int] = {node.operator: fee}
    for contribution in node.contributions:
        amount = rest * contribution.amount // total
        payouts[contribution.account] = payouts.get(contribution.account, 0) + amount
    return [(account, amount) for account, amount in payouts.items() if amount > 0]


def compute_unsettled(node: ServiceNode, index: RewardIndex) -> int:
    """What ``node`` has earned since it was last settled."""
    return 0 if node.reward_index == NOT_EARNING else index.per_node - node.reward_index


def compute_pending(nodes: Iterable[ServiceNode], index: RewardIndex, account: bytes) -> int:
    """What settling ``nodes`` now would pay ``account``."""
    return sum(
        amount
        for node in nodes
        for payee, amount in compute_node_payouts(node, compute_unsettled(node, index))
        if payee == account
    )


def start_earning(view: Overlay, node: ServiceNode) -> ServiceNode:
    """``node`` is payable from this block's reward on (the caller stores the returned record)."""
    if node.reward_index != NOT_EARNING:
        raise AssertionError("a node starts earning twice")
    index = get_index(view)
    _put_index(view, RewardIndex(index.per_node, index.payable + 1))
    return msgspec.structs.replace(node, reward_index=index.per_node)


def settle(view: Overlay, node_key: bytes, node: ServiceNode) -> ServiceNode:
    """Pay what ``node`` earned since it was last settled; the returned record is settled."""
    index = get_index(view)
    earned = compute_unsettled(node, index)
    if earned == 0:
        return node
    paid = 0
    for account, amount in compute_node_payouts(node, earned):
        ledger.accrue_reward(view, account, amount)
        paid += amount
    ledger.put_pool_balance(view, ledger.get_pool_balance(view) + earned - paid)
    view.emit(RewardPaid(NodeKey(node_key), Atomic(paid)))
    return msgspec.structs.replace(node, reward_index=index.per_node)


def stop_earning(view: Overlay, node_key: bytes, node: ServiceNode) -> ServiceNode:
    """Settle ``node`` and take it out of the payable count (no-op for a node not earning)."""
    if node.reward_index == NOT_EARNING:
        return node
    settled = settle(view, node_key, node)
    index = get_index(view)
    _put_index(view, RewardIndex(index.per_node, index.payable - 1))
    return msgspec.structs.replace(settled, reward_index=NOT_EARNING)


def accrue_block_reward(view: Overlay, ctx: BlockContext) -> None:
    """The end of a block: every payable node earns one share; no node record is touched."""
    index = get_index(view)
    if index.payable == 0:
        return
    pool = ledger.get_pool_balance(view)
    share = compute_block_reward(pool, ctx.params) // index.payable
    if share == 0:
        return
    ledger.put_pool_balance(view, pool - share * index.payable)
    _put_index(view, RewardIndex(index.per_node + share, index.payable))
    view.emit(BlockRewarded(Atomic(share), index.payable))
