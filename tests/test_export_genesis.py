"""``appchain export-genesis``: a chain's state at a final height as a new genesis, and back.

The round trip: the state at ``H`` exported and imported into a fresh home has the same
normalised state root (:func:`genesis.export.normalise_state`), the same ``get_service_nodes``
answers but for the documented reset fields, and the same SNS answers; the supply is conserved
and every pending amount lands in the balance of whom it belongs to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import plyvel
import pytest

from appchain.cli.main import main
from appchain.home.genesis_export import (
    RESET_SERVICE_NODE_FIELDS,
    RESET_SNS_FIELDS,
    load_state_at,
    open_store,
)
from appchain.home.home import Home, NodeConfig
from appchain.rpc import methods as rpc
from consensus.uptime import PulseRecord
from genesis.build import create_genesis_state
from genesis.devnet import create_devnet_genesis, derive_node
from genesis.document import Genesis, dump_genesis
from genesis.export import compute_export_genesis_time, compute_normalised_root, export_state, normalise_state
from genesis.load import load_genesis, parse_genesis_json
from genesis.presets import DEVNET
from state import sns
from state.encoding import Decoder, encode
from state.events import Contribute, GenesisName, NewState, RequestUnlock, SnsBuy
from state.invariants import check_invariants
from state.ledger import ACCOUNT_PREFIX, REWARD_PREFIX, Account, get_account, get_pool_balance
from state.noderecords import NONE, LockedStake, NodeStatus
from state.nodes import LOCK_PREFIX, compute_claimable, get_node, iter_nodes
from state.rewards import compute_unsettled, get_index
from state.sns import NAME_PREFIX
from state.state import State
from state.supply import compute_supply
from state.types import ATOMIC_PER_COIN, Atomic, Height, Nonce
from state.view import Overlay
from tests.chainsim import Sim
from tests.conftest import MakeHome, extend

BLOCKS = 40
SNAPSHOT_INTERVAL = 8
"""The source keeps the snapshots at 32 and 40: H = 20 replays from block 0, H = 36 from 32."""
SEED = "aa"
"""A dev-chain seed whose state at 36 holds every case the export moves or resets (checked below)."""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, devnet_dir: Path) -> Home:
    """A home with 40 blocks of every kind of event (final up to 40)."""
    home, _ = Home.init(
        tmp_path_factory.mktemp("export") / "source",
        devnet_dir / "genesis.json",
        NodeConfig(snapshot_interval=SNAPSHOT_INTERVAL, sync_writes=False),
    )
    with home.open_chain() as chain:
        extend(chain, home, BLOCKS, seed=SEED, per_block=30)
        assert chain.final_height == BLOCKS
    return home


def state_at(home: Home, height: int) -> State:
    with open_store(home) as store:
        state = load_state_at(store, home.load_genesis(), height)
        header = store.get_header(height)
    assert header is not None and state.root == header.state_root  # the root block H recorded
    return state


NO_BLOCKS = SimpleNamespace(
    get_header=lambda height: None,
    get_certificate=lambda height: None,
    get_checkpoint_quorum=lambda height: None,
    iter_blocks=lambda start, stop: iter(()),
)
"""A block store that holds none (the answers below come from the state alone)."""


def rpc_node(state: State) -> Any:
    """What the RPC methods read of a node, answering from ``state`` (no uptime proofs, and no
    blocks: as a node that joined by state sync at the state's height)."""
    return SimpleNamespace(
        chain=SimpleNamespace(store=NO_BLOCKS, base_height=state.height),
        ledger=SimpleNamespace(state=state, height=state.height, final_height=state.height),
        core=SimpleNamespace(
            node_key=bytes(32),
            proofs=SimpleNamespace(accepted={}),
            pulse_record=PulseRecord(),
        ),
    )


def service_nodes(state: State) -> dict[str, dict[str, Any]]:
    answer = rpc.call_method(rpc_node(state), "get_service_nodes", {})
    return {entry["service_node_pubkey"]: entry for entry in answer["service_node_states"]}


@contextmanager
def imported(tmp_path: Path, genesis_file: Path) -> Iterator[State]:
    """The state of a fresh home initialised from ``genesis_file``."""
    home, _ = Home.init(tmp_path / "imported", genesis_file, NodeConfig(sync_writes=False))
    with home.open_chain() as chain:
        assert chain.height == 0
        yield chain.state


# -- the round trip --------------------------------------------------------------------------------


@pytest.mark.parametrize("height", [20, 36, BLOCKS])
def test_the_state_at_a_final_height_comes_back_from_its_genesis(
    source: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str], height: int
) -> None:
    out = tmp_path / "exported.json"
    code, stdout, err = run(
        capsys, "export-genesis", "--home", str(source.path), "--height", str(height), "--out", str(out)
    )
    assert code == 0, err
    printed_hash = stdout.splitlines()[-1].removeprefix("genesis hash: ")
    code, validated, _ = run(capsys, "genesis", "validate", str(out))
    assert code == 0 and validated.strip() == printed_hash
    genesis = load_genesis(out)
    assert dump_genesis(genesis) == out.read_text()
    original = state_at(source, height)
    assert genesis.chain_id == f"appchain-devnet-h{height}"
    # headers are in ms, the genesis in s: the tip's time rounded up, never before the old tip
    assert genesis.genesis_time == compute_export_genesis_time(original.timestamp)
    assert original.timestamp <= genesis.timestamp_ms < original.timestamp + 1000
    assert genesis.params == original.params
    assert genesis.total_supply == compute_supply(original).total == source.load_genesis().total_supply

    with imported(tmp_path, out) as state:
        assert check_invariants(state, genesis.total_supply) == []
        assert normalise_state(state) == normalise_state(original)
        assert compute_normalised_root(state) == compute_normalised_root(original)
        assert state.root != original.root  # the reset fields do differ

        # get_service_nodes: the same nodes but for unfilled registrations, the same answers
        # but for the reset fields
        before, after = service_nodes(original), service_nodes(state)
        view = Overlay(original.get)
        unfilled = {key.hex() for key, node in iter_nodes(view) if node.status == NodeStatus.AWAITING}
        assert set(after) == set(before) - unfilled and after
        for key, entry in after.items():
            assert entry.keys() == before[key].keys()
            kept = {field: value for field, value in entry.items() if field not in RESET_SERVICE_NODE_FIELDS}
            assert kept == {f: v for f, v in before[key].items() if f not in RESET_SERVICE_NODE_FIELDS}
            assert entry["status"] == "active" and entry["requested_unlock_height"] == 0

        # SNS: every name hash the old state holds (live or expired) and one it never held
        hashes = [name_hash for name_hash, _ in original.prefixed(NAME_PREFIX)] + [bytes([7]) * 32]
        for name_hash in hashes:
            params = {"type": 0, "name_hash": name_hash.hex()}
            resolved = rpc.call_method(rpc_node(state), "ons_resolve", params)
            assert resolved == rpc.call_method(rpc_node(original), "ons_resolve", params)
        params = {"entries": [h.hex() for h in hashes]}
        old_entries = rpc.call_method(rpc_node(original), "ons_names_to_owners", params)["entries"]
        new_entries = rpc.call_method(rpc_node(state), "ons_names_to_owners", params)["entries"]
        assert len(new_entries) == len(old_entries) == len(genesis.sns_records) > 0
        for old, new in zip(old_entries, new_entries, strict=True):
            assert new["expiration_height"] == old["expiration_height"] - height
            assert {k: v for k, v in new.items() if k not in RESET_SNS_FIELDS} == {
                k: v for k, v in old.items() if k not in RESET_SNS_FIELDS
            }


def test_the_source_chain_has_what_the_export_must_move(source: Home) -> None:
    """The round trip above is only as good as the cases its chain holds at H = 36."""
    state = state_at(source, 36)
    view = Overlay(state.get)
    statuses = [node.status for _, node in iter_nodes(view)]
    assert NodeStatus.AWAITING in statuses and NodeStatus.DECOMMISSIONED in statuses
    assert any(node.unlock_height != NONE for _, node in iter_nodes(view))
    assert any(True for _ in state.prefixed(LOCK_PREFIX))
    index = get_index(view)
    assert sum(compute_unsettled(node, index) for _, node in iter_nodes(view)) > 0
    assert len(list(state.prefixed(NAME_PREFIX))) > 0


def test_every_pending_amount_lands_in_its_owners_balance(source: Home) -> None:
    """Computed another way than the export does: claimable rewards per account
    (:func:`compute_claimable`), locked stakes and unfilled registrations' stakes per contributor."""
    state = state_at(source, 36)
    view = Overlay(state.get)
    accounts = Decoder(Account)
    expected = {key: accounts.decode(raw).balance for key, raw in state.prefixed(ACCOUNT_PREFIX)}
    holders = {key for key, _ in state.prefixed(REWARD_PREFIX)}
    for _, node in iter_nodes(view):
        holders |= {bytes(node.operator), *(bytes(c.account) for c in node.contributions)}
    for holder in holders:
        expected[holder] = expected.get(holder, 0) + compute_claimable(view, holder)
    for _, raw in state.prefixed(LOCK_PREFIX):
        for contribution in Decoder(LockedStake).decode(raw).contributions:
            expected[contribution.account] = expected.get(contribution.account, 0) + contribution.amount
    for _, node in iter_nodes(view):
        if node.status == NodeStatus.AWAITING:
            for contribution in node.contributions:
                expected[contribution.account] = expected.get(contribution.account, 0) + contribution.amount
    genesis, summary = export_state(
        state, chain_id="moved", genesis_time=compute_export_genesis_time(state.timestamp)
    )
    assert {a.account: a.amount for a in genesis.allocations} == {k: v for k, v in expected.items() if v}
    assert genesis.total_supply == compute_supply(state).total
    assert genesis.reward_pool == get_pool_balance(view) + summary.rewards_to_pool
    assert summary.locked_stakes_returned > 0 and summary.awaiting_stakes_returned > 0
    assert summary.rewards_credited > 0


# -- every case, one by one ------------------------------------------------------------------------

PARAMS = msgspec.structs.replace(
    DEVNET, payable_delay=2, sns_period=12, unlock_delay=40, deregistration_lock=40
)


def test_decommissioned_exiting_deregistered_unfilled_nodes_and_expired_names() -> None:
    genesis, dev_nodes, users = create_devnet_genesis(14, "export", users=4, params=PARAMS)
    sim = Sim(genesis, dev_nodes, users)
    operator_of = {bytes(n.node.public_key): n.operator for n in dev_nodes}
    sim.advance(3)  # the genesis nodes are payable from height 2

    def buy(name: str, owner: Any, backup: Any = None) -> None:
        value = sns.encrypt_value(name, b"\x05" + bytes(32), bytes(24))
        sim.block(
            sim.tx(
                SnsBuy,
                owner,
                name_hash=sns.compute_name_hash(name),
                encrypted_value=value,
                owner=owner.public_key,
                backup_owner=backup,
            )
        )

    buy("early", users[0])
    down = sim.worker_in_next_quorum(lambda n: n.status == NodeStatus.ACTIVE)
    assert down is not None
    sim.block(sim.votes(down, NewState.DECOMMISSION))
    gone = sim.worker_in_next_quorum(lambda n: n.status == NodeStatus.ACTIVE)
    assert gone is not None and gone != down
    sim.block(sim.votes(gone, NewState.DEREGISTER))
    leaving = next(k for k, n in iter_nodes(sim.view) if n.status == NodeStatus.ACTIVE)
    sim.block(sim.tx(RequestUnlock, operator_of[bytes(leaving)], node_key=leaving))
    unfilled, register = sim.new_node(users[1], PARAMS.staking_requirement // 2)
    sim.block(register)
    sim.block(sim.tx(Contribute, users[2], node_key=unfilled.public_key, amount=10 * ATOMIC_PER_COIN))
    sim.advance(8)
    buy("late", users[3], users[0].public_key)
    sim.advance(2)
    state, height = sim.state, sim.height

    early, late = get_name_record(state, "early"), get_name_record(state, "late")
    assert early is not None and late is not None
    assert early.expiry_height <= height < late.expiry_height
    node = get_node(sim.view, down)
    assert node is not None and node.status == NodeStatus.DECOMMISSIONED
    assert get_node(sim.view, gone) is None and any(True for _ in state.prefixed(LOCK_PREFIX))
    leaving_node = get_node(sim.view, leaving)
    assert leaving_node is not None and leaving_node.unlock_height > height
    unfilled_node = get_node(sim.view, unfilled.public_key)
    assert unfilled_node is not None and unfilled_node.status == NodeStatus.AWAITING

    exported, summary = export_state(
        state, chain_id="sim-export", genesis_time=compute_export_genesis_time(state.timestamp)
    )
    loaded = parse_genesis_json(dump_genesis(exported))
    assert loaded == exported
    fresh, _ = create_genesis_state(loaded)
    assert check_invariants(fresh, loaded.total_supply) == []
    assert normalise_state(fresh) == normalise_state(state)
    assert compute_normalised_root(fresh) == compute_normalised_root(state)

    view = Overlay(fresh.get)
    for kept in (down, leaving):  # decommissioned and exiting nodes stay, active and not leaving
        node = get_node(view, kept)
        assert node is not None and node.status == NodeStatus.ACTIVE and node.unlock_height == NONE
    assert get_node(view, gone) is None and get_node(view, unfilled.public_key) is None
    assert summary.awaiting_registrations_dropped == 1
    assert summary.awaiting_stakes_returned == PARAMS.staking_requirement // 2 + 10 * ATOMIC_PER_COIN
    assert summary.locked_stakes_returned == PARAMS.staking_requirement
    assert summary.expired_names_dropped == 1
    gone_operator = operator_of[bytes(gone)].public_key  # its locked stake and its rewards
    rewards = compute_claimable(sim.view, gone_operator)
    assert rewards > 0
    assert get_account(view, gone_operator).balance == (
        get_account(sim.view, gone_operator).balance + rewards + PARAMS.staking_requirement
    )
    assert compute_claimable(sim.view, users[2].public_key) == 0  # an unfilled node earns nothing
    assert get_account(view, users[2].public_key).balance == (
        get_account(sim.view, users[2].public_key).balance + 10 * ATOMIC_PER_COIN
    )
    assert get_name_record(fresh, "early") is None
    record = get_name_record(fresh, "late")
    assert record is not None and record.expiry_height == late.expiry_height - height
    assert record.owner == users[3].public_key and record.backup_owner == users[0].public_key


def test_the_exported_genesis_time_is_the_tip_in_seconds_rounded_up() -> None:
    """Headers are in milliseconds, a genesis file in seconds: the new chain's block 0 is never
    earlier than the old tip, and a whole second stays that second."""
    cases = {
        0: 0,
        1: 1,
        999: 1,
        1_000: 1,
        1_001: 2,
        1_767_225_600_000: 1_767_225_600,
        1_767_225_600_250: 1_767_225_601,
    }
    assert {ms: compute_export_genesis_time(ms) for ms in cases} == cases


def test_the_export_of_a_genesis_state_is_that_genesis() -> None:
    """At height 0 nothing is pending and nothing has moved: the export is the genesis itself."""
    genesis, _, users = create_devnet_genesis(13, "identity", users=3, params=PARAMS)
    value = sns.encrypt_value("zed", b"\x05" + bytes(32), bytes(24))
    name = GenesisName(sns.compute_name_hash("zed"), value, users[0].public_key, None, Height(30))
    genesis = msgspec.structs.replace(genesis, sns_records=(name,))
    state, _ = create_genesis_state(genesis)
    exported, summary = export_state(state, chain_id=genesis.chain_id, genesis_time=genesis.genesis_time)
    assert exported == genesis and exported.hash == genesis.hash
    assert summary.rewards_credited == summary.locked_stakes_returned == summary.expired_names_dropped == 0


def get_name_record(state: State, name: str) -> sns.NameRecord | None:
    return sns.get_name(Overlay(state.get), sns.compute_name_hash(name))


# -- the normalisation can tell states apart -------------------------------------------------------


def test_the_normalisation_tells_states_apart_and_refuses_unknown_keys(source: Home) -> None:
    at_36, at_40 = state_at(source, 36), state_at(source, BLOCKS)
    assert compute_normalised_root(at_36) != compute_normalised_root(at_40)
    account, raw = next(iter(at_36.prefixed(ACCOUNT_PREFIX)))
    record = Decoder(Account).decode(raw)
    items = dict(at_36.items())
    items[ACCOUNT_PREFIX + account] = encode(Account(Atomic(record.balance + 1), record.nonce))
    changed = rebuilt(at_36, items)
    assert compute_normalised_root(changed) != compute_normalised_root(at_36)
    items = dict(at_36.items())
    items[ACCOUNT_PREFIX + account] = encode(Account(record.balance, Nonce(record.nonce + 5)))
    assert compute_normalised_root(rebuilt(at_36, items)) == compute_normalised_root(at_36)  # nonces reset
    with pytest.raises(ValueError, match="neither carried nor reset"):
        normalise_state(rebuilt(at_36, {**dict(at_36.items()), b"newdomain/x": b"\x01"}))


def rebuilt(state: State, items: dict[bytes, bytes]) -> State:
    return State.from_snapshot(
        state.chain_id,
        state.params,
        height=state.height,
        block_hash=state.block_hash,
        timestamp=state.timestamp,
        items=items.items(),
    )


# -- replacing the node set ------------------------------------------------------------------------


def test_replace_nodes_gives_a_testnet_that_runs(
    source: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "net" / "genesis.json"
    out.parent.mkdir()
    code, stdout, err = run(
        capsys,
        "export-genesis",
        "--home",
        str(source.path),
        "--height",
        "36",
        "--out",
        str(out),
        "--replace-nodes",
        "12",
        "--seed",
        "local",
        "--chain-id",
        "local-testnet",
    )
    assert code == 0, err
    original = state_at(source, 36)
    view = Overlay(original.get)
    staked = sum(1 for _, node in iter_nodes(view) if node.status != NodeStatus.AWAITING)
    assert f"replaced {staked} nodes" in stdout and "by 12 dev nodes" in stdout
    assert run(capsys, "genesis", "validate", str(out))[0] == 0
    genesis = load_genesis(out)
    assert genesis.chain_id == "local-testnet"
    assert {n.node_key for n in genesis.service_nodes} == {
        derive_node("local", i).node.public_key for i in range(12)
    }
    assert genesis.total_supply == compute_supply(original).total
    reference, _ = export_state(
        original, chain_id="local-testnet", genesis_time=compute_export_genesis_time(original.timestamp)
    )
    requirement = original.params.staking_requirement
    assert genesis.reward_pool == reference.reward_pool - 12 * requirement
    balances = {a.account: a.amount for a in genesis.allocations}
    before = {a.account: a.amount for a in reference.allocations}
    for _, node in iter_nodes(view):
        if node.status != NodeStatus.AWAITING:
            for contribution in node.contributions:
                before[contribution.account] = before.get(contribution.account, 0) + contribution.amount
    assert balances == before  # every old stake back with its contributor
    nodes_file = json.loads((out.parent / "keys" / "nodes.json").read_text())
    assert len(nodes_file["nodes"]) == 12 and "UNSAFE" in nodes_file["warning"]

    # a home made from it signs blocks and certificates with the dev keys
    testnet = tmp_path / "testnet-node"
    assert run(capsys, "init", "--home", str(testnet), "--genesis", str(out))[0] == 0
    code, stdout, err = run(capsys, "dev-chain", "--home", str(testnet), "--blocks", "8", "--seed", "t")
    assert code == 0, err
    assert "height 8 (final 8)" in stdout
    with Home(testnet).open_chain() as chain:
        assert check_invariants(chain.state, genesis.total_supply) == []


# -- bad input ---------------------------------------------------------------------------------------


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 1, (args, out, err)
    lines = err.splitlines()  # progress lines may come first, when the error needs the state
    assert lines and lines[-1].startswith("error: "), (args, err)
    assert all(line.startswith("export-genesis [") for line in lines[:-1]), (args, err)
    return lines[-1]


def test_bad_input_is_one_line_and_writes_nothing(
    source: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(source.path)
    out = str(tmp_path / "g.json")
    cases = [
        (["--home", home, "--height", "41", "--out", out], "above the final height 40"),
        (["--home", home, "--height", "-1", "--out", out], "must not be negative"),
        (["--home", str(tmp_path / "nowhere"), "--height", "4", "--out", out], "not a node home"),
        (["--home", home, "--height", "4", "--out", str(tmp_path / "missing" / "g.json")], "does not exist"),
        (["--home", home, "--height", "4", "--out", str(tmp_path)], "is a folder"),
        (["--home", home, "--height", "4", "--out", out, "--replace-nodes", "0"], "at least 1"),
        (["--home", home, "--height", "4", "--out", out, "--replace-nodes", "-3"], "at least 1"),
        (["--home", home, "--height", "4", "--out", out, "--seed", "s"], "needs --replace-nodes"),
        (["--home", home, "--height", "4", "--out", out, "--chain-id", "Bad Id"], "--chain-id"),
        (["--home", home, "--height", "4", "--out", out, "--genesis-time", "-5"], "must not be negative"),
        (["--home", home, "--height", "4", "--out", out, "--replace-nodes", "20000"], "reward pool holds"),
    ]
    for args, message in cases:
        assert message in one_line_error(capsys, "export-genesis", *args), args
    assert not (tmp_path / "g.json").exists() and not (tmp_path / "keys").exists()
    (tmp_path / "g.json").write_text("keep me")
    assert "pass --force" in one_line_error(
        capsys, "export-genesis", "--home", home, "--height", "4", "--out", out
    )
    assert (tmp_path / "g.json").read_text() == "keep me"
    code, _, _ = run(capsys, "export-genesis", "--home", home, "--height", "4", "--out", out, "--force")
    assert code == 0 and isinstance(load_genesis(out), Genesis)
    assert not list(tmp_path.glob("*.partial"))


def test_a_height_below_what_the_home_holds_is_refused(
    make_home: MakeHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_home(12, snapshot_interval=4)  # keeps the snapshots at 8 and 12, final 12
    out = str(tmp_path / "g.json")
    # as a home that joined by state sync: no block 0 to replay from
    db = plyvel.DB(str(home.db_path))
    db.delete(b"e/" + (0).to_bytes(8, "big"))
    db.close()
    message = one_line_error(
        capsys, "export-genesis", "--home", str(home.path), "--height", "4", "--out", out
    )
    assert "height 4 is below what this home holds (from height 8 on)" in message
    code, _, err = run(capsys, "export-genesis", "--home", str(home.path), "--height", "8", "--out", out)
    assert code == 0, err
    assert load_genesis(out).chain_id == "appchain-devnet-h8"


def test_chain_id_and_genesis_time_can_be_chosen(
    source: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "g.json"
    args = ["--height", "8", "--out", str(out), "--chain-id", "rehearsal.1", "--genesis-time", "1800000000"]
    assert run(capsys, "export-genesis", "--home", str(source.path), *args)[0] == 0
    genesis = load_genesis(out)
    assert genesis.chain_id == "rehearsal.1" and genesis.genesis_time == 1_800_000_000
