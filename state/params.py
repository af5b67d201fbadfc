"""Chain parameters: every number a rule uses, fixed by the genesis file.

Mainnet keeps PROTOCOL.md's values; devnets shrink times and sizes. The presets live in
:mod:`genesis.presets`; this module only defines the container, so the state transition can
read ``params.<name>`` and nothing else. Amounts are in atomic units.
"""

from __future__ import annotations

from state.encoding import Record
from state.types import Atomic


class ChainParams(Record, frozen=True):
    """The consensus parameters (part of the genesis hash; changing one is a fork)."""

    block_time: int
    """Target seconds between blocks (mainnet 120)."""

    max_block_events: int
    """Most events one block may carry."""

    max_event_bytes: int
    """Largest encoded size of one event."""

    staking_requirement: Atomic
    """Stake that fully funds a service node (mainnet 25,000 SESH)."""

    max_contributors: int
    """Most contributors to one node, operator included (mainnet 10)."""

    min_operator_stake_divisor: int
    """The operator puts in at least ``staking_requirement // divisor`` (mainnet 4: one quarter)."""
