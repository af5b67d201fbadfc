"""The public JSON-RPC 2.0 methods: what ``POST /json_rpc`` on the node's RPC port answers.

The HTTP server, its routes and its limits per remote address are :mod:`appchain.rpc.server`.
Method names, parameter names and result shapes follow oxend's
(``core_rpc_server_commands_defs.h``) where oxend has the method; every method is described in
``docs/rpc.md``. Each method's parameters are a :class:`~appchain.rpc.jsonrpc.Params` structure
(``…Params`` below): decoded, typed and bounded before the method runs. Limits here: a batch of
at most :data:`MAX_BATCH` calls, JSON nested at most 64 deep (the body's size is the server's).

Errors are JSON-RPC errors: -32700 parse error, -32600 invalid request, -32601 unknown method,
-32602 invalid params, -32603 internal error, -32000 refused (a transaction that does not
apply), -32001 not found.
Operator methods (status, peers, uptime-proof switch) are not here: they live on the admin
listener (:mod:`appchain.node.admin`), which stays on the loopback.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Annotated, Any, NamedTuple

import msgspec
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519

from appchain.home.history import OutsideWindow
from appchain.rpc.jsonrpc import (
    Height,
    Method,
    NoParams,
    Params,
    RpcError,
    Text,
    answer_call,
    decode_request,
    decode_transaction_hex,
    error_reply,
    method,
    read_params,
    submit,
)
from appchain.rpc.served import PublicNode, tip_view
from consensus.evidence import Evidence, compute_signed_digest, decode_evidence
from consensus.messages import CheckpointVote, Message, VoteMessage
from consensus.pulse import PulseMessage, Stage
from consensus.validation import compute_block_entropy, compute_block_quorum
from state.block import Header, compute_block_hash
from state.checkpoints import (
    CHECKPOINT_INTERVAL,
    decode_checkpoint_quorum,
    get_checkpoint_quorum,
    is_checkpoint_height,
)
from state.encoding import encode
from state.events import compute_event_hash
from state.ledger import get_account, get_reward_account
from state.namespaces import decode_value, state_key
from state.noderecords import NodeStatus, ServiceNode
from state.nodes import compute_credit, compute_pending_rewards, get_node, iter_nodes
from state.obligations import get_quorum
from state.sns import NAME_PREFIX, NameRecord, get_name, is_expired
from state.sns import NONCE_SIZE as SNS_NONCE_SIZE
from state.types import AccountKey

MAX_BATCH = 50
VERSION = "0.1.0"
HARD_FORK = 1


MAX_KEYS = 1000
"""Most keys, heights or addresses one call may name."""

Keys = Annotated[list[Text], msgspec.Meta(max_length=MAX_KEYS)]
Addresses = Annotated[list[Text], msgspec.Meta(min_length=1, max_length=MAX_KEYS)]
"""``addresses``: 1 to 1,000 hex account keys."""


def block_header(node: PublicNode, header: Header, events: int | None = None) -> dict[str, Any]:
    """oxend's ``block_header_response``, with this chain's Pulse and state fields added;
    ``events`` is the block's event count when the caller already holds the block."""
    tip = node.ledger.height
    block_hash = compute_block_hash(header)
    if events is None:
        body = node.chain.store.get_body(header.height)
        events = 0 if body is None else len(body.events)
    return {
        "major_version": header.version,
        "minor_version": 0,
        "timestamp": header.timestamp,
        "prev_hash": header.prev_hash.hex(),
        "height": header.height,
        "depth": tip - header.height,
        "hash": block_hash.hex(),
        "orphan_status": False,
        "num_txes": events,
        "service_node_winner": header.producer.hex(),
        "immutable": header.height <= node.ledger.final_height,
        "state_root": header.state_root.hex(),
        "events_root": header.events_root.hex(),
        "pulse": {
            "round": header.round,
            "random_value": header.random_value.hex(),
            "validator_bitset": header.validators,
        },
    }


def _header_at(node: PublicNode, height: int) -> Header:
    if height > node.ledger.height:
        raise RpcError(-32001, f"no block at height {height}: the tip is {node.ledger.height}")
    header = node.chain.store.get_header(height)
    if header is None:
        raise RpcError(-32001, f"no block at height {height}{_below_base(node, height)}")
    return header


def _below_base(node: PublicNode, height: int) -> str:
    base = node.chain.base_height
    if height > base or base == 0:
        return ""
    return f": this node joined by state sync at height {base} and holds no blocks at or below it"


def get_info(node: PublicNode, params: NoParams) -> dict[str, Any]:
    state = node.ledger.state
    chain_params = state.params
    registered = get_node(tip_view(node), node.core.node_key) is not None
    return {
        "status": "OK",
        "height": state.height + 1,  # oxend: the number of blocks, one above the top block
        "top_block_hash": state.block_hash.hex(),
        "immutable_height": node.ledger.final_height,
        "immutable_block_hash": node.ledger.block_hash_at(node.ledger.final_height).hex(),
        "nettype": "mainnet" if chain_params.block_time >= 60 else "devnet",
        "chain_id": state.chain_id,
        "hard_fork": HARD_FORK,
        "version": VERSION,
        "staking_requirement": chain_params.staking_requirement,
        "max_contributors": chain_params.max_contributors,
        "min_operator_contribution": chain_params.staking_requirement
        // chain_params.min_operator_stake_divisor,
        "service_node": registered,
        "pulse": True,
        "pulse_target_timestamp": state.timestamp + chain_params.block_time,
        "target": chain_params.block_time,
        "progress": node.progress(),
    }


def get_last_block_header(node: PublicNode, params: NoParams) -> dict[str, Any]:
    return {"status": "OK", "block_header": block_header(node, _header_at(node, node.ledger.height))}


class HeightParams(Params, frozen=True):
    height: Height


class HeadersParams(Params, frozen=True):
    """One ``height``, or up to 1,000 ``heights``."""

    height: Height | None = None
    heights: Annotated[list[Height], msgspec.Meta(max_length=MAX_KEYS)] | None = None


def get_block_header_by_height(node: PublicNode, params: HeadersParams) -> dict[str, Any]:
    if params.heights is not None:
        headers = [block_header(node, _header_at(node, height)) for height in params.heights]
        return {"status": "OK", "block_headers": headers}
    if params.height is None:
        raise RpcError(-32602, "invalid params: give height or heights")
    return {"status": "OK", "block_header": block_header(node, _header_at(node, params.height))}


def get_block(node: PublicNode, params: HeightParams) -> dict[str, Any]:
    height = params.height
    _header_at(node, height)  # -32001 above the tip
    if _below_base(node, height):
        raise RpcError(-32001, f"no block at height {height}{_below_base(node, height)}")
    block = node.chain.store.get_block(height)
    return {
        "status": "OK",
        "block_header": block_header(node, block.header, len(block.events)),
        "tx_hashes": [compute_event_hash(event).hex() for event in block.events],
        "blob": encode(block).hex(),
        "json": json.dumps({"events": [type(event).__name__ for event in block.events]}),
    }


def get_staking_requirement(node: PublicNode, params: NoParams) -> dict[str, Any]:
    state = node.ledger.state
    return {"status": "OK", "staking_requirement": state.params.staking_requirement, "height": state.height}


def hard_fork_info(node: PublicNode, params: NoParams) -> dict[str, Any]:
    return {"status": "OK", "version": HARD_FORK, "enabled": True, "earliest_height": 0}


class TransactionParams(Params, frozen=True):
    tx_as_hex: str


def send_transaction(node: PublicNode, params: TransactionParams) -> dict[str, Any]:
    tx_hash = submit(node, decode_transaction_hex(params.tx_as_hex, "tx_as_hex"))
    return {"status": "OK", "tx_hash": tx_hash.hex()}


STAKING_PORTIONS = 0xFFFFFFFFFFFFFFFC
"""oxend's whole stake in "portions" (``portions_for_operator`` is the fee in these units)."""


def _service_node_entry(node: PublicNode, key: bytes, record: ServiceNode, height: int) -> dict[str, Any]:
    params = node.ledger.state.params
    proof_entry = node.core.proofs.accepted.get(bytes(key))
    proof = proof_entry[0] if proof_entry else None
    contributed = sum(c.amount for c in record.contributions)
    history = list(node.core.pulse_record.duties.get(bytes(key), ()))
    return {
        "service_node_pubkey": key.hex(),
        "pubkey_ed25519": key.hex(),
        "pubkey_x25519": crypto_sign_ed25519_pk_to_curve25519(bytes(key)).hex(),
        "pubkey_bls": record.bls_key.hex(),
        "public_ip": proof.public_ip if proof else "",
        "storage_port": proof.storage_port if proof else 0,
        "storage_lmq_port": proof.p2p_port if proof else 0,
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
        "operator_fee": record.operator_fee_bp,
        "operator_address": record.operator.hex(),
        "contributors": _contributors(record),
        "pulse_votes": {"participated": sum(history), "missed": len(history) - sum(history)},
        "checkpoint_votes": {},
        "last_decommission_reason_consensus_all": record.reasons_all,
        "last_decommission_reason_consensus_any": record.reasons_any,
        "status": NodeStatus(record.status).name.lower(),
    }


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
        "block_hash": top,
        "unchanged": False,
    }


QUORUM_OBLIGATIONS, QUORUM_CHECKPOINT, QUORUM_PULSE, QUORUM_ALL = 0, 1, 3, 255
MAX_QUORUM_SPAN = 60


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


def _account_param(text: str) -> bytes:
    try:
        account = bytes.fromhex(text)
    except ValueError:
        account = b""
    if len(account) != 32:
        raise RpcError(-32602, f"{text[:80]!r} is not a 32-byte hex account key")
    return account


class AccountsParams(Params, frozen=True):
    addresses: Addresses


def _accounts_param(params: AccountsParams) -> list[bytes]:
    return [_account_param(text) for text in params.addresses]


def get_accrued_rewards(node: PublicNode, params: AccountsParams) -> dict[str, Any]:
    """What a claim at the tip would move to each balance: the settled rewards in the account's
    reward ledger plus what settling its nodes would pay it (rewards settle lazily, PROTOCOL.md
    §5), as oxend's ``balances``; ``settled`` and ``pending`` (*added*) give the two parts."""
    view = tip_view(node)
    balances, settled, pending = {}, {}, {}
    for account in _accounts_param(params):
        name = account.hex()
        settled[name] = get_reward_account(view, AccountKey(account)).accrued
        pending[name] = compute_pending_rewards(view, account)
        balances[name] = settled[name] + pending[name]
    return {
        "status": "OK",
        "balances": balances,
        "settled": settled,
        "pending": pending,
        "height": node.ledger.height,
    }


def get_accounts(node: PublicNode, params: AccountsParams) -> dict[str, Any]:
    """Balances and nonces at the tip (*added*: oxend keeps no accounts), and each account's
    ``pending_nonce``: its nonce once its transactions waiting in this node's mempool are
    applied. A wallet signs its next transaction with ``pending_nonce + 1`` (with the tip's nonce,
    a second transaction sent before the first is in a block reuses its nonce and is refused);
    a light client proves a balance with ``get_state_proof`` instead."""
    view = tip_view(node)
    state = node.ledger.state
    accounts = {}
    for account in _accounts_param(params):
        record = get_account(view, AccountKey(account))
        accounts[account.hex()] = {
            "balance": record.balance,
            "balance_str": str(record.balance),
            "nonce": record.nonce,
            "pending_nonce": node.core.mempool.get_pending_nonce(AccountKey(account), state),
        }
    return {"status": "OK", "accounts": accounts, "height": node.ledger.height}


class CheckpointsParams(Params, frozen=True):
    start_height: Height | None = None
    end_height: Height | None = None
    count: Height | None = None


def get_checkpoints(node: PublicNode, params: CheckpointsParams) -> dict[str, Any]:
    start = params.start_height or 0
    count = params.count or 60
    end = params.end_height
    checkpoints = []
    for certificate in node.chain.store.iter_certificates(start):
        if end is not None and certificate.height > end:
            break
        checkpoints.append(
            {
                "version": 1,
                "type": "ServiceNode",
                "height": certificate.height,
                "block_hash": certificate.block_hash.hex(),
                "signers": certificate.signers.hex(),
                "signature": certificate.signature.hex(),
            }
        )
        if len(checkpoints) >= min(count, 1000):
            break
    return {"status": "OK", "checkpoints": checkpoints, "immutable_height": node.ledger.final_height}


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
        if kind in (QUORUM_CHECKPOINT, QUORUM_ALL) and is_checkpoint_height(height):
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


SNS_SESSION = 0
"""oxend's ONS type of a Session ID record: the only type this chain keeps."""


def _name_hash(value: str) -> bytes:
    """A name hash given as hex or as base64 (oxend accepts both)."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raw = b""
    if len(raw) == 32:
        return raw
    raise RpcError(-32602, "name_hash must be 32 bytes, in hex or base64")


Kind = Annotated[int, msgspec.Meta(ge=0, le=255)]
"""An ONS record type (oxend's ``mapping_type``, a byte)."""


def _check_type(kind: int) -> None:
    if kind != SNS_SESSION:
        raise RpcError(-32602, "type must be 0 (Session ID): the only record type this chain keeps")


class ResolveParams(Params, frozen=True):
    name_hash: Text
    type: Kind = SNS_SESSION


def ons_resolve(node: PublicNode, params: ResolveParams) -> dict[str, Any]:
    """The encrypted value of a live name (split as oxend does: ``encrypted_value`` and
    ``nonce``); an empty result when the name is free or expired."""
    _check_type(params.type)
    name_hash = _name_hash(params.name_hash)
    record = get_name(tip_view(node), name_hash)
    if record is None or is_expired(record, node.ledger.height):
        return {}
    stored = record.encrypted_value
    return {"encrypted_value": stored[:-SNS_NONCE_SIZE].hex(), "nonce": stored[-SNS_NONCE_SIZE:].hex()}


def _sns_entry(name_hash: bytes, record: NameRecord) -> dict[str, Any]:
    """A live name record as the ``ons_*`` methods list it (after the caller's index field)."""
    return {
        "type": SNS_SESSION,
        "name_hash": name_hash.hex(),
        "owner": record.owner.hex(),
        "backup_owner": None if record.backup_owner is None else record.backup_owner.hex(),
        "encrypted_value": record.encrypted_value.hex(),
        "update_id": record.update_id.hex(),
        "expiration_height": record.expiry_height,
    }


NameList = Annotated[list[Text], msgspec.Meta(min_length=1, max_length=256)]
"""1 to 256 name hashes or owners."""


class NamesParams(Params, frozen=True):
    entries: NameList | None = None
    name_hashes: NameList | None = None
    type: Kind = SNS_SESSION


def ons_names_to_owners(node: PublicNode, params: NamesParams) -> dict[str, Any]:
    hashes = params.entries if params.entries is not None else params.name_hashes
    if hashes is None:
        raise RpcError(-32602, "entries must be a list of 1 to 256 name hashes")
    _check_type(params.type)
    view = tip_view(node)
    height = node.ledger.height
    found = []
    for index, value in enumerate(hashes):
        name_hash = _name_hash(value)
        record = get_name(view, name_hash)
        if record is None or is_expired(record, height):
            continue
        found.append({"entry_index": index, **_sns_entry(name_hash, record)})
    return {"status": "OK", "entries": found}


class OwnersParams(Params, frozen=True):
    entries: NameList


def ons_owners_to_names(node: PublicNode, params: OwnersParams) -> dict[str, Any]:
    """The live names each owner (or backup owner) holds: oxend's ``ons_owners_to_names``.

    This scans the name records: it is an explorer's query, not a hot path."""
    owners = params.entries
    index_of: dict[bytes, int] = {}
    for index, text in enumerate(owners):
        index_of.setdefault(_account_param(text), index)
    height = node.ledger.height
    found = []
    for name_hash, raw in node.ledger.state.prefixed(NAME_PREFIX):
        record = decode_value("sns", raw)
        if is_expired(record, height):
            continue
        for owner in (record.owner, record.backup_owner):
            if owner is not None and bytes(owner) in index_of:
                found.append({"request_index": index_of[bytes(owner)], **_sns_entry(name_hash, record)})
                break
    found.sort(key=lambda entry: (entry["request_index"], entry["name_hash"]))
    return {"status": "OK", "entries": found}


# -- proofs for light clients ------------------------------------------------------------------


def _blob(record: object) -> str:
    return encode(record).hex()


class ProofParams(Params, frozen=True):
    key: Text
    namespace: Text | None = None
    height: Height | None = None


def _state_key(params: ProofParams) -> bytes:
    """``key`` alone is a full state key (hex); with ``namespace`` it is the 32-byte identifier."""
    try:
        raw = bytes.fromhex(params.key)
    except ValueError:
        raise RpcError(-32602, "key must be hex") from None
    namespace = params.namespace
    if namespace is None:
        if not 0 < len(raw) <= 256:
            raise RpcError(-32602, "a state key is 1 to 256 bytes")
        return raw
    try:
        return state_key(namespace, raw)
    except ValueError as exc:
        raise RpcError(-32602, str(exc)) from None


def _final_height_param(node: PublicNode, height: int | None) -> int:
    final = node.ledger.final_height
    if height is None:
        return final
    if height > final:
        raise RpcError(
            -32003, f"height {height} is not final: proofs are given up to the final height {final}"
        )
    return height


def get_state_proof(node: PublicNode, params: ProofParams) -> dict[str, Any]:
    """A value (or its absence) at a final height, its proof against that height's state root,
    and what makes the header trusted: the headers up to the next certified checkpoint and that
    checkpoint's certificate."""
    key = _state_key(params)
    height = _final_height_param(node, params.height)
    try:
        value, proof = node.chain.history.prove(node.ledger.state, key, height)
    except OutsideWindow as exc:
        raise RpcError(-32004, str(exc)) from None
    header = _header_at(node, height)
    certificate = None
    if height > 0:
        certificate = next(node.chain.store.iter_certificates(height), None)
        if certificate is None or certificate.height > node.ledger.final_height:
            raise RpcError(-32003, f"no certified checkpoint at or above height {height} yet")
    top = height if certificate is None else certificate.height
    links = [_header_at(node, h) for h in range(height + 1, top + 1)]
    return {
        "status": "OK",
        "height": height,
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "proof": _blob(proof),
        "state_root": header.state_root.hex(),
        "header": _blob(header),
        "links": [_blob(h) for h in links],
        "checkpoint_height": top,
        "certificate": None if certificate is None else _blob(certificate),
    }


class CheckpointParams(Params, frozen=True):
    height: Height | None = None


def get_checkpoint(node: PublicNode, params: CheckpointParams) -> dict[str, Any]:
    """A certified checkpoint (default: the final one): its header, certificate and the BLS keys
    of the quorum its header commits to (the one that certifies the next checkpoint)."""
    height = _final_height_param(node, params.height)
    if not is_checkpoint_height(height):
        raise RpcError(-32602, f"height {height} is not a checkpoint height (a multiple of 4)")
    certificate = None if height == 0 else node.chain.store.get_certificate(height)
    if height > 0 and certificate is None:
        raise RpcError(-32001, f"this node holds no certificate for checkpoint {height}")
    header = _header_at(node, height)
    raw = node.chain.store.get_checkpoint_quorum(height + CHECKPOINT_INTERVAL)
    if raw is None:
        message = f"this node holds no record of the quorum that block {height} chose for the next checkpoint"
        raise RpcError(-32001, message)
    quorum = decode_checkpoint_quorum(raw)
    return {
        "status": "OK",
        "height": height,
        "block_hash": compute_block_hash(header).hex(),
        "header": _blob(header),
        "certificate": None if certificate is None else _blob(certificate),
        "signers": None if certificate is None else certificate.signers.hex(),
        "next_quorum": [
            {"service_node_pubkey": m.node_key.hex(), "pubkey_bls": m.bls_key.hex()} for m in quorum.members
        ],
        "immutable_height": node.ledger.final_height,
    }


# -- equivocation evidence -----------------------------------------------------------------------

MAX_EVIDENCE = 100
"""Most evidence records in one answer (each holds two whole messages, block templates too)."""


def _signer_param(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        signer = bytes.fromhex(text)
    except ValueError:
        signer = b""
    if len(signer) != 32:
        raise RpcError(-32602, "signer must be a 32-byte node key in hex")
    return signer


def _message_fields(message: Message) -> dict[str, Any]:
    """A signed consensus message's fields, bytes in hex."""
    if isinstance(message, PulseMessage):
        return {
            "parent": message.parent.hex(),
            "height": message.height,
            "round": message.round,
            "sender": message.sender,
            "stage": Stage(message.kind).name.lower(),
            "payload": message.payload.hex(),
            "signature": message.signature.hex(),
        }
    if isinstance(message, CheckpointVote):
        return {
            "height": message.height,
            "block_hash": message.block_hash.hex(),
            "member": message.member,
            "signature": message.signature.hex(),
        }
    assert isinstance(message, VoteMessage)  # decode_evidence admits no other type
    return {
        "quorum_height": message.quorum_height,
        "worker_index": message.worker_index,
        "new_state": message.new_state,
        "validator_index": message.vote.validator_index,
        "reasons": message.vote.reasons,
        "signature": message.vote.signature.hex(),
    }


def _evidence_entry(evidence: Evidence) -> dict[str, Any]:
    """A record as ``get_evidence`` lists it: its blob (what :func:`verify_evidence` checks), its
    slot and signer, and each message as hex, with the digest its signature covers and its fields."""
    messages = decode_evidence(evidence)  # the store refuses a malformed record
    return {
        "kind": evidence.kind.value,
        "chain_id": evidence.chain_id,
        "height": evidence.height,
        "round": evidence.round,
        "stage": evidence.stage,
        "signer": bytes(evidence.signer).hex(),
        "signer_bls": None if evidence.signer_bls is None else bytes(evidence.signer_bls).hex(),
        "blob": _blob(evidence),
        **{
            name: {
                "blob": _blob(message),
                "signed_digest": compute_signed_digest(evidence.chain_id, message).hex(),
                "fields": _message_fields(message),
            }
            for name, message in zip(("first", "second"), messages, strict=True)
        },
    }


class EvidenceParams(Params, frozen=True):
    signer: Text | None = None
    from_height: Height | None = None
    to_height: Height | None = None
    limit: Height | None = None


def get_evidence(node: PublicNode, params: EvidenceParams) -> dict[str, Any]:
    """The equivocation evidence this node recorded (*added*: oxend has no such method), by
    height, round, stage and signer; optionally of one ``signer`` and within
    ``from_height .. to_height``; at most ``limit`` records (1 to 100, default 100)."""
    signer = _signer_param(params.signer)
    start = params.from_height or 0
    end = params.to_height
    if end is not None and end < start:
        raise RpcError(-32602, "to_height must not be below from_height")
    limit = MAX_EVIDENCE if params.limit is None else params.limit
    if not 1 <= limit <= MAX_EVIDENCE:
        raise RpcError(-32602, f"limit must be 1 to {MAX_EVIDENCE}")
    found = []
    for evidence in node.chain.store.iter_evidence(start, end):
        if signer is not None and bytes(evidence.signer) != signer:
            continue
        found.append(_evidence_entry(evidence))
        if len(found) == limit:
            break
    return {"status": "OK", "evidence": found}


METHODS: dict[str, Method[PublicNode, Any]] = {
    "get_evidence": Method(get_evidence, EvidenceParams),
    "get_state_proof": Method(get_state_proof, ProofParams),
    "get_checkpoint": Method(get_checkpoint, CheckpointParams),
    "ons_resolve": Method(ons_resolve, ResolveParams),
    "ons_names_to_owners": Method(ons_names_to_owners, NamesParams),
    "ons_owners_to_names": Method(ons_owners_to_names, OwnersParams),
    "get_service_nodes": Method(get_service_nodes, ServiceNodesParams),
    "get_service_node_status": method(get_service_node_status),
    "get_quorum_state": Method(get_quorum_state, QuorumParams),
    "get_checkpoints": Method(get_checkpoints, CheckpointsParams),
    "get_accrued_rewards": Method(get_accrued_rewards, AccountsParams),
    "get_accounts": Method(get_accounts, AccountsParams),
    "get_info": method(get_info),
    "get_last_block_header": method(get_last_block_header),
    "get_block_header_by_height": Method(get_block_header_by_height, HeadersParams),
    "get_block": Method(get_block, HeightParams),
    "get_staking_requirement": method(get_staking_requirement),
    "hard_fork_info": method(hard_fork_info),
    "send_transaction": Method(send_transaction, TransactionParams),
}


def call_method(node: PublicNode, name: str, params: dict[str, Any]) -> Any:
    """One method called inside the node (a Session client's ``oxend_request``): its params
    decoded as for a call from outside; :class:`RpcError` when refused."""
    found = METHODS.get(name)
    if found is None:
        raise RpcError(-32601, f"unknown method {name!r}")
    return found.run(node, read_params(found.params, params))


class Calls(NamedTuple):
    """The calls of one body, and whether they came as a batch (answered with a list)."""

    items: list[object]
    batch: bool


def read_calls(body: bytes) -> Calls | dict[str, Any]:
    """The calls in an HTTP body, or the error reply that answers the whole body."""
    try:
        request = decode_request(body)
    except RpcError as exc:
        return error_reply(None, exc.code, str(exc))
    if isinstance(request, list):
        if not request or len(request) > MAX_BATCH:
            return error_reply(None, -32600, f"a batch holds 1 to {MAX_BATCH} calls")
        return Calls(request, batch=True)
    return Calls([request], batch=False)


def join_answers(calls: Calls, answers: list[dict[str, Any] | None]) -> Any:
    """The reply to a body: a batch's answers as a list (notifications have none), else the one."""
    if calls.batch:
        return [answer for answer in answers if answer is not None]
    return answers[0]


def handle_body(node: PublicNode, body: bytes) -> Any:
    """The JSON-RPC answer to one HTTP body (a call or a batch), without the server's limits."""
    calls = read_calls(body)
    if isinstance(calls, dict):
        return calls
    return join_answers(calls, [answer_one(node, call) for call in calls.items])


def answer_one(node: PublicNode, request: object) -> dict[str, Any] | None:
    """One call's answer, counted and timed for ``/metrics``."""
    started = time.perf_counter()
    answer = answer_call(METHODS, node, request)
    metrics = node.metrics
    if metrics is not None:
        name = request.get("method") if isinstance(request, dict) else None
        method = name if isinstance(name, str) and name in METHODS else "(invalid)"
        error = answer.get("error") if answer is not None else None
        outcome = "ok" if error is None else str(error["code"])
        metrics.observe_call(method, outcome, time.perf_counter() - started)
    return answer
