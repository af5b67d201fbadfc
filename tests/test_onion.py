"""Onion requests: libsession-util's channel-encryption vectors, a request built as libsession
builds it going through three hops to a destination, what each hop sees, and the errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from appchain.messaging.onion import (
    AES_GCM,
    XCHACHA20,
    Answer,
    Channel,
    DecryptError,
    Hop,
    OnionProcessor,
    build,
    combine,
    read_response,
    split,
)
from state.crypto import ed25519

# libsession-util tests/test_onionreq.cpp, "Onion request encryption"
A = bytes.fromhex("bbdfc83022d0aff084a6f0c529a93d1c4d728bf7e41199afed0e01ae70d20540")
a = bytes.fromhex("ccc335912da8939e2b44816728a5a4773063efa82bf7ae2d42a0abfa2caa452d")
B = bytes.fromhex("caea52c5b0c316d85ffb53ea536826618b13dee40685f166f632653114526a78")
b = bytes.fromhex("8fcd8ad3a15c76f76f1c56dff0c529999f8c59b4acda79e05666e54d5727dca1")
ENC_GCM = bytes.fromhex("1eb6ae1cd72f60999486365749bd5dc15cc0b6a2a44d7d063daa5e93722f0c025fd00306403b61")
ENC_XCHACHA = bytes.fromhex(
    "9e1a3abe60eff3ea5c23556cc7e225b6f94355315f7281f66ecf4dbb06e7899a52b863e03cde3b287d1638d765db75de02b032"
)
# libsession-util "Onion request parser": a whole first-hop body
PARSER_B = bytes.fromhex("2f4d1c0d28e137777ec0a316e9f4f763e3e66662a6c51994c6315c9ef34b6deb")
PARSER_B_PUB = bytes.fromhex("8388de69bc0d4b6196133233ad9a46ba0473474bc67718aad96a3a33c257f726")
PARSER_XCHACHA = bytes.fromhex(
    "33000000e440bc244ddcafd947b86fc5a964aa58de54a6d75cc0f0f3840db14b6c1176a8e2e0a04d5fbdf98f23adee1edc8362"
    "ab99b10b7b22656e635f74797065223a2022786368616368613230222c2022657068656d6572616c5f6b6579223a20223831"
    "3637653937363732303035633636396134383835386336393839356633393563613233353231396163336637613432313030"
    "323262316639313065363532227d"
)


def test_channel_encryption_matches_libsession() -> None:
    server = Channel(b, B, server=True)
    assert server.decrypt(AES_GCM, ENC_GCM, A) == b"Hello world"
    assert server.decrypt(XCHACHA20, ENC_XCHACHA, A) == b"Hello world"
    for broken in (ENC_XCHACHA[:-1] + b"\x33", ENC_XCHACHA[:12] + b"\xcf" + ENC_XCHACHA[13:]):
        with pytest.raises(DecryptError):
            server.decrypt(XCHACHA20, broken, A)
    with pytest.raises(DecryptError):
        server.decrypt(AES_GCM, ENC_GCM[:-1] + b"\x69", A)
    # a reply the node seals opens on the client's side, and only there
    client = Channel(a, A, server=False)
    for enc_type in (AES_GCM, XCHACHA20):
        sealed = server.encrypt(enc_type, b"Goodbye world", A)
        assert client.decrypt(enc_type, sealed, B) == b"Goodbye world"
    with pytest.raises(DecryptError):  # both ends hashing the keys as the node does: another key
        Channel(a, A, server=True).decrypt(XCHACHA20, server.encrypt(XCHACHA20, b"x", A), B)
    blob, meta = split(PARSER_XCHACHA)
    assert meta == {
        "enc_type": "xchacha20",
        "ephemeral_key": "8167e97672005c669a48858c69895f395ca235219ac3f7a4210022b1f910e652",
    }
    assert (
        Channel(PARSER_B, PARSER_B_PUB, server=True).decrypt(
            XCHACHA20, blob, bytes.fromhex(meta["ephemeral_key"])
        )
        == b"Hello world"
    )


class Network:
    """Onion processors of a few nodes, relaying to each other in process, recording what each
    hop received and could read."""

    def __init__(self, count: int) -> None:
        self.keys = [ed25519.SigningKey(bytes([20 + i]) * 32) for i in range(count)]
        self.seen: dict[bytes, list[dict[str, Any]]] = {k.public_key: [] for k in self.keys}
        self.requests: list[bytes] = []
        self.nodes = {}
        for key in self.keys:
            self.nodes[bytes(key.public_key)] = OnionProcessor(
                key, self._storage, self._relay, lambda k: k in self.nodes, log=self._logger(key.public_key)
            )

    def _logger(self, me: bytes) -> Any:
        def log(level: str, event: str, **fields: Any) -> None:
            self.seen[me].append({"event": event, **fields})

        return log

    async def _storage(self, request: bytes) -> tuple[int, Any]:
        self.requests.append(request)
        parsed = json.loads(request)
        if parsed.get("method") == "info":
            return 200, {"hf": [19, 4], "version": [2, 8, 0]}
        return 400, f"no method {parsed.get('method')}"

    async def _relay(self, key: bytes, body: bytes) -> Answer:
        return await self.nodes[key].handle(body)


@pytest.mark.parametrize("enc_type", [AES_GCM, XCHACHA20])
async def test_three_hops_to_a_destination_and_back(enc_type: str) -> None:
    net = Network(4)
    path = [Hop(k.public_key) for k in net.keys[:3]]
    destination = Hop(net.keys[3].public_key)
    payload = json.dumps({"method": "info", "params": {}}).encode()
    request = build(payload, path, destination, enc_type)
    status, body, _ = await net.nodes[path[0].ed25519].handle(request.body)
    assert status == 200
    assert read_response(request, body) == (200, {"hf": [19, 4], "version": [2, 8, 0]})
    assert net.requests == [payload]  # only the destination read the request
    # each hop saw only where to send next, never the payload or the destination's key, except the last
    relays = {
        k.public_key: [e for e in net.seen[k.public_key] if e["event"] == "onion relay"] for k in net.keys
    }
    assert [r[0]["next"] for r in (relays[h.ed25519] for h in path)] == [
        path[1].ed25519.hex()[:12],
        path[2].ed25519.hex()[:12],
        destination.ed25519.hex()[:12],
    ]
    assert [e["event"] for e in net.seen[destination.ed25519]] == ["onion destination"]
    # an error from the storage RPC comes back encrypted with its status
    failing = build(json.dumps({"method": "nope", "params": {}}).encode(), path, destination, enc_type)
    status, body, _ = await net.nodes[path[0].ed25519].handle(failing.body)
    assert status == 200 and read_response(failing, body) == (400, "no method nope")


async def test_broken_layers_are_refused_and_never_forwarded() -> None:
    net = Network(4)
    entry = net.nodes[net.keys[0].public_key]
    path = [Hop(k.public_key) for k in net.keys[:3]]
    good = build(b'{"method":"info","params":{}}', path, Hop(net.keys[3].public_key)).body
    assert (await entry.handle(b"\x01\x00"))[:2] == (
        400,
        b"Error parsing onion request: Unexpected payload size; expected ciphertext size",
    )
    assert (await entry.handle(b"\xff\x00\x00\x00abc{}"))[0] == 400
    blob, meta = split(good)
    no_key = combine(blob, {"enc_type": meta["enc_type"]})
    assert (await entry.handle(no_key))[:2] == (
        400,
        b"Error parsing onion request: invalid ephemeral_key: expected 64 hex digits",
    )
    bad_type = combine(blob, {**meta, "enc_type": "rot13"})
    assert (await entry.handle(bad_type))[:2] == (
        400,
        b"Error parsing onion request: Invalid encryption type rot13",
    )
    tampered = combine(blob[:-1] + bytes([blob[-1] ^ 1]), meta)
    assert (await entry.handle(tampered))[:2] == (400, b"Invalid ciphertext")
    too_far = combine(blob, {**meta, "hop_no": 16})
    assert (await entry.handle(too_far))[:2] == (400, b"onion request max path length exceeded")
    assert all(not [e for e in events if e["event"] == "onion relay"] for events in net.seen.values())
    # a next hop this node does not know
    stranger = Hop(ed25519.SigningKey(b"\x55" * 32).public_key)
    lost = build(b'{"method":"info","params":{}}', [Hop(net.keys[0].public_key)], stranger)
    assert (await entry.handle(lost.body))[:2] == (
        502,
        f"Next node not found: {stranger.ed25519.hex()}".encode(),
    )
    # an inner layer that is not a layer: the error is sealed to this hop's ephemeral key
    channel = Channel.ephemeral()
    sealed = channel.encrypt(XCHACHA20, b"not a layer", Hop(net.keys[0].public_key).x25519)
    status, body, _ = await entry.handle(
        combine(sealed, {"ephemeral_key": channel.public.hex(), "enc_type": "xchacha20"})
    )
    opened = channel.decrypt(XCHACHA20, base64.b64decode(body), Hop(net.keys[0].public_key).x25519)
    assert status == 200 and json.loads(opened) == {"body": "Invalid json", "status": 400}
    assert net.requests == []
