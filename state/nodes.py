"""The service-node registry.

Keys: ``node/<32-byte node key>`` → :class:`ServiceNode`; ``bls/<48-byte BLS key>`` → node key
(so a BLS key can be registered once only). Genesis nodes are fully staked and active from
block 0; registration, contributions, unlocks and state changes arrive with the service-node
state machine.
"""

from __future__ import annotations

from state.encoding import Decoder, Record, encode
from state.errors import InvalidEvent
from state.events import Contribution, GenesisNode
from state.params import ChainParams
from state.types import AccountKey, BlsPublicKey, BlsSignature, Ed25519Signature, Height, NodeKey
from state.view import Overlay

NODE_PREFIX = b"node/"
BLS_PREFIX = b"bls/"


class ServiceNode(Record, frozen=True):
    """A registered node. The key proofs are kept so anyone can re-check them from the state."""

    operator: AccountKey
    bls_key: BlsPublicKey
    bls_pop: BlsSignature
    node_signature: Ed25519Signature
    operator_fee_bp: int
    contributions: tuple[Contribution, ...]
    registration_height: Height
    active_since: Height | None


_node = Decoder(ServiceNode)


def get_node(view: Overlay, node_key: NodeKey) -> ServiceNode | None:
    raw = view.get(NODE_PREFIX + node_key)
    return None if raw is None else _node.decode(raw)


def compute_stake(node: ServiceNode) -> int:
    return sum(c.amount for c in node.contributions)


def process_genesis_node(view: Overlay, event: GenesisNode, params: ChainParams) -> None:
    if get_node(view, event.node_key) is not None:
        raise InvalidEvent("node key already registered")
    if view.get(BLS_PREFIX + event.bls_key) is not None:
        raise InvalidEvent("BLS key already registered")
    if len(event.contributions) > params.max_contributors:
        raise InvalidEvent(f"more than {params.max_contributors} contributors")
    total = sum(c.amount for c in event.contributions)
    if total != params.staking_requirement:
        raise InvalidEvent(f"genesis node stake {total} is not the requirement {params.staking_requirement}")
    minimum = params.staking_requirement // params.min_operator_stake_divisor
    if event.contributions[0].amount < minimum:
        raise InvalidEvent(f"operator stake below the minimum {minimum}")
    record = ServiceNode(
        operator=event.operator,
        bls_key=event.bls_key,
        bls_pop=event.bls_pop,
        node_signature=event.node_signature,
        operator_fee_bp=event.operator_fee_bp,
        contributions=event.contributions,
        registration_height=Height(0),
        active_since=Height(0),
    )
    view.put(NODE_PREFIX + event.node_key, encode(record))
    view.put(BLS_PREFIX + event.bls_key, bytes(event.node_key))
