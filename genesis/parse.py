"""A genesis file's JSON read into a :class:`~genesis.document.Genesis`, field by field.

The checker walks the parsed JSON and keeps going past a problem, so one reading reports
*every* problem with its JSON path (missing field, wrong type, negative amount, duplicate key,
unknown parameter, supply mismatch), never just the first. The lists come out normalised
(sorted by account, node key, name hash), each entry remembering its place in the file
(:data:`Origins`) so that later problems still name it as the file orders it. The rules of the
genesis events are checked after this, by :mod:`genesis.load`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genesis.document import (
    AMOUNT_PARAMS,
    CHAIN_ID,
    MAX_CHECKPOINT_INTERVAL,
    MAX_GENESIS_TIME,
    MAX_PULSE_NODES,
    MIN_BLOCK_TIME_MS,
    MIN_PULSE_NODES,
    PARAM_NAMES,
    POSITIVE_PARAMS,
    TOP_LEVEL,
    Genesis,
    compute_supply,
)
from state.events import Allocation, Contribution, GenesisName, GenesisNode
from state.params import ChainParams
from state.types import MAX_U64, AccountKey, Atomic


class _Missing:
    """A field that is absent (already reported); every check skips it silently."""


MISSING: Any = _Missing()


class Checker:
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


Origins = dict[str, list[int]]
"""For each list of the document, the file position of each entry in normalised order."""


def _sorted_with_origin(
    items: list[tuple[int, Any]], key: Callable[[Any], bytes]
) -> tuple[tuple[Any, ...], list[int]]:
    ordered = sorted(items, key=lambda pair: key(pair[1]))
    return tuple(item for _, item in ordered), [index for index, _ in ordered]


def parse_document(document: Any, check: Checker) -> tuple[Genesis, Origins] | None:
    """The normalised document and the file order of its lists; None (the problems in
    ``check``) when a field is missing or wrong."""
    raw = check.object(document, "$", TOP_LEVEL)
    if raw is None:
        return None
    chain_id = raw["chain_id"]
    if chain_id is not MISSING and (not isinstance(chain_id, str) or not CHAIN_ID.match(chain_id)):
        check.fail("$.chain_id", "must be 1..64 of a-z 0-9 . _ - starting with a letter or digit")
    genesis_time = check.integer(raw["genesis_time"], "$.genesis_time", maximum=MAX_GENESIS_TIME)
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


def _parse_params(document: Any, check: Checker) -> ChainParams | None:
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
    # before the return below: a genesis written when block_time was seconds also lacks
    # checkpoint_interval, and must be told about the unit too, not only the missing field
    if "block_time" in values and values["block_time"] < MIN_BLOCK_TIME_MS:
        check.fail(
            "$.params.block_time",
            f"is in milliseconds and must be at least {MIN_BLOCK_TIME_MS}"
            f" (a 2 s block time is 2000, not 2); {values['block_time']} ms is too short",
        )
    if len(values) != len(PARAM_NAMES):
        return None
    for name, limit in (
        ("checkpoint_interval", MAX_CHECKPOINT_INTERVAL),
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


def _parse_contributions(raw: Any, path: str, check: Checker) -> list[Contribution]:
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


def _parse_node(document: Any, path: str, check: Checker) -> GenesisNode | None:
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


def _parse_name(document: Any, path: str, check: Checker) -> GenesisName | None:
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
