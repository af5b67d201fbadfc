"""What onion requests to outside servers need on the client's and the server's side, as Session
builds them (Desktop ``onions.ts`` ``buildOnionCtxs``, libsession ``onionreq/builder.cpp``) and
an open group server answers them (pysogs ``routes/onion_request.py``): a v4 payload
``l<len>:<json meta><len>:<body>e`` encrypted to the server's X25519 key, the last hop's layer
naming ``host``/``target``/``protocol``/``port``, and a small v4 ``lsrpc`` server on the loopback
that decrypts, answers and encrypts its answer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from nacl import bindings

from appchain.messaging.onion import AES_GCM, ENC_TYPES, Channel, Hop, combine, split
from tests.servers import FakeServer

V4_TARGET = "/oxen/v4/lsrpc"


def bt_list(items: list[bytes]) -> bytes:
    """A bencoded list of byte strings."""
    return b"l" + b"".join(str(len(item)).encode() + b":" + item for item in items) + b"e"


def read_bt_list(data: bytes) -> list[bytes]:
    """The byte strings of a bencoded list of byte strings; ``ValueError`` for anything else."""
    if not data.startswith(b"l") or not data.endswith(b"e"):
        raise ValueError("not a list")
    items, at = [], 1
    while at < len(data) - 1:
        colon = data.index(b":", at)
        size = int(data[at:colon])
        items.append(data[colon + 1 : colon + 1 + size])
        at = colon + 1 + size
    if at != len(data) - 1:
        raise ValueError("trailing bytes")
    return items


def v4_request(method: str, endpoint: str, body: bytes | None = None) -> bytes:
    meta = {"method": method, "endpoint": endpoint, "headers": {"Content-Type": "application/json"}}
    return bt_list([json.dumps(meta).encode()] + ([body] if body is not None else []))


@dataclass
class ServerOnion:
    body: bytes
    """What to POST to the guard's ``/onion_req/v2``."""
    final: Channel
    """The client's ephemeral key for the server: its answer opens with it."""
    layers: list[Channel]
    """The client's ephemeral key for each hop, guard first (a hop's sealed refusal opens with it)."""
    enc_type: str


def onion_to_server(
    payload: bytes,
    path: list[Hop],
    server_x25519: bytes,
    *,
    host: str,
    port: int,
    protocol: str = "http",
    target: str = V4_TARGET,
    enc_type: str = AES_GCM,
    extra: dict[str, Any] | None = None,
) -> ServerOnion:
    """An onion request through ``path`` (guard first) whose last hop posts to an outside server:
    the payload encrypted to the server, then a layer per hop, the last naming the server."""
    final = Channel.ephemeral()
    blob = final.encrypt(enc_type, payload, server_x25519)
    route: dict[str, Any] = {
        "host": host,
        "target": target,
        "method": "POST",
        "protocol": protocol,
        "port": port,
        "ephemeral_key": final.public.hex(),
        "enc_type": enc_type,
        **(extra or {}),
    }
    layers = []
    for hop in reversed(path):
        layer = Channel.ephemeral()
        layers.insert(0, layer)
        blob = layer.encrypt(enc_type, combine(blob, route), hop.x25519)
        route = {"destination": hop.ed25519.hex(), "ephemeral_key": layer.public.hex(), "enc_type": enc_type}
    outer = {"ephemeral_key": route["ephemeral_key"], "enc_type": enc_type}
    return ServerOnion(combine(blob, outer), final, layers, enc_type)


def read_v4_answer(request: ServerOnion, server_x25519: bytes, body: bytes) -> tuple[dict[str, Any], bytes]:
    """The server's v4 answer: its meta (``code``, ``headers``) and its body."""
    meta, content = read_bt_list(request.final.decrypt(request.enc_type, body, server_x25519))
    return json.loads(meta), content


def raw_answer(status: int, body: bytes, content_type: str = "application/octet-stream") -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"connection: close\r\n\r\n" + body


@dataclass
class V4Server:
    """A Session v4 ``lsrpc`` server on 127.0.0.1: it opens the layer the relaying node posts with
    its X25519 key, and answers ``POST /echo`` with what it read (``code`` 201), anything else
    ``code`` 404, encrypted back to the client's key. ``delay`` seconds before answering;
    ``padding`` bytes added to the answer's body."""

    delay: float = 0.0
    padding: int = 0
    chunked: bool = False
    seen: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        public, secret = bindings.crypto_box_keypair()
        self.channel = Channel(bytes(secret), bytes(public), server=True)
        self.fake = FakeServer(self._respond)

    @property
    def x25519(self) -> bytes:
        return self.channel.public

    @property
    def port(self) -> int:
        return int(self.fake.server.server_address[1])

    def stop(self) -> None:
        self.fake.stop()

    def _respond(self, path: str, body: bytes) -> bytes:
        time.sleep(self.delay)
        if path != V4_TARGET:
            return raw_answer(404, b"not found", "text/plain")
        blob, meta = split(body)
        enc_type = ENC_TYPES[meta.get("enc_type", "aes-gcm")]
        client = bytes.fromhex(meta["ephemeral_key"])
        request = read_bt_list(self.channel.decrypt(enc_type, blob, client))
        request_meta = json.loads(request[0])
        self.seen.append({"layer": body, "meta": meta, "request": request_meta, "body": request[1:]})
        if request_meta["endpoint"] == "/echo" and request_meta["method"] == "POST":
            code, content = 201, json.dumps({"echo": request[1].decode(), "pad": "x" * self.padding}).encode()
        else:
            code, content = 404, b"no such endpoint"
        answer = bt_list(
            [json.dumps({"code": code, "headers": {"content-type": "application/json"}}).encode(), content]
        )
        sealed = self.channel.encrypt(enc_type, answer, client)
        if not self.chunked:
            return raw_answer(200, sealed)
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(sealed[i : i + 4096]), sealed[i : i + 4096])
            for i in range(0, len(sealed), 4096)
        )
        return head + chunks + b"0\r\n\r\n"
