"""What TLS alone costs a storage-port request: the storage port's server with and without TLS, in
this process, on 127.0.0.1, with no node behind it.

``bench.swarm`` measures retrieve through a node of a 12-node testnet, where every process shares
the machine's cores, so TLS's price there is multiplied by the waiting. Here the server is the
storage port's own (:class:`appchain.rpc.storage.StorageServer`, the home certificate's kind:
RSA 2048, made by :func:`appchain.home.tls.make_certificate`) serving a constant answer of
``--size`` bytes, on a trio loop in this process, and one client (``http.client``, as the benches'
clients) asks it ``--requests`` times four ways: plain HTTP and HTTPS, each on one kept-alive
connection and on a new connection per request (as Session Desktop makes them: a full handshake,
an RSA-2048 signature on the server's side, each time). The client and the server share the
process (the client in a thread), so the times are both sides' work.

Run: ``python -m bench.tls [--requests 1000] [--size 14000]``.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import trio

from appchain.home.tls import client_context, make_certificate, server_context
from appchain.messaging.requests import Reply
from appchain.rpc.server import RpcLimits
from appchain.rpc.storage import StorageServer

BODY = b'{"method": "info", "params": {}}'


class ConstantStorage:
    """The storage RPC's place, answering every request with the same ``size``-byte JSON."""

    def __init__(self, size: int) -> None:
        self.reply = Reply(200, {"data": "a" * size})

    async def handle_body(self, body: bytes) -> Reply:
        return self.reply


def microseconds_per_request(port: int, requests: int, *, tls: bool, fresh: bool) -> float:
    context = client_context() if tls else None

    def connect() -> http.client.HTTPConnection:
        if context is not None:
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        return http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    connection = connect()
    started = time.perf_counter()
    for _ in range(requests):
        connection.request("POST", "/storage_rpc/v1", BODY, {"content-type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"bench: HTTP {response.status}")
        if fresh:
            connection.close()
            connection = connect()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed / requests * 1e6


async def measure(requests: int, size: int) -> dict[tuple[bool, bool], float]:
    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        pem_cert, pem_key = make_certificate()
        cert.write_bytes(pem_cert)
        key.write_bytes(pem_key)
        context = server_context(cert, key)
    node = SimpleNamespace(metrics=None, messages=SimpleNamespace(service=ConstantStorage(size)))
    times: dict[tuple[bool, bool], float] = {}
    async with trio.open_nursery() as nursery:
        ports = {}
        for tls in (False, True):
            server = StorageServer(node, RpcLimits(), tls=context if tls else None)
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1")
            )
            ports[tls] = listeners[0].socket.getsockname()[1]
        for fresh in (False, True):
            for tls in (False, True):
                ask = functools.partial(microseconds_per_request, ports[tls], requests, tls=tls, fresh=fresh)
                times[tls, fresh] = await trio.to_thread.run_sync(ask)
        nursery.cancel_scope.cancel()
    return times


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--size", type=int, default=14_000, help="answer bytes (a retrieve of 10 1-KB messages)"
    )
    args = parser.parse_args()
    times = trio.run(measure, args.requests, args.size)
    setup = f"one client, {args.size}-byte answers, {args.requests} each"
    print(f"the storage port's server in this process: {setup}")
    for fresh, label in ((False, "one kept-alive connection"), (True, "a new connection each")):
        plain, tls = times[False, fresh], times[True, fresh]
        print(f"  {label}:")
        print(f"    plain HTTP : {plain:8,.0f} µs a request")
        added = f"TLS adds {tls - plain:,.0f} µs; {plain / tls:.3f} of plain's rate"
        print(f"    HTTPS      : {tls:8,.0f} µs a request  ({added})")


if __name__ == "__main__":
    main()
