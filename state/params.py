"""Chain parameters: every number a rule uses, fixed by the genesis file.

Mainnet keeps PROTOCOL.md's values; devnets shrink times and amounts. The presets live in
:mod:`genesis.presets`; this module only defines the container, so the rules read
``params.<name>`` and nothing else. Amounts are in atomic units, durations in blocks unless the
name says otherwise (``block_time`` is in milliseconds, ``seconds_per_year`` in seconds).
"""

from __future__ import annotations

from state.encoding import Record
from state.types import Atomic


class ChainParams(Record, frozen=True):
    """The consensus parameters (part of the genesis hash; changing one is a fork)."""

    # -- blocks -----------------------------------------------------------------------------
    block_time: int
    """Target **milliseconds** between blocks (mainnet 120,000: 120 s). The name stayed when the
    unit changed from seconds (issue 22), so the genesis check refuses anything under
    ``genesis.document.MIN_BLOCK_TIME_MS`` (50 ms) with a line saying the unit: an old genesis with
    ``block_time: 2`` fails loudly instead of making 2 ms blocks. A block's timestamp must be at
    least its parent's plus this (:func:`state.transition.execute_block`); the Pulse round 0 of
    the next height starts then (:mod:`consensus.node`)."""
    max_block_events: int
    """Most events one block may carry."""
    max_event_bytes: int
    """Largest encoded size of one event."""
    checkpoint_interval: int
    """Blocks between two checkpoints (mainnet 4): heights that are multiples of it are signed by
    a checkpoint quorum with BLS and become final (:mod:`state.checkpoints`). At least 1."""

    # -- fees (every transaction: its kind's base fee + fee_per_byte x encoded size) ---------
    fee_per_byte: Atomic
    fee_transfer: Atomic
    fee_register_node: Atomic
    fee_contribute: Atomic
    fee_request_unlock: Atomic
    fee_claim_rewards: Atomic
    fee_sns: Atomic
    """Base fee of SnsBuy, SnsUpdate and SnsRenew (the name price comes on top for buy/renew)."""

    # -- staking ----------------------------------------------------------------------------
    staking_requirement: Atomic
    """Stake that fully funds a service node (mainnet 25,000 SESH)."""
    max_contributors: int
    """Most contributors to one node, operator included (mainnet 10)."""
    min_operator_stake_divisor: int
    """The operator puts in at least ``staking_requirement // divisor`` (mainnet 4: a quarter)."""
    payable_delay: int
    """Blocks after activation before a node earns rewards (mainnet 720: 24 h)."""
    unlock_delay: int
    """Blocks from an unlock request to the node's exit (mainnet 10,800: 15 days)."""
    small_contributor_bp: int
    """A contributor holding under this share (basis points) is small (mainnet 2,500: 25%)."""
    small_contributor_lock: int
    """Blocks after activation during which a small contributor may not request an exit (21,600)."""
    contribution_lock: int
    """Blocks a contribution to a node that is not yet active cannot be withdrawn (720)."""
    deregistration_lock: int
    """Blocks a deregistered node's stakes stay locked before they return (21,600: 30 days)."""

    # -- liveness (PROTOCOL.md §4a) ----------------------------------------------------------
    pulse_min_nodes: int
    """Fewest active nodes Pulse runs with, and the floor no state change takes the active set
    below (4 in every preset: a quorum of 1 + 3 validators, 2 of whose signatures make a block)."""

    # -- obligations quorum and credits -----------------------------------------------------
    obligations_quorum_size: int
    """Validators in each height's obligations quorum (10)."""
    obligations_threshold: int
    """Votes a state change needs (7)."""
    obligations_min_workers: int
    """Workers tested per height: ``min(rest, max(min_workers, rest // worker_divisor))`` (50)."""
    obligations_worker_divisor: int
    """(100)"""
    vote_lifetime: int
    """Blocks a quorum's votes stay valid (60)."""
    credit_initial: int
    """Decommission credit, in blocks, of a newly active node (60)."""
    credit_per_period: int
    """Credit earned per ``credit_period`` blocks active (24)."""
    credit_period: int
    """(720)"""
    credit_max: int
    """Credit cap (1,440)."""
    decommission_min_credit: int
    """Least credit for a decommission instead of a deregistration (60)."""

    # -- rewards ----------------------------------------------------------------------------
    reward_rate_bp: int
    """Yearly share of the pool paid out, in basis points (1,510: 15.1%)."""
    seconds_per_year: int
    """Length of the year the rate is pro-rated over, in seconds (31,536,000); the reward
    multiplies by ``block_time`` in milliseconds and divides by this x 1,000
    (:func:`state.rewards.compute_block_reward`)."""

    # -- swarms -----------------------------------------------------------------------------
    min_swarm_size: int
    """A swarm smaller than this is starving (5)."""
    new_swarm_size: int
    """Size of a newly formed swarm (7)."""
    swarm_margin: int
    """Excess per swarm kept before a new swarm forms (2)."""
    swarm_fill_percentile: int
    """New nodes join swarms no larger than this percentile's size (25)."""
    swarm_steal_percentile: int
    """Starving swarms take nodes from swarms above this percentile's size (75)."""

    # -- Session Name Service ---------------------------------------------------------------
    sns_price: Atomic
    """Price of buying or renewing a name for one period, paid into the reward pool."""
    sns_period: int
    """Blocks one registration or renewal lasts (262,800: 365 days)."""
