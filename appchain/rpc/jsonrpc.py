"""JSON-RPC 2.0 shared by the node's two endpoints: the public one over HTTP (:mod:`appchain.rpc.methods`)
and the operator's line protocol on the loopback (:mod:`appchain.node.admin`).

A method is a :class:`Method`: a function ``(node, params) -> result`` and the
:class:`Params` structure its parameters are decoded into, with their types and bounds, before
the function sees them (64-bit heights and counts, lengths of lists and strings; unknown names
are ignored, as oxend ignores them). Raising :class:`RpcError` answers with that error; any
other exception is caught at the call's boundary (:mod:`appchain.home.boundary`): logged and counted,
answered with an internal error, and the other calls of a batch are still answered.

Codes: -32700 parse error, -32600 invalid request, -32601 unknown method, -32602 invalid params,
-32603 internal error, -32000 refused, -32001 not found, -32005 limit exceeded (the public
port's per-address limits, :mod:`appchain.rpc.server`).

Every answer is valid JSON: requests are parsed by :func:`state.encoding.decode_json`, which
refuses what no answer could echo (``1e400``, lone surrogates), and answers are written by
:func:`encode_answer`, which refuses ``NaN`` and infinities.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Protocol, TypeVar

import msgspec
import trio

from appchain.home.boundary import INTERNAL_ERROR, Faults, is_fatal
from consensus.mempool import MempoolFull
from p2p.host import open_listeners
from state.encoding import DecodeError, decode, decode_json
from state.errors import InvalidEvent
from state.events import Transaction

MAX_HEIGHT = 2**63 - 1
"""The largest height, count or limit a parameter may name: every one of them is stored as a
64-bit number, and no chain reaches 2^63 blocks."""

Height = Annotated[int, msgspec.Meta(ge=0, le=MAX_HEIGHT)]
"""A height, count or limit from outside: a JSON integer from 0 to :data:`MAX_HEIGHT` (not a
float, not a boolean)."""

Text = Annotated[str, msgspec.Meta(max_length=1024)]
"""A short string from outside (keys, hashes and names in hex or base64, namespaces)."""

MAX_KEYS = 1000
"""Most keys, heights or addresses one call may name."""


def to_seconds(timestamp_ms: int) -> int:
    """A header timestamp (unix ms) as oxend's unix seconds, rounded down."""
    return timestamp_ms // 1000


Keys = Annotated[list[Text], msgspec.Meta(max_length=MAX_KEYS)]
Addresses = Annotated[list[Text], msgspec.Meta(min_length=1, max_length=MAX_KEYS)]
"""``addresses``: 1 to 1,000 hex account keys."""


class Params(msgspec.Struct, frozen=True, kw_only=True):
    """A method's parameters, decoded from the call's ``params`` object. Unknown names are
    ignored (oxend ignores them); every field says its type and bounds."""


class NoParams(Params, frozen=True):
    """A method that takes no parameters (any given are ignored)."""


class Served(Protocol):
    """What every endpoint needs of the node it serves, whatever its methods read: where to
    count what a method did not expect, and where a transaction goes. Each endpoint widens it
    with the parts its methods read (:class:`appchain.rpc.served.PublicNode`, the admin's
    :class:`~appchain.node.admin.AdminNode`); the node hands itself over when it starts them."""

    @property
    def faults(self) -> Faults:
        """The node's boundaries (:mod:`appchain.home.boundary`)."""
        ...

    def submit(self, tx: Transaction) -> bytes:
        """Into the node's mempool and out to its peers: the hash, or
        :class:`~state.errors.InvalidEvent` / :class:`~consensus.mempool.MempoolFull`."""
        ...


N = TypeVar("N", bound=Served)
"""The node an endpoint's methods read, as that endpoint sees it."""
P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Method(Generic[N, P]):
    """A JSON-RPC method: its function and the structure of its parameters."""

    run: Callable[[N, P], Any]
    params: type[P]


def method(run: Callable[[N, NoParams], Any]) -> Method[N, NoParams]:
    """A method without parameters."""
    return Method(run, NoParams)


def read_params(kind: type[P], raw: object) -> P:
    """The call's ``params`` decoded into ``kind``, or -32602 saying which value is wrong."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RpcError(-32602, "params must be an object")
    try:
        return msgspec.convert(raw, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise RpcError(-32602, f"invalid params: {exc}") from None


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def error_reply(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def encode_answer(answer: Any) -> bytes:
    """The bytes of an answer: JSON, ASCII only, never ``NaN`` or ``Infinity``."""
    return json.dumps(answer, allow_nan=False).encode()


def decode_request(body: bytes) -> Any:
    """The parsed JSON of a request (nesting limited), or :class:`RpcError` -32700."""
    try:
        return decode_json(body)
    except DecodeError as exc:
        raise RpcError(-32700, str(exc)) from None


MISSING_ID = ""
"""The id a call without ``id`` is answered with: oxend's (``http_server.cpp``), which never
treats a call as a notification and answers ``"id": ""`` when the caller gave none (Session
Desktop's seed call sends no id)."""


def request_id(request: object) -> Any:
    """The id to answer a call with: its ``id`` when it is one JSON-RPC allows (a string, a
    number or null), :data:`MISSING_ID` when it has none (as oxend answers), None when it cannot
    be read (the spec's id of an unreadable call)."""
    if not isinstance(request, dict):
        return None
    if "id" not in request:
        return MISSING_ID
    value = request["id"]
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return None


def answer_call(
    methods: Mapping[str, Method[N, Any]], node: N, request: object, *, place: str = "json_rpc"
) -> dict[str, Any]:
    """The reply to one call. Every call is answered, as oxend answers them: ``"jsonrpc"`` is
    not read (oxend never reads it) and a call without ``id`` is answered with
    ``"id": ""`` (:data:`MISSING_ID`), not taken for a notification. The call is a boundary
    (:mod:`appchain.home.boundary`): an exception its method did not expect is logged and counted
    at ``place`` and answered with an internal error."""
    call_id = request_id(request)
    name: object = None
    try:
        if not isinstance(request, dict):
            raise RpcError(-32600, "not a JSON-RPC request: a call is a JSON object")
        if request.get("id") is not None and call_id is None:
            raise RpcError(-32600, "id must be a string, a number or null")
        name = request.get("method")
        if not isinstance(name, str):
            raise RpcError(-32600, "not a JSON-RPC request: no method name")
        found = methods.get(name)
        if found is None:
            raise RpcError(-32601, f"unknown method {name!r}")
        result = found.run(node, read_params(found.params, request.get("params")))
    except RpcError as exc:
        return error_reply(call_id, exc.code, str(exc))
    except Exception as exc:
        if is_fatal(exc):
            raise
        node.faults.caught(place, exc, method=name)
        return error_reply(call_id, INTERNAL_ERROR, "internal error (the node logged it)")
    return {"jsonrpc": "2.0", "id": call_id, "result": result}


def decode_transaction_hex(value: object, name: str) -> Transaction:
    """A canonical signed transaction given as hex in the parameter ``name``, or -32602."""
    try:
        if not isinstance(value, str):
            raise TypeError("not a string")
        tx: Transaction = decode(bytes.fromhex(value), Transaction)  # type: ignore[arg-type]
    except (TypeError, ValueError, DecodeError) as exc:
        raise RpcError(-32602, f"{name} must be the hex of a canonical signed transaction: {exc}") from None
    return tx


def submit(node: Served, tx: Transaction) -> bytes:
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
