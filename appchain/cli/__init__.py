"""The ``appchain`` command (``python -m appchain.cli`` runs it too).

- :mod:`~appchain.cli.main`: the grammar and :func:`~appchain.cli.main.main`, which turns each
  error a user can cause into one line and an exit status (:mod:`~appchain.cli.results`);
- the commands, by the room they work with: :mod:`~appchain.cli.home` (genesis files, init,
  replay, export and import, rollback, dev-chain), :mod:`~appchain.cli.node` (start, status),
  :mod:`~appchain.cli.lab` (testnet, devnet, check-histories, simulate) and
  :mod:`~appchain.cli.client` (keys, tx, query, msg: no home needed);
- the development tools: :mod:`~appchain.cli.devchain` (signed random chains),
  :mod:`~appchain.cli.simulate` (the simulator's genesis), :mod:`~appchain.cli.progress`.

May import: every room of appchain (it is the top floor). Start reading:
:func:`~appchain.cli.main.build_parser`.
"""
