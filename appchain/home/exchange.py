"""Export and import of the event log: how a testnet operator moves or rebuilds a chain.

File format (all integers big-endian)::

    magic   b"APPCHAIN-EVENTS" 0x00, then format version 0x02
    frame   u32 length, then that many bytes of msgpack
    frame 0 :class:`ExportHeader` (chain id, genesis hash, the genesis file, last height)
    frame 1.. one :class:`ExportedBlock` per height, from 0 to the last height: the block and,
            on a certified checkpoint, its certificate

An export is outside input. Import first checks that its header belongs to this home: the
chain id, the genesis hash, and the embedded genesis file, which must parse and hash to that
same genesis. It then replays every block through the normal append path, so each is checked
for its parent hash, events root and state root and, unless the operator passes
``--trust-signatures``, its Pulse data and every signature; each certificate is checked as its
block arrives and kept once the whole import succeeded. A refused block names its height, and
the import is undone: the home is truncated back to where it started. So is an import that
is interrupted (Ctrl-C, SIGTERM): the signals are held while it runs and answered between two
blocks, so the home is left exactly as it was before the import.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from appchain.home.chain import Chain, ChainError
from appchain.home.safefile import UnsafeTarget, check_target, open_atomically
from appchain.home.store import Applied, BlockStore
from consensus.checkpoint import CheckpointCertificate
from genesis.document import GenesisError
from genesis.load import parse_genesis_json
from state.block import Block
from state.encoding import DecodeError, Decoder, Record, encode
from state.errors import InvalidBlock
from state.types import Hash32

MAGIC = b"APPCHAIN-EVENTS\x00\x02"
MAX_FRAME = 256 * 1024 * 1024


class ExportHeader(Record, frozen=True):
    chain_id: str
    genesis_hash: Hash32
    genesis_file: bytes
    last_height: int


class ExportedBlock(Record, frozen=True):
    block: Block
    certificate: CheckpointCertificate | None = None


class ImportRefused(ChainError):
    def __init__(self, height: int | None, message: str) -> None:
        where = "" if height is None else f" at height {height}"
        super().__init__(f"import refused{where}: {message}")
        self.height = height


class ImportInterrupted(ChainError):
    """Ctrl-C or SIGTERM during an import, which was undone."""

    def __init__(self, height: int) -> None:
        super().__init__(f"import interrupted at height {height}; the home is as it was before the import")
        self.height = height


class HeldSignals:
    """Hold SIGINT and SIGTERM while a multi-block write runs; :attr:`received` says if one came.

    Outside the main thread (where Python cannot install handlers) it holds nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum

    def __enter__(self) -> HeldSignals:
        try:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._hold)
        except ValueError:  # not the main thread
            self.__exit__()
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()


_header = Decoder(ExportHeader)
_block = Decoder(ExportedBlock)


def _write_frame(out: BinaryIO, payload: bytes) -> None:
    out.write(len(payload).to_bytes(4, "big"))
    out.write(payload)


def export_events(
    store: BlockStore,
    genesis_hash: bytes,
    genesis_file: bytes,
    out_path: Path,
    *,
    chain_id: str,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write blocks 0..tip to ``out_path``; returns the last height. The file is written whole or
    not at all, and only where :mod:`appchain.home.safefile` allows (an existing file: with ``force``)."""
    applied = store.get_applied()
    if applied is None:
        raise ChainError("the database has no blocks")
    base = store.get_base()
    if base > 0:
        raise ChainError(
            f"this home joined by state sync at height {base} and holds no blocks below it: "
            "export from a node that synced every block (state_sync = false)"
        )
    check_export_target(out_path, force=force)
    with open_atomically(out_path, force=force) as out:
        out.write(MAGIC)
        header = ExportHeader(chain_id, Hash32(genesis_hash), genesis_file, applied.height)
        _write_frame(out, encode(header))
        for block in store.iter_blocks(0, applied.height):
            _write_frame(out, encode(ExportedBlock(block, store.get_certificate(block.header.height))))
            if progress is not None:
                progress(1, len(block.events))
    return applied.height


def check_export_target(out_path: Path, *, force: bool) -> None:
    """Refuse an export target before the home is even opened
    (:func:`appchain.home.safefile.check_target`)."""
    try:
        check_target(out_path, force=force)
    except UnsafeTarget as exc:
        raise ChainError(str(exc)) from None
    if not out_path.parent.is_dir():
        raise ChainError(f"{out_path.parent} does not exist")


def _read_frames(source: BinaryIO) -> Iterator[bytes]:
    while True:
        prefix = source.read(4)
        if not prefix:
            return
        if len(prefix) != 4:
            raise ImportRefused(None, "the file is truncated")
        size = int.from_bytes(prefix, "big")
        if size > MAX_FRAME:
            raise ImportRefused(None, "a frame is larger than any block can be")
        payload = source.read(size)
        if len(payload) != size:
            raise ImportRefused(None, "the file is truncated")
        yield payload


def _open_export(source: BinaryIO, name: Path) -> tuple[ExportHeader, Iterator[bytes]]:
    """Check the magic, read the header; the block frames follow."""
    if source.read(len(MAGIC)) != MAGIC:
        raise ImportRefused(None, f"{name} is not an appchain event export")
    frames = _read_frames(source)
    return _decode_header(next(frames, None)), frames


def _open_file(in_path: Path) -> BinaryIO:
    if in_path.is_dir():
        raise ChainError(f"{in_path} is a folder, not an export file")
    try:
        return in_path.open("rb")
    except FileNotFoundError:
        raise ChainError(f"{in_path} does not exist") from None


def read_export_header(in_path: Path) -> ExportHeader:
    with _open_file(in_path) as source:
        return _open_export(source, in_path)[0]


def check_export_header(header: ExportHeader, chain: Chain) -> None:
    """Refuse an export of another chain: chain id, genesis hash and the embedded genesis file."""
    genesis = chain.genesis
    if header.chain_id != genesis.chain_id:
        raise ImportRefused(
            None, f"the export is of chain {header.chain_id!r}, this home of {genesis.chain_id!r}"
        )
    if header.genesis_hash != genesis.hash:
        raise ImportRefused(
            None,
            f"the export belongs to genesis {header.genesis_hash.hex()}, this home to {genesis.hash.hex()}",
        )
    try:
        embedded = parse_genesis_json(header.genesis_file)
    except GenesisError as exc:
        raise ImportRefused(None, f"the embedded genesis file is invalid: {exc.problems[0]}") from None
    if embedded.hash != genesis.hash:
        raise ImportRefused(
            None, f"the embedded genesis file hashes to {embedded.hash.hex()}, not to this home's genesis"
        )


def import_events(
    chain: Chain,
    in_path: Path,
    *,
    verify_signatures: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Append every block of the export to ``chain`` (which must be at height 0)."""
    if chain.height != 0:
        raise ChainError(f"import needs a fresh home at height 0; this one is at height {chain.height}")
    start = Applied(0, chain.state.block_hash, chain.state.root)
    with _open_file(in_path) as source, HeldSignals() as signals:
        try:
            certificates = _append_export(chain, source, in_path, verify_signatures, signals, progress)
        except (ImportRefused, ImportInterrupted):
            if chain.height > 0:  # blocks were written: take them out again
                chain.store.truncate(0, start)
            raise
        for certificate in certificates:
            chain.keep_certificate(certificate)
    return chain.height


def _append_export(
    chain: Chain,
    source: BinaryIO,
    in_path: Path,
    verify_signatures: bool,
    signals: HeldSignals,
    progress: Callable[[int, int], None] | None,
) -> list[CheckpointCertificate]:
    """Append the export's blocks; return their certificates, checked but not yet kept."""
    header, frames = _open_export(source, in_path)
    check_export_header(header, chain)
    height = -1
    certificates = []
    for height, frame in enumerate(frames):
        if signals.received is not None:
            raise ImportInterrupted(height)
        exported = _decode_block(frame, height)
        block = exported.block
        if height == 0:
            if block.header != chain.store.get_header(0):
                raise ImportRefused(0, "block 0 is not this genesis's block 0")
            continue
        try:
            chain.append(block, verify_signatures=verify_signatures)
            if exported.certificate is not None:
                chain.check_certificate(exported.certificate)
                certificates.append(exported.certificate)
        except (InvalidBlock, ChainError) as exc:
            raise ImportRefused(height, str(exc)) from None
        if progress is not None:
            progress(1, len(block.events))
    if height != header.last_height:
        raise ImportRefused(max(height, 0), f"the export ends at {height}, not {header.last_height}")
    return certificates


def _decode_header(frame: bytes | None) -> ExportHeader:
    if frame is None:
        raise ImportRefused(None, "the file holds no header")
    try:
        return _header.decode(frame)
    except DecodeError as exc:
        raise ImportRefused(None, f"bad export header: {exc}") from None


def _decode_block(frame: bytes, height: int) -> ExportedBlock:
    try:
        exported = _block.decode(frame)
    except DecodeError as exc:
        raise ImportRefused(height, str(exc)) from None
    if exported.block.header.height != height:
        raise ImportRefused(height, f"the frame holds block {exported.block.header.height}")
    return exported
