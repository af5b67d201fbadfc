"""The running node: the consensus core driven over p2p and the LevelDB chain.

- :mod:`~appchain.node.node`: :class:`~appchain.node.node.Node`, the core's trio driver: frames
  in, actions out, gossip, peers, the servers it starts; :mod:`~appchain.node.run`: ``appchain
  start`` (the home's lock, state sync, signals); :mod:`~appchain.node.settings`: what
  config.toml sets for its parts; :mod:`~appchain.node.log`: its log lines;
- :mod:`~appchain.node.ledger`: the chain as the core's ledger; :mod:`~appchain.node.inbox`: the
  frames waiting, bounded per peer; :mod:`~appchain.node.statesync`: joining at a verified
  snapshot, and answering others; :mod:`~appchain.node.journal`: the history of what it
  finalized and signed;
- :mod:`~appchain.node.admin`: the operator's endpoint (and its client,
  :func:`~appchain.node.admin.call`); :mod:`~appchain.node.metrics`: ``/metrics`` and the
  signature clock. Both read the node through a protocol of their own and do not import it.

May import: :mod:`appchain.rpc`, :mod:`appchain.client`, :mod:`appchain.messaging`,
:mod:`appchain.home` (and state, genesis, consensus, p2p). Start reading:
:meth:`appchain.node.node.Node.run`, then :meth:`~appchain.node.node.Node.carry_out`.
"""
