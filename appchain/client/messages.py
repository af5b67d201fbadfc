"""A Session-style client of the storage RPC: what ``appchain msg`` and the tests use, and what a
Session client needs (request signing, swarm lookup, onion building and response decryption).

An account is an Ed25519 key; its Session ID is ``05`` followed by the X25519 key it converts to,
and requests name ``pubkey_ed25519`` so the node checks the signature with the Ed25519 key.
The node at ``rpc_url`` (its JSON-RPC, plain HTTP) lists the service nodes and their storage
ports; every storage request goes over HTTPS to a storage port, without checking the node's
self-signed certificate, as Session clients do (the onion layer, encrypted to the node's own key,
is what proves who answers: :mod:`appchain.home.tls`). Direct requests go to
``POST /storage_rpc/v1`` of a service node (a 421 answer names the owning swarm, and the client
asks one of its members instead). Onion requests pick three random service nodes as
the path and a member of the account's swarm as the destination, and post to the first hop's
``/onion_req/v2``: no single node learns both who asks and what.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from appchain.client.http import Answer, ServerError, decode_answer, describe, post
from appchain.client.lightclient import RpcSource
from appchain.messaging.onion import XCHACHA20, DecryptError, Hop, build, read_response
from appchain.messaging.store import is_public_inbox
from state.crypto import ed25519

MAX_ANSWER = 16 * 1024 * 1024


class ClientError(ServerError):
    """A node that cannot be reached or answers something unusable: one line naming it."""


@dataclass(frozen=True)
class Node:
    ed25519: bytes
    ip: str
    port: int


class SessionAccount:
    def __init__(self, key: ed25519.SigningKey) -> None:
        self.key = key

    @property
    def session_id(self) -> str:
        return "05" + ed25519.x25519_public(self.key.public_key).hex()

    def _signed(self, text: str | bytes) -> dict[str, str]:
        raw = text.encode() if isinstance(text, str) else text
        return {
            "pubkey": self.session_id,
            "pubkey_ed25519": self.key.public_key.hex(),
            "signature": base64.b64encode(self.key.sign(raw)).decode(),
        }

    def store(self, data: bytes, *, namespace: int = 0, ttl_ms: int = 14 * 86_400_000) -> dict[str, Any]:
        now = int(time.time() * 1000)
        params: dict[str, Any] = {
            "pubkey": self.session_id,
            "timestamp": now,
            "ttl": ttl_ms,
            "data": base64.b64encode(data).decode(),
        }
        if namespace:
            params["namespace"] = namespace
        if not is_public_inbox(namespace):
            params.update(self._signed(f"store{namespace}{now}"), sig_timestamp=now)
        return params

    def retrieve(self, *, namespace: int = 0, last_hash: str = "") -> dict[str, Any]:
        now = int(time.time() * 1000)
        params: dict[str, Any] = {"timestamp": now, **self._signed(f"retrieve{namespace or ''}{now}")}
        if namespace:
            params["namespace"] = namespace
        if last_hash:
            params["last_hash"] = last_hash
        return params

    def delete(self, hashes: list[str]) -> dict[str, Any]:
        return {"messages": hashes, **self._signed("delete" + "".join(hashes))}


def storage_url(node: Node) -> str:
    """Where ``node`` serves storage: its storage port, over HTTPS."""
    host = f"[{node.ip}]" if ":" in node.ip else node.ip
    return f"https://{host}:{node.port}"


def _post(url: str, body: bytes, timeout: float = 20.0) -> tuple[int, bytes]:
    try:
        answer = post(url, body, timeout=timeout, max_answer=MAX_ANSWER, verify=False)
    except ServerError as exc:
        raise ClientError(str(exc)) from None
    return answer.status, answer.body


def _json(url: str, status: int, answer: bytes) -> Any:
    """A storage answer: JSON when it looks like JSON, else its text (the storage server answers
    some refusals in plain text)."""
    if answer[:1] not in (b"{", b"["):
        return answer.decode(errors="replace")
    try:
        return decode_answer(Answer(url, status, answer))
    except ServerError as exc:
        raise ClientError(str(exc)) from None


def _port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 65535:
        raise ValueError(f"{describe(value)} is not a port")
    return value


def _address(value: object) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "/@?# "):
        raise ValueError(f"{describe(value)} is not an address")
    return value


def read_member(url: str, entry: object) -> Node:
    """A swarm member as a node answers it (``pubkey_ed25519``, ``ip``, ``port_https``)."""
    try:
        if not isinstance(entry, dict):
            raise ValueError(f"{describe(entry)} is not an object")
        key = entry.get("pubkey_ed25519")
        raw = bytes.fromhex(key) if isinstance(key, str) else b""
        if len(raw) != 32:
            raise ValueError("its pubkey_ed25519 is not 32 bytes of hex")
        return Node(raw, _address(entry.get("ip")), _port(entry.get("port_https")))
    except ValueError as exc:
        raise ClientError(f"{url}: a swarm member it named is unusable: {exc}") from None


def read_messages(url: str, body: object) -> list[tuple[str, int, bytes]]:
    """The (hash, timestamp, data) of each message in a ``retrieve`` answer."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        raise ClientError(f"{url}: the retrieve answer holds no list of messages")
    read = []
    for index, message in enumerate(messages):
        fields = message if isinstance(message, dict) else {}
        digest, timestamp, data = fields.get("hash"), fields.get("timestamp"), fields.get("data")
        if not isinstance(digest, str) or isinstance(timestamp, bool) or not isinstance(timestamp, int):
            raise ClientError(f"{url}: message {index} of the answer has no hash or timestamp")
        try:
            raw = base64.b64decode(data, validate=True) if isinstance(data, str) else None
        except binascii.Error:
            raw = None
        if raw is None:
            raise ClientError(f"{url}: message {index} of the answer: its data is not base64")
        read.append((digest, timestamp, raw))
    return read


class StorageClient:
    """Talks to the storage RPC of the network that ``rpc_url``'s node belongs to."""

    def __init__(self, rpc_url: str, *, onion: bool = False, enc_type: str = XCHACHA20) -> None:
        self.rpc_url = rpc_url.rstrip("/")
        self.onion = onion
        self.enc_type = enc_type
        self.last_path: list[Node] = []
        self.last_url = self.rpc_url
        """Where the last answer came from (named in an error about it)."""
        self._nodes: list[Node] | None = None
        self._random = secrets.SystemRandom()

    def nodes(self) -> list[Node]:
        """The active service nodes and where they serve storage (the node's JSON-RPC)."""
        if self._nodes is None:
            fields = ["pubkey_ed25519", "public_ip", "storage_port"]
            result = RpcSource(self.rpc_url, timeout=20.0).call(
                "get_service_nodes", {"active_only": True, "fields": fields}
            )
            try:
                entries = result["service_node_states"]
                self._nodes = [
                    Node(
                        bytes.fromhex(e["pubkey_ed25519"]), _address(e["public_ip"]), _port(e["storage_port"])
                    )
                    for e in entries
                    if e["storage_port"]
                ]
            except (KeyError, TypeError, ValueError):
                raise ClientError(f"{self.rpc_url}: get_service_nodes answered without the nodes") from None
            if any(len(n.ed25519) != 32 for n in self._nodes):
                raise ClientError(f"{self.rpc_url}: get_service_nodes answered keys that are not 32 bytes")
        return self._nodes

    def swarm_of(self, session_id: str) -> list[Node]:
        nodes = self.nodes()
        if not nodes:
            raise ClientError(f"{self.rpc_url}: the network has no service node serving storage")
        asked = self._random.choice(nodes)
        status, body = self.call_node(asked, "get_swarm", {"pubkey": session_id})
        where = f"{asked.ip}:{asked.port}"
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("snodes"), list):
            raise ClientError(f"{where}: get_swarm failed: HTTP {status} {describe(body)}")
        return [read_member(where, member) for member in body["snodes"]]

    def call(self, session_id: str, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        """Run ``method`` for the account at a member of its swarm (directly or by onion)."""
        if not self.onion:
            nodes = self.nodes()
            if not nodes:
                raise ClientError(f"{self.rpc_url}: the network has no service node serving storage")
            base = storage_url(self._random.choice(nodes))
            for _ in range(2):  # a 421 names the owning swarm: ask one of its members once
                url = self.last_url = base + "/storage_rpc/v1"
                status, answer = _post(url, json.dumps({"method": method, "params": params}).encode())
                body = _json(url, status, answer)
                if status != 421:
                    return status, body
                members = body.get("snodes") if isinstance(body, dict) else None
                if not isinstance(members, list) or not members:
                    raise ClientError(f"{url}: answered 421 (another swarm) without naming a member to ask")
                member = read_member(url, self._random.choice(members))
                base = storage_url(member)
            raise ClientError(f"{url}: answered 421 (another swarm) again: the swarms disagree")
        members = self.swarm_of(session_id)
        if not members:
            raise ClientError(f"{self.rpc_url}: the account's swarm has no member to ask")
        return self.call_node(self._random.choice(members), method, params)

    def call_node(self, destination: Node, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        payload = json.dumps({"method": method, "params": params}).encode()
        if not self.onion:
            url = self.last_url = storage_url(destination) + "/storage_rpc/v1"
            status, answer = _post(url, payload)
            return status, _json(url, status, answer)
        others = [n for n in self.nodes() if n.ed25519 != destination.ed25519]
        if len(others) < 3:
            raise ClientError(
                f"{self.rpc_url}: an onion path needs three service nodes besides the destination"
            )
        path = self._random.sample(others, 3)
        self.last_path = [*path, destination]
        request = build(payload, [Hop(n.ed25519) for n in path], Hop(destination.ed25519), self.enc_type)
        url = self.last_url = storage_url(path[0]) + "/onion_req/v2"
        status, answer = _post(url, request.body)
        if status != 200:
            return status, answer.decode(errors="replace")
        try:
            return read_response(request, answer)
        except DecryptError as exc:
            raise ClientError(f"{url}: the onion response does not decrypt: {exc}") from None
