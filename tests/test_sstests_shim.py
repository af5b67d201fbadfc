"""The OxenMQ stand-ins that run session-storage-server's own network-tests against a devnet
(``tests/sstests``, ``make sstests CHECKOUT=…``): checked here without the tests (which are not
in this repository, so CI cannot run them) and without a devnet, against a stub node on the
loopback: bt encoding, the ``Address`` forms, and each request kind as the tests send it."""

from __future__ import annotations

import importlib
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from appchain.home.tls import make_certificate, server_context

SHIM = Path(__file__).parent / "sstests" / "shim"
X25519 = "11" * 32


class Stub(BaseHTTPRequestHandler):
    """One devnet node: JSON-RPC, the storage RPC and the onion endpoint."""

    seen: list[tuple[str, bytes]] = []  # noqa: RUF012 (the server's handlers share it)
    port = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.seen.append((self.path, body))
        code, out = 404, b""
        if self.path == "/json_rpc":
            request = json.loads(body)
            entry = {"pubkey_x25519": X25519, "pubkey_ed25519": "22" * 32, "public_ip": "127.0.0.1",
                     "storage_port": self.port, "storage_lmq_port": 1}  # fmt: skip
            result = {"service_node_states": [entry]}
            out = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
            code = 200
        elif self.path == "/storage_rpc/v1":
            request = json.loads(body)
            code, out = (
                (401, b"nope")
                if request["method"] == "fail"
                else (200, json.dumps({"echo": request}).encode())
            )
        elif self.path == "/onion_req/v2":
            code, out = 200, b"onion:" + body[:4]
        self.send_response(code)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture
def shim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[ModuleType, ModuleType]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    cert, key = make_certificate()  # HTTPS, as a node's storage port (the shim's default URL)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    tls = server_context(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    Stub.port, Stub.seen = server.server_address[1], []
    monkeypatch.setenv("SSTESTS_RPC_URL", f"https://127.0.0.1:{Stub.port}/json_rpc")
    monkeypatch.delenv("SSTESTS_STORAGE_URL", raising=False)
    monkeypatch.syspath_prepend(str(SHIM))
    try:
        yield importlib.import_module("oxenmq"), importlib.import_module("oxenc")
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] in ("oxenmq", "oxenc", "pyonionreq")]:
            del sys.modules[name]
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_shim_carries_what_the_network_tests_send(shim: tuple[Any, Any]) -> None:
    oxenmq, oxenc = shim
    value = {"b": [1, b"x", {"z": -3}], "a": "str"}
    assert oxenc.bt_serialize(value) == b"d1:a3:str1:bli1e1:xd1:zi-3eeee"
    assert oxenc.bt_deserialize(oxenc.bt_serialize(value)) == {b"a": b"str", b"b": [1, b"x", {b"z": -3}]}
    assert importlib.import_module("pyonionreq").xed25519 is not None  # subaccount.py imports it

    omq = oxenmq.OxenMQ()
    omq.start()
    # the conftest's testnet oxend: the devnet's JSON-RPC, answered as oxend answers over OxenMQ
    oxend = omq.connect_remote(
        oxenmq.Address("curve://public.loki.foundation:38161/" + oxenmq.TESTNET_OXEND_KEY)
    )
    reply = omq.request_future(oxend, "rpc.get_service_nodes", b'{"active_only": true}').get()
    assert reply[0] == b"200" and json.loads(reply[1])["service_node_states"][0]["pubkey_x25519"] == X25519
    # a node by its x25519 key, whatever port the Address says
    node = omq.connect_remote(oxenmq.Address("127.0.0.1", 1, bytes.fromhex(X25519)))
    assert node.service_node
    futures = [omq.request_future(node, "storage.info", [json.dumps({"i": i})]) for i in range(20)]
    assert [json.loads(f.get()[0])["echo"]["params"]["i"] for f in futures] == list(range(20))
    order = [json.loads(body)["params"]["i"] for path, body in Stub.seen if path == "/storage_rpc/v1"]
    assert order == list(range(20))  # one connection's requests arrive in the order they were sent
    assert omq.request_future(node, "storage.fail", b"{}").get() == [b"401", b"nope"]
    with pytest.raises(RuntimeError, match="bt-encoded"):  # no HTTP(S) form, in the storage server too
        omq.request_future(node, "storage.batch", [oxenc.bt_serialize({"requests": []})]).get()
    with pytest.raises(RuntimeError, match="UNKNOWNCOMMAND"):
        omq.request_future(node, "monitor.messages", b"d1:pi1ee").get()
    onion = oxenc.bt_serialize({"data": b"abc", "ephemeral_key": b"\x01" * 32, "hop_no": 2})
    assert omq.request_future(node, "sn.onion_request", onion).get() == [b"200", b"onion:\x03\x00\x00\x00"]
    with pytest.raises(RuntimeError, match="Connection failed"):
        omq.connect_remote(oxenmq.Address("127.0.0.1", 9, b"\x09" * 32))
    for form in (
        oxenmq.Address("curve://127.0.0.1:5/" + X25519),
        oxenmq.Address("127.0.0.1", 5, bytes.fromhex(X25519)),
    ):
        assert form.pubkey.hex() == X25519 and (form.host, form.port) == ("127.0.0.1", 5)
    assert oxenmq.Address("ipc://oxend/devnet.sock").ipc
