"""The genesis file: one JSON document that fixes a chain's identity, rules and first state.

::

    {
      "chain_id": "appchain-devnet",          lowercase letters, digits, "-", "_", "."; 1..64
      "genesis_time": 1767225600,             unix seconds: the timestamp of block 0
      "params": {...},                        every field of state.params.ChainParams, no other
      "total_supply": "…",                    decimal string: pool + allocations + stakes
      "reward_pool": "…",                     decimal string
      "allocations": [{"account": hex32, "amount": "…"}],
      "service_nodes": [{"node_key": hex32, "bls_key": hex48, "bls_pop": hex96,
                         "node_signature": hex64, "operator": hex32, "operator_fee_bp": 0..10000,
                         "contributions": [{"account": hex32, "amount": "…"}]}],
      "sns_records": [{"name_hash": hex32, "encrypted_value": hex, "owner": hex32,
                       "backup_owner": hex32 | null, "expiry_height": n}]
    }

Amounts are decimal strings because JSON numbers lose precision above 2**53 (mainnet supplies
exceed it). :func:`load_genesis` reports *every* problem with its JSON path (missing field,
wrong type, negative amount, duplicate key, unknown parameter, supply mismatch, and each rule
of the genesis events, checked by running them through the state rules), never just the first.

The lists are normalised (sorted by account, node key, name hash) so the order they are written
in does not change the chain (problem paths still name the entries as the file orders them);
:func:`dump_genesis` writes that canonical form and ``dump(load(g)) == g`` for any file it wrote.
The genesis hash is the tagged blake3 of the canonical binary encoding of the normalised
document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from state.crypto import bls
from state.encoding import DecodeError, Record, decode_json, encode
from state.errors import InvalidEvent
from state.events import (
    Allocation,
    Contribution,
    FundRewardPool,
    GenesisName,
    GenesisNode,
    validate_basic,
)
from state.hashing import Domain, hash_tagged
from state.params import ChainParams
from state.types import MAX_U64, AccountKey, Atomic, Hash32

CHAIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
AMOUNT_PARAMS = frozenset(field.name for field in msgspec.structs.fields(ChainParams) if field.type is Atomic)
POSITIVE_PARAMS = frozenset(
    {
        "block_time",
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
"""Parameters that must be at least 1; every other one may be 0."""
PARAM_NAMES = tuple(field.name for field in msgspec.structs.fields(ChainParams))
MIN_PULSE_NODES, MAX_PULSE_NODES = 4, 10_000
"""The range of ``pulse_min_nodes`` (PROTOCOL.md §4a)."""
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
    params: ChainParams
    total_supply: Atomic
    reward_pool: Atomic
    allocations: tuple[Allocation, ...]
    service_nodes: tuple[GenesisNode, ...]
    sns_records: tuple[GenesisName, ...]

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


class _Missing:
    """A field that is absent (already reported); every check skips it silently."""


MISSING: Any = _Missing()


class _Checker:
    """Walks the parsed JSON, collecting problems with their paths instead of stopping."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def object(self, value: Any, path: str, required: tuple[str, ...]) -> dict[str, Any] | None:
        """The object with missing and unknown fields reported; ``None`` if it is not an object.

        Missing fields read as ``MISSING``, which every check skips, so the caller still checks
        every field that is present.
        """
        if not isinstance(value, dict):
            self.fail(path, "must be an object")
            return None
        for name in required:
            if name not in value:
                self.fail(f"{path}.{name}", "missing field")
        for name in value:
            if name not in required:
                self.fail(f"{path}.{name}", "unknown field")
        return {name: value.get(name, MISSING) for name in required}

    def integer(self, value: Any, path: str, minimum: int = 0, maximum: int = MAX_U64) -> int | None:
        if value is MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "must be an integer")
            return None
        if value < minimum:
            self.fail(path, "must not be negative" if minimum == 0 else f"must be at least {minimum}")
            return None
        if value > maximum:
            self.fail(path, f"must be at most {maximum}")
            return None
        return value

    def amount(self, value: Any, path: str, positive: bool = True) -> Atomic | None:
        if value is MISSING:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            self.fail(path, "amounts are decimal strings (JSON numbers lose precision)")
            return None
        if not isinstance(value, str):
            self.fail(path, "must be a decimal string")
            return None
        if value.startswith("-") and value[1:].isdigit():
            self.fail(path, "must not be negative")
            return None
        if not value.isdigit() or not value.isascii() or (len(value) > 1 and value[0] == "0"):
            self.fail(path, "must be a decimal string without sign or leading zeros")
            return None
        number = int(value)
        if number > MAX_U64:
            self.fail(path, "does not fit in 64 bits")
            return None
        if positive and number == 0:
            self.fail(path, "must be positive")
            return None
        return Atomic(number)

    def hex_bytes(self, value: Any, path: str, size: int | None = None) -> bytes | None:
        if value is MISSING:
            return None
        if not isinstance(value, str):
            self.fail(path, "must be a hex string")
            return None
        try:
            data = bytes.fromhex(value)
        except ValueError:
            self.fail(path, "must be a hex string")
            return None
        if value != data.hex():
            self.fail(path, "must be lowercase hex")
            return None
        if size is not None and len(data) != size:
            self.fail(path, f"must be {size} bytes ({2 * size} hex digits)")
            return None
        return data

    def array(self, value: Any, path: str) -> list[Any]:
        if value is MISSING:
            return []
        if not isinstance(value, list):
            self.fail(path, "must be an array")
            return []
        return value


def parse_genesis_json(text: str | bytes) -> Genesis:
    """Parse and validate a genesis document; raises :class:`GenesisError` listing every problem."""
    try:
        raw = decode_json(text)
    except DecodeError as exc:
        raise GenesisError([f"$: {exc}"]) from None
    check = _Checker()
    parsed = _parse(raw, check)
    if check.problems or parsed is None:
        raise GenesisError(check.problems or ["$: invalid genesis"])
    genesis, origins = parsed
    _check_events(genesis, origins, check)
    if check.problems:
        raise GenesisError(check.problems)
    return genesis


def load_genesis(path: str | Path) -> Genesis:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise GenesisError([f"$: cannot read {path}: {exc.strerror}"]) from None
    return parse_genesis_json(text)


Origins = dict[str, list[int]]
"""For each list of the document, the file position of each entry in normalised order."""


def _sorted_with_origin(
    items: list[tuple[int, Any]], key: Callable[[Any], bytes]
) -> tuple[tuple[Any, ...], list[int]]:
    ordered = sorted(items, key=lambda pair: key(pair[1]))
    return tuple(item for _, item in ordered), [index for index, _ in ordered]


def _parse(document: Any, check: _Checker) -> tuple[Genesis, Origins] | None:
    raw = check.object(document, "$", TOP_LEVEL)
    if raw is None:
        return None
    chain_id = raw["chain_id"]
    if chain_id is not MISSING and (not isinstance(chain_id, str) or not CHAIN_ID.match(chain_id)):
        check.fail("$.chain_id", "must be 1..64 of a-z 0-9 . _ - starting with a letter or digit")
    genesis_time = check.integer(raw["genesis_time"], "$.genesis_time")
    params = _parse_params(raw["params"], check)
    total_supply = check.amount(raw["total_supply"], "$.total_supply")
    reward_pool = check.amount(raw["reward_pool"], "$.reward_pool", positive=False)

    allocations: list[tuple[int, Allocation]] = []
    seen_accounts: set[bytes] = set()
    for i, item in enumerate(check.array(raw["allocations"], "$.allocations")):
        path = f"$.allocations[{i}]"
        item = check.object(item, path, ("account", "amount"))
        if item is None:
            continue
        account = check.hex_bytes(item["account"], f"{path}.account", 32)
        amount = check.amount(item["amount"], f"{path}.amount")
        if account is not None and account in seen_accounts:
            check.fail(f"{path}.account", "duplicate account")
        elif account is not None and amount is not None:
            seen_accounts.add(account)
            allocations.append((i, Allocation(AccountKey(account), amount)))

    nodes = [
        (i, node)
        for i, item in enumerate(check.array(raw["service_nodes"], "$.service_nodes"))
        if (node := _parse_node(item, f"$.service_nodes[{i}]", check)) is not None
    ]
    names = [
        (i, name)
        for i, item in enumerate(check.array(raw["sns_records"], "$.sns_records"))
        if (name := _parse_name(item, f"$.sns_records[{i}]", check)) is not None
    ]
    if check.problems or params is None or genesis_time is None:
        return None
    assert isinstance(chain_id, str)
    assert total_supply is not None and reward_pool is not None
    sorted_allocations, allocation_origin = _sorted_with_origin(allocations, lambda a: a.account)
    sorted_nodes, node_origin = _sorted_with_origin(nodes, lambda n: n.node_key)
    sorted_names, name_origin = _sorted_with_origin(names, lambda n: n.name_hash)
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time=genesis_time,
        params=params,
        total_supply=total_supply,
        reward_pool=reward_pool,
        allocations=sorted_allocations,
        service_nodes=sorted_nodes,
        sns_records=sorted_names,
    )
    supply = compute_supply(genesis)
    if supply != total_supply:
        check.fail(
            "$.total_supply",
            f"supply mismatch: declared {total_supply} but reward_pool + allocations + stakes = {supply}",
        )
    origins = {"allocations": allocation_origin, "service_nodes": node_origin, "sns_records": name_origin}
    return genesis, origins


def _parse_params(document: Any, check: _Checker) -> ChainParams | None:
    if document is MISSING:
        return None
    raw = check.object(document, "$.params", PARAM_NAMES)
    if raw is None:
        return None
    values: dict[str, int] = {}
    for name in PARAM_NAMES:
        path = f"$.params.{name}"
        value: int | None
        if name in AMOUNT_PARAMS:
            value = check.amount(raw[name], path, positive=name in POSITIVE_PARAMS)
        else:
            value = check.integer(raw[name], path, 1 if name in POSITIVE_PARAMS else 0)
        if value is not None:
            values[name] = value
    if len(values) != len(PARAM_NAMES):
        return None
    for name, limit in (
        ("swarm_fill_percentile", 100),
        ("swarm_steal_percentile", 100),
        ("small_contributor_bp", 10_000),
        ("reward_rate_bp", 10_000),
    ):
        if values[name] > limit:
            check.fail(f"$.params.{name}", f"must be at most {limit}")
    if not MIN_PULSE_NODES <= values["pulse_min_nodes"] <= MAX_PULSE_NODES:
        check.fail(
            "$.params.pulse_min_nodes",
            f"must be {MIN_PULSE_NODES} to {MAX_PULSE_NODES}: with fewer than 4 active nodes a Pulse"
            " quorum has under 3 validators, and a majority of them is all of them",
        )
    if values["obligations_threshold"] > values["obligations_quorum_size"]:
        check.fail("$.params.obligations_threshold", "must not exceed obligations_quorum_size")
    if values["new_swarm_size"] < values["min_swarm_size"]:
        check.fail("$.params.new_swarm_size", "must be at least min_swarm_size")
    return ChainParams(**values)  # type: ignore[arg-type]


def _parse_contributions(raw: Any, path: str, check: _Checker) -> list[Contribution]:
    contributions = []
    for i, item in enumerate(check.array(raw, path)):
        item_path = f"{path}[{i}]"
        item = check.object(item, item_path, ("account", "amount"))
        if item is None:
            continue
        account = check.hex_bytes(item["account"], f"{item_path}.account", 32)
        amount = check.amount(item["amount"], f"{item_path}.amount")
        if account is not None and amount is not None:
            contributions.append(Contribution(AccountKey(account), amount))
    return contributions


_NODE_FIELDS = (
    "node_key",
    "bls_key",
    "bls_pop",
    "node_signature",
    "operator",
    "operator_fee_bp",
    "contributions",
)
_NODE_SIZES = {"node_key": 32, "bls_key": 48, "bls_pop": 96, "node_signature": 64, "operator": 32}


def _parse_node(document: Any, path: str, check: _Checker) -> GenesisNode | None:
    raw = check.object(document, path, _NODE_FIELDS)
    if raw is None:
        return None
    before = len(check.problems)
    fields: dict[str, Any] = {
        name: check.hex_bytes(raw[name], f"{path}.{name}", size) for name, size in _NODE_SIZES.items()
    }
    fields["operator_fee_bp"] = check.integer(raw["operator_fee_bp"], f"{path}.operator_fee_bp", 0, 10_000)
    fields["contributions"] = tuple(
        _parse_contributions(raw["contributions"], f"{path}.contributions", check)
    )
    if len(check.problems) > before:
        return None
    return GenesisNode(**fields)


_NAME_FIELDS = ("name_hash", "encrypted_value", "owner", "backup_owner", "expiry_height")


def _parse_name(document: Any, path: str, check: _Checker) -> GenesisName | None:
    raw = check.object(document, path, _NAME_FIELDS)
    if raw is None:
        return None
    before = len(check.problems)
    name_hash = check.hex_bytes(raw["name_hash"], f"{path}.name_hash", 32)
    value = check.hex_bytes(raw["encrypted_value"], f"{path}.encrypted_value")
    owner = check.hex_bytes(raw["owner"], f"{path}.owner", 32)
    backup = (
        None
        if raw["backup_owner"] is None or raw["backup_owner"] is MISSING
        else check.hex_bytes(raw["backup_owner"], f"{path}.backup_owner", 32)
    )
    expiry = check.integer(raw["expiry_height"], f"{path}.expiry_height", 1)
    if len(check.problems) > before:
        return None
    return GenesisName(name_hash, value, owner, backup, expiry)  # type: ignore[arg-type]


def _check_events(genesis: Genesis, origins: Origins, check: _Checker) -> None:
    """Run every genesis event through the state rules, reporting failures at their paths."""
    # Imported here: genesis.build needs this module's Genesis type.
    from genesis.build import genesis_event_checker

    paths = ["$.reward_pool"] if genesis.reward_pool else []
    for section in ("allocations", "service_nodes", "sns_records"):
        paths += [f"$.{section}[{i}]" for i in origins[section]]
    apply_one: Callable[[Any], None] = genesis_event_checker(genesis)
    # The nodes' proofs of possession as one batch first: validate_basic then finds the valid
    # ones verified and checks a bad one alone, reporting it at its path.
    bls.verify_possessions([(node.bls_key, node.bls_pop) for node in genesis.service_nodes])
    for path, event in zip(paths, genesis.events(), strict=True):
        try:
            validate_basic(event, genesis.chain_id)
            apply_one(event)
        except InvalidEvent as exc:
            check.fail(path, str(exc))


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
