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

import itertools
import json
import math
import re
from collections.abc import Iterator
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


# -- JSON from outside (genesis files, key files, RPC bodies) ----------------------------------

MAX_JSON_DEPTH = 64
"""Nesting deeper than this is refused before parsing: no document of ours needs more than 8,
and a parser that recurses per level must never meet thousands of levels (a few hundred KB of
``[`` overflows the C stack of any recursive parser once the recursion limit is raised)."""

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in ``data`` (brackets inside strings ignored)."""
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(_DEPTH_STEP[b] for b in brackets), default=0)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r} in a JSON object")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one that no float can hold (``1e400``) is
    refused rather than read as infinity, which no JSON answer could echo back."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _text_strings(value: Any) -> Iterator[str]:
    """Every string in a parsed document, keys included (the document is at most
    :data:`MAX_JSON_DEPTH` deep, so the recursion is bounded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _text_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _text_strings(item)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_json(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from outside the node, or raise :class:`DecodeError` with one line saying why.

    Refuses nesting deeper than ``max_depth`` (checked before any recursive parsing), duplicate
    object keys, ``NaN``/``Infinity``, numbers out of a float's range (``1e400``), invalid UTF-8,
    and strings that are not Unicode text: a lone UTF-16 surrogate (``"\\ud800"``, or its three
    UTF-8 bytes, which Python's parser lets through) can be neither echoed in an answer nor
    written to a log.
    """
    try:
        raw = data.encode() if isinstance(data, str) else data
    except UnicodeEncodeError:
        raise DecodeError("not valid JSON: not Unicode text (a lone surrogate)") from None
    if json_depth(raw) > max_depth:
        raise DecodeError(f"not valid JSON: nested deeper than {max_depth} levels")
    try:
        document = json.loads(
            raw,
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
        )
    except UnicodeDecodeError:
        raise DecodeError("not valid JSON: not UTF-8 text") from None
    except RecursionError:
        raise DecodeError("not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError too
        raise DecodeError(f"not valid JSON: {exc}") from None
    # a surrogate can only come from an escape or from its UTF-8 bytes (lead byte 0xED)
    if (b"\\u" in raw or b"\xed" in raw) and not all(map(_is_unicode, _text_strings(document))):
        raise DecodeError("not valid JSON: a string that is not Unicode text (a lone surrogate)")
    return document
