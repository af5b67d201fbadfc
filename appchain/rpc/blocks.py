"""The chain's blocks and head, as oxend answers for them: ``get_info``, the block headers and
blocks, the staking requirement and hard fork, and ``send_transaction``.

A header is oxend's ``block_header_response`` with this chain's Pulse and state fields added. A
node that joined by state sync holds no blocks at or below its base height, and says so
(-32001) rather than answer for a block it does not hold.

Time: headers and ``block_time`` are in milliseconds, but every field oxend gives in seconds stays
in seconds (``timestamp``, ``target``, ``pulse_ideal_timestamp``, ``pulse_target_timestamp``,
``block_timestamp``): timestamps rounded down (:func:`to_seconds`), ``target`` rounded up so a
sub-second chain does not say 0. The added ``timestamp_ms`` and ``target_ms`` carry the exact values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import msgspec

from appchain.messaging.rpc import HARDFORK
from appchain.rpc.jsonrpc import (
    MAX_KEYS,
    Height,
    NoParams,
    Params,
    RpcError,
    Text,
    decode_transaction_hex,
    submit,
    to_seconds,
)
from appchain.rpc.served import PublicNode
from appchain.rpc.transactions import TX_VERSION, chain_index
from genesis.presets import is_devnet_pace
from state.block import Block, Header, compute_block_hash
from state.encoding import Decoder, encode
from state.events import compute_event_hash
from state.rewards import REWARD_INDEX_KEY, RewardIndex

VERSION = "0.1.0"


HARD_FORK, HARD_FORK_REVISION = HARDFORK
"""The hard fork this node speaks, in oxend's numbering: 19 and its revision, the same pair
the storage replies give as ``hf`` (:data:`appchain.messaging.rpc.HARDFORK`). A client of oxend
decides what a block and a node look like from it (the explorer shows Pulse fields from 16 and
ten contributors from 19); this chain has had one set of rules since its genesis, so every
height is on this fork."""

PULSE_FIXED_DIFFICULTY = 1_000_000
"""The difficulty oxend gives every Pulse block (``cryptonote_basic/difficulty.h``): nothing is
mined here, every block is a Pulse block."""

_index = Decoder(RewardIndex)


def block_reward(node: PublicNode, height: int) -> int:
    """What the block at ``height`` paid to the nodes it rewards (each payable node's share,
    into the reward index, :mod:`state.rewards`), read from the block's state delta."""
    delta = node.chain.store.get_delta(height)
    for key, old, new in delta or ():
        if key == REWARD_INDEX_KEY and new is not None:
            before = 0 if old is None else _index.decode(old).per_node
            after = _index.decode(new)
            return (after.per_node - before) * after.payable
    return 0


def block_header(
    node: PublicNode, header: Header, block: Block | None, *, tx_hashes: bool = False
) -> dict[str, Any]:
    """oxend's ``block_header_response`` (``fill_block_header_response``) of a Pulse block, with
    this chain's state fields added: ``nonce`` 0, ``difficulty`` :data:`PULSE_FIXED_DIFFICULTY`;
    ``reward`` what the block paid into the nodes' rewards; ``coinbase_payouts`` 0 and
    ``miner_tx_hash`` "" because no block pays anyone by itself (rewards are claimed, as oxend's
    batched blocks pay nothing between payouts); ``block_size`` the encoded block's bytes;
    ``tx_hashes`` (with ``get_tx_hashes``, omitted when empty) its event hashes.

    ``block`` is None for a block a state-synced node holds only the header of (at or below its
    base, :func:`stored_at`): the fields read from the block's body or its state delta
    (``block_size``, ``block_weight``, ``long_term_weight``, ``num_txes``, ``reward``,
    ``tx_hashes``) are then left out rather than guessed."""
    tip = node.ledger.height
    answer = {
        "major_version": HARD_FORK,
        "minor_version": HARD_FORK_REVISION,
        "timestamp": to_seconds(header.timestamp),
        "timestamp_ms": header.timestamp,
        "prev_hash": header.prev_hash.hex(),
        "nonce": 0,
        "orphan_status": False,
        "height": header.height,
        "depth": tip - header.height,
        "hash": compute_block_hash(header).hex(),
        "difficulty": PULSE_FIXED_DIFFICULTY,
        "cumulative_difficulty": PULSE_FIXED_DIFFICULTY * (header.height + 1),
        "coinbase_payouts": 0,
        "miner_tx_hash": "",
        "service_node_winner": header.producer.hex(),
        "header_version": header.version,
        "immutable": header.height <= node.ledger.final_height,
        "state_root": header.state_root.hex(),
        "events_root": header.events_root.hex(),
        "pulse": {
            "round": header.round,
            "random_value": header.random_value.hex(),
            "validator_bitset": header.validators,
        },
    }
    if block is not None:
        size = len(encode(block))
        answer.update(
            reward=block_reward(node, header.height),
            block_size=size,
            block_weight=size,
            long_term_weight=size,
            num_txes=len(block.events),
        )
        if tx_hashes and block.events:
            answer["tx_hashes"] = [compute_event_hash(event).hex() for event in block.events]
    return answer


def block_at(node: PublicNode, height: int) -> Block:
    """The whole block at ``height``, or -32001: above the tip, or at or below a state-synced
    node's base, where it holds headers only (:func:`stored_at`)."""
    block = stored_at(node, height)[1]
    if block is None:
        raise RpcError(-32001, f"no block at height {height}{below_base(node, height)}")
    return block


def stored_at(node: PublicNode, height: int) -> tuple[Header, Block | None]:
    """The header at ``height`` and its block when this node holds it, or -32001 above the tip.

    A node that joined by state sync holds no block bodies at or below its base, only some of
    their headers (block 0's, the checkpoints' it walked, the base's), so there the body is None. Above
    the base a missing body is a corrupt log, and the store stops the node (``StoreCorrupt``)."""
    header = header_at(node, height)
    base = node.chain.base_height
    if base > 0 and height <= base:
        body = node.chain.store.get_body(height)
        return header, None if body is None else Block(header, body.events, body.signatures)
    return header, node.chain.store.get_block(height)


def headers_answer(node: PublicNode, height: int, *, tx_hashes: bool) -> dict[str, Any]:
    header, block = stored_at(node, height)
    return block_header(node, header, block, tx_hashes=tx_hashes)


def header_at(node: PublicNode, height: int) -> Header:
    if height > node.ledger.height:
        raise RpcError(-32001, f"no block at height {height}: the tip is {node.ledger.height}")
    header = node.chain.store.get_header(height)
    if header is None:
        raise RpcError(-32001, f"no block at height {height}{below_base(node, height)}")
    return header


def below_base(node: PublicNode, height: int) -> str:
    base = node.chain.base_height
    if height > base or base == 0:
        return ""
    return f": this node joined by state sync at height {base} and holds no blocks at or below it"


def get_info(node: PublicNode, params: NoParams) -> dict[str, Any]:
    """oxend's public ``get_info`` (``GET_INFO``) with this chain's fields added (``chain_id``,
    ``staking_requirement``, ``max_contributors``, ``min_operator_contribution``, ``progress``).
    As on oxend's public port: ``version`` is the major version only, ``database_size`` rounded up
    to a multiple of 10^9 bytes, and this node's own service-node state is not given (the admin
    ``get_info`` adds it, :mod:`appchain.node.admin`)."""
    return public_info(node, database_size=round_up(database_size(node), DATABASE_SIZE_STEP))


DATABASE_SIZE_STEP = 10**9
"""oxend's public ``database_size`` is rounded up to a multiple of this (``core_rpc_server.cpp``)."""


def round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def database_size(node: PublicNode) -> int:
    """Bytes of the node's LevelDB folder."""
    path = getattr(node.chain.store, "path", None)
    if path is None:
        return 0
    total = 0
    for item in Path(path).iterdir():
        try:
            total += item.stat().st_size
        except OSError:
            continue  # a file LevelDB removed while we counted
    return total


def public_info(node: PublicNode, *, database_size: int) -> dict[str, Any]:
    state = node.ledger.state
    chain_params = state.params
    nettype = "devnet" if is_devnet_pace(chain_params) else "mainnet"
    max_block = chain_params.max_block_events * chain_params.max_event_bytes
    top = state.height
    return {
        "status": "OK",
        "untrusted": False,
        "height": top + 1,  # oxend: the number of blocks, one above the top block
        "target_height": 0,  # oxend: 0 when this node is not syncing from a higher peer
        "top_block_hash": state.block_hash.hex(),
        "immutable_height": node.ledger.final_height,
        "immutable_block_hash": node.ledger.block_hash_at(node.ledger.final_height).hex(),
        "nettype": nettype,
        "mainnet": nettype == "mainnet",
        "testnet": False,
        "devnet": nettype == "devnet",
        "offline": False,
        "chain_id": state.chain_id,
        "hard_fork": HARD_FORK,
        "version": VERSION.split(".", maxsplit=1)[0],
        "status_line": f"v{VERSION.split('.', maxsplit=1)[0]}; Height: {top + 1}",
        "difficulty": PULSE_FIXED_DIFFICULTY,
        "cumulative_difficulty": PULSE_FIXED_DIFFICULTY * (top + 1),
        "target": -(-chain_params.block_time // 1000),  # seconds, as oxend's, rounded up
        "target_ms": chain_params.block_time,
        "checkpoint_interval": chain_params.checkpoint_interval,
        "block_size_limit": max_block,
        "block_weight_limit": max_block,
        "tx_pool_size": len(node.core.mempool),
        "database_size": database_size,
        "staking_requirement": chain_params.staking_requirement,
        "max_contributors": chain_params.max_contributors,
        "min_operator_contribution": chain_params.staking_requirement
        // chain_params.min_operator_stake_divisor,
        "pulse": True,
        "pulse_ideal_timestamp": to_seconds(state.timestamp + chain_params.block_time),
        "pulse_target_timestamp": to_seconds(state.timestamp + chain_params.block_time),
        "progress": node.progress(),
    }


def get_last_block_header(node: PublicNode, params: NoParams) -> dict[str, Any]:
    return {
        "status": "OK",
        "untrusted": False,
        "block_header": headers_answer(node, node.ledger.height, tx_hashes=False),
    }


class HeadersParams(Params, frozen=True):
    """One ``height``, or up to 1,000 ``heights``."""

    height: Height | None = None
    heights: Annotated[list[Height], msgspec.Meta(max_length=MAX_KEYS)] | None = None
    get_tx_hashes: bool = False
    fill_pow_hash: bool = False


def get_block_header_by_height(node: PublicNode, params: HeadersParams) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": "OK", "untrusted": False}
    if params.height is None and params.heights is None:
        raise RpcError(-32602, "invalid params: give height or heights")
    if params.height is not None:
        answer["block_header"] = headers_answer(node, params.height, tx_hashes=params.get_tx_hashes)
    if params.heights:
        answer["block_headers"] = [
            headers_answer(node, height, tx_hashes=params.get_tx_hashes) for height in params.heights
        ]
    return answer


class HashHeadersParams(Params, frozen=True):
    """One ``hash``, or up to 1,000 ``hashes``."""

    hash: Text | None = None
    hashes: Annotated[list[Text], msgspec.Meta(max_length=MAX_KEYS)] | None = None
    get_tx_hashes: bool = False
    fill_pow_hash: bool = False


def block_by_hash(node: PublicNode, text: str) -> Block:
    """The block whose hash is ``text`` (64 hex digits): -32602 for other text, -32001 when this
    node holds no such block (oxend: "can't get block by hash")."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise RpcError(-32602, f"invalid params: a block hash is 64 hex digits, not {text[:80]!r}")
    height = chain_index(node).blocks.get(raw)
    if height is None:
        raise RpcError(-32001, f"no block with hash {raw.hex()}")
    return block_at(node, height)


def get_block_header_by_hash(node: PublicNode, params: HashHeadersParams) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": "OK", "untrusted": False}
    if params.hash is None and params.hashes is None:
        raise RpcError(-32602, "invalid params: give hash or hashes")
    if params.hash is not None:
        block = block_by_hash(node, params.hash)
        answer["block_header"] = block_header(node, block.header, block, tx_hashes=params.get_tx_hashes)
    if params.hashes:
        blocks = [block_by_hash(node, text) for text in params.hashes]
        answer["block_headers"] = [
            block_header(node, b.header, b, tx_hashes=params.get_tx_hashes) for b in blocks
        ]
    return answer


MAX_HEADERS_RANGE = 1000
"""Most headers one ``get_block_headers_range`` answers (oxend's public port allows 1,000)."""


class RangeParams(Params, frozen=True):
    start_height: Height
    end_height: Height
    get_tx_hashes: bool = False
    fill_pow_hash: bool = False


def get_block_headers_range(node: PublicNode, params: RangeParams) -> dict[str, Any]:
    """The headers of ``start_height .. end_height`` (inclusive), ascending, as oxend; -32001 when
    either is above the tip or start is above end (oxend: "Invalid start/end heights")."""
    start, end, tip = params.start_height, params.end_height, node.ledger.height
    if start > end or end > tip:
        raise RpcError(-32001, f"invalid start/end heights {start}..{end}: the tip is {tip}")
    if end - start >= MAX_HEADERS_RANGE:
        raise RpcError(-32602, f"invalid params: at most {MAX_HEADERS_RANGE} headers at once")
    base = node.chain.base_height
    held = max(start, base + 1) if base > 0 else start  # whole blocks from here on
    headers = [headers_answer(node, height, tx_hashes=params.get_tx_hashes) for height in range(start, held)]
    headers += [
        block_header(node, b.header, b, tx_hashes=params.get_tx_hashes)
        for b in node.chain.store.iter_blocks(held, end)
    ]
    return {"status": "OK", "untrusted": False, "headers": headers}


class BlockParams(Params, frozen=True):
    """``height`` or ``hash`` (oxend takes either)."""

    height: Height | None = None
    hash: Text | None = None
    fill_pow_hash: bool = False


def block_json(node: PublicNode, block: Block) -> dict[str, Any]:
    """The block as oxend's ``obj_to_json_str(block)`` writes a Pulse block of hf 19: its
    ``miner_tx`` is a coinbase with no outputs (no block pays anyone by itself here), its
    ``tx_hashes`` the event hashes, its ``signatures`` the quorum validators' Pulse signatures."""
    header = block.header
    return {
        "major_version": HARD_FORK,
        "minor_version": HARD_FORK_REVISION,
        "timestamp": to_seconds(header.timestamp),
        "prev_id": header.prev_hash.hex(),
        "nonce": 0,
        "pulse": {
            "random_value": header.random_value.hex(),
            "round": header.round,
            "validator_bitset": header.validators,
        },
        "miner_tx": {
            "version": TX_VERSION,
            "output_unlock_times": [],
            "unlock_time": 0,
            "vin": [{"gen": {"height": header.height}}],
            "vout": [],
            "extra": [],
            "type": 0,
        },
        "tx_hashes": [compute_event_hash(event).hex() for event in block.events],
        "signatures": [
            {"voter_index": index, "signature": bytes(sig).hex()} for index, sig in block.signatures
        ],
        "height": header.height,
        "service_node_winner_key": header.producer.hex(),
        "reward": block_reward(node, header.height),
    }


def get_block(node: PublicNode, params: BlockParams) -> dict[str, Any]:
    """A block by ``height`` or ``hash``: its header, event hashes, canonical bytes (``blob``) and
    oxend's block JSON (``json``, a string)."""
    if params.hash is not None:
        block = block_by_hash(node, params.hash)
    elif params.height is not None:
        block = block_at(node, params.height)
    else:
        raise RpcError(-32602, "invalid params: give height or hash")
    answer: dict[str, Any] = {
        "status": "OK",
        "untrusted": False,
        "block_header": block_header(node, block.header, block),
        "blob": encode(block).hex(),
        "json": json.dumps(block_json(node, block)),
    }
    if block.events:
        answer["tx_hashes"] = [compute_event_hash(event).hex() for event in block.events]
    return answer


def get_staking_requirement(node: PublicNode, params: NoParams) -> dict[str, Any]:
    state = node.ledger.state
    return {"status": "OK", "staking_requirement": state.params.staking_requirement, "height": state.height}


def hard_fork_info(node: PublicNode, params: NoParams) -> dict[str, Any]:
    """oxend's ``hard_fork_info``: :data:`HARD_FORK` with its ``revision``, enabled since block 0."""
    return {
        "status": "OK",
        "untrusted": False,
        "version": HARD_FORK,
        "revision": HARD_FORK_REVISION,
        "enabled": True,
        "earliest_height": 0,
    }


class TransactionParams(Params, frozen=True):
    tx_as_hex: str


def send_transaction(node: PublicNode, params: TransactionParams) -> dict[str, Any]:
    tx_hash = submit(node, decode_transaction_hex(params.tx_as_hex, "tx_as_hex"))
    return {"status": "OK", "tx_hash": tx_hash.hex()}
