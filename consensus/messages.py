"""The messages service nodes exchange, one tagged union for the wire and the simulator alike.

Every message is a canonical :class:`~state.encoding.Record` with a tag, so one decoder reads
any of them (:func:`decode_message`), and a frame that is not exactly one valid message is
refused. Pulse's own messages (:class:`~consensus.pulse.PulseMessage`) and uptime proofs
(:class:`~consensus.uptime.UptimeProof`) are defined with their rules and joined here.

Who receives what: Pulse messages go to the members of the round's quorum, checkpoint votes to
the members of the checkpoint quorum (who aggregate them); blocks, certificates, state-change
votes, uptime proofs and transactions (one to a :class:`TxMessage`, or many to a :class:`TxBatch`)
are gossiped over a node's few gossip peers (:mod:`consensus.gossip`: the body to some, a
:class:`Have` of its hash to the others, who send a :class:`Want` if they lack it); sync requests
and a new node's :class:`ProofsRequest` go to a few peers, and the answer back to the asker. A
joining node's state sync (:mod:`consensus.statesync`) asks peers for their snapshot offers, the
certified checkpoints from genesis up to a snapshot, the headers just below it and the snapshot's
chunks, part by part.
"""

from __future__ import annotations

from typing import Annotated, Union

from msgspec import Meta

from consensus.checkpoint import CheckpointCertificate
from consensus.pulse import PulseMessage
from consensus.uptime import UptimeProof
from state.block import Block, Header
from state.encoding import Decoder, Record
from state.events import Transaction, Vote
from state.snapshot import SnapshotManifest
from state.types import U32, U64, BlsSignature, Hash32

SYNC_BATCH = 64
"""Most blocks in one :class:`SyncResponse`."""
LINK_BATCH = 64
"""Most checkpoints in one :class:`CheckpointsResponse`."""
HEADER_BATCH = 64
"""Most headers in one :class:`HeadersResponse`."""
TX_BATCH = 512
"""Most transactions in one :class:`TxBatch` (a full one is ~100 KB of transfers)."""
DIGEST_BATCH = 1_024
"""Most gossip digests in one :class:`Have` or :class:`Want`."""
PROOF_BATCH = 256
"""Most uptime proofs in one :class:`Proofs` (about 60 KB)."""


class SignedBlock(Record, frozen=True, tag="block"):
    """A block with its Pulse signatures, as its producer (or a syncing peer) sends it."""

    block: Block


class CheckpointVote(Record, frozen=True, tag="checkpoint_vote"):
    """One checkpoint quorum member's BLS signature over a checkpoint block."""

    height: U64
    block_hash: Hash32
    member: U32
    signature: BlsSignature


class Certified(Record, frozen=True, tag="certificate"):
    """An aggregated checkpoint certificate: the block at its height is final."""

    certificate: CheckpointCertificate


class VoteMessage(Record, frozen=True, tag="vote"):
    """An obligations-quorum validator's vote on a worker's new state."""

    quorum_height: U64
    worker_index: U32
    new_state: U32
    vote: Vote


class TxMessage(Record, frozen=True, tag="tx"):
    """A signed transaction on its way to the mempools and, through a producer, into a block."""

    tx: Transaction


class TxBatch(Record, frozen=True, tag="txs"):
    """Signed transactions on their way to the mempools, many to a frame: one decode and one
    frame hash for all of them (what a node's admin endpoint takes in one call goes out as one)."""

    txs: Annotated[tuple[Transaction, ...], Meta(min_length=1, max_length=TX_BATCH)]
    everyone: bool
    """The origin sent it to every node it knows (a full mesh): nobody passes it on, since every
    peer already has it. A false flag can only keep its sender's own transactions from spreading."""


class Have(Record, frozen=True, tag="have"):
    """Gossip the sender holds, by the hashes of its frames: a peer that lacks one asks for it
    with a :class:`Want` (:mod:`consensus.gossip`: bodies go to a few peers, hashes to the rest)."""

    digests: Annotated[tuple[Hash32, ...], Meta(min_length=1, max_length=DIGEST_BATCH)]


class Want(Record, frozen=True, tag="want"):
    """The frames of these hashes, please (announced by the peer in a :class:`Have`)."""

    digests: Annotated[tuple[Hash32, ...], Meta(min_length=1, max_length=DIGEST_BATCH)]


class ProofsRequest(Record, frozen=True, tag="proofs_request"):
    """The uptime proofs you accepted, please: how a node that just started (a fresh home among
    them) learns where every service node is from its first peers, rather than in a proof
    interval (an hour on mainnet) of gossip."""


class Proofs(Record, frozen=True, tag="proofs"):
    """Uptime proofs a node accepted, in answer to a :class:`ProofsRequest` (not gossip: they
    are checked as any proof, and never passed on)."""

    proofs: Annotated[tuple[UptimeProof, ...], Meta(max_length=PROOF_BATCH)]


class SyncRequest(Record, frozen=True, tag="sync_request"):
    """Blocks from ``from_height`` on, please (the asker's final height + 1)."""

    from_height: U64


class SyncResponse(Record, frozen=True, tag="sync_response"):
    """Up to :data:`SYNC_BATCH` consecutive blocks, and the certificates known from that height."""

    blocks: tuple[Block, ...]
    certificates: tuple[CheckpointCertificate, ...]


class SnapshotsRequest(Record, frozen=True, tag="snapshots_request"):
    """Which snapshot can you serve?"""


class SnapshotOffer(Record, frozen=True, tag="snapshot_offer"):
    """The newest snapshot this node serves (at a final checkpoint height), or None."""

    manifest: SnapshotManifest | None


class CheckpointLink(Record, frozen=True):
    """A certified checkpoint: its header, its certificate, and the encoded
    :class:`~state.checkpoints.CheckpointQuorum` that signed it (the one the previous checkpoint
    header committed to), which is all a light client needs to trust it."""

    header: Header
    certificate: CheckpointCertificate
    quorum: bytes


class CheckpointsRequest(Record, frozen=True, tag="checkpoints_request"):
    """Certified checkpoints from ``from_height`` (a checkpoint height) up, please."""

    from_height: U64


class CheckpointsResponse(Record, frozen=True, tag="checkpoints"):
    """Up to :data:`LINK_BATCH` consecutive checkpoints from the height asked (none: not held)."""

    links: tuple[CheckpointLink, ...]


class HeadersRequest(Record, frozen=True, tag="headers_request"):
    """The headers of heights ``from_height .. to_height``, please."""

    from_height: U64
    to_height: U64


class HeadersResponse(Record, frozen=True, tag="headers"):
    """The headers asked for, in height order (none: not held)."""

    headers: tuple[Header, ...]


class ChunkRequest(Record, frozen=True, tag="chunk_request"):
    """Part ``part`` of chunk ``index`` of the snapshot at ``height``, please."""

    height: U64
    index: U32
    part: U32


class ChunkResponse(Record, frozen=True, tag="chunk"):
    """A part of a snapshot chunk, and how many parts the chunk has (0: not held)."""

    height: U64
    index: U32
    part: U32
    parts: U32
    pairs: tuple[tuple[bytes, bytes], ...]


SYNC_REQUESTS = (SnapshotsRequest, CheckpointsRequest, HeadersRequest, ChunkRequest)
"""What a node answers from its store, for a joining node's state sync."""
SYNC_RESPONSES = (SnapshotOffer, CheckpointsResponse, HeadersResponse, ChunkResponse)

Message = Union[  # noqa: UP007 (a runtime union: msgspec decodes into it)
    PulseMessage,
    SignedBlock,
    CheckpointVote,
    Certified,
    VoteMessage,
    UptimeProof,
    TxMessage,
    TxBatch,
    Have,
    Want,
    ProofsRequest,
    Proofs,
    SyncRequest,
    SyncResponse,
    SnapshotsRequest,
    SnapshotOffer,
    CheckpointsRequest,
    CheckpointsResponse,
    HeadersRequest,
    HeadersResponse,
    ChunkRequest,
    ChunkResponse,
]

_message: Decoder[Message] = Decoder(Message)  # type: ignore[arg-type]


def decode_message(data: bytes) -> Message:
    """Decode one message or raise :class:`~state.encoding.DecodeError`."""
    message: Message = _message.decode(data)
    return message
