"""Onion requests as a Session client sends them, through node processes: three hops over the
storage port to an outside server (a v4 ``lsrpc`` server this test runs on the loopback) and to
a node's storage RPC (v2 JSON), both answers read; the exit hop counts the relay in /metrics."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from appchain.home.home import Home, render_config
from appchain.lab.testnet import PORTS_PER_NODE, start_process, stop_processes, write_testnet
from appchain.messaging.onion import XCHACHA20, Hop, build, read_response
from tests.onion_server import V4Server, onion_to_server, read_v4_answer, v4_request
from tests.test_network import free_port_block, rpc_result

GUARD_SCHEME = "https"
"""How a client reaches the guard's storage port: HTTPS, accepting the node's self-signed
certificate as a Session client does (Desktop's ``rejectUnauthorized: false``)."""


def post_to_guard(ip: str, port: int, body: bytes) -> tuple[int, bytes]:
    url = f"{GUARD_SCHEME}://{ip}:{port}/onion_req/v2"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(url, data=body, headers={"User-Agent": "WhatsApp"})
    try:
        with urllib.request.urlopen(request, timeout=40, context=context) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split(" ")[1])
    return 0.0


@pytest.mark.slow
def test_a_session_client_reaches_an_outside_server_and_the_storage_rpc_through_three_nodes(
    tmp_path: Path,
) -> None:
    members = write_testnet(
        tmp_path / "net", 4, base_port=free_port_block(4 * PORTS_PER_NODE), seed="onion relay"
    )
    for member in members:  # the outside server runs on the loopback, as every node here
        home = Home(member.home)
        home.config_path.write_text(
            render_config(replace(home.load_config(), onion_relay_private_targets=True))
        )
    server = V4Server()
    processes = [start_process(member.home) for member in members]
    try:
        url = f"http://127.0.0.1:{members[0].rpc_port}"
        entries: list[dict[str, Any]] = []
        deadline = time.monotonic() + 120
        while len(entries) < 4:
            assert time.monotonic() < deadline, "the nodes' storage ports were not announced in 120 s"
            time.sleep(1)
            try:
                states = rpc_result(url, "get_service_nodes")["service_node_states"]
            except OSError:
                continue
            entries = [s for s in states if s.get("storage_port") and s.get("public_ip")]
        entries.sort(key=lambda s: s["pubkey_ed25519"])
        hops = [Hop(bytes.fromhex(s["pubkey_ed25519"])) for s in entries]
        path, destination = hops[:3], hops[3]
        guard = (entries[0]["public_ip"], entries[0]["storage_port"])

        # v4 to the outside server, as Session Desktop builds it (aes-gcm, no enc_type needed)
        request = onion_to_server(
            v4_request("POST", "/echo", b'{"room":"lobby"}'),
            path,
            server.x25519,
            host="127.0.0.1",
            port=server.port,
        )
        deadline = time.monotonic() + 60
        while True:  # until every hop knows the next one's address (their uptime proofs)
            status, body = post_to_guard(*guard, request.body)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert status == 200, body[:300]
        meta, content = read_v4_answer(request, server.x25519, body)
        assert meta["code"] == 201 and json.loads(content)["echo"] == '{"room":"lobby"}'
        assert len(server.seen) == 1 and server.seen[0]["meta"]["target"] == "/oxen/v4/lsrpc"

        # v2 JSON to a node's storage RPC, through the same three hops
        storage = build(json.dumps({"method": "info", "params": {}}).encode(), path, destination, XCHACHA20)
        status, body = post_to_guard(*guard, storage.body)
        assert status == 200
        code, info = read_response(storage, body)
        assert code == 200 and info["version"] == [2, 8, 0]

        # a target path no Session server has: refused by the exit hop, sealed to the client
        wrong = onion_to_server(
            b"x", path, server.x25519, host="127.0.0.1", port=server.port, target="/admin"
        )
        status, body = post_to_guard(*guard, wrong.body)
        assert status == 200 and len(server.seen) == 1
        exit_url = (
            f"http://127.0.0.1:{members[[m.node_key for m in members].index(path[2].ed25519)].rpc_port}"
        )
        assert metric(exit_url, "appchain_onion_relayed_total") == 1
        assert metric(exit_url, 'appchain_onion_relay_refused_total{reason="invalid_url"}') == 1
    finally:
        stop_processes(processes)
        server.stop()
