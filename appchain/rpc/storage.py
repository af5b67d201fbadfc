"""The storage port: what Session clients and other service nodes reach, over HTTPS, as they reach a
session-storage-server (``oxenss/server/https.cpp``).

Routes, as the storage server's:

- ``POST /storage_rpc/v1``: the storage RPC (:mod:`appchain.messaging.rpc`);
- ``POST /onion_req/v2``: onion requests (:mod:`appchain.messaging.onion`);
- ``POST /ping_test/v1``: a reachability test; 200 with an empty body and the node's key in
  ``X-Oxen-Snode-Pubkey`` (base64 of its legacy key, which is its Ed25519 key here), as the
  storage server answers another node's test;
- ``GET /get_stats/v1``: ``{"version": "2.8.0"}`` (deprecated there in favour of the ``info``
  method; answered because clients still ask it);
- ``POST /storage_cc/v1``: a swarm member's request (:data:`appchain.messaging.layer.PEER_PATH`;
  the storage server carries these over OxenMQ, which this node does not speak), counted per node
  key when its signature verifies;
- anything else: 404 ``<METHOD> <path> Not Found``, as the storage server words it.

The connections and requests are those of :class:`appchain.rpc.server.RpcServer`: the same
``[rpc]`` limits per remote address, counted apart from the RPC port's (``/metrics``:
``appchain_storage_refused``), the same deadlines, and the same boundary (an exception no handler
expected costs its connection, counted at place ``storage``). The TLS certificate is the home's
self-signed pair (:mod:`appchain.home.tls`); a failed handshake costs one connection.
"""

from __future__ import annotations

import base64

import trio

from appchain.messaging.layer import PEER_PATH
from appchain.messaging.onion import ONION_PATH
from appchain.messaging.rpc import MAX_REQUEST_BODY, VERSION
from appchain.rpc.exchange import Exchange, Request
from appchain.rpc.jsonrpc import serve_on
from appchain.rpc.server import STORAGE_RPC_PATH, Client, RpcServer

PING_PATH = "/ping_test/v1"
STATS_PATH = "/get_stats/v1"
STORAGE_MAX_BODY = MAX_REQUEST_BODY
"""The storage server's ``MAX_REQUEST_BODY_SIZE`` (10 MiB); 413 "Request body too large" beyond."""
SNODE_PUBKEY_HEADER = "X-Oxen-Snode-Pubkey"


class StorageServer(RpcServer):
    """Serves the storage port's connections (see the module docstring)."""

    PLACE = "storage"
    PEER_TARGETS = (PEER_PATH,)
    body_limit = STORAGE_MAX_BODY

    async def _route(
        self, exchange: Exchange, request: Request, target: str, body: bytes, client: Client
    ) -> None:
        messages, method = self.node.messages, request.method
        if method == b"POST" and target == STORAGE_RPC_PATH:
            reply = await messages.service.handle_body(body)
            await exchange.respond(reply.status, *reply.encode())
        elif method == b"POST" and target == ONION_PATH:
            await exchange.respond(*await messages.onion.handle(body))
        elif method == b"POST" and target == PEER_PATH:
            fields = dict(request.headers)
            reply = await messages.handle_peer(
                body,
                fields.get(b"x-node-key", b"").decode("latin-1"),
                fields.get(b"x-node-signature", b"").decode("latin-1"),
            )
            await exchange.respond(reply.status, *reply.encode())
        elif method == b"POST" and target == PING_PATH:
            key = base64.b64encode(bytes(messages.node_key.public_key)).decode()
            await exchange.respond(200, b"", "text/plain", (SNODE_PUBKEY_HEADER, key))
        elif method == b"GET" and target == STATS_PATH:
            version = ".".join(str(part) for part in VERSION)
            await exchange.respond(200, f'{{"version":"{version}"}}'.encode(), "application/json")
        else:
            text = f"{method.decode('latin-1')} {target} Not Found"
            await exchange.respond(404, text.encode("utf-8", "backslashreplace"), "text/plain")


async def serve_storage(
    server: StorageServer, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on the node's storage address (``[storage] listen``) and serve each connection with
    ``server`` (made by the node with the home's TLS context; its refusals are in ``/metrics``)."""
    await serve_on(server.node.config.storage_address, server.serve, task_status=task_status)
