"""Swarm membership in the state: recomputed at the end of blocks where the active set changed.

Each active node's record holds its ``swarm_id``; ``swarms`` holds every swarm with its members
(sorted), so a light client can prove which nodes serve an account with one proof. The
assignment (:func:`state.swarms.compute_swarm_changes`) draws from a
:class:`~state.sampler.Sampler` tagged ``swarms``, seeded with the parent block's hash and the
height (PROTOCOL.md says "the block hash": the block's own hash commits to this very result, so
the parent's is the latest one available).
"""

from __future__ import annotations

import msgspec

from state.context import BlockContext
from state.effects import SwarmChanged
from state.encoding import Decoder, Record, encode
from state.nodes import is_active, iter_nodes, put_node
from state.params import ChainParams
from state.sampler import Sampler
from state.swarms import UNASSIGNED_SWARM_ID, SwarmRules, compute_swarm_changes
from state.types import NodeKey
from state.view import Overlay

SWARMS_KEY = b"swarms"


class Swarm(Record, frozen=True):
    swarm_id: int
    members: tuple[NodeKey, ...]


_swarms = Decoder(tuple[Swarm, ...])


def get_swarms(view: Overlay) -> tuple[Swarm, ...]:
    raw = view.get(SWARMS_KEY)
    return () if raw is None else _swarms.decode(raw)


def swarm_rules(params: ChainParams) -> SwarmRules:
    return SwarmRules(
        min_size=params.min_swarm_size,
        new_size=params.new_swarm_size,
        margin=params.swarm_margin,
        fill_percentile=params.swarm_fill_percentile,
        steal_percentile=params.swarm_steal_percentile,
    )


def update_swarms(view: Overlay, ctx: BlockContext) -> None:
    active = [(key, node) for key, node in iter_nodes(view) if is_active(node)]
    current: dict[int, list[bytes]] = {}
    unassigned: list[bytes] = []
    for key, node in active:
        if node.swarm_id == UNASSIGNED_SWARM_ID:
            unassigned.append(key)
        else:
            current.setdefault(node.swarm_id, []).append(key)
    if active:
        sampler = Sampler("swarms", bytes(ctx.prev_hash) + ctx.height.to_bytes(8, "big"))
        swarms = compute_swarm_changes(current, unassigned, swarm_rules(ctx.params), sampler)
    else:
        swarms = {}
    assignment = {node: swarm_id for swarm_id, members in swarms.items() for node in members}
    for key, node in active:
        new_swarm = assignment[key]
        if new_swarm != node.swarm_id:
            put_node(view, key, msgspec.structs.replace(node, swarm_id=new_swarm))
            view.emit(SwarmChanged(key, node.swarm_id, new_swarm))
    listing = tuple(
        Swarm(swarm_id, tuple(NodeKey(m) for m in swarms[swarm_id])) for swarm_id in sorted(swarms)
    )
    if listing != get_swarms(view):
        view.put(SWARMS_KEY, encode(listing))
