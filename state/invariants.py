"""Invariants of the state, checked after every transition by the property tests.

Each returns a list of human-readable violations (empty when the state is sound):

- the supply equals the genesis supply to the atomic unit;
- every node is in exactly one state, in the registry exactly once, its BLS key indexed;
- the stakes of a node sum its contributions, never more than the requirement, exactly the
  requirement once active; at most ``max_contributors`` contributors;
- every active node is in exactly one swarm, which lists it; no other node is in a swarm; every
  swarm but a lone one has at least ``min_swarm_size`` members;
- each name has one owner;
- a node earns (has a reward index) exactly when it is payable at this height, the reward index
  counts exactly those nodes and no node is ahead of it; ``stakes/<account>`` lists exactly the
  nodes the account operates or stakes in.
"""

from __future__ import annotations

from state.encoding import Decoder
from state.membership import SWARMS_KEY, Swarm
from state.nodeindex import build_index
from state.noderecords import NOT_EARNING, NodeStatus, ServiceNode
from state.nodes import (
    BLS_PREFIX,
    NODE_PREFIX,
    REGISTRY_KEY,
    STAKES_PREFIX,
    compute_reward_queue,
    compute_stake,
    is_payable,
)
from state.rewards import get_index
from state.sns import NAME_PREFIX, NameRecord
from state.state import State
from state.supply import compute_supply
from state.swarms import UNASSIGNED_SWARM_ID
from state.view import Overlay

_node = Decoder(ServiceNode)
_registry = Decoder(tuple[bytes, ...])
_swarms = Decoder(tuple[Swarm, ...])
_name = Decoder(NameRecord)


def check_invariants(state: State, genesis_supply: int) -> list[str]:
    problems: list[str] = []
    supply = compute_supply(state)
    if supply.total != genesis_supply:
        problems.append(f"supply {supply.total} != genesis supply {genesis_supply} ({supply})")

    params = state.params
    nodes = {key: _node.decode(raw) for key, raw in state.prefixed(NODE_PREFIX)}
    raw_registry = state.get(REGISTRY_KEY)
    registry = () if raw_registry is None else _registry.decode(raw_registry)
    if list(registry) != sorted(nodes) or len(set(registry)) != len(registry):
        problems.append("the registry does not list every node exactly once")
    for key, node in nodes.items():
        name = key.hex()[:12]
        if node.status not in tuple(NodeStatus):
            problems.append(f"node {name} has no valid state ({node.status})")
        if state.get(BLS_PREFIX + node.bls_key) != key:
            problems.append(f"node {name}'s BLS key is not indexed to it")
        stake = compute_stake(node)
        if stake > params.staking_requirement or (
            node.status != NodeStatus.AWAITING and stake != params.staking_requirement
        ):
            problems.append(f"node {name} holds stake {stake} in state {node.status}")
        if len(node.contributions) + len(node.reserved) > params.max_contributors:
            problems.append(f"node {name} has too many contributors")
        if len({c.account for c in node.contributions}) != len(node.contributions):
            problems.append(f"node {name} lists a contributor twice")

    raw_swarms = state.get(SWARMS_KEY)
    swarms = () if raw_swarms is None else _swarms.decode(raw_swarms)
    membership: dict[bytes, int] = {}
    for swarm in swarms:
        for member in swarm.members:
            if member in membership:
                problems.append(f"node {member.hex()[:12]} is in two swarms")
            membership[member] = swarm.swarm_id
        if len(swarms) > 1 and len(swarm.members) < params.min_swarm_size:
            problems.append(f"swarm {swarm.swarm_id} has only {len(swarm.members)} members")
    for key, node in nodes.items():
        expected = membership.get(key, UNASSIGNED_SWARM_ID)
        if node.status == NodeStatus.ACTIVE and expected == UNASSIGNED_SWARM_ID:
            problems.append(f"active node {key.hex()[:12]} is in no swarm")
        if node.swarm_id != expected:
            problems.append(f"node {key.hex()[:12]} says swarm {node.swarm_id}, the swarm list {expected}")
    if any(key not in nodes or nodes[key].status != NodeStatus.ACTIVE for key in membership):
        problems.append("a swarm lists a node that is not active")

    for key, raw in state.prefixed(NAME_PREFIX):
        record = _name.decode(raw)
        if len(record.owner) != 32:
            problems.append(f"name {key.hex()[:12]} has no single owner")

    problems += _check_rewards(state, nodes)
    problems += _check_node_index(state, nodes)
    return problems


def _check_node_index(state: State, nodes: dict[bytes, ServiceNode]) -> list[str]:
    """The derived index (moved along block by block) is what a full scan gives."""
    index = state.node_index
    if index is None:
        return []
    problems = []
    if index != build_index(state.get):
        problems.append("the node index moved along by the blocks differs from one rebuilt from the state")
    active = sorted(k for k, n in nodes.items() if n.status == NodeStatus.ACTIVE)
    decommissioned = sorted(k for k, n in nodes.items() if n.status == NodeStatus.DECOMMISSIONED)
    if index.active != active or index.decommissioned != decommissioned:
        problems.append("the node index's active or decommissioned list differs from a scan")
    if [entry[2] for entry in index.queue] != compute_reward_queue(Overlay(state.get)):
        problems.append("the node index's reward queue differs from a scan")
    return problems


def _check_rewards(state: State, nodes: dict[bytes, ServiceNode]) -> list[str]:
    problems = []
    index = get_index(Overlay(state.get))
    earning = 0
    for key, node in nodes.items():
        name, earns = key.hex()[:12], node.reward_index != NOT_EARNING
        payable = is_payable(node, state.height, state.params)
        if earns != payable:
            problems.append(f"node {name} earns: {earns}, payable: {payable}")
        if earns:
            earning += 1
            if not 0 <= node.reward_index <= index.per_node:
                problems.append(f"node {name} settled at {node.reward_index}, index {index.per_node}")
    if earning != index.payable:
        problems.append(f"the reward index counts {index.payable} payable nodes, {earning} earn")
    expected: dict[bytes, list[bytes]] = {}
    for key, node in sorted(nodes.items()):
        for account in {node.operator, *(c.account for c in node.contributions)}:
            expected.setdefault(bytes(account), []).append(key)
    found = {key: list(_registry.decode(raw)) for key, raw in state.prefixed(STAKES_PREFIX)}
    if found != expected:
        problems.append("the stakes index does not list exactly the nodes each account holds")
    return problems
