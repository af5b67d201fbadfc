"""The storage RPC: ``POST /storage_rpc/v1`` as session-storage-server answers it.

A client written for the storage server must work unchanged, so this follows its request handler
(``oxenss/rpc/request_handler.cpp``, ``client_rpc_endpoints.cpp``, v2.8.0) to the byte: method
and parameter names, the strings requests and replies are signed over, HTTP status codes and the
plain-text error messages. The body is ``{"method": …, "params": {…}}``; a reply is JSON (keys
sorted, as nlohmann writes them) or, for an error, plain text with the status code.

Checks run in the server's order: the parameters (400), then whether this node's swarm owns the
account (421, with the owning swarm's members as ``get_swarm`` gives them), then timestamps (406),
then the signature (401). Methods that change messages (``store``, the deletes and expires, the
subaccount revocations) are *recursive*: the node that receives one from a client applies it and
forwards the same request to every other member of its swarm, each of which checks it again
(the client's signature travels with it) and signs its own result; the reply holds every
member's result under ``swarm``, keyed by Ed25519 key.

Account keys: ``pubkey`` is 66 hex digits, a network prefix byte and a 32-byte key. For a ``05``
(Session ID, X25519) key the request may name ``pubkey_ed25519``, which must convert to it, and
signs with that; otherwise the 32 key bytes themselves are the Ed25519 verification key.
Subaccount tokens (36 bytes: prefix, flags, two zero bytes, the subaccount's Ed25519 key), signed
by the account, let another key act with the flags' permissions until revoked.

This module is the service and its methods; a request's parameters are read by
:mod:`appchain.messaging.requests`, who may act on an account is :mod:`appchain.messaging.auth`,
and the swarm it answers for (members, the directory, forwarding) is
:mod:`appchain.messaging.swarm`.
"""

from __future__ import annotations

import base64
import time
from binascii import b2a_base64
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from appchain.messaging.auth import (
    DELETE,
    READ,
    WRITE,
    Auth,
    parse_auth,
    parse_pubkey_ed25519,
    parse_token,
    verify,
)
from appchain.messaging.requests import (
    Fail,
    Misdirected,
    Reply,
    bad,
    decode_base64,
    namespace_text,
    one_of,
    parse_conditions,
    parse_hashes,
    parse_integer,
    parse_namespace,
    parse_pubkey,
    parse_signature,
    parse_stringy_int,
    parse_timestamp,
    parse_valid_hashes,
)
from appchain.messaging.store import (
    ALL,
    RETRIEVE_MAX_SIZE,
    MessageStore,
    hash_bytes,
    hash_text,
    is_public_inbox,
    is_public_outbox,
)
from appchain.messaging.swarm import OXEND_ENDPOINTS, Directory, Forward, Member, Oxend, PeerFailed
from state.crypto import ed25519
from state.encoding import DecodeError, decode_json
from state.swarms import UNASSIGNED_SWARM_ID

VERSION = (2, 8, 0)
HARDFORK = (19, 4)
MAX_MESSAGE_BODY = 76_800
TTL_MINIMUM = 10_000
TTL_MAXIMUM = 14 * 24 * 3600 * 1000
TTL_MAXIMUM_PRIVATE = 30 * 24 * 3600 * 1000
STORE_TOLERANCE = 10_000
SIGNATURE_TOLERANCE = 60_000
SIGNATURE_TOLERANCE_FORWARDED = 70_000
BATCH_REQUEST_MAX = 20
MAX_SUBACCOUNT_TOKENS = 50
MAX_REQUEST_BODY = 10 * 1024 * 1024


# -- parameters ----------------------------------------------------------------------------------


# -- the service -------------------------------------------------------------------------------


class StorageService:
    """The storage RPC of one node over its message store and the swarms the chain defines."""

    def __init__(
        self,
        store: MessageStore,
        node_key: ed25519.SigningKey,
        directory: Directory,
        *,
        forward: Forward | None = None,
        oxend: Oxend | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.oxend = oxend
        self.store = store
        self.node_key = node_key
        self.directory = directory
        self.forward = forward
        self.clock = clock
        self.methods: dict[str, Callable[[dict[str, Any], bool], Awaitable[Reply]]] = {
            "store": self.store_message,
            "retrieve": self.retrieve,
            "delete": self.delete,
            "delete_all": self.delete_all,
            "delete_before": self.delete_before,
            "expire": self.expire,
            "expire_all": self.expire_all,
            "get_expiries": self.get_expiries,
            "get_swarm": self.get_swarm,
            "get_snodes_for_pubkey": self.get_swarm,
            "info": self.info,
            "batch": self.batch,
            "sequence": self.sequence,
            "ifelse": self.ifelse,
            "revoke_subaccount": self.revoke_subaccount,
            "unrevoke_subaccount": self.unrevoke_subaccount,
            "oxend_request": self.oxend_request,
        }

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- the envelope ----------------------------------------------------------------------

    async def handle_body(self, body: bytes, *, forwarded: bool = False) -> Reply:
        try:
            request = decode_json(body)
        except DecodeError:
            return Reply(400, "invalid json")
        if not isinstance(request, dict):
            return Reply(400, "invalid json")
        method, params = request.get("method"), request.get("params")
        if not isinstance(method, str):
            return Reply(400, "invalid json: no `method` field")
        if not isinstance(params, dict):
            return Reply(400, "invalid json: no `params` field")
        return await self.call(method, params, forwarded=forwarded)

    async def call(self, method: str, params: dict[str, Any], *, forwarded: bool = False) -> Reply:
        handler = self.methods.get(method)
        if handler is None:
            return Reply(400, f"no method {method}")
        try:
            return await handler(params, forwarded)
        except Misdirected as misdirected:
            return Reply(421, misdirected.body)
        except Fail as failure:
            return Reply(failure.status, failure.message)

    def _misc(self, body: dict[str, Any]) -> dict[str, Any]:
        body["t"] = self.now_ms()
        body["hf"] = list(HARDFORK)
        return body

    def swarm_json(self, owner: bytes) -> dict[str, Any]:
        swarm = self.directory.owning_swarm(owner)
        members = [] if swarm is None else self.directory.members(swarm)
        return self._misc(
            {
                "snodes": [m.to_json() for m in members],
                "swarm": f"{UNASSIGNED_SWARM_ID if swarm is None else swarm:x}",
            }
        )

    def _check_swarm(self, owner: bytes) -> None:
        mine = self.directory.my_swarm()
        if mine is None or self.directory.owning_swarm(owner) != mine:
            raise Misdirected(self.swarm_json(owner))

    def _check_time(self, value: int, tolerance: int, message: str) -> None:
        if abs(value - self.now_ms()) > tolerance:
            raise Fail(406, message)

    def _sign(self, text: bytes) -> str:
        return base64.b64encode(self.node_key.sign(text)).decode()

    async def _recursive(
        self, method: str, params: dict[str, Any], forwarded: bool, local: dict[str, Any]
    ) -> Reply:
        """This member's result, and (for a client's request) every other member's."""
        if forwarded:
            return Reply(200, local)
        results: dict[str, Any] = {self.node_key.public_key.hex(): local}
        mine = self.directory.my_swarm()
        others = [
            m
            for m in (self.directory.members(mine) if mine is not None else ())
            if m.ed25519 != self.node_key.public_key
        ]
        if others and self.forward is not None:
            forward = self.forward

            async def ask(member: Member) -> None:
                try:
                    with trio.fail_after(5):
                        results[member.ed25519.hex()] = await forward(member, method, params)
                except trio.TooSlowError:
                    results[member.ed25519.hex()] = {"failed": True, "timeout": True}
                except PeerFailed as failure:
                    results[member.ed25519.hex()] = {
                        "failed": True,
                        "code": str(failure.status),
                        "reason": failure.reason,
                    }
                except Exception:
                    results[member.ed25519.hex()] = {"failed": True, "bad_peer_response": True}

            async with trio.open_nursery() as nursery:
                for member in others:
                    nursery.start_soon(ask, member)
        body = self._misc({"swarm": results})
        ok = any(not (isinstance(r, dict) and r.get("failed")) for r in results.values())
        return Reply(200 if ok else 500, body)

    # -- store and retrieve ------------------------------------------------------------------

    async def store_message(self, params: dict[str, Any], forwarded: bool) -> Reply:
        owner = parse_pubkey(params)
        timestamp = parse_stringy_int(params, "timestamp", unsigned=False)
        if timestamp is None:
            raise bad("Required field 'timestamp' missing")
        if "ttl" in params and "expiry" in params:
            raise bad("Cannot specify both 'expiry' and 'ttl'")
        ttl = parse_stringy_int(params, "ttl", unsigned=True)
        if ttl is not None:
            expiry = timestamp + ttl
        else:
            given = parse_integer(params, "expiry", required=False)
            if given is None:
                raise bad("Required field 'expiry' or 'ttl' missing")
            expiry = given
        data_text = params.get("data")
        if data_text is None:
            raise bad("Required field 'data' missing")
        if not isinstance(data_text, str):
            raise bad("Invalid value given for 'data': expected string")
        if len(data_text) > MAX_MESSAGE_BODY // 3 * 4:
            raise bad(f"Message body exceeds maximum allowed length of {MAX_MESSAGE_BODY} bytes")
        data = decode_base64(data_text)
        if data is None:
            raise bad("Invalid 'data' value: not base64 encoded")
        namespace = parse_namespace(params)
        assert isinstance(namespace, int)
        auth = parse_auth(params, owner, required=False)
        sig_timestamp = parse_timestamp(params, "sig_timestamp", required=False) if auth else None
        self._check_swarm(owner)
        public_inbox = is_public_inbox(namespace)
        ttl_value = expiry - timestamp
        if not TTL_MINIMUM <= ttl_value <= (TTL_MAXIMUM if public_inbox else TTL_MAXIMUM_PRIVATE):
            raise Fail(403, "Provided expiry/TTL is not valid.")
        now = self.now_ms()
        if timestamp > now + STORE_TOLERANCE or expiry < now - STORE_TOLERANCE:
            raise Fail(406, "Timestamp error: check your clock")
        if not public_inbox:
            if auth is None:
                raise Fail(401, f"store: signature required to store to namespace {namespace}")
            signed_at = sig_timestamp if sig_timestamp is not None else timestamp
            if abs(signed_at - now) > SIGNATURE_TOLERANCE:
                raise Fail(406, "store signature timestamp too far from current time")
            needed = WRITE | DELETE if is_public_outbox(namespace) else WRITE
            text = f"store{namespace_text(namespace)}{signed_at}".encode()
            if not verify(self.store, owner, auth, text, needed):
                raise Fail(401, "store signature verification failed")
        result = self.store.store(owner, namespace, data, timestamp, expiry)
        digest = hash_text(result.hash)
        local: dict[str, Any] = {
            "hash": digest,
            "signature": self._sign(digest.encode()),
            "expiry": result.expiry,
        }
        if result.already:
            local["already"] = True
        reply = await self._recursive("store", params, forwarded, local)
        if not forwarded and isinstance(reply.body, dict):
            reply.body["hash"] = digest
        return reply

    async def retrieve(self, params: dict[str, Any], forwarded: bool) -> Reply:
        owner = parse_pubkey(params)
        namespace = parse_namespace(params)
        assert isinstance(namespace, int)
        last = one_of(params, "last_hash", "lastHash")
        last_hash = None
        if last:
            if not isinstance(last, str) or len(last) != 43:
                raise bad("Invalid last_hash: expected base64 (43 chars)")
            last_hash = hash_bytes(last)
            if last_hash is None:
                raise bad("Invalid last_hash: not base64")
        max_count = parse_integer(params, "max_count", required=False)
        max_size = parse_integer(params, "max_size", required=False)
        no_auth = namespace == -10 or is_public_outbox(namespace)
        wants_auth = any(k in params for k in ("pubkey_ed25519", "signature", "timestamp")) or (
            "namespace" in params and not no_auth
        )
        auth = timestamp = None
        if wants_auth:
            auth = parse_auth(params, owner)
            timestamp = parse_timestamp(params, "timestamp")
        self._check_swarm(owner)
        if not no_auth:
            if auth is None or timestamp is None:
                raise Fail(401, "retrieve: request signature required")
            self._check_time(timestamp, SIGNATURE_TOLERANCE, "retrieve timestamp too far from current time")
            text = f"retrieve{namespace_text(namespace)}{timestamp}".encode()
            unrevocable = namespace < 0 and (-namespace) % 100 == 11
            if not verify(self.store, owner, auth, text, READ, revocable=not unrevocable):
                raise Fail(401, "retrieve signature verification failed")
        if not max_count:
            max_count = None
        if not max_size:
            max_size = -5 if max_count is None else None
        size = RETRIEVE_MAX_SIZE
        if max_size is not None:
            size = RETRIEVE_MAX_SIZE // -max_size if max_size < 0 else min(max_size, RETRIEVE_MAX_SIZE)
        messages, more = self.store.retrieve(owner, namespace, last_hash, max_count, size)
        body = {
            "messages": [
                {
                    "data": b2a_base64(m.stored.data, newline=False).decode(),
                    "expiration": m.stored.expiry,
                    "hash": hash_text(m.hash),
                    "timestamp": m.stored.timestamp,
                }
                for m in messages
            ],
            "more": more,
        }
        return Reply(200, self._misc(body))

    # -- deletes and expiries ------------------------------------------------------------------

    async def delete(self, params: dict[str, Any], forwarded: bool) -> Reply:
        owner = parse_pubkey(params)
        pairs = parse_valid_hashes(params)
        auth = parse_auth(params, owner)
        required = params.get("required", False)
        self._check_swarm(owner)
        requested = "".join(text for text, _ in pairs)
        if not verify(self.store, owner, auth, ("delete" + requested).encode(), DELETE):
            raise Fail(401, "delete_msgs signature verification failed")
        deleted = sorted(hash_text(h) for h in self.store.delete_hashes(owner, [raw for _, raw in pairs]))
        text = owner.hex() + requested + "".join(deleted)
        reply = await self._recursive(
            "delete", params, forwarded, {"deleted": deleted, "signature": self._sign(text.encode())}
        )
        if required is True and reply.status == 200 and not forwarded and isinstance(reply.body, dict):
            entries = reply.body["swarm"].values()
            if all(not e.get("deleted") for e in entries if isinstance(e, dict)):
                return Reply(404, reply.body)
        return reply

    def _deleted_result(self, namespace: int | str, deleted: dict[int, list[bytes]]) -> tuple[Any, list[str]]:
        if namespace == ALL:
            by_ns = {str(ns): sorted(hash_text(h) for h in hashes) for ns, hashes in sorted(deleted.items())}
            return by_ns, sorted(h for hashes in by_ns.values() for h in hashes)
        flat = sorted(hash_text(h) for hashes in deleted.values() for h in hashes)
        return flat, flat

    async def _bulk(
        self,
        method: str,
        field: str,
        params: dict[str, Any],
        forwarded: bool,
        check_time: Callable[[int], None],
        apply: Callable[[bytes, int | str, int], dict[int, list[bytes]]],
        answer: str,
    ) -> Reply:
        """``delete_all``, ``delete_before`` and ``expire_all``: an owner's messages of one namespace
        (or ``all``) by the timestamp in ``field``; each member signs owner ‖ that timestamp ‖ the
        hashes it changed, which ``apply`` returns by namespace."""
        owner = parse_pubkey(params)
        namespace = parse_namespace(params, allow_all=True)
        value = parse_timestamp(params, field)
        assert value is not None
        auth = parse_auth(params, owner)
        self._check_swarm(owner)
        check_time(value)
        if not verify(
            self.store, owner, auth, f"{method}{namespace_text(namespace)}{value}".encode(), DELETE
        ):
            raise Fail(401, f"{method} signature verification failed")
        result, flat = self._deleted_result(namespace, apply(owner, namespace, value))
        text = owner.hex() + str(value) + "".join(flat)
        return await self._recursive(
            method, params, forwarded, {answer: result, "signature": self._sign(text.encode())}
        )

    def _tolerance(self, forwarded: bool) -> int:
        return SIGNATURE_TOLERANCE_FORWARDED if forwarded else SIGNATURE_TOLERANCE

    async def delete_all(self, params: dict[str, Any], forwarded: bool) -> Reply:
        def check_time(timestamp: int) -> None:
            self._check_time(
                timestamp, self._tolerance(forwarded), "delete_all timestamp too far from current time"
            )

        def apply(owner: bytes, namespace: int | str, timestamp: int) -> dict[int, list[bytes]]:
            return self.store.delete_where(owner, namespace)

        return await self._bulk("delete_all", "timestamp", params, forwarded, check_time, apply, "deleted")

    async def delete_before(self, params: dict[str, Any], forwarded: bool) -> Reply:
        def check_time(before: int) -> None:
            if before > self.now_ms() + SIGNATURE_TOLERANCE:
                raise Fail(401, "delete_before timestamp too far in the future")

        def apply(owner: bytes, namespace: int | str, before: int) -> dict[int, list[bytes]]:
            return self.store.delete_where(owner, namespace, before=before)

        return await self._bulk("delete_before", "before", params, forwarded, check_time, apply, "deleted")

    async def expire_all(self, params: dict[str, Any], forwarded: bool) -> Reply:
        def check_time(expiry: int) -> None:
            if expiry < self.now_ms() - self._tolerance(forwarded):
                raise Fail(406, "expire_all timestamp should be >= current time")

        return await self._bulk(
            "expire_all", "expiry", params, forwarded, check_time, self.store.expire_where, "updated"
        )

    async def expire(self, params: dict[str, Any], forwarded: bool) -> Reply:
        owner = parse_pubkey(params)
        pairs = parse_valid_hashes(params)
        hashes = [text for text, _ in pairs]
        raw_expiry = params.get("expiry")
        if raw_expiry is None:
            raise bad("Required field 'expiry' missing")
        many = isinstance(raw_expiry, list)
        expiries = raw_expiry if many else [raw_expiry]
        if not expiries:
            raise bad("'expiry' does not contain any expiration timestamps")
        for value in expiries:
            parse_timestamp({"expiry": value}, "expiry")
        if many and len(expiries) != len(hashes):
            raise bad("'expiry' must be a single expiry, or the same length as 'messages'")
        shorten, extend = params.get("shorten", False), params.get("extend", False)
        if shorten and extend:
            raise bad("cannot specify both 'shorten' and 'extend'")
        auth = parse_auth(params, owner)
        self._check_swarm(owner)
        now = self.now_ms()
        if any(e < now - SIGNATURE_TOLERANCE for e in expiries):
            raise Fail(401, "expire: timestamp should be >= current time")
        mode = "shorten" if shorten else "extend" if extend else ""
        text = "expire" + mode + "".join(str(e) for e in expiries) + "".join(hashes)
        if auth is not None and auth.token is not None and not auth.token[1] & DELETE:
            if shorten:
                raise bad(
                    "expire: shorten parameter cannot be used with this subaccount token "
                    "(missing delete access)"
                )
            extend = True
        if not verify(self.store, owner, auth, text.encode(), WRITE):
            raise Fail(401, "expire: signature verification failed")
        wanted = {
            h: min(now + TTL_MAXIMUM_PRIVATE, expiries[i] if many else expiries[0])
            for i, h in enumerate(hashes)
        }
        raw_of = dict(pairs)
        changes = []
        unchanged: dict[str, int] = {}
        for text_hash, new in wanted.items():
            message = self.store.locate(raw_of[text_hash])
            if message is None or message.owner != owner:
                continue
            current = message.stored.expiry
            # As the storage server's update (storage/database.cpp): only shorten and extend put
            # a condition on the current expiry; a plain expire updates, and lists in `updated`,
            # every matching message, one whose expiry already equals the new one too.
            if (shorten and new >= current) or (extend and new <= current):
                unchanged[text_hash] = current
                continue
            changes.append((message, new))
        self.store.update_expiries((m, e) for m, e in changes if e != m.stored.expiry)
        updated = sorted(hash_text(m.hash) for m, _ in changes)
        applied = {hash_text(m.hash): e for m, e in changes}
        local: dict[str, Any] = {"updated": updated}
        if many:
            local["expiry"] = [applied[h] for h in updated]
            exp_text = "".join(str(applied[h]) for h in updated)
        else:
            local["expiry"] = wanted[hashes[0]]
            exp_text = str(wanted[hashes[0]])
        unchanged_text = ""
        if "shorten" in params or "extend" in params:
            local["unchanged"] = unchanged
            unchanged_text = "".join(f"{h}{unchanged[h]}" for h in sorted(unchanged))
        signed = owner.hex() + exp_text + "".join(hashes) + "".join(updated) + unchanged_text
        local["signature"] = self._sign(signed.encode())
        return await self._recursive("expire", params, forwarded, local)

    async def get_expiries(self, params: dict[str, Any], forwarded: bool) -> Reply:
        owner = parse_pubkey(params)
        pairs = parse_hashes(params)
        timestamp = parse_timestamp(params, "timestamp")
        auth = parse_auth(params, owner)
        self._check_swarm(owner)
        assert timestamp is not None
        self._check_time(timestamp, SIGNATURE_TOLERANCE, "get_expiries timestamp too far from current time")
        requested = "".join(text for text, _ in pairs)
        if not verify(self.store, owner, auth, f"get_expiries{timestamp}{requested}".encode(), READ):
            raise Fail(401, "get_expiries signature verification failed")
        expiries = {}
        for text_hash, raw in pairs:
            message = None if raw is None else self.store.locate(raw)
            if message is not None and message.owner == owner:
                expiries[text_hash] = message.stored.expiry
        return Reply(200, {"expiries": expiries})

    # -- subaccounts ---------------------------------------------------------------------------

    async def _revocation(self, params: dict[str, Any], forwarded: bool, name: str) -> Reply:
        owner = parse_pubkey(params)
        field = "revoke" if name == "revoke_subaccount" else "unrevoke"
        value = params.get(field)
        if value is None:
            raise bad(f"Required field '{field}' missing")
        items = value if isinstance(value, list) else [value]
        if field == "revoke" and len(items) > MAX_SUBACCOUNT_TOKENS:
            raise bad("invalid revoke: cannot revoke more than 50 subaccounts at once")
        tokens = [
            parse_token(item, f"invalid {field}: expected base64 or hex-encoded subaccount tag")
            for item in items
        ]
        timestamp = parse_timestamp(params, "timestamp")
        assert timestamp is not None
        signature = parse_signature(params)
        assert signature is not None
        auth = Auth(signature, parse_pubkey_ed25519(params, owner))
        self._check_swarm(owner)
        self._check_time(timestamp, SIGNATURE_TOLERANCE, f"{name} timestamp too far from current time")
        message = name.encode() + str(timestamp).encode() + b"".join(tokens)
        if not verify(self.store, owner, auth, message, 0):
            raise Fail(401, f"{name} signature verification failed")
        local: dict[str, Any] = {}
        if field == "revoke":
            self.store.revoke(owner, tokens, self.now_ms())
        else:
            local["count"] = self.store.unrevoke(owner, tokens)
        local["signature"] = self._sign(owner.hex().encode() + str(timestamp).encode() + b"".join(tokens))
        return await self._recursive(name, params, forwarded, local)

    async def revoke_subaccount(self, params: dict[str, Any], forwarded: bool) -> Reply:
        return await self._revocation(params, forwarded, "revoke_subaccount")

    async def unrevoke_subaccount(self, params: dict[str, Any], forwarded: bool) -> Reply:
        return await self._revocation(params, forwarded, "unrevoke_subaccount")

    # -- information ---------------------------------------------------------------------------

    async def get_swarm(self, params: dict[str, Any], forwarded: bool) -> Reply:
        owner = parse_pubkey(params, "Pubkey must be 66 hex digits/33 bytes long")
        return Reply(200, self.swarm_json(owner))

    async def oxend_request(self, params: dict[str, Any], forwarded: bool) -> Reply:
        """The chain reads a Session client may make through an onion request: only
        ``get_service_nodes`` and ``ons_resolve``, as the storage server allows."""
        endpoint = params.get("endpoint")
        if endpoint is None:
            raise bad("Required field 'endpoint' missing")
        if endpoint not in OXEND_ENDPOINTS:
            raise bad(f"Invalid oxend endpoint '{endpoint}'")
        arguments = params.get("params") or {}
        if not isinstance(arguments, dict) or self.oxend is None:
            raise Fail(400, "Unknown oxend error")
        try:
            result = self.oxend(str(endpoint), arguments)
        except ValueError as exc:
            raise Fail(400, str(exc) or "Unknown oxend error") from None
        return Reply(200, self._misc({"result": result}))

    async def info(self, params: dict[str, Any], forwarded: bool) -> Reply:
        return Reply(200, self._misc({"timestamp": self.now_ms(), "version": list(VERSION)}))

    # -- batch, sequence, ifelse -------------------------------------------------------------

    def _subrequests(self, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        requests = params.get("requests")
        if not isinstance(requests, list) or not requests:
            raise bad('Invalid batch request: no valid "requests" field')
        if len(requests) > BATCH_REQUEST_MAX:
            raise bad("Invalid batch request: subrequest limit exceeded")
        out = []
        for item in requests:
            if not isinstance(item, dict):
                raise bad("Invalid batch request: requests must be objects")
            method, sub = item.get("method"), item.get("params")
            if not isinstance(method, str) or not isinstance(sub, dict):
                raise bad("Invalid batch request: subrequests must have method/params keys")
            if method in ("batch", "sequence", "ifelse"):
                raise bad("Invalid batch subrequest: subrequests may not contain meta-requests")
            if method not in self.methods:
                raise bad(f'Invalid batch subrequest: invalid method "{method}"')
            out.append((method, sub))
        return out

    @staticmethod
    def _result(reply: Reply) -> dict[str, Any]:
        return {"code": reply.status, "body": reply.body}

    async def batch(self, params: dict[str, Any], forwarded: bool) -> Reply:
        subrequests = self._subrequests(params)
        replies: list[Reply | None] = [None] * len(subrequests)

        async def run(index: int, method: str, sub: dict[str, Any]) -> None:
            replies[index] = await self.call(method, sub)

        async with trio.open_nursery() as nursery:
            for index, (method, sub) in enumerate(subrequests):
                nursery.start_soon(run, index, method, sub)
        return Reply(200, {"results": [self._result(r) for r in replies if r is not None]})

    async def sequence(self, params: dict[str, Any], forwarded: bool) -> Reply:
        results = []
        for method, sub in self._subrequests(params):
            reply = await self.call(method, sub)
            results.append(self._result(reply))
            if not 200 <= reply.status < 300:
                break
        return Reply(200, {"results": results})

    async def ifelse(self, params: dict[str, Any], forwarded: bool) -> Reply:
        condition = params.get("if")
        if not isinstance(condition, dict):
            raise bad('Invalid ifelse request: no valid "if" field')
        checks = parse_conditions(condition)
        if not checks:
            raise bad('Invalid ifelse request: must specify at least one "if" condition')
        branches = {k: params[k] for k in ("then", "else") if k in params}
        if not branches:
            raise bad('Invalid ifelse request: at least one of "then"/"else" required')
        for key, branch in branches.items():
            if not isinstance(branch, dict):
                raise bad(f"Invalid ifelse request: {key} must be an object")
            if not isinstance(branch.get("method"), str) or not isinstance(branch.get("params"), dict):
                raise bad(f"Invalid ifelse request: {key} must have method/params keys")
            if branch["method"] not in self.methods:
                raise bad(f'Invalid ifelse request method "{key}"')
        height = self.directory.height()
        have = {"height": (height,), "hf": HARDFORK, "v": VERSION}
        outcome = True
        for name, wanted in checks.items():
            current = have[name.split("_")[0]]
            outcome = outcome and (current >= wanted if name.endswith("_at_least") else current < wanted)
        body: dict[str, Any] = {
            "condition": outcome,
            "height": height,
            "hf": list(HARDFORK),
            "v": list(VERSION),
        }
        branch = branches.get("then" if outcome else "else")
        if branch is not None:
            body["result"] = self._result(await self.call(branch["method"], branch["params"]))
        return Reply(200, body)
