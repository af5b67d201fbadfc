"""The storage RPC against session-storage-server's rules: methods, signed strings, status codes
and error texts, replication to the swarm, subaccounts; in process, two members of one swarm."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519

from appchain.messaging.requests import Reply
from appchain.messaging.rpc import StorageService
from appchain.messaging.store import MessageStore, compute_message_hash, hash_text
from appchain.messaging.swarm import Member
from state.crypto import ed25519
from state.swarms import compute_swarm_space, find_swarm
from tests.conftest import load_vectors

NOW = 1_800_000_000.0  # seconds: the services' clock
NOW_MS = int(NOW * 1000)
MY_SWARM, OTHER_SWARM = 0x1000, 0x9000_0000_0000_0000
STRANGER = ed25519.SigningKey(b"\x33" * 32)  # the other swarm's only member


class Swarms:
    """Two swarms: ours (two members) and another one (one member)."""

    def __init__(self, ours: Sequence[bytes], theirs: Sequence[bytes]) -> None:
        self.by_swarm = {
            MY_SWARM: [Member(k, "127.0.0.1", 1000 + i) for i, k in enumerate(ours)],
            OTHER_SWARM: [Member(k, "127.0.0.2", 3000 + i) for i, k in enumerate(theirs)],
        }
        self.mine: int | None = MY_SWARM

    def owning_swarm(self, owner: bytes) -> int | None:
        return find_swarm(sorted(self.by_swarm), compute_swarm_space(owner))

    def members(self, swarm_id: int) -> Sequence[Member]:
        return self.by_swarm.get(swarm_id, [])

    def my_swarm(self) -> int | None:
        return self.mine

    def height(self) -> int:
        return 100


def account_in(swarm: int, seed: int) -> ed25519.SigningKey:
    """An Ed25519 account whose 05-prefixed id maps to ``swarm``."""
    for i in range(10_000):
        key = ed25519.SigningKey(bytes([seed, i % 256, i // 256]) + bytes(29))
        if find_swarm(sorted((MY_SWARM, OTHER_SWARM)), compute_swarm_space(key.public_key)) == swarm:
            return key
    raise AssertionError("no key found")


@pytest.fixture
def pair(tmp_path: Path) -> tuple[StorageService, StorageService]:
    keys = [ed25519.SigningKey(bytes([9, i]) + bytes(30)) for i in range(2)]
    swarms = Swarms([k.public_key for k in keys], [STRANGER.public_key])
    services: list[StorageService] = []

    async def forward(member: Member, method: str, params: dict[str, Any]) -> dict[str, Any]:
        target = next(s for s in services if s.node_key.public_key == member.ed25519)
        reply = await target.call(method, params, forwarded=True)
        assert isinstance(reply.body, dict), reply
        return reply.body

    for index, key in enumerate(keys):
        store = MessageStore(tmp_path / f"m{index}", sync=False)
        services.append(StorageService(store, key, swarms, forward=forward, clock=lambda: NOW))
    return services[0], services[1]


def owner_of(key: ed25519.SigningKey) -> str:
    return "05" + key.public_key.hex()


def sign(key: ed25519.SigningKey, text: str | bytes) -> str:
    return base64.b64encode(key.sign(text if isinstance(text, bytes) else text.encode())).decode()


async def rpc(service: StorageService, method: str, **params: Any) -> Reply:
    return await service.handle_body(json.dumps({"method": method, "params": params}).encode())


def store_params(
    key: ed25519.SigningKey, data: bytes, namespace: int = 0, ttl: int = 60_000, **extra: Any
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "pubkey": owner_of(key),
        "timestamp": NOW_MS,
        "ttl": ttl,
        "data": base64.b64encode(data).decode(),
        **extra,
    }
    if namespace:
        params["namespace"] = namespace
    return params


async def stored_hash(service: StorageService, key: ed25519.SigningKey, data: bytes, **extra: Any) -> str:
    """Store ``data`` for ``key`` through ``service`` (``extra`` as for :func:`store_params`); its hash."""
    reply = await rpc(service, "store", **store_params(key, data, **extra))
    assert isinstance(reply.body, dict)
    digest: str = reply.body["hash"]
    return digest


def test_the_message_hash_vector() -> None:
    case = next(c for c in load_vectors("message_hash.json")["cases"] if c["formula"] == "current")
    raw = compute_message_hash(
        bytes.fromhex(case["pubkey_hex"]), case["namespace"], bytes.fromhex(case["data_hex"])
    )
    assert raw.hex() == case["expected_hash_hex"] and hash_text(raw) == case["expected_hash_base64_unpadded"]


async def test_store_is_replicated_and_every_member_signs_its_result(
    pair: tuple[StorageService, StorageService],
) -> None:
    first, second = pair
    user = account_in(MY_SWARM, 1)
    reply = await rpc(first, "store", **store_params(user, b"hello"))
    assert reply.status == 200 and isinstance(reply.body, dict)
    digest = reply.body["hash"]
    assert digest == hash_text(compute_message_hash(bytes.fromhex(owner_of(user)), 0, b"hello"))
    assert set(reply.body["swarm"]) == {first.node_key.public_key.hex(), second.node_key.public_key.hex()}
    for member_hex, result in reply.body["swarm"].items():
        assert result["hash"] == digest and result["expiry"] == NOW_MS + 60_000
        assert ed25519.verify(
            bytes.fromhex(member_hex), digest.encode(), base64.b64decode(result["signature"])
        )
    # both members now hold it: retrieve through the other one
    ts = NOW_MS
    got = await rpc(
        second, "retrieve", pubkey=owner_of(user), timestamp=ts, signature=sign(user, f"retrieve{ts}")
    )
    assert got.status == 200 and isinstance(got.body, dict)
    assert [m["hash"] for m in got.body["messages"]] == [digest] and got.body["more"] is False
    assert base64.b64decode(got.body["messages"][0]["data"]) == b"hello"
    again = await rpc(first, "store", **store_params(user, b"hello", ttl=120_000))
    assert (
        isinstance(again.body, dict)
        and again.body["swarm"][first.node_key.public_key.hex()]["already"] is True
    )
    assert again.body["swarm"][first.node_key.public_key.hex()]["expiry"] == NOW_MS + 120_000  # extended


async def test_retrieve_pages_with_last_hash_count_and_size(
    pair: tuple[StorageService, StorageService],
) -> None:
    first, _ = pair
    user = account_in(MY_SWARM, 2)
    hashes = [await stored_hash(first, user, bytes([i]) * 1000) for i in range(5)]
    auth = {"pubkey": owner_of(user), "timestamp": NOW_MS, "signature": sign(user, f"retrieve{NOW_MS}")}
    page = await rpc(first, "retrieve", **auth, max_count=2)
    assert isinstance(page.body, dict) and [m["hash"] for m in page.body["messages"]] == hashes[:2]
    assert page.body["more"] is True
    rest = await rpc(first, "retrieve", **auth, last_hash=hashes[1])
    assert isinstance(rest.body, dict) and [m["hash"] for m in rest.body["messages"]] == hashes[2:]
    small = await rpc(first, "retrieve", **auth, max_size=1)  # always at least one message
    assert isinstance(small.body, dict) and len(small.body["messages"]) == 1 and small.body["more"] is True
    unknown = await rpc(first, "retrieve", **auth, last_hash="A" * 43)  # not found: from the start
    assert isinstance(unknown.body, dict) and len(unknown.body["messages"]) == 5


async def test_signed_namespaces_and_time_rules(pair: tuple[StorageService, StorageService]) -> None:
    first, _ = pair
    user = account_in(MY_SWARM, 3)
    cases = [
        (store_params(user, b"x", namespace=42), 401, "store: signature required to store to namespace 42"),
        (store_params(user, b"x", namespace=42, signature=sign(user, f"store42{NOW_MS}")), 200, None),
        (store_params(user, b"x", namespace=42, signature=sign(user, f"store43{NOW_MS}")), 401,
         "store signature verification failed"),
        (store_params(user, b"x", namespace=42, sig_timestamp=NOW_MS - 61_000,
                      signature=sign(user, f"store42{NOW_MS - 61_000}")), 406,
         "store signature timestamp too far from current time"),
        (store_params(user, b"x", ttl=9_999), 403, "Provided expiry/TTL is not valid."),
        (store_params(user, b"x", ttl=15 * 86_400_000), 403, "Provided expiry/TTL is not valid."),
        (store_params(user, b"x", namespace=42, ttl=31 * 86_400_000, signature=sign(user, f"store42{NOW_MS}")),
         403, "Provided expiry/TTL is not valid."),
        ({**store_params(user, b"x"), "timestamp": NOW_MS + 11_000}, 406, "Timestamp error: check your clock"),
        (store_params(user, b"x" * 76_801), 400,
         "invalid request: Message body exceeds maximum allowed length of 76800 bytes"),
        ({**store_params(user, b"x"), "data": "!!"}, 400, "invalid request: Invalid 'data' value: not base64 encoded"),
        ({**store_params(user, b"x"), "namespace": 40000}, 400,
         "invalid request: Invalid value given for 'namespace': value out of range"),
        ({**store_params(user, b"x"), "pubkey": "05abc"}, 400,
         "invalid request: Pubkey must be 66 hex digits (33 bytes) long"),
    ]  # fmt: skip
    for params, status, text in cases:
        reply = await rpc(first, "store", **params)
        assert reply.status == status, (params, reply)
        if text is not None:
            assert reply.body == text
    for service in pair:  # only the one valid store was kept, on both members
        assert [m.stored.data for m in service.store.all_messages()] == [b"x"]
    stale = NOW_MS - 61_000
    old = await rpc(first, "retrieve", pubkey=owner_of(user), namespace=42, timestamp=stale,
                    signature=sign(user, f"retrieve42{stale}"))  # fmt: skip
    assert (old.status, old.body) == (406, "retrieve timestamp too far from current time")
    ahead = NOW_MS + 61_000
    early = await rpc(first, "retrieve", pubkey=owner_of(user), namespace=42, timestamp=ahead,
                      signature=sign(user, f"retrieve42{ahead}"))  # fmt: skip
    assert (early.status, early.body) == (406, "retrieve timestamp too far from current time")
    unsigned = await rpc(first, "retrieve", pubkey=owner_of(user))
    assert (unsigned.status, unsigned.body) == (401, "retrieve: request signature required")
    wrong = await rpc(first, "retrieve", pubkey=owner_of(user), namespace=42, timestamp=NOW_MS,
                      signature=sign(user, f"retrieve{NOW_MS}"))  # fmt: skip
    assert (wrong.status, wrong.body) == (401, "retrieve signature verification failed")


async def test_a_pubkey_ed25519_that_is_not_a_curve_point_fails_verification(
    pair: tuple[StorageService, StorageService],
) -> None:
    first, second = pair
    user = account_in(MY_SWARM, 11)
    not_a_point = "00" * 32  # libsodium refuses to convert it (it raised from inside the handler)
    with pytest.raises(ValueError):
        ed25519.x25519_public(bytes.fromhex(not_a_point))
    ts = NOW_MS
    reply = await rpc(first, "retrieve", pubkey=owner_of(user), timestamp=ts, pubkey_ed25519=not_a_point,
                      signature=sign(user, f"retrieve{ts}"))  # fmt: skip
    assert (reply.status, reply.body) == (401, "retrieve signature verification failed")
    store = store_params(
        user, b"x", namespace=42, pubkey_ed25519=not_a_point, signature=sign(user, f"store42{ts}")
    )
    batch = await rpc(first, "batch", requests=[{"method": "store", "params": store}])
    assert isinstance(batch.body, dict) and batch.body["results"] == [
        {"code": 401, "body": "store signature verification failed"}
    ]
    assert not list(first.store.all_messages())
    with pytest.raises(ValueError):  # a member's key converts through the same helper
        _ = Member(bytes.fromhex(not_a_point), "127.0.0.1", 1).x25519
    # a Session ID (X25519) with the Ed25519 key it converts from still signs as before
    session = next(
        key
        for key in (ed25519.SigningKey(bytes([11, i]) + bytes(30)) for i in range(256))
        if second.directory.owning_swarm(b"\x05" + ed25519.x25519_public(key.public_key)) == MY_SWARM
    )
    session_id = "05" + ed25519.x25519_public(session.public_key).hex()
    good = await rpc(second, "retrieve", pubkey=session_id, timestamp=ts,
                     pubkey_ed25519=session.public_key.hex(), signature=sign(session, f"retrieve{ts}"))  # fmt: skip
    assert good.status == 200, good


async def test_envelope_errors(pair: tuple[StorageService, StorageService]) -> None:
    first, _ = pair
    assert await first.handle_body(b"{nope") == Reply(400, "invalid json")
    assert await first.handle_body(b'{"params": {}}') == Reply(400, "invalid json: no `method` field")
    assert await first.handle_body(b'{"method": "store"}') == Reply(400, "invalid json: no `params` field")
    assert await rpc(first, "frobnicate") == Reply(400, "no method frobnicate")
    assert await first.handle_body(b"[" * 100_000) == Reply(400, "invalid json")


async def test_a_foreign_account_is_answered_with_its_swarm(
    pair: tuple[StorageService, StorageService],
) -> None:
    first, _ = pair
    stranger = account_in(OTHER_SWARM, 4)
    reply = await rpc(first, "store", **store_params(stranger, b"x"))
    assert reply.status == 421 and isinstance(reply.body, dict)
    assert reply.body["swarm"] == f"{OTHER_SWARM:x}"
    [member] = reply.body["snodes"]
    assert member["pubkey_ed25519"] == STRANGER.public_key.hex()
    assert member["ip"] == "127.0.0.2" and member["port_https"] == 3000 and member["port"] == "3000"
    assert member["port_omq"] == member["port_quic"] == 0  # no OxenMQ/QUIC port: oxend's "none"
    assert member["pubkey_x25519"] == bytes(crypto_sign_ed25519_pk_to_curve25519(STRANGER.public_key)).hex()
    assert first.store.retrieve(bytes.fromhex(owner_of(stranger)), 0, None, None, 10**6) == ([], False)
    swarm = await rpc(first, "get_swarm", pubkey=owner_of(stranger))
    assert (
        swarm.status == 200 and isinstance(swarm.body, dict) and swarm.body["snodes"] == reply.body["snodes"]
    )


async def test_deletes_and_expiries_sign_what_they_did(pair: tuple[StorageService, StorageService]) -> None:
    first, second = pair
    user = account_in(MY_SWARM, 5)
    owner_hex = owner_of(user)
    stored = [await stored_hash(first, user, bytes([i])) for i in range(4)]
    # delete two: each member signs pubkey ‖ requested ‖ deleted (sorted)
    reply = await rpc(
        first,
        "delete",
        pubkey=owner_hex,
        messages=stored[:2],
        signature=sign(user, "delete" + "".join(stored[:2])),
    )
    assert reply.status == 200 and isinstance(reply.body, dict)
    for member, result in reply.body["swarm"].items():
        assert result["deleted"] == sorted(stored[:2])
        text = owner_hex + "".join(stored[:2]) + "".join(sorted(stored[:2]))
        assert ed25519.verify(bytes.fromhex(member), text.encode(), base64.b64decode(result["signature"]))
    bad = await rpc(first, "delete", pubkey=owner_hex, messages=stored[2:], signature=sign(user, "delete"))
    assert (bad.status, bad.body) == (401, "delete_msgs signature verification failed")
    none = await rpc(first, "delete", pubkey=owner_hex, messages=stored[:1], required=True,
                     signature=sign(user, "delete" + stored[0]))  # fmt: skip
    assert none.status == 404  # required, and nothing left to delete anywhere
    # expire: extend one; the string signed includes the mode word
    later = NOW_MS + 3_600_000
    reply = await rpc(first, "expire", pubkey=owner_hex, messages=[stored[2]], expiry=later, extend=True,
                      signature=sign(user, f"expireextend{later}{stored[2]}"))  # fmt: skip
    assert reply.status == 200 and isinstance(reply.body, dict)
    mine = reply.body["swarm"][first.node_key.public_key.hex()]
    assert mine["updated"] == [stored[2]] and mine["expiry"] == later and mine["unchanged"] == {}
    text = owner_hex + str(later) + stored[2] + stored[2]
    assert ed25519.verify(first.node_key.public_key, text.encode(), base64.b64decode(mine["signature"]))
    ts = NOW_MS
    expiries = await rpc(second, "get_expiries", pubkey=owner_hex, messages=stored[2:], timestamp=ts,
                         signature=sign(user, f"get_expiries{ts}{''.join(stored[2:])}"))  # fmt: skip
    assert expiries == Reply(200, {"expiries": {stored[2]: later, stored[3]: NOW_MS + 60_000}})
    # expire_all shortens only; delete_all then empties the namespace on both members
    soon = NOW_MS + 30_000
    reply = await rpc(
        first, "expire_all", pubkey=owner_hex, expiry=soon, signature=sign(user, f"expire_all{soon}")
    )
    assert isinstance(reply.body, dict)
    assert reply.body["swarm"][second.node_key.public_key.hex()]["updated"] == sorted(stored[2:])
    reply = await rpc(first, "delete_all", pubkey=owner_hex, timestamp=ts, namespace="all",
                      signature=sign(user, f"delete_allall{ts}"))  # fmt: skip
    assert isinstance(reply.body, dict)
    assert reply.body["swarm"][second.node_key.public_key.hex()]["deleted"] == {"0": sorted(stored[2:])}
    for service in pair:
        assert service.store.retrieve(bytes.fromhex(owner_hex), 0, None, None, 10**6) == ([], False)


async def test_deletes_and_expiries_refuse_bad_hashes_signatures_and_times(
    pair: tuple[StorageService, StorageService],
) -> None:
    first, second = pair
    user = account_in(MY_SWARM, 12)
    owner_hex = owner_of(user)
    digest = await stored_hash(first, user, b"kept")
    short = "A" * 42
    malformed = await rpc(first, "delete", pubkey=owner_hex, messages=[digest, short],
                          signature=sign(user, "delete" + digest + short))  # fmt: skip
    assert (malformed.status, malformed.body) == (400, f"invalid request: invalid message hash: {short}")
    later = NOW_MS + 3_600_000
    forged = await rpc(first, "expire", pubkey=owner_hex, messages=[digest], expiry=later,
                       signature=sign(user, f"expire{later + 1}{digest}"))  # fmt: skip
    assert (forged.status, forged.body) == (401, "expire: signature verification failed")
    past = NOW_MS - 61_000
    expired = await rpc(first, "expire", pubkey=owner_hex, messages=[digest], expiry=past,
                        signature=sign(user, f"expire{past}{digest}"))  # fmt: skip
    assert (expired.status, expired.body) == (401, "expire: timestamp should be >= current time")
    for ts in (NOW_MS - 61_000, NOW_MS + 61_000):
        delete_all = await rpc(first, "delete_all", pubkey=owner_hex, timestamp=ts,
                               signature=sign(user, f"delete_all{ts}"))  # fmt: skip
        assert (delete_all.status, delete_all.body) == (406, "delete_all timestamp too far from current time")
        expiries = await rpc(second, "get_expiries", pubkey=owner_hex, messages=[digest], timestamp=ts,
                             signature=sign(user, f"get_expiries{ts}{digest}"))  # fmt: skip
        assert (expiries.status, expiries.body) == (406, "get_expiries timestamp too far from current time")
    expire_all = await rpc(first, "expire_all", pubkey=owner_hex, expiry=past,
                           signature=sign(user, f"expire_all{past}"))  # fmt: skip
    assert (expire_all.status, expire_all.body) == (406, "expire_all timestamp should be >= current time")
    for service in pair:  # nothing was deleted or shortened anywhere
        [message] = service.store.all_messages()
        assert message.stored.expiry == NOW_MS + 60_000


async def test_expired_messages_are_swept(pair: tuple[StorageService, StorageService]) -> None:
    first, _ = pair
    user = account_in(MY_SWARM, 6)
    await rpc(first, "store", **store_params(user, b"short", ttl=10_000))
    await rpc(first, "store", **store_params(user, b"long", ttl=100_000))
    assert first.store.sweep(NOW_MS + 20_000) == 1
    messages, _ = first.store.retrieve(bytes.fromhex(owner_of(user)), 0, None, None, 10**6)
    assert [m.stored.data for m in messages] == [b"long"]


async def test_public_outbox_keeps_one_message_and_reads_without_a_signature(
    pair: tuple[StorageService, StorageService],
) -> None:
    first, _ = pair
    user = account_in(MY_SWARM, 7)
    for data in (b"v1", b"v2"):
        reply = await rpc(
            first,
            "store",
            **store_params(user, data, namespace=-21, signature=sign(user, f"store-21{NOW_MS}")),
        )
        assert reply.status == 200, reply
    read = await rpc(first, "retrieve", pubkey=owner_of(user), namespace=-21)
    assert isinstance(read.body, dict) and [base64.b64decode(m["data"]) for m in read.body["messages"]] == [
        b"v2"
    ]


async def test_subaccount_tokens_and_revocation(pair: tuple[StorageService, StorageService]) -> None:
    first, _ = pair
    user = account_in(MY_SWARM, 8)
    reader = ed25519.SigningKey(b"\x44" * 32)
    token = bytes([0x05, 0x01, 0, 0]) + reader.public_key  # read only
    token_b64 = base64.b64encode(token).decode()
    sub = {"subaccount": token_b64, "subaccount_sig": sign(user, token)}
    await rpc(first, "store", **store_params(user, b"secret"))
    ok = await rpc(
        first,
        "retrieve",
        pubkey=owner_of(user),
        timestamp=NOW_MS,
        signature=sign(reader, f"retrieve{NOW_MS}"),
        **sub,
    )
    assert ok.status == 200 and isinstance(ok.body, dict) and len(ok.body["messages"]) == 1
    denied = await rpc(
        first,
        "store",
        **store_params(user, b"y", namespace=42, signature=sign(reader, f"store42{NOW_MS}"), **sub),
    )
    assert (denied.status, denied.body) == (401, "store signature verification failed")  # no write flag
    revoke = await rpc(first, "revoke_subaccount", pubkey=owner_of(user), revoke=token_b64, timestamp=NOW_MS,
                       signature=sign(user, b"revoke_subaccount" + str(NOW_MS).encode() + token))  # fmt: skip
    assert revoke.status == 200, revoke
    after = await rpc(
        first,
        "retrieve",
        pubkey=owner_of(user),
        timestamp=NOW_MS,
        signature=sign(reader, f"retrieve{NOW_MS}"),
        **sub,
    )
    assert (after.status, after.body) == (401, "retrieve signature verification failed")


async def test_revocations_refuse_a_timestamp_outside_60_seconds(
    pair: tuple[StorageService, StorageService],
) -> None:
    first, _ = pair
    user = account_in(MY_SWARM, 13)
    token = bytes([0x05, 0x01, 0, 0]) + ed25519.SigningKey(b"\x47" * 32).public_key
    for name, field in (("revoke_subaccount", "revoke"), ("unrevoke_subaccount", "unrevoke")):
        for ts in (NOW_MS - 61_000, NOW_MS + 61_000):
            reply = await rpc(first, name, pubkey=owner_of(user), timestamp=ts, **{field: token.hex()},
                              signature=sign(user, name.encode() + str(ts).encode() + token))  # fmt: skip
            assert (reply.status, reply.body) == (406, f"{name} timestamp too far from current time")
    assert not first.store.is_revoked(bytes.fromhex(owner_of(user)), token)


async def test_batch_sequence_and_ifelse(pair: tuple[StorageService, StorageService]) -> None:
    first, _ = pair
    user = account_in(MY_SWARM, 9)
    good = {"method": "store", "params": store_params(user, b"a")}
    failing = {"method": "store", "params": store_params(user, b"b", namespace=42)}
    batch = await rpc(first, "batch", requests=[good, failing, {"method": "info", "params": {}}])
    assert isinstance(batch.body, dict) and [r["code"] for r in batch.body["results"]] == [200, 401, 200]
    sequence = await rpc(first, "sequence", requests=[failing, good])
    assert isinstance(sequence.body, dict) and [r["code"] for r in sequence.body["results"]] == [401]
    assert (
        await rpc(first, "batch", requests=[])
    ).body == 'invalid request: Invalid batch request: no valid "requests" field'
    nested = await rpc(first, "batch", requests=[{"method": "batch", "params": {}}])
    assert (
        nested.body == "invalid request: Invalid batch subrequest: subrequests may not contain meta-requests"
    )
    choice = await rpc(
        first, "ifelse", **{"if": {"height_at_least": 50}, "then": {"method": "info", "params": {}}}
    )
    assert (
        isinstance(choice.body, dict)
        and choice.body["condition"] is True
        and choice.body["result"]["code"] == 200
    )
    other = await rpc(
        first, "ifelse", **{"if": {"hf_before": [19, 0]}, "then": {"method": "info", "params": {}}}
    )
    assert isinstance(other.body, dict) and other.body["condition"] is False and "result" not in other.body


async def test_ifelse_refuses_a_condition_of_the_wrong_type(
    pair: tuple[StorageService, StorageService],
) -> None:
    first, _ = pair
    then = {"method": "info", "params": {}}
    cases = [
        ({"hf_at_least": ["a"]}, "Invalid value given for 'hf_at_least': expected integer array"),
        ({"hf_before": [19, None]}, "Invalid value given for 'hf_before': expected integer array"),
        ({"v_at_least": {"major": 2}}, "Invalid value given for 'v_at_least': expected integer array"),
        ({"v_before": [2, 8.5]}, "Invalid value given for 'v_before': expected integer array"),
        ({"hf_at_least": [True]}, "Invalid value given for 'hf_at_least': expected integer array"),
        ({"height_at_least": "50"}, "Invalid value given for 'height_at_least': expected integer"),
        ({"hf_at_least": []}, 'Invalid ifelse request: must specify at least one "if" condition'),
    ]
    for condition, text in cases:
        reply = await rpc(first, "ifelse", **{"if": condition, "then": then})
        assert (reply.status, reply.body) == (400, "invalid request: " + text), condition
    # as the storage server reads them: one integer is a one-part version, missing parts are 0
    for condition, outcome in (({"hf_at_least": 19}, True), ({"v_before": [2, 8]}, False),
                               ({"v_at_least": [2, 8, 0, 9]}, True), ({"hf_before": [19, 5]}, True)):  # fmt: skip
        reply = await rpc(first, "ifelse", **{"if": condition, "then": then})
        assert isinstance(reply.body, dict) and reply.body["condition"] is outcome, condition


async def test_delete_before_unrevoke_and_multi_expiry(pair: tuple[StorageService, StorageService]) -> None:
    first, _ = pair
    user = account_in(MY_SWARM, 10)
    owner_hex = owner_of(user)
    hashes = [  # three messages stored at different times
        await stored_hash(first, user, bytes([i]), timestamp=NOW_MS + offset)
        for i, offset in enumerate((-5_000, -3_000, -1_000))
    ]
    before = NOW_MS - 2_000
    reply = await rpc(
        first,
        "delete_before",
        pubkey=owner_hex,
        before=before,
        signature=sign(user, f"delete_before{before}"),
    )
    assert isinstance(reply.body, dict)
    mine = reply.body["swarm"][first.node_key.public_key.hex()]
    assert mine["deleted"] == sorted(hashes[:2])
    text = owner_hex + str(before) + "".join(sorted(hashes[:2]))
    assert ed25519.verify(first.node_key.public_key, text.encode(), base64.b64decode(mine["signature"]))
    future = NOW_MS + 61_000
    late = await rpc(
        first,
        "delete_before",
        pubkey=owner_hex,
        before=future,
        signature=sign(user, f"delete_before{future}"),
    )
    assert (late.status, late.body) == (401, "delete_before timestamp too far in the future")
    # expire with one expiry per message, shortening only
    more = await stored_hash(first, user, b"more")
    targets = sorted([hashes[2], more])
    expiries = [NOW_MS + 20_000, NOW_MS + 90_000]  # the second would lengthen: left unchanged
    text = "expireshorten" + "".join(str(e) for e in expiries) + "".join(targets)
    reply = await rpc(
        first,
        "expire",
        pubkey=owner_hex,
        messages=targets,
        expiry=expiries,
        shorten=True,
        signature=sign(user, text),
    )
    assert reply.status == 200 and isinstance(reply.body, dict)
    mine = reply.body["swarm"][first.node_key.public_key.hex()]
    assert mine["updated"] == [targets[0]] and mine["expiry"] == [expiries[0]]
    current = {hashes[2]: NOW_MS - 1_000 + 60_000, more: NOW_MS + 60_000}
    assert mine["unchanged"] == {targets[1]: current[targets[1]]}
    mismatch = await rpc(
        first,
        "expire",
        pubkey=owner_hex,
        messages=targets,
        expiry=expiries[:1] * 3,
        signature=sign(user, "x"),
    )
    assert (
        mismatch.body == "invalid request: 'expiry' must be a single expiry, or the same length as 'messages'"
    )
    # unrevoke counts what it restored
    token = bytes([0x05, 0x01, 0, 0]) + ed25519.SigningKey(b"\x45" * 32).public_key
    signed = b"revoke_subaccount" + str(NOW_MS).encode() + token
    await rpc(
        first,
        "revoke_subaccount",
        pubkey=owner_hex,
        revoke=token.hex(),
        timestamp=NOW_MS,
        signature=sign(user, signed),
    )
    unsigned = b"unrevoke_subaccount" + str(NOW_MS).encode() + token
    reply = await rpc(
        first,
        "unrevoke_subaccount",
        pubkey=owner_hex,
        unrevoke=token.hex(),
        timestamp=NOW_MS,
        signature=sign(user, unsigned),
    )
    assert isinstance(reply.body, dict) and reply.body["swarm"][first.node_key.public_key.hex()]["count"] == 1
    assert not first.store.is_revoked(bytes.fromhex(owner_hex), token)


async def test_oxend_request_allows_two_chain_reads(tmp_path: Path) -> None:
    calls = []

    def oxend(endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        calls.append((endpoint, params))
        if params.get("fail"):
            raise ValueError("no such name")
        return {"status": "OK", "service_node_states": []}

    key = ed25519.SigningKey(b"\x46" * 32)
    service = StorageService(MessageStore(tmp_path / "m", sync=False), key, Swarms([key.public_key], [STRANGER.public_key]),
                             oxend=oxend, clock=lambda: NOW)  # fmt: skip
    reply = await rpc(service, "oxend_request", endpoint="get_service_nodes", params={"active_only": True})
    assert reply.status == 200 and isinstance(reply.body, dict) and reply.body["result"]["status"] == "OK"
    denied = await rpc(service, "oxend_request", endpoint="get_info")
    assert (denied.status, denied.body) == (400, "invalid request: Invalid oxend endpoint 'get_info'")
    failed = await rpc(service, "oxend_request", endpoint="ons_resolve", params={"fail": True})
    assert (failed.status, failed.body) == (400, "no such name")
    assert calls == [("get_service_nodes", {"active_only": True}), ("ons_resolve", {"fail": True})]


async def test_a_plain_expire_lists_every_matching_message_even_one_already_at_that_expiry(
    pair: tuple[StorageService, StorageService],
) -> None:
    """As the storage server (its update has a condition only for shorten or extend): a plain
    expire lists in ``updated`` a message whose expiry already equals the one asked; shorten and
    extend leave it in ``unchanged``."""
    first, _ = pair
    user = account_in(MY_SWARM, 6)
    owner_hex = owner_of(user)
    same, other = [await stored_hash(first, user, bytes([i])) for i in range(2)]
    at = NOW_MS + 60_000  # what store_params gave both (ttl 60 s)
    messages = sorted([same, other])
    for mode in ("shorten", "extend"):
        reply = await rpc(first, "expire", pubkey=owner_hex, messages=[same], expiry=at, **{mode: True},
                          signature=sign(user, f"expire{mode}{at}{same}"))  # fmt: skip
        assert isinstance(reply.body, dict), reply
        for result in reply.body["swarm"].values():
            assert result["updated"] == [] and result["unchanged"] == {same: at}
    reply = await rpc(first, "expire", pubkey=owner_hex, messages=messages, expiry=at,
                      signature=sign(user, f"expire{at}{''.join(messages)}"))  # fmt: skip
    assert isinstance(reply.body, dict), reply
    for member, result in reply.body["swarm"].items():
        assert result["updated"] == messages and result["expiry"] == at and "unchanged" not in result
        text = owner_hex + str(at) + "".join(messages) + "".join(messages)
        assert ed25519.verify(bytes.fromhex(member), text.encode(), base64.b64decode(result["signature"]))
    later = NOW_MS + 120_000  # and a plain expire to another time moves both, as before
    reply = await rpc(first, "expire", pubkey=owner_hex, messages=messages, expiry=later,
                      signature=sign(user, f"expire{later}{''.join(messages)}"))  # fmt: skip
    assert isinstance(reply.body, dict)
    assert all(r["updated"] == messages for r in reply.body["swarm"].values())
