"""The lab: local networks to run, break and check.

- :mod:`~appchain.lab.testnet`: N node homes for a local network, starting and polling their
  processes; :mod:`~appchain.lab.devnet`: ``appchain devnet``, those processes with a live view;
- :mod:`~appchain.lab.namespaces`: a network namespace per node, joined by a bridge, and the
  faults cut into them; :mod:`~appchain.lab.netns`: a testnet's nodes each in its namespace;
  :mod:`~appchain.lab.relay`: the delay and loss relay; :mod:`~appchain.lab.nemesis`:
  randomized fault schedules, run and recorded;
- :mod:`~appchain.lab.checker`: what must never happen, checked over every node's history.

May import: :mod:`appchain.node` and every floor below it (and state, genesis, consensus, p2p).
Start reading: :func:`~appchain.lab.testnet.write_testnet`, then
:class:`~appchain.lab.netns.NetnsTestnet`.
"""
