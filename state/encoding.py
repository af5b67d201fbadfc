"""Canonical encoding: one schema for the wire, the disk and hashing.

Consensus containers are frozen ``msgspec.Struct`` classes encoded as msgpack *arrays*
(``array_like=True``), so the bytes depend only on field order, never on field names or on
dictionary iteration. Tagged unions put the tag first. The encoder runs with
``order="deterministic"`` so any map that slips in is sorted too.

Decoding is strict: unknown tags, wrong lengths and negative integers raise
:class:`DecodeError`. A decode error on data the node wrote itself means corruption and must
stop the node loudly; on data from a peer or a user it is a clean rejection.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder(order="deterministic")


class DecodeError(ValueError):
    """Bytes that are not a valid encoding of the expected type."""


class Record(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """Base for every canonical container: frozen, compact, field order is the format."""


def encode(obj: Any) -> bytes:
    """Canonical bytes of ``obj``."""
    return _encoder.encode(obj)


def decode(data: bytes, type_: type[T]) -> T:
    """Decode canonical bytes into ``type_`` or raise :class:`DecodeError`."""
    try:
        return msgspec.msgpack.decode(data, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(f"cannot decode {getattr(type_, '__name__', type_)}: {exc}") from None


class Decoder(Generic[T]):
    """A reusable typed decoder, for hot paths (replay decodes every block)."""

    __slots__ = ("_decoder", "_name")

    def __init__(self, type_: type[T]) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(type_)
        self._name = getattr(type_, "__name__", str(type_))

    def decode(self, data: bytes) -> T:
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DecodeError(f"cannot decode {self._name}: {exc}") from None
