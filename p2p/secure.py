"""Authenticated, encrypted connections: a Noise XX handshake bound to the node's Ed25519 key.

The handshake is ``Noise_XX_25519_ChaChaPoly_BLAKE2b`` (the ``noiseprotocol`` package), with the
prologue ``appchain-p2p/1`` and the chain id, so nodes of different chains (or protocol versions)
never finish a handshake. Each side's Noise static key is a fresh X25519 key; what binds the
channel to a service node is the first frame each side sends over it, a :class:`Hello`: the
node's Ed25519 key and its signature over the handshake hash and the side's role. The handshake
hash covers both ephemeral keys, so a signature is good for this one session only: a replayed
handshake (or a hello taken from another session) fails, and only the holder of a node key can
claim it. A dialer that knows whom it called checks the key it got against the one it expected.

Wire format (all lengths big-endian)::

    handshake   u16 length, then a Noise handshake message (three of them: XX)
    records     u16 length, then a Noise transport message (ciphertext, at most 65,535 bytes)

The plaintext of the records is a stream of frames, ``u32 length`` then that many bytes, at
most ``max_frame`` each. Frames are coalesced: :meth:`SecureChannel.send` packs every frame it is
given into as few records as fit and writes them with one ``send_all`` (DESIGN.md measured
~20x more messages per second that way on loopback).

Anything that does not follow this (a record that does not decrypt, a frame over the limit)
raises :class:`ProtocolViolation`; the caller drops the peer and scores it. A connection that
ends part way (mid-frame: :class:`ConnectionCut`; mid-handshake: :class:`HandshakeCut`) is no
violation: a peer may always hang up, and a reset or a partition cuts honest ones.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import trio
from cryptography.exceptions import InvalidTag
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import NoiseInvalidMessage, NoiseMaxNonceError

from state.crypto import ed25519
from state.encoding import DecodeError, Record, decode, encode
from state.types import Ed25519Signature, NodeKey

NOISE_PROTOCOL = b"Noise_XX_25519_ChaChaPoly_BLAKE2b"
PROLOGUE = b"appchain-p2p/1"
MAX_RECORD = 65535
TAG_SIZE = 16
MAX_PLAINTEXT = MAX_RECORD - TAG_SIZE
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
RECEIVE_SIZE = 65_536
"""Bytes asked of the socket at once: a channel reads whatever has arrived (many records, as
many as a busy peer has written) into its buffer and takes the records out of it, rather than
two reads of exact sizes per record."""
HELLO_CONTEXT = b"appchain p2p hello"
INITIATOR, RESPONDER = b"\x01", b"\x02"


class ProtocolViolation(Exception):
    """The peer broke the transport protocol: drop the connection (and score the peer down)."""


class PeerClosed(Exception):
    """The peer closed the connection between two frames: a clean end, not a violation."""


class ConnectionCut(PeerClosed):
    """The connection ended part way through a message (closed or reset): a peer going away or
    the network, not a violation (closing is always allowed, so a cut proves nothing)."""


class HandshakeFailed(ProtocolViolation):
    """The handshake did not complete: bad bytes, wrong chain, wrong or unproven identity."""


class HandshakeCut(HandshakeFailed):
    """The connection ended before the handshake did (closed or reset): not scored."""


_CUT = (PeerClosed, trio.BrokenResourceError, trio.ClosedResourceError, OSError)
"""What a connection that ended raises: never the peer's violation."""


class Hello(Record, frozen=True):
    """The first frame on a channel: who this side is, proven by a signature over the session."""

    node_key: NodeKey
    signature: Ed25519Signature
    listen_port: int
    """The port this node accepts connections on (0: it does not)."""
    version: str


def compute_hello_message(handshake_hash: bytes, role: bytes) -> bytes:
    return HELLO_CONTEXT + role + handshake_hash


async def _receive_exactly(stream: trio.abc.ReceiveStream, size: int, *, clean_end: bool = False) -> bytes:
    """``size`` bytes; a close before the first of them is :class:`PeerClosed` when
    ``clean_end`` (between two frames), any other close a :class:`ConnectionCut`."""
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            if clean_end and not data:
                raise PeerClosed("the peer closed the connection")
            raise ConnectionCut("the connection closed mid-message")
        data += chunk
    return bytes(data)


async def _receive_record(stream: trio.abc.ReceiveStream, *, clean_end: bool = False) -> bytes:
    size = int.from_bytes(await _receive_exactly(stream, 2, clean_end=clean_end), "big")
    if size == 0:
        raise ProtocolViolation("an empty record")
    return await _receive_exactly(stream, size)


def _record(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


class SecureChannel:
    """A connection after the handshake: frames in, frames out, encrypted and authenticated."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        noise: NoiseConnection,
        *,
        remote: Hello,
        initiator: bool,
        max_frame: int,
    ) -> None:
        self.stream = stream
        self.remote = remote
        self.initiator = initiator
        self.max_frame = max_frame
        self._noise = noise
        self._plain = bytearray()
        self._raw = bytearray()
        self._raw_start = 0
        """Received bytes not yet taken as records: ``_raw[_raw_start:]``."""
        self._send_lock = trio.Lock()

    @property
    def remote_key(self) -> NodeKey:
        return self.remote.node_key

    def _encrypt(self, frames: Sequence[bytes]) -> bytes:
        plain = bytearray()
        for frame in frames:
            if len(frame) > self.max_frame:
                raise ValueError(f"a frame of {len(frame)} bytes is over the {self.max_frame}-byte limit")
            plain += len(frame).to_bytes(4, "big")
            plain += frame
        out = bytearray()
        for start in range(0, len(plain), MAX_PLAINTEXT):
            out += _record(self._noise.encrypt(bytes(plain[start : start + MAX_PLAINTEXT])))
        return bytes(out)

    async def send(self, frames: Sequence[bytes]) -> None:
        """Send ``frames`` in order, coalesced into as few records and writes as possible."""
        if not frames:
            return
        async with self._send_lock:  # records must go out in nonce order
            await self.stream.send_all(self._encrypt(frames))

    async def _fill(self, size: int) -> None:
        """Decrypt records until ``size`` plaintext bytes are there, then every further record
        already received (no more waiting: a burst becomes one :meth:`receive_batch`)."""
        while len(self._plain) < size:
            record = self._take_record()
            while record is None:
                await self._receive_more(clean_end=not self._plain)
                record = self._take_record()
            self._decrypt(record)
        while (record := self._take_record()) is not None:
            self._decrypt(record)

    def _decrypt(self, record: bytes) -> None:
        try:
            self._plain += self._noise.decrypt(record)
        except (InvalidTag, NoiseInvalidMessage, NoiseMaxNonceError) as exc:
            raise ProtocolViolation(f"a record that does not decrypt ({type(exc).__name__})") from None

    def _take_record(self) -> bytes | None:
        """The next whole record received, or None while it is incomplete."""
        raw, start = self._raw, self._raw_start
        if len(raw) - start < 2:
            return None
        size = int.from_bytes(raw[start : start + 2], "big")
        if size == 0:
            raise ProtocolViolation("an empty record")
        end = start + 2 + size
        if len(raw) < end:
            return None
        record = bytes(raw[start + 2 : end])
        if end == len(raw):
            raw.clear()
            self._raw_start = 0
        else:
            self._raw_start = end
        return record

    async def _receive_more(self, *, clean_end: bool) -> None:
        """Read what has arrived; a close with nothing pending is :class:`PeerClosed` when
        ``clean_end`` (between two frames), any other close a :class:`ConnectionCut`."""
        if self._raw_start:
            del self._raw[: self._raw_start]  # what is left is part of one record
            self._raw_start = 0
        chunk = await self.stream.receive_some(RECEIVE_SIZE)
        if not chunk:
            if clean_end and not self._raw:
                raise PeerClosed("the peer closed the connection")
            raise ConnectionCut("the connection closed mid-message")
        self._raw += chunk

    def _frame_size(self, start: int) -> int | None:
        """The size of the frame whose header starts at ``start`` of the decrypted bytes (None
        while the header is incomplete); :class:`ProtocolViolation` over the limit."""
        if len(self._plain) - start < 4:
            return None
        size = int.from_bytes(self._plain[start : start + 4], "big")
        if size > self.max_frame:
            raise ProtocolViolation(f"a frame of {size} bytes is over the {self.max_frame}-byte limit")
        return size

    async def receive(self) -> bytes:
        """The next frame; :class:`ProtocolViolation` on garbage or an oversized frame,
        :class:`ConnectionCut` when the connection ends mid-frame."""
        await self._fill(4)
        size = self._frame_size(0)
        assert size is not None
        await self._fill(4 + size)
        frame = bytes(self._plain[4 : 4 + size])
        del self._plain[: 4 + size]
        return frame

    async def receive_batch(self) -> list[bytes]:
        """The next frame and every further frame already decrypted (one wait for a burst)."""
        frames = [await self.receive()]
        start = 0
        while (size := self._frame_size(start)) is not None and len(self._plain) - start - 4 >= size:
            frames.append(bytes(self._plain[start + 4 : start + 4 + size]))
            start += 4 + size
        del self._plain[:start]
        return frames

    async def aclose(self) -> None:
        await self.stream.aclose()


async def handshake(
    stream: trio.abc.Stream,
    identity: ed25519.SigningKey,
    *,
    chain_id: str,
    initiator: bool,
    listen_port: int = 0,
    version: str = "",
    expected: NodeKey | None = None,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> SecureChannel:
    """Run the Noise XX handshake and the hello exchange; the caller bounds it with a timeout."""
    noise = NoiseConnection.from_name(NOISE_PROTOCOL)
    if initiator:
        noise.set_as_initiator()
    else:
        noise.set_as_responder()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, secrets.token_bytes(32))
    noise.set_prologue(PROLOGUE + b"\x00" + chain_id.encode())
    noise.start_handshake()
    try:
        if initiator:
            await stream.send_all(_record(noise.write_message()))
            noise.read_message(await _receive_record(stream))
            await stream.send_all(_record(noise.write_message()))
        else:
            noise.read_message(await _receive_record(stream))
            await stream.send_all(_record(noise.write_message()))
            noise.read_message(await _receive_record(stream))
    except _CUT as exc:
        raise HandshakeCut(f"handshake: {exc or type(exc).__name__}") from None
    except ProtocolViolation as exc:
        raise HandshakeFailed(f"handshake: {exc}") from None
    except Exception as exc:  # noiseprotocol and cryptography raise many kinds
        raise HandshakeFailed(f"handshake: {type(exc).__name__}") from None
    if not noise.handshake_finished:
        raise HandshakeFailed("handshake: not finished")
    handshake_hash = noise.get_handshake_hash()
    mine, theirs = (INITIATOR, RESPONDER) if initiator else (RESPONDER, INITIATOR)
    hello = Hello(
        NodeKey(identity.public_key),
        identity.sign(compute_hello_message(handshake_hash, mine)),
        listen_port,
        version,
    )
    channel = SecureChannel(stream, noise, remote=hello, initiator=initiator, max_frame=max_frame)
    try:
        await channel.send([encode(hello)])
        remote = decode(await channel.receive(), Hello)
    except DecodeError:
        raise HandshakeFailed("hello: not a hello frame") from None
    except _CUT as exc:
        raise HandshakeCut(f"hello: {exc or type(exc).__name__}") from None
    except ProtocolViolation as exc:
        raise HandshakeFailed(f"hello: {exc}") from None
    if not ed25519.verify(remote.node_key, compute_hello_message(handshake_hash, theirs), remote.signature):
        raise HandshakeFailed("hello: the signature does not prove the claimed node key")
    if expected is not None and remote.node_key != expected:
        raise HandshakeFailed(
            f"hello: expected node {expected.hex()[:16]}…, got {remote.node_key.hex()[:16]}…"
        )
    if remote.node_key == hello.node_key:
        raise HandshakeFailed("hello: a connection to ourselves")
    channel.remote = remote
    return channel
