"""Named parts of the state map, for proofs: which key a light client asks for, and how to read
the value it gets back.

Each namespace is a key prefix followed by a 32-byte identifier:

=========  ==========================  ===========================================
namespace  identifier                  value
=========  ==========================  ===========================================
account    account key (Ed25519)       :class:`~state.ledger.Account` (absent: 0)
reward     account key                 :class:`~state.ledger.RewardAccount`
node       service node key            :class:`~state.noderecords.ServiceNode`
sns        name hash (blake2b-256)     :class:`~state.sns.NameRecord`
=========  ==========================  ===========================================
"""

from __future__ import annotations

from typing import Any

from state.encoding import Decoder
from state.ledger import ACCOUNT_PREFIX, REWARD_PREFIX, Account, RewardAccount
from state.noderecords import ServiceNode
from state.nodes import NODE_PREFIX
from state.sns import NAME_PREFIX, NameRecord

NAMESPACES: dict[str, tuple[bytes, Decoder[Any]]] = {
    "account": (ACCOUNT_PREFIX, Decoder(Account)),
    "reward": (REWARD_PREFIX, Decoder(RewardAccount)),
    "node": (NODE_PREFIX, Decoder(ServiceNode)),
    "sns": (NAME_PREFIX, Decoder(NameRecord)),
}
IDENTIFIER_SIZE = 32


def state_key(namespace: str, identifier: bytes) -> bytes:
    """The state map key of ``identifier`` in ``namespace``; ``ValueError`` if either is wrong."""
    if namespace not in NAMESPACES:
        raise ValueError(f"unknown namespace {namespace!r}: one of {', '.join(NAMESPACES)}")
    if len(identifier) != IDENTIFIER_SIZE:
        raise ValueError(f"a {namespace} key is {IDENTIFIER_SIZE} bytes, not {len(identifier)}")
    return NAMESPACES[namespace][0] + identifier


def decode_value(namespace: str, raw: bytes) -> Any:
    """The record stored under a key of ``namespace`` (``DecodeError`` if it is not one)."""
    return NAMESPACES[namespace][1].decode(raw)
