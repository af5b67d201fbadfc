"""A node's home: its folder and everything kept in it.

- :mod:`~appchain.home.home`: the folder (``config.toml``, ``keys/``, ``genesis.json``,
  ``data/``): :class:`~appchain.home.home.Home` and :class:`~appchain.home.home.NodeConfig`;
- :mod:`~appchain.home.store`: the LevelDB store, which owns and documents the whole keyspace
  (event log, headers, deltas, snapshots, certificates, evidence; one write batch per block);
- :mod:`~appchain.home.chain`: the chain kept in step with the store: loading, replay, append,
  rollback, every root and delta checked; :mod:`~appchain.home.history`: the proof window;
- :mod:`~appchain.home.guard`: one process per home (read-only commands share the lock and a
  starting node waits them out);
- :mod:`~appchain.home.exchange`: export and import of the event log;
  :mod:`~appchain.home.genesis_export`: the state at a final height as a new genesis;
  :mod:`~appchain.home.genesis_files`: genesis files and dev keys;
- :mod:`~appchain.home.tls`: the storage port's self-signed certificate, and the TLS contexts
  that serve and reach storage ports;
- :mod:`~appchain.home.keyfile` and :mod:`~appchain.home.safefile`: key files, and the one rule
  for every file a command writes;
- :mod:`~appchain.home.boundary`: where the node's listeners and tasks catch what their handlers
  did not expect (here, on the lowest floor, because every floor that serves imports it).

May import: state, genesis, consensus, p2p; nothing else of appchain (it is the lowest floor).
Start reading: :mod:`~appchain.home.store` (its keyspace table), then
:func:`appchain.home.chain.load_state` and :func:`~appchain.home.chain.replay_blocks`.
"""
