"""A Session-style client of the storage RPC: what ``appchain msg`` and the tests use, and what a
Session client needs (request signing, swarm lookup, onion building and response decryption).

An account is an Ed25519 key; its Session ID is ``05`` followed by the X25519 key it converts to,
and requests name ``pubkey_ed25519`` so the node checks the signature with the Ed25519 key.
Direct requests go to ``POST /storage_rpc/v1`` of a node (a 421 answer names the owning swarm, and
the client asks one of its members instead). Onion requests pick three random service nodes as
the path and a member of the account's swarm as the destination, and post to the first hop's
``/onion_req/v2``: no single node learns both who asks and what.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from appchain.lightclient import RpcSource
from appchain.messaging.onion import XCHACHA20, DecryptError, Hop, build, read_response
from appchain.messaging.store import is_public_inbox
from state.crypto import ed25519
from state.encoding import DecodeError, decode_json

MAX_ANSWER = 16 * 1024 * 1024


class ClientError(Exception):
    """A node that cannot be reached or answers something unusable."""


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


def _post(url: str, body: bytes, timeout: float = 20.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(MAX_ANSWER)
    except urllib.error.HTTPError as error:
        return error.code, error.read(MAX_ANSWER)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ClientError(f"{url}: cannot reach the node ({getattr(exc, 'reason', exc)})") from None


def _json(status: int, answer: bytes) -> Any:
    if answer[:1] not in (b"{", b"["):
        return answer.decode(errors="replace")
    try:
        return decode_json(answer)
    except DecodeError as exc:
        raise ClientError(f"HTTP {status}: the answer is not JSON ({exc})") from None


class StorageClient:
    """Talks to the storage RPC of the network that ``rpc_url``'s node belongs to."""

    def __init__(self, rpc_url: str, *, onion: bool = False, enc_type: str = XCHACHA20) -> None:
        self.rpc_url = rpc_url.rstrip("/")
        self.onion = onion
        self.enc_type = enc_type
        self.last_path: list[Node] = []
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
                    Node(bytes.fromhex(e["pubkey_ed25519"]), e["public_ip"], int(e["storage_port"]))
                    for e in entries
                    if e["storage_port"]
                ]
            except (KeyError, TypeError, ValueError):
                raise ClientError(f"{self.rpc_url}: get_service_nodes answered without the nodes") from None
        return self._nodes

    def swarm_of(self, session_id: str) -> list[Node]:
        status, body = self.call_node(self._random.choice(self.nodes()), "get_swarm", {"pubkey": session_id})
        if status != 200 or not isinstance(body, dict):
            raise ClientError(f"get_swarm failed: {status} {body}")
        return [
            Node(bytes.fromhex(s["pubkey_ed25519"]), s["ip"], int(s["port_https"])) for s in body["snodes"]
        ]

    def call(self, session_id: str, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        """Run ``method`` for the account at a member of its swarm (directly or by onion)."""
        if not self.onion:
            base = self.rpc_url
            for _ in range(2):  # a 421 names the owning swarm: ask one of its members once
                status, answer = _post(
                    base + "/storage_rpc/v1", json.dumps({"method": method, "params": params}).encode()
                )
                body = _json(status, answer)
                if status != 421 or not isinstance(body, dict) or not body.get("snodes"):
                    return status, body
                member = self._random.choice(body["snodes"])
                base = f"http://{member['ip']}:{member['port_https']}"
            return status, body
        members = self.swarm_of(session_id)
        if not members:
            raise ClientError("the account's swarm has no reachable member")
        return self.call_node(self._random.choice(members), method, params)

    def call_node(self, destination: Node, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        payload = json.dumps({"method": method, "params": params}).encode()
        if not self.onion:
            status, answer = _post(f"http://{destination.ip}:{destination.port}/storage_rpc/v1", payload)
            return status, _json(status, answer)
        others = [n for n in self.nodes() if n.ed25519 != destination.ed25519]
        if len(others) < 3:
            raise ClientError("an onion path needs three service nodes besides the destination")
        path = self._random.sample(others, 3)
        self.last_path = [*path, destination]
        request = build(payload, [Hop(n.ed25519) for n in path], Hop(destination.ed25519), self.enc_type)
        status, answer = _post(f"http://{path[0].ip}:{path[0].port}/onion_req/v2", request.body)
        if status != 200:
            return status, answer.decode(errors="replace")
        try:
            return read_response(request, answer)
        except DecryptError as exc:
            raise ClientError(f"the onion response does not decrypt: {exc}") from None
