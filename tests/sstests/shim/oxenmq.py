"""HTTP(S) stand-in for the `oxenmq` Python module (oxen-pyoxenmq), for running
session-storage-server's `network-tests` against an appchain devnet.

The tests' code runs unchanged; every OxenMQ request becomes one HTTP(S) request:

  connection to                       command                 HTTP(S) request
  ---------------------------------   ---------------------   -------------------------------------
  the oxend RPC address (conftest's   rpc.<method>            POST $SSTESTS_RPC_URL (JSON-RPC 2.0,
  public.loki.foundation:38161, or                            method <method>, params = the data part)
  any ipc:// address)
  a storage server (by x25519 key,    storage.<method>        POST <storage url>/storage_rpc/v1
  looked up in get_service_nodes)                             {"method": <method>, "params": <part>}
                                      sn.onion_request        POST <storage url>/onion_req/v2
                                      monitor.*               refused: no HTTP(S) equivalent
                                                              (bt-only, answered by server push)

Replies follow the OxenMQ conventions the tests rely on (session-storage-server
`omq.cpp`/`mqbase.cpp`, oxend `lmq_server.cpp`):
  storage.*   HTTP 200 -> [body];  other status -> [b"<status>", body]
  rpc.*       JSON-RPC result -> [b"200", json(result)];  JSON-RPC error -> [b"<code>", message]
  request failure (connection refused, ...) -> future.get() raises RuntimeError("Request failed: ...")
  timeout -> future.get() raises TimeoutError

Settings (environment):
  SSTESTS_RPC_URL      the devnet's JSON-RPC endpoint, e.g. http://127.0.0.1:27102/json_rpc
  SSTESTS_STORAGE_URL  how a node's storage base URL is built from its get_service_nodes entry;
                       default "https://{public_ip}:{storage_port}" (the storage port speaks TLS).
  SSTESTS_TLS_VERIFY   "1" to verify certificates (default off: Session clients accept the
                       storage server's self-signed certificate)
  SSTESTS_OXEND_KEYS   extra comma-separated x25519 hex keys to treat as "the oxend RPC"
  SSTESTS_TRACE        a file: one JSON line per request (command, node, status, body head)
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import os
import re
import socket
import ssl
import struct
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future as _CFuture
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as _CTimeout

__all__ = ["Access", "Address", "AuthLevel", "ConnectionID", "LogLevel", "OxenMQ", "ResultFuture"]

# The oxend the network-tests' conftest dials (testnet public OMQ RPC).
TESTNET_OXEND_KEY = "80adaead94db3b0402a6057869bdbe63204a28e93589fd95a035480ed6c03b45"

DEFAULT_REQUEST_TIMEOUT = 15.0  # pyoxenmq's default request timeout
DEFAULT_STORAGE_URL = "https://{public_ip}:{storage_port}"


def _setting(name, default=None):
    v = os.environ.get(name)
    return v if v not in (None, "") else default


def _seconds(t, default):
    if t is None:
        return default
    if isinstance(t, _dt.timedelta):
        return t.total_seconds()
    return float(t)


class LogLevel(enum.IntEnum):
    fatal = 0
    error = 1
    warn = 2
    info = 3
    debug = 4
    trace = 5


class AuthLevel(enum.IntEnum):
    denied = 0
    none = 1
    basic = 2
    admin = 3


class Access:
    def __init__(self, auth=AuthLevel.none, remote_sn=False, local_sn=False):
        self.auth, self.remote_sn, self.local_sn = auth, remote_sn, local_sn


class Address:
    """`Address("curve://host:port/hexkey")`, `Address("tcp://host:port")`, `Address("ipc://path")`,
    `Address(addr, pubkey)`, `Address(host, port)`, `Address(host, port, pubkey)`."""

    _re = re.compile(r"^(curve|tcp|ipc)://(.*)$")

    def __init__(self, *args):
        self.host = self.port = self.path = None
        self.pubkey = b""
        if len(args) == 1 or (len(args) == 2 and isinstance(args[1], (bytes, bytearray))):
            s = args[0]
            m = self._re.match(s)
            if not m:
                raise ValueError(f"invalid address {s!r}")
            proto, rest = m.groups()
            if proto == "ipc":
                self.proto, self.path = "ipc", rest
            else:
                hostport, _, key = rest.partition("/")
                host, _, port = hostport.rpartition(":")
                self.proto, self.host, self.port = "tcp", host.strip("[]"), int(port)
                if key:
                    self.pubkey = _decode_key(key)
            if len(args) == 2:
                self.pubkey = bytes(args[1])
        elif len(args) in (2, 3):
            self.proto, self.host, self.port = "tcp", str(args[0]), int(args[1])
            if len(args) == 3:
                self.pubkey = bytes(args[2])
        else:
            raise TypeError("Address: bad arguments")

    @property
    def curve(self):
        return bool(self.pubkey)

    @property
    def tcp(self):
        return self.proto == "tcp"

    @property
    def ipc(self):
        return self.proto == "ipc"

    @property
    def full_address_hex(self):
        if self.ipc:
            return f"ipc://{self.path}"
        pre = "curve" if self.pubkey else "tcp"
        return f"{pre}://{self.host}:{self.port}" + (f"/{self.pubkey.hex()}" if self.pubkey else "")

    full_address = full_address_hex

    def __eq__(self, o):
        return isinstance(o, Address) and self.full_address_hex == o.full_address_hex

    def __hash__(self):
        return hash(self.full_address_hex)

    def __repr__(self):
        return f"Address({self.full_address_hex!r})"


def _decode_key(k: str) -> bytes:
    if len(k) == 64:
        return bytes.fromhex(k)
    import base64

    if len(k) in (43, 44):
        return base64.b64decode(k + "=" * (-len(k) % 4))
    # base32z (52 chars)
    alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"
    bits = 0
    nbits = 0
    out = bytearray()
    for ch in k:
        bits = (bits << 5) | alphabet.index(ch)
        nbits += 5
        if nbits >= 8:
            nbits -= 8
            out.append((bits >> nbits) & 0xFF)
    return bytes(out[:32])


class ConnectionID:
    _next = 0
    _lock = threading.Lock()

    def __init__(self, target):
        with ConnectionID._lock:
            ConnectionID._next += 1
            self.id = ConnectionID._next
        self.target = target  # ("oxend", url) or ("node", entry)
        # OxenMQ delivers the messages of one connection in order; HTTP requests sent in parallel
        # would not arrive in order (test_big_retrieve checks the stored order), so the requests
        # of one connection go out one after the other, each after the previous one's answer.
        self.queue = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"omq-conn{self.id}")

    @property
    def service_node(self):
        return self.target[0] == "node"

    @property
    def pubkey(self):
        return bytes.fromhex(self.target[1]["pubkey_x25519"]) if self.service_node else b""

    def __eq__(self, o):
        return isinstance(o, ConnectionID) and o.id == self.id

    def __hash__(self):
        return self.id

    def __repr__(self):
        return f"<ConnectionID {self.id} {self.target[0]}>"


class ResultFuture:
    """pyoxenmq's ResultFuture: `.get()` returns the reply parts (list of bytes)."""

    def __init__(self, fut: _CFuture, timeout: float):
        self._f, self._timeout = fut, timeout

    def get(self):
        # Each HTTP request carries its own timeout (-> TimeoutError); waiting here is unbounded
        # because a request may queue behind earlier ones on its connection.
        return self._f.result()

    def valid(self):
        return self._f.done()

    def wait(self):
        self._f.exception()

    def wait_for(self, seconds):
        try:
            self._f.exception(timeout=_seconds(seconds, 0))
            return "ready"
        except _CTimeout:
            return "timeout"


class _Failure(Exception):
    """An OxenMQ-level failure (not a reply): the future raises RuntimeError with these parts."""

    def __init__(self, *parts):
        super().__init__(", ".join(p if isinstance(p, str) else p.decode(errors="replace") for p in parts))


class _Directory:
    """The devnet's nodes, from get_service_nodes, keyed by x25519 key."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_x = {}
        self._at = 0.0

    def refresh(self):
        r = _http.post(
            _rpc_url(),
            json={"jsonrpc": "2.0", "id": 0, "method": "get_service_nodes", "params": {}},
            timeout=10,
        )
        r.raise_for_status()
        states = r.json()["result"]["service_node_states"]
        with self._lock:
            self._by_x = {s["pubkey_x25519"]: s for s in states if s.get("pubkey_x25519")}
            self._at = time.time()

    def lookup(self, addr: Address):
        for attempt in range(2):
            if attempt or not self._by_x:
                self.refresh()
            with self._lock:
                if addr.pubkey:
                    e = self._by_x.get(addr.pubkey.hex())
                    if e:
                        return e
                else:
                    for e in self._by_x.values():
                        if e.get("public_ip") == addr.host and addr.port in (
                            e.get("storage_lmq_port"),
                            e.get("storage_port"),
                        ):
                            return e
        return None


def _rpc_url():
    u = _setting("SSTESTS_RPC_URL")
    if not u:
        raise RuntimeError("sstests shim: set SSTESTS_RPC_URL to a devnet node's JSON-RPC URL")
    return u


def storage_base_url(entry) -> str:
    return _setting("SSTESTS_STORAGE_URL", DEFAULT_STORAGE_URL).format(**entry).rstrip("/")


# Passed on every call: a Session-level `verify` is overridden by REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE.
_VERIFY = _setting("SSTESTS_TLS_VERIFY", "0") == "1"


class _Timeout(Exception):
    """An HTTP(S) request that got no answer in time (pyoxenmq: TimeoutError)."""


class _Response:
    def __init__(self, status_code: int, content: bytes):
        self.status_code, self.content = status_code, content

    def json(self):
        return json.loads(self.content)

    def raise_for_status(self):
        if self.status_code >= 400:
            raise _Failure(f"HTTP {self.status_code}: {self.content[:200]!r}")


def _opener():
    context = ssl.create_default_context()
    if not _VERIFY:  # as Session clients: the storage port's certificate is self-signed
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    # no proxies from the environment: every node is on this machine
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )


class _Http:
    """POST with the standard library (no keep-alive: a connection per request)."""

    def __init__(self):
        self.opener = _opener()

    def post(self, url, data=None, json=None, timeout=10.0, headers=None, verify=None):
        if json is not None:
            data = _json_dumps(json).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
        if isinstance(data, str):
            data = data.encode()
        request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
        try:
            with self.opener.open(request, timeout=timeout) as answer:
                return _Response(answer.status, answer.read())
        except urllib.error.HTTPError as error:
            return _Response(error.code, error.read())
        except TimeoutError as exc:
            raise _Timeout(str(exc)) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, (TimeoutError, socket.timeout)):
                raise _Timeout(str(error.reason)) from None
            raise _Failure(f"{url}: {error.reason}") from None
        except OSError as exc:
            raise _Failure(f"{url}: {exc}") from None


_json_dumps = json.dumps
_http = _Http()
_directory = _Directory()
_trace_lock = threading.Lock()


def _trace(**kw):
    path = _setting("SSTESTS_TRACE")
    if not path:
        return
    line = json.dumps(kw, default=lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b))
    with _trace_lock, open(path, "a") as f:
        f.write(line + "\n")


def _parts(args) -> list[bytes]:
    out = []

    def add(o):
        if isinstance(o, (bytes, bytearray, memoryview)):
            out.append(bytes(o))
        elif isinstance(o, str):
            out.append(o.encode())
        elif hasattr(o, "__iter__"):
            for x in o:
                if isinstance(x, (bytes, bytearray, memoryview)):
                    out.append(bytes(x))
                elif isinstance(x, str):
                    out.append(x.encode())
                else:
                    raise RuntimeError(f"invalid iterable containing {x!r}: expected bytes/str")
        else:
            raise RuntimeError(f"invalid value {o!r}: expected bytes/str/iterable")

    for a in args:
        add(a)
    return out


def _is_oxend(addr: Address) -> bool:
    if addr.ipc:
        return True
    keys = {TESTNET_OXEND_KEY} | {
        k.strip().lower() for k in _setting("SSTESTS_OXEND_KEYS", "").split(",") if k.strip()
    }
    return addr.pubkey.hex() in keys


class OxenMQ:
    def __init__(self, *args, **kwargs):
        self.max_message_size = 10 * 1024 * 1024
        self.started = False

    def start(self):
        self.started = True

    # Server-side API: the tests that need it (test_monitor: OxenMQ server push) cannot run
    # through an HTTP shim.
    def add_category(self, *a, **k):
        raise NotImplementedError(
            "sstests shim: OxenMQ server-side categories/push are not available over HTTP(S)"
        )

    def listen_curve(self, *a, **k):
        raise NotImplementedError("sstests shim: OxenMQ listening is not available over HTTP(S)")

    listen_plain = listen_curve

    def _resolve(self, addr: Address):
        if _is_oxend(addr):
            return ("oxend", _rpc_url())
        entry = _directory.lookup(addr)
        if entry is None:
            raise RuntimeError(f"Connection failed: {addr!r} is neither the oxend RPC nor a devnet node")
        return ("node", entry)

    def connect_remote(
        self, remote, on_success=None, on_failure=None, *, timeout=None, ephemeral_routing_id=None
    ):
        if not isinstance(remote, Address):
            remote = Address(remote)
        if on_success is None and on_failure is None:
            return ConnectionID(self._resolve(remote))
        try:
            c = ConnectionID(self._resolve(remote))
        except RuntimeError as e:
            if on_failure:
                on_failure(None, str(e))
            return None
        if on_success:
            on_success(c)
        return c

    def disconnect(self, conn, linger=None):
        pass

    # --- requests -------------------------------------------------------------------------

    def request_future(self, conn, command, *args, request_timeout=None, timeout=None, **kwargs):
        t = _seconds(request_timeout if request_timeout is not None else timeout, DEFAULT_REQUEST_TIMEOUT)
        parts = _parts(args)
        fut = conn.queue.submit(self._run, conn, command, parts, t)
        return ResultFuture(_wrap(fut), t)

    def request(self, conn, command, *args, on_reply=None, on_reply_failure=None, request_timeout=None, **kw):
        t = _seconds(request_timeout, DEFAULT_REQUEST_TIMEOUT)
        parts = _parts(args)

        def job():
            try:
                r = self._run(conn, command, parts, t)
            except _Failure as e:
                if on_reply_failure:
                    on_reply_failure([str(e).encode()])
                return
            except _Timeout:
                if on_reply_failure:
                    on_reply_failure([b"TIMEOUT"])
                return
            if on_reply:
                on_reply([memoryview(p) for p in r])

        conn.queue.submit(job)

    def send(self, conn, command, *args, **kw):
        if kw.pop("request", False):
            return self.request(conn, command, *args, **kw)
        conn.queue.submit(self._run, conn, command, _parts(args), DEFAULT_REQUEST_TIMEOUT)

    def _run(self, conn: ConnectionID, command: str, parts: list[bytes], t: float) -> list[bytes]:
        kind, target = conn.target
        cat, _, name = command.partition(".")
        if kind == "oxend":
            if cat == "rpc":
                return self._oxend_rpc(target, name, parts, t)
            raise _Failure(
                b"UNKNOWNCOMMAND", f"sstests shim: {command} (only rpc.* is mapped to the devnet JSON-RPC)"
            )
        base = storage_base_url(target)
        if cat == "storage":
            return self._storage(base, name, parts, t, target)
        if command == "sn.onion_request":
            return self._onion(base, parts, t, target)
        if cat == "monitor":
            raise _Failure(
                b"UNKNOWNCOMMAND",
                f"sstests shim: {command} has no HTTP(S) equivalent (bt-encoded subscription answered by OxenMQ server push)",
            )
        raise _Failure(b"UNKNOWNCOMMAND", f"sstests shim: {command} is not mapped")

    def _post(self, url, body, t, headers):
        try:
            return _http.post(url, data=body, timeout=t, headers=headers)
        except _Failure as e:
            raise _Failure(f"sstests shim: {e}") from None

    def _oxend_rpc(self, url, method, parts, t):
        if len(parts) > 1:
            return [
                b"400",
                b"Bad request: RPC commands must have at most one data part (received %d)" % len(parts),
            ]
        if parts:
            try:
                params = json.loads(parts[0])
            except ValueError as e:
                return [b"400", f"Unable to parse request: {e}".encode()]
        else:
            params = {}
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        r = self._post(url, body, t, {"Content-Type": "application/json"})
        try:
            j = r.json()
        except ValueError:
            out = [str(r.status_code).encode(), r.content]
        else:
            if "result" in j:
                out = [b"200", json.dumps(j["result"]).encode()]
            else:
                err = j.get("error", {})
                out = [str(err.get("code", 500)).encode(), str(err.get("message", "")).encode()]
        _trace(cmd=f"rpc.{method}", url=url, reply=[p[:300] for p in out])
        return out

    def _storage(self, base, method, parts, t, entry):
        if len(parts) > 1:
            out = [b"400", b"Invalid request: expected 1 data part"]  # SS mqbase.cpp
            _trace(cmd=f"storage.{method}", node=entry["pubkey_ed25519"], reply=out)
            return out
        part = parts[0] if parts else b"{}"
        if part[:1] == b"d":
            # SS would answer a bt dict with a bt reply (mqbase.cpp); its HTTPS /storage_rpc/v1 is
            # JSON only, so this cannot be carried over HTTP(S).
            raise _Failure(
                f"sstests shim: bt-encoded storage.{method} request has no HTTP(S) form "
                "(/storage_rpc/v1 takes JSON only, in session-storage-server too)"
            )
        # The caller's JSON goes into the body verbatim (no re-encoding).
        body = b'{"method":' + json.dumps(method).encode() + b',"params":' + part + b"}"
        url = base + "/storage_rpc/v1"
        r = self._post(url, body, t, {"Content-Type": "application/json"})
        out = [r.content] if r.status_code == 200 else [str(r.status_code).encode(), r.content]
        _trace(
            cmd=f"storage.{method}",
            node=entry["pubkey_ed25519"][:12],
            req=part[:400],
            status=r.status_code,
            reply=r.content[:600],
        )
        return out

    def _onion(self, base, parts, t, entry):
        from oxenc import bt_deserialize

        if len(parts) != 1:
            return [b"400", b"Invalid internal onion request: expected 1 part, got %d" % len(parts)]
        try:
            d = bt_deserialize(parts[0])
            payload = d[b"data"]
            meta = {"ephemeral_key": d[b"ephemeral_key"].hex()}
            if b"enc_type" in d:
                meta["enc_type"] = d[b"enc_type"].decode()
            if b"hop_no" in d:
                meta["hop_no"] = d[b"hop_no"]
        except Exception as e:
            return [b"400", f"Invalid internal onion request: {e}".encode()]
        body = struct.pack("<I", len(payload)) + payload + json.dumps(meta).encode()
        r = self._post(base + "/onion_req/v2", body, t, {"Content-Type": "application/octet-stream"})
        out = [str(r.status_code).encode(), r.content]
        _trace(
            cmd="sn.onion_request",
            node=entry["pubkey_ed25519"][:12],
            status=r.status_code,
            reply=r.content[:300],
        )
        return out


def _wrap(fut: _CFuture) -> _CFuture:
    """Turn shim failures into what pyoxenmq raises from ResultFuture.get()."""
    out = _CFuture()

    def done(f):
        e = f.exception()
        if e is None:
            out.set_result(f.result())
        elif isinstance(e, _Timeout):
            out.set_exception(TimeoutError("Request timed out"))
        elif isinstance(e, _Failure):
            out.set_exception(RuntimeError(f"Request failed: {e}"))
        else:
            out.set_exception(e)

    fut.add_done_callback(done)
    return out
