"""The genesis file: one JSON document that fixes a chain's identity, rules and first state.

::

    {
      "chain_id": "appchain-devnet",          lowercase letters, digits, "-", "_", "."; 1..64
      "genesis_time": 1767225600,             unix SECONDS; block 0's timestamp is this x 1,000 ms
      "params": {...},                        every field of state.params.ChainParams, no other
                                              (block_time in milliseconds, checkpoint_interval)
      "total_supply": "…",                    decimal string: pool + allocations + stakes
      "reward_pool": "…",                     decimal string
      "allocations": [{"account": hex32, "amount": "…"}],
      "service_nodes": [{"node_key": hex32, "bls_key": hex48, "bls_pop": hex96,
                         "node_signature": hex64, "operator": hex32, "operator_fee_bp": 0..10000,
                         "contributions": [{"account": hex32, "amount": "…"}]}],
      "sns_records": [{"name_hash": hex32, "encrypted_value": hex, "owner": hex32,
                       "backup_owner": hex32 | null, "expiry_height": n}]
    }

Units. Header timestamps and ``params.block_time`` are milliseconds (issue 22), but
``genesis_time`` stays in unix seconds, as people and CometBFT-style tools write it; block 0's
timestamp is ``genesis_time x 1,000`` (:attr:`Genesis.timestamp_ms`). ``block_time`` kept its name
when its unit changed, so the check refuses one under :data:`MIN_BLOCK_TIME_MS` with a line that
says the unit: a genesis written for seconds (``"block_time": 2``) fails loudly instead of
making 2 ms blocks. ``checkpoint_interval`` (blocks between checkpoints, mainnet 4) must be
present and at least 1.

Amounts are decimal strings because JSON numbers lose precision above 2**53 (mainnet supplies
exceed it). This module is the document itself: :class:`Genesis`, its hash and supply, and the
writer. Reading a file is :mod:`genesis.load` (:func:`~genesis.load.load_genesis`): the JSON
parsed and checked field by field (:mod:`genesis.parse`), then the genesis events run through
the state rules (:mod:`genesis.build`), every problem reported with its JSON path.

The lists are normalised (sorted by account, node key, name hash) so the order they are written
in does not change the chain (problem paths still name the entries as the file orders them);
:func:`dump_genesis` writes that canonical form and ``dump(load(g)) == g`` for any file it wrote.
The genesis hash is the tagged blake3 of the canonical binary encoding of the normalised
document.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from state.encoding import Record, encode
from state.events import Allocation, FundRewardPool, GenesisName, GenesisNode
from state.hashing import Domain, hash_tagged
from state.params import ChainParams
from state.types import Atomic, Hash32

CHAIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
AMOUNT_PARAMS = frozenset(field.name for field in msgspec.structs.fields(ChainParams) if field.type is Atomic)
POSITIVE_PARAMS = frozenset(
    {
        "checkpoint_interval",
        "max_block_events",
        "max_event_bytes",
        "staking_requirement",
        "max_contributors",
        "min_operator_stake_divisor",
        "obligations_quorum_size",
        "obligations_threshold",
        "obligations_worker_divisor",
        "credit_period",
        "seconds_per_year",
        "min_swarm_size",
        "new_swarm_size",
        "sns_period",
    }
)
"""Parameters that must be at least 1; every other one may be 0 (``block_time`` has its own floor,
:data:`MIN_BLOCK_TIME_MS`)."""
PARAM_NAMES = tuple(field.name for field in msgspec.structs.fields(ChainParams))
MIN_PULSE_NODES, MAX_PULSE_NODES = 4, 10_000
"""The range of ``pulse_min_nodes`` (PROTOCOL.md §4a)."""
MIN_BLOCK_TIME_MS = 50
"""The shortest ``block_time``, in milliseconds. Below it a Pulse round (about 0.12 s on a loaded
2-core devnet) cannot keep up with the schedule at all; and any genesis written when the unit was
seconds (1 to 49 would have been sane values) is refused instead of running 1000 times too fast."""
MAX_CHECKPOINT_INTERVAL = 1_000
"""The largest ``checkpoint_interval``: a light client links a block to the certified checkpoint
above it header by header, at most ``appchain.client.lightclient.MAX_LINKED`` (1,000) of them, so
every block of the chain must have a checkpoint within that many (a test keeps the two in step).
That is 33 hours of mainnet blocks: finality further away would be no finality."""
MAX_GENESIS_TIME = (2**64 - 1) // 1000
"""The latest ``genesis_time`` (seconds) whose block-0 timestamp in milliseconds fits 64 bits."""
TOP_LEVEL = (
    "chain_id",
    "genesis_time",
    "params",
    "total_supply",
    "reward_pool",
    "allocations",
    "service_nodes",
    "sns_records",
)


class Genesis(Record, frozen=True):
    """The normalised genesis document; its encoding is what the genesis hash commits to."""

    chain_id: str
    genesis_time: int
    """Unix seconds (block 0's timestamp is :attr:`timestamp_ms`)."""
    params: ChainParams
    total_supply: Atomic
    reward_pool: Atomic
    allocations: tuple[Allocation, ...]
    service_nodes: tuple[GenesisNode, ...]
    sns_records: tuple[GenesisName, ...]

    @property
    def timestamp_ms(self) -> int:
        """Block 0's timestamp: ``genesis_time`` (seconds) in milliseconds."""
        return self.genesis_time * 1000

    @property
    def hash(self) -> Hash32:
        return compute_genesis_hash(self)

    def events(self) -> list[Any]:
        """Block 0's events, in the order the genesis block applies them."""
        events: list[Any] = []
        if self.reward_pool:
            events.append(FundRewardPool(self.reward_pool))
        events.extend(self.allocations)
        events.extend(self.service_nodes)
        events.extend(self.sns_records)
        return events


class GenesisError(ValueError):
    """A genesis document with problems; ``problems`` lists each as ``"<json path>: <what>"``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def compute_genesis_hash(genesis: Genesis) -> Hash32:
    return hash_tagged(Domain.GENESIS, encode(genesis))


def compute_supply(genesis: Genesis) -> int:
    stakes = sum(c.amount for node in genesis.service_nodes for c in node.contributions)
    return genesis.reward_pool + sum(a.amount for a in genesis.allocations) + stakes


def genesis_to_json(genesis: Genesis) -> dict[str, Any]:
    """The canonical JSON object of a genesis document."""
    params = msgspec.structs.asdict(genesis.params)
    return {
        "chain_id": genesis.chain_id,
        "genesis_time": genesis.genesis_time,
        "params": {
            name: str(params[name]) if name in AMOUNT_PARAMS else params[name] for name in PARAM_NAMES
        },
        "total_supply": str(genesis.total_supply),
        "reward_pool": str(genesis.reward_pool),
        "allocations": [{"account": a.account.hex(), "amount": str(a.amount)} for a in genesis.allocations],
        "service_nodes": [
            {
                "node_key": n.node_key.hex(),
                "bls_key": n.bls_key.hex(),
                "bls_pop": n.bls_pop.hex(),
                "node_signature": n.node_signature.hex(),
                "operator": n.operator.hex(),
                "operator_fee_bp": n.operator_fee_bp,
                "contributions": [
                    {"account": c.account.hex(), "amount": str(c.amount)} for c in n.contributions
                ],
            }
            for n in genesis.service_nodes
        ],
        "sns_records": [
            {
                "name_hash": r.name_hash.hex(),
                "encrypted_value": r.encrypted_value.hex(),
                "owner": r.owner.hex(),
                "backup_owner": None if r.backup_owner is None else r.backup_owner.hex(),
                "expiry_height": r.expiry_height,
            }
            for r in genesis.sns_records
        ],
    }


def dump_genesis(genesis: Genesis) -> str:
    """The canonical text of a genesis file (2-space indent, fixed field order, final newline)."""
    return json.dumps(genesis_to_json(genesis), indent=2) + "\n"
