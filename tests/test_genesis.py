"""Genesis files: validation with JSON paths, the hash, normalisation, block 0, export/import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appchain.home.genesis_files import write_devnet
from genesis.build import create_genesis_block, create_genesis_state, export_genesis
from genesis.devnet import create_devnet_genesis
from genesis.document import GenesisError, dump_genesis, genesis_to_json
from genesis.load import load_genesis, parse_genesis_json
from genesis.presets import DEVNET, MAINNET
from state.ledger import POOL_KEY
from state.types import ATOMIC_PER_COIN


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    genesis, _, _ = create_devnet_genesis(4, "genesis-tests", users=3)
    return genesis_to_json(genesis)


def problems_of(doc: Any) -> list[str]:
    with pytest.raises(GenesisError) as caught:
        parse_genesis_json(json.dumps(doc))
    return caught.value.problems


def edited(doc: dict[str, Any], edit: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(doc))
    edit(copy)
    return copy


def test_a_valid_document_parses(document: dict[str, Any]) -> None:
    genesis = parse_genesis_json(json.dumps(document))
    assert genesis.chain_id == "appchain-devnet"
    assert len(genesis.service_nodes) == 4


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.pop("chain_id"), "$.chain_id: missing field"),
        (lambda d: d.update(extra=1), "$.extra: unknown field"),
        (lambda d: d["params"].update(block_tme=3), "$.params.block_tme: unknown field"),
        (lambda d: d["params"].pop("block_time"), "$.params.block_time: missing field"),
        (lambda d: d["params"].update(block_time=-1), "$.params.block_time: must not be negative"),
        (lambda d: d["params"].update(block_time=1.5), "$.params.block_time: must be an integer"),
        (
            lambda d: d["params"].update(block_time=2),  # a genesis written when the unit was seconds
            "$.params.block_time: is in milliseconds and must be at least 50 (a 2 s block time is 2000,"
            " not 2); 2 ms is too short",
        ),
        (lambda d: d["params"].update(block_time=49), "$.params.block_time: is in milliseconds"),
        (lambda d: d["params"].pop("checkpoint_interval"), "$.params.checkpoint_interval: missing field"),
        (
            lambda d: d["params"].update(checkpoint_interval=0),
            "$.params.checkpoint_interval: must be at least 1",
        ),
        (
            lambda d: d["params"].update(checkpoint_interval="4"),
            "$.params.checkpoint_interval: must be an integer",
        ),
        (
            lambda d: d["params"].update(checkpoint_interval=1_001),
            "$.params.checkpoint_interval: must be at most 1000",
        ),
        (lambda d: d["allocations"][1].update(amount="-5"), "$.allocations[1].amount: must not be negative"),
        (
            lambda d: d["allocations"][0].update(amount=5),
            "$.allocations[0].amount: amounts are decimal strings",
        ),
        (lambda d: d["allocations"][0].update(amount="0"), "$.allocations[0].amount: must be positive"),
        (
            lambda d: d["allocations"][0].update(amount="007"),
            "$.allocations[0].amount: must be a decimal string",
        ),
        (
            lambda d: d["allocations"][0].update(account="zz"),
            "$.allocations[0].account: must be a hex string",
        ),
        (lambda d: d["allocations"][0].update(account="ab"), "$.allocations[0].account: must be 32 bytes"),
        (
            lambda d: d["allocations"][2].update(account=d["allocations"][0]["account"]),
            "$.allocations[2].account: duplicate account",
        ),
        (lambda d: d.update(total_supply="1"), "$.total_supply: supply mismatch"),
        (lambda d: d.update(genesis_time=-1), "$.genesis_time: must not be negative"),
        (lambda d: d.update(genesis_time=True), "$.genesis_time: must be an integer"),
        (lambda d: d.update(genesis_time=2**64 // 1000 + 1), "$.genesis_time: must be at most"),
        (lambda d: d.update(chain_id="Bad Chain"), "$.chain_id: must be"),
        (lambda d: d.update(allocations={}), "$.allocations: must be an array"),
        (
            lambda d: d["service_nodes"][1].update(node_signature=d["service_nodes"][0]["node_signature"]),
            "$.service_nodes[1]: node key signature",
        ),
        (
            lambda d: d["service_nodes"][1].update(bls_pop=d["service_nodes"][0]["bls_pop"]),
            "$.service_nodes[1]: BLS proof of possession",
        ),
        (
            lambda d: d["service_nodes"][0].update(operator_fee_bp=10_001),
            "$.service_nodes[0].operator_fee_bp: must be at most",
        ),
        (
            lambda d: (
                d["service_nodes"].append(dict(d["service_nodes"][0]))
                or d.update(total_supply=str(int(d["total_supply"]) + int(DEVNET.staking_requirement)))
            ),
            "$.service_nodes[4]: node key already registered",
        ),
        (
            lambda d: (
                d["service_nodes"][0]["contributions"][0].update(amount="1")
                or d.update(total_supply=str(int(d["total_supply"]) - int(DEVNET.staking_requirement) + 1))
            ),
            "$.service_nodes[0]: genesis node stake 1 is not the requirement",
        ),
    ],
)
def test_each_problem_is_reported_at_its_path(document: dict[str, Any], edit: Any, expected: str) -> None:
    problems = problems_of(edited(document, edit))
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_not_just_the_first(document: dict[str, Any]) -> None:
    def many(d: dict[str, Any]) -> None:
        d.pop("chain_id")
        d["params"]["nonsense"] = 1
        d["allocations"][0]["amount"] = "-1"

    problems = problems_of(edited(document, many))
    assert len(problems) >= 3


def test_duplicate_json_keys_are_refused(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    text = text.replace('"genesis_time":', '"genesis_time": 1, "genesis_time":', 1)
    with pytest.raises(GenesisError, match="duplicate key 'genesis_time'"):
        parse_genesis_json(text)


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match="not valid JSON"):
        parse_genesis_json("{")
    with pytest.raises(GenesisError, match="cannot read"):
        load_genesis(tmp_path / "absent.json")
    assert problems_of([]) == ["$: must be an object"]


def test_hash_ignores_list_order_but_not_content(document: dict[str, Any]) -> None:
    original = parse_genesis_json(json.dumps(document))
    shuffled = edited(document, lambda d: (d["allocations"].reverse(), d["service_nodes"].reverse()))
    assert parse_genesis_json(json.dumps(shuffled)).hash == original.hash
    changed = edited(document, lambda d: d.update(genesis_time=d["genesis_time"] + 1))
    assert parse_genesis_json(json.dumps(changed)).hash != original.hash


def test_dump_of_load_is_identity_and_export_of_import_is_identity(tmp_path: Path) -> None:
    genesis = write_devnet(tmp_path / "genesis.json", 5, "roundtrip", users=2)
    text = (tmp_path / "genesis.json").read_text()
    loaded = load_genesis(tmp_path / "genesis.json")
    assert loaded == genesis
    assert dump_genesis(loaded) == text
    state, _ = create_genesis_state(loaded)
    exported = export_genesis(state, loaded.genesis_time)
    assert exported == loaded
    assert dump_genesis(exported) == text


def test_genesis_state_is_built_through_apply_block(devnet_genesis: Any) -> None:
    state, pending = create_genesis_state(devnet_genesis)
    assert state.height == 0
    assert pending.block.header.prev_hash == devnet_genesis.hash
    assert pending.block.header.state_root == state.root
    assert create_genesis_block(devnet_genesis).block == pending.block
    assert state.get(POOL_KEY) is not None


def test_same_seed_same_bytes_other_seed_other_keys(tmp_path: Path) -> None:
    a = write_devnet(tmp_path / "a" / "genesis.json", 3, "seed-1")
    b = write_devnet(tmp_path / "b" / "genesis.json", 3, "seed-1")
    c = write_devnet(tmp_path / "c" / "genesis.json", 3, "seed-2")
    assert (tmp_path / "a" / "genesis.json").read_bytes() == (tmp_path / "b" / "genesis.json").read_bytes()
    assert (tmp_path / "a" / "keys" / "accounts.json").read_bytes() == (
        tmp_path / "b" / "keys" / "accounts.json"
    ).read_bytes()
    assert a.hash == b.hash != c.hash
    key_file = json.loads((tmp_path / "a" / "keys" / "node-0.json").read_text())
    assert key_file["warning"].startswith("UNSAFE")


def test_presets_follow_the_protocol() -> None:
    assert MAINNET.block_time == 120_000  # milliseconds
    assert MAINNET.checkpoint_interval == 4
    assert MAINNET.staking_requirement == 25_000 * ATOMIC_PER_COIN
    assert MAINNET.max_contributors == 10
    assert MAINNET.min_operator_stake_divisor == 4
    assert DEVNET.block_time < MAINNET.block_time


def test_block_0_may_hold_more_events_than_a_produced_block() -> None:
    """A genesis carries a whole network's accounts: the per-block event limit bounds what a
    producer asks of validators, not block 0."""
    import msgspec

    params = msgspec.structs.replace(DEVNET, max_block_events=10)
    genesis, _, _ = create_devnet_genesis(12, "big", users=30, params=params)
    state, pending = create_genesis_state(genesis)
    assert len(pending.block.events) > params.max_block_events
    assert state.height == 0 and len(list(state.prefixed(b"acct/"))) >= 30


def test_block_0_names_the_node_whose_proof_of_possession_is_bad() -> None:
    """Block 0 checks its nodes' proofs as one batch; one bad proof among them still fails the
    block naming that node's event, and the good ones build the state as before."""
    import msgspec

    from state.crypto import bls
    from state.errors import InvalidBlock

    genesis, _, _ = create_devnet_genesis(6, "pop-batch", users=2)
    good, _ = create_genesis_state(genesis)
    nodes = list(genesis.service_nodes)
    nodes[3] = msgspec.structs.replace(nodes[3], bls_pop=nodes[4].bls_pop)
    bad = msgspec.structs.replace(genesis, service_nodes=tuple(nodes))
    index = list(bad.events()).index(nodes[3])
    bls._known_possessions.clear()
    with pytest.raises(InvalidBlock, match=rf"event {index} \(GenesisNode\): BLS proof of possession"):
        create_genesis_state(bad)
    bls._known_possessions.clear()
    assert create_genesis_state(genesis)[0].root == good.root


def test_genesis_time_is_in_seconds_and_block_0_in_milliseconds() -> None:
    """The genesis file keeps unix seconds; block 0's header, and the state after it, carry
    ``genesis_time x 1000`` milliseconds, and the next block may come ``block_time`` ms later."""
    from genesis.build import create_genesis_state

    genesis, _, _ = create_devnet_genesis(4, "genesis-tests", users=1, genesis_time=1_767_225_600)
    state, block_0 = create_genesis_state(genesis)
    assert genesis_to_json(genesis)["genesis_time"] == 1_767_225_600
    assert block_0.block.header.timestamp == state.timestamp == 1_767_225_600_000 == genesis.timestamp_ms
    assert genesis_to_json(genesis)["params"]["checkpoint_interval"] == DEVNET.checkpoint_interval


def test_a_genesis_written_when_block_time_was_seconds_is_told_the_unit(document: dict[str, Any]) -> None:
    """Such a file has a small ``block_time`` and no ``checkpoint_interval``: both are reported,
    on one line, the unit too (not only the missing field)."""

    def old(d: dict[str, Any]) -> None:
        d["params"].update(block_time=2)
        d["params"].pop("checkpoint_interval")

    assert problems_of(edited(document, old)) == [
        "$.params.checkpoint_interval: missing field",
        "$.params.block_time: is in milliseconds and must be at least 50 (a 2 s block time is 2000, not 2);"
        " 2 ms is too short",
    ]
    with pytest.raises(GenesisError) as caught:
        parse_genesis_json(json.dumps(edited(document, old)))
    assert "\n" not in str(caught.value) and "milliseconds" in str(caught.value)
