"""Session Name Service (PROTOCOL.md §7; Oxen ``oxen_name_system.cpp``).

Key: ``sns/<name hash>`` → :class:`NameRecord`. The chain never sees a name: only its hash
(blake2b-256 of the lower-cased name) and its value encrypted with a key only someone who knows
the name can derive. So the name rules are enforced by the client helpers here
(:func:`normalize_name`, :func:`compute_name_hash`, :func:`encrypt_value`), as in Oxen's wallet;
the chain enforces ownership, prices and expiry:

- buy: only a free or expired name; the price goes to the reward pool; the record lasts
  ``sns_period`` blocks;
- update: by the owner or the backup owner, naming the record's current update id (every
  buy and update gets a fresh id: the hash of the event that made it);
- renew: by anyone paying the price, for a live name: one more period from the current expiry;
- an expired name is free to buy again (the expiry shows as a ``NameExpired`` effect).
"""

from __future__ import annotations

import hashlib
import re

import msgspec
from nacl import bindings

from state import ledger
from state.context import BlockContext
from state.effects import NameBought, NameExpired, NameRenewed, NameUpdated
from state.encoding import Decoder, Record, encode
from state.errors import InvalidEvent
from state.events import GenesisName, SnsBuy, SnsRenew, SnsUpdate, compute_event_hash
from state.schedule import EXPIRE_NAME, schedule
from state.types import AccountKey, Hash32, Height
from state.view import Overlay

NAME_PREFIX = b"sns/"
MAX_NAME_LENGTH = 64
_NAME_RULE = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")
NONCE_SIZE = 24
SESSION_ID_SIZE = 33


class InvalidName(ValueError):
    """A name that breaks the name rules (lower case, ``[a-z0-9_-]``, no edge hyphen, ≤ 64)."""


# -- client helpers ----------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """The canonical (lower-case) form of a valid name; raises :class:`InvalidName` otherwise."""
    lowered = name.lower() if name.isascii() else name
    if not 0 < len(lowered) <= MAX_NAME_LENGTH or not _NAME_RULE.match(lowered):
        raise InvalidName(
            f"invalid name {name!r}: 1..{MAX_NAME_LENGTH} of a-z 0-9 _ -, not starting or ending with -"
        )
    return lowered


def is_valid_name(name: str) -> bool:
    try:
        normalize_name(name)
    except InvalidName:
        return False
    return True


def compute_name_hash(name: str) -> bytes:
    """blake2b-256 of the lower-cased name (Oxen's ``name_to_hash``)."""
    return hashlib.blake2b(name.lower().encode(), digest_size=32).digest()


def derive_value_key(name: str) -> bytes:
    """The value key: blake2b-256 of the name keyed with the name hash (Oxen, libsession)."""
    lowered = name.lower().encode()
    return hashlib.blake2b(lowered, key=compute_name_hash(name), digest_size=32).digest()


def encrypt_value(name: str, session_id: bytes, nonce: bytes) -> bytes:
    """``ciphertext || nonce``: XChaCha20-Poly1305 of the Session ID under the name's key.

    ``nonce`` must be 24 fresh random bytes (the caller draws them; the chain never does).
    """
    if len(session_id) != SESSION_ID_SIZE or len(nonce) != NONCE_SIZE:
        raise ValueError("a Session ID is 33 bytes and the nonce 24")
    key = derive_value_key(normalize_name(name))
    ciphertext = bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(session_id, None, nonce, key)
    return bytes(ciphertext) + nonce


def decrypt_value(name: str, stored: bytes) -> bytes:
    """The plaintext of a stored value (``ciphertext || nonce``); raises ``ValueError`` if wrong."""
    if len(stored) <= NONCE_SIZE + 16:
        raise ValueError("the stored value is too short")
    ciphertext, nonce = stored[:-NONCE_SIZE], stored[-NONCE_SIZE:]
    try:
        plain = bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, None, nonce, derive_value_key(name)
        )
    except Exception as exc:  # libsodium raises CryptoError on a bad tag
        raise ValueError("the value does not decrypt with this name") from exc
    return bytes(plain)


# -- state -------------------------------------------------------------------------------------


class NameRecord(Record, frozen=True):
    encrypted_value: bytes
    owner: AccountKey
    backup_owner: AccountKey | None
    expiry_height: Height
    update_id: Hash32


_record = Decoder(NameRecord)


def get_name(view: Overlay, name_hash: bytes) -> NameRecord | None:
    raw = view.get(NAME_PREFIX + name_hash)
    return None if raw is None else _record.decode(raw)


def is_expired(record: NameRecord, height: int) -> bool:
    return record.expiry_height <= height


def _put(view: Overlay, name_hash: bytes, record: NameRecord) -> None:
    view.put(NAME_PREFIX + name_hash, encode(record))


def process_genesis_name(view: Overlay, event: GenesisName, ctx: BlockContext) -> None:
    if get_name(view, event.name_hash) is not None:
        raise InvalidEvent("name already registered")
    if event.expiry_height <= 0:
        raise InvalidEvent("a genesis name must expire after genesis")
    record = NameRecord(
        event.encrypted_value, event.owner, event.backup_owner, event.expiry_height, compute_event_hash(event)
    )
    _put(view, event.name_hash, record)
    schedule(view, event.expiry_height, EXPIRE_NAME, bytes(event.name_hash))


def process_sns_buy(view: Overlay, tx: SnsBuy, ctx: BlockContext) -> None:
    current = get_name(view, tx.name_hash)
    if current is not None and not is_expired(current, ctx.height):
        raise InvalidEvent(f"name taken until height {current.expiry_height}")
    ledger.decrease_balance(view, tx.sender, ctx.params.sns_price, "name price")
    ledger.increase_pool(view, ctx.params.sns_price)
    expiry = Height(ctx.height + ctx.params.sns_period)
    _put(
        view,
        tx.name_hash,
        NameRecord(tx.encrypted_value, tx.owner, tx.backup_owner, expiry, compute_event_hash(tx)),
    )
    schedule(view, expiry, EXPIRE_NAME, bytes(tx.name_hash))
    view.emit(NameBought(tx.name_hash, tx.owner, expiry))


def _live_record(view: Overlay, name_hash: bytes, height: int) -> NameRecord:
    record = get_name(view, name_hash)
    if record is None:
        raise InvalidEvent("no such name")
    if is_expired(record, height):
        raise InvalidEvent(f"the name expired at height {record.expiry_height}")
    return record


def process_sns_update(view: Overlay, tx: SnsUpdate, ctx: BlockContext) -> None:
    record = _live_record(view, tx.name_hash, ctx.height)
    if tx.sender not in (record.owner, record.backup_owner):
        raise InvalidEvent("only the owner or the backup owner may update a name")
    if tx.prev_update_id != record.update_id:
        raise InvalidEvent("the update names a previous update that is not the record's current one")
    backup = None if tx.clear_backup_owner else (tx.backup_owner or record.backup_owner)
    updated = msgspec.structs.replace(
        record,
        encrypted_value=tx.encrypted_value if tx.encrypted_value is not None else record.encrypted_value,
        owner=tx.owner or record.owner,
        backup_owner=backup,
        update_id=compute_event_hash(tx),
    )
    _put(view, tx.name_hash, updated)
    view.emit(NameUpdated(tx.name_hash))


def process_sns_renew(view: Overlay, tx: SnsRenew, ctx: BlockContext) -> None:
    record = _live_record(view, tx.name_hash, ctx.height)
    ledger.decrease_balance(view, tx.sender, ctx.params.sns_price, "name price")
    ledger.increase_pool(view, ctx.params.sns_price)
    expiry = Height(record.expiry_height + ctx.params.sns_period)
    _put(view, tx.name_hash, msgspec.structs.replace(record, expiry_height=expiry))
    schedule(view, expiry, EXPIRE_NAME, bytes(tx.name_hash))
    view.emit(NameRenewed(tx.name_hash, expiry))


def process_due_expiry(view: Overlay, name_hash: bytes, height: int) -> None:
    record = get_name(view, name_hash)
    if record is not None and record.expiry_height == height:  # else renewed or re-bought since
        view.emit(NameExpired(name_hash))
