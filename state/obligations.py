"""Obligations quorums and the state changes they vote (PROTOCOL.md §3; Oxen ``service_node_quorum_cop``).

Key: ``quorum/<height>`` → :class:`ObligationsQuorum`, kept for ``vote_lifetime`` blocks.

At the start of each block ``h`` the quorum for ``h`` is drawn from the state left by block
``h - 1``, with a :class:`~state.sampler.Sampler` tagged ``obligations`` and seeded with
``h - 1``'s hash and ``h`` (the block's own hash cannot seed it: it commits to the result):

1. q = min(``obligations_quorum_size``, N) of the N active nodes, sorted by key, are sampled
   (``Sampler.sample``): the validators (no quorum when no node is active);
2. then, from the same sampler, ``min(rest, max(obligations_min_workers, rest //
   obligations_worker_divisor))`` of the *rest*, sorted by key, are sampled: the workers the
   validators test. The rest is the other active and the decommissioned nodes; when every
   active node is a validator (N ≤ 10, PROTOCOL.md §4a) it is every active and decommissioned
   node, so that a small network still tests, and can recommission, each of its nodes.

:func:`compute_obligations_quorum` is that pure function; the consensus issue reuses it. With
10 or more active nodes it draws exactly what it always did.

A ``StateChange`` names a quorum height within ``vote_lifetime`` blocks, a worker index and a
new state, and needs votes of distinct validators, each an Ed25519 signature by the validator's
node key over (chain id, quorum height, worker index, new state, reason bits): ⌈7q/10⌉ of them
(``obligations_threshold`` of ``obligations_quorum_size``, scaled to q,
:func:`compute_vote_threshold`). A validator never votes on itself; a change about a validator
needs ⌈7(q − 1)/10⌉ votes of the others. A quorum height not above the worker's last applied
state change is refused, so old votes cannot be replayed.

**The floor** (§4a): no change takes the active set below ``pulse_min_nodes``. A decommission or
deregistration of an active node that would is invalid (the producer leaves it out, and a block
carrying it is refused), so only nodes that are actually offline can stop the chain, never the
chain's own decisions. Credits follow :func:`state.nodes.compute_credit`:

- decommission: only an active node with at least ``decommission_min_credit`` (a node with less
  must be deregistered); it leaves the active set and its swarm, keeping its credit, which then
  drops one per block;
- recommission: only a decommissioned node; it keeps ``max(0, credit - 2 x blocks down)`` and
  goes to the back of the reward queue;
- deregister: an active or decommissioned node; its stakes lock (see :mod:`state.nodes`);
- IP-change penalty: an active node goes to the back of the reward queue.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import msgspec

from state import rewards
from state.context import BlockContext
from state.crypto import ed25519
from state.effects import NodeDecommissioned, NodePenalised, NodeRecommissioned, SwarmChanged
from state.encoding import Decoder, Record, encode
from state.errors import InvalidEvent, InvalidSignature
from state.events import NewState, StateChange, compute_vote_message
from state.nodeindex import node_lists, view_lists
from state.noderecords import NodeStatus
from state.nodes import compute_credit, deregister_node, is_payable, put_node, require_node
from state.params import ChainParams
from state.sampler import Sampler
from state.swarms import UNASSIGNED_SWARM_ID
from state.types import NodeKey
from state.view import Overlay

QUORUM_PREFIX = b"quorum/"


class ObligationsQuorum(Record, frozen=True):
    validators: tuple[NodeKey, ...]
    workers: tuple[NodeKey, ...]


_quorum = Decoder(ObligationsQuorum)


def quorum_key(height: int) -> bytes:
    return QUORUM_PREFIX + height.to_bytes(8, "big")


def compute_obligations_quorum(
    active: list[NodeKey], decommissioned: list[NodeKey], seed: bytes, params: ChainParams
) -> ObligationsQuorum | None:
    """The quorum for a height, or ``None`` when no node is active."""
    return draw_obligations_quorum(sorted(active), sorted([*active, *decommissioned]), seed, params)


def draw_obligations_quorum(
    sorted_active: Sequence[NodeKey], sorted_listed: Sequence[NodeKey], seed: bytes, params: ChainParams
) -> ObligationsQuorum | None:
    """:func:`compute_obligations_quorum` of the active nodes and of the active and decommissioned
    ones together, each already sorted by key (a node index's lists): it reads the drawn members
    and the validators' places, never the whole lists."""
    if not sorted_active:
        return None
    sampler = Sampler("obligations", seed)
    validators = sampler.sample(sorted_active, min(params.obligations_quorum_size, len(sorted_active)))
    chosen = []  # all validate: test all
    if len(validators) < len(sorted_active):
        chosen = [bisect_left(sorted_listed, key) for key in validators]
    rest = len(sorted_listed) - len(chosen)
    count = min(rest, max(params.obligations_min_workers, rest // params.obligations_worker_divisor))
    workers = sampler.sample(sorted_listed, count, excluding=chosen)
    return ObligationsQuorum(tuple(validators), tuple(workers))


def compute_vote_threshold(quorum: ObligationsQuorum, worker: bytes, params: ChainParams) -> int:
    """Votes a state change about ``worker`` needs: ⌈7q/10⌉ of the quorum's q validators, or of
    the q − 1 others when the worker is a validator itself (it never votes on itself)."""
    return compute_votes_needed(len(quorum.validators) - (1 if worker in quorum.validators else 0), params)


def compute_votes_needed(voters: int, params: ChainParams) -> int:
    """Votes a state change needs of ``voters`` validators: ``obligations_threshold`` of
    ``obligations_quorum_size``, scaled to them and rounded up (7 of 10, 5 of 7, 3 of 4)."""
    size = params.obligations_quorum_size
    return (params.obligations_threshold * voters + size - 1) // size


def is_below_floor(view: Overlay, params: ChainParams) -> bool:
    """Whether removing one more active node would take the active set below
    ``pulse_min_nodes`` (PROTOCOL.md §4a)."""
    active, _ = node_lists(view)
    return len(active) - 1 < params.pulse_min_nodes


def compute_quorum_seed(prev_hash: bytes, height: int) -> bytes:
    return bytes(prev_hash) + height.to_bytes(8, "big")


def get_quorum(view: Overlay, height: int) -> ObligationsQuorum | None:
    raw = view.get(quorum_key(height))
    return None if raw is None else _quorum.decode(raw)


def store_quorum(view: Overlay, ctx: BlockContext) -> None:
    """Draw and keep this height's quorum; forget the one that just left the vote window."""
    lists = view_lists(view)
    seed = compute_quorum_seed(ctx.prev_hash, ctx.height)
    quorum = draw_obligations_quorum(lists.active, lists.listed, seed, ctx.params)
    if quorum is not None:
        view.put(quorum_key(ctx.height), encode(quorum))
    expired = ctx.height - ctx.params.vote_lifetime - 1
    if expired >= 0 and view.get(quorum_key(expired)) is not None:
        view.delete(quorum_key(expired))


def process_state_change(view: Overlay, event: StateChange, ctx: BlockContext) -> None:
    params = ctx.params
    if event.quorum_height > ctx.height or ctx.height - event.quorum_height > params.vote_lifetime:
        raise InvalidEvent(
            f"votes of height {event.quorum_height} are not valid at height {ctx.height} "
            f"(lifetime {params.vote_lifetime} blocks)"
        )
    quorum = get_quorum(view, event.quorum_height)
    if quorum is None:
        raise InvalidEvent(f"there is no obligations quorum at height {event.quorum_height}")
    if not 0 <= event.worker_index < len(quorum.workers):
        raise InvalidEvent(f"worker index {event.worker_index} is not in the quorum")
    node_key = quorum.workers[event.worker_index]
    needed = compute_vote_threshold(quorum, node_key, params)
    if len(event.votes) < needed:
        raise InvalidEvent(f"{len(event.votes)} votes, {needed} needed")
    for vote in event.votes:
        if not 0 <= vote.validator_index < len(quorum.validators):
            raise InvalidEvent(f"validator index {vote.validator_index} is not in the quorum")
        if quorum.validators[vote.validator_index] == node_key:
            raise InvalidEvent(f"validator {vote.validator_index} voted on itself")
        if ctx.verify_signatures:
            message = compute_vote_message(
                ctx.chain_id, event.quorum_height, event.worker_index, event.new_state, vote.reasons
            )
            if not ed25519.verify(quorum.validators[vote.validator_index], message, vote.signature):
                raise InvalidSignature(f"vote of validator {vote.validator_index} does not verify")
    node = require_node(view, node_key)
    if event.quorum_height <= node.last_state_change_height:
        raise InvalidEvent("the node changed state after these votes: they are stale")
    removes = event.new_state in (NewState.DECOMMISSION, NewState.DEREGISTER)
    if removes and node.status == NodeStatus.ACTIVE and is_below_floor(view, params):
        raise InvalidEvent(
            f"removing an active node would leave fewer than pulse_min_nodes ({params.pulse_min_nodes})"
            " active nodes"
        )
    node = msgspec.structs.replace(node, last_state_change_height=event.quorum_height)
    height = ctx.height
    if event.new_state == NewState.DECOMMISSION:
        if node.status != NodeStatus.ACTIVE:
            raise InvalidEvent("only an active node can be decommissioned")
        credit = compute_credit(node, height, params)
        if credit < params.decommission_min_credit:
            raise InvalidEvent(
                f"credit {credit} is below {params.decommission_min_credit}: deregister instead"
            )
        reasons_all = reasons_any = event.votes[0].reasons
        for vote in event.votes[1:]:
            reasons_all &= vote.reasons
            reasons_any |= vote.reasons
        if node.swarm_id != UNASSIGNED_SWARM_ID:
            view.emit(SwarmChanged(node_key, node.swarm_id, UNASSIGNED_SWARM_ID))
        node = rewards.stop_earning(view, node_key, node)
        node = msgspec.structs.replace(
            node,
            status=NodeStatus.DECOMMISSIONED,
            decommission_height=height,
            decommission_credit=credit,
            decommission_count=node.decommission_count + 1,
            reasons_all=reasons_all,
            reasons_any=reasons_any,
            swarm_id=UNASSIGNED_SWARM_ID,
        )
        view.active_set_changed = True
        view.emit(NodeDecommissioned(node_key, credit, reasons_all, reasons_any))
    elif event.new_state == NewState.RECOMMISSION:
        if node.status != NodeStatus.DECOMMISSIONED:
            raise InvalidEvent("only a decommissioned node can be recommissioned")
        credit = max(0, node.decommission_credit - 2 * (height - node.decommission_height))
        node = msgspec.structs.replace(
            node,
            status=NodeStatus.ACTIVE,
            active_since=height,
            recommission_credit=credit,
            last_reward_height=height,
        )
        if is_payable(node, height, params):  # else its scheduled payable height starts it
            node = rewards.start_earning(view, node)
        view.active_set_changed = True
        view.emit(NodeRecommissioned(node_key, credit))
    elif event.new_state == NewState.DEREGISTER:
        if node.status not in (NodeStatus.ACTIVE, NodeStatus.DECOMMISSIONED):
            raise InvalidEvent("only an active or decommissioned node can be deregistered")
        deregister_node(view, node_key, node, ctx)
        return
    else:  # NewState.IP_CHANGE_PENALTY
        if node.status != NodeStatus.ACTIVE:
            raise InvalidEvent("only an active node can take an IP-change penalty")
        node = msgspec.structs.replace(node, last_reward_height=height)
        view.emit(NodePenalised(node_key))
    put_node(view, node_key, node)
