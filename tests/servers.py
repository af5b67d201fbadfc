"""Servers the client commands are pointed at in tests: scripted fakes on 127.0.0.1 (port 0) that
answer what a broken or hostile server would, and one real node process to send transactions to.

Every one is stopped by the test that started it (``with`` or ``stop()``), by its own handle.
"""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appchain.home.keyfile import write_seed
from appchain.home.tls import make_certificate, server_context
from appchain.lab.testnet import PORTS_PER_NODE, NetworkMember, start_process, stop_processes, write_testnet
from appchain.rpc.methods import handle_body
from genesis.devnet import load_dev_accounts
from state.crypto import ed25519
from tests.test_network import free_port_block

Respond = Callable[[str, bytes], bytes]
"""What a fake answers: the raw bytes sent back for a request's path and body."""

MAX_REQUEST = 4 * 1024 * 1024


def http_answer(status: int, body: object, reason: str = "OK") -> bytes:
    """A whole HTTP/1.1 answer with a JSON body (``bytes`` are sent as they are)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(raw)}\r\n"
    return head.encode() + b"connection: close\r\n\r\n" + raw


def rpc_reply(request: bytes, result: Callable[[str, dict[str, Any]], object]) -> bytes:
    """A JSON-RPC answer (a batch too) whose results ``result(method, params)`` gives."""
    calls = json.loads(request)
    replies = [
        {"jsonrpc": "2.0", "id": call.get("id"), "result": result(call["method"], call.get("params") or {})}
        for call in (calls if isinstance(calls, list) else [calls])
    ]
    return http_answer(200, replies if isinstance(calls, list) else replies[0])


def _read_request(sock: socket.socket) -> tuple[str, bytes]:
    """The path and body of the HTTP request on ``sock`` (whatever arrives, if it is not HTTP)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    path = parts[1] if len(parts) > 1 else ""
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    while len(body) < min(length, MAX_REQUEST):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return path, body


class FakeServer:
    """A TCP server on 127.0.0.1 that answers each connection's first request with ``respond``
    and closes it. ``requests`` counts what it was sent. ``tls``: over TLS with this context (a
    fake storage port, :func:`storage_tls`)."""

    def __init__(self, respond: Respond, tls: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.requests: list[tuple[str, bytes]] = []
        self.scheme = "http" if tls is None else "https"
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(10)
                try:
                    sock = self.request if tls is None else tls.wrap_socket(self.request, server_side=True)
                    path, body = _read_request(sock)
                    fake.requests.append((path, body))
                    sock.sendall(fake.respond(path, body))
                except OSError:
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def storage_tls(folder: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed pair in ``folder``, as a node's storage port has."""
    cert, key = make_certificate()
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    return server_context(folder / "cert.pem", folder / "key.pem")


def seed_for(storage: FakeServer) -> Respond:
    """A JSON-RPC fake whose ``get_service_nodes`` lists one service node, serving storage at
    ``storage``: what a message client asks first, before it goes to a storage port."""
    node = {"pubkey_ed25519": "00" * 32, "public_ip": "127.0.0.1", "storage_port": storage.port}
    return lambda path, body: rpc_reply(body, lambda method, params: {"service_node_states": [node]})


Tamper = Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any]]
"""Changes a JSON-RPC result: (method, params, result) -> what the server answers instead."""


def serve_node(node: Any, tamper: Tamper | None = None) -> Respond:
    """Answers ``POST /json_rpc`` with the node's own JSON-RPC handlers (:func:`appchain.rpc.methods.handle_body`)
    over ``node`` (a chain, its ledger, a mempool: what the handlers read), each result through
    ``tamper``; one request at a time, like the node's event loop."""
    lock = threading.Lock()

    def respond(path: str, body: bytes) -> bytes:
        with lock:
            answer = json.loads(json.dumps(handle_body(node, body)))
        if tamper is not None:
            calls = json.loads(body)
            calls = calls if isinstance(calls, list) else [calls]
            replies = answer if isinstance(answer, list) else [answer]
            for call, reply in zip(calls, replies, strict=True):
                if "result" in reply:
                    reply["result"] = tamper(call["method"], call.get("params") or {}, reply["result"])
        return http_answer(200, answer)

    return respond


class RunningNode:
    """One node process of a one-node testnet: it serves JSON-RPC and takes transactions into its
    mempool (one service node makes no blocks: Pulse needs 12), which is all a wallet needs."""

    def __init__(self, folder: Path, seed: str = "client-tests") -> None:
        (self.member,) = write_testnet(folder, 1, base_port=free_port_block(PORTS_PER_NODE), seed=seed)
        self.folder = folder
        self.genesis = folder / "genesis.json"
        self.process: subprocess.Popen[bytes] | None = start_process(self.member.home)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.call("get_info")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    log = (self.member.home / "node.log").read_text(errors="replace")
                    raise RuntimeError(f"the node did not start:\n{log[-2000:]}") from None
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.member.rpc_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.member.admin_port}"

    @property
    def node(self) -> NetworkMember:
        return self.member

    def call(self, method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        request = urllib.request.Request(
            self.url + "/json_rpc", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())["result"]

    def user(self, index: int = 0) -> ed25519.SigningKey:
        """A funded dev account of this testnet (``index``: which one)."""
        accounts = load_dev_accounts(self.folder / "keys" / "accounts.json")
        return accounts[-1 - index]  # the users come after the operators

    def user_key(self, path: Path, index: int = 0) -> Path:
        """A key file of :meth:`user` ``index``."""
        if not path.exists():
            write_seed(path, self.user(index).seed)
        return path

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process])
            self.process = None
