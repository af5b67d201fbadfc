"""JSON-RPC requests per second against one node on 127.0.0.1, against a bare h11 server.

Starts one node of a fresh testnet (``appchain start``; it serves JSON-RPC whether or not it
produces blocks), and a bare HTTP server built on the same library (h11 on trio) that answers
every request with a constant JSON body, each in its own process. Then the same client
(``http.client`` with keep-alive, ``--clients`` threads) sends ``get_info``, then
``get_service_nodes``, to the node for ``--seconds`` each, and a constant request to the bare
server. It prints requests per second and the ratio against the bare server, measured in the same
run.

Run: ``python -m bench.rpc [--seconds 5] [--clients 4]``.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import h11
import trio

from appchain.home.tls import client_context
from appchain.lab.testnet import poll_status, start_process, stop_processes, write_testnet

CONSTANT = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"status": "OK"}}).encode()


async def _constant_connection(stream: trio.SocketStream) -> None:
    connection = h11.Connection(h11.SERVER)
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(event, h11.Request):
                continue
            if isinstance(event, h11.Data):
                continue
            if isinstance(event, h11.EndOfMessage):
                headers = [("content-type", "application/json"), ("content-length", str(len(CONSTANT)))]
                await stream.send_all(connection.send(h11.Response(status_code=200, headers=headers)))
                await stream.send_all(connection.send(h11.Data(data=CONSTANT)))
                await stream.send_all(connection.send(h11.EndOfMessage()))
                connection.start_next_cycle()
                continue
            return
    except (h11.RemoteProtocolError, trio.BrokenResourceError):
        return


def serve_constant(port: int) -> None:
    trio.run(functools.partial(trio.serve_tcp, _constant_connection, port, host="127.0.0.1"))


def measure(
    port: int,
    bodies: Sequence[bytes],
    seconds: float,
    clients: int,
    *,
    path: str = "/json_rpc",
    timeout: float = 10,
    tls: bool = False,
    fresh: bool = False,
) -> tuple[float, int]:
    """Requests per second from ``clients`` keep-alive connections to 127.0.0.1:``port`` for
    ``seconds``, cycling through ``bodies``; and how many answers were not 200. ``tls``: HTTPS
    (a storage port: its self-signed certificate unchecked); ``fresh``: a new connection for each
    request, as Session Desktop opens one (a full TLS handshake each, over HTTPS)."""
    counts, failures = [0] * clients, [0] * clients
    deadline = time.perf_counter() + seconds
    context = client_context() if tls else None

    def connect() -> http.client.HTTPConnection:
        if context is not None:
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def client(index: int) -> None:
        connection = connect()
        position = index
        while time.perf_counter() < deadline:
            body = bodies[position % len(bodies)]
            position += clients
            connection.request("POST", path, body, {"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            counts[index] += 1
            failures[index] += response.status != 200
            if fresh:
                connection.close()
                connection = connect()
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started), sum(failures)


def requests_per_second(port: int, body: bytes, seconds: float, clients: int) -> float:
    """:func:`measure` of one request; every answer must be 200."""
    per_second, failures = measure(port, [body], seconds, clients)
    if failures:
        raise SystemExit(f"bench: {failures} answers were not HTTP 200")
    return per_second


def call(method: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}).encode()


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--base-port", type=int, default=29656)
    parser.add_argument("--serve-constant", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_constant:
        serve_constant(args.serve_constant)
        return

    root = Path(tempfile.mkdtemp(prefix="bench-rpc-"))
    members = write_testnet(root / "net", 12, base_port=args.base_port, seed="bench-rpc")
    node = members[0]
    bare_port = args.base_port + 100
    process = start_process(node.home)
    bare = subprocess.Popen([sys.executable, "-m", "bench.rpc", "--serve-constant", str(bare_port)])
    try:
        deadline = time.monotonic() + 60
        while poll_status(node) is None:
            if time.monotonic() > deadline:
                raise SystemExit("bench: the node did not start; see its log")
            time.sleep(0.2)
        time.sleep(0.5)
        results = {
            "bare h11, constant": requests_per_second(
                bare_port, call("anything"), args.seconds, args.clients
            ),
            "get_info": requests_per_second(node.rpc_port, call("get_info"), args.seconds, args.clients),
            "get_service_nodes": requests_per_second(
                node.rpc_port, call("get_service_nodes"), args.seconds, args.clients
            ),
        }
    finally:
        stop_processes([process])
        bare.terminate()
        bare.wait()
    reference = results["bare h11, constant"]
    setup = f"{args.clients} keep-alive clients, {args.seconds:.0f} s each (12 service nodes)"
    print(f"JSON-RPC on 127.0.0.1, {setup}")
    for name, rate in results.items():
        print(f"  {name:<20}: {rate:9,.0f} requests/s  ({rate / reference:.2f} of the bare server)")


if __name__ == "__main__":
    main()
