"""The service-node registry's records: :class:`ServiceNode` and :class:`LockedStake`.

What a ``node/<node key>`` and a ``lock/<height>/<node key>`` entry hold (the keyspace, the reads
and the rules are :mod:`state.nodes`). The records live apart from the rules so that
:mod:`state.rewards`, which settles a node's rewards from its record, and :mod:`state.nodes`,
whose rules settle rewards, both import them and neither imports the other back.
"""

from __future__ import annotations

from enum import IntEnum

from state.encoding import Record
from state.events import Contribution, Reservation
from state.swarms import UNASSIGNED_SWARM_ID
from state.types import AccountKey, BlsPublicKey, BlsSignature, Ed25519Signature, Height, NodeKey

NONE = -1
"""A height field that is not set."""
NOT_EARNING = -1
"""The ``reward_index`` of a node that is not payable."""


class NodeStatus(IntEnum):
    AWAITING = 0
    ACTIVE = 1
    DECOMMISSIONED = 2


class ServiceNode(Record, frozen=True):
    """A registered node. The key proofs are kept so anyone can re-check them from the state."""

    operator: AccountKey
    bls_key: BlsPublicKey
    bls_pop: BlsSignature
    node_signature: Ed25519Signature
    operator_fee_bp: int
    contributions: tuple[Contribution, ...]
    reserved: tuple[Reservation, ...]
    """Spots still held open for named contributors."""
    registration_height: Height
    registration_index: int
    """Order of registration: the tie-break of the reward queue."""
    status: int = NodeStatus.AWAITING
    activation_height: int = NONE
    """First activation (payable and small-contributor lock count from it)."""
    active_since: int = NONE
    """Start of the current active period (credit accrues from it)."""
    recommission_credit: int = 0
    """Credit held at ``active_since``."""
    decommission_height: int = NONE
    decommission_credit: int = 0
    """Credit held when the current (or last) decommission began."""
    decommission_count: int = 0
    reasons_all: int = 0
    reasons_any: int = 0
    last_state_change_height: int = NONE
    """Quorum height of the last state change applied: older votes cannot be replayed."""
    last_reward_height: int = NONE
    """Position in the reward (leader) queue: smaller is earlier."""
    unlock_height: int = NONE
    """Height the node exits at, once an unlock was requested."""
    swarm_id: int = UNASSIGNED_SWARM_ID
    reward_index: int = NOT_EARNING
    """The reward index at the node's last settlement, while it is payable (:mod:`state.rewards`)."""


class LockedStake(Record, frozen=True):
    node_key: NodeKey
    contributions: tuple[Contribution, ...]
