"""JSON-RPC 2.0 shared by the node's two endpoints: the public one over HTTP (:mod:`appchain.rpc`)
and the operator's line protocol on the loopback (:mod:`appchain.admin`).

A method is a function ``(node, params) -> result`` looked up in the endpoint's table; raising
:class:`RpcError` answers with that error. Codes: -32700 parse error, -32600 invalid request,
-32601 unknown method, -32602 invalid params, -32000 refused, -32001 not found, -32005 limit
exceeded (the public port's per-address limits, :mod:`appchain.rpc_server`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from consensus.mempool import MempoolFull
from p2p.host import open_listeners
from state.encoding import DecodeError, decode, decode_json
from state.errors import InvalidEvent
from state.events import Transaction

if TYPE_CHECKING:
    from appchain.node import Node

Method = Callable[["Node", dict[str, Any]], Any]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def error_reply(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def decode_request(body: bytes) -> Any:
    """The parsed JSON of a request (nesting limited), or :class:`RpcError` -32700."""
    try:
        return decode_json(body)
    except DecodeError as exc:
        raise RpcError(-32700, str(exc)) from None


def answer_call(
    methods: Mapping[str, Method], node: Node, request: object, *, answer_notifications: bool = False
) -> dict[str, Any] | None:
    """The reply to one call; None for a notification (a call without ``id``), unless the
    transport needs a reply per request (the admin line protocol does)."""
    request_id: Any = request.get("id") if isinstance(request, dict) else None
    try:
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0":
            raise RpcError(-32600, "not a JSON-RPC 2.0 request")
        name = request.get("method")
        if not isinstance(name, str):
            raise RpcError(-32600, "not a JSON-RPC 2.0 request")
        method = methods.get(name)
        if method is None:
            raise RpcError(-32601, f"unknown method {name!r}")
        params = request.get("params", {})
        if not isinstance(params, dict):
            raise RpcError(-32602, "params must be an object")
        result = method(node, params)
    except RpcError as exc:
        return error_reply(request_id, exc.code, str(exc))
    if "id" not in request and not answer_notifications:
        return None
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def decode_transaction_hex(value: object, name: str) -> Transaction:
    """A canonical signed transaction given as hex in the parameter ``name``, or -32602."""
    try:
        if not isinstance(value, str):
            raise TypeError("not a string")
        tx: Transaction = decode(bytes.fromhex(value), Transaction)  # type: ignore[arg-type]
    except (TypeError, ValueError, DecodeError) as exc:
        raise RpcError(-32602, f"{name} must be the hex of a canonical signed transaction: {exc}") from None
    return tx


def submit(node: Node, tx: Transaction) -> bytes:
    """Into the node's mempool and out to its peers; -32000 with the reason when refused."""
    try:
        return node.submit(tx)
    except (InvalidEvent, MempoolFull) as exc:
        raise RpcError(-32000, f"refused: {exc}") from None


async def serve_on(
    address: tuple[str, int],
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``address`` and serve each connection with ``handler`` in its own task; raises
    :class:`~p2p.host.ListenFailed` (before ``task_status.started``) when it cannot listen there."""
    host, port = address
    listeners = await open_listeners(host, port)
    task_status.started()
    await trio.serve_listeners(handler, listeners)
