"""The swarm layer: it follows the chain's swarms and keeps each message with the swarm that owns it.

It never decides membership: the chain does (``state.swarms``), and the layer reads it at the
**final** height only, so a reorg of the non-final tail never moves a message. The node hands it
each new final height with the membership at that height (:meth:`SwarmLayer.on_final`, through a
bounded trio channel); the layer then

1. takes the new membership as its view (who owns which account, who its swarm's members are);
2. hands over what it no longer owns: the messages of every account whose owning swarm is not
   its own go to that swarm's members, and it drops its copies only once every one of them
   confirmed it holds them (a member that did not answer keeps the copies here until a later
   height succeeds). This runs when the membership changed, after a start, or when an earlier
   hand-over left copies here: otherwise no account another swarm owns can have messages here;
3. when its own swarm changed (it joined one, or came back after being down), asks the other
   members for the messages of the accounts the swarm owns;
4. records the height and membership it processed in the message store, in the batch that drops
   the handed-over copies (:meth:`MessageStore.follow`), so a restart resumes from there.

Nodes reach each other at ``POST /storage_cc/v1`` on the storage port (the storage server's
``sn.storage_cc`` and ``sn.data``, over HTTPS here: :mod:`appchain.messaging.http`): the body is
signed with the sender's node key (headers ``X-Node-Key`` and ``X-Node-Signature``), carries its
time in ``t`` (±60 s), and the sender must be a registered service node (a decommissioned one
still hands its data over). Methods: a recursive client request forwarded by the member that
received it; ``push`` (messages handed over); ``pull`` (the messages of one swarm's accounts, a page
at a time).
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import trio

from appchain.home.boundary import Faults
from appchain.home.tls import client_context
from appchain.messaging.http import ConnectionPool, HttpError, HttpTimeout
from appchain.messaging.onion import ONION_PATH, Answer, OnionProcessor
from appchain.messaging.relay import HOP_TIMEOUT, OutsideRelay
from appchain.messaging.requests import Reply
from appchain.messaging.rpc import StorageService
from appchain.messaging.store import (
    Followed,
    Message,
    MessageStore,
    Stored,
    compute_message_hash,
    hash_bytes,
    hash_text,
)
from appchain.messaging.swarm import Member, Oxend, PeerFailed
from state.crypto import ed25519
from state.encoding import DecodeError, decode_json
from state.swarms import compute_swarm_space, find_swarm

PEER_PATH = "/storage_cc/v1"
PEER_TOLERANCE_MS = 60_000
PUSH_BATCH = 50
"""Messages per hand-over request: at most 50 x 100 KB of base64, under the 10 MiB body limit."""
PAGE_BYTES = 4 * 1024 * 1024
"""A pull answer stops adding accounts past this many bytes of message data."""
SWEEP_SECONDS = 10.0

Contact = tuple[str, int, int]
"""(ip, storage port, p2p port) of a node, from its uptime proof."""

Logger = Callable[..., None]
Transport = Callable[..., Awaitable[tuple[int, bytes]]]
"""How a node posts to another: :meth:`appchain.messaging.http.ConnectionPool.post` (tests route
in process)."""


class SwarmLayer:
    """The message store, the storage RPC and the swarm view of one node."""

    def __init__(
        self,
        store: MessageStore,
        node_key: ed25519.SigningKey,
        contact_of: Callable[[bytes], Contact | None],
        *,
        log: Logger | None = None,
        oxend: Oxend | None = None,
        clock: Callable[[], float] = time.time,
        transport: Transport | None = None,
        is_node: Callable[[bytes], bool],
        faults: Faults | None = None,
        outside: OutsideRelay | None = None,
    ) -> None:
        self.pool = ConnectionPool(client_context())
        self.transport = transport or self.pool.post
        self.is_node = is_node
        """Whether a key is a registered service node (decommissioned ones hand over their data)."""
        self.store = store
        self.node_key = node_key
        self.contact_of = contact_of
        self.log = log or (lambda *args, **kwargs: None)
        self.faults = faults or Faults(self.log)
        """Where this layer's loops are supervised (:mod:`appchain.home.boundary`): the node's."""
        self.clock = clock
        self.membership: dict[bytes, int] = {}
        self._swarm_ids: list[int] = []
        self._member_keys: dict[int, tuple[bytes, ...]] = {}
        self._set_membership(store.membership())
        followed = store.followed()
        self.followed_height = -1 if followed is None else followed.height
        self.service = StorageService(store, node_key, self, forward=self._call, oxend=oxend, clock=clock)
        self.outside = outside or OutsideRelay(log=self.log)
        """Onion requests to outside servers (the node's ``[onion]`` settings)."""
        self.onion = OnionProcessor(
            node_key, self._run_storage, self._relay_onion, self._known, log=self.log, outside=self.outside
        )
        self._finals_in, self._finals_out = trio.open_memory_channel[tuple[int, bytes, dict[bytes, int]]](64)
        self._pull_needed = True  # a start is a comeback: ask the swarm for what was missed
        self._hand_over_needed = True  # and copies left behind before a stop are handed over again
        self.pulled = 0
        self.malformed = 0
        """Messages refused as malformed: a push holding one, or skipped in a pull answer."""

    # -- the directory the storage RPC reads --------------------------------------------------

    def _set_membership(self, membership: Mapping[bytes, int]) -> None:
        """Take ``membership`` as the view, with the lookups derived from it (once per change:
        they are read per storage request and per message handed over, pulled or pushed)."""
        self.membership = dict(membership)
        by_swarm: dict[int, list[bytes]] = {}
        for key, swarm in self.membership.items():
            by_swarm.setdefault(swarm, []).append(key)
        self._swarm_ids = sorted(by_swarm)
        self._member_keys = {swarm: tuple(sorted(keys)) for swarm, keys in by_swarm.items()}

    def owning_swarm(self, owner: bytes) -> int | None:
        ids = self._swarm_ids
        return find_swarm(ids, compute_swarm_space(owner)) if ids else None

    def member_keys(self, swarm_id: int) -> Sequence[bytes]:
        return self._member_keys.get(swarm_id, ())

    def members(self, swarm_id: int) -> list[Member]:
        out = []
        for key in self.member_keys(swarm_id):
            contact = self.contact_of(key)
            if contact is not None:
                out.append(Member(key, contact[0], contact[1]))
        return out

    def my_swarm(self) -> int | None:
        return self.membership.get(bytes(self.node_key.public_key))

    def height(self) -> int:
        return max(self.followed_height, 0)

    # -- following the chain ------------------------------------------------------------------

    def on_final(self, height: int, block_hash: bytes, membership: dict[bytes, int]) -> None:
        """A new final height and the membership at it (from the node's chain)."""
        if height <= self.followed_height:
            return  # already processed (a restart never processes a height twice)
        # when the layer is behind, the next final height carries the newer membership
        with contextlib.suppress(trio.WouldBlock):
            self._finals_in.send_nowait((height, block_hash, membership))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.faults.supervise, "sweep", self._sweep_loop)
            nursery.start_soon(self.faults.supervise, "follow", self._follow_loop)
            task_status.started()

    async def _follow_loop(self) -> None:
        async for height, block_hash, membership in self._finals_out:
            while True:  # only the newest final height matters
                try:
                    height, block_hash, membership = self._finals_out.receive_nowait()
                except trio.WouldBlock:
                    break
            await self.follow(height, block_hash, membership)

    async def follow(self, height: int, block_hash: bytes, membership: dict[bytes, int]) -> None:
        before = self.my_swarm()
        before_members = set(self.member_keys(before)) if before is not None else set()
        if membership != self.membership:
            self._set_membership(membership)
            self._hand_over_needed = True
        mine = self.my_swarm()
        if mine != before or (mine is not None and set(self.member_keys(mine)) - before_members):
            self._pull_needed = True
        dropped: list[Message] = []
        if self._hand_over_needed:
            # with the same membership, only copies an earlier hand-over left here can be another
            # swarm's: this node takes no message of an account its swarm does not own
            dropped, self._hand_over_needed = await self._hand_over()
        if self._pull_needed and mine is not None:
            self._pull_needed = not await self._pull(mine)
        self.store.follow(Followed(height, block_hash), self.membership, dropped)
        self.followed_height = height
        if dropped:
            self.log("info", "messages handed over", height=height, messages=len(dropped))

    async def _hand_over(self) -> tuple[list[Message], bool]:
        """Copies of accounts another swarm owns, each confirmed by all of its members; and
        whether copies were left behind (a member not reachable, or not confirming)."""
        mine = self.my_swarm()
        dropped: list[Message] = []
        left = False
        for owner in list(self.store.owners()):
            swarm = self.owning_swarm(owner)
            if swarm is None or swarm == mine:
                continue
            messages = list(self.store.messages(owner))
            targets = self.members(swarm)
            if not targets or len(targets) < len(self.member_keys(swarm)):
                left = True
                continue  # a member we cannot reach yet: keep the copies
            hashes = {m.hash for m in messages}
            confirmed = True
            for member in targets:
                held = await self._push(member, messages)
                confirmed = confirmed and held >= hashes
            if confirmed:
                dropped.extend(messages)
            else:
                left = True
        return dropped, left

    async def _push(self, member: Member, messages: list[Message]) -> set[bytes]:
        """Send ``messages`` to ``member``; the hashes it confirmed it holds."""
        held: set[bytes] = set()
        for start in range(0, len(messages), PUSH_BATCH):
            chunk = messages[start : start + PUSH_BATCH]
            try:
                answer = await self._call(member, "push", {"messages": [_wire(m) for m in chunk]})
            except (HttpError, PeerFailed) as exc:
                self.log("warn", "hand-over refused", member=member.ed25519.hex()[:12], reason=str(exc))
                return held
            confirmed = answer.get("held")
            if not isinstance(confirmed, list):
                self.log("warn", "hand-over answer malformed", member=member.ed25519.hex()[:12])
                return held
            # a hash that does not parse confirms nothing
            held.update(d for d in (hash_bytes(h) for h in confirmed if isinstance(h, str)) if d is not None)
        return held

    async def _pull(self, swarm: int) -> bool:
        """Ask the other members for the swarm's messages; True if every one answered."""
        me = bytes(self.node_key.public_key)
        others = [key for key in self.member_keys(swarm) if key != me]
        reachable = [m for m in self.members(swarm) if m.ed25519 != me]
        complete = len(reachable) == len(others)  # no uptime proof from one yet: ask again later
        for member in reachable:
            cursor = ""
            while True:
                try:
                    answer = await self._call(member, "pull", {"swarm": swarm, "after": cursor})
                except (HttpError, PeerFailed):
                    complete = False
                    break
                items = answer.get("messages")
                if not isinstance(items, list):
                    self.log("warn", "pull answer malformed", member=member.ed25519.hex()[:12])
                    complete = False
                    break
                received, malformed = _unwire_all(items)
                if malformed:
                    self.malformed += malformed
                    self.log(
                        "warn",
                        "pulled messages malformed",
                        member=member.ed25519.hex()[:12],
                        messages=malformed,
                    )
                self.pulled += self.store.copy_in(
                    (owner, ns, stored) for owner, ns, stored in received if self.owning_swarm(owner) == swarm
                )
                previous, cursor = cursor, answer.get("next") or ""
                if not isinstance(cursor, str) or (cursor and cursor <= previous):
                    complete = False  # not an account after the last one: the pages would never end
                    break
                if not cursor:
                    break
        return complete

    async def _sweep_loop(self) -> None:
        while True:
            await trio.sleep(SWEEP_SECONDS)
            self.store.sweep(int(self.clock() * 1000))

    # -- talking to other nodes ---------------------------------------------------------------

    async def _call(self, member: Member, method: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"method": method, "params": params, "t": int(self.clock() * 1000)}).encode()
        headers = {
            "content-type": "application/json",
            "x-node-key": self.node_key.public_key.hex(),
            "x-node-signature": base64.b64encode(self.node_key.sign(body)).decode(),
        }
        status, answer = await self.transport(member.ip, member.port_https, PEER_PATH, body, headers=headers)
        if status != 200:
            raise PeerFailed(status, answer.decode(errors="replace"))
        try:
            parsed = decode_json(answer)
        except DecodeError as exc:
            raise PeerFailed(status, f"not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise PeerFailed(status, "not a JSON object")
        return parsed

    async def _run_storage(self, request: bytes) -> tuple[int, Any]:
        reply = await self.service.handle_body(request)
        return reply.status, reply.body

    def _known(self, node_key: bytes) -> bool:
        return self.contact_of(node_key) is not None

    async def _relay_onion(self, node_key: bytes, body: bytes) -> Answer:
        contact = self.contact_of(node_key)
        if contact is None:
            return 502, f"Next node not found: {node_key.hex()}".encode(), "text/plain"
        try:
            status, answer = await self.transport(
                contact[0], contact[1], ONION_PATH, body, timeout=HOP_TIMEOUT
            )
        except HttpTimeout:
            return 504, b"Request time out", "text/plain"
        except HttpError as exc:
            return 502, str(exc).encode(), "text/plain"
        return status, answer, "text/plain"

    async def handle_peer(self, body: bytes, node_key_hex: str, signature_b64: str) -> Reply:
        """A request from another node at ``/storage_cc/v1``."""
        try:
            sender = bytes.fromhex(node_key_hex)
            signature = base64.b64decode(signature_b64, validate=True)
        except ValueError:
            return Reply(401, "peer request: bad node key or signature")
        if not self.is_node(sender) or not ed25519.verify(sender, body, signature):
            return Reply(401, "peer request: not signed by a service node")
        try:
            request = decode_json(body)
        except DecodeError:
            return Reply(400, "invalid json")
        if not isinstance(request, dict) or not isinstance(request.get("params"), dict):
            return Reply(400, "invalid json")
        sent_at = request.get("t")
        if not isinstance(sent_at, int) or abs(sent_at - int(self.clock() * 1000)) > PEER_TOLERANCE_MS:
            return Reply(406, "peer request: timestamp too far from current time")
        method, params = request.get("method"), request["params"]
        if method == "push":
            return self._accept_push(params)
        if method == "pull":
            return self._serve_pull(sender, params)
        if not isinstance(method, str):
            return Reply(400, "invalid json: no `method` field")
        return await self.service.call(method, params, forwarded=True)

    def _accept_push(self, params: dict[str, Any]) -> Reply:
        items = params.get("messages")
        if not isinstance(items, list):
            return Reply(400, "push: messages must be a list")
        mine = self.my_swarm()
        received, malformed = _unwire_all(items)
        if malformed:
            self.malformed += malformed
            return Reply(400, "push: a message is malformed")
        wanted = [(o, ns, s) for o, ns, s in received if mine is not None and self.owning_swarm(o) == mine]
        self.store.copy_in(wanted)
        held = [hash_text(s.hash) for _, _, s in wanted if self.store.locate(s.hash) is not None]
        return Reply(200, {"held": held})

    def _serve_pull(self, sender: bytes, params: dict[str, Any]) -> Reply:
        swarm, after = params.get("swarm"), params.get("after", "")
        if not isinstance(swarm, int) or not isinstance(after, str):
            return Reply(400, "pull: swarm must be an id and after an account")
        if self.membership.get(sender) != swarm:
            return Reply(403, "pull: the asking node is not a member of that swarm")
        messages: list[list[Any]] = []
        try:
            cursor = bytes.fromhex(after)
        except ValueError:
            return Reply(400, "pull: after must be an account in hex")
        next_owner, size = "", 0
        for owner in self.store.owners():
            if owner <= cursor or self.owning_swarm(owner) != swarm:
                continue
            if size >= PAGE_BYTES:
                next_owner = messages[-1][0]
                break
            for message in self.store.messages(owner):
                messages.append(_wire(message))
                size += len(message.stored.data)
        return Reply(200, {"messages": messages, "next": next_owner})


def _wire(message: Message) -> list[Any]:
    stored = message.stored
    return [
        message.owner.hex(),
        message.namespace,
        stored.timestamp,
        stored.expiry,
        base64.b64encode(stored.data).decode(),
    ]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unwire(item: Any) -> tuple[bytes, int, Stored]:
    """A message as :func:`_wire` sends it; ``ValueError`` if ``item`` is not one."""
    if not isinstance(item, list) or len(item) != 5:
        raise ValueError("not a message")
    owner_hex, namespace, timestamp, expiry, data_b64 = item
    if not (isinstance(owner_hex, str) and isinstance(data_b64, str)):
        raise ValueError("not a message")
    if not (_is_int(namespace) and _is_int(timestamp) and _is_int(expiry)):
        raise ValueError("not a message")
    if not (0 <= timestamp < 1 << 63 and 0 <= expiry < 1 << 63):  # what the store can key and encode
        raise ValueError("not a message")
    owner = bytes.fromhex(owner_hex)
    if len(owner) != 33 or not -32768 <= namespace <= 32767:
        raise ValueError("not a message")
    data = base64.b64decode(data_b64, validate=True)  # binascii.Error is a ValueError
    # the wire carries no hash: it is computed here, once, and the store takes it as is
    return owner, namespace, Stored(compute_message_hash(owner, namespace, data), timestamp, expiry, data)


def _unwire_all(items: list[Any]) -> tuple[list[tuple[bytes, int, Stored]], int]:
    """The messages of ``items`` that are well formed, and how many were not."""
    received = []
    malformed = 0
    for item in items:
        try:
            received.append(_unwire(item))
        except ValueError:
            malformed += 1
    return received, malformed
