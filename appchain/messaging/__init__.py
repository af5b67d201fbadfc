"""The swarm layer: Session message storage on the service nodes, following the chain (the
server side; the client library is :mod:`appchain.client.messages`, ``docs/storage.md``).

- :mod:`~appchain.messaging.layer`: the layer a node runs: it follows the final blocks' swarms,
  replicates to its swarm and hands messages over when swarms change;
- :mod:`~appchain.messaging.rpc`: the storage RPC (``POST /storage_rpc/v1``), as
  session-storage-server answers it; :mod:`~appchain.messaging.requests` reads a request as that
  server does, :mod:`~appchain.messaging.auth` says who may act on an account, and
  :mod:`~appchain.messaging.swarm` is the swarm the RPC answers for;
- :mod:`~appchain.messaging.store`: the message store; :mod:`~appchain.messaging.onion`: onion
  requests; :mod:`~appchain.messaging.http`: the node-to-node HTTP client.

May import: :mod:`appchain.home` (and state, genesis, consensus, p2p). Start reading:
:class:`~appchain.messaging.layer.SwarmLayer`, then
:class:`~appchain.messaging.rpc.StorageService`.
"""
