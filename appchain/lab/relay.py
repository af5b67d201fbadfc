"""A TCP relay that adds delay and models loss between nodes in namespaces (no ``netem`` here).

``python -m appchain.lab.relay --ports P,… --delay SECONDS --loss P --seed N`` runs in a run's bridge
namespace (:mod:`appchain.lab.netns`), listening on every given port on all addresses (with
``IP_TRANSPARENT``, so as root). Routes in the nodes' namespaces send a chosen node's traffic to
the bridge namespace, which takes every address of the subnet as its own, so a connection
accepted here is for the node the client dialled: its address is the accepted socket's own
(``getsockname``). The relay dials that node and pumps bytes both ways; it changes no byte. A
connection from an address to itself (the relay's own, as a readiness probe makes) is closed at
once: relaying it would dial the relay again.

**Delay**: every chunk read in one direction is written out ``delay`` seconds later (one way; a
round trip gains twice that), in order. The TCP handshakes themselves are not delayed.

**Loss**, as TCP lets an application see it. A relay that dropped bytes from a stream would
model nothing real: TCP retransmits, so a lost packet costs time, never bytes. So each chunk read
stands for ``ceil(len / 1448)`` segments, each lost with probability ``loss``; a chunk with a
lost segment arrives one retransmission timeout late, ``RTO = 0.2 s + 2 × delay`` (Linux's
minimum RTO plus the round trip), doubled for each retransmission lost again (probability
``loss`` each), and everything behind it in that direction waits (head-of-line blocking). When
:data:`MAX_RETRANSMISSIONS` retransmissions of one chunk are lost in a row, the connection is
reset, both sides at once (RST), standing in for TCP giving up (``tcp_retries2``, shortened).

Losses are drawn from one ``random.Random(seed)``: the same seed gives the same draws in the
same order (timing decides which chunk gets which draw). SIGTERM or SIGINT stop the relay; it
prints what it carried: connections, chunks, chunks delayed by a loss, resets.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import signal
import socket
import struct
import sys
from dataclasses import dataclass

import trio

SEGMENT = 1448
"""Payload bytes of one TCP segment at a 1500-byte MTU (with timestamps)."""
MIN_RTO = 0.2
MAX_RETRANSMISSIONS = 6
CHUNK = 65536
QUEUE_CHUNKS = 64
"""Chunks in flight per direction; a full queue stops reading (TCP's window does the rest)."""
DIAL_TIMEOUT = 5.0
MAX_DELAY = 10.0
MAX_LOSS = 0.5


class ConnectionReset(Exception):
    """Too many retransmissions of one chunk were lost: the connection is reset."""


@dataclass
class LossModel:
    delay: float
    loss: float
    rng: random.Random

    @property
    def rto(self) -> float:
        return MIN_RTO + 2 * self.delay

    def extra_delay(self, size: int) -> float:
        """The time a chunk of ``size`` bytes loses to retransmissions; raises
        :class:`ConnectionReset` when TCP would give up on it."""
        if self.loss <= 0:
            return 0.0
        segments = max(1, math.ceil(size / SEGMENT))
        if self.rng.random() >= 1 - (1 - self.loss) ** segments:
            return 0.0
        waited, timeout = 0.0, self.rto
        for _ in range(MAX_RETRANSMISSIONS):
            waited += timeout
            if self.rng.random() >= self.loss:  # this retransmission got through
                return waited
            timeout *= 2
        raise ConnectionReset


@dataclass
class Totals:
    connections: int = 0
    failed_dials: int = 0
    chunks: int = 0
    delayed_by_loss: int = 0
    resets: int = 0

    def line(self) -> str:
        return (
            f"relay: {self.connections} connections ({self.failed_dials} dials failed), "
            f"{self.chunks} chunks, {self.delayed_by_loss} delayed by a loss, {self.resets} resets"
        )


def _reset(stream: trio.SocketStream) -> None:
    """Close with RST: SO_LINGER on, zero seconds."""
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, model: LossModel, totals: Totals) -> None:
    """One direction: read, hold each chunk until it is due, write in order; EOF passed on."""
    send, receive = trio.open_memory_channel[tuple[float, bytes]](QUEUE_CHUNKS)

    async def read() -> None:
        last_due = 0.0
        async with send:
            while data := await source.receive_some(CHUNK):
                totals.chunks += 1
                extra = model.extra_delay(len(data))
                totals.delayed_by_loss += extra > 0
                last_due = max(last_due, trio.current_time() + model.delay + extra)
                await send.send((last_due, data))

    async def write() -> None:
        async with receive:
            async for due, data in receive:
                await trio.sleep_until(due)
                await sink.send_all(data)
        await sink.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        nursery.start_soon(write)


async def _serve(client: trio.SocketStream, model: LossModel, totals: Totals) -> None:
    host, port = client.socket.getsockname()[:2]
    if client.socket.getpeername()[0] == host:  # to the relay's own address: it would dial itself
        await trio.aclose_forcefully(client)
        return
    totals.connections += 1
    upstream: trio.SocketStream | None = None
    try:
        with trio.fail_after(DIAL_TIMEOUT):
            upstream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError):
        totals.failed_dials += 1
        _reset(client)
        await trio.aclose_forcefully(client)
        return
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, client, upstream, model, totals)
            nursery.start_soon(_pump, upstream, client, model, totals)
    except* ConnectionReset:
        totals.resets += 1
        print(
            f"relay: reset a connection to {host}:{port} (a chunk lost {MAX_RETRANSMISSIONS} times)",
            flush=True,
        )
        _reset(client)
        _reset(upstream)
    except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass  # one side went away: close the other
    finally:
        await trio.aclose_forcefully(client)
        await trio.aclose_forcefully(upstream)


async def _transparent_listener(port: int) -> trio.SocketListener:
    """A listener on every address for ``port`` with IP_TRANSPARENT: its connections answer from
    the address the client dialled, which is no interface's (the kernel's output route check
    refuses such a source to any other socket)."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    try:
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        sock.setsockopt(trio.socket.SOL_IP, socket.IP_TRANSPARENT, 1)
        await sock.bind(("0.0.0.0", port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return trio.SocketListener(sock)


async def run_relay(ports: list[int], model: LossModel, totals: Totals) -> None:
    listeners = [await _transparent_listener(port) for port in ports]
    settings = f"delay {model.delay} s, loss {model.loss}, rto {model.rto:.3f} s"
    print(f"relay: listening on {len(ports)} ports, {settings}", flush=True)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def handle(stream: trio.SocketStream) -> None:
                await _serve(stream, model, totals)

            nursery.start_soon(trio.serve_listeners, handle, listeners)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m appchain.lab.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--ports", required=True, help="comma-separated ports to relay")
    parser.add_argument("--delay", type=float, default=0.0, help="one-way delay in seconds")
    parser.add_argument("--loss", type=float, default=0.0, help="probability a segment is lost")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        args.ports = [int(p) for p in args.ports.split(",")]
    except ValueError:
        parser.error(f"--ports {args.ports!r} is not a comma-separated list of ports")
    if not args.ports or not all(0 < p < 65536 for p in args.ports):
        parser.error("--ports must list ports from 1 to 65535")
    if not 0 <= args.delay <= MAX_DELAY:
        parser.error(f"--delay must be from 0 to {MAX_DELAY} seconds")
    if not 0 <= args.loss <= MAX_LOSS:
        parser.error(f"--loss must be from 0 to {MAX_LOSS}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    model = LossModel(args.delay, args.loss, random.Random(args.seed))
    totals = Totals()
    trio.run(run_relay, args.ports, model, totals)
    print(totals.line(), flush=True)


if __name__ == "__main__":
    main()
