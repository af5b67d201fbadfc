"""The LevelDB store: the event log (the only source of truth), its headers, deltas and snapshots.

This module owns the whole keyspace; nothing else reads or writes LevelDB keys. Heights are
8-byte big-endian so keys sort by height.

============================  ===============================================================
key                           value
============================  ===============================================================
``m/genesis``                 the genesis hash (32 bytes) this database belongs to
``m/applied``                 :class:`Applied`: height, block hash and state root of the tip
``h/<height>``                the block :class:`~state.block.Header`
``e/<height>``                the block's body: :class:`BlockBody` (events and Pulse signatures)
``d/<height>``                the block's state delta: ``(key, before, after)`` per changed key
``c/<height>``                the :class:`~consensus.checkpoint.CheckpointCertificate` of a checkpoint
``m/final``                   :class:`Final`: the highest certified (so final) checkpoint
``g/<height><round><stage>``  double-sign guard: the hash of what this node signed in that slot
                              (:meth:`BlockStore.remember`; written with sync before signing)
``S/<height>``                :class:`~state.snapshot.SnapshotManifest` of the state after that block
``s/<height>/<chunk><part>``  part ``part`` of snapshot chunk ``chunk`` (4-byte numbers): up to 4,096
                              ``(key, value)`` pairs in path order (:mod:`state.snapshot`)
``m/base``                    the height the log starts at, when the node joined by state sync
                              (absent: 0). Below it the log holds only checkpoint headers and
                              certificates, and the headers of the entropy lag before the base
``q/<height>``                the encoded :class:`~state.checkpoints.CheckpointQuorum` that
                              certified checkpoint ``height``, for a checkpoint below the base
                              (above it, the delta of block ``height - checkpoint_interval``
                              holds it)
``x/<height><round><stage>``  equivocation evidence (:class:`~consensus.evidence.Evidence`): two
``<signer>``                  messages a quorum member signed for that slot (round 4 bytes,
                              stage 2, signer the 32-byte node key); the first record of a
                              signer and slot is kept, later ones are dropped
                              (:meth:`BlockStore.put_evidence`). Kept for good: it is rare and
                              small, and never part of the chain
============================  ===============================================================

Rules:

- Appending a block writes its header, events, delta, the new ``m/applied`` and, every
  ``snapshot_interval`` blocks, a snapshot, in **one** write batch: after a crash the database
  holds either the whole block or none of it, and ``m/applied`` never names a block that is
  not there (tendermint #425, cosmos-sdk #4959).
- Writes are synced (``fsync``) by default, so a block reported as written survives a power
  loss, not just a killed process.
- The two newest snapshots are kept; older ones are deleted in the batch that writes a new one.
  The snapshot at the base of a state-synced log is kept too: it is where a replay starts.
- Anything that fails to decode is corruption: :class:`StoreCorrupt`, never a silent skip.
  Reads verify LevelDB's block checksums, and any LevelDB error while reading or writing (a
  truncated or overwritten table file, an I/O error) is :class:`StoreCorrupt` naming the
  record it hit: the CLI prints it as one ``fatal:`` line, a node stops.
- The database is opened with LevelDB's ``paranoid_checks``: a write-ahead log damaged in the
  middle (a torn disk) stops the open with a corruption error instead of LevelDB's default of
  skipping the damaged records and keeping the later ones, which would leave a hole in the log.
  A log cut short at its end (a crash mid-write) still opens: the last, partial batch is dropped
  whole, and what remains is a prefix of the writes, consistent by the batch rule above.
- Only one process opens a database at a time (LevelDB's own ``LOCK`` file);
  :class:`StoreInUse` says so when another process holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import plyvel

from consensus.checkpoint import CheckpointCertificate
from consensus.evidence import Evidence, InvalidEvidence, decode_evidence
from state.block import Block, Header, PulseSignature
from state.checkpoints import checkpoint_quorum_key
from state.encoding import DecodeError, Decoder, Record, encode
from state.events import Event
from state.snapshot import SnapshotManifest, cut_snapshot, split_parts
from state.state import State
from state.transition import Change, PendingBlock
from state.types import MAX_U64, Hash32

GUARD_PREFIX = b"g/"
GENESIS_KEY = b"m/genesis"
FINAL_KEY = b"m/final"
CERTIFICATE_PREFIX = b"c/"
APPLIED_KEY = b"m/applied"
HEADER_PREFIX = b"h/"
EVENTS_PREFIX = b"e/"
DELTA_PREFIX = b"d/"
MANIFEST_PREFIX = b"S/"
CHUNK_PREFIX = b"s/"
BASE_KEY = b"m/base"
QUORUM_PREFIX = b"q/"
EVIDENCE_PREFIX = b"x/"
SNAPSHOTS_KEPT = 2


class StoreCorrupt(Exception):
    """The database contradicts itself or holds bytes that do not decode: stop the node."""


class StoreInUse(Exception):
    """Another process holds the database (a node, or a command, on the same home)."""


class Applied(Record, frozen=True):
    height: int
    block_hash: Hash32
    state_root: Hash32


class Final(Record, frozen=True):
    height: int
    block_hash: Hash32


class BlockBody(Record, frozen=True):
    events: tuple[Event, ...]
    signatures: tuple[PulseSignature, ...]


T = TypeVar("T")


def height_key(prefix: bytes, height: int) -> bytes:
    return prefix + height.to_bytes(8, "big")


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with ``prefix`` (prefixes end in ``/``)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


_RECORD_NAMES = {
    HEADER_PREFIX: "the header of block",
    EVENTS_PREFIX: "the events of block",
    DELTA_PREFIX: "the state delta of block",
    CERTIFICATE_PREFIX: "the certificate of block",
    MANIFEST_PREFIX: "the snapshot manifest at height",
    CHUNK_PREFIX: "a snapshot chunk at height",
    QUORUM_PREFIX: "the checkpoint quorum of height",
    GUARD_PREFIX: "the double-sign record of height",
    EVIDENCE_PREFIX: "the equivocation evidence of height",
}


def describe_key(key: bytes) -> str:
    """A record's key in words, for error messages: ``the header of block 252``."""
    name = _RECORD_NAMES.get(key[:2])
    if name is not None and len(key) >= 10:
        return f"{name} {int.from_bytes(key[2:10], 'big')}"
    return f"record {key.decode('ascii', 'replace')}"


def _is_lock_error(message: str) -> bool:
    """LevelDB's words when its ``LOCK`` file is held: by another process (``lock …: Resource
    temporarily unavailable``) or by this one (``lock … already held by process``)."""
    return "LOCK" in message and ("temporarily unavailable" in message or "already held" in message)


_applied = Decoder(Applied)
_header = Decoder(Header)
_body = Decoder(BlockBody)
_final = Decoder(Final)
_certificate = Decoder(CheckpointCertificate)
_delta = Decoder(list[tuple[bytes, bytes | None, bytes | None]])
_manifest = Decoder(SnapshotManifest)
_chunk = Decoder(list[tuple[bytes, bytes]])
_evidence = Decoder(Evidence)


def chunk_key(height: int, index: int, part: int) -> bytes:
    return height_key(CHUNK_PREFIX, height) + b"/" + index.to_bytes(4, "big") + part.to_bytes(4, "big")


def evidence_key(evidence: Evidence) -> bytes:
    """One key per signer and slot: a second record of the same equivocation finds it taken."""
    slot = evidence.round.to_bytes(4, "big") + evidence.stage.to_bytes(2, "big")
    return height_key(EVIDENCE_PREFIX, evidence.height) + slot + bytes(evidence.signer)


class BlockStore:
    """The node's LevelDB database."""

    def __init__(self, path: Path, *, create: bool = False, sync: bool = True) -> None:
        self.path = path
        self.sync = sync
        try:
            self._db = plyvel.DB(str(path), create_if_missing=create, paranoid_checks=True)
        except plyvel.Error as exc:
            message = _leveldb_message(exc)
            if _is_lock_error(message):
                raise StoreInUse(f"the database at {path} is in use by another process") from None
            raise StoreCorrupt(f"cannot open the database at {path}: {message}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> BlockStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------------

    def _decode(self, decoder: Decoder[T], key: bytes, raw: bytes) -> T:
        try:
            return decoder.decode(raw)
        except DecodeError as exc:
            raise StoreCorrupt(f"record {key!r} is corrupt: {exc}") from None

    def _get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._db.get(key, verify_checksums=True)
        except plyvel.Error as exc:
            raise StoreCorrupt(f"cannot read {describe_key(key)}: {_leveldb_message(exc)}") from None
        return value

    def _scan(self, what: str, **options: Any) -> Iterator[Any]:
        """``plyvel.DB.iterator(**options)`` with checksums verified and LevelDB errors fatal."""
        try:
            with self._db.iterator(verify_checksums=True, **options) as it:
                yield from it
        except plyvel.Error as exc:
            raise StoreCorrupt(f"cannot read {what}: {_leveldb_message(exc)}") from None

    @contextmanager
    def _batch(self, what: str, *, sync: bool) -> Iterator[plyvel.WriteBatch]:
        """One atomic write batch, written only if the block inside finishes without an exception;
        a LevelDB error while writing is fatal."""
        try:
            with self._db.write_batch(sync=sync, transaction=True) as batch:
                yield batch
        except plyvel.Error as exc:
            raise StoreCorrupt(f"cannot write {what}: {_leveldb_message(exc)}") from None

    def get_genesis_hash(self) -> bytes | None:
        return self._get(GENESIS_KEY)

    def get_applied(self) -> Applied | None:
        raw = self._get(APPLIED_KEY)
        return None if raw is None else self._decode(_applied, APPLIED_KEY, raw)

    def get_header(self, height: int) -> Header | None:
        key = height_key(HEADER_PREFIX, height)
        raw = self._get(key)
        return None if raw is None else self._decode(_header, key, raw)

    def get_body(self, height: int) -> BlockBody | None:
        key = height_key(EVENTS_PREFIX, height)
        raw = self._get(key)
        return None if raw is None else self._decode(_body, key, raw)

    def get_random_value(self, height: int) -> bytes:
        """The Pulse random value of block ``height`` (entropy of later quorums)."""
        header = self.get_header(height)
        if header is None:
            raise StoreCorrupt(f"header {height} is missing from the log")
        return header.random_value

    def get_delta_bytes(self, height: int) -> bytes | None:
        return self._get(height_key(DELTA_PREFIX, height))

    def get_delta(self, height: int) -> list[Change] | None:
        key = height_key(DELTA_PREFIX, height)
        raw = self._get(key)
        return None if raw is None else self._decode(_delta, key, raw)

    def get_final(self) -> Final | None:
        raw = self._get(FINAL_KEY)
        return None if raw is None else self._decode(_final, FINAL_KEY, raw)

    def get_certificate(self, height: int) -> CheckpointCertificate | None:
        key = height_key(CERTIFICATE_PREFIX, height)
        raw = self._get(key)
        return None if raw is None else self._decode(_certificate, key, raw)

    def iter_certificates(self, start: int) -> Iterator[CheckpointCertificate]:
        """The stored certificates of heights ``start`` and above, in height order."""
        for key, raw in self._scan(
            f"the certificates from block {start}",
            start=height_key(CERTIFICATE_PREFIX, start),
            stop=prefix_end(CERTIFICATE_PREFIX),
        ):
            yield self._decode(_certificate, key, raw)

    def write_certificate(self, certificate: CheckpointCertificate) -> None:
        """Keep a verified certificate; the finality marker moves up to it, never down."""
        final = self.get_final()
        with self._batch(f"the certificate of block {certificate.height}", sync=self.sync) as batch:
            batch.put(height_key(CERTIFICATE_PREFIX, certificate.height), encode(certificate))
            if final is None or certificate.height > final.height:
                batch.put(FINAL_KEY, encode(Final(certificate.height, certificate.block_hash)))

    def get_block(self, height: int) -> Block:
        header = self.get_header(height)
        body = self.get_body(height)
        if header is None or body is None:
            raise StoreCorrupt(f"block {height} is missing from the log")
        return Block(header, body.events, body.signatures)

    def iter_blocks(self, start: int, stop: int) -> Iterator[Block]:
        """Blocks ``start .. stop`` inclusive, read with two ordered iterators."""
        headers = self._db.iterator(
            start=height_key(HEADER_PREFIX, start),
            stop=height_key(HEADER_PREFIX, stop + 1),
            verify_checksums=True,
        )
        events = self._db.iterator(
            start=height_key(EVENTS_PREFIX, start),
            stop=height_key(EVENTS_PREFIX, stop + 1),
            verify_checksums=True,
        )
        expected = start
        try:
            for (header_key, header_raw), (events_key, events_raw) in zip(headers, events, strict=False):
                height = int.from_bytes(header_key[2:], "big")
                if height != expected or int.from_bytes(events_key[2:], "big") != expected:
                    raise StoreCorrupt(f"block {expected} is missing from the log")
                body = self._decode(_body, events_key, events_raw)
                yield Block(self._decode(_header, header_key, header_raw), body.events, body.signatures)
                expected += 1
        except plyvel.Error as exc:
            raise StoreCorrupt(f"cannot read block {expected}: {_leveldb_message(exc)}") from None
        finally:
            headers.close()
            events.close()
        if expected != stop + 1:
            raise StoreCorrupt(f"block {expected} is missing from the log")

    def iter_raw_bodies(self, start: int = 0) -> Iterator[bytes]:
        """The raw encoded block bodies from ``start`` on (for benchmarks)."""
        for _, raw in self._scan(
            f"the events from block {start}",
            start=height_key(EVENTS_PREFIX, start),
            stop=prefix_end(EVENTS_PREFIX),
        ):
            yield raw

    def highest_height(self, prefix: bytes) -> int | None:
        """The highest height with a record under ``prefix`` (``HEADER_PREFIX``…), if any."""
        for key in self._scan("the newest record", prefix=prefix, reverse=True, include_value=False):
            return int.from_bytes(key[len(prefix) :], "big")
        return None

    def get_latest_snapshot(self, at_most: int) -> SnapshotManifest | None:
        """The newest snapshot at or below height ``at_most``."""
        for key, raw in self._scan(
            "the snapshot manifests",
            start=MANIFEST_PREFIX,
            stop=height_key(MANIFEST_PREFIX, at_most + 1),
            reverse=True,
        ):
            return self._decode(_manifest, key, raw)
        return None

    def iter_snapshot(self, manifest: SnapshotManifest) -> Iterator[tuple[bytes, bytes]]:
        """Every pair of a snapshot; the count is checked, the root is the caller's to check."""
        count = 0
        prefix = height_key(CHUNK_PREFIX, manifest.height) + b"/"
        for key, raw in self._scan(f"the snapshot at height {manifest.height}", prefix=prefix):
            for pair in self._decode(_chunk, key, raw):
                count += 1
                yield pair
        if count != manifest.entries:
            raise StoreCorrupt(f"snapshot {manifest.height} holds {count} entries, not {manifest.entries}")

    def get_manifest(self, height: int) -> SnapshotManifest | None:
        key = height_key(MANIFEST_PREFIX, height)
        raw = self._get(key)
        return None if raw is None else self._decode(_manifest, key, raw)

    def get_snapshot_part(
        self, height: int, index: int, part: int
    ) -> tuple[int, list[tuple[bytes, bytes]]] | None:
        """Part ``part`` of chunk ``index`` of the snapshot at ``height`` and the chunk's number
        of parts; None if this store does not hold it (any more)."""
        key = chunk_key(height, index, part)
        raw = self._get(key)
        if raw is None:
            return None
        prefix = key[:-4]
        parts = sum(1 for _ in self._scan(describe_key(key), prefix=prefix, include_value=False))
        return parts, self._decode(_chunk, key, raw)

    def get_base(self) -> int:
        """The height the log starts at: 0, or the snapshot height a state sync installed."""
        raw = self._get(BASE_KEY)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def get_checkpoint_quorum(self, height: int, interval: int) -> bytes | None:
        """The encoded checkpoint quorum that certifies checkpoint ``height`` (written by block
        ``height - interval``, the chain's ``checkpoint_interval``, or kept as a record below a
        state-synced base)."""
        raw = self._get(height_key(QUORUM_PREFIX, height))
        if raw is not None:
            return raw
        wanted = checkpoint_quorum_key(height)
        for key, _before, after in self.get_delta(height - interval) or ():
            if key == wanted:
                return after
        return None

    def list_snapshots(self) -> list[int]:
        return [
            int.from_bytes(key[len(MANIFEST_PREFIX) :], "big")
            for key in self._scan("the snapshot manifests", prefix=MANIFEST_PREFIX, include_value=False)
        ]

    # -- writes ------------------------------------------------------------------------------

    def write_block(self, pending: PendingBlock, snapshot: State | None = None) -> None:
        """Write one block, its delta, the new tip and an optional snapshot, atomically.

        ``snapshot`` must be the state *after* ``pending`` (already committed in memory).
        """
        header = pending.block.header
        height = header.height
        with self._batch(f"block {height}", sync=self.sync) as batch:
            if height == 0:
                batch.put(GENESIS_KEY, bytes(header.prev_hash))
            batch.put(height_key(HEADER_PREFIX, height), encode(header))
            body = BlockBody(pending.block.events, pending.block.signatures)
            batch.put(height_key(EVENTS_PREFIX, height), encode(body))
            batch.put(height_key(DELTA_PREFIX, height), encode(pending.changes))
            batch.put(APPLIED_KEY, encode(Applied(height, pending.block_hash, header.state_root)))
            if snapshot is not None:
                if snapshot.height != height or snapshot.root != header.state_root:
                    raise RuntimeError("snapshot state is not the state after this block")
                self._write_snapshot(batch, snapshot)

    def _write_snapshot(self, batch: plyvel.WriteBatch, state: State) -> None:
        manifest, chunks = cut_snapshot(state)
        self._put_snapshot(batch, manifest, chunks)
        base = self.get_base()
        older = [height for height in self.list_snapshots() if height != base or base == 0]
        for old in older[: -(SNAPSHOTS_KEPT - 1) or None]:
            self._delete_snapshot(batch, old)

    def _put_snapshot(
        self, batch: plyvel.WriteBatch, manifest: SnapshotManifest, chunks: list[list[tuple[bytes, bytes]]]
    ) -> None:
        for index, chunk in enumerate(chunks):
            for part, pairs in enumerate(split_parts(chunk)):
                batch.put(chunk_key(manifest.height, index, part), encode(pairs))
        batch.put(height_key(MANIFEST_PREFIX, manifest.height), encode(manifest))

    def install_synced(
        self,
        manifest: SnapshotManifest,
        chunks: list[list[tuple[bytes, bytes]]],
        headers: Iterable[Header],
        certificates: Iterable[CheckpointCertificate],
        quorums: dict[int, bytes],
    ) -> None:
        """Make a fresh log (block 0 only) start at a verified snapshot, in one batch: the
        snapshot, the headers and certificates that made it trusted, the quorums that signed
        them, and the markers (base, applied tip, final) at its height. Block 0's body and
        delta and its snapshot go: the log now holds blocks from ``manifest.height + 1``."""
        applied = self.get_applied()
        if applied is None or applied.height != 0 or self.get_base() != 0:
            raise StoreCorrupt("a snapshot can only be installed in a log that holds only block 0")
        height = manifest.height
        tip = None
        with self._batch(f"the snapshot at height {height}", sync=True) as batch:
            for old in self.list_snapshots():
                self._delete_snapshot(batch, old)
            batch.delete(height_key(EVENTS_PREFIX, 0))
            batch.delete(height_key(DELTA_PREFIX, 0))
            for header in headers:
                batch.put(height_key(HEADER_PREFIX, header.height), encode(header))
                if header.height == height:
                    tip = header
            for certificate in certificates:
                batch.put(height_key(CERTIFICATE_PREFIX, certificate.height), encode(certificate))
            for quorum_height, raw in quorums.items():
                batch.put(height_key(QUORUM_PREFIX, quorum_height), raw)
            if tip is None:
                raise StoreCorrupt(f"the header of the snapshot's block {height} is not among those given")
            self._put_snapshot(batch, manifest, chunks)
            batch.put(BASE_KEY, height.to_bytes(8, "big"))
            batch.put(APPLIED_KEY, encode(Applied(height, manifest.block_hash, manifest.state_root)))
            batch.put(FINAL_KEY, encode(Final(height, manifest.block_hash)))

    def _delete_snapshot(self, batch: plyvel.WriteBatch, height: int) -> None:
        batch.delete(height_key(MANIFEST_PREFIX, height))
        chunks = height_key(CHUNK_PREFIX, height) + b"/"
        for key in self._scan(f"the snapshot at height {height}", prefix=chunks, include_value=False):
            batch.delete(key)

    # -- equivocation evidence ----------------------------------------------------------------------

    def put_evidence(self, evidence: Evidence) -> bool:
        """Keep ``evidence`` unless its signer and slot have a record already; True if it is new."""
        key = evidence_key(evidence)
        if self._get(key) is not None:
            return False
        with self._batch(describe_key(key), sync=self.sync) as batch:
            batch.put(key, encode(evidence))
        return True

    def iter_evidence(self, from_height: int = 0, to_height: int | None = None) -> Iterator[Evidence]:
        """The evidence of heights ``from_height .. to_height`` (inclusive; None: every height
        above), by height, round, stage and signer."""
        if from_height > MAX_U64:
            return
        start = height_key(EVIDENCE_PREFIX, from_height)
        if to_height is None or to_height >= MAX_U64:
            stop = prefix_end(EVIDENCE_PREFIX)
        else:
            stop = height_key(EVIDENCE_PREFIX, to_height + 1)
        for key, raw in self._scan(f"the evidence from height {from_height}", start=start, stop=stop):
            evidence = self._decode(_evidence, key, raw)
            try:
                decode_evidence(evidence)
            except InvalidEvidence as exc:
                raise StoreCorrupt(f"{describe_key(key)} is corrupt: {exc}") from None
            yield evidence

    # -- the double-sign guard's record (consensus.guard.SlotRecord) -------------------------------

    def remember(self, height: int, round_: int, stage: int, digest: bytes) -> bytes:
        """Store ``digest`` for the slot, durably, unless one is there; return the stored one."""
        stored = self.get_slot(height, round_, stage)
        if stored is not None:
            return stored
        self.put_slots({(height, round_, stage): digest})
        return digest

    def get_slot(self, height: int, round_: int, stage: int) -> bytes | None:
        """The payload hash recorded for the slot, or None."""
        return self._get(_slot_key(height, round_, stage))

    def put_slots(self, slots: dict[tuple[int, int, int], bytes]) -> None:
        """Record every slot's payload hash in one synced batch; a slot already recorded keeps its
        own. Safe from a worker thread (LevelDB orders concurrent writes)."""
        keys = {_slot_key(*slot): digest for slot, digest in slots.items()}
        fresh = {key: digest for key, digest in keys.items() if self._get(key) is None}
        if not fresh:
            return
        with self._batch("the double-sign records", sync=True) as batch:
            for key, digest in fresh.items():
                batch.put(key, digest)

    def forget_slots_below(self, height: int) -> None:
        """Forget guard slots below ``height`` (final heights can never be signed again)."""
        stop = GUARD_PREFIX + height.to_bytes(8, "big")
        with self._batch("the double-sign records", sync=True) as batch:
            for key in self._scan(
                "the double-sign records", start=GUARD_PREFIX, stop=stop, include_value=False
            ):
                batch.delete(key)

    def truncate(self, height: int, applied: Applied) -> None:
        """Remove every block above ``height`` (and snapshots above it) and set the tip, atomically.

        Used to undo an import that was refused part way, and by rollback of a non-final tail. A
        final block is never removed.
        """
        final = self.get_final()
        if final is not None and final.height > height:
            raise StoreCorrupt(f"truncating to {height} would remove the final block {final.height}")
        with self._batch(f"the truncation to height {height}", sync=self.sync) as batch:
            for prefix in (HEADER_PREFIX, EVENTS_PREFIX, DELTA_PREFIX, CERTIFICATE_PREFIX):
                for key in self._scan(
                    f"the blocks above {height}",
                    start=height_key(prefix, height + 1),
                    stop=prefix_end(prefix),
                    include_value=False,
                ):
                    batch.delete(key)
            for snapshot in self.list_snapshots():
                if snapshot > height:
                    self._delete_snapshot(batch, snapshot)
            batch.put(APPLIED_KEY, encode(applied))


def _leveldb_message(exc: plyvel.Error) -> str:
    """LevelDB's own words (plyvel passes them as bytes)."""
    detail = exc.args[0] if exc.args else exc
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)


def _slot_key(height: int, round_: int, stage: int) -> bytes:
    return GUARD_PREFIX + height.to_bytes(8, "big") + round_.to_bytes(2, "big") + stage.to_bytes(2, "big")
