"""The messages service nodes exchange, one tagged union for the wire and the simulator alike.

Every message is a canonical :class:`~state.encoding.Record` with a tag, so one decoder reads
any of them (:func:`decode_message`), and a frame that is not exactly one valid message is
refused. Pulse's own messages (:class:`~consensus.pulse.PulseMessage`) and uptime proofs
(:class:`~consensus.uptime.UptimeProof`) are defined with their rules and joined here.

Who receives what: Pulse messages go to the members of the round's quorum, checkpoint votes to
the members of the checkpoint quorum (who aggregate them); blocks, certificates, state-change
votes, uptime proofs and transactions are gossiped to every peer; sync requests go to a few
peers, and the answer back to the asker.
"""

from __future__ import annotations

from typing import Union

from consensus.checkpoint import CheckpointCertificate
from consensus.pulse import PulseMessage
from consensus.uptime import UptimeProof
from state.block import Block
from state.encoding import Decoder, Record
from state.events import Transaction, Vote
from state.types import BlsSignature, Hash32

SYNC_BATCH = 64
"""Most blocks in one :class:`SyncResponse`."""


class SignedBlock(Record, frozen=True, tag="block"):
    """A block with its Pulse signatures, as its producer (or a syncing peer) sends it."""

    block: Block


class CheckpointVote(Record, frozen=True, tag="checkpoint_vote"):
    """One checkpoint quorum member's BLS signature over a checkpoint block."""

    height: int
    block_hash: Hash32
    member: int
    signature: BlsSignature


class Certified(Record, frozen=True, tag="certificate"):
    """An aggregated checkpoint certificate: the block at its height is final."""

    certificate: CheckpointCertificate


class VoteMessage(Record, frozen=True, tag="vote"):
    """An obligations-quorum validator's vote on a worker's new state."""

    quorum_height: int
    worker_index: int
    new_state: int
    vote: Vote


class TxMessage(Record, frozen=True, tag="tx"):
    """A signed transaction on its way to the mempools and, through a producer, into a block."""

    tx: Transaction


class SyncRequest(Record, frozen=True, tag="sync_request"):
    """Blocks from ``from_height`` on, please (the asker's final height + 1)."""

    from_height: int


class SyncResponse(Record, frozen=True, tag="sync_response"):
    """Up to :data:`SYNC_BATCH` consecutive blocks, and the certificates known from that height."""

    blocks: tuple[Block, ...]
    certificates: tuple[CheckpointCertificate, ...]


Message = Union[  # noqa: UP007 (a runtime union: msgspec decodes into it)
    PulseMessage,
    SignedBlock,
    CheckpointVote,
    Certified,
    VoteMessage,
    UptimeProof,
    TxMessage,
    SyncRequest,
    SyncResponse,
]

_message: Decoder[Message] = Decoder(Message)  # type: ignore[arg-type]


def decode_message(data: bytes) -> Message:
    """Decode one message or raise :class:`~state.encoding.DecodeError`."""
    message: Message = _message.decode(data)
    return message
