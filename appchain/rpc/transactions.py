"""Transactions as oxend answers for them: ``get_transactions``, ``get_transaction_pool``,
``get_fee_estimate``, and the sums behind the admin ``get_coinbase_tx_sum``.

This chain has no UTXOs and no miner transaction: a "transaction" is a signed event (a transfer,
a registration, a name…) or a network event (a quorum's state change), its hash is the event
hash, a block's events are its transactions, and the mempool is oxend's transaction pool. Each
is answered in oxend 10's shapes (``core_rpc_server_commands_defs.h``: ``GET_TRANSACTIONS``,
``GET_TRANSACTION_POOL``, ``GET_BASE_FEE_ESTIMATE``) so that a client of oxend (the block
explorer) reads them; where a field means nothing here it carries what oxend gives for a Pulse
block or leaves it out, as ``docs/rpc.md`` lists, never an invented value.

Finding a transaction or a block by its hash needs an index the chain does not keep:
:class:`ChainIndex` is built here from the blocks the node holds, caught up on each lookup (one
pass over the new blocks) and started again if the chain rolled back under it. It holds one
entry per block and per event, in memory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import weakref
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from appchain.messaging.rpc import HARDFORK
from appchain.rpc.jsonrpc import MAX_KEYS, Height, Params, Text, to_seconds
from appchain.rpc.served import PublicNode
from state.block import Block, compute_block_hash
from state.encoding import encode
from state.events import (
    Allocation,
    ClaimRewards,
    Contribute,
    Event,
    FundRewardPool,
    GenesisNode,
    NewState,
    RegisterNode,
    RequestUnlock,
    SnsBuy,
    SnsRenew,
    SnsUpdate,
    StateChange,
    Transfer,
    compute_event_hash,
)
from state.ledger import compute_fee
from state.params import ChainParams

TX_VERSION = 4
"""oxend's transaction version since hf 16 (``txversion::v4_tx_types``): the one with a type."""
TX_STANDARD, TX_STATE_CHANGE, TX_KEY_IMAGE_UNLOCK, TX_STAKE, TX_ONS = 0, 1, 2, 3, 4
"""oxend's ``txtype`` numbers (``cryptonote_basic/txtypes.h``)."""
STATE_CHANGE_NAMES: dict[int, str] = {
    NewState.DECOMMISSION: "decom",
    NewState.RECOMMISSION: "recom",
    NewState.DEREGISTER: "dereg",
    NewState.IP_CHANGE_PENALTY: "ip",
}
"""``extra.sn_state_change.type`` as oxend names it (``core_rpc_server.cpp``)."""
TRANSACTIONS = (Transfer, RegisterNode, Contribute, RequestUnlock, ClaimRewards, SnsBuy, SnsUpdate, SnsRenew)
"""The signed events: each paid a fee (:func:`state.ledger.compute_fee`)."""


@dataclass
class ChainIndex:
    """Block hashes and event hashes of the blocks a node holds, and the fees and emission of
    each height (for ``get_coinbase_tx_sum``)."""

    blocks: dict[bytes, int] = field(default_factory=dict)
    events: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    fees: list[int] = field(default_factory=list)
    """Cumulative fees: ``fees[h - first]`` is the sum over ``first .. h``."""
    emitted: int = 0
    """What block 0 created (the genesis allocations, pool and stakes); nothing is minted later."""
    first: int = 0
    last_hash: bytes = b""

    @property
    def next_height(self) -> int:
        return self.first + len(self.fees)

    def add(self, block: Block, params: ChainParams) -> None:
        height = block.header.height
        self.blocks[compute_block_hash(block.header)] = height
        paid = 0
        for index, event in enumerate(block.events):
            self.events[compute_event_hash(event)] = (height, index)
            paid += event_fee(event, params)
            if height == 0:
                self.emitted += genesis_amount(event)
        self.fees.append((self.fees[-1] if self.fees else 0) + paid)
        self.last_hash = compute_block_hash(block.header)

    def fees_between(self, start: int, end: int) -> int:
        """Fees paid by the blocks ``start .. end`` (inclusive) this index holds."""
        start, end = max(start, self.first), min(end, self.next_height - 1)
        if end < start:
            return 0
        below = self.fees[start - self.first - 1] if start > self.first else 0
        return self.fees[end - self.first] - below


_INDEXES: weakref.WeakKeyDictionary[object, ChainIndex] = weakref.WeakKeyDictionary()


def chain_index(node: PublicNode) -> ChainIndex:
    """The node's index, caught up with its tip (started again after a rollback below it)."""
    store = node.chain.store
    try:
        index = _INDEXES.get(store)
    except TypeError:  # a test's stand-in store, which cannot be weakly referenced: no cache
        index = None
    tip = node.ledger.height
    if index is not None and index.fees:
        top = index.next_height - 1
        header = store.get_header(top) if top <= tip else None
        if header is None or compute_block_hash(header) != index.last_hash:
            index = None  # the chain rolled back under the index
    if index is None:
        base = node.chain.base_height
        index = ChainIndex(first=base + 1 if base > 0 else 0)
        with contextlib.suppress(TypeError):
            _INDEXES[store] = index
    if index.next_height <= tip:
        params = node.ledger.state.params
        for block in store.iter_blocks(index.next_height, tip):
            index.add(block, params)
    return index


def event_fee(event: Event, params: ChainParams) -> int:
    """The fee an event paid into the reward pool: a transaction's; none for the others."""
    if isinstance(event, TRANSACTIONS):
        return compute_fee(params, event)
    return 0


def genesis_amount(event: Event) -> int:
    """What a genesis event created: an allocation, the reward pool, a node's stakes."""
    if isinstance(event, Allocation | FundRewardPool):
        return int(event.amount)
    if isinstance(event, GenesisNode):
        return sum(c.amount for c in event.contributions)
    return 0


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


PORTION_WHOLE = 1_000_000
"""A registration's ``portion`` and ``fee`` are in millionths in oxend's tx extra (hf 19)."""


def tx_type_and_extra(event: Event, params: ChainParams) -> tuple[int, dict[str, Any], int]:
    """oxend's ``type``, its decoded ``extra`` (``tx_extra``) and the stake it carries. A
    registration's contributors are the operator and the reserved spots, each with its
    ``amount`` and its ``portion`` of the staking requirement in millionths (oxend hf 19)."""
    if isinstance(event, RegisterNode):
        stakes = [(event.sender, event.amount), *((r.account, r.amount) for r in event.reserved)]
        contributors = [
            {
                "wallet": account.hex(),
                "amount": amount,
                "portion": amount * PORTION_WHOLE // params.staking_requirement,
            }
            for account, amount in stakes
        ]
        registration = {
            "fee": event.operator_fee_bp * PORTION_WHOLE // 10_000,
            "hardfork": HARDFORK[0],
            "contributors": contributors,
        }
        return TX_STAKE, {"sn_pubkey": event.node_key.hex(), "sn_registration": registration}, event.amount
    if isinstance(event, Contribute):
        extra = {"sn_pubkey": event.node_key.hex(), "sn_contributor": event.sender.hex()}
        return TX_STAKE, extra, event.amount
    if isinstance(event, RequestUnlock):
        return TX_KEY_IMAGE_UNLOCK, {"sn_pubkey": event.node_key.hex()}, 0
    if isinstance(event, SnsBuy | SnsUpdate | SnsRenew):
        kind = "buy" if isinstance(event, SnsBuy) else "update" if isinstance(event, SnsUpdate) else "renew"
        ons: dict[str, Any] = {kind: True, "type": 0, "name_hash": _b64(event.name_hash)}
        if isinstance(event, SnsUpdate):
            ons["prev_txid"] = event.prev_update_id.hex()
        if isinstance(event, SnsBuy | SnsUpdate):
            if event.owner is not None:
                ons["owner"] = event.owner.hex()
            if event.backup_owner is not None:
                ons["backup_owner"] = event.backup_owner.hex()
            if event.encrypted_value is not None:
                ons["value"] = event.encrypted_value.hex()
        return TX_ONS, {"ons": ons}, 0
    if isinstance(event, StateChange):
        change = {
            "type": STATE_CHANGE_NAMES.get(event.new_state, ""),
            "height": event.quorum_height,
            "index": event.worker_index,
            "voters": [vote.validator_index for vote in event.votes],
        }
        return TX_STATE_CHANGE, {"sn_state_change": change}, 0
    return TX_STANDARD, {}, 0


def tx_json(event: Event, fee: int, params: ChainParams) -> dict[str, Any]:
    """The transaction as oxend's ``obj_to_json_str`` writes it, with nothing in ``vin``, ``vout``
    and ``extra`` (there are no outputs here; the decoded extra is the entry's ``extra``)."""
    kind, _, _ = tx_type_and_extra(event, params)
    return {
        "version": TX_VERSION,
        "output_unlock_times": [],
        "unlock_time": 0,
        "vin": [],
        "vout": [],
        "extra": [],
        "type": kind,
        "rct_signatures": {"type": 0, "txnFee": fee},
    }


class TransactionsParams(Params, frozen=True):
    txs_hashes: Annotated[list[Text], msgspec.Meta(max_length=MAX_KEYS)] = msgspec.field(default_factory=list)
    decode_as_json: bool = False
    tx_extra: bool = False
    split: bool = False
    prune: bool = False
    stake_info: bool = False


def _entry(
    event: Event, tx_hash: str, params: TransactionsParams, chain_params: ChainParams
) -> dict[str, Any]:
    raw = encode(event)
    fee = event_fee(event, chain_params)
    _, extra, stake = tx_type_and_extra(event, chain_params)
    entry: dict[str, Any] = {"tx_hash": tx_hash}
    if not (params.decode_as_json or params.split or params.prune):
        entry["as_hex"] = raw.hex()
    if params.decode_as_json:
        entry["as_json"] = json.dumps(tx_json(event, fee, chain_params))
    entry["size"] = len(raw)
    entry["double_spend_seen"] = False
    entry["blink"] = False
    if params.tx_extra:
        entry["extra"] = extra
    if params.stake_info and stake:
        entry["stake_amount"] = stake
    return entry


def get_transactions(node: PublicNode, params: TransactionsParams) -> dict[str, Any]:
    """Transactions in the order asked, from the chain or the mempool; the hashes found in
    neither in ``missed_tx``. A hash that is not 64 hex digits gives oxend's failed ``status``."""
    wanted: list[bytes] = []
    for text in params.txs_hashes:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            return {"status": "Failed to parse hex representation of transaction hash", "untrusted": False}
        wanted.append(raw)
    index = chain_index(node) if wanted else None
    chain_params = node.ledger.state.params
    pool = node.core.mempool.txs
    txs, missed = [], []
    for tx_hash in wanted:
        found = index.events.get(tx_hash) if index is not None else None
        if found is not None:
            height, position = found
            block = node.chain.store.get_block(height)
            entry = _entry(block.events[position], tx_hash.hex(), params, chain_params)
            entry.update(
                in_pool=False, block_height=height, block_timestamp=to_seconds(block.header.timestamp)
            )
            txs.append(entry)
        elif tx_hash in pool:
            entry = _entry(pool[tx_hash], tx_hash.hex(), params, chain_params)  # type: ignore[index]
            entry.update(in_pool=True, relayed=True, received_timestamp=0)
            txs.append(entry)
        else:
            missed.append(tx_hash.hex())
    answer: dict[str, Any] = {"status": "OK", "untrusted": False}
    if txs:
        answer["txs"] = txs
    if missed:
        answer["missed_tx"] = missed
    return answer


class PoolParams(Params, frozen=True):
    tx_extra: bool = False
    stake_info: bool = False


def get_transaction_pool(node: PublicNode, params: PoolParams) -> dict[str, Any]:
    """The mempool as oxend's transaction pool (``tx_info``), in arrival order. This node keeps
    no arrival time: ``receive_time`` and ``last_relayed_time`` are 0, oxend's "unset"."""
    chain_params = node.ledger.state.params
    state = node.ledger.state
    transactions = []
    for tx_hash, tx in node.core.mempool.txs.items():
        raw = encode(tx)
        fee = compute_fee(chain_params, tx)
        _, extra, stake = tx_type_and_extra(tx, chain_params)
        info: dict[str, Any] = {
            "id_hash": bytes(tx_hash).hex(),
            "tx_json": json.dumps(tx_json(tx, fee, chain_params)),
            "blob_size": len(raw),
            "weight": len(raw),
            "fee": fee,
            "max_used_block_id_hash": state.block_hash.hex(),
            "max_used_block_height": state.height,
            "kept_by_block": False,
            "last_failed_height": 0,
            "last_failed_id_hash": bytes(32).hex(),
            "receive_time": 0,
            "relayed": True,
            "last_relayed_time": 0,
            "do_not_relay": False,
            "double_spend_seen": False,
            "tx_blob": raw.hex(),
            "blink": False,
        }
        if params.tx_extra:
            info["extra"] = extra
        if params.stake_info and stake:
            info["stake_amount"] = stake
        transactions.append(info)
    answer: dict[str, Any] = {"status": "OK", "untrusted": False}
    if transactions:
        answer["transactions"] = transactions
    return answer


class FeeParams(Params, frozen=True):
    grace_blocks: Height = 0


def get_fee_estimate(node: PublicNode, params: FeeParams) -> dict[str, Any]:
    """oxend's ``get_fee_estimate`` from this chain's fee rule: ``fee_per_byte`` is the chain's,
    ``fee_per_output`` its cheapest base fee (a transfer's: every transaction pays its kind's base
    fee, as an oxend transaction pays per output). Blink does not exist here: the blink fees are
    the same as the others (a transaction is final when its block is, whatever it paid). Fees
    never change, so ``grace_blocks`` changes nothing."""
    chain = node.ledger.state.params
    return {
        "status": "OK",
        "untrusted": False,
        "fee_per_byte": chain.fee_per_byte,
        "fee_per_output": chain.fee_transfer,
        "blink_fee_per_byte": chain.fee_per_byte,
        "blink_fee_per_output": chain.fee_transfer,
        "blink_fee_fixed": 0,
    }


def coinbase_sum(node: PublicNode, height: int, count: int) -> dict[str, Any]:
    """oxend's admin ``get_coinbase_tx_sum`` over the blocks ``height .. height + count - 1``:
    ``emission_amount`` is what they created (block 0's genesis allocations, pool and stakes;
    later blocks create nothing, their rewards come from the pool), ``fee_amount`` the fees their
    transactions paid, ``burn_amount`` 0 (nothing is burned: fees and name prices go to the
    pool)."""
    index = chain_index(node)
    end = min(height + count - 1, node.ledger.height)
    emitted = index.emitted if height == 0 and count > 0 and index.first == 0 else 0
    fees = index.fees_between(height, end) if count > 0 else 0
    return {"status": "OK", "emission_amount": emitted, "fee_amount": fees, "burn_amount": 0}
