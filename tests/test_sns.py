"""Session Name Service: the Oxen vectors, client helpers and the chain rules (PROTOCOL.md §7)."""

from __future__ import annotations

import base64

import pytest

from state import sns
from state.effects import NameBought, NameExpired, NameRenewed
from state.events import SnsBuy, SnsRenew, SnsUpdate
from state.types import Bytes32, Hash32
from tests.chainsim import Sim, make_genesis
from tests.conftest import load_vectors

VECTORS = load_vectors("sns.json")
HASHES = VECTORS["name_hash_cases"]
DECRYPTIONS = [c for c in VECTORS["cases"] if c["kind"] == "decrypt_xchacha"]
VALIDITY = VECTORS["name_validity"]["session_wallet_names"]["cases"]


@pytest.mark.parametrize("case", HASHES, ids=lambda c: c["name"])
def test_name_hash_vectors(case: dict) -> None:
    digest = sns.compute_name_hash(case["name"])
    assert digest.hex() == case["name_hash_hex"]
    assert base64.b64encode(digest).decode() == case["name_hash_base64"]


@pytest.mark.parametrize("case", DECRYPTIONS, ids=lambda c: c["name"])
def test_decryption_vectors(case: dict) -> None:
    assert sns.derive_value_key(case["name"]).hex() == case["key_hex"]
    stored = bytes.fromhex(case["ciphertext_hex"]) + bytes.fromhex(case["nonce_hex"])
    assert sns.decrypt_value(case["name"], stored).hex() == case["expected_plaintext_hex"]
    with pytest.raises(ValueError):
        sns.decrypt_value(case["name"] + "x", stored)


@pytest.mark.parametrize("case", VALIDITY, ids=lambda c: c["name"])
def test_session_name_rules(case: dict) -> None:
    assert sns.is_valid_name(case["name"]) == case["allowed"]


def test_names_fold_to_lower_case_and_bad_names_are_refused() -> None:
    assert sns.normalize_name("Hello_World") == "hello_world"
    assert sns.compute_name_hash("Hello") == sns.compute_name_hash("hello")
    for bad in ("", "-a", "a-", "a b", "a" * 65, "é"):
        with pytest.raises(sns.InvalidName):
            sns.normalize_name(bad)
    with pytest.raises(sns.InvalidName):
        sns.encrypt_value("-bad", b"\x05" * 33, bytes(24))


def test_encrypt_round_trip() -> None:
    session_id = b"\x05" + bytes(range(32))
    stored = sns.encrypt_value("Alice", session_id, bytes(range(24)))
    assert stored[-24:] == bytes(range(24))
    assert sns.decrypt_value("alice", stored) == session_id
    with pytest.raises(ValueError):
        sns.decrypt_value("bob", stored)


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    return make_genesis(nodes=2, users=4)


@pytest.fixture
def sim(net) -> Sim:  # type: ignore[no-untyped-def]
    return Sim(*net)


def _value(name: str) -> bytes:
    return sns.encrypt_value(name, b"\x05" + bytes(32), bytes(24))


def _hash(name: str) -> Bytes32:
    return Bytes32(sns.compute_name_hash(name))


def test_buy_update_renew_and_expire(sim: Sim) -> None:
    alice, bob, carol = sim.users[0], sim.users[1], sim.users[2]
    pool, balance = sim.pool(), sim.balance(alice.public_key)
    buy = sim.tx(
        SnsBuy,
        alice,
        name_hash=_hash("alice"),
        encrypted_value=_value("alice"),
        owner=alice.public_key,
        backup_owner=bob.public_key,
    )
    pending = sim.block(buy)
    expiry = sim.height + sim.params.sns_period
    assert NameBought(_hash("alice"), alice.public_key, expiry) in pending.effects  # type: ignore[arg-type]
    assert sim.balance(alice.public_key) == balance - sim.params.sns_price - sim.fee(buy)
    assert sim.pool() >= pool + sim.params.sns_price + sim.fee(buy) - 10**12  # minus any rewards paid
    record = sns.get_name(sim.view, _hash("alice"))
    assert record is not None and record.owner == alice.public_key

    sim.refuse(
        sim.tx(
            SnsBuy, carol, name_hash=_hash("alice"), encrypted_value=_value("alice"), owner=carol.public_key
        ),
        match="name taken",
    )

    # the backup owner updates, naming the current update id
    update = sim.tx(
        SnsUpdate, bob, name_hash=_hash("alice"), prev_update_id=record.update_id, owner=carol.public_key
    )
    sim.block(update)
    updated = sns.get_name(sim.view, _hash("alice"))
    assert (
        updated is not None and updated.owner == carol.public_key and updated.backup_owner == bob.public_key
    )
    sim.refuse(
        sim.tx(
            SnsUpdate,
            alice,
            name_hash=_hash("alice"),
            prev_update_id=updated.update_id,
            encrypted_value=_value("x"),
        ),
        match="only the owner or the backup owner",
    )
    sim.refuse(
        sim.tx(
            SnsUpdate,
            carol,
            name_hash=_hash("alice"),
            prev_update_id=record.update_id,
            encrypted_value=_value("x"),
        ),
        match="previous update",
    )

    pending = sim.block(sim.tx(SnsRenew, alice, name_hash=_hash("alice")))
    assert NameRenewed(_hash("alice"), expiry + sim.params.sns_period) in pending.effects  # type: ignore[arg-type]
    expiry += sim.params.sns_period

    sim.advance_to(expiry - 1)
    last = sim.block()
    assert NameExpired(_hash("alice")) in last.effects
    sim.refuse(sim.tx(SnsRenew, alice, name_hash=_hash("alice")), match="expired")
    sim.refuse(
        sim.tx(
            SnsUpdate,
            carol,
            name_hash=_hash("alice"),
            prev_update_id=Hash32(updated.update_id),
            encrypted_value=_value("x"),
        ),
        match="expired",
    )
    # expired names are free to buy again
    sim.block(
        sim.tx(SnsBuy, bob, name_hash=_hash("alice"), encrypted_value=_value("alice"), owner=bob.public_key)
    )
    assert sns.get_name(sim.view, _hash("alice")).owner == bob.public_key  # type: ignore[union-attr]
    sim.check()


def test_unknown_names_and_empty_updates(sim: Sim) -> None:
    alice = sim.users[0]
    sim.refuse(sim.tx(SnsRenew, alice, name_hash=_hash("nobody")), match="no such name")
    sim.refuse(
        sim.tx(SnsUpdate, alice, name_hash=_hash("nobody"), prev_update_id=Hash32(bytes(32))),
        match="must change something",
    )
    sim.refuse(
        sim.tx(SnsBuy, alice, name_hash=_hash("big"), encrypted_value=b"x" * 2000, owner=alice.public_key),
        match="1..1024 bytes",
    )


def test_a_buyer_who_cannot_pay_the_price_changes_nothing(sim: Sim) -> None:
    from genesis.devnet import derive_user
    from state.events import Transfer
    from state.types import Atomic

    poor = derive_user("poor", 1)
    sim.block(
        sim.tx(Transfer, sim.users[0], recipient=poor.public_key, amount=Atomic(sim.params.sns_price // 2))
    )
    sim.refuse(
        sim.tx(SnsBuy, poor, name_hash=_hash("poor"), encrypted_value=_value("poor"), owner=poor.public_key),
        match="less than the name price",
    )
