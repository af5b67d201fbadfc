"""``appchain start``: run the node of a home until SIGINT or SIGTERM (:func:`run_node`).

The node takes its home's lock first, waiting out the read-only commands inside it
(:func:`holding_home`, :mod:`appchain.home.guard`): a ``status`` poll never keeps a node from
starting. A fresh home with state sync on joins at a verified snapshot (:func:`join_by_state_sync`,
:mod:`appchain.node.statesync`); the loaded state is moved out of the cycle collector's reach
(:func:`freeze_loaded_state`); then the :class:`~appchain.node.node.Node` runs in one nursery,
which a signal cancels. Every store closes before the home is released, on an error too.
"""

from __future__ import annotations

import gc
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from appchain.home.chain import Chain
from appchain.home.guard import HomeInUse, HomeLock
from appchain.home.home import Home, NodeConfig
from appchain.node.log import Logger
from appchain.node.node import Node
from appchain.node.settings import host_config, naming_listener
from appchain.node.statesync import sync_state
from consensus.statesync import SyncConfig


async def _watch_signals(cancel: Callable[[], None], log: Logger) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log("info", "stopping", signal=signal.Signals(signum).name)
            cancel()
            return


async def join_by_state_sync(home: Home, config: NodeConfig, chain: Chain, log: Logger) -> dict[bytes, float]:
    """A fresh home (block 0 only) with state sync on joins at a verified snapshot when one is
    far enough ahead (:mod:`appchain.node.statesync`); otherwise it starts from block 0. Returns the
    bans of the peers it caught lying (node key → until, on the host's clock)."""
    if not config.state_sync or chain.height != 0 or chain.base_height != 0:
        return {}
    key, _ = home.load_node_keys()
    peers = [(peer.node_key, peer.host, peer.port) for peer in config.peers]
    log("info", "state sync: asking peers for snapshots", peers=len(peers))
    with naming_listener("p2p_listen"):  # state sync listens on the p2p address, then hands it on
        report = await sync_state(
            chain,
            host_config(config, chain),
            key,
            peers,
            SyncConfig(min_gap=config.state_sync_min_gap),
            log,
        )
    if report.outcome == "synced":
        log(
            "info",
            "state sync done",
            height=chain.height,
            root=chain.state.root.hex()[:16],
            entries=len(chain.state),
            seconds=round(report.seconds, 3),
        )
    else:
        reason = report.reason
        log("info", "state sync not used: syncing blocks from genesis", outcome=report.outcome, reason=reason)
    return report.banned


def freeze_loaded_state() -> None:
    """Move what is alive now (the loaded state, its tree and decoded records) out of the
    cycle collector's reach, as long-running servers do after start-up: they live as long as the
    process, and every full collection would walk them again. Measured at 5,000 nodes and 10^5
    accounts: a block of 100 transfers 21 ms without, 14 ms with (``bench.scale``)."""
    gc.collect()
    gc.freeze()


READERS_WAIT = 30.0
"""Seconds a starting node waits for read-only commands (``status``) to leave its home: each reads
for well under a second, and none enters once the node is waiting (:mod:`appchain.home.guard`)."""


@asynccontextmanager
async def holding_home(home: Home, log: Logger) -> AsyncIterator[HomeLock]:
    """The home's lock for the node: taken at once, or after the read-only commands inside have
    left; :class:`~appchain.home.guard.HomeInUse` at once if a command that writes, or another node,
    holds it."""
    lock = home.lock("start")
    deadline = time.monotonic() + READERS_WAIT
    waited = False
    while not lock.try_acquire_for_node():
        if time.monotonic() > deadline:
            holder = "read-only commands" if lock.holds_gate else lock.gate_holder()
            lock.release()
            raise HomeInUse(f"{home.path} is in use by {holder} for over {READERS_WAIT:g} s")
        if not waited:
            log("info", "waiting for read-only commands to leave the home", home=home.path)
            waited = True
        await trio.sleep(0.02)
    try:
        yield lock
    finally:
        lock.release()


async def run_node(home: Home, *, ready: Callable[[Node], None] | None = None) -> None:
    """Run the node of ``home`` until SIGINT or SIGTERM."""
    config = home.load_config()
    log = Logger(config.log_level)
    node: Node | None = None
    async with holding_home(home, log):
        if home.ensure_certificate():  # a home made before the storage port served HTTPS
            log("info", "made the storage port's TLS certificate", cert=home.cert_path)
        home.storage_tls()  # a damaged pair stops the start here, in one line, before the chain opens
        with home.open_chain() as chain:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_watch_signals, nursery.cancel_scope.cancel, log)
                    banned = await join_by_state_sync(home, config, chain, log)
                    freeze_loaded_state()
                    node = Node(home, config, chain, log)
                    node.host.banned_keys.update(banned)  # the peers state sync caught lying stay banned
                    await nursery.start(node.run)
                    if ready is not None:
                        ready(node)
            finally:  # on an error too (a port in use): every store closes before the home is released
                if node is not None:
                    node.message_store.close()
                    node.journal.close()
            log("info", "stopped", height=chain.height, final=chain.final_height)
