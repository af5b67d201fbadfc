"""What talks to nodes from outside: no node, no database, no event loop.

- :mod:`~appchain.client.lightclient`: the light client, which believes only what it verifies
  (checkpoint certificates from a trusted start, hash links, state proofs);
- :mod:`~appchain.client.wallet`: amounts, nonces, sending a transaction and waiting until the
  light client proves it final;
- :mod:`~appchain.client.messages`: the Session message client (signed requests, onion routes
  through three nodes);
- :mod:`~appchain.client.http`: the one request helper of them all.

May import: :mod:`appchain.messaging` and :mod:`appchain.home` (and state, genesis, consensus,
p2p); not :mod:`appchain.rpc`, which is on the same floor. ``tests/test_layering.py`` checks that
the light client and the wallet load neither LevelDB, trio nor h11, nor anything of the node.
Start reading: :class:`~appchain.client.lightclient.VerifyingClient`.
"""
