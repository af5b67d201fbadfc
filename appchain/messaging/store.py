"""The message store: Session messages in their own LevelDB database, ``<home>/data/messages``.

This module owns the keyspace; nothing else reads or writes its keys. An owner is the 33-byte
account id (network prefix byte and 32-byte key), a namespace an int16 stored offset by 2^15 as
two big-endian bytes (so keys sort by namespace), a sequence number a u64 counting stores.

===============================  ===========================================================
key                              value
===============================  ===========================================================
``M/version``                    the keyspace version (1)
``M/seq``                        the next sequence number (u64)
``M/chain``                      :class:`Followed`: the last chain height the layer processed
``M/members``                    the swarm membership at that height: ``[(node key, swarm id)…]``
``m/<owner><ns><seq>``           :class:`Stored`: one message (hash, times, data)
``i/<hash>``                     ``<owner><ns><seq>``: where the message with that hash is
``x/<expiry><hash>``             nothing: the expiry index the sweep walks, oldest first
``r/<owner><token>``             the time a subaccount token was revoked (at most 50 per owner)
===============================  ===========================================================

Rules, as session-storage-server keeps them (``oxenss/storage/database.cpp``):

- a message's hash is global: storing the same hash again stores nothing, and only moves its
  expiry later if the new one is later (``already`` in the reply);
- ``retrieve`` returns an owner's messages of one namespace in the order they were stored,
  after ``last_hash`` when it names one of them, cut by a count and an estimated size, and always
  at least one message when there is any;
- a store to a public outbox (a namespace ``-n`` with ``n % 20 == 1``) replaces every other
  message of its owner there;
- expired messages are removed by :meth:`MessageStore.sweep` (the node runs it every 10 s).

Every change is one write batch, and the chain height the layer has processed is written in the
batch that applies what that height changed (:meth:`MessageStore.write`), so a restart resumes
exactly there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plyvel

from appchain.home.store import StoreCorrupt
from state.encoding import DecodeError, Decoder, Record, encode

VERSION_KEY = b"M/version"
SEQUENCE_KEY = b"M/seq"
FOLLOWED_KEY = b"M/chain"
MEMBERS_KEY = b"M/members"
MESSAGE_PREFIX = b"m/"
HASH_PREFIX = b"i/"
EXPIRY_PREFIX = b"x/"
REVOKED_PREFIX = b"r/"
KEYSPACE_VERSION = 1

OWNER_SIZE = 33
NAMESPACE_OFFSET = 1 << 15
RETRIEVE_MAX_SIZE = 7_800_000
MESSAGE_OVERHEAD = 100
"""Bytes counted per message, beside its hash and base64 data, in retrieve's size estimate."""
MAX_REVOKED = 50
ALL = "all"


class Stored(Record, frozen=True):
    hash: bytes
    timestamp: int
    expiry: int
    data: bytes


class Followed(Record, frozen=True):
    height: int
    block_hash: bytes


_stored = Decoder(Stored)
_followed = Decoder(Followed)
_members = Decoder(list[tuple[bytes, int]])


def compute_message_hash(owner: bytes, namespace: int, data: bytes) -> bytes:
    """BLAKE2b-256 of prefix byte ‖ key ‖ namespace in decimal (nothing for 0) ‖ data."""
    text = b"" if namespace == 0 else str(namespace).encode()
    return hashlib.blake2b(owner + text + data, digest_size=32).digest()


def hash_text(raw: bytes) -> str:
    """The hash as the storage server writes it: unpadded standard base64 (43 characters)."""
    return binascii.b2a_base64(raw, newline=False).decode().rstrip("=")


def hash_bytes(text: str) -> bytes | None:
    """The 32 bytes of a 43-character hash, or ``None`` if it is not one."""
    if len(text) != 43:
        return None
    try:
        raw = base64.b64decode(text + "=", validate=True)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def is_public_inbox(namespace: int) -> bool:
    """A multiple of 10 (negative ones too): anyone may store there, without a signature."""
    return namespace % 10 == 0


def is_public_outbox(namespace: int) -> bool:
    return namespace < 0 and (-namespace) % 20 == 1


def _ns(namespace: int) -> bytes:
    return (namespace + NAMESPACE_OFFSET).to_bytes(2, "big")


def _message_key(owner: bytes, namespace: int, seq: int) -> bytes:
    return MESSAGE_PREFIX + owner + _ns(namespace) + seq.to_bytes(8, "big")


def _expiry_key(expiry: int, digest: bytes) -> bytes:
    return EXPIRY_PREFIX + max(expiry, 0).to_bytes(8, "big") + digest


@dataclass
class Message:
    owner: bytes
    namespace: int
    seq: int
    stored: Stored

    @property
    def hash(self) -> bytes:
        return self.stored.hash


@dataclass
class Batch:
    """Pending writes of one operation (and, for the consumer, the height they belong to)."""

    puts: dict[bytes, bytes] = field(default_factory=dict)
    deletes: set[bytes] = field(default_factory=set)

    def put(self, key: bytes, value: bytes) -> None:
        self.deletes.discard(key)
        self.puts[key] = value

    def delete(self, key: bytes) -> None:
        self.puts.pop(key, None)
        self.deletes.add(key)


@dataclass
class StoreResult:
    hash: bytes
    expiry: int
    already: bool


class MessageStore:
    def __init__(self, path: Path, *, sync: bool = True) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._db = plyvel.DB(str(path), create_if_missing=True, paranoid_checks=True)
        except plyvel.Error as exc:
            raise StoreCorrupt(f"cannot open the message store {path}: {exc}") from None
        self.sync = sync
        version = self._get(VERSION_KEY)
        if version is None:
            self._db.put(VERSION_KEY, encode(KEYSPACE_VERSION), sync=sync)
        elif version != encode(KEYSPACE_VERSION):
            raise StoreCorrupt(f"the message store {path} has an unknown keyspace version")
        raw = self._get(SEQUENCE_KEY)
        self._seq = 0 if raw is None else int.from_bytes(raw, "big")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MessageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level -------------------------------------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._db.get(key, verify_checksums=True)
        except plyvel.Error as exc:
            raise StoreCorrupt(f"cannot read the message store: {exc}") from None
        return value

    def _scan(self, **options: Any) -> Iterator[Any]:
        try:
            with self._db.iterator(verify_checksums=True, **options) as it:
                yield from it
        except plyvel.Error as exc:
            raise StoreCorrupt(f"cannot read the message store: {exc}") from None

    def write(self, batch: Batch, followed: Followed | None = None) -> None:
        """Apply ``batch`` atomically, with the chain position it brings the layer to."""
        try:
            with self._db.write_batch(transaction=True, sync=self.sync) as out:
                for key in batch.deletes:
                    out.delete(key)
                for key, value in batch.puts.items():
                    out.put(key, value)
                out.put(SEQUENCE_KEY, self._seq.to_bytes(8, "big"))
                if followed is not None:
                    out.put(FOLLOWED_KEY, encode(followed))
        except plyvel.Error as exc:
            raise StoreCorrupt(f"cannot write the message store: {exc}") from None

    def _decode(self, raw: bytes) -> Stored:
        try:
            return _stored.decode(raw)
        except DecodeError as exc:
            raise StoreCorrupt(f"a message record does not decode: {exc}") from None

    def followed(self) -> Followed | None:
        raw = self._get(FOLLOWED_KEY)
        return None if raw is None else _followed.decode(raw)

    def membership(self) -> dict[bytes, int]:
        raw = self._get(MEMBERS_KEY)
        return {} if raw is None else dict(_members.decode(raw))

    def follow(
        self, followed: Followed, membership: dict[bytes, int], dropped: Iterable[Message] = ()
    ) -> None:
        """Record the chain height processed and its membership, with the copies handed over
        (dropped), in one batch."""
        batch = Batch()
        for message in dropped:
            self._remove(batch, message)
        batch.put(MEMBERS_KEY, encode(sorted(membership.items())))
        self.write(batch, followed)

    # -- reading -----------------------------------------------------------------------------

    def locate(self, digest: bytes) -> Message | None:
        where = self._get(HASH_PREFIX + digest)
        if where is None:
            return None
        owner, ns, seq = where[:OWNER_SIZE], where[OWNER_SIZE : OWNER_SIZE + 2], where[OWNER_SIZE + 2 :]
        key = MESSAGE_PREFIX + where
        raw = self._get(key)
        if raw is None:
            raise StoreCorrupt(f"the hash index names a missing message {hash_text(digest)}")
        namespace = int.from_bytes(ns, "big") - NAMESPACE_OFFSET
        return Message(owner, namespace, int.from_bytes(seq, "big"), self._decode(raw))

    def messages(self, owner: bytes, namespace: int | None = None, after_seq: int = -1) -> Iterator[Message]:
        """An owner's messages (of one namespace, or all), in namespace then store order."""
        prefix = MESSAGE_PREFIX + owner + (b"" if namespace is None else _ns(namespace))
        start = prefix if after_seq < 0 or namespace is None else prefix + (after_seq + 1).to_bytes(8, "big")
        for key, raw in self._scan(start=start):
            if not key.startswith(prefix):
                break
            rest = key[len(MESSAGE_PREFIX) + OWNER_SIZE :]
            yield Message(
                owner,
                int.from_bytes(rest[:2], "big") - NAMESPACE_OFFSET,
                int.from_bytes(rest[2:], "big"),
                self._decode(raw),
            )

    def all_messages(self) -> Iterator[Message]:
        for key, raw in self._scan(prefix=MESSAGE_PREFIX):
            rest = key[len(MESSAGE_PREFIX) :]
            yield Message(
                rest[:OWNER_SIZE],
                int.from_bytes(rest[OWNER_SIZE : OWNER_SIZE + 2], "big") - NAMESPACE_OFFSET,
                int.from_bytes(rest[OWNER_SIZE + 2 :], "big"),
                self._decode(raw),
            )

    def owners(self) -> Iterator[bytes]:
        """Every owner with at least one message, once each, in key order."""
        last = b""
        for key in self._scan(prefix=MESSAGE_PREFIX, include_value=False):
            owner = key[len(MESSAGE_PREFIX) : len(MESSAGE_PREFIX) + OWNER_SIZE]
            if owner != last:
                yield owner
                last = owner

    def owner_counts(self, limit: int) -> dict[bytes, int]:
        """How many messages each owner holds, for the first ``limit`` owners in key order (keys
        only: no message is decoded)."""
        counts: dict[bytes, int] = {}
        for key in self._scan(prefix=MESSAGE_PREFIX, include_value=False):
            owner = key[len(MESSAGE_PREFIX) : len(MESSAGE_PREFIX) + OWNER_SIZE]
            if owner not in counts:
                if len(counts) >= limit:
                    break
                counts[owner] = 0
            counts[owner] += 1
        return counts

    def retrieve(
        self, owner: bytes, namespace: int, last_hash: bytes | None, max_count: int | None, max_size: int
    ) -> tuple[list[Message], bool]:
        """Messages after ``last_hash`` (when it is one of this owner's in this namespace), cut
        at ``max_count`` and at ``max_size`` estimated bytes (at least one message); and whether
        more remain."""
        after = -1
        if last_hash is not None:
            found = self.locate(last_hash)
            if found is not None and found.owner == owner and found.namespace == namespace:
                after = found.seq
        out: list[Message] = []
        size = 0
        for message in self.messages(owner, namespace, after):
            if max_count is not None and len(out) >= max_count:
                return out, True
            cost = MESSAGE_OVERHEAD + 43 + len(message.stored.data) * 4 // 3
            if out and size + cost > max_size:
                return out, True
            out.append(message)
            size += cost
        return out, False

    # -- writing -----------------------------------------------------------------------------

    def _put(self, batch: Batch, owner: bytes, namespace: int, seq: int, stored: Stored) -> None:
        batch.put(_message_key(owner, namespace, seq), encode(stored))
        batch.put(HASH_PREFIX + stored.hash, owner + _ns(namespace) + seq.to_bytes(8, "big"))
        batch.put(_expiry_key(stored.expiry, stored.hash), b"")

    def _remove(self, batch: Batch, message: Message) -> None:
        batch.delete(_message_key(message.owner, message.namespace, message.seq))
        batch.delete(HASH_PREFIX + message.hash)
        batch.delete(_expiry_key(message.stored.expiry, message.hash))

    def _set_expiry(self, batch: Batch, message: Message, expiry: int) -> None:
        batch.delete(_expiry_key(message.stored.expiry, message.hash))
        stored = Stored(message.hash, message.stored.timestamp, expiry, message.stored.data)
        batch.put(_message_key(message.owner, message.namespace, message.seq), encode(stored))
        batch.put(_expiry_key(expiry, message.hash), b"")

    def add(
        self, batch: Batch, owner: bytes, namespace: int, data: bytes, timestamp: int, expiry: int
    ) -> StoreResult:
        """Store a message into ``batch`` (the caller writes it); a known hash only extends."""
        digest = compute_message_hash(owner, namespace, data)
        existing = self.locate(digest)
        if existing is not None:
            if expiry > existing.stored.expiry:
                self._set_expiry(batch, existing, expiry)
                return StoreResult(digest, expiry, True)
            return StoreResult(digest, existing.stored.expiry, True)
        if is_public_outbox(namespace):
            for old in self.messages(owner, namespace):
                self._remove(batch, old)
        self._put(batch, owner, namespace, self._seq, Stored(digest, timestamp, expiry, data))
        self._seq += 1
        return StoreResult(digest, expiry, False)

    def store(self, owner: bytes, namespace: int, data: bytes, timestamp: int, expiry: int) -> StoreResult:
        batch = Batch()
        result = self.add(batch, owner, namespace, data, timestamp, expiry)
        self.write(batch)
        return result

    def copy_in(self, messages: Iterable[tuple[bytes, int, Stored]]) -> int:
        """Take messages handed over by other nodes (kept as they are); returns how many were new.
        Each ``stored.hash`` must be :func:`compute_message_hash` of the message, as the caller
        computed it from the data received (the wire carries no hash to trust)."""
        batch = Batch()
        added = 0
        for owner, namespace, stored in messages:
            if self.locate(stored.hash) is not None or HASH_PREFIX + stored.hash in batch.puts:
                continue
            self._put(batch, owner, namespace, self._seq, stored)
            self._seq += 1
            added += 1
        if added:
            self.write(batch)
        return added

    def delete_hashes(self, owner: bytes, hashes: Iterable[bytes]) -> list[bytes]:
        batch = Batch()
        deleted = []
        for digest in hashes:
            message = self.locate(digest)
            if message is not None and message.owner == owner and digest not in deleted:
                self._remove(batch, message)
                deleted.append(digest)
        self.write(batch)
        return deleted

    def delete_where(
        self, owner: bytes, namespace: int | str, *, before: int | None = None
    ) -> dict[int, list[bytes]]:
        """Delete an owner's messages in ``namespace`` (or ``"all"``), those with
        ``timestamp <= before`` when given; the deleted hashes by namespace."""
        batch = Batch()
        deleted: dict[int, list[bytes]] = {}
        for message in self.messages(owner, None if namespace == ALL else int(namespace)):
            if before is not None and message.stored.timestamp > before:
                continue
            self._remove(batch, message)
            deleted.setdefault(message.namespace, []).append(message.hash)
        self.write(batch)
        return deleted

    def expire_where(self, owner: bytes, namespace: int | str, expiry: int) -> dict[int, list[bytes]]:
        """Shorten to ``expiry`` every message of an owner in ``namespace`` (or ``"all"``) that
        expires later; the updated hashes by namespace."""
        batch = Batch()
        updated: dict[int, list[bytes]] = {}
        for message in self.messages(owner, None if namespace == ALL else int(namespace)):
            if message.stored.expiry <= expiry:
                continue
            self._set_expiry(batch, message, expiry)
            updated.setdefault(message.namespace, []).append(message.hash)
        self.write(batch)
        return updated

    def update_expiries(self, changes: Iterable[tuple[Message, int]]) -> None:
        batch = Batch()
        for message, expiry in changes:
            self._set_expiry(batch, message, expiry)
        self.write(batch)

    def sweep(self, now_ms: int, limit: int = 10_000) -> int:
        """Remove up to ``limit`` messages whose expiry is at or before ``now_ms``."""
        batch = Batch()
        removed = 0
        stop = EXPIRY_PREFIX + (now_ms + 1).to_bytes(8, "big")
        for key in self._scan(start=EXPIRY_PREFIX, stop=stop, include_value=False):
            message = self.locate(key[len(EXPIRY_PREFIX) + 8 :])
            if message is None:
                batch.delete(key)
            else:
                self._remove(batch, message)
            removed += 1
            if removed >= limit:
                break
        if removed:
            self.write(batch)
        return removed

    # -- subaccount revocation ----------------------------------------------------------------

    def is_revoked(self, owner: bytes, token: bytes) -> bool:
        return self._get(REVOKED_PREFIX + owner + token) is not None

    def revoke(self, owner: bytes, tokens: Iterable[bytes], now_ms: int) -> None:
        batch = Batch()
        for token in tokens:
            batch.put(REVOKED_PREFIX + owner + token, now_ms.to_bytes(8, "big"))
        existing = [(int.from_bytes(v, "big"), k) for k, v in self._scan(prefix=REVOKED_PREFIX + owner)]
        fresh = [(now_ms, REVOKED_PREFIX + owner + t) for t in tokens]
        everything = sorted({k: (t, k) for t, k in existing + fresh}.values())
        for _, key in everything[: max(0, len(everything) - MAX_REVOKED)]:
            batch.delete(key)
        self.write(batch)

    def unrevoke(self, owner: bytes, tokens: Iterable[bytes]) -> int:
        batch = Batch()
        count = 0
        for token in tokens:
            if self.is_revoked(owner, token):
                batch.delete(REVOKED_PREFIX + owner + token)
                count += 1
        self.write(batch)
        return count
