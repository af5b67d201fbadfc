"""Checkpoint quorums in the state, and the header's commitment to the next one.

Every ``checkpoint_interval`` blocks (a chain parameter, :class:`~state.params.ChainParams`;
mainnet 4, called ``k`` below) a checkpoint quorum signs the block with BLS; two thirds of it
make a certificate, and a certified block is final (:mod:`consensus.checkpoint`). Everything
that needs the interval (the state, consensus, state sync, the light client, the RPC and the
store) reads it from the chain's parameters; there is no constant.

At the end of each checkpoint height ``h`` (block 0 included) the state draws the quorum that
will sign checkpoint ``h + k``: the active nodes after block ``h``, sorted by key, sampled by a
:class:`~state.sampler.Sampler` tagged ``checkpoint`` seeded with ``h``'s parent hash and
``h + k``: 20 of them (all if fewer). It keeps them (node and BLS keys) under
``ckq/<h + k>``, and the header of ``h`` carries ``next_checkpoint_quorum``: the tagged hash of
their BLS keys in quorum order. So a light client that trusts header ``h`` knows exactly which
keys may certify ``h + k``, and can walk from genesis certificate by certificate.
"""

from __future__ import annotations

from collections.abc import Sequence

from state.context import BlockContext
from state.encoding import Decoder, Record, encode
from state.hashing import hash_tagged
from state.nodeindex import node_lists
from state.nodes import get_node
from state.sampler import Sampler
from state.types import BlsPublicKey, Hash32, NodeKey
from state.view import Overlay

CHECKPOINT_QUORUM_SIZE = 20
QUORUMS_KEPT = 64
"""Checkpoint quorums kept in the state (64 checkpoints: 256 blocks on mainnet), so late
certificates can still be checked."""
CHECKPOINT_QUORUM_PREFIX = b"ckq/"
NO_COMMITMENT = Hash32(bytes(32))


class CheckpointMember(Record, frozen=True):
    node_key: NodeKey
    bls_key: BlsPublicKey


class CheckpointQuorum(Record, frozen=True):
    height: int
    members: tuple[CheckpointMember, ...]


_quorum = Decoder(CheckpointQuorum)


def is_checkpoint_height(height: int, interval: int) -> bool:
    """Whether ``height`` is a checkpoint of a chain whose ``checkpoint_interval`` is ``interval``."""
    return height % interval == 0


def checkpoint_quorum_key(height: int) -> bytes:
    return CHECKPOINT_QUORUM_PREFIX + height.to_bytes(8, "big")


def select_checkpoint_members(active: Sequence[NodeKey], seed: bytes) -> list[NodeKey]:
    """The checkpoint quorum drawn from ``active``: 20 of them (all if fewer)."""
    return draw_checkpoint_members(sorted(active), seed)


def draw_checkpoint_members(sorted_active: Sequence[NodeKey], seed: bytes) -> list[NodeKey]:
    """:func:`select_checkpoint_members` of active nodes already sorted by key (a node index's)."""
    return Sampler("checkpoint", seed).sample(sorted_active, CHECKPOINT_QUORUM_SIZE)


def compute_checkpoint_seed(prev_hash: bytes, checkpoint_height: int) -> bytes:
    return bytes(prev_hash) + checkpoint_height.to_bytes(8, "big")


def compute_quorum_commitment(bls_keys: Sequence[bytes]) -> Hash32:
    return hash_tagged("checkpoint quorum", encode([bytes(k) for k in bls_keys]))


def decode_checkpoint_quorum(raw: bytes) -> CheckpointQuorum:
    return _quorum.decode(raw)


def get_checkpoint_quorum(view: Overlay, height: int) -> CheckpointQuorum | None:
    raw = view.get(checkpoint_quorum_key(height))
    return None if raw is None else _quorum.decode(raw)


def _bls_key(view: Overlay, node_key: bytes) -> BlsPublicKey:
    node = get_node(view, node_key)
    if node is None:
        raise AssertionError("an indexed active node has no record")
    return node.bls_key


def store_next_checkpoint_quorum(view: Overlay, ctx: BlockContext) -> None:
    """At a checkpoint height: draw and keep the quorum of the next checkpoint."""
    interval = ctx.params.checkpoint_interval
    if not is_checkpoint_height(ctx.height, interval):
        return
    target = ctx.height + interval
    active, _ = node_lists(view)
    chosen = draw_checkpoint_members(active, compute_checkpoint_seed(ctx.prev_hash, target))
    members = tuple(CheckpointMember(NodeKey(key), _bls_key(view, key)) for key in chosen)
    view.put(checkpoint_quorum_key(target), encode(CheckpointQuorum(target, members)))
    expired = target - interval * QUORUMS_KEPT
    if expired >= 0 and view.get(checkpoint_quorum_key(expired)) is not None:
        view.delete(checkpoint_quorum_key(expired))


def compute_next_checkpoint_commitment(view: Overlay, height: int, interval: int) -> Hash32:
    """What the header of ``height`` must carry (zero off checkpoint heights)."""
    if not is_checkpoint_height(height, interval):
        return NO_COMMITMENT
    quorum = get_checkpoint_quorum(view, height + interval)
    if quorum is None:
        raise AssertionError("a checkpoint height without its next checkpoint quorum")
    return compute_quorum_commitment([m.bls_key for m in quorum.members])
