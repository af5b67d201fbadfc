"""Metrics: where a node's CPU goes (signature work counted call by call), and ``/metrics``.

:class:`SignatureClock` wraps the signature facades (:mod:`state.crypto.ed25519`,
:mod:`state.crypto.bls`); every caller looks them up on the module at call time, so installing
it covers the whole process. It counts the calls of each function and the wall time inside
them. A node installs it when ``APPCHAIN_SIGNATURE_CLOCK=1`` (``bench/devnet.py`` sets it) and
reports both in its status.

Why counts: the wall time inside a call includes the time the process was preempted, which on a
loaded machine (12 nodes on 2 cores) inflates it several times over, and the process CPU clock
(``process_time``) is a real system call that costs more here (~0.4 ms under load) than the
signature it would time. ``bench/devnet.py`` multiplies the counts by each call's cost measured
on an idle core in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appchain.home.boundary import Faults
from appchain.messaging.layer import SwarmLayer
from appchain.node.inbox import Inbox
from appchain.node.ledger import ChainLedger
from appchain.rpc.server import RpcServer
from consensus.node import NodeCore
from p2p.host import Host
from state.crypto import bls, ed25519

WRAPPED: tuple[tuple[object, str, str], ...] = (
    (ed25519, "verify", "ed25519.verify"),
    (bls, "verify", "bls.verify"),
    (bls, "fast_aggregate_verify", "bls.fast_aggregate_verify"),
    (bls, "verify_possession", "bls.verify_possession"),
    (ed25519.SigningKey, "sign", "ed25519.sign"),
    (bls, "sign", "bls.sign"),
    (bls, "aggregate_signatures", "bls.aggregate_signatures"),
)


class SignatureClock:
    """Counts the calls of the signature facades, and the wall time inside them."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.wall: dict[str, float] = {}
        self._saved: list[tuple[object, str, object]] = []

    def _wrap(self, owner: object, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        calls, wall = self.calls, self.wall
        calls[name], wall[name] = 0, 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                wall[name] += time.perf_counter() - started
                calls[name] += 1

        self._saved.append((owner, attribute, original))
        setattr(owner, attribute, timed)

    def install(self) -> SignatureClock:
        for owner, attribute, name in WRAPPED:
            self._wrap(owner, attribute, name)
        return self

    def report(self) -> dict[str, dict[str, float]]:
        return {
            name: {"calls": self.calls[name], "wall_seconds": round(self.wall[name], 3)}
            for name in self.calls
        }

    def restore(self) -> None:
        for owner, attribute, original in reversed(self._saved):
            setattr(owner, attribute, original)
        self._saved.clear()


# -- Prometheus ----------------------------------------------------------------------------------


class MeteredNode(Protocol):
    """The running node, as ``/metrics`` reads it when Prometheus scrapes: handed over by the node
    that keeps the metrics (this module imports no node, so the node may import it)."""

    @property
    def ledger(self) -> ChainLedger: ...

    @property
    def core(self) -> NodeCore: ...

    @property
    def host(self) -> Host: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def inbox(self) -> Inbox: ...

    @property
    def messages(self) -> SwarmLayer:
        """The swarm layer (its onion relay to outside servers is counted)."""
        ...

    @property
    def rpc_server(self) -> RpcServer | None:
        """The public port's server once the node started it (its refusals are counted)."""
        ...

    @property
    def storage_server(self) -> RpcServer | None:
        """The storage port's server once the node started it (its refusals are counted)."""
        ...

    def status(self) -> dict[str, Any]: ...


class NodeMetrics:
    """What ``/metrics`` serves, in Prometheus text format (``prometheus-client``).

    Gauges of the node's state are read when Prometheus scrapes (:class:`_NodeCollector`), so
    nothing is updated on the hot path; RPC calls are counted and timed as they are answered,
    and equivocation evidence as it is recorded.
    A registry of its own per node keeps the process-wide default collectors out of tests.
    """

    def __init__(self, node: MeteredNode) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.rpc_calls = Counter(
            "appchain_rpc_calls",
            "JSON-RPC calls answered, by method and outcome (ok, or the error code)",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "appchain_rpc_call_seconds",
            "Time to answer one JSON-RPC call, by method",
            ["method"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.evidence = Counter(
            "appchain_evidence_recorded",
            "Equivocations caught and recorded as evidence (one per signer and slot), by kind",
            ["kind"],
            registry=self.registry,
        )
        self.registry.register(_NodeCollector(node))

    def observe_call(self, method: str, outcome: str, seconds: float) -> None:
        self.rpc_calls.labels(method, outcome).inc()
        self.rpc_seconds.labels(method).observe(seconds)

    def observe_evidence(self, kind: str) -> None:
        self.evidence.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _NodeCollector(Collector):
    def __init__(self, node: MeteredNode) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node, core = self.node, self.node.core
        state = node.ledger.state

        def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, value=value)

        def counter(name: str, text: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, text, value=value)

        yield gauge("appchain_height", "Height of the top block", state.height)
        yield gauge(
            "appchain_final_height", "Height of the last certified checkpoint", node.ledger.final_height
        )
        yield gauge(
            "appchain_block_age_seconds",
            "Seconds since the top block's timestamp",
            time.time() - state.timestamp / 1000,  # headers are in ms; the metric stays seconds
        )
        status = node.status()
        yield gauge(
            "appchain_syncing", "1 while the node is catching up with its peers", status["sync"] == "syncing"
        )
        yield gauge(
            "appchain_pulse_round", "The Pulse round being run (0 unless rounds failed)", core.round_id[1]
        )
        stages = GaugeMetricFamily(
            "appchain_pulse_stage_seconds", "Duration of each stage of the last round", labels=["stage"]
        )
        for stage, seconds in sorted(core.stage_times.items()):
            stages.add_metric([stage], seconds)
        yield stages
        progress = status["progress"]
        yield gauge("appchain_active_nodes", "Active service nodes at the tip", progress["active_nodes"])
        yield gauge(
            "appchain_pulse_min_nodes",
            "Fewest active nodes Pulse runs with (pulse_min_nodes)",
            progress["pulse_min_nodes"],
        )
        yield gauge(
            "appchain_blocks_stalled",
            "1 when the tip is older than a block time and a round timeout (status says why)",
            progress["stalled"],
        )
        yield gauge(
            "appchain_too_few_active_nodes",
            "1 when fewer nodes are active than Pulse needs: no block can be made",
            progress["active_nodes"] < progress["pulse_min_nodes"],
        )
        failed = progress["last_failed_round"]
        if failed is not None:
            heard = GaugeMetricFamily(
                "appchain_last_failed_round_heard",
                "Quorum members heard in the last failed round of the next height, by its stage",
                labels=["stage"],
            )
            heard.add_metric([failed["stage"]], failed["heard"])
            yield heard
            yield gauge("appchain_last_failed_round_needed", "Validators that round needed", failed["needed"])
        checkpoint = progress["checkpoint"]
        if checkpoint is not None and checkpoint["votes"] is not None:
            yield gauge(
                "appchain_checkpoint_votes_heard",
                "Votes heard for the checkpoint finality waits for (this node in its quorum)",
                checkpoint["votes"],
            )
            needed = checkpoint["needed"]
            yield gauge("appchain_checkpoint_votes_needed", "Votes that checkpoint needs", needed)
        yield gauge("appchain_peers", "Connected peers", len(node.host.peers))
        held = node.host.counts()
        yield gauge("appchain_peers_inbound", "Connected peers that dialled this node", held.inbound)
        yield gauge("appchain_peers_outbound", "Connected peers this node dialled", held.outbound)
        duty = status["duty_peers"]
        yield gauge("appchain_duty_peers", "Quorum members this node keeps direct connections to", duty)
        yield gauge("appchain_p2p_pending_frames", "Frames waiting for a target to connect", held.pending)
        yield gauge("appchain_mempool_transactions", "Transactions waiting in the mempool", len(core.mempool))
        yield gauge(
            "appchain_template_event_limit",
            "Events this node would put in a block template now (its execution-time budget)",
            core.budget.limit(state.params.max_block_events),
        )
        yield counter("appchain_blocks_produced", "Blocks this node produced", core.produced)
        yield counter("appchain_blocks_signed", "Blocks this node signed as a Pulse validator", core.signed)
        yield gauge(
            "appchain_pulse_missed_votes",
            "Rounds this node was a validator of and did not sign, among those remembered",
            core.pulse_record.missed(core.node_key),
        )
        yield counter("appchain_p2p_frames_arrived", "Frames peers sent this node", status["frames_arrived"])
        yield counter(
            "appchain_p2p_frames_duplicate",
            "Gossip frames this node already had, dropped by their hash before decoding",
            status["frames_duplicate"],
        )
        yield counter(
            "appchain_p2p_violations", "Peers dropped for breaking the protocol", node.host.violations
        )
        errors = CounterMetricFamily(
            "appchain_unexpected_errors",
            "Exceptions no handler expected, caught at a boundary (the request, connection or frame"
            " failed; the node went on), by place",
            labels=["place"],
        )
        for place, count in sorted({**node.faults.counts, "p2p": node.host.errors}.items()):
            errors.add_metric([place], count)
        yield errors
        rpc_refused = node.rpc_server.refused if node.rpc_server is not None else {}
        storage_refused = node.storage_server.refused if node.storage_server is not None else {}
        for name, text, counts in (
            ("appchain_p2p_refused", "Inbound p2p connections refused, by limit", node.host.refused),
            (
                "appchain_inbox_dropped",
                "Frames from peers dropped, by the bound they broke",
                node.inbox.dropped,
            ),
            ("appchain_rpc_refused", "RPC connections and requests refused or cut, by limit", rpc_refused),
            (
                "appchain_storage_refused",
                "Storage port (HTTPS) connections and requests refused or cut, by limit; failed TLS"
                " handshakes as tls_handshake",
                storage_refused,
            ),
            (
                "appchain_onion_relay_refused",
                "Onion requests to outside servers refused, by reason (invalid_url, non_public)",
                node.messages.outside.refused,
            ),
            (
                "appchain_onion_relay_failed",
                "Onion requests to outside servers that got no usable answer, by reason",
                node.messages.outside.failed,
            ),
        ):
            family = CounterMetricFamily(name, text, labels=["reason"])
            for reason, count in sorted(counts.items()):
                family.add_metric([reason], count)
            yield family
        yield counter(
            "appchain_onion_relayed",
            "Onion requests to outside servers whose answer was passed back",
            node.messages.outside.relayed,
        )
        own = GaugeMetricFamily(
            "appchain_service_node_state", "1 for this node's state on chain", labels=["state"]
        )
        summary = status["service_node"]
        for name in ("awaiting", "active", "decommissioned", "unregistered"):
            current = summary["status"] if summary else "unregistered"
            own.add_metric([name], 1.0 if current == name else 0.0)
        yield own
        if summary is not None:
            yield gauge("appchain_service_node_credit", "Decommission credit, in blocks", summary["credit"])
