"""The swarm as the storage RPC sees it: its members, where they are, and who owns an account.

The chain decides the swarms (:mod:`state.swarms`); the swarm layer follows its final blocks and
answers the storage RPC's questions through a :class:`Directory`. A request that changes an
account's messages is applied by the member that received it and sent on to every other member
(:data:`Forward`), each of which checks it again and answers for itself, or fails
(:class:`PeerFailed`). ``oxend_request`` reaches the node's own JSON-RPC through :data:`Oxend`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from state.crypto import ed25519


@dataclass(frozen=True)
class Member:
    """A swarm member as ``get_swarm`` lists it.

    The storage server also lists ``port_omq`` and ``port_quic`` (its OxenMQ and QUIC port, one
    port). This node speaks neither (its p2p port is Noise, not OxenMQ), so both are 0, the value
    oxend gives a port it does not know (``storage_lmq_port`` in ``get_service_nodes`` is 0 too):
    no port is announced that would answer nothing a client understands, and a client that reads
    the keys (the storage server's own network-tests build every address from ``port_omq``) still
    finds them. The storage port (HTTPS) is ``port_https`` and ``port``."""

    ed25519: bytes
    ip: str
    port_https: int

    @property
    def x25519(self) -> bytes:
        return ed25519.x25519_public(self.ed25519)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": "",
            "pubkey_legacy": self.ed25519.hex(),
            "pubkey_x25519": self.x25519.hex(),
            "pubkey_ed25519": self.ed25519.hex(),
            "port": str(self.port_https),
            "port_https": self.port_https,
            "port_omq": 0,
            "port_quic": 0,
            "ip": self.ip,
        }


class Directory(Protocol):
    """What the layer knows of the swarms, from the chain (:mod:`appchain.messaging.layer`)."""

    def owning_swarm(self, owner: bytes) -> int | None: ...
    def members(self, swarm_id: int) -> Sequence[Member]: ...
    def my_swarm(self) -> int | None: ...
    def height(self) -> int: ...


Forward = Callable[[Member, str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Send a recursive request to another member; its JSON result, or an exception."""


Oxend = Callable[[str, dict[str, Any]], dict[str, Any]]
"""The node's own JSON-RPC, for ``oxend_request``: raises ``ValueError`` with oxend's message."""


OXEND_ENDPOINTS = ("get_service_nodes", "ons_resolve")


class PeerFailed(Exception):
    """Another node answered a node-to-node request with an error (its HTTP status and text)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
