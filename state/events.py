"""Events: the immutable facts a block carries, in order.

An event is a tagged frozen Struct; the tag is the first item of its encoding. Two kinds:

- *genesis events* (``Allocation``, ``FundRewardPool``, ``GenesisNode``, ``GenesisName``) are only
  valid in block 0, which is built from the genesis file through the normal ``apply_block`` path;
- *transactions* (``Transfer``) are signed by an account's Ed25519 key over
  ``H_tx(chain_id || encoding of the transaction with an empty signature)``, so a signature is
  bound to one chain and one exact transaction, and the per-account nonce (strictly +1) stops a
  replay.

``validate_basic`` holds the stateless checks (shapes, amounts, signatures): they run when bytes
arrive from a peer or a user. Rules that need state run in the ``process_*`` functions.
"""

from __future__ import annotations

import msgspec

from state.crypto import bls, ed25519
from state.encoding import Record, encode
from state.errors import InvalidEvent, InvalidSignature
from state.hashing import Domain, hash_tagged, tagged_hasher
from state.types import (
    AccountKey,
    Atomic,
    BlsPublicKey,
    BlsSignature,
    Bytes32,
    Ed25519Signature,
    Hash32,
    Height,
    NodeKey,
    Nonce,
)

_event_hash = tagged_hasher(Domain.EVENT)
NO_SIGNATURE = Ed25519Signature(bytes(64))


class Allocation(Record, frozen=True, tag="alloc"):
    """Genesis: ``amount`` is credited to ``account``."""

    account: AccountKey
    amount: Atomic


class FundRewardPool(Record, frozen=True, tag="pool"):
    """Genesis: the reward pool starts with ``amount``."""

    amount: Atomic


class Contribution(Record, frozen=True):
    """One contributor's stake in a service node."""

    account: AccountKey
    amount: Atomic


class GenesisNode(Record, frozen=True, tag="gnode"):
    """Genesis: a fully staked, active service node.

    ``node_signature`` is the node key's Ed25519 signature over ``node_key || bls_key`` (the
    operator controls the node); ``bls_pop`` proves possession of the BLS key. The stakes are
    minted into the node, not taken from balances: the genesis supply counts them.
    """

    node_key: NodeKey
    bls_key: BlsPublicKey
    bls_pop: BlsSignature
    node_signature: Ed25519Signature
    operator: AccountKey
    operator_fee_bp: int
    contributions: tuple[Contribution, ...]


class GenesisName(Record, frozen=True, tag="gname"):
    """Genesis: an SNS record (name hash, encrypted Session ID, owners, expiry height)."""

    name_hash: Bytes32
    encrypted_value: bytes
    owner: AccountKey
    backup_owner: AccountKey | None
    expiry_height: Height


class Transfer(Record, frozen=True, tag="transfer"):
    """Move ``amount`` from ``sender`` to ``recipient``; signed by ``sender``."""

    sender: AccountKey
    nonce: Nonce
    recipient: AccountKey
    amount: Atomic
    signature: Ed25519Signature = NO_SIGNATURE


GenesisEvent = Allocation | FundRewardPool | GenesisNode | GenesisName
Transaction = Transfer
Event = Allocation | FundRewardPool | GenesisNode | GenesisName | Transfer

GENESIS_EVENTS = (Allocation, FundRewardPool, GenesisNode, GenesisName)


def compute_event_hash(event: Event) -> Hash32:
    return _event_hash(encode(event))


def compute_signing_message(chain_id: str, tx: Transaction) -> Hash32:
    """The 32 bytes an account signs: chain id and the transaction minus its signature."""
    unsigned = msgspec.structs.replace(tx, signature=NO_SIGNATURE)
    return hash_tagged(Domain.TX_SIGNING, encode(chain_id) + encode(unsigned))


def sign_transaction(chain_id: str, tx: Transaction, key: ed25519.SigningKey) -> Transaction:
    if key.public_key != tx.sender:
        raise ValueError("the signing key is not the transaction's sender")
    return msgspec.structs.replace(tx, signature=key.sign(compute_signing_message(chain_id, tx)))


def compute_node_proof_message(node_key: bytes, bls_key: bytes) -> bytes:
    """What a node key signs to bind its BLS key (and so the registration) to itself."""
    return bytes(node_key) + bytes(bls_key)


def validate_basic(event: Event, chain_id: str) -> None:
    """Stateless checks: positive amounts, well-formed keys, valid signatures."""
    if isinstance(event, Transfer):
        if event.amount <= 0:
            raise InvalidEvent("transfer amount must be positive")
        if event.nonce <= 0:
            raise InvalidEvent("a transaction nonce starts at 1")
        if not ed25519.verify(event.sender, compute_signing_message(chain_id, event), event.signature):
            raise InvalidSignature("transfer signature does not verify for the sender")
    elif isinstance(event, Allocation | FundRewardPool):
        if event.amount <= 0:
            raise InvalidEvent("genesis amounts must be positive")
    elif isinstance(event, GenesisNode):
        validate_node_keys(event.node_key, event.bls_key, event.bls_pop, event.node_signature)
        if not 0 <= event.operator_fee_bp <= 10_000:
            raise InvalidEvent("operator fee must be 0..10000 basis points")
        if not event.contributions or event.contributions[0].account != event.operator:
            raise InvalidEvent("the operator's contribution comes first")
        if any(c.amount <= 0 for c in event.contributions):
            raise InvalidEvent("contributions must be positive")
        if len({c.account for c in event.contributions}) != len(event.contributions):
            raise InvalidEvent("a contributor appears twice")
    elif isinstance(event, GenesisName) and not 0 < len(event.encrypted_value) <= 1024:
        raise InvalidEvent("an SNS value is 1..1024 bytes")


def validate_node_keys(node_key: bytes, bls_key: bytes, bls_pop: bytes, node_signature: bytes) -> None:
    """The node key signed ``node_key || bls_key`` and the BLS key comes with a valid PoP."""
    if not ed25519.verify(node_key, compute_node_proof_message(node_key, bls_key), node_signature):
        raise InvalidSignature("node key signature over node key || BLS key does not verify")
    if not bls.verify_possession(bls_key, bls_pop):
        raise InvalidSignature("BLS proof of possession does not verify")
