"""The Session Name Service as oxend's ``ons_*`` methods answer for it: ``ons_resolve``,
``ons_names_to_owners`` and ``ons_owners_to_names``.

Only live names are listed (an expired one is as if free); the only record type this chain keeps
is the Session ID (oxend's type 0). Name hashes come as hex or base64 (padded or not), as oxend
accepts them; answers give them in padded base64, as oxend does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import msgspec

from appchain.rpc.accounts import account_param
from appchain.rpc.jsonrpc import Params, RpcError, Text
from appchain.rpc.served import PublicNode, tip_view
from appchain.rpc.transactions import chain_index
from state.namespaces import decode_value
from state.sns import NAME_PREFIX, NameRecord, get_name, is_expired
from state.sns import NONCE_SIZE as SNS_NONCE_SIZE

SNS_SESSION = 0
"""oxend's ONS type of a Session ID record: the only type this chain keeps."""


def _name_hash(value: str) -> bytes:
    """A name hash as oxend reads one (``oxen_name_system.cpp``): 64 hex digits, or 44 padded or
    43 unpadded base64 characters, of 32 bytes."""
    raw = b""
    if len(value) == 64:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
    elif len(value) in (43, 44):
        try:
            raw = base64.b64decode(value + "=" * (44 - len(value)), validate=True)
        except (ValueError, binascii.Error):
            raw = b""
    if len(raw) == 32:
        return raw
    raise RpcError(-32602, "invalid name_hash: expected hash as 64 hex digits or 43/44 base64 characters")


Kind = Annotated[int, msgspec.Meta(ge=0, le=255)]
"""An ONS record type (oxend's ``mapping_type``, a byte)."""


ONS_TYPES = (0, 1, 2)
"""oxend's ONS types (session, wallet, lokinet): 0 is kept here; 1 and 2 are valid names that
never match (this chain registers no wallet or lokinet names), as oxend answers for a type
nobody registered."""


def _check_type(kind: int) -> None:
    if kind not in ONS_TYPES:
        raise RpcError(-32602, f"invalid ONS type {kind}: 0 (Session), 1 (wallet) or 2 (lokinet)")


class ResolveParams(Params, frozen=True):
    name_hash: Text
    type: Kind = SNS_SESSION


def ons_resolve(node: PublicNode, params: ResolveParams) -> dict[str, Any]:
    """The encrypted value of a live name (split as oxend does: ``encrypted_value`` and
    ``nonce``); an empty result when the name is free or expired."""
    _check_type(params.type)
    name_hash = _name_hash(params.name_hash)
    record = get_name(tip_view(node), name_hash)
    if params.type != SNS_SESSION or record is None or is_expired(record, node.ledger.height):
        return {}
    stored = record.encrypted_value
    return {"encrypted_value": stored[:-SNS_NONCE_SIZE].hex(), "nonce": stored[-SNS_NONCE_SIZE:].hex()}


def _sns_entry(node: PublicNode, name_hash: bytes, record: NameRecord) -> dict[str, Any]:
    """A live name record as oxend's ``ons_*`` methods list it (after the caller's index field):
    ``name_hash`` in padded base64, ``txid`` and ``update_height`` the buy or update that wrote
    it (``update_id``, *added*, the same hash: what an update must name), ``backup_owner`` left
    out when there is none. ``update_height`` is left out on a node that joined by state sync
    above that block."""
    entry: dict[str, Any] = {
        "type": SNS_SESSION,
        "name_hash": base64.b64encode(name_hash).decode(),
        "owner": record.owner.hex(),
        "encrypted_value": record.encrypted_value.hex(),
        "txid": record.update_id.hex(),
        "update_id": record.update_id.hex(),
        "expiration_height": record.expiry_height,
    }
    if record.backup_owner is not None:
        entry["backup_owner"] = record.backup_owner.hex()
    written = chain_index(node).events.get(bytes(record.update_id))
    if written is not None:
        entry["update_height"] = written[0]
    return entry


NameList = Annotated[list[Text], msgspec.Meta(min_length=1, max_length=256)]
"""1 to 256 name hashes or owners."""
ONS_MAX_TYPES = 8
"""Most types one entry of ``ons_names_to_owners`` may ask (oxend's public limit)."""


class NameEntry(msgspec.Struct, frozen=True):
    """oxend's ``ons_names_to_owners`` request entry: a name hash and the types asked."""

    name_hash: Text
    types: Annotated[list[Kind], msgspec.Meta(min_length=1, max_length=ONS_MAX_TYPES)]


class NamesParams(Params, frozen=True):
    entries: Annotated[list[NameEntry | Text], msgspec.Meta(min_length=1, max_length=256)] | None = None
    """oxend's ``[{name_hash, types}]``, or (*added*) bare name hashes of the top-level ``type``."""
    name_hashes: NameList | None = None
    type: Kind = SNS_SESSION
    include_expired: bool = False


def ons_names_to_owners(node: PublicNode, params: NamesParams) -> dict[str, Any]:
    """The live record of each entry's name hash, for each type asked that has one; no
    ``entries`` key when nothing matched (oxend omits an empty list)."""
    asked = params.entries if params.entries is not None else params.name_hashes
    if asked is None:
        raise RpcError(-32602, "entries must be a list of 1 to 256 {name_hash, types}")
    view = tip_view(node)
    height = node.ledger.height
    found = []
    for index, item in enumerate(asked):
        value, types = (item, [params.type]) if isinstance(item, str) else (item.name_hash, item.types)
        for kind in types:
            _check_type(kind)
        name_hash = _name_hash(value)
        if SNS_SESSION not in types:
            continue
        record = get_name(view, name_hash)
        if record is None or is_expired(record, height):
            continue
        found.append({"entry_index": index, **_sns_entry(node, name_hash, record)})
    answer: dict[str, Any] = {"status": "OK"}
    if found:
        answer["entries"] = found
    return answer


class OwnersParams(Params, frozen=True):
    entries: NameList


def ons_owners_to_names(node: PublicNode, params: OwnersParams) -> dict[str, Any]:
    """The live names each owner (or backup owner) holds: oxend's ``ons_owners_to_names``.

    This scans the name records: it is an explorer's query, not a hot path."""
    owners = params.entries
    index_of: dict[bytes, int] = {}
    for index, text in enumerate(owners):
        index_of.setdefault(account_param(text), index)
    height = node.ledger.height
    found = []
    for name_hash, raw in node.ledger.state.prefixed(NAME_PREFIX):
        record = decode_value("sns", raw)
        if is_expired(record, height):
            continue
        for owner in (record.owner, record.backup_owner):
            if owner is not None and bytes(owner) in index_of:
                found.append({"request_index": index_of[bytes(owner)], **_sns_entry(node, name_hash, record)})
                break
    found.sort(key=lambda entry: (entry["request_index"], entry["name_hash"]))
    answer: dict[str, Any] = {"status": "OK"}
    if found:
        answer["entries"] = found
    return answer
