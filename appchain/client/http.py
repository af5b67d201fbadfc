"""One HTTP request from a client command to a server it does not control, and every way it fails.

``tx``, ``query`` and ``msg`` talk to whatever URL the user gave. That may be a node's RPC port,
or its admin port (JSON lines, not HTTP), a web server, a TCP service that answers garbage, or a
hostile server: an endless header line, a body of JSON that is a list where an object belongs,
a 421 that names no swarm member. The light client (:class:`appchain.client.lightclient.RpcSource`),
the wallet (through it) and the message client all post through :func:`post`, and read what came
back with :func:`decode_answer`, so each of those answers is one :class:`ServerError`: a line
naming the URL and what was wrong, which the CLI prints as its one ``error:`` line.

The standard library's ``http.client`` does the HTTP (no proxy from the environment, no
redirects: the client asks the URL the user named, nothing else). ``https://`` URLs are checked
against the system's certificate authorities, except with ``verify=False``: a service node's
storage port, whose certificate is self-signed (:mod:`appchain.home.tls` says why that is safe
there). Its own limits apply: a status
or header line longer than 64 KiB, or more than 100 headers, are refused. The answer's body is
read up to ``max_answer`` bytes, and each read, connect and write waits at most ``timeout``
seconds.
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from appchain.home.tls import client_context
from state.encoding import DecodeError, decode_json

DEFAULT_MAX_ANSWER = 64 * 1024 * 1024


class ServerError(Exception):
    """A server that cannot be reached, or whose answer is not what was asked for: one line
    naming its URL and what was wrong (not a lie: nothing it said was believed)."""


@dataclass(frozen=True)
class Url:
    """A checked ``http://`` or ``https://`` URL: where to connect and what path to ask for."""

    text: str
    https: bool
    host: str
    port: int
    path: str


def parse_url(text: str) -> Url:
    """``text`` as a URL a client can post to; ValueError saying what is wrong with it."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// URL with a host (e.g. http://127.0.0.1:26658)")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r}: a URL with a user name or password is not supported")
    if port == 0:
        raise ValueError(f"{text!r}: port 0 is not a port a server listens on")
    https = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Url(text, https, parts.hostname, port or (443 if https else 80), path)


@dataclass(frozen=True)
class Answer:
    """What a server answered: its HTTP status and body."""

    url: str
    status: int
    body: bytes


def post(
    url: str,
    body: bytes,
    *,
    timeout: float,
    max_answer: int = DEFAULT_MAX_ANSWER,
    content_type: str = "application/json",
    verify: bool = True,
) -> Answer:
    """POST ``body`` to ``url``; the answer whatever its status, or :class:`ServerError`.
    ``verify=False``: an ``https://`` server's certificate is not checked (a storage port's)."""
    try:
        where = parse_url(url)
    except ValueError as exc:
        raise ServerError(str(exc)) from None
    connection: http.client.HTTPConnection
    if where.https:
        context = None if verify else client_context()
        connection = http.client.HTTPSConnection(where.host, where.port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(where.host, where.port, timeout=timeout)
    try:
        connection.request("POST", where.path, body=body, headers={"content-type": content_type})
        response = connection.getresponse()
        data = response.read(max_answer + 1)
        status = response.status
        if len(data) <= max_answer and response.length:  # bytes it announced and never sent
            raise http.client.IncompleteRead(data, response.length)
    except TimeoutError:
        raise ServerError(f"{url}: no answer within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise ServerError(f"{url}: cannot reach the node (connection refused)") from None
    except http.client.RemoteDisconnected:
        raise ServerError(f"{url}: closed the connection without answering") from None
    except http.client.LineTooLong:
        raise ServerError(f"{url}: not an HTTP answer (a line longer than 64 KiB)") from None
    except http.client.IncompleteRead:
        raise ServerError(f"{url}: the answer was cut short") from None
    except http.client.BadStatusLine as exc:
        raise ServerError(f"{url}: not an HTTP answer ({_shown(str(exc))})") from None
    except http.client.HTTPException as exc:
        raise ServerError(f"{url}: not a usable HTTP answer ({_shown(str(exc))})") from None
    except ssl.SSLError as exc:  # before OSError, of which it is one
        raise ServerError(f"{url}: no TLS connection ({_shown(exc.reason or str(exc))})") from None
    except OSError as exc:
        raise ServerError(f"{url}: cannot reach the node ({exc.strerror or exc})") from None
    except (ValueError, UnicodeError) as exc:
        raise ServerError(f"{url}: cannot ask it ({_shown(str(exc))})") from None
    finally:
        connection.close()
    if len(data) > max_answer:
        raise ServerError(f"{url}: the answer is larger than {max_answer} bytes")
    return Answer(url, status, data)


def decode_answer(answer: Answer) -> Any:
    """The answer's body as JSON (depth-limited, :func:`state.encoding.decode_json`), or
    :class:`ServerError` saying it is not JSON."""
    try:
        return decode_json(answer.body)
    except DecodeError as exc:
        raise ServerError(
            f"{answer.url}: the answer (HTTP {answer.status}) is not JSON ({_shown(str(exc))})"
        ) from None


def json_kind(value: object) -> str:
    """What JSON type ``value`` is, for an error line ("a server answered a JSON list")."""
    kinds = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def describe(value: object, limit: int = 120) -> str:
    """A value from a server, shown on one line of at most ``limit`` characters."""
    return _shown(repr(value), limit)


def _shown(text: str, limit: int = 120) -> str:
    """One line, at most ``limit`` characters: server text goes into an error line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
