"""The state transition: ``apply_block(state, block)``.

Verify everything, then mutate. :func:`execute_block` runs every check (stateless ones via
``validate_basic`` when signatures are to be verified, stateful ones inside the ``process_*``
rules) against overlays and computes the new tree, without touching ``state``. Only
:func:`commit_block` changes ``state``, and only with a block that executed cleanly. The node's
store writes the block between the two, so what is on disk and what is in memory never differ.

The stateless event checks (``validate_basic``: shapes and signatures) can be skipped when
replaying a log whose blocks were certified when they were written (``verify_signatures=False``):
they depend on nothing but the event, so skipping them cannot change the state a valid log
produces. The block's own checks (heights, hashes, timestamps, sizes, roots) always run, except
that a measurement replay may switch the state tree off (``skip_state_tree``, see
:func:`execute_block`). Timestamps are unix milliseconds, each at least its parent's plus
``block_time`` (:func:`validate_block_time`); no check here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from state import ledger, nodes, obligations, rewards, sns
from state.block import (
    HEADER_VERSION,
    Block,
    Header,
    check_events,
    compute_block_hash,
    validate_block_basic,
)
from state.checkpoints import compute_next_checkpoint_commitment, store_next_checkpoint_quorum
from state.context import NO_PRODUCER, BlockContext
from state.crypto import bls
from state.errors import InvalidBlock, InvalidEvent
from state.events import (
    GENESIS_EVENTS,
    TRANSACTIONS,
    Allocation,
    ClaimRewards,
    Contribute,
    Event,
    FundRewardPool,
    GenesisName,
    GenesisNode,
    RegisterNode,
    RequestUnlock,
    SnsBuy,
    SnsRenew,
    SnsUpdate,
    StateChange,
    Transfer,
    compute_event_hash,
    validate_basic,
)
from state.membership import update_swarms
from state.schedule import BECOME_PAYABLE, EXIT, EXPIRE_NAME, RETURN_STAKE, take_due
from state.smt import Proof, SparseMerkleTree
from state.state import State, state_index
from state.types import Hash32, Height, NodeKey
from state.view import Overlay

Change = tuple[bytes, bytes | None, bytes | None]
"""(key, value before, value after); ``None`` means absent."""


class NoStateTree(RuntimeError):
    """A root or a proof was asked of a state replayed with the state tree switched off."""


class _SkippedTree(SparseMerkleTree):
    """The tree of a state whose blocks were executed with ``skip_state_tree``.

    That state's map is right but its tree was never updated, so it has no root to give: asking
    for the root, a proof or an update raises :class:`NoStateTree` instead of answering with a
    stale tree. Such a state can therefore neither serve proofs nor check or propose a block.
    """

    __slots__ = ()

    @property
    def root(self) -> bytes:
        raise NoStateTree("this state was replayed with the state tree switched off: it has no root")

    def update(self, changes: Mapping[bytes, bytes | None]) -> SparseMerkleTree:
        raise NoStateTree("this state was replayed with the state tree switched off: it cannot go on")

    def prove(self, key: bytes) -> Proof:
        raise NoStateTree("this state was replayed with the state tree switched off: it has no proofs")


_SKIPPED_TREE = _SkippedTree()


class PendingBlock(NamedTuple):
    """A block that executed cleanly against ``state``, ready to be written and committed."""

    block: Block
    block_hash: Hash32
    parent_hash: Hash32
    writes: dict[bytes, bytes | None]
    """The block's effective writes (each changes its key), in no particular order."""
    befores: dict[bytes, bytes]
    """The value each write replaces, for the keys that had one."""
    tree: SparseMerkleTree
    effects: tuple[Any, ...]

    @property
    def changes(self) -> list[Change]:
        """(key, value before, value after) of every effective write, key-sorted: the block's
        delta, made when asked (the store's delta, the proof window), not kept with the block
        (block 0 of a million accounts would hold a million triples at its peak)."""
        befores, writes = self.befores, self.writes
        return [(key, befores.get(key), writes[key]) for key in sorted(writes)]


Rule = Callable[[Overlay, Any, BlockContext], None]

_RULES: dict[type, Rule] = {
    Allocation: lambda view, event, ctx: ledger.process_allocation(view, event),
    FundRewardPool: lambda view, event, ctx: ledger.process_fund_reward_pool(view, event),
    GenesisNode: nodes.process_genesis_node,
    GenesisName: sns.process_genesis_name,
    Transfer: ledger.process_transfer,
    RegisterNode: nodes.process_register_node,
    Contribute: nodes.process_contribute,
    RequestUnlock: nodes.process_request_unlock,
    ClaimRewards: nodes.process_claim_rewards,
    SnsBuy: sns.process_sns_buy,
    SnsUpdate: sns.process_sns_update,
    SnsRenew: sns.process_sns_renew,
    StateChange: obligations.process_state_change,
}


def process_event(view: Overlay, event: Event, ctx: BlockContext) -> None:
    """Apply one event to ``view``; raises :class:`InvalidEvent` with ``view`` unchanged."""
    is_genesis_event = isinstance(event, GENESIS_EVENTS)
    if is_genesis_event != (ctx.height == 0):
        where = "outside" if is_genesis_event else "in"
        raise InvalidEvent(f"{type(event).__name__} is not allowed {where} the genesis block")
    child = view.child()
    if isinstance(event, TRANSACTIONS):
        ledger.charge_transaction(child, event, ctx)
    _RULES[type(event)](child, event, ctx)
    view.merge(child)


def begin_block(view: Overlay, ctx: BlockContext) -> None:
    """The producer to the back of the reward queue; work due at this height (exits, stake
    returns, name expiries); then this height's obligations quorum."""
    nodes.move_producer_to_back(view, ctx)
    for item in take_due(view, ctx.height):
        if item.kind == EXIT:
            at_floor = obligations.is_below_floor(view, ctx.params)
            nodes.process_due_exit(view, item.key, ctx.height, at_floor=at_floor)
        elif item.kind == RETURN_STAKE:
            nodes.process_due_stake_return(view, item.key)
        elif item.kind == BECOME_PAYABLE:
            nodes.process_due_payable(view, item.key, ctx)
        elif item.kind == EXPIRE_NAME:
            sns.process_due_expiry(view, item.key, ctx.height)
        else:
            raise AssertionError(f"unknown scheduled work {item.kind!r}")
    obligations.store_quorum(view, ctx)


def end_block(view: Overlay, ctx: BlockContext) -> None:
    """Swarms (when the active set changed), the block's reward (into the reward index), then (on
    a checkpoint height) the next checkpoint's quorum."""
    if view.active_set_changed:
        update_swarms(view, ctx)
    rewards.accrue_block_reward(view, ctx)
    store_next_checkpoint_quorum(view, ctx)


def _check_possessions_together(events: Sequence[Event], verified: Container[bytes]) -> None:
    """Check the BLS proofs of possession of a block's registrations as one batch, ahead of the
    events (the 2,000 proofs of a genesis block: 1.8 s on two cores, 4.6 s one by one).

    Only a speed-up: the verdicts are dropped. Each event's own ``validate_basic`` then finds a
    valid proof already verified (:func:`bls.verify_possession` remembers it) and checks an
    invalid one again alone, so which event fails, and the error it gives, are what they were."""
    pairs = [
        (event.bls_key, event.bls_pop)
        for event in events
        if isinstance(event, GenesisNode | RegisterNode)
        and not (verified and compute_event_hash(event) in verified)
    ]
    if len(pairs) > 1:
        bls.verify_possessions(pairs)


def _execute_events(
    state: State,
    events: Sequence[Event],
    height: int,
    timestamp: int,
    verify_signatures: bool,
    producer: NodeKey = NO_PRODUCER,
    verified: Container[bytes] = (),
) -> Overlay:
    ctx = BlockContext(
        height, timestamp, state.block_hash, state.chain_id, state.params, verify_signatures, producer
    )
    view = Overlay(state.get, index=state_index(state))
    try:
        begin_block(view, ctx)
    except InvalidEvent as exc:
        raise InvalidBlock(f"block {height}: {exc}") from exc
    if verify_signatures:
        _check_possessions_together(events, verified)
    for index, event in enumerate(events):
        try:
            if verify_signatures:
                _check_unvouched(event, state.chain_id, verified)
            process_event(view, event, ctx)
        except InvalidBlock:
            raise
        except InvalidEvent as exc:
            raise InvalidBlock(
                f"block {height}: event {index} ({type(event).__name__}): {exc}", index
            ) from exc
    end_block(view, ctx)
    return view


def _changes(
    state: State, writes: dict[bytes, bytes | None]
) -> tuple[dict[bytes, bytes | None], dict[bytes, bytes]]:
    """The writes that change something (``writes`` itself when all do: block 0's million), and
    the values they replace."""
    get = state.get
    befores: dict[bytes, bytes] = {}
    unchanged: set[bytes] = set()
    for key, after in writes.items():
        before = get(key)
        if before == after:
            unchanged.add(key)
        elif before is not None:
            befores[key] = before
    if not unchanged:
        return writes, befores
    return {key: after for key, after in writes.items() if key not in unchanged}, befores


def _run_block(
    state: State,
    events: Sequence[Event],
    height: int,
    timestamp: int,
    verify_signatures: bool,
    producer: NodeKey,
    verified: Container[bytes] = (),
    update_tree: bool = True,
) -> tuple[Overlay, dict[bytes, bytes | None], dict[bytes, bytes], SparseMerkleTree]:
    """Run the events and the block's own work; the effective writes, the values they replace
    and the new tree."""
    view = _execute_events(state, events, height, timestamp, verify_signatures, producer, verified)
    writes, befores = _changes(state, view.writes)
    return view, writes, befores, state.tree.update(writes) if update_tree else _SKIPPED_TREE


def validate_block_time(state: State, height: int, timestamp: int) -> None:
    """The timestamp rule every node applies the same way, in a live round as in a replay.

    Timestamps are unix milliseconds. A block's timestamp must be at least its parent's plus
    ``params.block_time``: a block proposed earlier is **too early** and the block is invalid.
    The Pulse schedule never proposes earlier (round ``r`` of a height starts, and its template is
    stamped, at ``parent + block_time + r x round_timeout``, :mod:`consensus.node`), so the rule
    only refuses a producer that cheats on the schedule (with the block time in milliseconds,
    sub-second blocks need no rounding of the timestamp). Block 0 has no parent block: the state
    before it carries the genesis time and it is checked only not to go back in time.

    The rule reads the parent's and the block's timestamps and nothing else: it never reads the
    wall clock, so a replay of the same log gives the same verdict on any machine at any time.
    How far *ahead* of the clock a template may be is a judgement only a live node can make, and
    it makes it only for a block proposed now (:meth:`consensus.node.NodeCore._is_valid_template`).
    """
    earliest = state.timestamp if height == 0 else state.timestamp + state.params.block_time
    if timestamp < earliest:
        raise InvalidBlock(
            f"block {height}: timestamp {timestamp} ms is too early: the parent's "
            f"{state.timestamp} ms + block time {state.params.block_time} ms = {earliest} ms at the earliest"
        )


def execute_block(
    state: State,
    block: Block,
    *,
    verify_signatures: bool = True,
    verified: Container[bytes] = (),
    skip_state_tree: bool = False,
) -> PendingBlock:
    """Check ``block`` fully against ``state`` and compute its effect; ``state`` is untouched.

    ``verified`` holds the hashes of events whose stateless checks (shape, signature) already
    passed on this machine, byte for byte (a mempool's): they are not checked twice.

    ``skip_state_tree`` is for measurement only (``bench/replay.py`` uses it to find what the
    authenticated state costs a replay): the block runs through the same rules and yields the
    same writes, changes and effects, but the sparse Merkle tree is not updated and the header's
    state root is therefore not checked. A state committed from such a block has no root (see
    :class:`NoStateTree`): it cannot serve proofs nor execute a block with the tree on, and a
    replay made this way proves nothing about the log's roots. Never use it to follow a chain.
    """
    header = block.header
    if header.height != state.height + 1:
        raise InvalidBlock(f"block {header.height}: expected height {state.height + 1}")
    if header.prev_hash != state.block_hash:
        raise InvalidBlock(f"block {header.height}: previous hash does not match the tip")
    validate_block_time(state, header.height, header.timestamp)
    validate_block_basic(block, state.params)
    view, writes, befores, tree = _run_block(
        state,
        block.events,
        header.height,
        header.timestamp,
        verify_signatures,
        header.producer,
        verified,
        update_tree=not skip_state_tree,
    )
    if (
        compute_next_checkpoint_commitment(view, header.height, state.params.checkpoint_interval)
        != header.next_checkpoint_quorum
    ):
        raise InvalidBlock(f"block {header.height}: the next checkpoint quorum commitment is wrong")
    if not skip_state_tree and tree.root != header.state_root:
        raise InvalidBlock(
            f"block {header.height}: state root {tree.root.hex()} does not match the header's "
            f"{header.state_root.hex()}"
        )
    return PendingBlock(
        block, compute_block_hash(header), state.block_hash, writes, befores, tree, tuple(view.effects)
    )


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


def is_final_of(template: Block, block: Block) -> bool:
    """Whether ``block`` is ``template`` as a Pulse round finalizes it: the same events and the
    same header but for the random value and the validator bitset the ceremony fills in
    (:func:`consensus.validation.finalize_template`; the signatures travel beside the header).
    Those fields take no part in execution, so both blocks execute alike."""
    header = template.header
    replaced = msgspec.structs.replace(
        block.header, random_value=header.random_value, validators=header.validators
    )
    return replaced == header and block.events == template.events


def with_final_block(pending: PendingBlock, block: Block) -> PendingBlock:
    """``pending`` with its template replaced by the round's final block.

    Only the random value, the validator bitset and the signatures may differ: they do not take
    part in execution, so the writes, the tree and the effects stay those of the template.
    """
    if not is_final_of(pending.block, block):
        raise ValueError(
            "the final block differs from its template beyond the round's random value and bitset"
        )
    return _as_final(pending, block)


def _as_final(pending: PendingBlock, block: Block) -> PendingBlock:
    return pending._replace(block=block, block_hash=compute_block_hash(block.header))


def _check_unvouched(event: Event, chain_id: str, verified: Container[bytes]) -> None:
    """The stateless checks (shape, signature) of ``event``, unless ``verified`` (a mempool's
    hashes) vouches that they passed on this machine already."""
    if not (verified and compute_event_hash(event) in verified):
        validate_basic(event, chain_id)


def adopt_template_result(
    state: State,
    template: PendingBlock,
    block: Block,
    *,
    verify_signatures: bool = True,
    verified: Container[bytes] = (),
) -> PendingBlock | None:
    """What :func:`execute_block` would return for ``block`` on ``state``, taken from ``template``,
    the execution of its Pulse template on this tip, instead of executing the block again; None
    when that cannot be shown (then execute the block).

    ``template`` must be an execution of a block on ``state`` that passed (by
    :func:`execute_block`, with or without signatures, or :func:`propose_block`): every check
    but the stateless event checks has then passed on this tip for its block. It stands for
    ``block`` when it executed on this very tip (same parent hash and height) and ``block`` is
    its final form (:func:`is_final_of`): the rules never read the fields in which the two may
    differ, so the writes, the tree, the effects and every check's verdict are the same, and the
    result is byte for byte a full execution's, with ``block`` and its hash in it.

    What a template execution without signatures skipped is done here as :func:`execute_block`
    would do it: with ``verify_signatures``, each event not in ``verified`` passes
    ``validate_basic`` (its signature among the rest); a failure gives None, so the full
    execution refuses the block with its usual error. A block with obligations votes gives
    None too: their signatures are checked against a quorum in the state, inside the transition.
    """
    if template.parent_hash != state.block_hash or template.block.header.height != state.height + 1:
        return None
    if not is_final_of(template.block, block):
        return None
    if verify_signatures:
        if any(isinstance(event, StateChange) for event in block.events):
            return None
        try:
            _check_possessions_together(block.events, verified)
            for event in block.events:
                _check_unvouched(event, state.chain_id, verified)
        except InvalidEvent:
            return None
    return _as_final(template, block)


def propose_block(
    state: State,
    events: Sequence[Event],
    timestamp: int,
    *,
    producer: NodeKey = NO_PRODUCER,
    round_: int = 0,
    verified: Container[bytes] = (),
) -> PendingBlock:
    """Build the block template that applies ``events`` on top of ``state`` (roots filled in).

    The Pulse ceremony then sets the random value and the validator bitset (which leave the
    state root as it is) and collects the signatures.
    """
    height = state.height + 1
    validate_block_time(state, height, timestamp)
    events_root = check_events(list(events), state.params, height)
    view, writes, befores, tree = _run_block(state, events, height, timestamp, True, producer, verified)
    header = Header(
        version=HEADER_VERSION,
        height=Height(height),
        prev_hash=state.block_hash,
        timestamp=timestamp,
        events_root=events_root,
        state_root=Hash32(tree.root),
        round=round_,
        producer=producer,
        next_checkpoint_quorum=compute_next_checkpoint_commitment(
            view, height, state.params.checkpoint_interval
        ),
    )
    block = Block(header, tuple(events))
    return PendingBlock(
        block, compute_block_hash(header), state.block_hash, writes, befores, tree, tuple(view.effects)
    )
