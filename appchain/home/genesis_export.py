"""``appchain export-genesis``: a home's state at a final height, written as a new genesis file.

The state after block ``H`` is rebuilt from the home's database the way the start-up handshake
rebuilds the tip (:func:`appchain.home.chain.load_state`): the newest snapshot at or below ``H``,
checked against its block header, then the log replayed up to ``H`` with every root and delta
checked. Only a final height can be exported (the state at a non-final height may still be
replaced by fork choice), and only one the home can rebuild: a home that joined by state sync
holds no blocks below its first snapshot.

:func:`genesis.export.export_state` turns that state into the genesis (what carries over, what
moves to keep the supply, what resets: its introduction says). The file is checked as
``appchain genesis validate`` checks it before it is written, and written whole or not at all.

Defaults: the chain id is the old one with ``-h<H>`` appended, since nonces restart at 0 and a
transaction signed for the old chain id could otherwise be replayed on the new chain; the genesis
time is the timestamp of block ``H`` in seconds, rounded up (headers are in milliseconds, the
genesis file keeps seconds: :func:`genesis.export.compute_export_genesis_time`). With
``--replace-nodes N`` the node set is N dev nodes derived from ``--seed`` (default: the new
chain id) as ``appchain genesis new`` derives them,
their keys written to ``keys/`` beside the genesis file (``nodes.json``, ``accounts.json``:
what ``appchain init`` copies into a home and ``dev-chain`` signs with). Like every dev key they
are public: for testnets only.

What ``get_service_nodes`` and the ``ons_*`` methods answer on the new chain's block 0 equals
what they answered at ``H``, except :data:`RESET_SERVICE_NODE_FIELDS` and
:data:`RESET_SNS_FIELDS` (and the nodes and names the export drops: registrations still awaiting
contributions, expired names).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appchain.home.chain import (
    ChainError,
    ProgressCallback,
    ReplayMismatch,
    check_genesis,
    check_markers,
    genesis_state_checked,
    replay_blocks,
    snapshot_state_checked,
)
from appchain.home.genesis_files import check_genesis_target, write_dev_keys, write_genesis_file
from appchain.home.home import Home
from appchain.home.safefile import UnsafeTarget
from appchain.home.store import BlockStore
from genesis.devnet import DevNode, create_dev_genesis_node, derive_node
from genesis.document import CHAIN_ID, Genesis, dump_genesis
from genesis.export import ExportError, ExportSummary, export_folded, fold_state
from genesis.load import parse_genesis_json
from state.block import compute_block_hash
from state.state import State

RESET_SERVICE_NODE_FIELDS = frozenset(
    {
        "registration_height",
        "state_height",
        "requested_unlock_height",
        "last_reward_block_height",
        "last_reward_transaction_index",
        "active",
        "status",
        "earned_downtime_blocks",
        "swarm_id",
        "swarm_id_str",
        "swarm",
        "last_decommission_reason_consensus_all",
        "last_decommission_reason_consensus_any",
    }
)
"""``get_service_nodes`` fields the new genesis resets: heights restart, every node starts active
with fresh credit and no unlock request, registration order and the reward queue follow the node
key, swarms are drawn afresh. (Uptime-proof and Pulse fields are the answering node's own
observations, not state.)"""
RESET_SNS_FIELDS = frozenset({"update_id", "txid", "update_height", "expiration_height"})
"""``ons_names_to_owners`` fields the new genesis resets: the update id (``txid``, oxend's name
for it) is the genesis event's hash, and ``update_height`` its height; the expiration height is
counted from the new genesis (``expiry - H``)."""


@dataclass(frozen=True)
class StartingPoint:
    """Where the state at ``height`` is rebuilt from: the snapshot at ``from_height``, or block 0."""

    height: int
    from_height: int
    from_snapshot: bool


def plan_state_at(store: BlockStore, genesis: Genesis, height: int) -> StartingPoint:
    """Check that the home can rebuild the final state at ``height``; where to start from.

    Raises :class:`ChainError` for a height that is negative, above the final height, or below
    what the home holds; the database's own checks (:func:`check_genesis`, :func:`check_markers`)
    come first.
    """
    check_genesis(store, genesis)
    check_markers(store)
    final = store.get_final()
    final_height = 0 if final is None else final.height
    if height < 0:
        raise ChainError(f"--height {height} must not be negative")
    if height > final_height:
        raise ChainError(
            f"height {height} is above the final height {final_height}: only final state is exported"
        )
    manifest = store.get_latest_snapshot(height)
    if manifest is None and store.get_body(0) is None:
        held = store.list_snapshots()
        oldest = f"from height {min(held)} on" if held else "no state at all"
        raise ChainError(
            f"height {height} is below what this home holds ({oldest}): it cannot be rebuilt here"
        )
    if manifest is None:
        return StartingPoint(height, 0, from_snapshot=False)
    return StartingPoint(height, manifest.height, from_snapshot=True)


def rebuild_state_at(
    store: BlockStore, genesis: Genesis, start: StartingPoint, *, progress: ProgressCallback | None = None
) -> State:
    """The state after block ``start.height``, every root and delta checked on the way."""
    if not start.from_snapshot:
        state = genesis_state_checked(store, genesis)
    else:
        manifest = store.get_latest_snapshot(start.height)
        if manifest is None or manifest.height != start.from_height:  # the caller let go of the lock
            raise ChainError(f"the snapshot at height {start.from_height} is gone: export again")
        state = snapshot_state_checked(store, genesis, manifest)
    replay_blocks(
        state,
        store.iter_blocks(state.height + 1, start.height),
        stored_deltas=store.get_delta_bytes,
        progress=progress,
    )
    header = store.get_header(start.height)
    if header is None or compute_block_hash(header) != state.block_hash:
        raise ReplayMismatch(start.height, "the rebuilt block hash differs from the stored header's")
    return state


def load_state_at(
    store: BlockStore, genesis: Genesis, height: int, *, progress: ProgressCallback | None = None
) -> State:
    """:func:`plan_state_at`, then :func:`rebuild_state_at`."""
    return rebuild_state_at(store, genesis, plan_state_at(store, genesis, height), progress=progress)


def open_store(home: Home) -> BlockStore:
    """The home's database, read as it is (no handshake to the tip)."""
    if not home.db_path.is_dir():
        raise ChainError(f"no database at {home.db_path}: run `appchain init` first")
    return BlockStore(home.db_path)


def default_chain_id(chain_id: str, height: int) -> str:
    """``<chain id>-h<height>``: a new chain id, so the old chain's transactions do not replay."""
    derived = f"{chain_id}-h{height}"
    if not CHAIN_ID.match(derived):
        raise ChainError(f"the derived chain id {derived!r} is too long: name one with --chain-id")
    return derived


def check_out_path(out: Path, *, with_keys: bool, force: bool) -> None:
    """Refuse an output the user did not mean, before any long work
    (:func:`appchain.home.genesis_files.check_genesis_target`)."""
    if not out.parent.is_dir():
        raise ChainError(f"--out {out}: the folder {out.parent} does not exist")
    try:
        check_genesis_target(out, with_keys=with_keys, force=force)
    except UnsafeTarget as exc:
        raise ChainError(str(exc)) from None


def build_export(
    state: State,
    *,
    chain_id: str,
    genesis_time: int,
    replace_nodes: int | None = None,
    seed: str = "",
) -> tuple[Genesis, ExportSummary, list[DevNode]]:
    """The checked genesis of ``state`` (and the dev nodes that replace its node set, if any).

    The document is dumped and parsed back as ``appchain genesis validate`` parses a file, every
    genesis event run through the state rules; it must come back identical.
    """
    folded = fold_state(state)
    cost = (replace_nodes or 0) * state.params.staking_requirement
    if cost > folded.pool:  # before deriving keys for nodes that cannot be staked
        raise ChainError(
            f"--replace-nodes {replace_nodes}: the reward pool holds {folded.pool}, less than the "
            f"{cost} their stakes take"
        )
    dev_nodes = [derive_node(seed, i) for i in range(replace_nodes or 0)]
    replacement = None
    if replace_nodes is not None:
        replacement = [create_dev_genesis_node(node, state.params) for node in dev_nodes]
    try:
        genesis, summary = export_folded(
            folded, chain_id=chain_id, genesis_time=genesis_time, replacement=replacement
        )
    except ExportError as exc:
        raise ChainError(str(exc)) from None
    if parse_genesis_json(dump_genesis(genesis)) != genesis:
        raise AssertionError("the exported genesis does not read back as written")
    return genesis, summary, dev_nodes


def write_export(out: Path, genesis: Genesis, dev_nodes: list[DevNode], *, force: bool) -> None:
    """Write the genesis file (whole or not at all) and any dev keys, by the rules of
    :mod:`appchain.home.safefile` (``force``: replace existing regular files)."""
    write_genesis_file(out, genesis, force=force)
    if dev_nodes:
        write_dev_keys(out.parent / "keys", dev_nodes, [], force=force)
