"""Events: the immutable facts a block carries, in order.

An event is a tagged frozen Struct; the tag is the first item of its encoding. Three kinds:

- *genesis events* (``Allocation``, ``FundRewardPool``, ``GenesisNode``, ``GenesisName``) are only
  valid in block 0, which is built from the genesis file through the normal ``apply_block`` path;
- *transactions* (``Transfer``, ``RegisterNode``, ``Contribute``, ``RequestUnlock``,
  ``ClaimRewards``, ``SnsBuy``, ``SnsUpdate``, ``SnsRenew``) are signed by their ``sender``'s
  Ed25519 key over ``H_tx(chain_id || encoding of the transaction with an empty signature)``: a
  signature is bound to one chain and one exact transaction, and the per-account nonce (strictly
  +1) stops a replay. Each pays a fee (its kind's base fee + a fee per encoded byte) into the
  reward pool;
- *network events* (``StateChange``) carry no sender and pay no fee: they are valid only with
  the signatures of the obligations quorum they name.

``validate_basic`` holds the stateless checks (shapes, amounts, signatures): they run when bytes
arrive from a peer or a user. Rules that need state run in the ``process_*`` functions.
"""

from __future__ import annotations

from enum import IntEnum

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

event_hasher = tagged_hasher(Domain.EVENT)
"""The event hash of an already encoded event (saves a second encoding on hot paths)."""
NO_SIGNATURE = Ed25519Signature(bytes(64))
MAX_SNS_VALUE_BYTES = 1024
MAX_FEE_BP = 10_000


# -- genesis events ----------------------------------------------------------------------------


class Allocation(Record, frozen=True, tag="alloc"):
    """Genesis: ``amount`` is credited to ``account``."""

    account: AccountKey
    amount: Atomic


class FundRewardPool(Record, frozen=True, tag="pool"):
    """Genesis: the reward pool starts with ``amount``."""

    amount: Atomic


class Contribution(Record, frozen=True):
    """One contributor's stake in a service node, and the height it was made at."""

    account: AccountKey
    amount: Atomic
    height: Height = Height(0)


class Reservation(Record, frozen=True):
    """A contributor spot the operator holds open for ``account``, with its minimum amount."""

    account: AccountKey
    amount: Atomic


class GenesisNode(Record, frozen=True, tag="gnode"):
    """Genesis: a fully staked service node, active from block 0.

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


# -- transactions ------------------------------------------------------------------------------


class Transfer(Record, frozen=True, tag="transfer"):
    """Move ``amount`` from ``sender`` to ``recipient``."""

    sender: AccountKey
    nonce: Nonce
    recipient: AccountKey
    amount: Atomic
    signature: Ed25519Signature = NO_SIGNATURE


class RegisterNode(Record, frozen=True, tag="register"):
    """The operator (``sender``) registers a node and stakes ``amount`` into it.

    ``reserved`` holds spots open for named contributors. The node becomes active in the block
    where its stakes reach the staking requirement (at once, if ``amount`` is all of it).
    """

    sender: AccountKey
    nonce: Nonce
    node_key: NodeKey
    bls_key: BlsPublicKey
    bls_pop: BlsSignature
    node_signature: Ed25519Signature
    operator_fee_bp: int
    amount: Atomic
    reserved: tuple[Reservation, ...] = ()
    signature: Ed25519Signature = NO_SIGNATURE


class Contribute(Record, frozen=True, tag="contribute"):
    """Stake ``amount`` into a node that is not yet fully funded."""

    sender: AccountKey
    nonce: Nonce
    node_key: NodeKey
    amount: Atomic
    signature: Ed25519Signature = NO_SIGNATURE


class RequestUnlock(Record, frozen=True, tag="unlock"):
    """A contributor asks for the node's exit (or, before activation, for its stake back)."""

    sender: AccountKey
    nonce: Nonce
    node_key: NodeKey
    signature: Ed25519Signature = NO_SIGNATURE


class ClaimRewards(Record, frozen=True, tag="claim"):
    """Move every reward accrued to ``sender`` into its balance."""

    sender: AccountKey
    nonce: Nonce
    signature: Ed25519Signature = NO_SIGNATURE


class SnsBuy(Record, frozen=True, tag="sns_buy"):
    """Buy a free (or expired) name for one period; the price goes to the reward pool."""

    sender: AccountKey
    nonce: Nonce
    name_hash: Bytes32
    encrypted_value: bytes
    owner: AccountKey
    backup_owner: AccountKey | None = None
    signature: Ed25519Signature = NO_SIGNATURE


class SnsUpdate(Record, frozen=True, tag="sns_update"):
    """The owner or backup owner (``sender``) replaces a record's value and/or owners.

    ``None`` keeps a field. ``prev_update_id`` must be the record's current update id, so a
    signed update applies to exactly the record its signer saw.
    """

    sender: AccountKey
    nonce: Nonce
    name_hash: Bytes32
    prev_update_id: Hash32
    encrypted_value: bytes | None = None
    owner: AccountKey | None = None
    backup_owner: AccountKey | None = None
    clear_backup_owner: bool = False
    signature: Ed25519Signature = NO_SIGNATURE


class SnsRenew(Record, frozen=True, tag="sns_renew"):
    """Anyone extends a live name by one period, paying the price."""

    sender: AccountKey
    nonce: Nonce
    name_hash: Bytes32
    signature: Ed25519Signature = NO_SIGNATURE


# -- network events ----------------------------------------------------------------------------


class NewState(IntEnum):
    """What an obligations quorum may decide about a worker."""

    DECOMMISSION = 0
    RECOMMISSION = 1
    DEREGISTER = 2
    IP_CHANGE_PENALTY = 3


class Vote(Record, frozen=True):
    """One quorum validator's vote: its index in the quorum, its reason bits, its signature."""

    validator_index: int
    reasons: int
    signature: Ed25519Signature


class StateChange(Record, frozen=True, tag="state_change"):
    """A state change for worker ``worker_index`` of the obligations quorum of ``quorum_height``."""

    quorum_height: Height
    worker_index: int
    new_state: int
    votes: tuple[Vote, ...]


GenesisEvent = Allocation | FundRewardPool | GenesisNode | GenesisName
Transaction = (
    Transfer | RegisterNode | Contribute | RequestUnlock | ClaimRewards | SnsBuy | SnsUpdate | SnsRenew
)
Event = (
    Allocation
    | FundRewardPool
    | GenesisNode
    | GenesisName
    | Transfer
    | RegisterNode
    | Contribute
    | RequestUnlock
    | ClaimRewards
    | SnsBuy
    | SnsUpdate
    | SnsRenew
    | StateChange
)

GENESIS_EVENTS = (Allocation, FundRewardPool, GenesisNode, GenesisName)
TRANSACTIONS = (Transfer, RegisterNode, Contribute, RequestUnlock, ClaimRewards, SnsBuy, SnsUpdate, SnsRenew)


def compute_event_hash(event: Event) -> Hash32:
    return event_hasher(encode(event))


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


def compute_vote_message(
    chain_id: str, quorum_height: int, worker_index: int, new_state: int, reasons: int
) -> Hash32:
    """What an obligations validator signs: chain, quorum height, worker, new state, reasons."""
    return hash_tagged(
        Domain.STATE_CHANGE_VOTE, encode((chain_id, quorum_height, worker_index, new_state, reasons))
    )


def validate_basic(event: Event, chain_id: str) -> None:
    """Stateless checks: shapes, amounts, signatures. Votes are checked against their quorum later."""
    if isinstance(event, TRANSACTIONS):
        _validate_transaction(event, chain_id)
    elif isinstance(event, Allocation | FundRewardPool):
        if event.amount <= 0:
            raise InvalidEvent("genesis amounts must be positive")
    elif isinstance(event, GenesisNode):
        validate_node_keys(event.node_key, event.bls_key, event.bls_pop, event.node_signature)
        _validate_fee_bp(event.operator_fee_bp)
        if not event.contributions or event.contributions[0].account != event.operator:
            raise InvalidEvent("the operator's contribution comes first")
        if any(c.amount <= 0 for c in event.contributions):
            raise InvalidEvent("contributions must be positive")
        if len({c.account for c in event.contributions}) != len(event.contributions):
            raise InvalidEvent("a contributor appears twice")
    elif isinstance(event, GenesisName):
        _validate_sns_value(event.encrypted_value)
    elif isinstance(event, StateChange):
        if event.new_state not in NewState.__members__.values():
            raise InvalidEvent(f"unknown new state {event.new_state}")
        indices = [vote.validator_index for vote in event.votes]
        if len(set(indices)) != len(indices):
            raise InvalidEvent("a validator voted twice")


def _validate_transaction(tx: Transaction, chain_id: str) -> None:
    """The sender's signature first: it is what a flood of forged transactions fails, and no
    other work (a registration's node-key proofs cost ~50 signature checks) is spent
    on one. The order changes which error a doubly bad transaction reports, never whether a
    transaction is valid."""
    if not ed25519.verify(tx.sender, compute_signing_message(chain_id, tx), tx.signature):
        raise InvalidSignature(f"{type(tx).__name__} signature does not verify for the sender")
    if tx.nonce <= 0:
        raise InvalidEvent("a transaction nonce starts at 1")
    if isinstance(tx, Transfer | Contribute) and tx.amount <= 0:
        raise InvalidEvent("amount must be positive")
    if isinstance(tx, RegisterNode):
        validate_node_keys(tx.node_key, tx.bls_key, tx.bls_pop, tx.node_signature)
        _validate_fee_bp(tx.operator_fee_bp)
        if tx.amount <= 0 or any(r.amount <= 0 for r in tx.reserved):
            raise InvalidEvent("stakes must be positive")
        accounts = [tx.sender, *(r.account for r in tx.reserved)]
        if len(set(accounts)) != len(accounts):
            raise InvalidEvent("a reserved spot names the operator or another spot's account")
    if isinstance(tx, SnsBuy):
        _validate_sns_value(tx.encrypted_value)
    if isinstance(tx, SnsUpdate):
        if tx.encrypted_value is not None:
            _validate_sns_value(tx.encrypted_value)
        if tx.clear_backup_owner and tx.backup_owner is not None:
            raise InvalidEvent("an update cannot both set and clear the backup owner")
        if (
            tx.encrypted_value is None
            and tx.owner is None
            and tx.backup_owner is None
            and not tx.clear_backup_owner
        ):
            raise InvalidEvent("an update must change something")


def _validate_fee_bp(fee_bp: int) -> None:
    if not 0 <= fee_bp <= MAX_FEE_BP:
        raise InvalidEvent("operator fee must be 0..10000 basis points")


def _validate_sns_value(value: bytes) -> None:
    if not 0 < len(value) <= MAX_SNS_VALUE_BYTES:
        raise InvalidEvent(f"an SNS value is 1..{MAX_SNS_VALUE_BYTES} bytes")


def validate_node_keys(node_key: bytes, bls_key: bytes, bls_pop: bytes, node_signature: bytes) -> None:
    """The node key signed ``node_key || bls_key`` and the BLS key comes with a valid PoP."""
    if not ed25519.verify(node_key, compute_node_proof_message(node_key, bls_key), node_signature):
        raise InvalidSignature("node key signature over node key || BLS key does not verify")
    if not bls.verify_possession(bls_key, bls_pop):
        raise InvalidSignature("BLS proof of possession does not verify")
