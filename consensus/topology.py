"""Whom a node keeps connections to: a few gossip peers, and its quorums' members while on duty.

Never a full mesh (DESIGN.md "Topology at scale"; Oxen's p2p layer and its quorumnet):

- **Gossip peers.** Each node dials :attr:`Topology.outbound` peers (8) and accepts up to
  :attr:`Topology.max_inbound` (64). The ones it dials are its configured peers first (kept by
  preference: an operator's choice, and the stable core of the graph), then nodes drawn at
  random from those whose fresh uptime proofs it holds. Every :attr:`Topology.refresh` seconds
  one drawn peer that is not an *anchor* (the :attr:`Topology.anchors` held longest) is swapped
  for a new draw, so the graph heals and mixes slowly without churning; a drawn peer not connected
  for :attr:`Topology.dial_grace` seconds (stopped, unreachable) is replaced at once. Blocks,
  certificates, transactions, proofs and obligations votes spread over these peers
  (:mod:`consensus.gossip`).
- **Duty connections.** Pulse stages and checkpoint votes go straight to the members of the
  quorum, so a node connects to the other members of every quorum it sits in for the duty's
  length: the next height's Pulse quorum of the round under way and of the next round (known once
  the tip is applied, a block time before the round starts), and the checkpoint quorums of the
  checkpoints not yet final that it votes in (known four blocks ahead, from the state). They are
  :meth:`consensus.node.NodeCore.duty_peers`; the driver dials them and closes what it dialled
  when the duty ends (the other side closes what it dialled).

So a node holds at most ``outbound + max_inbound`` gossip connections plus its current quorum
members, whatever the size of the network.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

from consensus.uptime import ProofBook
from state.types import NodeKey


@dataclass(frozen=True)
class Topology:
    """A node's own connection settings (config.toml ``[p2p]``; not the chain's rules)."""

    outbound: int = 8
    """Gossip peers this node dials."""
    max_inbound: int = 64
    """Inbound connections it accepts from nodes it does not want itself (the process host's
    ``max_peers``): a quorum member calling in for a duty, or a gossip peer this node dials too,
    is a connection it holds anyway and does not count."""
    refresh: float = 600.0
    """Seconds between two swaps of one drawn gossip peer."""
    anchors: int = 2
    """Drawn gossip peers never swapped by the refresh (the longest held)."""
    dial_grace: float = 30.0
    """Seconds a drawn gossip peer may stay unconnected before it is replaced."""

    def __post_init__(self) -> None:
        if self.outbound < 1 or self.max_inbound < 0:
            raise ValueError("a node needs at least one outbound gossip peer and no negative inbound limit")
        if self.refresh <= 0 or self.dial_grace <= 0 or self.anchors < 0:
            raise ValueError("refresh and dial_grace must be positive, anchors not negative")


DEVNET_TOPOLOGY = Topology(refresh=60.0, dial_grace=10.0)
"""A devnet's pace: blocks every half second, so peers are swapped and given up on sooner."""


class GossipPeers:
    """The gossip peers one node dials, kept by :meth:`update` (see the module's docstring)."""

    def __init__(
        self,
        me: NodeKey,
        topology: Topology,
        rng: random.Random,
        preferred: Sequence[NodeKey] = (),
    ) -> None:
        self.me = me
        self.topology = topology
        self.rng = rng
        unique = list(dict.fromkeys(key for key in preferred if key != me))
        self.preferred: list[NodeKey] = unique[: topology.outbound]
        self.drawn: dict[NodeKey, float] = {}
        """Peers drawn at random → when last seen connected (or drawn), in the order drawn."""
        self.next_refresh: float | None = None

    @property
    def chosen(self) -> list[NodeKey]:
        """The peers to dial now: the preferred ones, then the drawn ones."""
        return [*self.preferred, *self.drawn]

    def update(self, known: Collection[NodeKey], connected: Collection[NodeKey], now: float) -> list[NodeKey]:
        """Keep the drawn peers that are still known and connect (a node whose proof went stale,
        decommissioned or gone, is let go even while connected), swap one at each refresh, and
        draw from ``known`` (nodes with a fresh uptime proof) up to :attr:`Topology.outbound`.
        Deterministic for a given generator and inputs (``known`` is sorted before drawing)."""
        topology = self.topology
        for key in list(self.drawn):
            if key not in known or (key not in connected and now - self.drawn[key] > topology.dial_grace):
                del self.drawn[key]
            elif key in connected:
                self.drawn[key] = now
        if self.next_refresh is None:
            self.next_refresh = now + topology.refresh
        elif now >= self.next_refresh:
            self.next_refresh = now + topology.refresh
            swappable = list(self.drawn)[topology.anchors :]
            if swappable:
                del self.drawn[self.rng.choice(swappable)]
        room = topology.outbound - len(self.preferred) - len(self.drawn)
        if room > 0:
            taken = {self.me, *self.preferred, *self.drawn}
            candidates = sorted(key for key in known if key not in taken)
            for key in self.rng.sample(candidates, min(room, len(candidates))):
                self.drawn[key] = now
        return self.chosen


class FreshNodes(Collection[NodeKey]):
    """The nodes whose fresh uptime proofs a :class:`~consensus.uptime.ProofBook` holds at ``now``,
    and the nodes ``also`` names (a node's configured seeds), but ``me``: a collection read
    lazily, since :meth:`GossipPeers.update` asks whether a peer is still in it after every block
    and lists it only when it draws (listing 2,000 proofs a block would be work for nothing)."""

    def __init__(self, book: ProofBook, now: float, me: NodeKey, also: Collection[NodeKey] = ()) -> None:
        self.book, self.now, self.me, self.also = book, now, me, also

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes) or key == self.me:
            return False
        return key in self.also or self.book.is_fresh(key, self.now)

    def __iter__(self) -> Iterator[NodeKey]:
        book, now, me, also = self.book, self.now, self.me, self.also
        fresh = (NodeKey(key) for key in book.accepted if key != me and book.is_fresh(key, now))
        rest = (key for key in also if key != me and not book.is_fresh(key, now))
        return itertools.chain(fresh, rest)

    def __len__(self) -> int:
        return sum(1 for _ in self)
