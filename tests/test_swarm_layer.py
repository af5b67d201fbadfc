"""The swarm layer following membership changes, in process: a new swarm forms and the messages of
the accounts it now owns move to it (none lost, none left twice); a decommissioned node hands its
data over and stops serving; a member that was away pulls what it missed; a restart resumes at
the height the layer recorded."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appchain.messaging.http import HttpError
from appchain.messaging.layer import PEER_PATH, SwarmLayer
from appchain.messaging.store import MessageStore, compute_message_hash
from state.crypto import ed25519
from state.swarms import compute_swarm_space, find_swarm

NOW = 1_800_000_000.0
SWARM_A, SWARM_B = 0x2000_0000_0000_0000, 0xA000_0000_0000_0000


class Cluster:
    """Layers of ``count`` nodes that reach each other in process, by port."""

    def __init__(self, tmp_path: Path, count: int) -> None:
        self.keys = [ed25519.SigningKey(bytes([60 + i]) * 32) for i in range(count)]
        self.port = {bytes(k.public_key): 5000 + i for i, k in enumerate(self.keys)}
        self.down: set[int] = set()
        self.paths = [tmp_path / f"node{i}" for i in range(count)]
        self.layers = [self._layer(i) for i in range(count)]

    def _layer(self, index: int) -> SwarmLayer:
        store = MessageStore(self.paths[index], sync=False)
        return SwarmLayer(
            store,
            self.keys[index],
            self._contact,
            clock=lambda: NOW,
            transport=self._post,
            is_node=lambda key: key in self.port,
        )

    def _contact(self, node_key: bytes) -> tuple[str, int, int] | None:
        port = self.port.get(node_key)
        return None if port is None else ("127.0.0.1", port, port + 1)

    async def _post(self, host: str, port: int, path: str, body: bytes, **options: Any) -> tuple[int, bytes]:
        index = port - 5000
        if index in self.down:
            raise HttpError(f"{host}:{port}: connection refused")
        assert path == PEER_PATH
        headers = options["headers"]
        reply = await self.layers[index].handle_peer(body, headers["x-node-key"], headers["x-node-signature"])
        payload, _ = reply.encode()
        return reply.status, payload

    def restart(self, index: int) -> None:
        self.layers[index].store.close()
        self.layers[index] = self._layer(index)

    def key(self, index: int) -> bytes:
        return bytes(self.keys[index].public_key)

    async def follow(self, height: int, membership: dict[bytes, int]) -> None:
        for index, layer in enumerate(self.layers):
            if index not in self.down:
                await layer.follow(height, height.to_bytes(32, "big"), membership)

    def holders(self) -> dict[bytes, set[int]]:
        """Message hash → the nodes holding it."""
        out: dict[bytes, set[int]] = {}
        for index, layer in enumerate(self.layers):
            for message in layer.store.all_messages():
                out.setdefault(message.hash, set()).add(index)
        return out


def accounts(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [b"\x05" + rng.randbytes(32) for _ in range(count)]


async def store(layer: SwarmLayer, owner: bytes, data: bytes) -> dict[str, Any]:
    params = {
        "pubkey": owner.hex(),
        "timestamp": int(NOW * 1000),
        "ttl": 3_600_000,
        "data": base64.b64encode(data).decode(),
    }
    reply = await layer.service.handle_body(json.dumps({"method": "store", "params": params}).encode())
    assert reply.status == 200, reply
    assert isinstance(reply.body, dict)
    return reply.body


def owning(membership: dict[bytes, int], owner: bytes) -> int:
    return find_swarm(sorted(set(membership.values())), compute_swarm_space(owner))


def peer_request(
    key: ed25519.SigningKey, method: str, params: Any, sent_at: int | None = None
) -> tuple[bytes, str, str]:
    """A ``/storage_cc/v1`` body from ``key`` and its headers (node key, signature)."""
    at = int(NOW * 1000) if sent_at is None else sent_at
    body = json.dumps({"method": method, "params": params, "t": at}).encode()
    return body, key.public_key.hex(), base64.b64encode(key.sign(body)).decode()


def wire(owner: bytes, data: bytes, namespace: int = 0) -> list[Any]:
    """A message as ``push`` and ``pull`` carry it."""
    return [
        owner.hex(),
        namespace,
        int(NOW * 1000),
        int(NOW * 1000) + 60_000,
        base64.b64encode(data).decode(),
    ]


def rewrite(layer: SwarmLayer, method: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Make the answers ``layer`` receives to its ``method`` requests pass through ``change`` (a lying peer)."""
    honest = layer.transport

    async def post(host: str, port: int, path: str, body: bytes, **options: Any) -> tuple[int, bytes]:
        status, answer = await honest(host, port, path, body, **options)
        if json.loads(body)["method"] == method and status == 200:
            answer = json.dumps(change(json.loads(answer))).encode()
        return status, answer

    layer.transport = post


async def test_a_new_swarm_takes_its_accounts_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 14)
    first = {cluster.key(i): SWARM_A for i in range(12)}  # twelve nodes, one swarm; two not yet active
    await cluster.follow(8, first)
    owners = accounts(40, 1)
    expected = {}
    for n, owner in enumerate(owners):
        body = await store(cluster.layers[n % 12], owner, f"message {n}".encode())
        expected[base64.b64decode(body["hash"] + "=")] = owner
        assert len(body["swarm"]) == 12  # replicated to the whole swarm
    assert all(holders == set(range(12)) for holders in cluster.holders().values())
    # two nodes join and the chain forms a second swarm of seven out of the fourteen
    second = {cluster.key(i): (SWARM_A if i < 7 else SWARM_B) for i in range(14)}
    await cluster.follow(12, second)
    await cluster.follow(16, second)  # a later height: the joiners' pulls and any retries settle
    holders = cluster.holders()
    assert set(holders) == set(expected)  # nothing lost
    moved = 0
    for digest, owner in expected.items():
        swarm = owning(second, owner)
        members = {i for i in range(14) if second[cluster.key(i)] == swarm}
        assert holders[digest] == members, (swarm, holders[digest])  # all owners hold it, nobody else
        moved += swarm == SWARM_B
    assert 0 < moved < len(expected)
    # both swarms answer for their own accounts only
    for owner in owners[:6]:
        swarm = owning(second, owner)
        outsider = cluster.layers[0 if swarm == SWARM_B else 13]
        params = {"pubkey": owner.hex(), "timestamp": int(NOW * 1000), "ttl": 60_000, "data": "eA=="}
        reply = await outsider.service.call("store", params)
        assert reply.status == 421 and isinstance(reply.body, dict) and reply.body["swarm"] == f"{swarm:x}"


async def test_a_decommissioned_node_hands_over_and_stops_serving(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 6)
    membership = {cluster.key(i): SWARM_A for i in range(6)}
    await cluster.follow(4, membership)
    owner = accounts(1, 2)[0]
    body = await store(cluster.layers[5], owner, b"keep me")
    digest = base64.b64decode(body["hash"] + "=")
    # node 5 leaves (decommissioned) while node 4 is down: node 5 keeps its copy until every
    # owner confirmed, so nothing is lost even if the others had not replicated it
    for index in range(5):
        cluster.layers[index].store.delete_hashes(owner, [digest])
    cluster.down.add(4)
    after = {cluster.key(i): SWARM_A for i in range(5)}
    await cluster.follow(8, after)
    assert cluster.layers[5].store.locate(digest) is not None  # node 4 could not confirm yet
    params = {"pubkey": owner.hex(), "timestamp": int(NOW * 1000), "ttl": 60_000, "data": "eA=="}
    refused = await cluster.layers[5].service.call("store", params)
    assert refused.status == 421  # it no longer serves
    cluster.down.clear()
    await cluster.follow(12, after)
    assert cluster.layers[5].store.locate(digest) is None  # handed over, then dropped
    assert cluster.holders()[digest] == {0, 1, 2, 3, 4}


async def test_a_member_that_was_down_pulls_what_it_missed_and_resumes_where_it_stopped(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, 5)
    membership = {cluster.key(i): SWARM_A for i in range(5)}
    await cluster.follow(4, membership)
    cluster.down.add(2)
    owner = accounts(1, 3)[0]
    body = await store(cluster.layers[0], owner, b"while you were out")
    assert body["swarm"][cluster.key(2).hex()] == {"failed": True, "bad_peer_response": True} or body[
        "swarm"
    ][cluster.key(2).hex()].get("failed")
    digest = base64.b64decode(body["hash"] + "=")
    assert cluster.layers[2].store.locate(digest) is None
    cluster.down.clear()
    cluster.restart(2)
    assert cluster.layers[2].followed_height == 4  # resumes from the recorded height, not the tip
    cluster.layers[2].on_final(4, bytes(32), membership)  # an old height is never processed twice
    await cluster.layers[2].follow(8, (8).to_bytes(32, "big"), membership)  # the first height after restart
    assert cluster.layers[2].store.locate(digest) is not None and cluster.layers[2].pulled == 1
    assert cluster.layers[2].store.followed().height == 8  # type: ignore[union-attr]


async def test_peer_requests_must_be_signed_by_a_member(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3)
    await cluster.follow(4, {cluster.key(i): SWARM_A for i in range(3)})
    owner = accounts(1, 4)[0]
    data = b"forged"
    item = [owner.hex(), 0, int(NOW * 1000), int(NOW * 1000) + 60_000, base64.b64encode(data).decode()]
    body = json.dumps({"method": "push", "params": {"messages": [item]}, "t": int(NOW * 1000)}).encode()
    stranger = ed25519.SigningKey(b"\x99" * 32)
    signature = base64.b64encode(stranger.sign(body)).decode()
    reply = await cluster.layers[0].handle_peer(body, stranger.public_key.hex(), signature)
    assert reply.status == 401
    member = cluster.keys[1]
    wrong = base64.b64encode(member.sign(body + b"x")).decode()
    assert (await cluster.layers[0].handle_peer(body, member.public_key.hex(), wrong)).status == 401
    good = base64.b64encode(member.sign(body)).decode()
    assert (await cluster.layers[0].handle_peer(body, member.public_key.hex(), good)).status == 200
    assert cluster.layers[0].store.locate(compute_message_hash(owner, 0, data)) is not None
    stale = json.dumps(
        {"method": "push", "params": {"messages": [item]}, "t": int(NOW * 1000) - 61_000}
    ).encode()
    late = base64.b64encode(member.sign(stale)).decode()
    assert (await cluster.layers[0].handle_peer(stale, member.public_key.hex(), late)).status == 406


async def test_a_peer_confirming_hashes_that_do_not_parse_confirms_nothing(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 6)
    await cluster.follow(4, {cluster.key(i): SWARM_A for i in range(6)})
    split = {cluster.key(i): (SWARM_A if i < 3 else SWARM_B) for i in range(6)}
    owner = next(o for o in accounts(50, 6) if owning(split, o) == SWARM_B)
    body = await store(cluster.layers[0], owner, b"move me")
    digest = base64.b64decode(body["hash"] + "=")
    rewrite(cluster.layers[0], "push", lambda _: {"held": ["A" * 42, "!" * 43, 7]})
    await cluster.follow(8, split)  # a binascii.Error escaped from here
    assert cluster.layers[0].followed_height == 8
    assert cluster.layers[0].store.locate(digest) is not None  # not confirmed: the copy stays
    assert cluster.holders()[digest] == {0, 3, 4, 5}  # nodes 1 and 2 handed over to honest answers
    cluster.layers[0].transport = cluster._post
    await cluster.follow(12, split)
    assert cluster.holders()[digest] == {3, 4, 5}


async def test_malformed_pulled_messages_are_skipped_and_counted(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 5)
    membership = {cluster.key(i): SWARM_A for i in range(5)}
    await cluster.follow(4, membership)
    cluster.down.add(2)
    owner = accounts(1, 7)[0]
    body = await store(cluster.layers[0], owner, b"pulled")
    digest = base64.b64decode(body["hash"] + "=")
    cluster.down.clear()
    layer = cluster.layers[2]
    logs: list[tuple[Any, ...]] = []
    layer.log = lambda *args, **kwargs: logs.append((*args, kwargs))
    junk: list[Any] = [
        ["zz", 0, 1, 2, "eA=="],  # owner not hex
        [owner.hex(), 0, 1, 2, "not base64!"],
        [owner.hex(), 0, 1, 2**70, "eA=="],  # an expiry the store cannot encode
        [owner.hex(), 0, "1", 2, "eA=="],
        [owner.hex(), 0, 1],
        "junk",
    ]
    rewrite(layer, "pull", lambda answer: {**answer, "messages": junk + answer["messages"]})
    await layer.follow(8, (8).to_bytes(32, "big"), membership)  # a ValueError escaped from here
    assert layer.store.locate(digest) is not None and layer.pulled == 1  # the good one is taken
    assert layer.malformed == len(junk) * 4  # from each of the four other members
    warnings = [entry for entry in logs if entry[:2] == ("warn", "pulled messages malformed")]
    assert len(warnings) == 4 and all(entry[2]["messages"] == len(junk) for entry in warnings)
    assert [m.stored.data for m in layer.store.all_messages()] == [b"pulled"]


async def test_a_push_with_a_malformed_message_is_refused(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3)
    await cluster.follow(4, {cluster.key(i): SWARM_A for i in range(3)})
    owner = accounts(1, 8)[0]
    for item in (
        [*wire(owner, b"x")[:3], 2**70, "eA=="],
        [*wire(owner, b"x")[:2], True, 2, "eA=="],
        {"a": 1},
    ):
        reply = await cluster.layers[0].handle_peer(
            *peer_request(cluster.keys[1], "push", {"messages": [item]})
        )
        assert (reply.status, reply.body) == (400, "push: a message is malformed"), item
    # an expiry too large for a float: 1e400 (int() of it as infinity raised OverflowError) is
    # refused with the body, as no JSON number we read
    text = json.dumps({"method": "push", "params": {"messages": [wire(owner, b"x")]}, "t": int(NOW * 1000)})
    body = text.replace(str(int(NOW * 1000) + 60_000), "1e400").encode()
    signature = base64.b64encode(cluster.keys[1].sign(body)).decode()
    reply = await cluster.layers[0].handle_peer(body, cluster.keys[1].public_key.hex(), signature)
    assert reply.status == 400
    assert cluster.layers[0].malformed == 3 and not list(cluster.layers[0].store.all_messages())


async def test_a_pull_from_outside_the_swarm_and_a_push_of_a_foreign_account(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 6)
    split = {cluster.key(i): (SWARM_A if i < 3 else SWARM_B) for i in range(6)}
    await cluster.follow(4, split)
    asked = cluster.layers[0]
    reply = await asked.handle_peer(*peer_request(cluster.keys[3], "pull", {"swarm": SWARM_A, "after": ""}))
    assert (reply.status, reply.body) == (403, "pull: the asking node is not a member of that swarm")
    foreign = next(o for o in accounts(50, 9) if owning(split, o) == SWARM_B)
    reply = await asked.handle_peer(
        *peer_request(cluster.keys[3], "push", {"messages": [wire(foreign, b"x")]})
    )
    assert (reply.status, reply.body) == (200, {"held": []})  # dropped: not this swarm's account
    assert not list(asked.store.all_messages())


@pytest.mark.parametrize("size", [5])
async def test_store_is_idempotent_across_members(tmp_path: Path, size: int) -> None:
    cluster = Cluster(tmp_path, size)
    await cluster.follow(4, {cluster.key(i): SWARM_A for i in range(size)})
    owner = accounts(1, 5)[0]
    first = await store(cluster.layers[0], owner, b"once")
    again = await store(cluster.layers[3], owner, b"once")  # a replayed store through another member
    assert first["hash"] == again["hash"]
    assert all(r.get("already") for r in again["swarm"].values())
    assert all(len(list(layer.store.all_messages())) == 1 for layer in cluster.layers)
