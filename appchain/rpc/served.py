"""What the public port reads of the node that serves it: :class:`PublicNode`.

The public port sits on a floor below the node (``appchain.rpc`` under ``appchain.node``), so it
never imports the node, not even to name its type: the node hands itself over when it starts the
port (:class:`~appchain.rpc.server.RpcServer`), and the port and the JSON-RPC methods see it
through this protocol. Each part is the object itself, typed by what it is (the chain, the
consensus core, the swarm layer…); the two the node owns on its own floor are seen through
small protocols of their own (the chain as the core's :class:`~consensus.ledger.Ledger`, the
metrics as a :class:`Meter`). The tests serve the methods from stand-ins with these parts
(``tests/helpers.served_node``).
"""

from __future__ import annotations

from typing import Any, Protocol

from appchain.home.chain import Chain
from appchain.home.home import NodeConfig
from appchain.messaging.layer import SwarmLayer
from appchain.rpc.jsonrpc import Served
from consensus.ledger import Ledger
from consensus.node import NodeCore
from state.view import Overlay


class Meter(Protocol):
    """Where the public port counts its calls and finds what ``/metrics`` serves (the node's
    :class:`~appchain.node.metrics.NodeMetrics`)."""

    def observe_call(self, method: str, outcome: str, seconds: float) -> None: ...

    def render(self) -> bytes: ...


class PublicNode(Served, Protocol):
    """The running node, as the public port and its JSON-RPC methods read it."""

    @property
    def config(self) -> NodeConfig: ...

    @property
    def chain(self) -> Chain:
        """The LevelDB chain: blocks, certificates, evidence and the proof window."""
        ...

    @property
    def ledger(self) -> Ledger:
        """The chain as the core runs on it: the tip's state, heights, hashes and roots."""
        ...

    @property
    def core(self) -> NodeCore:
        """The consensus core: this node's key, mempool, uptime proofs and Pulse record."""
        ...

    @property
    def messages(self) -> SwarmLayer:
        """The swarm layer: the storage RPC, onion requests and swarm members' requests."""
        ...

    @property
    def metrics(self) -> Meter | None:
        """None when the node keeps no metrics."""
        ...

    def progress(self) -> dict[str, Any]:
        """Why the chain moves or not (PROTOCOL.md §4a), as ``get_info`` shows it."""
        ...


def tip_view(node: PublicNode) -> Overlay:
    """The state at the node's tip, as the state's rules read it."""
    return Overlay(node.ledger.state.get)
