"""The Session Name Service as oxend's ``ons_*`` methods answer for it: ``ons_resolve``,
``ons_names_to_owners`` and ``ons_owners_to_names``.

Only live names are listed (an expired one is as if free); the only record type this chain keeps
is the Session ID (oxend's type 0). Name hashes come as hex or base64, as oxend accepts both.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import msgspec

from appchain.rpc.accounts import account_param
from appchain.rpc.jsonrpc import Params, RpcError, Text
from appchain.rpc.served import PublicNode, tip_view
from state.namespaces import decode_value
from state.sns import NAME_PREFIX, NameRecord, get_name, is_expired
from state.sns import NONCE_SIZE as SNS_NONCE_SIZE

SNS_SESSION = 0
"""oxend's ONS type of a Session ID record: the only type this chain keeps."""


def _name_hash(value: str) -> bytes:
    """A name hash given as hex or as base64 (oxend accepts both)."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raw = b""
    if len(raw) == 32:
        return raw
    raise RpcError(-32602, "name_hash must be 32 bytes, in hex or base64")


Kind = Annotated[int, msgspec.Meta(ge=0, le=255)]
"""An ONS record type (oxend's ``mapping_type``, a byte)."""


def _check_type(kind: int) -> None:
    if kind != SNS_SESSION:
        raise RpcError(-32602, "type must be 0 (Session ID): the only record type this chain keeps")


class ResolveParams(Params, frozen=True):
    name_hash: Text
    type: Kind = SNS_SESSION


def ons_resolve(node: PublicNode, params: ResolveParams) -> dict[str, Any]:
    """The encrypted value of a live name (split as oxend does: ``encrypted_value`` and
    ``nonce``); an empty result when the name is free or expired."""
    _check_type(params.type)
    name_hash = _name_hash(params.name_hash)
    record = get_name(tip_view(node), name_hash)
    if record is None or is_expired(record, node.ledger.height):
        return {}
    stored = record.encrypted_value
    return {"encrypted_value": stored[:-SNS_NONCE_SIZE].hex(), "nonce": stored[-SNS_NONCE_SIZE:].hex()}


def _sns_entry(name_hash: bytes, record: NameRecord) -> dict[str, Any]:
    """A live name record as the ``ons_*`` methods list it (after the caller's index field)."""
    return {
        "type": SNS_SESSION,
        "name_hash": name_hash.hex(),
        "owner": record.owner.hex(),
        "backup_owner": None if record.backup_owner is None else record.backup_owner.hex(),
        "encrypted_value": record.encrypted_value.hex(),
        "update_id": record.update_id.hex(),
        "expiration_height": record.expiry_height,
    }


NameList = Annotated[list[Text], msgspec.Meta(min_length=1, max_length=256)]
"""1 to 256 name hashes or owners."""


class NamesParams(Params, frozen=True):
    entries: NameList | None = None
    name_hashes: NameList | None = None
    type: Kind = SNS_SESSION


def ons_names_to_owners(node: PublicNode, params: NamesParams) -> dict[str, Any]:
    hashes = params.entries if params.entries is not None else params.name_hashes
    if hashes is None:
        raise RpcError(-32602, "entries must be a list of 1 to 256 name hashes")
    _check_type(params.type)
    view = tip_view(node)
    height = node.ledger.height
    found = []
    for index, value in enumerate(hashes):
        name_hash = _name_hash(value)
        record = get_name(view, name_hash)
        if record is None or is_expired(record, height):
            continue
        found.append({"entry_index": index, **_sns_entry(name_hash, record)})
    return {"status": "OK", "entries": found}


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
                found.append({"request_index": index_of[bytes(owner)], **_sns_entry(name_hash, record)})
                break
    found.sort(key=lambda entry: (entry["request_index"], entry["name_hash"]))
    return {"status": "OK", "entries": found}
