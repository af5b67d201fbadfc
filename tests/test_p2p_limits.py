"""Per-address limits: the buckets and counts themselves, and the p2p host's inbound connections.

Every connection here comes from 127.0.0.1; :class:`FakeAddresses` stands in for
:func:`p2p.limits.remote_address` to make some of them come from another host (the client binds
its port first, so the host knows it before the connection is accepted)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from p2p import host as host_module
from p2p.limits import AddressCounts, AddressRates, TokenBucket, address_key, is_limited
from p2p.secure import HandshakeFailed, handshake
from tests.test_p2p import CHAIN, key, running, until

JUNK = "198.51.100.7"
HONEST = "203.0.113.2"


class FakeAddresses:
    """``remote_address`` for tests: a client port registered with :meth:`connect` comes from the
    address it was given, any other from ``default``."""

    def __init__(self, default: str = HONEST) -> None:
        self.default = default
        self.by_port: dict[int, str] = {}

    def __call__(self, stream: trio.SocketStream) -> tuple[str, int]:
        port = stream.socket.getpeername()[1]
        return self.by_port.get(port, self.default), port

    async def connect(self, port: int, ip: str) -> trio.SocketStream:
        sock = trio.socket.socket()
        await sock.bind(("127.0.0.1", 0))
        self.by_port[sock.getsockname()[1]] = ip
        await sock.connect(("127.0.0.1", port))
        return trio.SocketStream(sock)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the pieces ----------------------------------------------------------------------------------


def test_addresses_are_keyed_by_ipv4_or_ipv6_slash_64() -> None:
    assert address_key("198.51.100.7") == "198.51.100.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"  # IPv4-mapped: the IPv4 host
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert not is_limited("127.0.0.1", limit_loopback=False)
    assert not is_limited("::1", limit_loopback=False)
    assert not is_limited("::ffff:127.0.0.1", limit_loopback=False)
    assert is_limited("127.0.0.1", limit_loopback=True)
    assert is_limited("198.51.100.7", limit_loopback=False)


def test_a_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket.full(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)  # one token back in half a second
    assert bucket.is_full(100.0) and bucket.tokens == 3.0  # never above the burst
    bucket.spend(100.0, 5.0)  # a cost known afterwards: into debt
    assert not bucket.has_tokens(100.0) and not bucket.has_tokens(101.0)  # -2, then 0
    assert bucket.has_tokens(101.1)


def test_address_rates_are_bounded_in_memory() -> None:
    rates = AddressRates(rate=1.0, burst=1.0, max_addresses=2)
    assert rates.allow("a", 0.0) and rates.allow("b", 0.0)
    assert not rates.allow("c", 0.0)  # the table is full of buckets still in use: refused
    assert not rates.allow("a", 0.5)
    assert rates.allow("c", 1.0)  # a's and b's buckets refilled: forgotten, room for c
    assert set(rates.buckets) == {"c"}
    with pytest.raises(ValueError, match="rate"):
        AddressRates(rate=0.0, burst=1.0)


def test_address_counts_cap_each_address_and_forget_it_when_nothing_is_open() -> None:
    counts = AddressCounts(cap=2)
    assert counts.acquire("a") and counts.acquire("a") and not counts.acquire("a")
    assert counts.acquire("b") and counts["a"] == 2
    counts.release("a")
    assert counts.acquire("a")
    for name in ("a", "a", "b"):
        counts.release(name)
    assert counts.open == {}
    with pytest.raises(ValueError, match="cap"):
        AddressCounts(cap=0)


# -- the host ------------------------------------------------------------------------------------


@pytest.fixture
def addresses(monkeypatch: pytest.MonkeyPatch) -> FakeAddresses:
    fake = FakeAddresses()
    monkeypatch.setattr(host_module, "remote_address", fake)
    return fake


async def _closed_by_host(stream: trio.SocketStream) -> bool:
    """Whether the host hung up on ``stream`` (before the handshake: it sends nothing first)."""
    with trio.move_on_after(0.3):
        try:
            return await stream.receive_some(1) == b""
        except trio.BrokenResourceError:
            return True
    return False


async def test_junk_connections_from_one_address_leave_the_slots_to_others(
    nursery: trio.Nursery, addresses: FakeAddresses
) -> None:
    """One host opens connections and never finishes a handshake, then brings authenticated
    peers under fresh node keys: it holds two handshake slots, then two peer slots, never more;
    a node from another address still gets in."""
    limits: dict[str, Any] = {
        "max_peers": 4,
        "max_inbound_per_ip": 2,
        "max_handshakes": 3,
        "inbound_burst_per_ip": 20.0,
    }
    async with running(nursery, 30, **limits) as (a, _), running(nursery, 31) as (b, _):
        junk = [await addresses.connect(a.port, JUNK) for _ in range(5)]
        await until(lambda: a.handshakes == 2 and a.refused.get("max_inbound_per_ip", 0) == 3)
        assert [await _closed_by_host(stream) for stream in junk[2:]] == [True, True, True]
        assert a.inbound.open == {JUNK: 2}
        b.add_target(a.node_key, "127.0.0.1", a.port)  # from HONEST: the third handshake slot
        await until(lambda: b.node_key in a.peers)
        for stream in junk:
            await stream.aclose()
        await until(lambda: a.handshakes == 0 and a.inbound.open == {HONEST: 1})

        channels = []
        for n in (32, 33, 34):  # node keys cost nothing: three "peers" from the junk host
            stream = await addresses.connect(a.port, JUNK)
            try:
                with trio.fail_after(5):
                    channels.append(await handshake(stream, key(n), chain_id=CHAIN, initiator=True))
            except HandshakeFailed:  # the third: closed before its handshake
                await stream.aclose()
        await until(lambda: len(a.peers) == 3)
        assert len(channels) == 2 and a.inbound.open == {JUNK: 2, HONEST: 1}
        assert a.refused["max_inbound_per_ip"] == 4
        for channel in channels:
            await channel.aclose()


async def test_new_connections_from_one_address_are_rate_limited(
    nursery: trio.Nursery, addresses: FakeAddresses
) -> None:
    clock = Clock()
    async with running(nursery, 35, inbound_per_second_per_ip=1.0, inbound_burst_per_ip=2.0) as (a, _):
        a.clock = clock
        a.inbound_rates.buckets.clear()
        accepted = [await addresses.connect(a.port, JUNK) for _ in range(2)]
        await until(lambda: a.handshakes == 2)
        third = await addresses.connect(a.port, JUNK)
        await until(lambda: a.refused.get("rate_per_ip", 0) == 1)
        assert await _closed_by_host(third)
        other = await addresses.connect(a.port, HONEST)  # another address has its own bucket
        await until(lambda: a.handshakes == 3)
        clock.now += 1.0  # one new connection a second
        fourth = await addresses.connect(a.port, JUNK)
        await until(lambda: a.handshakes == 4)
        assert a.refused == {"rate_per_ip": 1}
        for stream in (*accepted, other, fourth):
            await stream.aclose()


async def test_loopback_is_exempt_from_the_per_address_limits_unless_configured(
    nursery: trio.Nursery,
) -> None:
    """A devnet runs every node on 127.0.0.1: there, the per-address limits do not apply."""
    async with running(nursery, 36, max_inbound_per_ip=1) as (a, _):
        streams = [await trio.open_tcp_stream("127.0.0.1", a.port) for _ in range(3)]
        await until(lambda: a.handshakes == 3)
        assert a.refused == {} and a.inbound.open == {}
        for stream in streams:
            await stream.aclose()
    async with running(nursery, 37, max_inbound_per_ip=1, limit_loopback=True) as (a, _):
        streams = [await trio.open_tcp_stream("127.0.0.1", a.port) for _ in range(3)]
        await until(lambda: a.refused.get("max_inbound_per_ip", 0) == 2)
        assert a.handshakes == 1 and a.inbound.open == {"127.0.0.1": 1}
        for stream in streams:
            await stream.aclose()


async def test_handshake_slots_over_every_address_are_bounded(
    nursery: trio.Nursery, addresses: FakeAddresses
) -> None:
    async with running(nursery, 38, max_handshakes=2) as (a, _):
        streams = [await addresses.connect(a.port, f"198.51.100.{n}") for n in range(1, 4)]
        await until(lambda: a.refused.get("max_handshakes", 0) == 1)
        assert a.handshakes == 2
        for stream in streams:
            await stream.aclose()
        await until(lambda: a.handshakes == 0 and a.inbound.open == {})
