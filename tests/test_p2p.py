"""The p2p transport on 127.0.0.1: handshakes bound to node keys, frames, limits, hostile peers.

Every hostile connection (garbage, a cut handshake, a replayed handshake, a wrong identity, an
oversized frame, a flood) must end that connection, score the sender down, and leave the host
serving its honest peers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from p2p.host import DATA, Host, HostConfig, PeerCounts
from p2p.secure import ConnectionCut, HandshakeFailed, PeerClosed, ProtocolViolation, SecureChannel, handshake
from state.crypto import ed25519
from state.types import NodeKey
from tests.exports import Recorder

CHAIN = "p2p-test"


def key(n: int) -> ed25519.SigningKey:
    return ed25519.SigningKey(bytes([n]) * 32)


class Inbox:
    def __init__(self) -> None:
        self.frames: list[tuple[NodeKey, bytes]] = []
        self.arrived = trio.Event()

    def __call__(self, sender: NodeKey, payload: bytes) -> None:
        self.frames.append((sender, payload))
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(10):
            while len(self.frames) < count:
                self.arrived = trio.Event()
                await self.arrived.wait()


@asynccontextmanager
async def running(nursery: trio.Nursery, n: int, **overrides: Any) -> AsyncIterator[tuple[Host, Inbox]]:
    inbox = Inbox()
    logs: list[tuple[str, str, dict[str, Any]]] = []
    host = Host(
        HostConfig(chain_id=CHAIN, **overrides),
        key(n),
        inbox,
        log=lambda level, event, **fields: logs.append((level, event, fields)),
    )
    await nursery.start(host.run)
    host.logs = logs  # type: ignore[attr-defined]
    yield host, inbox


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not condition():
            await trio.sleep(0.01)


async def connect(a: Host, b: Host) -> None:
    b.add_target(a.node_key, "127.0.0.1", a.port)
    await until(lambda: a.node_key in b.peers and b.node_key in a.peers)


async def test_two_hosts_exchange_frames_both_ways(nursery: trio.Nursery) -> None:
    async with running(nursery, 1) as (a, inbox_a), running(nursery, 2) as (b, inbox_b):
        await connect(a, b)
        assert a.send(b.node_key, b"hello b")
        assert b.broadcast(b"hello everyone") == 1
        big = bytes(range(256)) * 2000  # 512 KB: many Noise records, one frame
        assert a.send(b.node_key, big)
        await inbox_b.wait_for(2)
        await inbox_a.wait_for(1)
        assert inbox_b.frames == [(a.node_key, b"hello b"), (a.node_key, big)]
        assert inbox_a.frames == [(b.node_key, b"hello everyone")]
        assert not a.send(NodeKey(bytes(32)), b"nobody")  # not connected


async def test_a_new_connection_wakes_whoever_waits_for_one(nursery: trio.Nursery) -> None:
    """The node greets a new peer (a fresh uptime proof) when it connects, not on its next poll."""
    async with running(nursery, 31) as (a, _), running(nursery, 32) as (b, _):
        waiting = a.connection_made
        assert not waiting.is_set()
        b.add_target(a.node_key, "127.0.0.1", a.port)
        with trio.fail_after(10):
            await waiting.wait()
        assert b.node_key in a.peers and a.connection_made is not waiting and not a.connection_made.is_set()


async def test_simultaneous_dials_leave_one_connection(nursery: trio.Nursery) -> None:
    async with running(nursery, 3) as (a, inbox_a), running(nursery, 4) as (b, _):
        a.add_target(b.node_key, "127.0.0.1", b.port)
        b.add_target(a.node_key, "127.0.0.1", a.port)
        await until(lambda: b.node_key in a.peers and a.node_key in b.peers)
        await trio.sleep(0.5)
        assert list(a.peers) == [b.node_key] and list(b.peers) == [a.node_key]
        # the connection both kept works
        assert b.send(a.node_key, b"still here")
        await inbox_a.wait_for(1)


async def test_a_dial_to_the_wrong_identity_is_refused(nursery: trio.Nursery) -> None:
    async with running(nursery, 5) as (a, _), running(nursery, 6) as (b, _):
        impostor = NodeKey(key(99).public_key)
        b.add_target(impostor, "127.0.0.1", a.port)  # a answers there, but a is not 99
        await until(lambda: b.scores.get(bytes(impostor), 0) < 0)
        assert impostor not in b.peers and a.node_key not in b.peers


async def test_the_hello_proves_the_key(nursery: trio.Nursery) -> None:
    """A client that claims another node's key cannot sign the session's handshake hash."""
    async with running(nursery, 7) as (a, _):
        stream = await trio.open_tcp_stream("127.0.0.1", a.port)
        with pytest.raises(HandshakeFailed):
            await handshake(stream, key(8), chain_id="another-chain", initiator=True)
        await until(lambda: any(e == "handshake failed" for _, e, _ in a.logs))  # type: ignore[attr-defined]


async def test_a_dial_that_times_out_backs_off_and_scores_nobody(nursery: trio.Nursery) -> None:
    """A target that accepts TCP and never answers the handshake (a stopped process, a cut
    link): the dialler times out, backs off and redials; the target is not scored or banned."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    silent = NodeKey(key(98).public_key)
    accepted: list[trio.SocketStream] = []

    async def hold(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        await trio.sleep_forever()

    nursery.start_soon(trio.serve_listeners, hold, [listener])
    async with running(nursery, 20, handshake_timeout=0.2, dial_backoff=(0.05, 0.1)) as (a, _):
        a.add_target(silent, "127.0.0.1", listener.socket.getsockname()[1])
        await until(lambda: len(accepted) >= 5)
        assert a.scores.get(bytes(silent), 0.0) == 0.0 and not a.is_banned(silent) and a.violations == 0
        failures = [f for level, event, f in a.logs if event == "dial failed"]  # type: ignore[attr-defined]
        assert failures and all("timed out" in f["reason"] for f in failures)


async def test_a_handshake_cut_by_a_close_scores_nobody(nursery: trio.Nursery) -> None:
    """A connection that ends mid-handshake (a reset, a peer going away) is no violation, on
    either side; a handshake that runs to the end with bad bytes still is."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    going = NodeKey(key(97).public_key)

    async def read_a_little_and_close(stream: trio.SocketStream) -> None:
        await stream.receive_some(10)
        await stream.aclose()

    nursery.start_soon(trio.serve_listeners, read_a_little_and_close, [listener])
    async with running(nursery, 21, dial_backoff=(0.05, 0.1)) as (a, _):
        a.add_target(going, "127.0.0.1", listener.socket.getsockname()[1])
        await until(lambda: sum(1 for _, e, _ in a.logs if e == "dial failed") >= 3)  # type: ignore[attr-defined]
        assert a.violations == 0 and a.scores.get(bytes(going), 0.0) == 0.0
        for _ in range(5):  # inbound: half a handshake record, then a close
            stream = await trio.open_tcp_stream("127.0.0.1", a.port)
            await stream.send_all((100).to_bytes(2, "big") + b"\x01" * 10)
            await stream.aclose()
        await _raw(a.port, bytes(range(256)) * 4)  # garbage: a violation
        await until(lambda: a.violations == 1)
        await trio.sleep(0.2)
        assert a.violations == 1


async def test_a_peer_that_hangs_up_at_once_is_redialled_with_backoff(nursery: trio.Nursery) -> None:
    """A peer that completes the handshake and hangs up at once (it banned us) is not redialled
    every tick of the dial loop."""
    async with running(nursery, 22) as (a, _), running(nursery, 23) as (b, _):
        a.banned_keys[bytes(b.node_key)] = float("inf")
        b.add_target(a.node_key, "127.0.0.1", a.port)
        await trio.sleep(3.0)
        connects = sum(1 for _, event, _ in b.logs if event == "peer connected")  # type: ignore[attr-defined]
        assert 1 <= connects <= 6  # backoff 0.25, 0.5, 1, 2 s (jittered); the 0.1 s loop gave 30


async def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a raw TCP connection; return what came back before the host closed it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    with trio.fail_after(10):
        try:
            await stream.send_all(data)
            while chunk := await stream.receive_some(65536):
                received += chunk
        except trio.BrokenResourceError:
            pass
    await stream.aclose()
    return received


async def test_hostile_connections_are_dropped_and_the_host_keeps_serving(nursery: trio.Nursery) -> None:
    async with running(nursery, 10, handshake_timeout=1.0) as (a, inbox_a), running(nursery, 11) as (b, _):
        await connect(a, b)
        # garbage, and a handshake cut short
        await _raw(a.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 10)
        await _raw(a.port, (100).to_bytes(2, "big") + b"\x01" * 10)
        # a replayed handshake: the initiator's bytes of a real session, sent again
        recorder = Recorder(await trio.open_tcp_stream("127.0.0.1", a.port))
        channel = await handshake(recorder, key(12), chain_id=CHAIN, initiator=True)
        await channel.send([DATA + b"genuine"])
        await inbox_a.wait_for(1)
        await channel.aclose()
        replayed = bytes(recorder.sent)
        answer = await _raw(a.port, replayed)
        assert len(answer) < len(replayed) + 200  # a's own handshake message, then it hung up
        await until(lambda: a.violations >= 3)
        # an oversized frame on an authenticated channel
        stream = await trio.open_tcp_stream("127.0.0.1", a.port)
        channel = await handshake(stream, key(13), chain_id=CHAIN, initiator=True, max_frame=1 << 30)
        big_key = bytes(channel.remote_key)
        assert big_key == bytes(a.node_key)
        with pytest.raises(trio.BrokenResourceError):  # the host hangs up before the frame is through
            await channel.send([DATA + bytes(a.config.max_frame + 10)])
        await until(lambda: a.scores.get(bytes(key(13).public_key), 0) < 0)
        await until(lambda: NodeKey(key(13).public_key) not in a.peers)
        # through all of it, the honest peer stays connected and served
        assert b.node_key in a.peers
        assert b.send(a.node_key, b"after the storm")
        await until(lambda: (b.node_key, b"after the storm") in inbox_a.frames)


async def test_a_flooding_peer_is_dropped(nursery: trio.Nursery) -> None:
    async with running(nursery, 14, frames_per_second=100.0, frame_burst=200.0) as (a, _):
        stream = await trio.open_tcp_stream("127.0.0.1", a.port)
        channel = await handshake(stream, key(15), chain_id=CHAIN, initiator=True)
        with pytest.raises(
            (trio.BrokenResourceError, trio.ClosedResourceError, ProtocolViolation, PeerClosed)
        ):
            with trio.fail_after(10):
                for _ in range(100):
                    await channel.send([DATA + b"x"] * 50)
                    await trio.sleep(0)
                await channel.receive()  # the host closes: the read ends
        assert a.scores.get(bytes(key(15).public_key), 0) < 0


async def test_send_queues_are_bounded(nursery: trio.Nursery) -> None:
    async with running(nursery, 16, queue_bytes=10_000) as (a, _):
        stream = await trio.open_tcp_stream("127.0.0.1", a.port)
        channel: SecureChannel = await handshake(stream, key(17), chain_id=CHAIN, initiator=True)
        peer = NodeKey(key(17).public_key)
        await until(lambda: peer in a.peers)
        # the client never reads: the host's queue for it fills and further frames are refused
        accepted = [a.send(peer, bytes(1000)) for _ in range(50)]
        assert accepted[0] and not all(accepted)
        assert a.peers[peer].queued <= 10_000
        await channel.aclose()


async def test_repeat_offenders_are_banned(nursery: trio.Nursery) -> None:
    async with running(nursery, 18, violation_points=60.0, ban_seconds=30.0) as (a, _):
        offender = key(19)
        for _ in range(2):
            stream = await trio.open_tcp_stream("127.0.0.1", a.port)
            channel = await handshake(stream, offender, chain_id=CHAIN, initiator=True)
            await channel.send([b"\x07unknown kind"])
            with trio.fail_after(10):
                while True:
                    try:
                        await channel.receive()
                    except (
                        ProtocolViolation,
                        PeerClosed,
                        trio.BrokenResourceError,
                        trio.ClosedResourceError,
                    ):
                        break
        assert a.is_banned(offender.public_key)
        stream = await trio.open_tcp_stream("127.0.0.1", a.port)
        channel = await handshake(stream, offender, chain_id=CHAIN, initiator=True)  # completes…
        with pytest.raises(
            (ProtocolViolation, PeerClosed, trio.BrokenResourceError, trio.ClosedResourceError)
        ):
            with trio.fail_after(10):
                await channel.receive()  # …but the host hangs up at once


class _Dribble(trio.abc.Stream):
    """A stream that hands out at most ``step`` bytes per read (a slow or fragmenting link)."""

    def __init__(self, inner: trio.abc.Stream, step: int) -> None:
        self.inner, self.step, self.reads = inner, step, 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self.reads += 1
        return await self.inner.receive_some(min(self.step, max_bytes or self.step))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _channels() -> tuple[SecureChannel, SecureChannel]:
    left, right = trio.testing.memory_stream_pair()
    channels: list[SecureChannel] = []
    async with trio.open_nursery() as nursery:

        async def side(stream: trio.abc.Stream, n: int, initiator: bool) -> None:
            channels.append(await handshake(stream, key(n), chain_id="test", initiator=initiator))

        nursery.start_soon(side, left, 1, True)
        nursery.start_soon(side, right, 2, False)
    first, second = sorted(channels, key=lambda c: not c.initiator)
    return first, second


@pytest.mark.parametrize("step", [1, 7, 65_536])
async def test_frames_come_out_whole_whatever_the_reads_cut(step: int) -> None:
    sender, receiver = await _channels()
    receiver.stream = dribble = _Dribble(receiver.stream, step)
    frames = [bytes([n]) * n for n in range(1, 40)] + [b"\xab" * 150_000]  # the last spans records
    for frame in frames:  # a record (or three) each
        await sender.send([frame])
    got: list[bytes] = []
    while len(got) < len(frames):
        got += await receiver.receive_batch()
    assert got == frames
    if step == 65_536:  # a burst is read in a few reads, not two per record (82 of them)
        assert dribble.reads <= 6
    await sender.stream.send_all(b"\x00\x00")  # an empty record
    with pytest.raises(ProtocolViolation, match="empty record"):
        await receiver.receive()


async def test_a_close_between_frames_is_clean_and_mid_record_is_a_cut() -> None:
    sender, receiver = await _channels()
    await sender.send([b"last"])
    await sender.stream.aclose()
    assert await receiver.receive() == b"last"
    with pytest.raises(PeerClosed):
        await receiver.receive()
    sender, receiver = await _channels()
    await sender.stream.send_all(b"\x00\x10partial")
    await sender.stream.aclose()
    with pytest.raises(ConnectionCut):
        await receiver.receive()


# -- targets the application replaces (a few gossip peers, and quorum members while on duty) ------


def address(host: Host) -> tuple[str, int]:
    return ("127.0.0.1", host.port)


async def test_retarget_closes_what_it_dialled_and_leaves_what_the_other_side_dialled(
    nursery: trio.Nursery,
) -> None:
    async with running(nursery, 40) as (a, _), running(nursery, 41) as (b, _), running(nursery, 42) as (c, _):
        a.retarget({b.node_key: address(b)})
        c.retarget({a.node_key: address(a)})
        await until(lambda: b.node_key in a.peers and c.node_key in a.peers)
        assert a.counts() == PeerCounts(inbound=1, outbound=1, pending=0)
        a.retarget({})  # b is no longer wanted; c dialled a, and only c may close that
        await until(lambda: a.node_key not in b.peers and b.node_key not in a.peers)
        await trio.sleep(0.5)  # no redial either way
        assert list(a.peers) == [c.node_key] and a.counts() == PeerCounts(1, 0, 0)
        assert any(
            e == "peer dropped" and f["reason"] == "no longer a target"
            for _, e, f in a.logs  # type: ignore[attr-defined]
        )
        c.retarget({})
        await until(lambda: not a.peers and not c.peers)


async def test_a_payload_for_a_target_being_dialled_goes_out_once_connected(nursery: trio.Nursery) -> None:
    """A duty connection is opened as the duty starts: Pulse's first stage, sent before the
    handshake is done, waits for it rather than being lost."""
    async with running(nursery, 43) as (a, _), running(nursery, 44) as (b, inbox_b):
        stranger = NodeKey(key(45).public_key)
        a.retarget({b.node_key: address(b)})
        assert b.node_key not in a.peers  # nothing awaited since: not connected yet
        assert a.send(b.node_key, b"stage one") and a.send(b.node_key, b"stage two")
        assert a.counts().pending == 2
        assert not a.send(stranger, b"not a target: dropped")
        await inbox_b.wait_for(2)
        assert [payload for _, payload in inbox_b.frames] == [b"stage one", b"stage two"]
        assert a.counts().pending == 0


def test_what_waits_for_a_target_is_bounded_and_expires() -> None:
    now = [1000.0]
    config = HostConfig(chain_id=CHAIN, pending_frames=3, pending_bytes=2_000, pending_seconds=5.0)
    host = Host(config, key(46), lambda key, payload: None, clock=lambda: now[0])
    target = NodeKey(key(47).public_key)
    host.retarget({target: ("127.0.0.1", 9)})
    assert [host.send(target, bytes(100)) for _ in range(4)] == [True, True, True, False]  # frames
    host.retarget({target: ("127.0.0.1", 9), NodeKey(key(48).public_key): ("127.0.0.1", 10)})
    assert host.counts().pending == 3  # a target that stays keeps what waits for it
    now[0] += 5.5
    assert host.send(target, bytes(1_500))  # the three expired: room again
    assert not host.send(target, bytes(600))  # bytes
    assert host.counts().pending == 1
    host.retarget({target: ("127.0.0.2", 9)})  # moved: what waits follows it
    assert host.counts().pending == 1
    host.retarget({})
    assert host.counts().pending == 0 and not host.send(target, b"x")


async def test_max_peers_bounds_inbound_strangers_not_dialled_peers_nor_targets(
    nursery: trio.Nursery,
) -> None:
    async with (
        running(nursery, 50, max_peers=1) as (a, _),
        running(nursery, 51) as (b, _),
        running(nursery, 52) as (c, _),
        running(nursery, 53) as (d, _),
    ):
        a.retarget({b.node_key: address(b)})  # dialled: not counted
        await until(lambda: b.node_key in a.peers)
        c.retarget({a.node_key: address(a)})  # the one inbound stranger allowed
        await until(lambda: c.node_key in a.peers)
        d.retarget({a.node_key: address(a)})
        await until(lambda: a.refused.get("max_peers", 0) >= 1)
        assert d.node_key not in a.peers
        a.retarget({b.node_key: address(b), d.node_key: address(d)})  # d is wanted now (a duty)
        await until(lambda: d.node_key in a.peers and a.node_key in d.peers)
        assert set(a.peers) == {b.node_key, c.node_key, d.node_key}


async def test_a_probe_proves_the_key_and_keeps_no_connection(nursery: trio.Nursery) -> None:
    async with running(nursery, 54) as (a, _), running(nursery, 55) as (b, _):
        assert await a.probe(b.node_key, *address(b))
        assert not await a.probe(NodeKey(key(56).public_key), *address(b))  # someone else answers
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        closed_port = listener.socket.getsockname()[1]
        await listener.aclose()
        assert not await a.probe(b.node_key, "127.0.0.1", closed_port)
        await until(lambda: not b.peers)
        assert not a.peers
