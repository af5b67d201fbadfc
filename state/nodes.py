"""The service-node registry: registration, contributions, activation, unlocks and exits.

Keys (the records are :mod:`state.noderecords`): ``node/<node key>`` →
:class:`~state.noderecords.ServiceNode`; ``bls/<BLS key>`` → node key (each BLS key registers
once); ``registry`` → every registered node key, sorted (what the end of a block walks for rewards
and swarms); ``meta/registrations`` → the registration counter; ``lock/<height>/<node key>`` →
:class:`~state.noderecords.LockedStake`, a deregistered node's stakes until they return at that
height; ``stakes/<account>`` → the keys of the nodes the account operates or stakes in, sorted
(kept by :func:`put_node`: what a claim settles, :mod:`state.rewards`).

States: awaiting contributions → active ⇄ decommissioned; a node leaves the registry by exit
(unlock completed or registration withdrawn) or deregistration. ``status`` is the single source
of a node's state (PROTOCOL.md §2, §3; Oxen ``service_node_list.cpp``):

- The operator stakes at least ``requirement // min_operator_stake_divisor``; reserved spots
  hold room for named contributors; each other contributor stakes at least
  ``ceil(unreserved room / open spots)``; at most ``max_contributors`` in all; never more than
  the requirement.
- A node is active from the block where its stakes reach the requirement, payable
  ``payable_delay`` blocks after its first activation (scheduled work at that height) and again
  from a recommission after that; it stops being payable when decommissioned or gone, and is
  settled then (:mod:`state.rewards`).
- Any contributor may request the exit of an active (or decommissioned) node: it leaves
  ``unlock_delay`` blocks later and every stake returns. A contributor holding under
  ``small_contributor_bp`` of the requirement may not request it in the first
  ``small_contributor_lock`` blocks after activation.
- Before activation a contributor may withdraw its stake ``contribution_lock`` blocks after
  contributing; the operator withdrawing cancels the registration and returns every stake.
- A deregistered node leaves at once; its stakes return ``deregistration_lock`` blocks later.
"""

from __future__ import annotations

import msgspec

from state import ledger, rewards
from state.context import BlockContext
from state.effects import (
    NodeActivated,
    NodeDeregistered,
    NodeExited,
    NodeRegistered,
    StakeReturned,
    SwarmChanged,
    UnlockRequested,
)
from state.encoding import Decoder, encode
from state.errors import InvalidEvent
from state.events import (
    ClaimRewards,
    Contribute,
    Contribution,
    GenesisNode,
    RegisterNode,
    RequestUnlock,
)
from state.noderecords import NONE, NOT_EARNING, LockedStake, NodeStatus, ServiceNode
from state.params import ChainParams
from state.schedule import BECOME_PAYABLE, EXIT, RETURN_STAKE, schedule
from state.swarms import UNASSIGNED_SWARM_ID
from state.types import AccountKey, Height, NodeKey
from state.view import Overlay

NODE_PREFIX = b"node/"
BLS_PREFIX = b"bls/"
LOCK_PREFIX = b"lock/"
STAKES_PREFIX = b"stakes/"
REGISTRY_KEY = b"registry"
REGISTRATIONS_KEY = b"meta/registrations"


_node = Decoder(ServiceNode)
_registry = Decoder(tuple[bytes, ...])
_counter = Decoder(int)
_locked = Decoder(LockedStake)


# -- reads -------------------------------------------------------------------------------------


_decoded: dict[bytes, ServiceNode] = {}
_DECODED_MAX = 65_536
_registry_cache: tuple[bytes, tuple[bytes, ...]] = (b"", ())


def decode_node(raw: bytes) -> ServiceNode:
    """The record an encoding holds. Records are immutable, so one decoding per distinct
    encoding serves every later read (a block reads every node several times: rewards, the
    reward queue, quorums); the cache is bounded and is a pure function of the bytes."""
    node = _decoded.get(raw)
    if node is None:
        node = _node.decode(raw)
        if len(_decoded) >= _DECODED_MAX:
            _decoded.clear()
        _decoded[raw] = node
    return node


def get_node(view: Overlay, node_key: bytes) -> ServiceNode | None:
    raw = view.get(NODE_PREFIX + node_key)
    return None if raw is None else decode_node(raw)


def require_node(view: Overlay, node_key: bytes) -> ServiceNode:
    node = get_node(view, node_key)
    if node is None:
        raise InvalidEvent(f"node {bytes(node_key).hex()[:16]}… is not registered")
    return node


def get_registry(view: Overlay) -> tuple[bytes, ...]:
    global _registry_cache  # noqa: PLW0603 - the last decoded registry, reused while unchanged
    raw = view.get(REGISTRY_KEY)
    if raw is None:
        return ()
    if _registry_cache[0] != raw:
        _registry_cache = (raw, _registry.decode(raw))
    return _registry_cache[1]


def iter_nodes(view: Overlay) -> list[tuple[NodeKey, ServiceNode]]:
    """Every registered node in node-key order."""
    result = []
    for key in get_registry(view):
        node = get_node(view, key)
        if node is None:
            raise AssertionError("the registry names a node that does not exist")
        result.append((NodeKey(key), node))
    return result


def get_staked_nodes(view: Overlay, account: bytes) -> tuple[bytes, ...]:
    """The nodes ``account`` operates or stakes in, in key order."""
    raw = view.get(STAKES_PREFIX + account)
    return () if raw is None else _registry.decode(raw)


def compute_stake(node: ServiceNode) -> int:
    return sum(c.amount for c in node.contributions)


def is_active(node: ServiceNode) -> bool:
    return node.status == NodeStatus.ACTIVE


def is_payable(node: ServiceNode, height: int, params: ChainParams) -> bool:
    return is_active(node) and height >= node.activation_height + params.payable_delay


def compute_credit(node: ServiceNode, height: int, params: ChainParams) -> int:
    """Decommission credit in blocks (Oxen computes it the same lazy way).

    Active: ``min(max, credit at active_since + blocks active * per_period // period)``.
    Decommissioned: the credit at decommission minus one per block since.
    """
    if node.status == NodeStatus.ACTIVE:
        earned = (height - node.active_since) * params.credit_per_period // params.credit_period
        return min(params.credit_max, node.recommission_credit + earned)
    if node.status == NodeStatus.DECOMMISSIONED:
        return node.decommission_credit - (height - node.decommission_height)
    return 0


def compute_leader(view: Overlay) -> NodeKey | None:
    """The head of the reward queue: the producer of the next block's round 0."""
    queue = compute_reward_queue(view)
    return queue[0] if queue else None


def compute_reward_queue(view: Overlay) -> list[NodeKey]:
    """Active nodes in leader order: ``(last_reward_height, registration order, key)``."""
    active = [(n.last_reward_height, n.registration_index, k) for k, n in iter_nodes(view) if is_active(n)]
    return [key for _, _, key in sorted(active)]


# -- writes ------------------------------------------------------------------------------------


def put_node(view: Overlay, node_key: bytes, node: ServiceNode) -> None:
    _index_stakes(view, node_key, get_node(view, node_key), node)
    view.put(NODE_PREFIX + node_key, encode(node))


def _accounts(node: ServiceNode | None) -> set[bytes]:
    if node is None:
        return set()
    return {bytes(node.operator), *(bytes(c.account) for c in node.contributions)}


def _index_stakes(
    view: Overlay, node_key: bytes, before: ServiceNode | None, after: ServiceNode | None
) -> None:
    """Keep ``stakes/<account>`` in step with who operates or stakes in ``node_key``."""
    if before is not None and after is not None and before.contributions == after.contributions:
        return  # the common case: a status or queue change
    old, new = _accounts(before), _accounts(after)
    for account in old ^ new:
        held = set(get_staked_nodes(view, account))
        held.symmetric_difference_update((bytes(node_key),))
        if held:
            view.put(STAKES_PREFIX + account, encode(tuple(sorted(held))))
        else:
            view.delete(STAKES_PREFIX + account)


def _add_to_registry(view: Overlay, node_key: bytes, node: ServiceNode) -> None:
    if get_node(view, node_key) is not None:
        raise InvalidEvent("node key already registered")
    if view.get(BLS_PREFIX + node.bls_key) is not None:
        raise InvalidEvent("BLS key already registered")
    registry = get_registry(view)
    view.put(REGISTRY_KEY, encode(tuple(sorted((*registry, bytes(node_key))))))
    view.put(BLS_PREFIX + node.bls_key, bytes(node_key))
    put_node(view, node_key, node)
    view.emit(NodeRegistered(NodeKey(node_key), node.operator))


def _remove_from_registry(view: Overlay, node_key: bytes, node: ServiceNode) -> None:
    if node.reward_index != NOT_EARNING:
        raise AssertionError("a node leaves the registry unsettled")
    _index_stakes(view, node_key, get_node(view, node_key), None)
    view.put(REGISTRY_KEY, encode(tuple(k for k in get_registry(view) if k != node_key)))
    view.delete(BLS_PREFIX + node.bls_key)
    view.delete(NODE_PREFIX + node_key)
    if node.swarm_id != UNASSIGNED_SWARM_ID:
        view.emit(SwarmChanged(NodeKey(node_key), node.swarm_id, UNASSIGNED_SWARM_ID))
    if is_active(node):
        view.active_set_changed = True


def _next_registration_index(view: Overlay) -> int:
    raw = view.get(REGISTRATIONS_KEY)
    index = 0 if raw is None else _counter.decode(raw)
    view.put(REGISTRATIONS_KEY, encode(index + 1))
    return index


def activate(
    view: Overlay, node_key: bytes, node: ServiceNode, height: int, params: ChainParams
) -> ServiceNode:
    """The node is fully funded: it joins the active set (and the back of the reward queue)."""
    active = _replace(
        node,
        status=NodeStatus.ACTIVE,
        activation_height=height,
        active_since=height,
        recommission_credit=params.credit_initial,
        last_reward_height=height,
    )
    view.active_set_changed = True
    view.emit(NodeActivated(NodeKey(node_key)))
    if is_payable(active, height, params):  # no payable delay
        return rewards.start_earning(view, active)
    schedule(view, height + params.payable_delay, BECOME_PAYABLE, bytes(node_key))
    return active


def process_due_payable(view: Overlay, node_key: bytes, ctx: BlockContext) -> None:
    """The node's payable delay is over: it earns from this block on, if it is still active (a
    node decommissioned meanwhile starts earning at its recommission instead)."""
    node = get_node(view, node_key)
    if node is not None and node.reward_index == NOT_EARNING and is_payable(node, ctx.height, ctx.params):
        put_node(view, node_key, rewards.start_earning(view, node))


def settle_account(view: Overlay, account: bytes) -> None:
    """Settle every node ``account`` operates or stakes in."""
    for node_key in get_staked_nodes(view, account):
        node = get_node(view, node_key)
        if node is None:
            raise AssertionError("the stakes index names a node that does not exist")
        settled = rewards.settle(view, node_key, node)
        if settled is not node:
            put_node(view, node_key, settled)


def compute_pending_rewards(view: Overlay, account: bytes) -> int:
    """What settling the nodes ``account`` operates or stakes in would add to its accrued rewards."""
    index = rewards.get_index(view)
    held = (get_node(view, key) for key in get_staked_nodes(view, account))
    return rewards.compute_pending((n for n in held if n is not None), index, account)


def compute_claimable(view: Overlay, account: bytes) -> int:
    """What a claim by ``account`` would move to its balance now: settled plus pending rewards."""
    settled = ledger.get_reward_account(view, AccountKey(account)).accrued
    return settled + compute_pending_rewards(view, account)


def process_claim_rewards(view: Overlay, tx: ClaimRewards, ctx: BlockContext) -> None:
    """Settle the sender's nodes, then move everything accrued to it into its balance."""
    settle_account(view, tx.sender)
    ledger.process_claim_rewards(view, tx, ctx)


def _replace(node: ServiceNode, **changes: object) -> ServiceNode:
    return msgspec.structs.replace(node, **changes)


def return_stakes(view: Overlay, node_key: bytes, contributions: tuple[Contribution, ...]) -> None:
    for contribution in contributions:
        ledger.increase_balance(view, contribution.account, contribution.amount)
        view.emit(StakeReturned(NodeKey(node_key), contribution.account, contribution.amount))


def lock_key(height: int, node_key: bytes) -> bytes:
    return LOCK_PREFIX + height.to_bytes(8, "big") + b"/" + bytes(node_key)


def deregister_node(view: Overlay, node_key: bytes, node: ServiceNode, ctx: BlockContext) -> None:
    """Remove the node now; lock its stakes until ``deregistration_lock`` blocks later."""
    node = rewards.stop_earning(view, node_key, node)
    returns_at = ctx.height + ctx.params.deregistration_lock
    key = lock_key(returns_at, node_key)
    view.put(key, encode(LockedStake(NodeKey(node_key), node.contributions)))
    schedule(view, returns_at, RETURN_STAKE, key)
    view.emit(NodeDeregistered(NodeKey(node_key), Height(returns_at)))
    _remove_from_registry(view, node_key, node)


def exit_node(view: Overlay, node_key: bytes, node: ServiceNode) -> None:
    """The node is settled, leaves the registry (and its swarm) and every stake returns."""
    node = rewards.stop_earning(view, node_key, node)
    view.emit(NodeExited(NodeKey(node_key)))
    _remove_from_registry(view, node_key, node)
    return_stakes(view, node_key, node.contributions)


def process_due_exit(view: Overlay, node_key: bytes, height: int, *, at_floor: bool) -> None:
    """A finished unlock: the node exits, unless it is active and the active set is ``at_floor``
    (one node fewer would be below ``pulse_min_nodes``, PROTOCOL.md §4a); then it waits, one
    block at a time, until the set is larger (its ``unlock_height`` says when it is next due)."""
    node = get_node(view, node_key)
    if node is None or node.unlock_height != height:
        return
    if node.status == NodeStatus.ACTIVE and at_floor:
        put_node(view, node_key, _replace(node, unlock_height=height + 1))
        schedule(view, height + 1, EXIT, bytes(node_key))
        return
    exit_node(view, node_key, node)


def process_due_stake_return(view: Overlay, key: bytes) -> None:
    raw = view.get(key)
    if raw is None:
        raise AssertionError("a scheduled stake return has no locked stake")
    locked = _locked.decode(raw)
    view.delete(key)
    return_stakes(view, locked.node_key, locked.contributions)


def move_producer_to_back(view: Overlay, ctx: BlockContext) -> None:
    """Producing a block sends the producer to the back of the reward queue (PROTOCOL.md §4)."""
    if ctx.height == 0:
        return
    node = get_node(view, ctx.producer)
    if node is None or not is_active(node):
        raise InvalidEvent("the block producer is not an active service node")
    put_node(view, ctx.producer, _replace(node, last_reward_height=ctx.height))


# -- rules -------------------------------------------------------------------------------------


def _min_operator_stake(params: ChainParams) -> int:
    return params.staking_requirement // params.min_operator_stake_divisor


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def process_genesis_node(view: Overlay, event: GenesisNode, ctx: BlockContext) -> None:
    params = ctx.params
    if len(event.contributions) > params.max_contributors:
        raise InvalidEvent(f"more than {params.max_contributors} contributors")
    total = sum(c.amount for c in event.contributions)
    if total != params.staking_requirement:
        raise InvalidEvent(f"genesis node stake {total} is not the requirement {params.staking_requirement}")
    if event.contributions[0].amount < _min_operator_stake(params):
        raise InvalidEvent(f"operator stake below the minimum {_min_operator_stake(params)}")
    node = ServiceNode(
        operator=event.operator,
        bls_key=event.bls_key,
        bls_pop=event.bls_pop,
        node_signature=event.node_signature,
        operator_fee_bp=event.operator_fee_bp,
        contributions=event.contributions,
        reserved=(),
        registration_height=Height(0),
        registration_index=_next_registration_index(view),
    )
    _add_to_registry(view, event.node_key, node)
    put_node(view, event.node_key, activate(view, event.node_key, node, 0, params))


def process_register_node(view: Overlay, tx: RegisterNode, ctx: BlockContext) -> None:
    params = ctx.params
    requirement = params.staking_requirement
    if tx.amount < _min_operator_stake(params):
        raise InvalidEvent(f"operator stake {tx.amount} below the minimum {_min_operator_stake(params)}")
    if 1 + len(tx.reserved) > params.max_contributors:
        raise InvalidEvent(f"more than {params.max_contributors} contributors")
    room = requirement - tx.amount
    if room < 0:
        raise InvalidEvent("the operator stake exceeds the staking requirement")
    open_spots = params.max_contributors - 1
    for reservation in tx.reserved:
        minimum = _ceil_div(room, open_spots)
        if reservation.amount < minimum:
            raise InvalidEvent(
                f"reserved amount {reservation.amount} below the minimum contribution {minimum}"
            )
        room -= reservation.amount
        open_spots -= 1
        if room < 0:
            raise InvalidEvent("the reserved amounts exceed the staking requirement")
    ledger.decrease_balance(view, tx.sender, tx.amount, "stake")
    node = ServiceNode(
        operator=tx.sender,
        bls_key=tx.bls_key,
        bls_pop=tx.bls_pop,
        node_signature=tx.node_signature,
        operator_fee_bp=tx.operator_fee_bp,
        contributions=(Contribution(tx.sender, tx.amount, Height(ctx.height)),),
        reserved=tx.reserved,
        registration_height=Height(ctx.height),
        registration_index=_next_registration_index(view),
    )
    _add_to_registry(view, tx.node_key, node)
    if tx.amount == requirement:
        node = activate(view, tx.node_key, node, ctx.height, params)
    put_node(view, tx.node_key, node)


def process_contribute(view: Overlay, tx: Contribute, ctx: BlockContext) -> None:
    params = ctx.params
    node = require_node(view, tx.node_key)
    if node.status != NodeStatus.AWAITING:
        raise InvalidEvent("the node is already fully funded")
    if any(c.account == tx.sender for c in node.contributions):
        raise InvalidEvent("this account already contributed to the node")
    contributed = compute_stake(node)
    reserved_total = sum(r.amount for r in node.reserved)
    reservation = next((r for r in node.reserved if r.account == tx.sender), None)
    if reservation is not None:
        if tx.amount < reservation.amount:
            raise InvalidEvent(f"amount {tx.amount} below the reserved amount {reservation.amount}")
        room = params.staking_requirement - contributed - (reserved_total - reservation.amount)
        remaining_reserved = tuple(r for r in node.reserved if r.account != tx.sender)
    else:
        open_spots = params.max_contributors - len(node.contributions) - len(node.reserved)
        if open_spots <= 0:
            raise InvalidEvent(f"the node already has {params.max_contributors} contributors")
        room = params.staking_requirement - contributed - reserved_total
        minimum = _ceil_div(room, open_spots)
        if tx.amount < minimum:
            raise InvalidEvent(f"amount {tx.amount} below the minimum contribution {minimum}")
        remaining_reserved = node.reserved
    if tx.amount > room:
        raise InvalidEvent(f"amount {tx.amount} exceeds the room left ({room})")
    ledger.decrease_balance(view, tx.sender, tx.amount, "stake")
    contribution = Contribution(tx.sender, tx.amount, Height(ctx.height))
    node = _replace(node, contributions=(*node.contributions, contribution), reserved=remaining_reserved)
    if compute_stake(node) == params.staking_requirement:
        node = activate(view, tx.node_key, node, ctx.height, params)
    put_node(view, tx.node_key, node)


def process_request_unlock(view: Overlay, tx: RequestUnlock, ctx: BlockContext) -> None:
    params = ctx.params
    node = require_node(view, tx.node_key)
    contribution = next((c for c in node.contributions if c.account == tx.sender), None)
    if contribution is None:
        raise InvalidEvent("only a contributor may request an unlock")
    if node.status == NodeStatus.AWAITING:
        if ctx.height < contribution.height + params.contribution_lock:
            raise InvalidEvent(
                f"unlock too early: a contribution to a node not yet active is locked until height "
                f"{contribution.height + params.contribution_lock}"
            )
        if tx.sender == node.operator:
            exit_node(view, tx.node_key, node)  # the registration is withdrawn
            return
        remaining = tuple(c for c in node.contributions if c.account != tx.sender)
        put_node(view, tx.node_key, _replace(node, contributions=remaining))
        return_stakes(view, tx.node_key, (contribution,))
        return
    if node.unlock_height != NONE:
        raise InvalidEvent(f"the node already exits at height {node.unlock_height}")
    is_small = contribution.amount * 10_000 < params.staking_requirement * params.small_contributor_bp
    if is_small and ctx.height < node.activation_height + params.small_contributor_lock:
        raise InvalidEvent(
            f"unlock too early: a contributor under {params.small_contributor_bp / 100:g}% may not request "
            f"an exit before height {node.activation_height + params.small_contributor_lock}"
        )
    exit_height = ctx.height + params.unlock_delay
    put_node(view, tx.node_key, _replace(node, unlock_height=exit_height))
    schedule(view, exit_height, EXIT, bytes(tx.node_key))
    view.emit(UnlockRequested(tx.node_key, tx.sender, Height(exit_height)))
