"""The node: it wires every other package (state, genesis, consensus, p2p) into a process, its
folder, its ports, its clients, its test networks and its command.

It is a building of rooms, each a package a reader comes to for one thing. From the top floor
down, a room imports only rooms on the floors below it (``tests/test_layering.py`` checks it,
and that no two files import each other, even in a function or under ``TYPE_CHECKING``):

========================  =========================================================================
:mod:`appchain.cli`       the ``appchain`` command
:mod:`appchain.lab`       local networks: testnets, the devnet, namespaced hosts, faults, the checker
:mod:`appchain.node`      the running node: the consensus core driven over p2p and the chain
:mod:`appchain.rpc`       the public ports: HTTP, the JSON-RPC methods, the network page; the
                          storage port (HTTPS)
:mod:`appchain.client`    what talks to nodes from outside: light client, wallet, message client
                          (on one floor with ``rpc``; neither imports the other)
:mod:`appchain.messaging` the swarm layer (server side): message store, storage RPC, onion requests
:mod:`appchain.home`      a node's folder: config, keys, the LevelDB store and the chain kept in
                          step with it, export and import
========================  =========================================================================

The servers (the public port, the JSON-RPC methods, the admin endpoint, ``/metrics``) never
import the node: the node hands itself over when it starts them, and each reads it through a
small protocol of the parts it needs (:class:`appchain.rpc.served.PublicNode`,
:class:`appchain.node.admin.AdminNode`, :class:`appchain.node.metrics.MeteredNode`).

Start with :mod:`appchain.node.node` for the process, :mod:`appchain.home.chain` for the log and
the state kept in step, :mod:`appchain.cli.main` for the commands.
"""
