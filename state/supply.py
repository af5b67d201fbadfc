"""Where every atomic unit of the supply is: balances, stakes, locked stakes, pool, unsettled
and accrued rewards.

The genesis supply never changes: fees and name prices go to the pool, each block's reward
leaves the pool for the nodes' unsettled rewards (the reward index, :mod:`state.rewards`),
settlement moves them to the reward ledger (what rounding drops back to the pool), claims to
balances, stakes out of balances and back. So the six parts always sum to the genesis
``total_supply``, to the atomic unit.
"""

from __future__ import annotations

from state.encoding import Decoder, Record
from state.ledger import ACCOUNT_PREFIX, POOL_KEY, REWARD_PREFIX, Account, RewardAccount
from state.noderecords import LockedStake, ServiceNode
from state.nodes import LOCK_PREFIX, NODE_PREFIX
from state.rewards import compute_unsettled, get_index
from state.state import State
from state.types import Atomic
from state.view import Overlay


class Supply(Record, frozen=True):
    balances: Atomic
    stakes: Atomic
    locked_stakes: Atomic
    pool: Atomic
    accrued_rewards: Atomic
    unsettled_rewards: Atomic

    @property
    def total(self) -> int:
        return (
            self.balances
            + self.stakes
            + self.locked_stakes
            + self.pool
            + self.accrued_rewards
            + self.unsettled_rewards
        )


_account = Decoder(Account)
_node = Decoder(ServiceNode)
_locked = Decoder(LockedStake)
_reward = Decoder(RewardAccount)
_int = Decoder(int)


def compute_supply(state: State) -> Supply:
    balances = sum(_account.decode(raw).balance for _, raw in state.prefixed(ACCOUNT_PREFIX))
    nodes = [_node.decode(raw) for _, raw in state.prefixed(NODE_PREFIX)]
    stakes = sum(c.amount for node in nodes for c in node.contributions)
    index = get_index(Overlay(state.get))
    unsettled = sum(compute_unsettled(node, index) for node in nodes)
    locked = sum(
        c.amount for _, raw in state.prefixed(LOCK_PREFIX) for c in _locked.decode(raw).contributions
    )
    accrued = sum(_reward.decode(raw).accrued for _, raw in state.prefixed(REWARD_PREFIX))
    raw_pool = state.get(POOL_KEY)
    pool = 0 if raw_pool is None else _int.decode(raw_pool)
    return Supply(
        Atomic(balances), Atomic(stakes), Atomic(locked), Atomic(pool), Atomic(accrued), Atomic(unsettled)
    )
