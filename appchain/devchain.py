"""``appchain dev-chain``: append valid blocks of random signed transactions.

A tool for tests, benchmarks and replay rehearsals, not part of consensus: it may use Python's
``random`` seeded from ``--seed`` and the tip height, so the same home and seed give the same
blocks. Senders are the dev accounts of a devnet genesis plus the accounts this run creates (a
share of transfers pays fresh accounts, so the state grows as a real chain's does).
Consensus signatures come with the consensus issue; until then blocks carry none.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from appchain.chain import Chain
from state.crypto import ed25519
from state.events import Event, Transfer, sign_transaction
from state.ledger import get_account
from state.transition import PendingBlock
from state.types import AccountKey, Atomic, Nonce
from state.view import Overlay

NEW_ACCOUNT_SHARE = 0.3


class DevChainGenerator:
    def __init__(
        self,
        chain: Chain,
        accounts: list[ed25519.SigningKey],
        seed: str,
        *,
        events_per_block: int = 100,
    ) -> None:
        if not accounts:
            raise ValueError("the dev chain needs at least one funded account")
        self.chain = chain
        self.rng = random.Random(f"{seed}:{chain.height}")
        self.events_per_block = events_per_block
        self.signers: dict[AccountKey, ed25519.SigningKey] = {key.public_key: key for key in accounts}
        self.senders = list(self.signers)

    def _new_account(self) -> ed25519.SigningKey:
        key = ed25519.SigningKey(self.rng.randbytes(32))
        self.signers[key.public_key] = key
        self.senders.append(key.public_key)
        return key

    def make_events(self) -> list[Event]:
        chain = self.chain
        view = Overlay(chain.state.get)
        balances: dict[AccountKey, int] = {}
        nonces: dict[AccountKey, int] = {}
        events: list[Event] = []
        attempts = 0
        while len(events) < self.events_per_block and attempts < self.events_per_block * 20:
            attempts += 1
            sender = self.rng.choice(self.senders)
            if sender not in balances:
                account = get_account(view, sender)
                balances[sender], nonces[sender] = account.balance, account.nonce
            if balances[sender] < 2:
                continue
            if self.rng.random() < NEW_ACCOUNT_SHARE:
                recipient = self._new_account().public_key
            else:
                recipient = self.rng.choice(self.senders)
            amount = self.rng.randint(1, max(1, balances[sender] // 100))
            nonces[sender] += 1
            balances[sender] -= amount
            if recipient in balances:
                balances[recipient] += amount
            tx = Transfer(sender, Nonce(nonces[sender]), recipient, Atomic(amount))
            events.append(sign_transaction(chain.state.chain_id, tx, self.signers[sender]))
        return events

    def next_block(self) -> PendingBlock:
        """Build the next block on the tip and append it to the chain."""
        timestamp = self.chain.state.timestamp + self.chain.state.params.block_time
        pending = self.chain.propose(self.make_events(), timestamp)
        self.chain.append_pending(pending)
        return pending

    def run(self, blocks: int, progress: Callable[[int, int], None] | None = None) -> None:
        for _ in range(blocks):
            pending = self.next_block()
            if progress is not None:
                progress(1, len(pending.block.events))
