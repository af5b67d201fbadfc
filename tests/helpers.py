"""Building blocks for state tests: a genesis state with known keys, signed transfers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from state.crypto import ed25519
from state.events import Event, Transfer, sign_transaction
from state.nodes import compute_leader
from state.state import State
from state.transition import PendingBlock, propose_block
from state.types import AccountKey, Atomic, Nonce
from state.view import Overlay


def transfer(
    state: State, key: ed25519.SigningKey, to: bytes, amount: int, nonce: int, chain_id: str | None = None
) -> Transfer:
    tx = Transfer(key.public_key, Nonce(nonce), AccountKey(to), Atomic(amount))
    signed = sign_transaction(chain_id or state.chain_id, tx, key)
    assert isinstance(signed, Transfer)
    return signed


def next_block(state: State, events: list[Event]) -> PendingBlock:
    """The next block with the head of the reward queue as producer (state rules only: no Pulse)."""
    leader = compute_leader(Overlay(state.get))
    assert leader is not None
    return propose_block(state, events, state.timestamp + state.params.block_time, producer=leader)


def served_node(**parts: Any) -> SimpleNamespace:
    """A stand-in for the running node, with what the JSON-RPC methods read: ``parts`` (its
    chain, ledger, core, metrics…), a boundary that keeps what it catches (``faults``) and no
    progress report (``progress()`` is None: these chains are not running)."""
    from appchain.home.boundary import Faults

    parts.setdefault("metrics", None)
    return SimpleNamespace(faults=Faults(lambda *args, **fields: None), progress=lambda: None, **parts)
