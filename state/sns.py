"""Session Name Service records.

Keys: ``sns/<32-byte name hash>`` → :class:`NameRecord`. The chain never sees a name, only its
blake2b-256 hash, and the value only encrypted with a key derived from the name.
"""

from __future__ import annotations

from state.encoding import Decoder, Record, encode
from state.errors import InvalidEvent
from state.events import GenesisName
from state.types import AccountKey, Height
from state.view import Overlay

NAME_PREFIX = b"sns/"


class NameRecord(Record, frozen=True):
    encrypted_value: bytes
    owner: AccountKey
    backup_owner: AccountKey | None
    expiry_height: Height


_record = Decoder(NameRecord)


def get_name(view: Overlay, name_hash: bytes) -> NameRecord | None:
    raw = view.get(NAME_PREFIX + name_hash)
    return None if raw is None else _record.decode(raw)


def process_genesis_name(view: Overlay, event: GenesisName) -> None:
    if get_name(view, event.name_hash) is not None:
        raise InvalidEvent("name already registered")
    if event.expiry_height <= 0:
        raise InvalidEvent("a genesis name must expire after genesis")
    record = NameRecord(event.encrypted_value, event.owner, event.backup_owner, event.expiry_height)
    view.put(NAME_PREFIX + event.name_hash, encode(record))
