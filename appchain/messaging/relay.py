"""Onion requests to outside servers: the last layer of an onion request names a ``host``, and
the node that opens it posts the layer to that server, as session-storage-server does for
Session's open groups and file server (``request_handler.cpp`` ``process_onion_to_url``).

What we follow from the storage server, and why:

- the target is ``protocol://host[:port]target``: ``protocol`` ``http`` or ``https`` (default
  ``https``), ``port`` default 443 whatever the protocol (the storage server's default; clients
  send the port for ``http``), and ``target`` must start with ``/loki/`` or ``/oxen/``, end with
  ``/lsrpc`` and hold no ``?``: only the onion endpoints of Session servers (``/oxen/v4/lsrpc``,
  ``/loki/v3/lsrpc``) can be reached, so a node cannot be made to post to any URL. Anything else
  is answered ``{"status":400,"body":"Invalid url"}`` sealed to the layer's key (the caller,
  :class:`appchain.messaging.onion.OnionProcessor`, seals it);
- the request is a ``POST`` of the **whole decrypted layer** (``u32 size ‖ blob ‖ JSON``: the
  server reads its own ephemeral key from the JSON), ``Content-Type: application/octet-stream``;
  redirects are not followed (a 3xx is passed back like any answer); ``https`` targets are
  verified (certificate chain and host name, TLS 1.2 or later): an outside server is not a
  service node, whose self-signed certificates clients accept because the onion layers prove
  who they are;
- the answer goes back **as it came** (status, body and content type; not encrypted again: the
  server encrypted its body to the client); a server that cannot be reached is answered 502,
  one that does not answer in time 504, with a line of text saying why.

What we add, as a public relay (the storage server has none of these):

- a timeout for the whole exchange, 25 s by default as the storage server's
  ``ONION_URL_TIMEOUT`` (below the 30 s a hop waits for the next, so the client learns why);
- a cap on the answer's size, 16 MiB by default: it is what a node accepts from the next hop
  (:data:`appchain.messaging.http.MAX_RESPONSE`), so a larger answer could not travel back along
  the path anyway, and it holds the largest thing Session fetches this way (a 10 MB attachment
  from the file server or an open group, 13.4 MB once base64-encoded in a v3 reply). Beyond it:
  502 ``Response too large``;
- no target on a private, loopback, link-local, multicast or otherwise non-public address: the
  host is resolved first, **every** address it resolves to is checked, and the connection goes
  to a checked address (so a name cannot resolve to a public address for the check and a private
  one for the connection). Refused with 403 ``Forbidden target``, unless the node's setting
  ``[onion] relay_private_targets`` allows them (tests and devnets on one machine).

Counted for ``/metrics``: answers relayed, refusals by reason, failures by reason.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import h11
import trio

from appchain.home.home import ONION_HOP_TIMEOUT
from appchain.messaging.http import MAX_RESPONSE

RELAY_TIMEOUT = 25.0
"""Seconds for the whole exchange with an outside server (the storage server's ``ONION_URL_TIMEOUT``)."""
MAX_RELAY_RESPONSE = MAX_RESPONSE
HOP_TIMEOUT = ONION_HOP_TIMEOUT
"""What a hop waits for the next (:meth:`appchain.messaging.layer.SwarmLayer._relay_onion`): a
relay timeout must stay below it."""
USER_AGENT = "Oxen Storage Server/2.8.0 (appchain)"
"""The storage server sends ``Oxen Storage Server/<version>``; this node answers ``info`` with
version 2.8.0."""
PROTOCOLS = {"http": 80, "https": 443}


class InvalidUrl(ValueError):
    """The layer's target is not one the storage server relays to: answered ``Invalid url``."""


@dataclass(frozen=True)
class RelayLimits:
    """A node's ``[onion]`` settings."""

    timeout: float = RELAY_TIMEOUT
    max_response: int = MAX_RELAY_RESPONSE
    private_targets: bool = False


@dataclass(frozen=True)
class Target:
    protocol: str
    host: str
    """As the layer names it: a DNS name, an IPv4 address, or an IPv6 address with or without brackets."""
    port: int
    path: str

    @property
    def bare_host(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") and self.host.endswith("]") else self.host

    @property
    def host_header(self) -> str:
        host = f"[{self.bare_host}]" if ":" in self.bare_host else self.bare_host
        return host if PROTOCOLS[self.protocol] == self.port else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host_header}{self.path}"


def parse_target(meta: dict[str, Any]) -> Target:
    """The target of a last layer's JSON (``host``, ``target``, ``port``, ``protocol``), or
    :class:`InvalidUrl`. Other keys (``method``, ``ephemeral_key``, ``enc_type``) are the outside
    server's, and ignored here as the storage server ignores them."""
    host, path = meta.get("host"), meta.get("target")
    protocol, port = meta.get("protocol", "https"), meta.get("port", 443)
    if protocol not in PROTOCOLS:
        raise InvalidUrl(f"protocol {protocol!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidUrl(f"port {port!r}")
    if (
        not isinstance(path, str)
        or not path.startswith(("/loki/", "/oxen/"))
        or not path.endswith("/lsrpc")
        or "?" in path
        or not path.isprintable()
        or " " in path
    ):
        raise InvalidUrl(f"target {path!r}")
    if (
        not isinstance(host, str)
        or not 0 < len(host) <= 253
        or not host.isascii()
        or not host.isprintable()
        or any(c in host for c in " /?#@\\")
    ):
        raise InvalidUrl(f"host {host!r}")
    return Target(protocol, host, port, path)


def is_public(address: str) -> bool:
    """Whether an address is on the public internet: not private, loopback, link-local,
    multicast, reserved, shared (100.64/10) or unspecified; an IPv4-mapped IPv6 address is
    judged by its IPv4 address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _Failed(Exception):
    def __init__(self, reason: str, status: int, text: str) -> None:
        super().__init__(text)
        self.reason, self.status, self.text = reason, status, text


Resolver = Callable[[str, int], Awaitable[list[str]]]
"""The addresses of a host name (tests may resolve names their own way)."""


async def resolve(host: str, port: int) -> list[str]:
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class OutsideRelay:
    """Posts last layers to outside servers under a node's :class:`RelayLimits`."""

    def __init__(
        self,
        limits: RelayLimits | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = resolve,
        log: Callable[..., None] | None = None,
    ) -> None:
        self.limits = limits or RelayLimits()
        if ssl_context is None:
            ssl_context = ssl.create_default_context()
            ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ssl_context = ssl_context
        self.resolver = resolver
        self.log = log or (lambda *args, **kwargs: None)
        self.relayed = 0
        """Answers of outside servers passed back (any status)."""
        self.refused: dict[str, int] = {}
        """Targets refused before any connection, by reason: ``invalid_url``, ``non_public``."""
        self.failed: dict[str, int] = {}
        """Relays that got no usable answer, by reason: ``resolve``, ``connect``, ``tls``,
        ``timeout``, ``too_large``, ``protocol``."""

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    async def post(self, meta: dict[str, Any], layer: bytes) -> tuple[int, bytes, str]:
        """Relay ``layer`` (the whole decrypted last layer) to the target its JSON ``meta`` names:
        the server's status, body and content type, or this node's 403/502/504 text. Raises
        :class:`InvalidUrl` (counted) for a target the storage server would not relay to."""
        try:
            target = parse_target(meta)
        except InvalidUrl:
            self.refuse("invalid_url")
            raise
        try:
            with trio.fail_after(self.limits.timeout):
                answer = await self._post(target, layer)
        except trio.TooSlowError:
            failure = _Failed("timeout", 504, f"{target.url}: no answer within {self.limits.timeout:g} s")
        except _Failed as exc:
            failure = exc
        else:
            self.relayed += 1
            self.log("debug", "onion to server", url=target.url, status=answer[0], bytes=len(answer[1]))
            return answer
        if failure.reason == "non_public":
            self.refuse(failure.reason)
        else:
            self.failed[failure.reason] = self.failed.get(failure.reason, 0) + 1
        self.log("info", "onion to server failed", url=target.url, reason=failure.reason)
        return failure.status, failure.text.encode(), "text/plain"

    async def _post(self, target: Target, layer: bytes) -> tuple[int, bytes, str]:
        try:
            addresses = await self.resolver(target.bare_host, target.port)
        except OSError as exc:
            raise _Failed("resolve", 502, f"{target.url}: cannot resolve {target.bare_host}: {exc}") from None
        if not addresses:
            raise _Failed("resolve", 502, f"{target.url}: {target.bare_host} has no address")
        if not self.limits.private_targets:
            for address in addresses:
                if not is_public(address):
                    raise _Failed(
                        "non_public", 403, f"Forbidden target: {target.bare_host} is not a public address"
                    )
        stream: trio.abc.Stream | None = None
        errors = []
        for address in addresses:
            try:
                stream = await trio.open_tcp_stream(address, target.port)
                break
            except OSError as exc:
                errors.append(f"{address}: {exc.strerror or exc}")
        if stream is None:
            raise _Failed("connect", 502, f"{target.url}: cannot connect ({'; '.join(errors)})")
        try:
            if target.protocol == "https":
                tls = trio.SSLStream(stream, self.ssl_context, server_hostname=target.bare_host)
                stream = tls
                try:
                    await tls.do_handshake()
                except (trio.BrokenResourceError, ssl.SSLError) as exc:
                    cause = exc.__cause__ or exc
                    raise _Failed("tls", 502, f"{target.url}: TLS failed: {cause}") from None
            return await self._exchange(stream, target, layer)
        finally:
            await trio.aclose_forcefully(stream)

    async def _exchange(
        self, stream: trio.abc.Stream, target: Target, layer: bytes
    ) -> tuple[int, bytes, str]:
        limit = self.limits.max_response
        too_large = _Failed("too_large", 502, f"{target.url}: Response too large (> {limit} bytes)")
        connection = h11.Connection(h11.CLIENT)
        headers = [
            ("host", target.host_header),
            ("user-agent", USER_AGENT),
            ("content-type", "application/octet-stream"),
            ("content-length", str(len(layer))),
            ("connection", "close"),
        ]
        try:
            data = connection.send(h11.Request(method="POST", target=target.path, headers=headers))
            data += connection.send(h11.Data(data=layer)) + connection.send(h11.EndOfMessage())
            await stream.send_all(data)
            status, content_type, received = 0, "application/octet-stream", bytearray()
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(bytes(await stream.receive_some(65536)))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    for name, value in event.headers:
                        if name == b"content-type":
                            content_type = value.decode("latin-1")
                        elif name == b"content-length" and int(value) > limit:
                            raise too_large
                elif isinstance(event, h11.Data):
                    received += event.data
                    if len(received) > limit:
                        raise too_large
                elif isinstance(event, h11.EndOfMessage):
                    return status, bytes(received), content_type
                elif isinstance(event, h11.ConnectionClosed):
                    raise _Failed("protocol", 502, f"{target.url}: closed before the end of the answer")
                # an h11.InformationalResponse (1xx) is skipped: the final answer follows
        except (h11.ProtocolError, ValueError) as exc:
            raise _Failed("protocol", 502, f"{target.url}: not an HTTP answer: {exc}") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise _Failed("connect", 502, f"{target.url}: the connection failed: {exc}") from None
