"""The public ports: the node's HTTP servers, its JSON-RPC methods and the network page.

- :mod:`~appchain.rpc.server`: the HTTP server with its limits per address, and the RPC
  port's routes (``/json_rpc``, ``/metrics``, ``/``), plain HTTP;
- :mod:`~appchain.rpc.exchange`: one connection's HTTP/1.1 (httptools parses; the answers and
  keep-alive as h11 made them);
- :mod:`~appchain.rpc.tlsstream`: the storage port's TLS connections (OpenSSL on the socket,
  trio waiting for it);
- :mod:`~appchain.rpc.storage`: the storage port, the same server over TLS with the storage
  server's routes (the storage RPC, onion requests, ``ping_test``, ``get_stats``, the swarm
  members' requests);
- :mod:`~appchain.rpc.methods`: the table of public methods and how a body's calls reach them;
  the methods by what they answer for: :mod:`~appchain.rpc.blocks`, :mod:`~appchain.rpc.nodes`,
  :mod:`~appchain.rpc.accounts`, :mod:`~appchain.rpc.names`, :mod:`~appchain.rpc.proofs`,
  :mod:`~appchain.rpc.evidence` (``docs/rpc.md``);
- :mod:`~appchain.rpc.jsonrpc`: JSON-RPC 2.0 shared with the admin endpoint (typed, bounded
  parameters; each call a boundary);
- :mod:`~appchain.rpc.served`: what the port reads of the node that serves it
  (:class:`~appchain.rpc.served.PublicNode`);
- ``static/network.html``: the network page, built on the public JSON-RPC only.

May import: :mod:`appchain.messaging` and :mod:`appchain.home` (and state, genesis, consensus,
p2p). Never the node, not even to name its type: the node hands itself over when it starts the
port. Start reading: :class:`~appchain.rpc.server.RpcServer`, then
:data:`~appchain.rpc.methods.METHODS`.
"""
