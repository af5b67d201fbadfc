"""The operator's endpoint of a running node: JSON-RPC 2.0, one request per line, on the loopback.

``appchain status`` asks it when the node holds the home (a running node keeps the database
open, so no other process may), and the devnet's live view polls it. Methods:

==========================  ============================================================
``status``                  height, final height and root, genesis hash, peers, sync state,
                            round, mempool size, this node's service-node state and credit,
                            its process id
``submit_transaction``      ``{"tx": hex}``: a canonical signed transaction into the mempool
                            and out to every peer; answers its hash, or why it was refused
``submit_transactions``     ``{"txs": [hex, …]}``: up to 5,000 at once (load generators), out to
                            the peers as one frame per 512 kept; one
                            result (hash or error) per transaction
``peers``                   the connected peers: node key and address
``set_uptime_proofs``       ``{"enabled": bool}``: stop or resume this node's uptime proofs
                            (for testnets: a node that stops is decommissioned on chain)
``set_clock_offset``        ``{"seconds": number}``: this node's ``clock_offset`` from now on
                            (for testnets rehearsing clock skew without a restart; the
                            setting in config.toml is the value at start)
``messages``                the swarm layer: the final height it followed, its swarm, and the
                            number of messages it holds per account (at most 1,000 accounts)
``get_info``                oxend's ``get_info`` as its admin connections see it: the public
                            answer with the exact ``database_size``, the full ``version`` and
                            ``service_node`` (whether this node is registered)
``get_coinbase_tx_sum``     oxend's admin ``get_coinbase_tx_sum`` ``{height, count}``: what the
                            blocks created (block 0's genesis supply), the fees their
                            transactions paid, and 0 burned (:mod:`appchain.rpc.transactions`)
==========================  ============================================================

Every request is parsed with a depth limit (:func:`state.encoding.decode_json`) and its params
decoded into the method's typed structure; a line over :data:`MAX_LINE` bytes ends the
connection. Each call and each connection is a boundary (:mod:`appchain.home.boundary`). Errors are
JSON-RPC errors: -32700 parse error, -32600 invalid request, -32601 unknown method, -32602
invalid params, -32603 internal error, -32000 refused.

:func:`call`, the client, parses replies the same way and turns anything that is not a JSON-RPC
reply into one typed error (:class:`AdminError`).
"""

from __future__ import annotations

import functools
import json
import socket
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Protocol

import msgspec
import trio

from appchain.home.home import MAX_CLOCK_OFFSET, NodeConfig
from appchain.messaging.layer import SwarmLayer
from appchain.rpc.blocks import VERSION, database_size, public_info
from appchain.rpc.jsonrpc import (
    Height,
    Method,
    NoParams,
    Params,
    RpcError,
    answer_call,
    decode_request,
    decode_transaction_hex,
    encode_answer,
    error_reply,
    method,
    serve_on,
    submit,
)
from appchain.rpc.served import PublicNode, tip_view
from appchain.rpc.transactions import coinbase_sum
from consensus.mempool import MempoolFull
from consensus.node import NodeCore
from p2p.host import Host
from state.encoding import DecodeError, decode_json
from state.errors import InvalidEvent
from state.events import Transaction
from state.nodes import get_node

__all__ = [
    "ADMIN_FAILURES",
    "AdminError",
    "AdminNode",
    "AdminTimeout",
    "AdminUnavailable",
    "Connect",
    "MalformedReply",
    "RpcError",
    "answer",
    "call",
    "serve_admin",
]

MAX_LINE = 4 * 1024 * 1024
MAX_BATCH = 5_000


class AdminNode(PublicNode, Protocol):
    """The running node, as the admin endpoint reads it: handed over by the node when it starts
    the endpoint (the endpoint imports no node, so the node may import it)."""

    clock_offset: float
    """Seconds added to the wall clock for consensus (``set_clock_offset`` changes it)."""

    @property
    def config(self) -> NodeConfig: ...

    @property
    def core(self) -> NodeCore:
        """The consensus core (``set_uptime_proofs`` switches its proofs)."""
        ...

    @property
    def host(self) -> Host:
        """The p2p host: the connected peers."""
        ...

    @property
    def messages(self) -> SwarmLayer: ...

    def status(self) -> dict[str, Any]: ...

    def submit_batch(self, txs: Sequence[Transaction]) -> list[bytes | InvalidEvent | MempoolFull]:
        """Each into the mempool, those kept out to the peers in as few frames as can be: per
        transaction its hash or why it was refused."""
        ...


def _status(node: AdminNode, params: NoParams) -> Any:
    return node.status()


def _peers(node: AdminNode, params: NoParams) -> Any:
    return [
        {"node_key": bytes(key).hex(), "address": peer.address}
        for key, peer in sorted(node.host.peers.items())
    ]


class TransactionParams(Params, frozen=True):
    tx: str


def _submit_transaction(node: AdminNode, params: TransactionParams) -> Any:
    return {"hash": submit(node, decode_transaction_hex(params.tx, "tx")).hex()}


class TransactionsParams(Params, frozen=True):
    txs: Annotated[list[str], msgspec.Meta(max_length=MAX_BATCH)]


def _submit_transactions(node: AdminNode, params: TransactionsParams) -> Any:
    """Each transaction that decodes goes to the node in one batch (one frame to each peer)."""
    decoded: list[Transaction | RpcError] = []
    for text in params.txs:
        try:
            decoded.append(decode_transaction_hex(text, "tx"))
        except RpcError as exc:
            decoded.append(exc)
    outcomes = iter(node.submit_batch([tx for tx in decoded if not isinstance(tx, RpcError)]))
    results: list[dict[str, str]] = []
    for item in decoded:
        outcome = item if isinstance(item, RpcError) else next(outcomes)
        if isinstance(outcome, bytes):
            results.append({"hash": outcome.hex()})
        elif isinstance(outcome, RpcError):
            results.append({"error": str(outcome)})
        else:
            results.append({"error": str(RpcError(-32000, f"refused: {outcome}"))})
    return results


class UptimeProofsParams(Params, frozen=True):
    enabled: bool


def _set_uptime_proofs(node: AdminNode, params: UptimeProofsParams) -> Any:
    node.core.send_proofs = params.enabled
    return {"enabled": params.enabled}


class ClockOffsetParams(Params, frozen=True):
    seconds: Annotated[float, msgspec.Meta(ge=-MAX_CLOCK_OFFSET, le=MAX_CLOCK_OFFSET)]


def _set_clock_offset(node: AdminNode, params: ClockOffsetParams) -> Any:
    node.clock_offset = params.seconds
    return {"seconds": node.clock_offset}


def _get_info(node: AdminNode, params: NoParams) -> Any:
    info = public_info(node, database_size=database_size(node))
    info["version"] = VERSION
    info["status_line"] = f"v{VERSION}; Height: {info['height']}"
    info["service_node"] = get_node(tip_view(node), node.core.node_key) is not None
    return info


class CoinbaseParams(Params, frozen=True):
    height: Height = 0
    count: Height = 0


def _get_coinbase_tx_sum(node: AdminNode, params: CoinbaseParams) -> Any:
    return coinbase_sum(node, params.height, params.count)


def _messages(node: AdminNode, params: NoParams) -> Any:
    layer = node.messages
    held = {owner.hex(): count for owner, count in layer.store.owner_counts(1000).items()}
    swarm = layer.my_swarm()
    return {"followed": layer.followed_height, "swarm": None if swarm is None else f"{swarm:x}", "held": held}


METHODS: dict[str, Method[AdminNode, Any]] = {
    "messages": method(_messages),
    "status": method(_status),
    "peers": method(_peers),
    "submit_transaction": Method(_submit_transaction, TransactionParams),
    "submit_transactions": Method(_submit_transactions, TransactionsParams),
    "set_uptime_proofs": Method(_set_uptime_proofs, UptimeProofsParams),
    "set_clock_offset": Method(_set_clock_offset, ClockOffsetParams),
    "get_info": method(_get_info),
    "get_coinbase_tx_sum": Method(_get_coinbase_tx_sum, CoinbaseParams),
}


def answer(node: AdminNode, line: bytes) -> bytes:
    """The reply line to one request line (every line is answered, to keep the two in step)."""
    try:
        reply = answer_call(METHODS, node, decode_request(line), place="admin")
    except RpcError as exc:
        reply = error_reply(None, exc.code, str(exc))
    return encode_answer(reply) + b"\n"


async def _serve_connection(node: AdminNode, stream: trio.abc.Stream) -> None:
    """One operator's connection, a boundary (:mod:`appchain.home.boundary`): what it raises that
    nothing expected closes it, logged and counted; the node goes on."""
    async with stream:
        with node.faults.boundary("admin"):
            await _serve_lines(node, stream)


async def _serve_lines(node: AdminNode, stream: trio.abc.Stream) -> None:
    """Answer each line as it completes, until the operator hangs up or a line runs too long."""
    buffer = bytearray()
    try:
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                await stream.send_all(answer(node, line))
            if len(buffer) > MAX_LINE:
                reply = error_reply(None, -32600, f"a request over {MAX_LINE} bytes")
                await stream.send_all(encode_answer(reply) + b"\n")
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def serve_admin(
    node: AdminNode, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    handler = functools.partial(_serve_connection, node)
    await serve_on(node.config.admin_address, handler, task_status=task_status)


class AdminError(Exception):
    """Asking a node's admin endpoint failed: nothing answered, or not with a JSON-RPC reply. Its
    message is one line naming the address and what went wrong (a node that answered with a
    JSON-RPC error raises :class:`RpcError` instead)."""


class AdminUnavailable(AdminError):
    """Nothing answers at the admin address: refused, unreachable or reset."""


class AdminTimeout(AdminUnavailable):
    """No whole reply within the timeout: the node is stopped (SIGSTOP), hung or overloaded."""


class MalformedReply(AdminError):
    """Something answered, but not a JSON-RPC reply: not JSON, not an object, neither or both of
    ``result`` and ``error``, an error that is not ``{code, message}``, another request's id, a
    reply over :data:`MAX_REPLY` bytes, or a connection closed before the end of the line."""


ADMIN_FAILURES = (AdminError, RpcError)
"""Everything :func:`call` raises: catch these where a node may be down or misbehave."""

MAX_REPLY = 64 * 1024 * 1024
"""Bytes of one reply line at most (the largest, ``submit_transactions``, is a few hundred KB)."""
MAX_ERROR_TEXT = 300
"""Characters of a node's error message kept (on one line)."""

Connect = Callable[[tuple[str, int], float], socket.socket]
"""Opens a connected socket to an address within a timeout: :func:`socket.create_connection`, or
one opened in a node's network namespace (:mod:`appchain.lab.netns`)."""


def call(
    address: tuple[str, int],
    method: str,
    params: dict[str, Any] | None = None,
    timeout: float = 5.0,
    connect: Connect = socket.create_connection,
) -> Any:
    """One request to a node's admin endpoint (blocking; for the CLI, the devnet and tests): its
    ``result``. ``timeout`` bounds the whole exchange, not each read, so a node that drips bytes
    cannot hold the caller. Raises :class:`RpcError` when the node answers with an error, else one
    of the :class:`AdminError` kinds; never a decoding error, since the reply is parsed with the
    depth-limited :func:`~state.encoding.decode_json` (py_ecc raises the recursion limit, so the
    standard parser can overflow the C stack on deep nesting)."""
    where = f"{address[0]}:{address[1]}"
    request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    deadline = time.monotonic() + timeout
    try:
        with connect(address, timeout) as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            line = _read_line(sock, deadline, where)
    except TimeoutError:
        raise AdminTimeout(f"the node at {where} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise AdminUnavailable(f"no node answers at {where}: {exc.strerror or exc}") from None
    return _result_of(line, where)


def _read_line(sock: socket.socket, deadline: float, where: str) -> bytes:
    """The first line the node sends, without its newline, read by ``deadline``."""
    data = bytearray()
    while (end := data.find(b"\n")) < 0:
        if len(data) > MAX_REPLY:
            raise MalformedReply(f"malformed reply from {where}: over {MAX_REPLY} bytes without a line end")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            cut = f"after {len(data)} bytes of a reply" if data else "before replying"
            raise MalformedReply(f"malformed reply from {where}: the connection closed {cut}")
        data += chunk
    return bytes(data[:end])


def _result_of(line: bytes, where: str) -> Any:
    """The ``result`` of a reply line; :class:`RpcError` for an error reply, else MalformedReply."""
    try:
        reply = decode_json(line)
    except DecodeError as exc:
        raise MalformedReply(f"malformed reply from {where}: {exc}") from None
    if not isinstance(reply, dict):
        raise MalformedReply(f"malformed reply from {where}: a JSON {type(reply).__name__}, not an object")
    if reply.get("id") != 1:
        raise MalformedReply(f"malformed reply from {where}: id {_clip(repr(reply.get('id')))}, not 1")
    if ("result" in reply) == ("error" in reply):
        which = "both" if "result" in reply else "neither"
        raise MalformedReply(f"malformed reply from {where}: {which} result and error")
    if "result" in reply:
        return reply["result"]
    error = reply["error"]
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        raise MalformedReply(
            f"malformed reply from {where}: an error that is not {{code: integer, message: string}}"
        )
    raise RpcError(code, _clip(message))


def _clip(text: str) -> str:
    """``text`` on one line, at most :data:`MAX_ERROR_TEXT` characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_TEXT else line[: MAX_ERROR_TEXT - 1] + "…"
