"""The storage port's TLS connections: OpenSSL on the socket itself, waited on by trio.

:class:`trio.SSLStream` runs OpenSSL over memory buffers: every read and write goes through
Python code that shuttles the bytes between OpenSSL's buffers and the socket, and through the
scheduler at least once more. Here OpenSSL reads and writes the (non-blocking) socket directly
(:class:`ssl.SSLSocket`), and trio is asked only to wait when OpenSSL says it must
(``SSLWantReadError``, ``SSLWantWriteError``). The same context, the same OpenSSL, the same
records on the wire; what it saves is the Python around them (see ``bench.swarm``).

As the storage port's ``trio.SSLStream(https_compatible=True)`` did:

- a connection is closed without a ``close_notify`` (the client's missing one is not an error
  either: its end of the stream is the end), and what the client sent that was not read is
  dropped first, so the close is a FIN and not a reset that would lose the last answer;
- any TLS or socket error (a bad record, a reset) is :class:`trio.BrokenResourceError`;
- a read that finds its bytes already there, or a write the kernel takes at once, is still a
  checkpoint for cancellation, and a read lets other tasks run (a pipelining client cannot hold
  the loop); a write that did not wait does not go through the scheduler again, since the
  request's read before it did.

The handshake is :func:`accept_tls`: it takes over a freshly accepted
:class:`trio.SocketStream`'s socket.
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")


class TLSStream(trio.abc.Stream):
    """A server-side TLS connection over a non-blocking :class:`ssl.SSLSocket`."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.socket = sock
        self._closed = False

    async def _io(self, operation: Callable[[], T]) -> tuple[T, bool]:
        """``operation``'s result, waiting for the socket as OpenSSL asks; and whether it waited."""
        waited = False
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the TLS connection is closed")
            try:
                return operation(), waited
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(self.socket)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(self.socket)
            except OSError as exc:  # ssl.SSLError is one
                raise trio.BrokenResourceError(str(exc)) from exc
            waited = True

    async def do_handshake(self) -> None:
        await self._io(self.socket.do_handshake)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        size = max_bytes or 65536
        data, waited = await self._io(functools.partial(self.socket.recv, size))
        if not waited:
            await trio.lowlevel.checkpoint()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(data)
        while view:
            # OpenSSL writes all of it, or says to wait and be called again with the same bytes
            sent, _ = await self._io(functools.partial(self.socket.send, view))
            view = view[sent:]

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            _discard_unread(self.socket)
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()
        await trio.lowlevel.checkpoint()


def _discard_unread(sock: socket.socket, reads: int = 16) -> None:
    """Drop the bytes the client sent that nobody read (at most ``reads`` reads, none waited for).

    Closing a socket with unread bytes makes the kernel answer with a reset, and a reset makes
    the client's kernel drop what it had received and not yet handed over: the last answer, or
    the alert of a failed handshake. OpenSSL reads a record at a time, so unlike trio's
    SSLStream (which read what came into its buffer) bytes can be left unread here."""
    for _ in range(reads):
        try:
            if not os.read(sock.fileno(), 65536):
                return
        except OSError:  # BlockingIOError: nothing more for now
            return


async def accept_tls(stream: trio.SocketStream, context: ssl.SSLContext) -> TLSStream:
    """The server side of a TLS handshake on a just-accepted connection, which it takes over
    (``stream`` is left without a socket); :class:`trio.BrokenResourceError` when the handshake
    fails, the connection then closed. The caller bounds its time."""
    raw = socket.socket(fileno=stream.socket.detach())
    raw.setblocking(False)
    try:
        tls = TLSStream(context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False))
    except OSError as exc:
        raw.close()
        raise trio.BrokenResourceError(str(exc)) from exc
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tls)
        raise
    return tls
