"""Effects: what a block did, for the consumers of the state (swarm layer, RPC, metrics).

``apply_block`` returns them in a deterministic order: the block's scheduled work first (exits,
stake returns, name expiries), then each event's effects in event order, then the end of the
block (swarm changes, rewards in node-key order). They are recomputed by replay and never
stored as a second source of truth.
"""

from __future__ import annotations

from state.encoding import Record
from state.types import AccountKey, Atomic, Bytes32, Height, NodeKey


class NodeRegistered(Record, frozen=True, tag="node_registered"):
    node_key: NodeKey
    operator: AccountKey


class NodeActivated(Record, frozen=True, tag="node_activated"):
    node_key: NodeKey


class NodeDecommissioned(Record, frozen=True, tag="node_decommissioned"):
    node_key: NodeKey
    credit: int
    reasons_all: int
    reasons_any: int


class NodeRecommissioned(Record, frozen=True, tag="node_recommissioned"):
    node_key: NodeKey
    credit: int


class NodeDeregistered(Record, frozen=True, tag="node_deregistered"):
    node_key: NodeKey
    stakes_return_height: Height


class NodePenalised(Record, frozen=True, tag="node_penalised"):
    """Sent to the back of the reward queue (an IP-change penalty)."""

    node_key: NodeKey


class UnlockRequested(Record, frozen=True, tag="unlock_requested"):
    node_key: NodeKey
    account: AccountKey
    exit_height: Height


class NodeExited(Record, frozen=True, tag="node_exited"):
    """The node left the registry (unlock completed, or a registration withdrawn)."""

    node_key: NodeKey


class StakeReturned(Record, frozen=True, tag="stake_returned"):
    node_key: NodeKey
    account: AccountKey
    amount: Atomic


class SwarmChanged(Record, frozen=True, tag="swarm_changed"):
    """A node's swarm membership changed; ``UNASSIGNED_SWARM_ID`` means it has none."""

    node_key: NodeKey
    old_swarm: int
    new_swarm: int


class RewardPaid(Record, frozen=True, tag="reward_paid"):
    """A node was settled: ``amount`` of what it earned reached its contributors' reward ledgers."""

    node_key: NodeKey
    amount: Atomic


class BlockRewarded(Record, frozen=True, tag="block_rewarded"):
    """The block's reward: ``share`` earned by each of ``nodes`` payable nodes (paid at settlement)."""

    share: Atomic
    nodes: int


class NameBought(Record, frozen=True, tag="name_bought"):
    name_hash: Bytes32
    owner: AccountKey
    expiry_height: Height


class NameUpdated(Record, frozen=True, tag="name_updated"):
    name_hash: Bytes32


class NameRenewed(Record, frozen=True, tag="name_renewed"):
    name_hash: Bytes32
    expiry_height: Height


class NameExpired(Record, frozen=True, tag="name_expired"):
    name_hash: Bytes32


Effect = (
    NodeRegistered
    | NodeActivated
    | NodeDecommissioned
    | NodeRecommissioned
    | NodeDeregistered
    | NodePenalised
    | UnlockRequested
    | NodeExited
    | StakeReturned
    | SwarmChanged
    | RewardPaid
    | BlockRewarded
    | NameBought
    | NameUpdated
    | NameRenewed
    | NameExpired
)
