"""Hosts for nodes: a Linux network namespace per node, on one bridge, and the faults cut into them.

One run builds, with ``ip`` (Debian's ``iproute2``; root needed), nothing in the root namespace::

    acn<run>br      the bridge namespace: a Linux bridge br0, and on it the relay's address
                    (10.77.X.254) for :mod:`appchain.lab.relay`
    acn<run>n<i>    node i's namespace: lo up (the admin endpoint listens on 127.0.0.1 there) and
                    eth0 (10.77.X.(i+1)/24), a veth whose other end p<i> is a port of br0
    acn<run>o<k>    with ``outsiders``: outside host k, a machine on the nodes' network that runs
                    no node (an honest client, a flooder): eth0 (10.77.X.(251+k)/24), its other
                    end o<k> on br0; at most three

``<run>`` is 6 random hex digits, so two runs at once never collide, and a run removes only
the namespaces named with its own id. The subnet is private to the run's namespaces (nothing is
routed out of them), so runs may share it; :func:`free_subnet` still picks one the root
namespace does not use, so an address in a log is never mistaken for a host's. Deleting a
namespace deletes its links (the veth pairs and the bridge go with it).

**Reaching a node from the root namespace** without giving the root namespace an address: a
socket belongs to the network namespace of the thread that creates it, for its whole life. So
:meth:`Namespaces.socket` starts a short-lived thread that enters the node's namespace with
``setns(2)`` (through ctypes; network namespaces are per thread), creates the socket and ends;
the caller then connects that socket, from any thread, to 127.0.0.1 (the node's admin endpoint)
or to the node's address (its JSON-RPC), both inside the node's namespace.

**Faults**, each undone exactly (they nest: a link cut twice is restored after two restores):

- :meth:`Namespaces.cut` / :meth:`~Namespaces.restore`: the bridge end of a node's veth set
  down, as a cable pulled at the switch: the node's packets go nowhere and nothing reaches it
  (connections hang, dials time out; no reset is ever seen);
- :meth:`Namespaces.block` / :meth:`~Namespaces.unblock`: a partition between two groups, by a
  ``blackhole`` route per destination in each node's namespace, in both directions, so both
  sides drop silently (as Jepsen's iptables DROP). A node in neither group (a *bridge node*)
  keeps reaching both halves, which no longer reach each other;
- :meth:`Namespaces.relay` / :meth:`~Namespaces.unrelay`: a node's traffic routed through the
  relay process in the bridge namespace (:mod:`appchain.lab.relay`: added delay and modelled loss):
  a route per destination ``via`` the relay's address in the node's namespace and, for the node,
  in every other one. The bridge namespace delivers every packet for the run's subnet that
  arrives on br0 to its own sockets (a ``local`` route for the subnet in a table looked up only
  for packets from br0), so the relay accepts connections for any node's address and reads the
  address the client meant with ``getsockname``: no NAT, no iptables. Existing direct
  connections of the node are reset when its routes change (the relay has no socket for them)
  and are redialled through the relay, and back again when they are removed.

A blackhole wins over a relay route for the same pair while both are wanted.
"""

from __future__ import annotations

import ctypes
import http.client
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from appchain.home.chain import ChainError
from appchain.home.tls import client_context
from appchain.node.admin import Connect

PREFIX = "acn"
"""Every namespace of a run is named ``acn<run id>…``."""


SUBNET_CANDIDATES = [ipaddress.IPv4Network(f"10.77.{x}.0/24") for x in range(256)]


RELAY_HOST = 254
"""The relay's address in the run's subnet: .254 (nodes take .1 up)."""


MAX_NODES = 250


FIRST_OUTSIDER = MAX_NODES + 1
"""Outside hosts take .251 to .253, between the nodes and the relay."""


MAX_OUTSIDERS = RELAY_HOST - FIRST_OUTSIDER


RELAY_TABLE = 100


CLONE_NEWNET = 0x40000000


NETNS_DIR = Path("/run/netns")


DEFAULT_TIMEOUT = 5.0


BLACKHOLE = "blackhole"


VIA_RELAY = "relay"


class NetnsError(ChainError):
    """Namespaces cannot be built or used here (not root, no ``ip``, an ``ip`` command failed)."""


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or None when they can (creates and deletes
    a probe namespace to be sure)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "the ip command is missing (Debian: apt-get install iproute2)"
    probe = f"{PREFIX}{secrets.token_hex(3)}probe"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return f"ip netns add failed: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def ip(*args: str, namespace: str | None = None, batch: Sequence[str] = ()) -> str:
    """Run ``ip [-n NAMESPACE] ARGS`` (or a batch of lines); its output, or :class:`NetnsError`."""
    command = ["ip", *(["-n", namespace] if namespace else []), *(["-batch", "-"] if batch else args)]
    try:
        result = subprocess.run(
            command,
            input="\n".join(batch) + "\n" if batch else None,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise NetnsError("the ip command is missing (Debian: apt-get install iproute2)") from None
    if result.returncode != 0:
        shown = " ".join(command) + (f" <<< {'; '.join(batch)}" if batch else "")
        raise NetnsError(f"{shown}: {result.stderr.strip() or f'exit {result.returncode}'}")
    return result.stdout


def used_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks the root namespace has addresses or routes in."""
    used = []
    for entry in json.loads(ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        destination = entry.get("dst", "")
        if destination and destination != "default":
            used.append(ipaddress.IPv4Network(destination, strict=False))
    for link in json.loads(ip("-j", "-4", "addr", "show") or "[]"):
        for info in link.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return used


def free_subnet(used: Iterable[ipaddress.IPv4Network] | None = None) -> ipaddress.IPv4Network:
    """The first 10.77.X.0/24 that overlaps nothing of the root namespace's."""
    taken = list(used_networks() if used is None else used)
    for candidate in SUBNET_CANDIDATES:
        if not any(candidate.overlaps(network) for network in taken):
            return candidate
    raise NetnsError("every 10.77.X.0/24 overlaps a network of this host: no subnet for the namespaces")


_libc = ctypes.CDLL(None, use_errno=True)


def socket_in_namespace(
    path: Path, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A socket of the network namespace at ``path`` (``/run/netns/NAME``), created by a thread
    that entered it with setns(2) and then ended (this thread's namespace is not touched)."""
    made: list[socket.socket] = []
    failed: list[OSError] = []

    def enter_and_create() -> None:
        try:
            with path.open("rb") as handle:
                if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"setns into {path}: {os.strerror(error)}")
            made.append(socket.socket(family, kind))
        except OSError as exc:
            failed.append(exc)

    thread = threading.Thread(target=enter_and_create, name=f"setns {path.name}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


class Namespaces:
    """The namespaces, bridge and links of one run, and the faults cut into them."""

    def __init__(
        self, nodes: int, subnet: ipaddress.IPv4Network, run_id: str | None = None, outsiders: int = 0
    ) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise NetnsError(f"{nodes} nodes: namespaces hold 1 to {MAX_NODES}")
        if not 0 <= outsiders <= MAX_OUTSIDERS:
            raise NetnsError(f"{outsiders} outside hosts: at most {MAX_OUTSIDERS}")
        if subnet.prefixlen != 24:
            raise NetnsError(f"{subnet} is not a /24")
        self.nodes = nodes
        self.outsiders = outsiders
        self.subnet = subnet
        self.run_id = run_id or secrets.token_hex(3)
        self.bridge = f"{PREFIX}{self.run_id}br"
        self.created: list[str] = []
        self.cuts: Counter[int] = Counter()
        self.wanted: dict[str, Counter[tuple[int, int]]] = {BLACKHOLE: Counter(), VIA_RELAY: Counter()}
        self.applied: dict[tuple[int, int], str] = {}

    def node(self, index: int) -> str:
        return f"{PREFIX}{self.run_id}n{index}"

    def address(self, index: int) -> str:
        return str(self.subnet.network_address + index + 1)

    def outsider(self, index: int) -> str:
        return f"{PREFIX}{self.run_id}o{index}"

    def outsider_address(self, index: int) -> str:
        return str(self.subnet.network_address + FIRST_OUTSIDER + index)

    @property
    def relay_address(self) -> str:
        return str(self.subnet.network_address + RELAY_HOST)

    @property
    def names(self) -> list[str]:
        nodes = [self.node(i) for i in range(self.nodes)]
        return [self.bridge, *nodes, *(self.outsider(k) for k in range(self.outsiders))]

    def existing(self) -> list[str]:
        """This run's namespaces that exist now."""
        return [name for name in self.names if (NETNS_DIR / name).exists()]

    # -- building and removing -------------------------------------------------------------------

    def create(self) -> None:
        """Build everything; on a failure part way, remove what was built and raise."""
        try:
            self._create()
        except BaseException:
            self.remove()
            raise

    def _create(self) -> None:
        for name in self.names:
            ip("netns", "add", name)
            self.created.append(name)
        prefix = self.subnet.prefixlen
        bridge_lines = [
            "link set lo up",
            "link add br0 type bridge",
            f"addr add {self.relay_address}/{prefix} dev br0",
            "link set br0 up",
            # the relay's trick: whatever arrives on br0 for the subnet is for this namespace
            f"route add local {self.subnet} dev lo table {RELAY_TABLE}",
            f"rule add iif br0 lookup {RELAY_TABLE} pref {RELAY_TABLE}",
        ]
        for i in range(self.nodes):
            bridge_lines += [
                f"link add p{i} type veth peer name eth0 netns {self.node(i)}",
                f"link set p{i} master br0",
                f"link set p{i} up",
            ]
        for k in range(self.outsiders):
            bridge_lines += [
                f"link add o{k} type veth peer name eth0 netns {self.outsider(k)}",
                f"link set o{k} master br0",
                f"link set o{k} up",
            ]
        ip(namespace=self.bridge, batch=bridge_lines)
        self._quiet_arp()
        hosts = [(self.node(i), self.address(i)) for i in range(self.nodes)]
        hosts += [(self.outsider(k), self.outsider_address(k)) for k in range(self.outsiders)]
        for name, address in hosts:
            batch = ["link set lo up", f"addr add {address}/{prefix} dev eth0", "link set eth0 up"]
            ip(namespace=name, batch=batch)

    def _quiet_arp(self) -> None:
        """The bridge namespace takes the whole subnet as local (for the relay), so without this
        it would answer ARP for every node's address and draw their traffic to itself: answer
        only for br0's own address (arp_ignore 1), and ask with it (arp_announce 2)."""
        settings = {"arp_ignore": 1, "arp_announce": 2}
        script = "; ".join(f"echo {v} > /proc/sys/net/ipv4/conf/br0/{k}" for k, v in settings.items())
        result = subprocess.run(
            [*self.bridge_wrapper(), "sh", "-c", script], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise NetnsError(f"cannot set ARP settings in {self.bridge}: {result.stderr.strip()}")

    def remove(self) -> None:
        """Delete this run's namespaces (their links go with them); leaves nothing of ours."""
        errors = []
        for name in reversed(self.names):
            if (NETNS_DIR / name).exists():
                try:
                    ip("netns", "del", name)
                except NetnsError as exc:
                    errors.append(str(exc))
        self.created.clear()
        self.cuts.clear()
        self.applied.clear()
        for counter in self.wanted.values():
            counter.clear()
        if errors:
            raise NetnsError("; ".join(errors))

    # -- reaching into a namespace -----------------------------------------------------------------

    def wrapper(self, index: int) -> list[str]:
        """The command prefix that runs a program in node ``index``'s namespace."""
        return ["ip", "netns", "exec", self.node(index)]

    def bridge_wrapper(self) -> list[str]:
        return ["ip", "netns", "exec", self.bridge]

    def outsider_wrapper(self, index: int) -> list[str]:
        """The command prefix that runs a program on outside host ``index``."""
        return ["ip", "netns", "exec", self.outsider(index)]

    def socket(self, index: int, family: int = socket.AF_INET) -> socket.socket:
        return socket_in_namespace(NETNS_DIR / self.node(index), family)

    def connector(self, index: int) -> Connect:
        """A :data:`~appchain.node.admin.Connect` whose sockets are in node ``index``'s namespace."""
        return _connector(self.node(index))

    def outsider_connector(self, index: int) -> Connect:
        """A :data:`~appchain.node.admin.Connect` whose sockets are on outside host ``index``."""
        return _connector(self.outsider(index))

    # -- faults ----------------------------------------------------------------------------------

    def cut(self, index: int) -> None:
        """Pull node ``index``'s cable at the bridge: nothing in or out."""
        self.cuts[index] += 1
        if self.cuts[index] == 1:
            ip("link", "set", f"p{index}", "down", namespace=self.bridge)

    def restore(self, index: int) -> None:
        if self.cuts[index] <= 0:
            raise NetnsError(f"node {index}'s link is not cut")
        self.cuts[index] -= 1
        if self.cuts[index] == 0:
            ip("link", "set", f"p{index}", "up", namespace=self.bridge)

    def block(self, side: Iterable[int], other: Iterable[int]) -> None:
        """Partition: no packet between a node of ``side`` and one of ``other``, either way."""
        self._want(BLACKHOLE, _both_ways(side, other), +1)

    def unblock(self, side: Iterable[int], other: Iterable[int]) -> None:
        self._want(BLACKHOLE, _both_ways(side, other), -1)

    def relay(self, nodes: Iterable[int]) -> None:
        """Route every connection of ``nodes`` (to any other node) through the relay."""
        self._want(VIA_RELAY, self._relay_pairs(nodes), +1)

    def unrelay(self, nodes: Iterable[int]) -> None:
        self._want(VIA_RELAY, self._relay_pairs(nodes), -1)

    def _relay_pairs(self, nodes: Iterable[int]) -> list[tuple[int, int]]:
        chosen = set(nodes)
        return _both_ways(chosen, [i for i in range(self.nodes) if i not in chosen]) + [
            (a, b) for a in chosen for b in chosen if a != b
        ]

    def _want(self, kind: str, pairs: list[tuple[int, int]], step: int) -> None:
        counter = self.wanted[kind]
        for pair in pairs:
            if step < 0 and counter[pair] <= 0:
                raise NetnsError(f"no {kind} route from node {pair[0]} to node {pair[1]} to remove")
        for pair in pairs:
            counter[pair] += step
        self._apply()

    def _apply(self) -> None:
        """Bring each node's routes to what is wanted: a blackhole, a route via the relay, or
        none (the subnet's own route), changing only those that differ."""
        wanted: dict[tuple[int, int], str] = {
            p: VIA_RELAY for p, n in self.wanted[VIA_RELAY].items() if n > 0
        }
        wanted.update({p: BLACKHOLE for p, n in self.wanted[BLACKHOLE].items() if n > 0})
        lines: dict[int, list[str]] = {}
        for pair in sorted(set(wanted) | set(self.applied)):
            now, before = wanted.get(pair), self.applied.get(pair)
            if now == before:
                continue
            source, target = pair
            destination = f"{self.address(target)}/32"
            if now is None:
                line = f"route del {destination}"
            elif now == BLACKHOLE:
                line = f"route replace blackhole {destination}"
            else:
                line = f"route replace {destination} via {self.relay_address} dev eth0"
            lines.setdefault(source, []).append(line)
        for source, batch in sorted(lines.items()):
            ip(namespace=self.node(source), batch=batch)
        self.applied = wanted


def _connector(namespace: str) -> Connect:
    def connect(address: tuple[str, int], timeout: float) -> socket.socket:
        sock = socket_in_namespace(NETNS_DIR / namespace)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock

    return connect


def _both_ways(side: Iterable[int], other: Iterable[int]) -> list[tuple[int, int]]:
    first, second = sorted(set(side)), sorted(set(other))
    if set(first) & set(second):
        raise NetnsError(f"nodes {sorted(set(first) & set(second))} are on both sides")
    return [(a, b) for a in first for b in second] + [(b, a) for a in first for b in second]


def http_exchange(
    connect: Connect,
    address: tuple[str, int],
    method: str,
    path: str,
    body: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    tls: bool = False,
) -> tuple[int, bytes]:
    """One HTTP request to ``address`` over a connection ``connect`` opens (in a namespace: see
    :meth:`Namespaces.connector`); the answer's status and body. ``tls``: HTTPS, to a storage
    port (its self-signed certificate unchecked, as Session clients do)."""
    connection = _NamespaceHTTP(*address, connect, timeout, tls=tls)
    try:
        headers = {} if body is None else {"content-type": "application/json"}
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class _NamespaceHTTP(http.client.HTTPConnection):
    """HTTP over a socket opened in a node's namespace."""

    def __init__(self, host: str, port: int, connect: Connect, timeout: float, *, tls: bool = False) -> None:
        super().__init__(host, port, timeout=timeout)
        self._connect = connect
        self._tls = client_context() if tls else None

    def connect(self) -> None:
        sock = self._connect((self.host, self.port), self.timeout or DEFAULT_TIMEOUT)
        self.sock = sock if self._tls is None else self._tls.wrap_socket(sock)
