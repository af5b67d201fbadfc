"""The mempool: signed transactions waiting for a block, checked against the tip and each other.

A transaction enters only if it passes the stateless checks (shape, fee, signature) and then the
state rules on top of the tip *and every transaction already waiting* (so a sender's nonces
chain: 5, 6, 7 may all wait at once, a second spend of the same balance may not). The pool is
bounded by count; a full pool refuses newcomers rather than evicting (no fee market yet).

Each signature is checked once: a transaction already waiting is known by its hash, and one whose
nonce is not the sender's next (used at the tip or by a transaction waiting here: most often a
gossip copy of a transaction a block already included; or beyond it, leaving a gap: a wallet
offering again what a full pool refused) is refused before its signature is checked, since no
signature could make it apply. A forgery with an unused nonce is checked in
full and fails its signature, which is what gets the peer that sent it punished.

After each block the pool drops what the block included and re-checks the rest against the new
tip, in arrival order, dropping whatever no longer applies (a nonce used by a block from
another producer, a balance spent). The producer takes transactions in arrival order.

That re-check costs the state rules of every waiting transaction at every block, on the event
loop. So besides its configured capacity the pool holds at most :attr:`Mempool.backlog` (the
node core sets it to a few templates' worth, :data:`consensus.node.BACKLOG_TEMPLATES`): beyond
what the chain can include in the next blocks, a newcomer is refused as "full" at once (the
wallet's signal to wait), rather than kept at a cost every block that stalled Pulse rounds under
an offered load above the chain's capacity.
"""

from __future__ import annotations

from collections.abc import Iterable

from consensus.pulse import to_ms
from state.context import BlockContext
from state.errors import InvalidEvent
from state.events import Event, Transaction, compute_event_hash, validate_basic
from state.ledger import check_nonce, get_account
from state.state import State
from state.transition import process_event
from state.types import AccountKey, Hash32, Nonce
from state.view import Overlay

DEFAULT_CAPACITY = 20_000


class MempoolFull(Exception):
    pass


class Mempool:
    def __init__(self, chain_id: str, capacity: int = DEFAULT_CAPACITY) -> None:
        self.chain_id = chain_id
        self.capacity = capacity
        self.txs: dict[Hash32, Transaction] = {}
        self.backlog: int | None = None
        """At most this many waiting (None: the capacity only); see the module's docstring."""
        self._view: Overlay | None = None
        self._ctx: BlockContext | None = None

    def __len__(self) -> int:
        return len(self.txs)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self.txs

    def _context(self, state: State, timestamp: int) -> BlockContext:
        """The context of the next block as far as it is known: ``timestamp`` (unix ms, the
        local clock) but not before the earliest the next block may be stamped."""
        return BlockContext(
            height=state.height + 1,
            timestamp=max(timestamp, state.timestamp + state.params.block_time),
            prev_hash=state.block_hash,
            chain_id=self.chain_id,
            params=state.params,
            verify_signatures=False,  # checked once, by validate_basic
        )

    def add(self, tx: Transaction, state: State, now: float) -> Hash32:
        """Check ``tx`` and keep it; raises :class:`InvalidEvent` or :class:`MempoolFull`."""
        tx_hash = compute_event_hash(tx)
        if tx_hash in self.txs:
            return tx_hash
        if len(self.txs) >= self.capacity:
            raise MempoolFull(f"the mempool holds {self.capacity} transactions")
        if self.backlog is not None and len(self.txs) >= self.backlog:
            raise MempoolFull(f"the mempool holds {self.backlog} transactions, the next blocks' worth")
        if self._view is None or self._ctx is None or self._ctx.prev_hash != state.block_hash:
            self._rebuild(state, now)
        assert self._view is not None and self._ctx is not None
        check_nonce(tx, get_account(self._view, tx.sender).nonce)  # before the signature
        validate_basic(tx, self.chain_id)
        process_event(self._view, tx, self._ctx)  # raises InvalidEvent, the view untouched
        self.txs[tx_hash] = tx
        return tx_hash

    def _rebuild(self, state: State, now: float) -> None:
        self._ctx = self._context(state, to_ms(now))
        self._view = Overlay(state.get)
        for tx_hash, tx in list(self.txs.items()):
            try:
                process_event(self._view, tx, self._ctx)
            except InvalidEvent:
                del self.txs[tx_hash]

    def on_block(self, events: Iterable[Event], state: State, now: float) -> None:
        """A block was applied: forget what it included, re-check the rest on the new tip."""
        for event in events:
            self.txs.pop(compute_event_hash(event), None)
        self._rebuild(state, now)

    def get_pending_nonce(self, account: AccountKey, state: State) -> Nonce:
        """The account's nonce once every transaction of it waiting here is applied: what a
        wallet signs its next transaction with, plus one (its nonces chain, as :meth:`add` checks
        them on top of the tip and each other). The tip's nonce when nothing of it waits."""
        if self._view is not None and self._ctx is not None and self._ctx.prev_hash == state.block_hash:
            return get_account(self._view, account).nonce  # every waiting transaction applied on the tip
        waiting = [tx.nonce for tx in self.txs.values() if tx.sender == account]
        return max([get_account(Overlay(state.get), account).nonce, *waiting])

    def take(self, limit: int) -> list[Transaction]:
        """Up to ``limit`` transactions in arrival order (they stay until a block includes them)."""
        return list(self.txs.values())[:limit]

    def remove(self, tx: Event) -> None:
        self.txs.pop(compute_event_hash(tx), None)
        self._view = None
