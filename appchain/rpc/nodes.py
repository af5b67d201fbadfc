"""The service nodes as oxend lists them: ``get_service_nodes`` (with ``fields``, ``active_only``,
``limit`` and ``poll_block_hash``), ``get_service_node_status`` (this node's own record) and
``get_quorum_state`` (the obligations and checkpoint quorums kept in the state, and the next
height's Pulse quorum).

An entry joins the node's record on chain with what this node saw of it: its last uptime proof
(address, ports, version) and its Pulse duties remembered by the core.
"""

from __future__ import annotations

from typing import Any

import msgspec
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519

from appchain.rpc.blocks import HARD_FORK, HARD_FORK_REVISION
from appchain.rpc.jsonrpc import Height, Keys, NoParams, Params, RpcError, Text
from appchain.rpc.served import PublicNode, tip_view
from consensus.checkpoint import decode_bitset
from consensus.validation import compute_block_entropy, compute_block_quorum
from state.checkpoints import (
    decode_checkpoint_quorum,
    get_checkpoint_quorum,
    is_checkpoint_height,
)
from state.noderecords import NodeStatus, ServiceNode
from state.nodes import compute_credit, get_node, iter_nodes
from state.obligations import get_quorum

MILLIONTHS_PER_BP = 100
"""``operator_fee`` is given in millionths, as oxend 11 (and the tx extra's ``fee``) gives it;
the chain keeps basis points."""
QUORUM_VOTE_CHECK_COUNT = 8
"""Participation records oxend keeps per node (``service_node_rules.h``)."""
CHECKPOINT_LOOKBACK = 8 * 4 * 8
"""Heights below the final one searched for a node's checkpoint participation."""

STAKING_PORTIONS = 0xFFFFFFFFFFFFFFFC
"""oxend's whole stake in "portions" (``portions_for_operator`` is the fee in these units)."""


def _service_node_entry(node: PublicNode, key: bytes, record: ServiceNode, height: int) -> dict[str, Any]:
    """One node of ``get_service_nodes``. ``storage_port`` is its storage port (HTTPS), from its
    uptime proof. ``storage_lmq_port`` is 0, oxend's value when it knows no such port: oxend
    announces the storage server's OxenMQ/QUIC port there, which this node does not have (its p2p
    port speaks Noise), and oxend always writes the field, so it stays, saying "none"."""
    params = node.ledger.state.params
    proof_entry = node.core.proofs.accepted.get(bytes(key))
    proof = proof_entry[0] if proof_entry else None
    contributed = sum(c.amount for c in record.contributions)
    duties = node.core.pulse_record.of(bytes(key))
    checkpoints = _checkpoint_participation(node, bytes(key))
    entry = {
        "service_node_pubkey": key.hex(),
        "pubkey_ed25519": key.hex(),
        "pubkey_x25519": crypto_sign_ed25519_pk_to_curve25519(bytes(key)).hex(),
        "pubkey_bls": record.bls_key.hex(),
        "public_ip": proof.public_ip if proof else "",
        "storage_port": proof.storage_port if proof else 0,
        "storage_lmq_port": 0,
        "storage_server_version": list(proof.version) if proof else [0, 0, 0],
        "service_node_version": list(proof.version) if proof else [0, 0, 0],
        "last_uptime_proof": proof.timestamp if proof else 0,
        "registration_height": record.registration_height,
        "registration_hf_version": HARD_FORK,
        "state_height": max(record.activation_height, record.decommission_height, 0)
        if record.status != NodeStatus.AWAITING
        else record.registration_height,
        "requested_unlock_height": max(record.unlock_height, 0),
        "last_reward_block_height": max(record.last_reward_height, 0),
        "last_reward_transaction_index": record.registration_index,
        "active": record.status == NodeStatus.ACTIVE,
        "funded": contributed >= params.staking_requirement,
        "earned_downtime_blocks": compute_credit(record, height, params),
        "swarm_id": record.swarm_id,
        "swarm_id_str": str(record.swarm_id),
        "swarm": f"{record.swarm_id:016x}",
        "staking_requirement": params.staking_requirement,
        "total_contributed": contributed,
        "total_reserved": contributed + sum(r.amount for r in record.reserved),
        "portions_for_operator": STAKING_PORTIONS * record.operator_fee_bp // 10_000,
        "operator_fee": record.operator_fee_bp * MILLIONTHS_PER_BP,
        "operator_address": record.operator.hex(),
        "contributors": _contributors(record),
        "pulse_votes": {
            "participated": sum(duty.took_part for duty in duties),
            "missed": sum(not duty.took_part for duty in duties),
        },
        "storage_server_reachable": proof is not None,
        "storage_server_first_unreachable": 0,
        "storage_server_last_unreachable": 0,
        "storage_server_last_reachable": proof.timestamp if proof else 0,
        "lokinet_reachable": True,
        "lokinet_first_unreachable": 0,
        "lokinet_last_unreachable": 0,
        "lokinet_last_reachable": 0,
        "last_decommission_reason_consensus_all": record.reasons_all,
        "last_decommission_reason_consensus_any": record.reasons_any,
        "status": NodeStatus(record.status).name.lower(),
    }
    if checkpoints:
        entry["checkpoint_participation"] = checkpoints
    if duties:
        entry["pulse_participation"] = [
            {"height": duty.height, "voted": duty.took_part, "is_pulse": True, "pulse_round": duty.round}
            for duty in duties
        ]
    return entry


def _checkpoint_participation(node: PublicNode, key: bytes) -> list[dict[str, Any]]:
    """oxend's ``checkpoint_participation``: the last :data:`QUORUM_VOTE_CHECK_COUNT` certified
    checkpoints whose quorum held this node, oldest first, each with whether its BLS signature
    is in the certificate (``signers``, by member index)."""
    store = node.chain.store
    records: list[dict[str, Any]] = []
    final = node.ledger.final_height
    interval = node.ledger.state.params.checkpoint_interval
    height = final - final % interval
    lowest = max(node.chain.base_height, final - CHECKPOINT_LOOKBACK)
    while height > lowest and len(records) < QUORUM_VOTE_CHECK_COUNT:
        certificate = store.get_certificate(height)
        raw = store.get_checkpoint_quorum(height, interval)
        if certificate is not None and raw is not None:
            members = [bytes(m.node_key) for m in decode_checkpoint_quorum(raw).members]
            if key in members:
                voted = members.index(key) in decode_bitset(certificate.signers, len(members))
                records.append({"height": height, "voted": voted, "is_pulse": False})
        height -= interval
    return records[::-1]


def _contributors(record: ServiceNode) -> list[dict[str, Any]]:
    staked = [
        {
            "address": c.account.hex(),
            "amount": c.amount,
            "reserved": c.amount,
            "locked_contributions": [{"amount": c.amount}],
        }
        for c in record.contributions
    ]
    open_spots = [
        {"address": r.account.hex(), "amount": 0, "reserved": r.amount, "locked_contributions": []}
        for r in record.reserved
    ]
    return staked + open_spots


class ServiceNodesParams(Params, frozen=True):
    poll_block_hash: Text | None = None
    service_node_pubkeys: Keys = msgspec.field(default_factory=list)
    active_only: bool = False
    limit: Height | None = None
    fields: Keys | dict[Text, bool] | None = None
    """oxend's ``fields``: a list of names, or an object of name: true (none: every field)."""


def _fields(value: list[str] | dict[str, bool] | None) -> set[str]:
    if isinstance(value, dict):
        return {name for name, on in value.items() if on}
    return set(value or ())


def get_service_nodes(node: PublicNode, params: ServiceNodesParams) -> dict[str, Any]:
    state = node.ledger.state
    top = state.block_hash.hex()
    if params.poll_block_hash is not None and params.poll_block_hash == top:
        return {"status": "OK", "unchanged": True, "height": state.height, "block_hash": top}
    active_only, limit = params.active_only, params.limit
    chosen = _fields(params.fields)
    wanted_keys = {k.lower() for k in params.service_node_pubkeys}
    entries = []
    for key, record in iter_nodes(tip_view(node)):
        if wanted_keys and key.hex() not in wanted_keys:
            continue
        if active_only and record.status != NodeStatus.ACTIVE:
            continue
        entry = _service_node_entry(node, key, record, state.height)
        entries.append({k: v for k, v in entry.items() if k in chosen} if chosen else entry)
        if limit is not None and len(entries) >= limit:
            break
    return {
        "status": "OK",
        "service_node_states": entries,
        "height": state.height,
        "target_height": 0,
        "block_hash": top,
        "hardfork": HARD_FORK,
        "snode_revision": HARD_FORK_REVISION,
        "unchanged": False,
    }


QUORUM_OBLIGATIONS, QUORUM_CHECKPOINT, QUORUM_PULSE, QUORUM_ALL = 0, 1, 3, 255


MAX_QUORUM_SPAN = 256
"""Heights one ``get_quorum_state`` spans at most (oxend's public limit)."""


def get_service_node_status(node: PublicNode, params: NoParams) -> dict[str, Any]:
    state = node.ledger.state
    key = node.core.node_key
    record = get_node(tip_view(node), key)
    if record is None:
        entry: dict[str, Any] = {"service_node_pubkey": key.hex(), "registered": False}
    else:
        entry = {**_service_node_entry(node, key, record, state.height), "registered": True}
    return {
        "status": "OK",
        "service_node_state": entry,
        "height": state.height,
        "block_hash": state.block_hash.hex(),
    }


class QuorumParams(Params, frozen=True):
    start_height: Height | None = None
    end_height: Height | None = None
    quorum_type: Height | None = None


def get_quorum_state(node: PublicNode, params: QuorumParams) -> dict[str, Any]:
    """Obligations and checkpoint quorums kept in the state for heights in [start, end], and the
    Pulse quorum of the next height (round 0): past Pulse quorums are not kept."""
    state = node.ledger.state
    start = state.height if params.start_height is None else params.start_height
    end = start if params.end_height is None else params.end_height
    kind = QUORUM_ALL if params.quorum_type is None else params.quorum_type
    if end < start or end - start >= MAX_QUORUM_SPAN:
        raise RpcError(-32602, f"start_height..end_height must span 1 to {MAX_QUORUM_SPAN} heights")
    if kind not in (QUORUM_OBLIGATIONS, QUORUM_CHECKPOINT, QUORUM_PULSE, QUORUM_ALL):
        raise RpcError(-32602, "quorum_type must be 0 (obligations), 1 (checkpoint), 3 (pulse) or 255 (all)")
    view = tip_view(node)
    quorums: list[dict[str, Any]] = []
    for height in range(start, end + 1):
        if kind in (QUORUM_OBLIGATIONS, QUORUM_ALL):
            obligations = get_quorum(view, height)
            if obligations is not None:
                quorum = {
                    "validators": [k.hex() for k in obligations.validators],
                    "workers": [k.hex() for k in obligations.workers],
                }
                quorums.append({"height": height, "quorum_type": QUORUM_OBLIGATIONS, "quorum": quorum})
        if kind in (QUORUM_CHECKPOINT, QUORUM_ALL) and is_checkpoint_height(
            height, node.ledger.state.params.checkpoint_interval
        ):
            checkpoint = get_checkpoint_quorum(view, height)
            if checkpoint is not None:
                quorum = {"validators": [m.node_key.hex() for m in checkpoint.members], "workers": []}
                quorums.append({"height": height, "quorum_type": QUORUM_CHECKPOINT, "quorum": quorum})
    if kind in (QUORUM_PULSE, QUORUM_ALL) and start <= state.height + 1 <= end + 1:
        height = state.height + 1
        entropy = compute_block_entropy(node.ledger.random_value_at, height)
        pulse = compute_block_quorum(state, entropy, height, 0)
        if pulse is not None:
            quorum = {"validators": [k.hex() for k in pulse.validators], "workers": [pulse.producer.hex()]}
            quorums.append({"height": height, "quorum_type": QUORUM_PULSE, "quorum": quorum})
    return {"status": "OK", "quorums": quorums}
