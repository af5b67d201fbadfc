"""Gossip over a few peers: what a node passes on, to whom, and in what form (sans-IO).

A node keeps a bounded set of gossip peers (:mod:`consensus.topology`), not a connection to every
node, so what one node learns reaches the others by relay: each node passes on what is new to it,
once, to its peers but the one it came from. Sending every body to every peer would cost each
node its peer count in copies of everything; sending only hashes would cost every hop a round
trip. So, as Ethereum's devp2p does for blocks and transactions:

- the **body** goes at once to :func:`push_count` of the peers (⌈√n⌉ of n, drawn at random), so
  most nodes get it in one hop of latency per hop of the graph;
- the **hash** goes to the rest in a :class:`~consensus.messages.Have`, batched per peer until
  the driver flushes (once per turn of its loop), and a peer that lacks the body asks for it with a
  :class:`~consensus.messages.Want`, answered from the bodies kept here (:data:`BODIES_KEPT`);
- nothing goes back to a peer that announced it to us: it holds it already (as Bitcoin filters
  the inventory a peer is known to have).

Gossip is known by the hash of its frame (the process node's ``blake3`` of the payload; the
simulator's of the encoded message), remembered for :data:`SEEN_LIMIT` frames, so a copy is
dropped unread. What to pass on is :func:`should_relay`'s decision (a block only once applied, a
certificate once it finalised, a transaction once the mempool took it…); checkpoint votes are no
gossip (the checkpoint quorum's members send them to each other directly).

:class:`Spreader` is generic in the body: the process node hands it frames (bytes), the simulator
message objects; both drive the same decisions.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, TypeVar

from consensus.messages import (
    DIGEST_BATCH,
    Certified,
    CheckpointVote,
    Have,
    Message,
    SignedBlock,
    TxMessage,
    Want,
)
from consensus.node import Action, Applied, Finalized, Penalize, ProofAccepted
from consensus.uptime import UptimeProof
from state.events import compute_event_hash
from state.types import Hash32, NodeKey

SEEN_LIMIT = 50_000
"""Gossip hashes remembered (the oldest forgotten first)."""
BODIES_KEPT = 4_096
"""Bodies kept to answer a :class:`~consensus.messages.Want` (the newest)."""
WANT_RETRY = 2.0
"""Seconds before a digest asked for and not received may be asked of another peer."""
WANTED_LIMIT = 16_384
"""Digests asked for and not yet received, remembered (a peer announcing junk hashes fills this
and no more)."""
HOLDERS_LIMIT = 16_384
"""Digests whose holders (the peers that announced them) are remembered, the newest."""

Body = TypeVar("Body")


def push_count(peers: int) -> int:
    """How many of ``peers`` get a body pushed: ⌈√peers⌉ (the rest get its hash)."""
    return math.isqrt(peers - 1) + 1 if peers > 0 else 0


def should_relay(message: Message, actions: Sequence[Action], mempool: object) -> bool:
    """Whether gossip this node just handled is passed on: a block once applied, a certificate
    once it finalised a block, an uptime proof once accepted (one refused, sent too soon after
    the last say, is refused everywhere: passing it on would cost the network a flood for
    nothing), a transaction once the mempool (anything that answers ``in`` by transaction hash)
    holds it, and the rest (obligations votes) unless the core penalised its sender. Checkpoint
    votes are never relayed: they go to the checkpoint quorum directly."""
    if isinstance(message, UptimeProof):
        return any(isinstance(a, ProofAccepted) for a in actions)
    if isinstance(message, SignedBlock):
        return any(isinstance(a, Applied) for a in actions)
    if isinstance(message, Certified):
        return any(isinstance(a, Finalized) for a in actions)
    if isinstance(message, CheckpointVote):
        return False
    if isinstance(message, TxMessage):
        return compute_event_hash(message.tx) in mempool  # type: ignore[operator]
    return not any(isinstance(a, Penalize) for a in actions)


def relay_style(message: Message) -> tuple[bool, bool]:
    """(push, urgent) for passing ``message`` on (:meth:`Spreader.spread`). Blocks and
    certificates are pushed and their hashes announced at once: finality waits for them. Uptime
    proofs, small and a steady stream that grows with the network, are announced only (each
    node pulls each proof once, a hash from each peer; not ⌈√n⌉ copies of the body) at the
    trickle pace, so many share a :class:`~consensus.messages.Have`. Transactions and
    obligations votes are pushed, their hashes trickled."""
    if isinstance(message, SignedBlock | Certified):
        return True, True
    if isinstance(message, UptimeProof):
        return False, False
    return True, False


class Spreader(Generic[Body]):
    """One node's gossip bookkeeping: what it has seen, the bodies it can serve, the hashes it
    owes its peers and the ones it asked for."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: OrderedDict[bytes, None] = OrderedDict()
        self.bodies: OrderedDict[bytes, Body] = OrderedDict()
        self.wanted: dict[bytes, float] = {}
        self.owed: dict[NodeKey, list[Hash32]] = {}
        """Hashes to announce to each peer at the next :meth:`flush`."""
        self.urgent = False
        """Whether a block or a certificate is among the hashes owed (flush soon)."""
        self.holders: OrderedDict[bytes, set[NodeKey]] = OrderedDict()
        """Digest → the peers known to hold it (they announced it): it is never announced or
        pushed back to them (Bitcoin's known-inventory filter)."""

    # -- what is known --------------------------------------------------------------------------

    def is_new(self, digest: bytes) -> bool:
        return digest not in self.seen

    def remember(self, digest: bytes) -> None:
        """Mark ``digest`` as seen (it is not asked for again)."""
        self.seen[digest] = None
        self.wanted.pop(digest, None)
        if len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)

    def forget(self, digest: bytes) -> None:
        """A frame that could not be handled: a copy sent again gets another chance."""
        self.seen.pop(digest, None)

    # -- passing on -----------------------------------------------------------------------------

    def spread(
        self,
        digest: bytes,
        body: Body,
        peers: Sequence[NodeKey],
        exclude: NodeKey | None = None,
        *,
        push: bool = True,
        urgent: bool = False,
    ) -> list[NodeKey]:
        """Pass ``body`` on: returns the peers to push it to now (none unless ``push``); the
        others of ``peers`` (but ``exclude``, whence it came) are owed its hash at the next
        :meth:`flush`, which the driver makes soon when something ``urgent`` is owed (else at its
        trickle pace). The body is kept to answer their :class:`~consensus.messages.Want`.
        :func:`relay_style` says how each kind of gossip goes."""
        self.remember(digest)
        self.bodies[digest] = body
        if len(self.bodies) > BODIES_KEPT:
            self.bodies.popitem(last=False)
        self.urgent = self.urgent or urgent
        holders = self.holders.get(digest, ())
        targets = [peer for peer in peers if peer != exclude and peer not in holders]
        pushed = self.rng.sample(targets, push_count(len(targets))) if targets and push else []
        chosen = set(pushed)
        hashed = Hash32(digest)
        for peer in targets:
            if peer not in chosen:
                self.owed.setdefault(peer, []).append(hashed)
        return pushed

    def flush(self) -> list[tuple[NodeKey, Have]]:
        """The :class:`~consensus.messages.Have` messages owed, one per peer (or more, past
        :data:`~consensus.messages.DIGEST_BATCH` hashes)."""
        owed, self.owed = self.owed, {}
        self.urgent = False
        holders = self.holders
        haves: list[tuple[NodeKey, Have]] = []
        for peer, digests in owed.items():
            # what the peer announced to us since we owed it is not announced back
            fresh = [digest for digest in digests if peer not in holders.get(bytes(digest), ())]
            for start in range(0, len(fresh), DIGEST_BATCH):
                haves.append((peer, Have(tuple(fresh[start : start + DIGEST_BATCH]))))
        return haves

    def drop_peer(self, peer: NodeKey) -> None:
        """``peer`` is gone: nothing is owed to it any more."""
        self.owed.pop(peer, None)

    # -- hashes in, bodies out ------------------------------------------------------------------

    def on_have(self, have: Have, now: float, peer: NodeKey | None = None) -> Want | None:
        """The announced hashes this node has neither seen nor asked for lately: a
        :class:`~consensus.messages.Want` to send back to the announcer (None: nothing). The
        announcer ``peer`` is noted as holding them all."""
        missing: list[Hash32] = []
        holders = self.holders
        for digest in have.digests:
            key = bytes(digest)
            if peer is not None:
                held = holders.get(key)
                if held is None:
                    held = holders[key] = set()
                    if len(holders) > HOLDERS_LIMIT:
                        holders.popitem(last=False)
                held.add(peer)
            if key in self.seen:
                continue
            asked = self.wanted.get(key)
            if asked is not None and now - asked < WANT_RETRY:
                continue
            if asked is None and len(self.wanted) >= WANTED_LIMIT:
                self._forget_old_wants(now)
                if len(self.wanted) >= WANTED_LIMIT:
                    continue
            self.wanted[key] = now
            missing.append(digest)
        return Want(tuple(missing)) if missing else None

    def _forget_old_wants(self, now: float) -> None:
        self.wanted = {key: at for key, at in self.wanted.items() if now - at < WANT_RETRY}

    def on_want(self, want: Want) -> list[Body]:
        """The bodies asked for that this node still keeps (the rest silently missing: the peer
        asks another announcer after :data:`WANT_RETRY`)."""
        bodies = self.bodies
        return [bodies[key] for key in map(bytes, want.digests) if key in bodies]
