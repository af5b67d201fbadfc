"""The public JSON-RPC 2.0 methods: what ``POST /json_rpc`` on the node's RPC port answers.

The HTTP server, its routes and its limits per remote address are :mod:`appchain.rpc.server`.
Method names, parameter names and result shapes follow oxend's
(``core_rpc_server_commands_defs.h``) where oxend has the method; every method is described in
``docs/rpc.md``. The methods live by what they answer for: :mod:`~appchain.rpc.blocks`,
:mod:`~appchain.rpc.nodes`, :mod:`~appchain.rpc.accounts`, :mod:`~appchain.rpc.names`,
:mod:`~appchain.rpc.proofs` and :mod:`~appchain.rpc.evidence`; this module is their table
(:data:`METHODS`) and how a body's calls reach them. Each method's parameters are a
:class:`~appchain.rpc.jsonrpc.Params` structure (``…Params`` beside the method): decoded, typed
and bounded before the method runs. Limits here: a batch of at most :data:`MAX_BATCH` calls,
JSON nested at most 64 deep (the body's size is the server's).

Errors are JSON-RPC errors: -32700 parse error, -32600 invalid request, -32601 unknown method,
-32602 invalid params, -32603 internal error, -32000 refused (a transaction that does not
apply), -32001 not found.
Operator methods (status, peers, uptime-proof switch) are not here: they live on the admin
listener (:mod:`appchain.node.admin`), which stays on the loopback.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from appchain.rpc.accounts import AccountsParams, EarningsParams, get_accounts, get_accrued_rewards
from appchain.rpc.blocks import (
    BlockParams,
    HashHeadersParams,
    HeadersParams,
    RangeParams,
    TransactionParams,
    get_block,
    get_block_header_by_hash,
    get_block_header_by_height,
    get_block_headers_range,
    get_info,
    get_last_block_header,
    get_staking_requirement,
    hard_fork_info,
    send_transaction,
)
from appchain.rpc.evidence import EvidenceParams, get_evidence
from appchain.rpc.jsonrpc import (
    Method,
    RpcError,
    answer_call,
    decode_request,
    error_reply,
    method,
    read_params,
)
from appchain.rpc.names import (
    NamesParams,
    OwnersParams,
    ResolveParams,
    ons_names_to_owners,
    ons_owners_to_names,
    ons_resolve,
)
from appchain.rpc.nodes import (
    QuorumParams,
    ServiceNodesParams,
    get_quorum_state,
    get_service_node_status,
    get_service_nodes,
)
from appchain.rpc.proofs import (
    CheckpointParams,
    CheckpointsParams,
    ProofParams,
    get_checkpoint,
    get_checkpoints,
    get_state_proof,
)
from appchain.rpc.served import PublicNode
from appchain.rpc.transactions import (
    FeeParams,
    PoolParams,
    TransactionsParams,
    get_fee_estimate,
    get_transaction_pool,
    get_transactions,
)

MAX_BATCH = 50


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
    "get_accrued_rewards": Method(get_accrued_rewards, EarningsParams),
    "get_accounts": Method(get_accounts, AccountsParams),
    "get_info": method(get_info),
    "get_last_block_header": method(get_last_block_header),
    "get_block_header_by_height": Method(get_block_header_by_height, HeadersParams),
    "get_block_header_by_hash": Method(get_block_header_by_hash, HashHeadersParams),
    "get_block_headers_range": Method(get_block_headers_range, RangeParams),
    "get_block": Method(get_block, BlockParams),
    "get_transactions": Method(get_transactions, TransactionsParams),
    "get_transaction_pool": Method(get_transaction_pool, PoolParams),
    "get_fee_estimate": Method(get_fee_estimate, FeeParams),
    "get_staking_requirement": method(get_staking_requirement),
    "hard_fork_info": method(hard_fork_info),
    "send_transaction": Method(send_transaction, TransactionParams),
}

ALIASES = {
    "get_n_service_nodes": "get_service_nodes",
    "get_all_service_nodes": "get_service_nodes",
    "lns_resolve": "ons_resolve",
    "lns_names_to_owners": "ons_names_to_owners",
    "get_accrued_batched_earnings": "get_accrued_rewards",
}
"""oxend's other names for the same methods (``core_rpc_server_commands_defs.h``): Session's
seed call asks ``get_n_service_nodes``, the block explorer ``get_accrued_batched_earnings``."""
METHODS.update({alias: METHODS[name] for alias, name in ALIASES.items()})


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
