"""The chain's blocks and head, as oxend answers for them: ``get_info``, the block headers and
blocks, the staking requirement and hard fork, and ``send_transaction``.

A header is oxend's ``block_header_response`` with this chain's Pulse and state fields added. A
node that joined by state sync holds no blocks at or below its base height, and says so
(-32001) rather than answer for a block it does not hold.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec

from appchain.rpc.jsonrpc import MAX_KEYS, Height, NoParams, Params, RpcError, decode_transaction_hex, submit
from appchain.rpc.served import PublicNode, tip_view
from state.block import Header, compute_block_hash
from state.encoding import encode
from state.events import compute_event_hash
from state.nodes import get_node

VERSION = "0.1.0"


HARD_FORK = 1


def block_header(node: PublicNode, header: Header, events: int | None = None) -> dict[str, Any]:
    """oxend's ``block_header_response``, with this chain's Pulse and state fields added;
    ``events`` is the block's event count when the caller already holds the block."""
    tip = node.ledger.height
    block_hash = compute_block_hash(header)
    if events is None:
        body = node.chain.store.get_body(header.height)
        events = 0 if body is None else len(body.events)
    return {
        "major_version": header.version,
        "minor_version": 0,
        "timestamp": header.timestamp,
        "prev_hash": header.prev_hash.hex(),
        "height": header.height,
        "depth": tip - header.height,
        "hash": block_hash.hex(),
        "orphan_status": False,
        "num_txes": events,
        "service_node_winner": header.producer.hex(),
        "immutable": header.height <= node.ledger.final_height,
        "state_root": header.state_root.hex(),
        "events_root": header.events_root.hex(),
        "pulse": {
            "round": header.round,
            "random_value": header.random_value.hex(),
            "validator_bitset": header.validators,
        },
    }


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
    state = node.ledger.state
    chain_params = state.params
    registered = get_node(tip_view(node), node.core.node_key) is not None
    return {
        "status": "OK",
        "height": state.height + 1,  # oxend: the number of blocks, one above the top block
        "top_block_hash": state.block_hash.hex(),
        "immutable_height": node.ledger.final_height,
        "immutable_block_hash": node.ledger.block_hash_at(node.ledger.final_height).hex(),
        "nettype": "mainnet" if chain_params.block_time >= 60 else "devnet",
        "chain_id": state.chain_id,
        "hard_fork": HARD_FORK,
        "version": VERSION,
        "staking_requirement": chain_params.staking_requirement,
        "max_contributors": chain_params.max_contributors,
        "min_operator_contribution": chain_params.staking_requirement
        // chain_params.min_operator_stake_divisor,
        "service_node": registered,
        "pulse": True,
        "pulse_target_timestamp": state.timestamp + chain_params.block_time,
        "target": chain_params.block_time,
        "progress": node.progress(),
    }


def get_last_block_header(node: PublicNode, params: NoParams) -> dict[str, Any]:
    return {"status": "OK", "block_header": block_header(node, header_at(node, node.ledger.height))}


class HeightParams(Params, frozen=True):
    height: Height


class HeadersParams(Params, frozen=True):
    """One ``height``, or up to 1,000 ``heights``."""

    height: Height | None = None
    heights: Annotated[list[Height], msgspec.Meta(max_length=MAX_KEYS)] | None = None


def get_block_header_by_height(node: PublicNode, params: HeadersParams) -> dict[str, Any]:
    if params.heights is not None:
        headers = [block_header(node, header_at(node, height)) for height in params.heights]
        return {"status": "OK", "block_headers": headers}
    if params.height is None:
        raise RpcError(-32602, "invalid params: give height or heights")
    return {"status": "OK", "block_header": block_header(node, header_at(node, params.height))}


def get_block(node: PublicNode, params: HeightParams) -> dict[str, Any]:
    height = params.height
    header_at(node, height)  # -32001 above the tip
    if below_base(node, height):
        raise RpcError(-32001, f"no block at height {height}{below_base(node, height)}")
    block = node.chain.store.get_block(height)
    return {
        "status": "OK",
        "block_header": block_header(node, block.header, len(block.events)),
        "tx_hashes": [compute_event_hash(event).hex() for event in block.events],
        "blob": encode(block).hex(),
        "json": json.dumps({"events": [type(event).__name__ for event in block.events]}),
    }


def get_staking_requirement(node: PublicNode, params: NoParams) -> dict[str, Any]:
    state = node.ledger.state
    return {"status": "OK", "staking_requirement": state.params.staking_requirement, "height": state.height}


def hard_fork_info(node: PublicNode, params: NoParams) -> dict[str, Any]:
    return {"status": "OK", "version": HARD_FORK, "enabled": True, "earliest_height": 0}


class TransactionParams(Params, frozen=True):
    tx_as_hex: str


def send_transaction(node: PublicNode, params: TransactionParams) -> dict[str, Any]:
    tx_hash = submit(node, decode_transaction_hex(params.tx_as_hex, "tx_as_hex"))
    return {"status": "OK", "tx_hash": tx_hash.hex()}
