"""A load generator that costs little CPU: kept-alive connections driven by one thread.

``bench.rpc.measure`` (``http.client``, one thread per connection) spends ~100-150 µs of Python
a request on its side: building the request, parsing the answer's headers with the email
parser, and a thread switch each time. On a 2-core machine that is a third of what the node
spends on a retrieve, taken from the same cores. Here every request's bytes are built before the
clock starts, ``connections`` non-blocking sockets (TLS or not) each keep one request in flight,
and one thread waits on all of them (``selectors``), reads each answer's status and
``content-length`` and nothing else, and sends that connection's next request.

An answer that is not 200 is counted, as ``measure`` counts it. A connection the server closes
ends the run with an error: every benchmark using this expects kept-alive connections.
"""

from __future__ import annotations

import itertools
import selectors
import socket
import ssl
import time
from collections.abc import Sequence

from appchain.home.tls import client_context


def request_bytes(path: str, body: bytes) -> bytes:
    """A whole POST of ``body`` to ``path``, as ``http.client`` writes it."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\n"
        f"content-type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Connection:
    def __init__(
        self, port: int, context: ssl.SSLContext | None, requests: Sequence[bytes], first: int
    ) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = raw if context is None else context.wrap_socket(raw)
        self.sock.setblocking(False)
        self.requests = itertools.cycle([*requests[first:], *requests[:first]])
        self.buffer = b""
        self.expected = -1  # bytes of the answer in flight: head and body, once the head is in
        self.status = 0

    def send_next(self) -> None:
        data = next(self.requests)
        self.sock.setblocking(True)  # a request is small: the kernel takes it at once
        self.sock.sendall(data)
        self.sock.setblocking(False)

    def read(self) -> int | None:
        """The status of the answer when it is complete, else None (more to read)."""
        try:
            data = self.sock.recv(1 << 20)
        except (ssl.SSLWantReadError, BlockingIOError):
            return None
        if not data:
            raise ConnectionError("the server closed a kept-alive connection")
        self.buffer += data
        if self.expected < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return None
            head = self.buffer[:end].lower()
            self.status = int(head[9:12])
            start = head.index(b"content-length:") + len(b"content-length:")
            stop = head.find(b"\r\n", start)
            self.expected = end + 4 + int(head[start : stop if stop >= 0 else None])
        if len(self.buffer) < self.expected:
            return None
        if len(self.buffer) > self.expected:
            raise ConnectionError("the server answered more than was asked")
        self.buffer, self.expected = b"", -1
        return self.status


def run(
    port: int, bodies: Sequence[bytes], seconds: float, connections: int, *, path: str, tls: bool
) -> tuple[float, int]:
    """Requests per second over ``connections`` kept-alive connections to 127.0.0.1:``port`` for
    ``seconds``, cycling through ``bodies``; and how many answers were not 200."""
    requests = [request_bytes(path, body) for body in bodies]
    context = client_context() if tls else None
    selector = selectors.DefaultSelector()
    opened = [_Connection(port, context, requests, i % len(requests)) for i in range(connections)]
    done = failures = 0
    try:
        for connection in opened:
            selector.register(connection.sock, selectors.EVENT_READ, connection)
        started = time.perf_counter()
        deadline = started + seconds
        for connection in opened:
            connection.send_next()
        while (now := time.perf_counter()) < deadline:
            for key, _ in selector.select(timeout=deadline - now):
                connection = key.data
                while (status := connection.read()) is not None:
                    done += 1
                    failures += status != 200
                    connection.send_next()
                    if not isinstance(connection.sock, ssl.SSLSocket) or not connection.sock.pending():
                        break
        elapsed = time.perf_counter() - started
    finally:
        selector.close()
        for connection in opened:
            connection.sock.close()
    return done / elapsed, failures
