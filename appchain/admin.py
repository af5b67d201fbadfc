"""The operator's endpoint of a running node: JSON-RPC 2.0, one request per line, on the loopback.

``appchain status`` asks it when the node holds the home (a running node keeps the database
open, so no other process may), and the devnet's live view polls it. Methods:

==========================  ============================================================
``status``                  height, final height and root, genesis hash, peers, sync state,
                            round, mempool size, this node's service-node state and credit
``submit_transaction``      ``{"tx": hex}``: a canonical signed transaction into the mempool
                            and out to every peer; answers its hash, or why it was refused
``submit_transactions``     ``{"txs": [hex, …]}``: up to 5,000 at once (load generators); one
                            result (hash or error) per transaction
``peers``                   the connected peers: node key and address
``set_uptime_proofs``       ``{"enabled": bool}``: stop or resume this node's uptime proofs
                            (for testnets: a node that stops is decommissioned on chain)
==========================  ============================================================

Every request is parsed with a depth limit (:func:`state.encoding.decode_json`); a line over
:data:`MAX_LINE` bytes ends the connection. Errors are JSON-RPC errors: -32700 parse error,
-32600 invalid request, -32601 unknown method, -32602 invalid params, -32000 refused.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import trio

from consensus.mempool import MempoolFull
from state.encoding import DecodeError, decode, decode_json
from state.errors import InvalidEvent
from state.events import Transaction

if TYPE_CHECKING:
    from appchain.node import Node

MAX_LINE = 4 * 1024 * 1024
MAX_BATCH = 5_000


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _params(request: dict[str, Any]) -> dict[str, Any]:
    params = request.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(-32602, "params must be an object")
    return params


def _transaction(text: object) -> Transaction:
    try:
        if not isinstance(text, str):
            raise TypeError("not a string")
        tx: Transaction = decode(bytes.fromhex(text), Transaction)  # type: ignore[arg-type]
    except (TypeError, ValueError, DecodeError) as exc:
        raise RpcError(-32602, f"tx must be the hex of a canonical signed transaction: {exc}") from None
    return tx


def dispatch(node: Node, request: object) -> Any:
    if (
        not isinstance(request, dict)
        or request.get("jsonrpc") != "2.0"
        or not isinstance(request.get("method"), str)
    ):
        raise RpcError(-32600, "not a JSON-RPC 2.0 request")
    assert isinstance(request, dict)
    method = request["method"]
    if method == "status":
        return node.status()
    if method == "peers":
        return [
            {"node_key": bytes(key).hex(), "address": peer.address}
            for key, peer in sorted(node.host.peers.items())
        ]
    if method == "submit_transaction":
        tx = _transaction(_params(request).get("tx"))
        try:
            return {"hash": node.submit(tx).hex()}
        except (InvalidEvent, MempoolFull) as exc:
            raise RpcError(-32000, f"refused: {exc}") from None
    if method == "submit_transactions":
        texts = _params(request).get("txs")
        if not isinstance(texts, list) or len(texts) > MAX_BATCH:
            raise RpcError(-32602, f"txs must be a list of at most {MAX_BATCH} hex transactions")
        results: list[dict[str, str]] = []
        for text in texts:
            try:
                results.append({"hash": node.submit(_transaction(text)).hex()})
            except RpcError as exc:
                results.append({"error": str(exc)})
            except (InvalidEvent, MempoolFull) as exc:
                results.append({"error": f"refused: {exc}"})
        return results
    if method == "set_uptime_proofs":
        enabled = _params(request).get("enabled")
        if not isinstance(enabled, bool):
            raise RpcError(-32602, "enabled must be true or false")
        node.core.send_proofs = enabled
        return {"enabled": enabled}
    raise RpcError(-32601, f"unknown method {method!r}")


def answer(node: Node, line: bytes) -> bytes:
    request_id: Any = None
    try:
        try:
            request = decode_json(line)
        except DecodeError as exc:
            raise RpcError(-32700, str(exc)) from None
        if isinstance(request, dict):
            request_id = request.get("id")
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "result": dispatch(node, request)}
    except RpcError as exc:
        reply = {"jsonrpc": "2.0", "id": request_id, "error": {"code": exc.code, "message": str(exc)}}
    return json.dumps(reply, sort_keys=True).encode() + b"\n"


async def _serve_connection(node: Node, stream: trio.abc.Stream) -> None:
    buffer = bytearray()
    async with stream:
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
                    error = {"code": -32600, "message": f"a request over {MAX_LINE} bytes"}
                    await stream.send_all(
                        json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode() + b"\n"
                    )
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return


async def serve_admin(node: Node, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    host, port = node.config.admin_address
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started()

    async def handler(stream: trio.SocketStream) -> None:
        await _serve_connection(node, stream)

    await trio.serve_listeners(handler, listeners)


class AdminUnavailable(Exception):
    """Nothing answers at the admin address."""


def call(
    address: tuple[str, int], method: str, params: dict[str, Any] | None = None, timeout: float = 5.0
) -> Any:
    """One request to a node's admin endpoint (blocking; for the CLI and tests)."""
    request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise AdminUnavailable(
            f"no node answers at {address[0]}:{address[1]}: {exc.strerror or exc}"
        ) from None
    reply = json.loads(data)
    if "error" in reply:
        raise RpcError(reply["error"]["code"], reply["error"]["message"])
    return reply["result"]
