"""Block 0 and the genesis state, built through the normal path; and the way back.

The genesis state is whatever ``apply_block`` makes of block 0, whose events are the genesis
document's (reward pool, allocations, service nodes, SNS records) and whose parent hash is the
genesis hash. There is no second code path that writes state directly, so genesis obeys the
same rules as every later block (the consensus-specs way: genesis replays deposits).

:func:`export_genesis` reads a state back into a genesis document; ``export(import(g)) == g``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genesis.document import Genesis
from state.context import BlockContext
from state.encoding import Decoder
from state.events import Allocation, GenesisName, GenesisNode
from state.ledger import ACCOUNT_PREFIX, Account, get_pool_balance
from state.noderecords import ServiceNode
from state.nodes import NODE_PREFIX
from state.sns import NAME_PREFIX, NameRecord
from state.state import State
from state.transition import PendingBlock, commit_block, process_event, propose_block
from state.types import AccountKey, Atomic, NodeKey
from state.view import Overlay

_account = Decoder(Account)
_node = Decoder(ServiceNode)
_name = Decoder(NameRecord)


def create_pre_genesis_state(genesis: Genesis) -> State:
    """The empty state whose next block is block 0 of this genesis."""
    return State(genesis.chain_id, genesis.params, genesis.hash, genesis.timestamp_ms)


def create_genesis_block(genesis: Genesis) -> PendingBlock:
    """Block 0 executed against the empty state (not yet committed anywhere)."""
    return propose_block(create_pre_genesis_state(genesis), genesis.events(), genesis.timestamp_ms)


def create_genesis_state(genesis: Genesis) -> tuple[State, PendingBlock]:
    """The state after block 0, and block 0 itself (the block's execution checks the nodes'
    proofs of possession as one batch, as it does for any block with several registrations)."""
    state = create_pre_genesis_state(genesis)
    pending = propose_block(state, genesis.events(), genesis.timestamp_ms)
    commit_block(state, pending)
    return state, pending


def genesis_event_checker(genesis: Genesis) -> Callable[[Any], None]:
    """A function applying genesis events one by one to a scratch state (for validation)."""
    state = create_pre_genesis_state(genesis)
    view = Overlay(state.get)
    ctx = BlockContext(0, genesis.timestamp_ms, genesis.hash, genesis.chain_id, genesis.params, True)

    def apply_one(event: Any) -> None:
        process_event(view, event, ctx)

    return apply_one


def export_genesis(state: State, genesis_time: int) -> Genesis:
    """A genesis document whose block 0 recreates ``state``'s balances, nodes and names;
    ``genesis_time`` in unix seconds, as the document keeps it.

    Exact for the genesis state. A later state is exported by :mod:`genesis.export`, which also
    moves pending rewards, locked stakes and unfilled registrations so the supply is kept.
    """
    view = Overlay(state.get)
    allocations = tuple(
        Allocation(AccountKey(key), account.balance)
        for key, raw in state.prefixed(ACCOUNT_PREFIX)
        if (account := _account.decode(raw)).balance
    )
    nodes = tuple(
        GenesisNode(
            node_key=NodeKey(key),
            bls_key=node.bls_key,
            bls_pop=node.bls_pop,
            node_signature=node.node_signature,
            operator=node.operator,
            operator_fee_bp=node.operator_fee_bp,
            contributions=node.contributions,
        )
        for key, raw in state.prefixed(NODE_PREFIX)
        if (node := _node.decode(raw))
    )
    names = tuple(
        GenesisName(key, record.encrypted_value, record.owner, record.backup_owner, record.expiry_height)
        for key, raw in state.prefixed(NAME_PREFIX)
        if (record := _name.decode(raw))
    )
    pool = get_pool_balance(view)
    supply = pool + sum(a.amount for a in allocations)
    supply += sum(c.amount for n in nodes for c in n.contributions)
    return Genesis(
        chain_id=state.chain_id,
        genesis_time=genesis_time,
        params=state.params,
        total_supply=Atomic(supply),
        reward_pool=pool,
        allocations=allocations,
        service_nodes=nodes,
        sns_records=names,
    )
