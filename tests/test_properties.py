"""Determinism properties (Hypothesis).

- random valid event sequences replayed twice give identical roots at every height;
- the same blocks written to a store with snapshots, reopened (snapshot + tail replay), give the
  roots of a fresh in-memory replay;
- a random invalid event leaves the root (and every entry) unchanged.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appchain.home.chain import Chain
from genesis.build import create_genesis_state
from genesis.devnet import derive_user
from genesis.document import Genesis
from state.block import Block
from state.crypto import ed25519
from state.errors import InvalidBlock
from state.events import Event
from state.ledger import compute_fee, get_account
from state.state import State
from state.transition import apply_block
from state.types import Atomic
from state.view import Overlay
from tests.helpers import next_block, transfer

USERS = [derive_user("tests", i) for i in range(6)]
STRANGERS = [ed25519.SigningKey(bytes([0xA0 + i]) * 32) for i in range(4)]
NEVER_FUNDED = ed25519.SigningKey(b"\xee" * 32)

# one op: (sender index, recipient index, share of the balance in 1/1000, is it a stranger)
ops = st.tuples(st.integers(0, 5), st.integers(0, 9), st.integers(1, 999))
blocks_strategy = st.lists(st.lists(ops, min_size=0, max_size=8), min_size=1, max_size=8)


def build_blocks(genesis: Genesis, plan: list[list[tuple[int, int, int]]]) -> list[Block]:
    state = create_genesis_state(genesis)[0]
    blocks = []
    recipients = [u.public_key for u in USERS] + [s.public_key for s in STRANGERS]
    for ops_in_block in plan:
        view = Overlay(state.get)
        nonces: dict[bytes, int] = {}
        spent: dict[bytes, int] = {}
        events: list[Event] = []
        for sender_index, recipient_index, share in ops_in_block:
            sender = USERS[sender_index]
            account = get_account(view, sender.public_key)
            fee_reserve = 2 * compute_fee(
                state.params, transfer(state, sender, recipients[recipient_index], 1, 1)
            )
            available = account.balance - spent.get(sender.public_key, 0) - fee_reserve
            amount = max(1, available * share // 1000)
            if amount > available:
                continue
            nonce = nonces.get(sender.public_key, account.nonce) + 1
            nonces[sender.public_key] = nonce
            spent[sender.public_key] = spent.get(sender.public_key, 0) + amount + fee_reserve
            events.append(transfer(state, sender, recipients[recipient_index], amount, nonce))
        pending = next_block(state, events)
        apply_block(state, pending.block)
        blocks.append(pending.block)
    return blocks


def replay_roots(genesis: Genesis, blocks: list[Block]) -> list[bytes]:
    state = create_genesis_state(genesis)[0]
    roots = []
    for block in blocks:
        apply_block(state, block, verify_signatures=False)
        roots.append(state.root)
    return roots


SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(plan=blocks_strategy)
def test_replaying_twice_gives_identical_roots(devnet_genesis: Genesis, plan: list) -> None:
    blocks = build_blocks(devnet_genesis, plan)
    first = replay_roots(devnet_genesis, blocks)
    assert first == replay_roots(devnet_genesis, blocks)
    assert first == [b.header.state_root for b in blocks]


@SETTINGS
@given(plan=blocks_strategy, interval=st.integers(1, 4))
def test_restart_from_a_snapshot_gives_the_fresh_replay_root(
    devnet_genesis: Genesis, plan: list, interval: int
) -> None:
    blocks = build_blocks(devnet_genesis, plan)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db"
        with Chain.create(path, devnet_genesis, snapshot_interval=interval, sync=False) as chain:
            for block in blocks:
                chain.append(block, verify_signatures=False)
            snapshots = chain.store.list_snapshots()
        with Chain.open(path, devnet_genesis, snapshot_interval=interval, sync=False) as reopened:
            restarted = reopened.state
            assert restarted.height == len(blocks)
    assert max(snapshots) >= len(blocks) - interval + 1 or len(blocks) < interval
    assert restarted.root == replay_roots(devnet_genesis, blocks)[-1]
    assert list(restarted.items()) == list(_fresh(devnet_genesis, blocks).items())


def _fresh(genesis: Genesis, blocks: list[Block]) -> State:
    state = create_genesis_state(genesis)[0]
    for block in blocks:
        apply_block(state, block, verify_signatures=False)
    return state


invalid_kinds = st.sampled_from(["nonce", "funds", "signature", "chain", "zero", "stranger"])


@SETTINGS
@given(plan=blocks_strategy, kind=invalid_kinds, position=st.integers(0, 8), sender=st.integers(0, 5))
def test_a_random_invalid_event_leaves_the_root_unchanged(
    devnet_genesis: Genesis, plan: list, kind: str, position: int, sender: int
) -> None:
    blocks = build_blocks(devnet_genesis, plan)
    state = _fresh(devnet_genesis, blocks)
    key = USERS[sender]
    account = get_account(Overlay(state.get), key.public_key)
    good = transfer(state, key, STRANGERS[0].public_key, 1, account.nonce + 1)
    bad = {
        "nonce": transfer(state, key, STRANGERS[0].public_key, 1, account.nonce + 2),
        "funds": transfer(state, key, STRANGERS[0].public_key, account.balance + 1, account.nonce + 1),
        "signature": msgspec.structs.replace(good, amount=Atomic(2)),
        "chain": transfer(state, key, STRANGERS[0].public_key, 1, account.nonce + 1, chain_id="elsewhere"),
        "zero": transfer(state, key, STRANGERS[0].public_key, 0, account.nonce + 1),
        "stranger": transfer(state, NEVER_FUNDED, key.public_key, 1, 1),
    }[kind]
    nonce_base = get_account(Overlay(state.get), USERS[(sender + 1) % 6].public_key).nonce
    valid_others = [
        transfer(state, USERS[(sender + 1) % 6], STRANGERS[2].public_key, 1, nonce_base + n) for n in (1, 2)
    ]
    events: list[Event] = list(valid_others)
    events.insert(min(position, len(events)), bad)
    root, entries = state.root, list(state.items())
    try:
        next_block(state, events)
    except InvalidBlock as exc:
        assert exc.event_index == min(position, 2)
    else:
        raise AssertionError("an invalid event was accepted")
    assert state.root == root
    assert list(state.items()) == entries
