"""Limits keyed by the remote address: token buckets and counts of what each address holds open.

The p2p host (:mod:`p2p.host`) uses them for inbound connections, and the node's HTTP endpoint
(:mod:`appchain.rpc.methods`) for connections, requests and requests in flight. Both key them by
:func:`address_key`: an IPv4 address as it is, an IPv6 address by its /64 network (one host, or
one customer of a provider, is given a whole /64, and could otherwise take a fresh address for
every connection). IPv4-mapped IPv6 addresses count as the IPv4 address they carry.

Loopback addresses are exempt unless the caller says otherwise (:func:`is_limited`): a devnet
runs every node and tool on 127.0.0.1, and only this machine can reach it. Where a reverse proxy
on the same machine forwards public traffic, every client looks like 127.0.0.1, and the operator
sets ``limit_loopback``.

Memory is bounded: :class:`AddressRates` keeps a bucket for at most ``max_addresses`` addresses
(10,000, as the storage server's ``RateLimiter::MAX_CLIENTS``); when it is full it forgets every
bucket that has refilled (those are the same as no bucket), and if none has, a new address is
refused until one does, as the storage server does. :class:`AddressCounts` holds an entry only
while something is open.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import trio

MAX_ADDRESSES = 10_000


def address_key(host: str) -> str:
    """The key an address is limited by: the IPv4 address, or the /64 of an IPv6 one."""
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return host  # not an IP address (a test's name): limited as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def is_limited(host: str, limit_loopback: bool) -> bool:
    """Whether per-address limits apply to ``host`` (loopback only when ``limit_loopback``)."""
    if limit_loopback:
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return not ip.ipv4_mapped.is_loopback
    return not ip.is_loopback


def remote_address(stream: trio.SocketStream) -> tuple[str, int]:
    """The remote IP and port of an accepted connection; ``OSError`` once it is gone.

    The one place the host and the HTTP endpoint learn who connected (tests replace it to act as
    several hosts from 127.0.0.1)."""
    ip, port = stream.socket.getpeername()[:2]
    return str(ip), int(port)


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` held; starts full."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are that many; False (nothing spent) if not."""
        self.refill(now)
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def spend(self, now: float, amount: float) -> None:
        """Spend ``amount`` whatever is left: a cost known only afterwards (the bucket may go
        below zero, and is refused until it has refilled past it)."""
        self.refill(now)
        self.tokens -= amount

    def has_tokens(self, now: float) -> bool:
        self.refill(now)
        return self.tokens > 0

    def is_full(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= self.burst


class AddressRates:
    """One :class:`TokenBucket` per address key: ``rate`` a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, *, max_addresses: int = MAX_ADDRESSES) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate must be above 0 and a burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_addresses = max_addresses
        self.buckets: dict[str, TokenBucket] = {}

    def allow(self, key: str, now: float) -> bool:
        """Spend one token of ``key``'s bucket; False when it is empty (or the table is full)."""
        bucket = self._bucket(key, now)
        return bucket is not None and bucket.take(now)

    def has_tokens(self, key: str, now: float) -> bool:
        """Whether ``key``'s bucket is above zero (False when the table is full)."""
        bucket = self.buckets.get(key)
        if bucket is None:
            return len(self.buckets) < self.max_addresses or self._forget_refilled(now)
        return bucket.has_tokens(now)

    def spend(self, key: str, now: float, amount: float) -> None:
        """Charge ``key`` a cost known afterwards (its bucket may go below zero)."""
        bucket = self._bucket(key, now)
        if bucket is not None:
            bucket.spend(now, amount)

    def _bucket(self, key: str, now: float) -> TokenBucket | None:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_addresses and not self._forget_refilled(now):
                return None
            bucket = self.buckets[key] = TokenBucket.full(self.rate, self.burst, now)
        return bucket

    def _forget_refilled(self, now: float) -> bool:
        """Drop the buckets that are full again; True if that made room."""
        for key in [key for key, bucket in self.buckets.items() if bucket.is_full(now)]:
            del self.buckets[key]
        return len(self.buckets) < self.max_addresses


class AddressCounts:
    """How many of something (connections, requests in flight) each address key holds, at most
    ``cap`` each."""

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("a cap must be at least 1")
        self.cap = cap
        self.open: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        """Count one more for ``key``; False (nothing counted) when it holds ``cap`` already."""
        held = self.open.get(key, 0)
        if held >= self.cap:
            return False
        self.open[key] = held + 1
        return True

    def release(self, key: str) -> None:
        held = self.open[key] - 1
        if held:
            self.open[key] = held
        else:
            del self.open[key]

    def __getitem__(self, key: str) -> int:
        return self.open.get(key, 0)
