"""The commands of a running node: ``start`` and ``status``.

``status`` reads the home's tip from the database when no node runs and asks the node's admin
endpoint when one holds the home, and never keeps a node from starting: it reads under a shared
lock that a starting node waits out (:mod:`appchain.home.guard`).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import time
from pathlib import Path

import trio

from appchain.cli.results import EXIT_OK, print_json
from appchain.home.chain import Chain, ChainError
from appchain.home.guard import HomeInUse
from appchain.home.home import Home
from appchain.home.store import StoreCorrupt, StoreInUse
from appchain.node.admin import ADMIN_FAILURES, RpcError
from appchain.node.admin import call as admin_call
from appchain.node.node import service_node_summary
from appchain.node.run import run_node
from state.types import NodeKey

STATUS_DATABASE_WAIT = 5.0
"""Seconds ``status`` waits for another read-only command to close the database (LevelDB admits
one opener at a time; they share the home's lock)."""


def cmd_status(args: argparse.Namespace) -> int:
    """The home's tip: from the database when no node runs, else from the node's admin endpoint.

    It never keeps a node from starting (:mod:`appchain.home.guard`): it reads the database under a
    shared lock that a starting node waits out, and keeps out of a home a node holds, asking the
    node instead. A node that holds its home and does not answer (still starting, or hung) is
    reported as running and not answering, with the reason; not an error."""
    home = Home(Path(args.home))
    lock = home.lock("status", shared=True)
    try:
        lock.acquire()
    except HomeInUse as exc:
        if not exc.by_node:
            raise  # a command that writes holds the home (replay, rollback…): nothing to ask
        result = _running_status(home, exc)
    else:
        try:
            result = _stored_status(home)
        finally:
            lock.release()
    if args.json:
        print_json(result)
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


def _open_to_read(home: Home) -> Chain:
    """The home's chain, waiting up to :data:`STATUS_DATABASE_WAIT` for another reader to close it."""
    deadline = time.monotonic() + STATUS_DATABASE_WAIT
    while True:
        try:
            return home.open_chain()
        except StoreInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _stored_status(home: Home) -> dict[str, object]:
    with _open_to_read(home) as chain:
        final = chain.final_height
        header = chain.store.get_header(final)
        own = None
        if home.node_key_path.exists():
            key, _ = home.load_node_keys()
            own = service_node_summary(chain.state, NodeKey(key.public_key))
        return {
            "running": False,
            "rpc_url": home.load_config().rpc_url,
            "chain_id": chain.genesis.chain_id,
            "genesis_hash": chain.genesis.hash.hex(),
            "height": chain.height,
            "final_height": final,
            "final_root": "" if header is None else header.state_root.hex(),
            "block_hash": chain.state.block_hash.hex(),
            "state_root": chain.state.root.hex(),
            "state_entries": len(chain.state),
            "snapshots": chain.store.list_snapshots(),
            "peers": 0,
            "service_node": own,
        }


def _running_status(home: Home, busy: HomeInUse) -> dict[str, object]:
    """The status a node that holds the home answers, or why it does not answer."""
    config = home.load_config()
    try:
        result = admin_call(config.admin_address, "status", timeout=2.0)
    except ADMIN_FAILURES as exc:
        problem = f"error {exc.code}: {exc}" if isinstance(exc, RpcError) else str(exc)
        return {"running": True, "answering": False, "holder": busy.holder, "admin_error": problem}
    if not isinstance(result, dict):
        problem = f"a status that is a JSON {type(result).__name__}, not an object"
        return {"running": True, "answering": False, "holder": busy.holder, "admin_error": problem}
    return {**result, "answering": True}


def cmd_start(args: argparse.Namespace) -> int:
    """Run the node. With ``APPCHAIN_PROFILE=FILE`` it runs under cProfile and writes the stats
    to FILE when it stops (``bench/devnet.py --profile`` reads them)."""
    home = Home(Path(args.home))
    profile_path = os.environ.get("APPCHAIN_PROFILE")
    profiler = cProfile.Profile() if profile_path else None
    try:
        if profiler is not None:
            profiler.enable()
        trio.run(run_node, home)
    except BaseExceptionGroup as group:
        raise _single_error(group) from None
    finally:
        if profiler is not None and profile_path:
            profiler.disable()
            profiler.dump_stats(profile_path)
    return EXIT_OK


def _single_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error inside a task group, when it is one of the kinds the CLI reports in one line."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for leaf in leaves:
        if isinstance(leaf, ChainError | StoreCorrupt | StoreInUse | OSError | KeyboardInterrupt):
            return leaf
    return group
