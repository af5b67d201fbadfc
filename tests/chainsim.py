"""A harness for rule tests: a genesis state with known keys, signed transactions, quorum votes.

``Sim.block(*events)`` builds and applies a block; ``Sim.refuse(event, match)`` asserts a block
with that event is refused and the state (root and every entry) is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pytest

from genesis.build import create_genesis_state
from genesis.devnet import DevNode, create_devnet_genesis, derive_user
from genesis.document import Genesis
from state.context import BlockContext
from state.crypto import bls, ed25519
from state.errors import InvalidBlock
from state.events import (
    Event,
    RegisterNode,
    Reservation,
    StateChange,
    Transaction,
    Vote,
    compute_node_proof_message,
    compute_vote_message,
    sign_transaction,
)
from state.invariants import check_invariants
from state.ledger import compute_fee, get_account, get_pool_balance, get_reward_account
from state.noderecords import ServiceNode
from state.nodes import compute_leader, get_node
from state.obligations import ObligationsQuorum, compute_vote_threshold, get_quorum
from state.state import State
from state.transition import PendingBlock, apply_block, begin_block, propose_block
from state.types import AccountKey, Atomic, Height, NodeKey, Nonce
from state.view import Overlay

GENESIS_NODES = 12


def make_genesis(
    nodes: int = GENESIS_NODES, users: int = 8
) -> tuple[Genesis, list[DevNode], list[ed25519.SigningKey]]:
    return create_devnet_genesis(nodes, "sim", users=users)


class Sim:
    def __init__(self, genesis: Genesis, nodes: list[DevNode], users: list[ed25519.SigningKey]) -> None:
        self.genesis = genesis
        self.state, _ = create_genesis_state(genesis)
        self.users = users
        self.node_keys: dict[bytes, ed25519.SigningKey] = {n.node.public_key: n.node for n in nodes}
        self.operators = [n.operator for n in nodes]
        self.nonces: dict[bytes, int] = {}
        self.last: PendingBlock | None = None
        self._seed = 0

    # -- reads -------------------------------------------------------------------------------

    @property
    def view(self) -> Overlay:
        return Overlay(self.state.get)

    @property
    def height(self) -> int:
        return self.state.height

    @property
    def params(self) -> Any:
        return self.state.params

    def balance(self, account: bytes) -> int:
        return get_account(self.view, AccountKey(account)).balance

    def accrued(self, account: bytes) -> int:
        return get_reward_account(self.view, AccountKey(account)).accrued

    def pool(self) -> int:
        return get_pool_balance(self.view)

    def node(self, key: bytes) -> ServiceNode | None:
        return get_node(self.view, key)

    def quorum(self, height: int | None = None) -> ObligationsQuorum:
        quorum = get_quorum(self.view, self.height if height is None else height)
        assert quorum is not None, "no obligations quorum at that height"
        return quorum

    def check(self) -> None:
        assert check_invariants(self.state, self.genesis.total_supply) == []

    # -- events ------------------------------------------------------------------------------

    def tx(self, cls: type, key: ed25519.SigningKey, **fields: Any) -> Any:
        """A signed transaction with the sender's next nonce (counting ones not yet in a block)."""
        sender = key.public_key
        nonce = self.nonces.get(sender, get_account(self.view, sender).nonce) + 1
        self.nonces[sender] = nonce
        tx = cls(sender=sender, nonce=Nonce(nonce), **fields)
        return sign_transaction(self.state.chain_id, tx, key)

    def fee(self, tx: Transaction) -> int:
        return compute_fee(self.params, tx)

    def new_node(
        self,
        operator: ed25519.SigningKey,
        amount: int,
        *,
        fee_bp: int = 1000,
        reserved: tuple[Reservation, ...] = (),
    ) -> tuple[ed25519.SigningKey, RegisterNode]:
        self._seed += 1
        node = ed25519.SigningKey(bytes([0x40, self._seed % 256]) + bytes(30))
        bls_secret = bls.secret_key_from_seed(bytes([0x41, self._seed % 256]) + bytes(30))
        bls_key = bls.public_key(bls_secret)
        self.node_keys[node.public_key] = node
        tx = self.tx(
            RegisterNode,
            operator,
            node_key=NodeKey(node.public_key),
            bls_key=bls_key,
            bls_pop=bls.prove_possession(bls_secret),
            node_signature=node.sign(compute_node_proof_message(node.public_key, bls_key)),
            operator_fee_bp=fee_bp,
            amount=Atomic(amount),
            reserved=reserved,
        )
        return node, tx

    def votes(
        self,
        worker: bytes,
        new_state: int,
        *,
        count: int | None = None,
        reasons: int = 0,
        quorum_height: int | None = None,
        sign: Callable[[int, bytes], bytes] | None = None,
        voters: Sequence[int] | None = None,
    ) -> StateChange:
        """A state change for ``worker`` signed by ``count`` validators of the quorum (default:
        the threshold), the first ones that are not the worker (or exactly ``voters``)."""
        height = self.height + 1 if quorum_height is None else quorum_height
        quorum = self._quorum_for(height)
        index = quorum.workers.index(NodeKey(worker))
        if voters is None:
            count = compute_vote_threshold(quorum, worker, self.params) if count is None else count
            others = [i for i, key in enumerate(quorum.validators) if key != worker]
            voters = (others + [i for i in range(len(quorum.validators)) if i not in others])[:count]
        message = compute_vote_message(self.state.chain_id, height, index, new_state, reasons)
        votes = []
        for i in voters:
            signature = sign(i, message) if sign else self.node_keys[quorum.validators[i]].sign(message)
            votes.append(Vote(i, reasons, signature))  # type: ignore[arg-type]
        return StateChange(Height(height), index, new_state, tuple(votes))

    def _quorum_for(self, height: int) -> ObligationsQuorum:
        if height <= self.height:
            return self.quorum(height)
        # The next block's quorum is drawn at its start: run that start on a scratch overlay.
        view = self.view
        ctx = BlockContext(
            height, 0, self.state.block_hash, self.state.chain_id, self.params, True, self.producer()
        )
        begin_block(view, ctx)
        quorum = get_quorum(view, height)
        assert quorum is not None
        return quorum

    def worker_in_next_quorum(
        self, predicate: Callable[[ServiceNode], bool] = lambda n: True
    ) -> bytes | None:
        quorum = self._quorum_for(self.height + 1)
        for worker in quorum.workers:
            node = self.node(worker)
            if node is not None and predicate(node):
                return worker
        return None

    # -- blocks ------------------------------------------------------------------------------

    def producer(self) -> NodeKey:
        leader = compute_leader(self.view)
        assert leader is not None
        return leader

    def block(self, *events: Event) -> PendingBlock:
        timestamp = self.state.timestamp + self.params.block_time
        pending = propose_block(self.state, list(events), timestamp, producer=self.producer())
        apply_block(self.state, pending.block)
        self.nonces.clear()
        self.last = pending
        return pending

    def advance(self, blocks: int) -> None:
        for _ in range(blocks):
            self.block()

    def advance_to(self, height: int) -> None:
        self.advance(height - self.height)

    def refuse(self, *events: Event, match: str) -> None:
        """A block with ``events`` is refused with ``match`` in the message; nothing changes."""
        root, entries = self.state.root, list(self.state.items())
        with pytest.raises(InvalidBlock, match=match):
            timestamp = self.state.timestamp + self.params.block_time
            propose_block(self.state, list(events), timestamp, producer=self.producer())
        assert self.state.root == root and list(self.state.items()) == entries
        self.nonces.clear()


def replace(record: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(record, **changes)


__all__ = ["GENESIS_NODES", "Sim", "State", "derive_user", "make_genesis", "replace"]
