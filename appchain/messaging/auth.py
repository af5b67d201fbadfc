"""Who may act on an account: its own signature, or a subaccount token it signed.

A request names the account (``pubkey``) and signs the method's string; a ``05`` (Session ID,
X25519) account signs with the Ed25519 key it names in ``pubkey_ed25519``, which must convert to
it. A subaccount token (36 bytes: prefix, flags, two zero bytes, the subaccount's Ed25519 key),
signed by the account, lets that key act with the flags' permissions (:data:`READ`,
:data:`WRITE`, :data:`DELETE`; :data:`ANY_PREFIX` for any network prefix) until the account
revokes it (:meth:`~appchain.messaging.store.MessageStore.revoke`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appchain.messaging.requests import bad, decode_base64, parse_signature
from appchain.messaging.store import MessageStore
from state.crypto import ed25519

READ, WRITE, DELETE, ANY_PREFIX = 0x01, 0x02, 0x04, 0x08


@dataclass
class Auth:
    """Who signed a request: the account key, or a subaccount token signed by it."""

    signature: bytes
    ed25519: bytes | None = None
    token: bytes | None = None
    token_signature: bytes | None = None


def parse_auth(params: dict[str, Any], owner: bytes, *, required: bool = True) -> Auth | None:
    signature = parse_signature(params, required=required)
    if signature is None:
        return None
    auth = Auth(signature, parse_pubkey_ed25519(params, owner))
    token = params.get("subaccount")
    if token:
        if params.get("subaccount_sig") is None:
            raise bad("invalid subaccount: subaccount_sig is required when using subaccount")
        raw = parse_token(token, "invalid subaccount: expected base64 or hex-encoded subaccount token")
        auth.token, auth.token_signature = raw, parse_signature(params, "subaccount_sig")
    return auth


def parse_pubkey_ed25519(params: dict[str, Any], owner: bytes) -> bytes | None:
    """The Ed25519 key a ``05`` (X25519) account signs with, when the request names one."""
    ed = params.get("pubkey_ed25519")
    if ed is None:
        return None
    if owner[0] != 0x05:
        raise bad("pubkey_ed25519 is only permitted for 05[...] pubkeys")
    if not isinstance(ed, str) or len(ed) != 64:
        raise bad("Invalid pubkey_ed25519: expected 64 hex char or 32 byte pubkey")
    try:
        return bytes.fromhex(ed)
    except ValueError:
        raise bad("invalid pubkey_ed25519: value is not hex") from None


def parse_token(value: object, message: str) -> bytes:
    raw: bytes | None = None
    if isinstance(value, str) and len(value) == 72:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = None
    elif isinstance(value, str) and len(value) == 48:
        raw = decode_base64(value)
    if raw is None or len(raw) != 36:
        raise bad(message)
    return raw


def verify(
    store: MessageStore,
    owner: bytes,
    auth: Auth | None,
    message: bytes,
    needed: int,
    *,
    revocable: bool = True,
) -> bool:
    if auth is None:
        return False
    key = owner[1:]
    if auth.ed25519 is not None:
        try:
            converted = ed25519.x25519_public(auth.ed25519)
        except ValueError:  # not a curve point: converts to nothing, as libsodium refuses it
            return False
        if converted != key:
            return False
        key = auth.ed25519
    if auth.token is None:
        return ed25519.verify(key, message, auth.signature)
    token = auth.token
    if revocable and store.is_revoked(owner, token):
        return False
    flags = token[1]
    if token[0] != owner[0] and not flags & ANY_PREFIX:
        return False
    if flags & needed != needed:
        return False
    if auth.token_signature is None or not ed25519.verify(key, token, auth.token_signature):
        return False
    return ed25519.verify(token[4:], message, auth.signature)
