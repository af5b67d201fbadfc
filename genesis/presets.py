"""Chain parameter presets.

``mainnet`` keeps PROTOCOL.md's numbers (``block_time`` 120,000 ms, ``checkpoint_interval`` 4);
``devnet`` shrinks times and amounts so a local network moves in seconds and tests cover
thousands of blocks quickly. Durations that are ratios of blocks (decommission credits) keep
their mainnet values: they are already short.
"""

from __future__ import annotations

import msgspec

from state.params import ChainParams
from state.types import ATOMIC_PER_COIN, Atomic

COIN = ATOMIC_PER_COIN

DEVNET_BLOCK_TIME_MS = 500
"""The devnet's block time in milliseconds: the fastest that held without a failed round on the
project's 2-core machine while the test suite runs two networks at once (250 ms holds for a lone
12-node devnet at light load, at 1.3 cores for Pulse alone; 500 ms takes 0.74, 1 s 0.5)."""


def is_devnet_pace(params: ChainParams) -> bool:
    """Whether a chain makes blocks faster than a minute (mainnet's are 2 minutes): a devnet or
    testnet, which takes the devnet's uptime rules and calls itself "devnet" to oxend's clients."""
    return params.block_time < 60_000  # milliseconds


MAINNET = ChainParams(
    block_time=120_000,  # milliseconds
    max_block_events=10_000,
    max_event_bytes=16_384,
    checkpoint_interval=4,
    fee_per_byte=Atomic(10_000),
    fee_transfer=Atomic(COIN // 100),
    fee_register_node=Atomic(COIN // 10),
    fee_contribute=Atomic(COIN // 100),
    fee_request_unlock=Atomic(COIN // 100),
    fee_claim_rewards=Atomic(COIN // 100),
    fee_sns=Atomic(COIN // 100),
    staking_requirement=Atomic(25_000 * COIN),
    max_contributors=10,
    min_operator_stake_divisor=4,
    payable_delay=720,
    unlock_delay=10_800,
    small_contributor_bp=2_500,
    small_contributor_lock=21_600,
    contribution_lock=720,
    deregistration_lock=21_600,
    pulse_min_nodes=4,
    obligations_quorum_size=10,
    obligations_threshold=7,
    obligations_min_workers=50,
    obligations_worker_divisor=100,
    vote_lifetime=60,
    credit_initial=60,
    credit_per_period=24,
    credit_period=720,
    credit_max=1_440,
    decommission_min_credit=60,
    reward_rate_bp=1_510,
    seconds_per_year=31_536_000,
    min_swarm_size=5,
    new_swarm_size=7,
    swarm_margin=2,
    swarm_fill_percentile=25,
    swarm_steal_percentile=75,
    sns_price=Atomic(10 * COIN),
    sns_period=262_800,
)

DEVNET = msgspec.structs.replace(
    MAINNET,
    block_time=DEVNET_BLOCK_TIME_MS,
    fee_per_byte=Atomic(1_000),
    fee_transfer=Atomic(COIN // 1000),
    fee_register_node=Atomic(COIN // 100),
    fee_contribute=Atomic(COIN // 1000),
    fee_request_unlock=Atomic(COIN // 1000),
    fee_claim_rewards=Atomic(COIN // 1000),
    fee_sns=Atomic(COIN // 1000),
    staking_requirement=Atomic(100 * COIN),
    payable_delay=20,
    unlock_delay=30,
    small_contributor_lock=60,
    contribution_lock=20,
    deregistration_lock=60,
    sns_price=Atomic(COIN),
    sns_period=720,
)
"""Mainnet with shorter times and smaller amounts; quorum sizes, credits and swarms unchanged."""

PRESETS = {"mainnet": MAINNET, "devnet": DEVNET}
