"""The simulated internet under :mod:`consensus.simulator`'s bounded topology: where nodes are,
how long a message takes, which connections each node holds and what it sent.

- :class:`Wan`: nodes spread over regions (:data:`REGIONS`), a one-way latency per pair of regions
  (20 ms within one, up to 300 ms across the world), a jitter on top, and a per-node upload
  bandwidth: a node's messages leave one after another at that rate, so a node that sends much
  (a producer pushing its block, a node answering a sync) sees its later messages wait.
- :class:`Links`: the connections nodes hold (who dialled, why, since when). A message to a node
  not yet connected opens a connection first: a TCP and Noise XX handshake, two round trips.
- :class:`Traffic`: messages and bytes each node sent and received, by kind (blocks, Pulse,
  proofs, announcements…), counted as frames on the wire (the payload, the channel byte and the
  Noise record's length and tag).

Pure bookkeeping: the simulator draws every random number from its one seeded generator and
hands it in, so a run stays the same byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from consensus.messages import (
    Certified,
    CheckpointVote,
    Have,
    Proofs,
    ProofsRequest,
    SignedBlock,
    SyncRequest,
    SyncResponse,
    TxBatch,
    TxMessage,
    VoteMessage,
    Want,
)
from consensus.pulse import PulseMessage
from consensus.uptime import UptimeProof

REGIONS = ("north-america-east", "north-america-west", "europe", "asia", "oceania", "south-america")
LATENCY_MS: tuple[tuple[int, ...], ...] = (
    # one way, milliseconds; rows and columns in the order of REGIONS
    (20, 40, 45, 110, 120, 70),
    (40, 20, 80, 70, 90, 100),
    (45, 80, 20, 130, 160, 110),
    (110, 70, 130, 25, 60, 190),
    (120, 90, 160, 60, 20, 300),
    (70, 100, 110, 190, 300, 25),
)
"""A world of six regions, about as far apart as the internet's: 20 ms inside a region, 300 ms
from Oceania to South America."""
FRAME_OVERHEAD = 19
"""Bytes a frame costs on the wire beyond its payload: the channel byte, the record's 2-byte length
and its 16-byte Noise tag (TCP/IP headers are not counted)."""
HANDSHAKE_TRIPS = 2.0
"""Round trips before a new connection carries data: TCP's, and Noise XX's one and a half."""


@dataclass(frozen=True)
class Wan:
    """A wide-area network: regions, latencies, jitter, upload bandwidth."""

    jitter: float = 0.1
    """Each message's latency is the pair's times a factor drawn from [1, 1 + jitter]."""
    upload: float = 12_500_000.0
    """Bytes per second each node can send (100 Mbit/s); 0: unlimited."""

    def place(self, nodes: int, rng: random.Random) -> list[int]:
        """A region for each of ``nodes``: as many in each region as can be, shuffled."""
        regions = [index % len(REGIONS) for index in range(nodes)]
        rng.shuffle(regions)
        return regions

    @staticmethod
    def latency(a: int, b: int) -> float:
        """One-way latency between regions ``a`` and ``b``, seconds (no jitter)."""
        return LATENCY_MS[a][b] / 1000


KINDS: dict[type, str] = {
    PulseMessage: "pulse",
    SignedBlock: "blocks",
    SyncResponse: "blocks",
    SyncRequest: "blocks",
    Certified: "certificates",
    CheckpointVote: "checkpoint_votes",
    VoteMessage: "obligations_votes",
    UptimeProof: "proofs",
    Proofs: "proofs",
    ProofsRequest: "proofs",
    TxMessage: "transactions",
    TxBatch: "transactions",
    Have: "announcements",
    Want: "announcements",
}
"""What each message counts as in :class:`Traffic` (anything else: ``other``)."""
DIRECTORY = frozenset({"proofs"})
"""Kinds that keep every node's directory of every other (uptime proofs): their cost per node grows
with the network by design, as in Oxen, and is reported apart from the consensus traffic."""


def kind_of(message: object) -> str:
    return KINDS.get(type(message), "other")


@dataclass
class NodeTraffic:
    sent: int = 0
    received: int = 0
    sent_bytes: int = 0
    received_bytes: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    """Bytes sent and received, by kind (:data:`KINDS`)."""


class Traffic:
    """Messages and bytes per node, over the whole run."""

    def __init__(self, nodes: int) -> None:
        self.nodes = [NodeTraffic() for _ in range(nodes)]

    def sent(self, node: int, parts: tuple[tuple[str, int], ...]) -> None:
        """One message sent by ``node``: its bytes by kind."""
        entry = self.nodes[node]
        entry.sent += 1
        entry.sent_bytes += self._add(entry, parts)

    def received(self, node: int, parts: tuple[tuple[str, int], ...]) -> None:
        """One message received by ``node``: its bytes by kind."""
        entry = self.nodes[node]
        entry.received += 1
        entry.received_bytes += self._add(entry, parts)

    @staticmethod
    def _add(entry: NodeTraffic, parts: tuple[tuple[str, int], ...]) -> int:
        by_kind, total = entry.by_kind, 0
        for kind, size in parts:
            by_kind[kind] = by_kind.get(kind, 0) + size
            total += size
        return total


@dataclass
class Link:
    """A connection between two nodes."""

    dialler: int
    ready: float
    """When it carries data (the handshake done)."""
    gossip: bool = False
    """Whether the dialler keeps it as a gossip peer (else for a duty)."""


class Links:
    """The connections every node holds, one per pair, and each node's inbound count."""

    def __init__(self, nodes: int) -> None:
        self.links: dict[tuple[int, int], Link] = {}
        self.peers: list[set[int]] = [set() for _ in range(nodes)]
        self.inbound = [0] * nodes
        self.most = [0] * nodes
        """The most connections each node held at once."""
        self.over = [0] * nodes
        """How many times a node held more than its bound when it took a new connection."""

    @staticmethod
    def pair(a: int, b: int) -> tuple[int, int]:
        return (a, b) if a < b else (b, a)

    def get(self, a: int, b: int) -> Link | None:
        return self.links.get(self.pair(a, b))

    def open(self, dialler: int, target: int, ready: float, *, gossip: bool) -> Link:
        link = Link(dialler, ready, gossip)
        self.links[self.pair(dialler, target)] = link
        self.peers[dialler].add(target)
        self.peers[target].add(dialler)
        self.inbound[target] += 1
        for node in (dialler, target):
            self.most[node] = max(self.most[node], len(self.peers[node]))
        return link

    def close(self, a: int, b: int) -> None:
        link = self.links.pop(self.pair(a, b), None)
        if link is None:
            return
        self.peers[a].discard(b)
        self.peers[b].discard(a)
        other = b if link.dialler == a else a
        self.inbound[other] -= 1

    def close_all(self, node: int) -> None:
        for other in list(self.peers[node]):
            self.close(node, other)

    def dialled_by(self, node: int) -> Iterable[tuple[int, Link]]:
        for other in self.peers[node]:
            link = self.links[self.pair(node, other)]
            if link.dialler == node:
                yield other, link
