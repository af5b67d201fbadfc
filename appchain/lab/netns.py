"""Nodes on separate hosts: a testnet's nodes, each a process in its own network namespace
(:mod:`appchain.lab.namespaces` builds them and cuts the faults).

A node process starts as ``ip netns exec NAME python -m appchain.cli start``: ``ip`` enters the
namespace and execs the node, so the child's pid is the node's (signals, SIGSTOP included, go to
it directly). :class:`NetnsTestnet` stops every process it started by its pid, SIGCONT first
(a stopped process cannot act on SIGTERM), then removes the namespaces: on normal exit, on an
error, on Ctrl-C and on SIGTERM (turned into :class:`KeyboardInterrupt` while it runs).

:class:`NetnsTestnet` asks a node through its namespace: the admin endpoint on 127.0.0.1 there,
the public JSON-RPC on the node's address; :func:`start_relay` starts the delay and loss relay
(:mod:`appchain.lab.relay`) in the bridge namespace.
"""

from __future__ import annotations

import ipaddress
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from appchain.lab.namespaces import (
    NETNS_DIR,
    Namespaces,
    NetnsError,
    free_subnet,
    http_exchange,
    socket_in_namespace,
    unavailable_reason,
)
from appchain.lab.testnet import (
    Answer,
    NetworkMember,
    probe_status,
    read_testnet,
    start_process,
    stop_processes,
    write_testnet,
)
from appchain.node.admin import ADMIN_FAILURES, call
from state.encoding import DecodeError, decode_json


class NetnsTestnet:
    """A testnet folder's nodes, each a process in its own namespace; a context manager that
    builds the namespaces, starts every node and, on the way out, stops and removes them all.

    A new folder gets a testnet written for the namespaces' addresses (:func:`write_testnet` with
    a host per node); an existing one must have been written so (its nodes' addresses give the
    subnet). ``outsiders``: outside hosts (:class:`Namespaces`) built with the nodes'."""

    def __init__(self, folder: Path, nodes: int = 12, *, outsiders: int = 0, **testnet: Any) -> None:
        self.folder = folder
        self.outsiders = outsiders
        self.members = read_testnet(folder) if (folder / "genesis.json").exists() else []
        self.subnet = _subnet_of(self.members) if self.members else None
        self.nodes = len(self.members) or nodes
        self.namespaces: Namespaces
        """Built on entering (its subnet chosen then: a free one, or the existing testnet's)."""
        self._testnet = {"nodes": nodes, **testnet}
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.paused: set[int] = set()
        self.crashed: set[int] = set()
        self.relay_process: subprocess.Popen[bytes] | None = None
        self._previous_sigterm: Any = None

    def __enter__(self) -> NetnsTestnet:
        reason = unavailable_reason()
        if reason is not None:
            raise NetnsError(reason)
        self.namespaces = Namespaces(self.nodes, self.subnet or free_subnet(), outsiders=self.outsiders)
        self._catch_sigterm()
        try:
            self.namespaces.create()
            if not self.members:
                hosts = [self.namespaces.address(i) for i in range(self.namespaces.nodes)]
                self.members = write_testnet(self.folder, hosts=hosts, **self._testnet)
            for index in range(len(self.members)):
                self.start(index)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process of ours (by pid), then remove every namespace of ours."""
        try:
            self.stop_relay()
            for index in list(self.paused):
                self.resume(index)
            stop_processes(list(self.processes.values()))
        finally:
            self.namespaces.remove()
            self._restore_sigterm()

    def _catch_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

        self._previous_sigterm = signal.signal(signal.SIGTERM, interrupt)

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    # -- processes ---------------------------------------------------------------------------------

    def start(self, index: int) -> subprocess.Popen[bytes]:
        process = start_process(self.members[index].home, wrapper=self.namespaces.wrapper(index))
        self.processes[index] = process
        return process

    def pause(self, index: int) -> None:
        """SIGSTOP the node: it stops reading, writing and keeping time until :meth:`resume`."""
        self.processes[index].send_signal(signal.SIGSTOP)
        self.paused.add(index)

    def resume(self, index: int) -> None:
        if index in self.paused:
            self.paused.discard(index)
            if self.processes[index].poll() is None:
                self.processes[index].send_signal(signal.SIGCONT)

    def crash(self, index: int) -> None:
        """SIGKILL the node (a crash: nothing flushed, nothing said to its peers) and reap it;
        :meth:`restart` brings it back on its home."""
        self.resume(index)
        process = self.processes[index]
        if process.poll() is None:
            process.kill()
        process.wait()
        self.crashed.add(index)

    def restart(self, index: int, seconds: float = 60.0, *, wait: bool = True) -> None:
        """Start a crashed node again and (``wait``) wait until it answers ``status``."""
        if index not in self.crashed:
            raise NetnsError(f"node {index} was not crashed")
        self.crashed.discard(index)
        self.start(index)
        if wait:
            self.wait_for(index, seconds)

    def wait_for(self, index: int, seconds: float = 60.0) -> None:
        """Wait until node ``index`` answers ``status`` (its chain loaded, its ports open)."""
        wait_until(lambda: self.status(index, timeout=1.0) is not None, seconds, f"node {index} answering")

    def exited(self) -> dict[int, int]:
        """The nodes whose process ended, and its exit code (not the ones :meth:`crash` killed)."""
        return {
            i: code
            for i, p in self.processes.items()
            if i not in self.crashed and (code := p.poll()) is not None
        }

    # -- asking the nodes --------------------------------------------------------------------------

    def admin(
        self, index: int, method: str, params: dict[str, Any] | None = None, timeout: float = 2.0
    ) -> Any:
        member = self.members[index]
        connect = self.namespaces.connector(index)
        return call(("127.0.0.1", member.admin_port), method, params, timeout=timeout, connect=connect)

    def json_rpc(
        self, index: int, method: str, params: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> Any:
        """One call to node ``index``'s public JSON-RPC (on its address, in its namespace); its
        result, or :class:`NetnsError` with the error it answered."""
        member = self.members[index]
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode()
        address = (member.host, member.rpc_port)
        _, answer = http_exchange(
            self.namespaces.connector(index), address, "POST", "/json_rpc", body, timeout
        )
        try:
            reply = decode_json(answer)
        except DecodeError as exc:
            raise NetnsError(f"node {index} {method}: the answer is not JSON: {exc}") from None
        if not isinstance(reply, dict) or ("result" in reply) == ("error" in reply):
            raise NetnsError(f"node {index} {method}: not a JSON-RPC reply: {answer[:200]!r}")
        if "error" in reply:
            error = reply["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise NetnsError(f"node {index} {method}: {message}")
        return reply["result"]

    def status(self, index: int, timeout: float = 2.0) -> dict[str, Any] | None:
        if index in self.paused or index in self.crashed:
            return None
        try:
            result: dict[str, Any] = self.admin(index, "status", timeout=timeout)
        except ADMIN_FAILURES:
            return None
        return result

    def probe(self, index: int, timeout: float = 2.0) -> Answer:
        """Node ``index``'s status, or why there is none (:func:`appchain.lab.testnet.probe_status`)."""
        return probe_status(self.members[index], timeout, connect=self.namespaces.connector(index))

    def statuses(self, timeout: float = 2.0) -> list[dict[str, Any] | None]:
        return [self.status(i, timeout) for i in range(len(self.members))]

    def index_of(self, node_key_hex: str) -> int | None:
        for index, member in enumerate(self.members):
            if member.node_key.hex() == node_key_hex:
                return index
        return None

    # -- the relay ------------------------------------------------------------------------------------

    def start_relay(self, delay: float, loss: float, seed: int) -> None:
        """Start :mod:`appchain.lab.relay` in the bridge namespace for every node's p2p, RPC and
        storage port."""
        if self.relay_process is not None:
            raise NetnsError("the relay is already running")
        ports = sorted(
            {m.p2p_port for m in self.members}
            | {m.rpc_port for m in self.members}
            | {m.storage_port for m in self.members}
        )
        self.relay_process = start_relay(self.namespaces, ports, delay, loss, seed, self.folder / "relay.log")

    def stop_relay(self) -> None:
        if self.relay_process is not None:
            stop_processes([self.relay_process], grace=5.0)
            self.relay_process = None


def start_relay(
    namespaces: Namespaces, ports: list[int], delay: float, loss: float, seed: int, log: Path
) -> subprocess.Popen[bytes]:
    """:mod:`appchain.lab.relay` in the bridge namespace, once it accepts connections (its output
    appended to ``log``)."""
    output = log.open("ab")
    try:
        process = subprocess.Popen(
            [
                *namespaces.bridge_wrapper(),
                sys.executable, "-m", "appchain.lab.relay",
                "--ports", ",".join(map(str, ports)),
                "--delay", str(delay), "--loss", str(loss), "--seed", str(seed),
            ],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        output.close()

    def listening() -> bool:
        if process.poll() is not None:
            raise NetnsError(f"the relay exited with {process.returncode}: see {log}")
        sock = socket_in_namespace(NETNS_DIR / namespaces.bridge)
        try:
            sock.settimeout(1.0)
            sock.connect((namespaces.relay_address, ports[0]))
        except OSError:
            return False
        finally:
            sock.close()
        return True

    try:
        wait_until(listening, 20.0, "the relay to listen")
    except BaseException:
        stop_processes([process], grace=5.0)
        raise
    return process


def _subnet_of(members: list[NetworkMember]) -> ipaddress.IPv4Network:
    """The /24 an existing testnet's nodes were written for; refuses a 127.0.0.1 testnet."""
    networks = {ipaddress.IPv4Network(f"{m.host}/24", strict=False) for m in members}
    if len(networks) != 1 or any(ipaddress.ip_address(m.host).is_loopback for m in members):
        raise NetnsError(
            f"{members[0].home.parent} was not written for namespaces (its nodes listen on "
            f"{', '.join(sorted({m.host for m in members}))}): choose a new folder for --netns"
        )
    subnet = networks.pop()
    expected = [str(subnet.network_address + i + 1) for i in range(len(members))]
    if [m.host for m in members] != expected:
        raise NetnsError(f"{members[0].home.parent}: node i must listen on {subnet.network_address + 1}+i")
    return subnet


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise NetnsError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.1)
