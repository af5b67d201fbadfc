"""What a node's config.toml sets for its parts, and a listener that cannot open named by its
setting.

:func:`host_config` gives the p2p host its listen address and its limits (peers, connections and
handshakes per address), :func:`topology` the node's gossip peers and inbound bound,
:func:`inbox_limits` the bounds of what one peer may leave waiting,
:func:`relay_limits` the limits of onion requests to outside servers.
:func:`naming_listener` turns a port that cannot be opened into one line an operator acts on:
the setting, its address, why, and the section of config.toml to change.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Iterator
from contextlib import contextmanager

from appchain.home.chain import Chain, ChainError
from appchain.home.home import NodeConfig
from appchain.messaging.relay import RelayLimits
from appchain.node.inbox import InboxLimits
from consensus.topology import DEVNET_TOPOLOGY, Topology
from genesis.presets import is_devnet_pace
from p2p.host import HostConfig, ListenFailed
from state.params import ChainParams

VERSION = "appchain/0.1"


class ListenerUnavailable(ChainError):
    """A listener the node's config names cannot be opened: a user error (exit 1), one line naming
    the setting, its address and the section of config.toml to change."""


@contextmanager
def naming_listener(setting: str) -> Iterator[None]:
    """Turn a :class:`~p2p.host.ListenFailed` inside (bare, or in a task group's exception group)
    into :class:`ListenerUnavailable` naming ``setting`` (``rpc_listen`` is ``[rpc] listen`` in
    config.toml): an operator reads which setting to change, not a bind traceback."""
    try:
        yield
    except* ListenFailed as group:
        failed = group.exceptions[0]
        assert isinstance(failed, ListenFailed)
        raise ListenerUnavailable(describe_listen_failure(setting, failed)) from None


def describe_listen_failure(setting: str, failed: ListenFailed) -> str:
    """One line: the setting, its address, why it cannot listen there, and where to change it."""
    section = setting.removesuffix("_listen")
    if failed.errno == errno.EADDRINUSE:
        problem = "is in use (another process listens there)"
    else:
        problem = f"cannot be opened ({failed.strerror})"
    return f"{setting} {failed.host}:{failed.port} {problem}: change [{section}] listen in config.toml"


def host_config(config: NodeConfig, chain: Chain) -> HostConfig:
    host, port = config.p2p_address
    return HostConfig(
        chain_id=chain.genesis.chain_id,
        listen_host=host,
        listen_port=port,
        version=VERSION,
        max_peers=config.max_peers,
        max_inbound_per_ip=config.p2p_max_peers_per_ip,
        inbound_per_second_per_ip=config.p2p_connections_per_second_per_ip,
        inbound_burst_per_ip=config.p2p_connection_burst_per_ip,
        max_handshakes=config.p2p_max_handshakes,
        limit_loopback=config.p2p_limit_loopback,
    )


def topology(config: NodeConfig, params: ChainParams) -> Topology:
    """``[p2p] outbound_peers`` and ``max_peers``, at the devnet's pace (peers swapped and given
    up on sooner) on a chain of devnet pace."""
    base = DEVNET_TOPOLOGY if is_devnet_pace(params) else Topology()
    return dataclasses.replace(base, outbound=config.outbound_peers, max_inbound=config.max_peers)


def inbox_limits(config: NodeConfig) -> InboxLimits:
    return InboxLimits(
        peer_frames=config.p2p_peer_pending_frames,
        peer_transactions=config.p2p_peer_pending_transactions,
        peer_bytes=config.p2p_peer_pending_bytes,
    )


def relay_limits(config: NodeConfig) -> RelayLimits:
    return RelayLimits(
        timeout=config.onion_relay_timeout,
        max_response=config.onion_relay_max_response,
        private_targets=config.onion_relay_private_targets,
    )
