"""A storage RPC request read as the storage server reads it, and what answers it.

The storage server (``oxenss``) reads each parameter with its own words for every mistake; a
client written for it sees the same here: :func:`bad` (400, ``invalid request: …``) with the
server's text, integers read as 64-bit (nlohmann's ``get<int64_t>``), timestamps in
milliseconds, base64 with or without padding, ``ifelse`` conditions as ``load_condition`` reads
them. A method answers with a :class:`Reply`, or raises :class:`Fail` with a status and a plain
text; :class:`Misdirected` is the 421 that names the swarm owning the account.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, TypeGuard

import msgspec

from appchain.messaging.store import ALL, hash_bytes


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any] | str

    def encode(self) -> tuple[bytes, str]:
        """The HTTP body and content type."""
        if isinstance(self.body, str):  # an error text may echo a request's words: never fail on them
            return self.body.encode("utf-8", "backslashreplace"), "text/plain; charset=utf-8"
        return msgspec.json.encode(self.body, order="sorted"), "application/json"


class Fail(Exception):
    """Answer with ``status`` and the plain-text ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str) -> Fail:
    return Fail(400, "invalid request: " + message)


def one_of(params: dict[str, Any], name: str, alias: str) -> Any:
    if name in params and alias in params:
        raise bad(f"Cannot specify both '{name}' and '{alias}'")
    return params.get(name, params.get(alias))


def parse_pubkey(
    params: dict[str, Any], message: str = "Pubkey must be 66 hex digits (33 bytes) long"
) -> bytes:
    value = one_of(params, "pubkey", "pubKey")
    if value is None:
        raise bad("Required field 'pubkey' missing")
    if not isinstance(value, str):
        raise bad("Invalid value given for 'pubkey': expected string")
    try:
        raw = bytes.fromhex(value) if len(value) == 66 else b""
    except ValueError:
        raw = b""
    if len(raw) != 33:
        raise bad(message)
    return raw


INT64 = range(-(2**63), 2**63)
"""The integers a parameter may hold: the storage server reads every one as a 64-bit integer
(nlohmann's ``get<int64_t>``), so a larger one is no integer to it, and none reaches a store."""


def is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value in INT64


def parse_integer(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise bad(f"Required field '{name}' missing")
        return None
    if not is_integer(value):
        raise bad(f"Invalid value given for '{name}': expected integer")
    return value


def parse_timestamp(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise bad(f"Required field '{name}' missing")
        return None
    if not is_integer(value) or value < 0:
        raise bad(f"Invalid value given for '{name}': expected integer timestamp (in milliseconds)")
    if value < 1_000_000_000:
        raise bad(f"Invalid timestamp for '{name}': timestamp must be in milliseconds")
    return value


def parse_stringy_int(params: dict[str, Any], name: str, *, unsigned: bool) -> int | None:
    """``ttl`` and store's ``timestamp``: an integer, or a string holding one."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number not in INT64:
            raise bad(f"Invalid value given for '{name}': {json.dumps(value[:100])}")
        return number
    if not is_integer(value) or (unsigned and value < 0):
        raise bad(
            f"Invalid value given for '{name}': expected {'positive integer' if unsigned else 'integer'}"
        )
    return value


def parse_namespace(params: dict[str, Any], *, allow_all: bool = False) -> int | str:
    value = params.get("namespace", 0)
    if value is None:
        return 0
    if allow_all and value == ALL:
        return ALL
    if isinstance(value, bool) or not isinstance(value, int):
        expected = 'integer or "all"' if allow_all else "16-bit integer"
        raise bad(f"Invalid value given for 'namespace': expected {expected}")
    if not -32768 <= value <= 32767:
        raise bad("Invalid value given for 'namespace': value out of range")
    return value


def namespace_text(namespace: int | str) -> str:
    """How a namespace appears in signed strings: nothing for 0, else decimal (or ``all``)."""
    return "" if namespace == 0 else str(namespace)


def decode_base64(value: str) -> bytes | None:
    if len(value) % 4 == 1:
        return None
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (ValueError, binascii.Error):
        return None


def parse_signature(
    params: dict[str, Any], name: str = "signature", *, required: bool = True
) -> bytes | None:
    value = params.get(name)
    if value is None:
        if required:
            raise bad(f"Required field '{name}' missing")
        return None
    raw = decode_base64(value) if isinstance(value, str) and len(value) in (86, 88) else None
    if raw is None or len(raw) != 64:
        if name == "subaccount_sig":
            raise bad("invalid subaccount signature: expected base64 encoded Ed25519 signature")
        raise bad("invalid signature: expected base64 encoded Ed25519 signature")
    return raw


def parse_hashes(params: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    """The ``messages`` hashes as given and their bytes (``None`` for one that is not a hash)."""
    value = params.get("messages")
    if value is None:
        raise bad("Required field 'messages' missing")
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise bad("Invalid value given for 'messages': expected string array")
    if not items:
        raise bad("messages does not contain any message hashes")
    return [(item, hash_bytes(item)) for item in items]


def parse_valid_hashes(params: dict[str, Any]) -> list[tuple[str, bytes]]:
    """:func:`parse_hashes`, refusing one that is not a hash."""
    pairs = []
    for text, raw in parse_hashes(params):
        if raw is None:
            raise bad(f"invalid message hash: {text}")
        pairs.append((text, raw))
    return pairs


def parse_conditions(condition: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The conditions of an ``ifelse`` request, parsed as the storage server does
    (``load_condition``): heights are integers; versions are integer arrays (or one integer),
    padded with zeros or cut to 2 (``hf_*``) or 3 (``v_*``) parts; an empty array, like a null,
    is no condition. A value of another type is refused with the usual parameter error."""
    out: dict[str, tuple[int, ...]] = {}
    for name in ("height_at_least", "height_before", "hf_at_least", "hf_before", "v_at_least", "v_before"):
        value = condition.get(name)
        if value is None:
            continue
        if name.startswith("height"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad(f"Invalid value given for '{name}': expected integer")
            out[name] = (value,)
            continue
        parts = value if isinstance(value, list) else [value]
        if not all(isinstance(part, int) and not isinstance(part, bool) for part in parts):
            raise bad(f"Invalid value given for '{name}': expected integer array")
        if parts:
            size = 2 if name.startswith("hf") else 3
            out[name] = tuple((parts + [0] * size)[:size])
    return out


class Misdirected(Fail):
    """421 with the owning swarm, as JSON."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(421, "misdirected")
        self.body = body
