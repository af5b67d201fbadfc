"""The chain: the event log and the state derived from it, kept in step.

Start-up handshake (:meth:`Chain.open`): check the database belongs to this genesis, check
that its markers agree (:func:`check_markers`: the applied tip names the newest stored block,
nothing is stored above it, the final marker is at or below it and names a stored, certified
block), load the newest snapshot (its root must match its manifest and its block header), replay the log from
there to the applied height, and compare every recomputed state root with the stored header
and every recomputed delta with the stored one. The first mismatch stops with
:class:`ReplayMismatch` naming the height; nothing is written during the handshake.

Appending (:meth:`Chain.append`): execute the block against the state (all checks, nothing
mutated), commit it in memory, then write it with its delta and tip marker (and a snapshot
every ``snapshot_interval`` blocks) in one batch. A failed write leaves memory one block ahead
of the disk, so it is fatal: the process must stop, and the next start replays from the disk.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from pathlib import Path

from appchain.home.history import StateHistory
from appchain.home.store import (
    DELTA_PREFIX,
    EVENTS_PREFIX,
    HEADER_PREFIX,
    Applied,
    BlockStore,
    StoreCorrupt,
)
from consensus.checkpoint import CheckpointCertificate, InvalidCertificate, verify_certificate
from consensus.quorum import PulseQuorum
from consensus.statesync import SyncResult
from consensus.validation import RandomValueAt, check_pulse
from genesis.build import create_genesis_state
from genesis.document import Genesis
from state.block import Block, compute_block_hash
from state.checkpoints import get_checkpoint_quorum, is_checkpoint_height
from state.encoding import encode
from state.errors import InvalidBlock
from state.events import Event
from state.snapshot import SnapshotManifest
from state.state import State
from state.transition import PendingBlock, adopt_template_result, commit_block, execute_block, propose_block
from state.types import NodeKey
from state.view import Overlay

DEFAULT_PROOF_WINDOW = 256
"""Blocks whose state is kept for proofs: as far back as checkpoint quorums are kept."""

ProgressCallback = Callable[[int, int], None]
"""Called with (blocks done, events in that block) after each replayed block."""


class ChainError(Exception):
    """A user-facing problem with a node folder or its input (one line, non-zero exit)."""


class ReplayMismatch(StoreCorrupt):
    """The log does not replay to what it recorded: a tampered or corrupt database."""

    def __init__(self, height: int, message: str) -> None:
        super().__init__(f"replay mismatch at height {height}: {message}")
        self.height = height


def replay_blocks(
    state: State,
    blocks: Iterable[Block],
    *,
    verify_signatures: bool = False,
    random_value_at: RandomValueAt | None = None,
    stored_deltas: Callable[[int], bytes | None] | None = None,
    progress: ProgressCallback | None = None,
    history: StateHistory | None = None,
) -> State:
    """Apply ``blocks`` to ``state`` in order, stopping at the first block that does not replay.

    With ``verify_signatures`` every signature is checked again, the Pulse ones included (which
    needs ``random_value_at``); otherwise the log is trusted as certified when it was written.
    """
    for block in blocks:
        height = block.header.height
        try:
            if verify_signatures and random_value_at is not None:
                check_pulse(state, block, random_value_at)
            pending = execute_block(state, block, verify_signatures=verify_signatures)
        except InvalidBlock as exc:
            raise ReplayMismatch(height, str(exc)) from None
        changes = pending.changes if stored_deltas is not None or history is not None else []
        if stored_deltas is not None and stored_deltas(height) != encode(changes):
            raise ReplayMismatch(height, "the stored state delta differs from the replayed one")
        commit_block(state, pending)
        if history is not None:
            history.record(state, changes)
        if progress is not None:
            progress(1, len(block.events))
    return state


class Chain:
    """A store and the state derived from it."""

    def __init__(
        self,
        store: BlockStore,
        genesis: Genesis,
        state: State,
        snapshot_interval: int,
        history: StateHistory,
    ) -> None:
        self.store = store
        self.genesis = genesis
        self.state = state
        self.snapshot_interval = snapshot_interval
        self.history = history
        """The states of the last blocks, for proofs (:mod:`appchain.home.history`)."""
        final = store.get_final()
        self._final_height = 0 if final is None else final.height
        self._base_height = store.get_base()

    @classmethod
    def create(
        cls,
        path: Path,
        genesis: Genesis,
        *,
        snapshot_interval: int,
        sync: bool = True,
        proof_window: int = DEFAULT_PROOF_WINDOW,
    ) -> Chain:
        """A new database holding block 0 of ``genesis``."""
        if path.exists() and any(path.iterdir()):
            raise ChainError(f"{path} already holds a database")
        store = BlockStore(path, create=True, sync=sync)
        state, pending = create_genesis_state(genesis)
        store.write_block(pending, snapshot=state)
        history = StateHistory(proof_window)
        history.start(state)
        return cls(store, genesis, state, snapshot_interval, history)

    @classmethod
    def open(
        cls,
        path: Path,
        genesis: Genesis,
        *,
        snapshot_interval: int,
        sync: bool = True,
        progress: ProgressCallback | None = None,
        proof_window: int = DEFAULT_PROOF_WINDOW,
    ) -> Chain:
        """Open an existing database and bring the state to its tip (the handshake)."""
        if not path.is_dir():
            raise ChainError(f"no database at {path}: run `appchain init` first")
        store = BlockStore(path, sync=sync)
        history = StateHistory(proof_window)
        try:
            state = load_state(store, genesis, progress=progress, history=history)
        except BaseException:
            store.close()
            raise
        return cls(store, genesis, state, snapshot_interval, history)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def height(self) -> int:
        return self.state.height

    def random_value_at(self, height: int) -> bytes:
        return self.store.get_random_value(height)

    def propose(
        self, events: list[Event], timestamp: int, *, producer: NodeKey, round_: int = 0
    ) -> PendingBlock:
        return propose_block(self.state, events, timestamp, producer=producer, round_=round_)

    def append(
        self,
        block: Block,
        *,
        verify_signatures: bool = True,
        verified: Container[bytes] = (),
        template: PendingBlock | None = None,
    ) -> PulseQuorum | None:
        """Validate ``block`` (Pulse data included) against the tip; make it part of the log and
        state. Returns its Pulse quorum (when signatures are verified). ``verified`` holds the
        hashes of transactions whose signatures this node already checked (its mempool's).
        ``template`` is this node's execution of the block's Pulse template on the tip, if it
        has one: the block is then not executed again when the template's result is the block's
        (:func:`state.transition.adopt_template_result`)."""
        quorum = check_pulse(self.state, block, self.random_value_at) if verify_signatures else None
        pending = None
        if template is not None:
            pending = adopt_template_result(
                self.state, template, block, verify_signatures=verify_signatures, verified=verified
            )
        if pending is None:
            pending = execute_block(self.state, block, verify_signatures=verify_signatures, verified=verified)
        self.append_pending(pending)
        return quorum

    @property
    def final_height(self) -> int:
        """The highest certified checkpoint (block 0, trusted from genesis, at least)."""
        return self._final_height

    def add_certificate(self, certificate: CheckpointCertificate) -> None:
        """Verify a checkpoint certificate against the quorum the chain chose, then keep it."""
        self.check_certificate(certificate)
        self.keep_certificate(certificate)

    def keep_certificate(self, certificate: CheckpointCertificate) -> None:
        """Keep a certificate already verified for our block at its height; the final height
        moves up to it, never down."""
        self.store.write_certificate(certificate)
        self._final_height = max(self._final_height, certificate.height)

    def check_certificate(self, certificate: CheckpointCertificate) -> None:
        """Raise :class:`ChainError` unless ``certificate`` certifies our block at its height."""
        height = certificate.height
        header = self.store.get_header(height)
        interval = self.genesis.params.checkpoint_interval
        if not is_checkpoint_height(height, interval) or height == 0 or header is None:
            raise ChainError(f"no checkpoint block at height {height} to certify")
        if compute_block_hash(header) != certificate.block_hash:
            raise ChainError(f"the certificate is for another block than ours at height {height}")
        quorum = get_checkpoint_quorum(Overlay(self.state.get), height)
        if quorum is None:
            raise ChainError(f"the checkpoint quorum of height {height} is no longer kept")
        keys = [m.bls_key for m in quorum.members]
        try:
            verify_certificate(certificate, self.genesis.chain_id, keys)
        except InvalidCertificate as exc:
            raise ChainError(f"certificate for height {height} refused: {exc}") from None

    def rollback(self, height: int) -> None:
        """Undo every block above ``height``, exactly, from their stored deltas (a non-final reorg).

        The state is rebuilt from the deltas' "before" values, its root checked against header
        ``height``, and only then is the log truncated. A final block is never undone.
        """
        if height < self.final_height:
            raise ChainError(f"cannot roll back below the final block {self.final_height}")
        if not 0 <= height < self.height:
            raise ChainError(f"height {height} is not below the tip {self.height}")
        restore: dict[bytes, bytes | None] = {}
        for undone in range(self.height, height, -1):
            delta = self.store.get_delta(undone)
            if delta is None:
                raise StoreCorrupt(f"the delta of block {undone} is missing")
            for key, before, _after in reversed(delta):
                restore[key] = before  # lower heights come later: the oldest "before" wins
        header = self.store.get_header(height)
        if header is None:
            raise StoreCorrupt(f"header {height} is missing from the log")
        tree = self.state.tree.update(restore)
        if tree.root != header.state_root:
            raise ReplayMismatch(height, "the deltas do not restore the state root of this header")
        block_hash = compute_block_hash(header)
        self.store.truncate(height, Applied(height, block_hash, header.state_root))
        self.state.install(
            height=height, block_hash=block_hash, timestamp=header.timestamp, writes=restore, tree=tree
        )
        self.history.forget_above(height)
        if self.history.bounds is None:  # rolled back below the window: it starts again here
            self.history.start(self.state)

    def install_synced(self, result: SyncResult) -> None:
        """Start this fresh chain (block 0 only) at a snapshot that state sync verified: the
        log holds blocks above it from now on, and it is final (it was certified)."""
        if self.height != 0 or self.store.get_base() != 0:
            raise ChainError("state sync installs a snapshot only into a fresh home (block 0 only)")
        self.store.install_synced(
            result.manifest, result.chunks, result.headers, result.certificates, result.quorums
        )
        self.state = result.state
        self.history.start(self.state)
        self._final_height = self._base_height = result.manifest.height

    @property
    def base_height(self) -> int:
        """The height the log starts at: 0, or the snapshot a state sync installed."""
        return self._base_height

    def append_pending(self, pending: PendingBlock) -> None:
        """Commit and write a block that already executed cleanly against the current tip."""
        commit_block(self.state, pending)
        self.history.record(self.state, pending.changes)
        due = self.snapshot_interval > 0 and self.state.height % self.snapshot_interval == 0
        self.store.write_block(pending, snapshot=self.state if due else None)


def check_genesis(store: BlockStore, genesis: Genesis) -> None:
    stored = store.get_genesis_hash()
    if stored is None:
        raise StoreCorrupt("the database has no genesis record")
    if stored != genesis.hash:
        raise ChainError(
            f"genesis mismatch: the database belongs to genesis {stored.hex()}, "
            f"but the genesis file hashes to {genesis.hash.hex()}"
        )


def check_markers(store: BlockStore) -> Applied:
    """The applied tip, once it, the stored blocks and the final marker are seen to agree.

    A torn write-ahead log (a disk that lost its last writes) can leave LevelDB with older
    values for some keys and newer ones for others: the final marker above the tip, a tip
    naming a block that is not there, blocks above the tip. Building on such a database would
    lose final blocks without a word, so each disagreement is :class:`StoreCorrupt`.
    """
    applied = store.get_applied()
    if applied is None:
        raise StoreCorrupt("the database has no applied height")
    tip = applied.height
    header = store.get_header(tip)
    if header is None:
        raise StoreCorrupt(f"the applied tip is block {tip}, but its header is missing")
    if compute_block_hash(header) != applied.block_hash or header.state_root != applied.state_root:
        raise StoreCorrupt(f"the applied tip does not match the stored header of block {tip}")
    records = ((HEADER_PREFIX, "a header"), (EVENTS_PREFIX, "the events"), (DELTA_PREFIX, "a delta"))
    base = store.get_base()
    if tip < base:
        raise StoreCorrupt(f"the applied tip is block {tip}, below the base {base} of the state-synced log")
    for prefix, what in records:
        highest = store.highest_height(prefix)
        if highest != tip and not (tip == base > 0 and highest is None and prefix != HEADER_PREFIX):
            found = "nothing" if highest is None else f"{what} of block {highest}"
            raise StoreCorrupt(f"the applied tip is block {tip}, but the log holds {found} as its newest")
    final = store.get_final()
    if final is not None:
        if final.height > tip:
            raise StoreCorrupt(
                f"the final marker names block {final.height}, above the applied tip {tip}: "
                "final blocks were lost (restore the database or import an export)"
            )
        final_header = store.get_header(final.height)
        if final_header is None or compute_block_hash(final_header) != final.block_hash:
            raise StoreCorrupt(f"the final marker names a block {final.height} the log does not hold")
        if store.get_certificate(final.height) is None:
            raise StoreCorrupt(f"the final block {final.height} has no stored certificate")
    return applied


def load_state(
    store: BlockStore,
    genesis: Genesis,
    *,
    progress: ProgressCallback | None = None,
    history: StateHistory | None = None,
) -> State:
    """The handshake: markers, newest snapshot, then replay of the tail, checking everything recorded."""
    check_genesis(store, genesis)
    applied = check_markers(store)
    manifest = store.get_latest_snapshot(applied.height)
    if manifest is None:
        if store.get_base() > 0:
            raise StoreCorrupt("the state-synced log has lost the snapshot it starts from")
        state = genesis_state_checked(store, genesis)
    else:
        state = snapshot_state_checked(store, genesis, manifest)
    if history is not None:
        history.start(state)
    replay_blocks(
        state,
        store.iter_blocks(state.height + 1, applied.height),
        stored_deltas=store.get_delta_bytes,
        progress=progress,
        history=history,
    )
    if state.block_hash != applied.block_hash:
        raise ReplayMismatch(applied.height, "the tip hash differs from the recorded one")
    return state


def snapshot_state_checked(store: BlockStore, genesis: Genesis, manifest: SnapshotManifest) -> State:
    """The state a stored snapshot holds, checked against its manifest and its block header."""
    header = store.get_header(manifest.height)
    if header is None or header.state_root != manifest.state_root:
        raise ReplayMismatch(manifest.height, "the snapshot does not match the block header")
    state = State.from_snapshot(
        genesis.chain_id,
        genesis.params,
        height=manifest.height,
        block_hash=manifest.block_hash,
        timestamp=manifest.timestamp,
        items=store.iter_snapshot(manifest),
    )
    if state.root != manifest.state_root:
        raise ReplayMismatch(manifest.height, "the snapshot's entries do not hash to its state root")
    return state


def genesis_state_checked(store: BlockStore, genesis: Genesis) -> State:
    """The state after block 0, checked against the block 0 the database recorded."""
    state, pending = create_genesis_state(genesis)
    stored = store.get_header(0)
    if stored is None or stored != pending.block.header:
        raise ReplayMismatch(0, "block 0 in the database is not the genesis block")
    return state


def replay_from_genesis(
    store: BlockStore,
    genesis: Genesis,
    *,
    verify_signatures: bool = False,
    progress: ProgressCallback | None = None,
) -> State:
    """Rebuild the state from block 0, ignoring snapshots, checking every root and delta.

    A log that joined by state sync holds no blocks below its base: it is rebuilt from the
    snapshot at the base (checked against that certified header), the one snapshot it keeps.
    """
    check_genesis(store, genesis)
    applied = check_markers(store)
    base = store.get_base()
    if base == 0:
        state = genesis_state_checked(store, genesis)
    else:
        manifest = store.get_manifest(base)
        if manifest is None:
            raise StoreCorrupt("the state-synced log has lost the snapshot it starts from")
        state = snapshot_state_checked(store, genesis, manifest)
    replay_blocks(
        state,
        store.iter_blocks(base + 1, applied.height),
        verify_signatures=verify_signatures,
        random_value_at=store.get_random_value,
        stored_deltas=store.get_delta_bytes,
        progress=progress,
    )
    if state.block_hash != applied.block_hash:
        raise ReplayMismatch(applied.height, "the tip hash differs from the recorded one")
    return state
