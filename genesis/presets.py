"""Chain parameter presets.

``mainnet`` keeps PROTOCOL.md's numbers; ``devnet`` shrinks times and amounts so a local
network moves in seconds and tests cover thousands of blocks quickly.
"""

from __future__ import annotations

from state.params import ChainParams
from state.types import ATOMIC_PER_COIN, Atomic

MAINNET = ChainParams(
    block_time=120,
    max_block_events=10_000,
    max_event_bytes=16_384,
    staking_requirement=Atomic(25_000 * ATOMIC_PER_COIN),
    max_contributors=10,
    min_operator_stake_divisor=4,
)

DEVNET = ChainParams(
    block_time=2,
    max_block_events=10_000,
    max_event_bytes=16_384,
    staking_requirement=Atomic(100 * ATOMIC_PER_COIN),
    max_contributors=10,
    min_operator_stake_divisor=4,
)

PRESETS = {"mainnet": MAINNET, "devnet": DEVNET}
