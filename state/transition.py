"""The state transition: ``apply_block(state, block)``.

Verify everything, then mutate. :func:`execute_block` runs every check (stateless ones via
``validate_basic`` when signatures are to be verified, stateful ones inside the ``process_*``
rules) against overlays and computes the new tree, without touching ``state``. Only
:func:`commit_block` changes ``state``, and only with a block that executed cleanly. The node's
store writes the block between the two, so what is on disk and what is in memory never differ.

Signature checks can be skipped when replaying a log whose blocks were certified when they were
written (``verify_signatures=False``): they are stateless, so skipping them cannot change the
resulting state of a valid log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from state import ledger, nodes, sns
from state.block import (
    HEADER_VERSION,
    Block,
    Header,
    compute_block_hash,
    compute_events_root,
    validate_block_basic,
)
from state.errors import InvalidBlock, InvalidEvent
from state.events import (
    GENESIS_EVENTS,
    Allocation,
    Event,
    FundRewardPool,
    GenesisName,
    GenesisNode,
    Transfer,
    validate_basic,
)
from state.smt import SparseMerkleTree
from state.state import State
from state.types import Hash32, Height
from state.view import Overlay

Change = tuple[bytes, bytes | None, bytes | None]
"""(key, value before, value after); ``None`` means absent."""


class BlockContext(NamedTuple):
    """What a rule may know about the block it runs in."""

    height: int
    timestamp: int
    state: State


class PendingBlock(NamedTuple):
    """A block that executed cleanly against ``state``, ready to be written and committed."""

    block: Block
    block_hash: Hash32
    parent_hash: Hash32
    writes: dict[bytes, bytes | None]
    changes: list[Change]
    tree: SparseMerkleTree


Rule = Callable[[Overlay, Any, BlockContext], None]

_RULES: dict[type, Rule] = {
    Allocation: lambda view, event, ctx: ledger.process_allocation(view, event),
    FundRewardPool: lambda view, event, ctx: ledger.process_fund_reward_pool(view, event),
    GenesisNode: lambda view, event, ctx: nodes.process_genesis_node(view, event, ctx.state.params),
    GenesisName: lambda view, event, ctx: sns.process_genesis_name(view, event),
    Transfer: lambda view, event, ctx: ledger.process_transfer(view, event),
}


def process_event(view: Overlay, event: Event, ctx: BlockContext) -> None:
    """Apply one event to ``view``; raises :class:`InvalidEvent` with ``view`` unchanged."""
    is_genesis_event = isinstance(event, GENESIS_EVENTS)
    if is_genesis_event != (ctx.height == 0):
        where = "outside" if is_genesis_event else "in"
        raise InvalidEvent(f"{type(event).__name__} is not allowed {where} the genesis block")
    child = view.child()
    _RULES[type(event)](child, event, ctx)
    view.merge(child)


def _execute_events(
    state: State, events: Sequence[Event], height: int, timestamp: int, verify_signatures: bool
) -> Overlay:
    ctx = BlockContext(height, timestamp, state)
    view = Overlay(state.get)
    for index, event in enumerate(events):
        try:
            if verify_signatures:
                validate_basic(event, state.chain_id)
            process_event(view, event, ctx)
        except InvalidBlock:
            raise
        except InvalidEvent as exc:
            raise InvalidBlock(
                f"block {height}: event {index} ({type(event).__name__}): {exc}", index
            ) from exc
    return view


def _changes(
    state: State, writes: dict[bytes, bytes | None]
) -> tuple[dict[bytes, bytes | None], list[Change]]:
    """Drop writes that change nothing; list the rest with their previous values, key-sorted."""
    effective: dict[bytes, bytes | None] = {}
    changes: list[Change] = []
    for key in sorted(writes):
        after = writes[key]
        before = state.get(key)
        if before != after:
            effective[key] = after
            changes.append((key, before, after))
    return effective, changes


def execute_block(state: State, block: Block, *, verify_signatures: bool = True) -> PendingBlock:
    """Check ``block`` fully against ``state`` and compute its effect; ``state`` is untouched."""
    header = block.header
    if header.height != state.height + 1:
        raise InvalidBlock(f"block {header.height}: expected height {state.height + 1}")
    if header.prev_hash != state.block_hash:
        raise InvalidBlock(f"block {header.height}: previous hash does not match the tip")
    if header.timestamp < state.timestamp:
        raise InvalidBlock(f"block {header.height}: timestamp goes back in time")
    validate_block_basic(block, state.params)
    view = _execute_events(state, block.events, header.height, header.timestamp, verify_signatures)
    writes, changes = _changes(state, view.writes)
    tree = state.tree.update(writes)
    if tree.root != header.state_root:
        raise InvalidBlock(
            f"block {header.height}: state root {tree.root.hex()} does not match the header's "
            f"{header.state_root.hex()}"
        )
    return PendingBlock(block, compute_block_hash(header), state.block_hash, writes, changes, tree)


def commit_block(state: State, pending: PendingBlock) -> None:
    """Make ``pending`` the current state; it must have been executed against this tip."""
    if pending.parent_hash != state.block_hash or pending.block.header.height != state.height + 1:
        raise RuntimeError("commit of a block executed against another tip")
    header = pending.block.header
    state.install(
        height=header.height,
        block_hash=pending.block_hash,
        timestamp=header.timestamp,
        writes=pending.writes,
        tree=pending.tree,
    )


def apply_block(state: State, block: Block, *, verify_signatures: bool = True) -> PendingBlock:
    """Validate then apply ``block``; on :class:`InvalidBlock` the state is unchanged."""
    pending = execute_block(state, block, verify_signatures=verify_signatures)
    commit_block(state, pending)
    return pending


def propose_block(state: State, events: Sequence[Event], timestamp: int) -> PendingBlock:
    """Build the block that applies ``events`` on top of ``state`` (roots filled in)."""
    height = state.height + 1
    view = _execute_events(state, events, height, timestamp, verify_signatures=True)
    writes, changes = _changes(state, view.writes)
    tree = state.tree.update(writes)
    header = Header(
        version=HEADER_VERSION,
        height=Height(height),
        prev_hash=state.block_hash,
        timestamp=timestamp,
        events_root=compute_events_root(tuple(events)),
        state_root=Hash32(tree.root),
    )
    block = Block(header, tuple(events))
    validate_block_basic(block, state.params)
    return PendingBlock(block, compute_block_hash(header), state.block_hash, writes, changes, tree)
