"""Onion requests: ``POST /onion_req/v2`` as session-storage-server processes them, and the
client side as libsession-util's ``onionreq`` builds and reads them.

A layer is ``[N: u32 little-endian][N bytes of ciphertext][JSON]``. The outer JSON names the
client's ephemeral X25519 key for this hop (``ephemeral_key``, 64 hex) and the channel
encryption (``enc_type``, default ``aes-gcm``). The hop decrypts the ciphertext with its own
X25519 key (the conversion of its Ed25519 node key) and finds the same shape again:

- JSON with ``headers``: this node is the destination; the blob is a storage RPC request
  (``{"method", "params"}``). The reply ``{"body": …, "status": …}`` (``body`` the RPC's body
  as a string unless ``json`` is true) is encrypted to the layer's ephemeral key with the same
  encryption and base64-encoded (unless ``base64`` is false), in an HTTP 200;
- JSON with ``destination`` (the next node's Ed25519 key) and ``ephemeral_key``: the blob is the
  next hop's layer, posted to that node's ``/onion_req/v2`` (the storage server sends it over
  OxenMQ ``sn.onion_request``; here it is the same body over HTTP, ``hop_no`` counting hops, at
  most 15), and its answer comes back unchanged;
- JSON with ``host`` (a relay to an outside server: open groups, the file server): the whole
  decrypted layer is posted to that server by :class:`~appchain.messaging.relay.OutsideRelay`
  (its rules and limits are there) and its answer comes back as it is; a target the storage
  server would not relay to is answered (encrypted to the layer's key)
  ``{"status":400,"body":"Invalid url"}``, as is every ``host`` layer at a processor given no
  relay.

Channel encryption (both as the storage server and libsession):

- ``aes-gcm``: key ``HMAC-SHA256(key="LOKI", message=shared secret)``; ``IV(12) ‖ ct ‖ tag(16)``;
- ``xchacha20``: key ``BLAKE2b-256(shared secret ‖ client public key ‖ node public key)`` in both
  directions; ``nonce(24) ‖ ct ‖ tag(16)`` (XChaCha20-Poly1305 IETF, libsodium).

Errors, as the storage server gives them: a malformed outer layer is 400 ``Error parsing onion
request: …``; a layer that does not decrypt is 400 ``Invalid ciphertext``; an unknown next hop
is 502 ``Next node not found: <key>``; a malformed inner layer is answered (encrypted to that
layer's key) ``{"status":400,"body":"Invalid json"}``. Nothing malformed is ever forwarded.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES
from nacl import bindings
from nacl.exceptions import CryptoError

from appchain.messaging.relay import InvalidUrl, OutsideRelay
from state.crypto import ed25519
from state.encoding import DecodeError, decode_json

AES_GCM, XCHACHA20 = "aes-gcm", "xchacha20"
ENC_TYPES = {"aes-gcm": AES_GCM, "gcm": AES_GCM, "xchacha20": XCHACHA20, "xchacha20-poly1305": XCHACHA20}
MAX_HOPS = 15
ONION_PATH = "/onion_req/v2"


class DecryptError(ValueError):
    """A ciphertext that does not open with these keys."""


# -- channel encryption ----------------------------------------------------------------------


def _shared(secret: bytes, public: bytes) -> bytes:
    try:
        return bytes(bindings.crypto_scalarmult(secret, public))
    except (CryptoError, TypeError) as exc:
        raise DecryptError("not an X25519 key") from exc


def _aes_key(shared: bytes) -> bytes:
    return hmac.new(b"LOKI", shared, hashlib.sha256).digest()


def _xchacha_key(shared: bytes, client: bytes, server: bytes) -> bytes:
    return hashlib.blake2b(shared + client + server, digest_size=32).digest()


@dataclass(frozen=True)
class Channel:
    """One side of a hop's channel: our X25519 keypair, and whether we are the node (server)."""

    secret: bytes
    public: bytes
    server: bool

    @classmethod
    def of_node(cls, key: ed25519.SigningKey) -> Channel:
        return cls(key.x25519_secret(), ed25519.x25519_public(key.public_key), True)

    @classmethod
    def ephemeral(cls) -> Channel:
        public, secret = bindings.crypto_box_keypair()
        return cls(bytes(secret), bytes(public), False)

    def _key(self, enc_type: str, remote: bytes) -> bytes:
        shared = _shared(self.secret, remote)
        if enc_type == AES_GCM:
            return _aes_key(shared)
        client, server = (remote, self.public) if self.server else (self.public, remote)
        return _xchacha_key(shared, client, server)

    def encrypt(self, enc_type: str, plaintext: bytes, remote: bytes, *, nonce: bytes | None = None) -> bytes:
        key = self._key(enc_type, remote)
        if enc_type == AES_GCM:
            iv = nonce or os.urandom(12)
            cipher = AES.new(key, AES.MODE_GCM, nonce=iv)
            ciphertext, tag = cipher.encrypt_and_digest(plaintext)
            return iv + ciphertext + tag
        nonce = nonce or os.urandom(24)
        sealed = bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, None, nonce, key)
        return nonce + bytes(sealed)

    def decrypt(self, enc_type: str, data: bytes, remote: bytes) -> bytes:
        key = self._key(enc_type, remote)
        if enc_type == AES_GCM:
            if len(data) < 28:
                raise DecryptError("too short")
            cipher = AES.new(key, AES.MODE_GCM, nonce=data[:12])
            try:
                return bytes(cipher.decrypt_and_verify(data[12:-16], data[-16:]))
            except ValueError as exc:
                raise DecryptError("the tag does not verify") from exc
        if len(data) < 40:
            raise DecryptError("too short")
        try:
            return bytes(bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(data[24:], None, data[:24], key))
        except CryptoError as exc:
            raise DecryptError("the tag does not verify") from exc


# -- layers ------------------------------------------------------------------------------------


def combine(blob: bytes, meta: dict[str, Any]) -> bytes:
    """``[len(blob): u32 LE][blob][JSON]`` (compact JSON, keys sorted, as nlohmann writes it)."""
    return (
        len(blob).to_bytes(4, "little")
        + blob
        + json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    )


def split(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """The blob and the JSON of a layer; ``ValueError`` with the storage server's wording."""
    if len(data) < 4:
        raise ValueError("Unexpected payload size; expected ciphertext size")
    size = int.from_bytes(data[:4], "little")
    if len(data) < 4 + size:
        raise ValueError(f"Unexpected payload size {len(data) - 4}, expected >= {size}")
    try:
        meta = decode_json(data[4 + size :])
    except DecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError("invalid JSON: not an object")
    return data[4 : 4 + size], meta


def _x25519_hex(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError("invalid ephemeral_key: expected 64 hex digits")
    return bytes.fromhex(value)


def _enc_type(value: object) -> str:
    if value is None:
        return AES_GCM
    if not isinstance(value, str) or value not in ENC_TYPES:
        raise ValueError(f"Invalid encryption type {value}")
    return ENC_TYPES[value]


@dataclass(frozen=True)
class Hop:
    ed25519: bytes

    @property
    def x25519(self) -> bytes:
        return ed25519.x25519_public(self.ed25519)


# -- the node's side ---------------------------------------------------------------------------


Answer = tuple[int, bytes, str]
"""An HTTP status, body and content type."""

StorageCall = Callable[[bytes], Awaitable[tuple[int, Any]]]
"""Run a storage RPC body; its status and its body (a JSON value or a string)."""

Relay = Callable[[bytes, bytes], Awaitable[Answer]]
"""Post an onion body to the node with this Ed25519 key; its answer, or 502/504 text."""

Known = Callable[[bytes], bool]
"""Whether an Ed25519 key is a node this one can forward to."""


class OnionProcessor:
    def __init__(
        self,
        node_key: ed25519.SigningKey,
        storage: StorageCall,
        relay: Relay,
        known: Known,
        *,
        log: Callable[..., None] | None = None,
        outside: OutsideRelay | None = None,
    ) -> None:
        self.channel = Channel.of_node(node_key)
        self.outside = outside
        self.storage = storage
        self.relay = relay
        self.known = known
        self.log = log or (lambda *args, **kwargs: None)

    async def handle(self, body: bytes) -> Answer:
        try:
            ciphertext, meta = split(body)
            remote = _x25519_hex(meta.get("ephemeral_key"))
            enc_type = _enc_type(meta.get("enc_type"))
            hop_no = meta.get("hop_no", 0)
            if isinstance(hop_no, bool) or not isinstance(hop_no, int):
                raise ValueError("invalid hop_no")
        except ValueError as exc:
            return 400, f"Error parsing onion request: {exc}".encode(), "text/plain"
        if hop_no > MAX_HOPS:
            return 400, b"onion request max path length exceeded", "text/plain"
        try:
            plaintext = self.channel.decrypt(enc_type, ciphertext, remote)
        except DecryptError:
            return 400, b"Invalid ciphertext", "text/plain"
        try:
            blob, inner = split(plaintext)
            if "headers" in inner:
                as_json, as_base64 = inner.get("json", False), inner.get("base64", True)
                if not isinstance(as_json, bool) or not isinstance(as_base64, bool):
                    raise ValueError("json and base64 must be true or false")
                self.log("debug", "onion destination", bytes=len(blob))
                return await self._final(blob, enc_type, remote, as_json=as_json, as_base64=as_base64)
            if "host" in inner:  # checked before "destination", as the storage server does
                server: dict[str, Any] | None = inner
            else:
                server = None
                destination = inner.get("destination")
                if not isinstance(destination, str) or len(destination) != 64:
                    raise ValueError("invalid destination")
                next_key = bytes.fromhex(destination)
                next_ephemeral = _x25519_hex(inner.get("ephemeral_key"))
                next_enc = _enc_type(inner.get("enc_type"))
        except ValueError:
            return self._sealed({"status": 400, "body": "Invalid json"}, enc_type, remote)
        if server is not None:
            return await self._to_server(plaintext, server, enc_type, remote)
        if not self.known(next_key):
            return 502, f"Next node not found: {next_key.hex()}".encode(), "text/plain"
        self.log("debug", "onion relay", next=next_key.hex()[:12], bytes=len(blob))
        forward = combine(
            blob, {"ephemeral_key": next_ephemeral.hex(), "enc_type": next_enc, "hop_no": max(hop_no, 0) + 1}
        )
        return await self.relay(next_key, forward)

    async def _to_server(self, layer: bytes, meta: dict[str, Any], enc_type: str, remote: bytes) -> Answer:
        if self.outside is not None:
            try:
                return await self.outside.post(meta, layer)
            except InvalidUrl:
                pass
        return self._sealed({"status": 400, "body": "Invalid url"}, enc_type, remote)

    def _sealed(
        self, reply: dict[str, Any], enc_type: str, remote: bytes, *, as_base64: bool = True
    ) -> Answer:
        plaintext = json.dumps(reply, sort_keys=True, separators=(",", ":")).encode()
        sealed = self.channel.encrypt(enc_type, plaintext, remote)
        return 200, base64.b64encode(sealed) if as_base64 else sealed, "text/plain"

    async def _final(
        self, request: bytes, enc_type: str, remote: bytes, *, as_json: bool, as_base64: bool
    ) -> Answer:
        status, body = await self.storage(request)
        if not isinstance(body, str) and not as_json:
            body = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return self._sealed({"body": body, "status": status}, enc_type, remote, as_base64=as_base64)


# -- the client's side -------------------------------------------------------------------------


@dataclass
class OnionRequest:
    body: bytes
    """What to POST to the first hop's ``/onion_req/v2``."""
    final: Channel
    destination: bytes
    """The destination's X25519 key: the response is encrypted between it and ``final``."""
    enc_type: str


def build(payload: bytes, path: list[Hop], destination: Hop, enc_type: str = XCHACHA20) -> OnionRequest:
    """Wrap ``payload`` (a storage RPC request) for ``destination`` through ``path`` (entry first):
    a fresh ephemeral key per layer, as libsession builds it."""
    final = Channel.ephemeral()
    blob = final.encrypt(enc_type, combine(payload, {"headers": ""}), destination.x25519)
    route: dict[str, Any] = {
        "destination": destination.ed25519.hex(),
        "ephemeral_key": final.public.hex(),
        "enc_type": enc_type,
    }
    for hop in reversed(path):
        layer = Channel.ephemeral()
        blob = layer.encrypt(enc_type, combine(blob, route), hop.x25519)
        route = {"destination": hop.ed25519.hex(), "ephemeral_key": layer.public.hex(), "enc_type": enc_type}
    outer = {"ephemeral_key": route["ephemeral_key"], "enc_type": enc_type}
    return OnionRequest(combine(blob, outer), final, destination.x25519, enc_type)


def read_response(request: OnionRequest, body: bytes) -> tuple[int, Any]:
    """The destination's status and body from the (base64) response; ``DecryptError`` if it
    does not decrypt (a relay's plain-text error, or tampering)."""
    try:
        sealed = base64.b64decode(body, validate=True)
    except ValueError as exc:
        raise DecryptError("the response is not base64") from exc
    plaintext = request.final.decrypt(request.enc_type, sealed, request.destination)
    try:
        reply = decode_json(plaintext)
    except DecodeError as exc:
        raise DecryptError(f"the response is not JSON: {exc}") from None
    if not isinstance(reply, dict):
        raise DecryptError("the response is not a JSON object")
    status = reply.get("status_code", reply.get("status"))
    content = reply.get("body")
    if isinstance(content, str) and content[:1] in ("{", "["):
        with contextlib.suppress(DecodeError):  # the storage server sends JSON bodies as strings
            content = decode_json(content.encode())
    return int(status) if isinstance(status, int) else 0, content
