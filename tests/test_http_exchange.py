"""The HTTP exchange (httptools) answers as the h11 exchange it replaced: the same bytes for the same
requests, pipelined, split anywhere, kept alive or closed; and its refusals (a head over 16 KiB,
an HTTP/1.1 request without Host, bytes that are not HTTP) with their status."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import h11
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appchain.rpc.exchange import MAX_HEAD, BadRequest, Cut, Exchange, Request


@dataclass(frozen=True)
class Limits:
    idle_timeout: float = 60.0
    read_header_timeout: float = 10.0
    read_body_timeout: float = 30.0
    write_timeout: float = 30.0


LIMIT = 1000


class ReferenceExchange:
    """The exchange as it was, over h11 (the reference this one is checked against)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.method = b""

    async def head(self) -> h11.Request | None:
        while True:
            event = self.http.next_event()
            if isinstance(event, h11.Request):
                self.method = event.method
                return event
            if event is not h11.NEED_DATA:
                return None
            self.http.receive_data(await self.stream.receive_some(65536))

    async def body(self, limit: int) -> bytes | None:
        body = b""
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                self.http.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return body
            else:
                raise Cut

    async def respond(self, status: int, body: bytes, kind: str, *headers: tuple[str, str]) -> None:
        fields = [("content-type", kind), ("content-length", str(len(body))), *headers]
        events: list[h11.Event] = [h11.Response(status_code=status, headers=fields)]
        if self.method != b"HEAD":
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        await self.stream.send_all(b"".join(self.http.send(event) or b"" for event in events))

    async def reject(self, status: int, reason: str) -> None:
        if self.http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await self.respond(status, f"{reason}\n".encode(), "text/plain", ("connection", "close"))

    def next_cycle(self) -> bool:
        if self.http.our_state is h11.MUST_CLOSE:
            return False
        self.http.start_next_cycle()
        return True


async def serve(exchange: ReferenceExchange | Exchange) -> None:
    """Echo each request's line, headers and body size; refuse a malformed one with its status."""
    try:
        while (request := await exchange.head()) is not None:
            body = await exchange.body(LIMIT)
            if body is None:
                await exchange.respond(413, b"too big", "text/plain")
                return
            headers = b";".join(b"%s=%s" % (name.lower(), value) for name, value in request.headers)
            line = b"%s %s %d %s" % (request.method, request.target, len(body), headers)
            await exchange.respond(200, line, "text/plain", ("x-n", "1"))
            if not exchange.next_cycle():
                return
    except (h11.RemoteProtocolError, BadRequest) as exc:
        status = exc.error_status_hint if isinstance(exc, h11.RemoteProtocolError) else exc.status
        await exchange.reject(status, "refused")
    except Cut:
        return


async def answers(
    make: Callable[[trio.abc.Stream], ReferenceExchange | Exchange], pieces: list[bytes]
) -> bytes:
    client, server = trio.testing.memory_stream_pair()
    out = b""
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            await serve(make(server))
            await server.aclose()

        nursery.start_soon(run)
        try:
            for piece in pieces:
                await client.send_all(piece)
                await trio.testing.wait_all_tasks_blocked()
            await client.send_eof()
        except trio.BrokenResourceError:  # the server closed: what it wrote is still there
            pass
        while data := await client.receive_some(65536):
            out += data
    return out


def ours(stream: trio.abc.Stream) -> Exchange:
    return Exchange(stream, Limits())


async def both(pieces: list[bytes]) -> tuple[bytes, bytes]:
    return await answers(ReferenceExchange, pieces), await answers(ours, pieces)


def post(body: bytes, *extra: bytes, version: bytes = b"1.1", target: bytes = b"/storage_rpc/v1") -> bytes:
    head = b"POST %s HTTP/%s\r\nHost: n\r\nContent-Length: %d\r\n" % (target, version, len(body))
    return head + b"".join(extra) + b"\r\n" + body


CASES = {
    "one": [post(b'{"method":"info"}')],
    "pipelined": [post(b"a") + post(b"bb") + b"GET /get_stats/v1 HTTP/1.1\r\nhost: n\r\n\r\n"],
    "split everywhere": [bytes([b]) for b in post(b"hello") + post(b"again")],
    "http/1.0 closes": [post(b"x", version=b"1.0") + post(b"never read")],
    "connection close": [post(b"x", b"Connection: keep-alive, Close\r\n") + post(b"never read")],
    "head": [b"HEAD / HTTP/1.1\r\nhost: n\r\n\r\n" + b"GET /x HTTP/1.1\r\nhost: n\r\n\r\n"],
    "chunked": [
        b"POST / HTTP/1.1\r\nhost: n\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    ],
    "body over the limit": [post(b"y" * (LIMIT + 1))],
    "closed between requests": [post(b"z")],
    "mixed case names": [b"POST / HTTP/1.1\r\nHOST: n\r\nX-Node-Key: AbC\r\ncontent-LENGTH: 1\r\n\r\n!"],
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_answers_are_h11s_byte_for_byte(name: str) -> None:
    reference, answered = await both(CASES[name])
    assert answered == reference


@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from([b"GET", b"POST", b"HEAD"]),
            st.sampled_from([b"1.1", b"1.0"]),
            st.sampled_from([b"", b"connection: close\r\n", b"Connection: keep-alive\r\n", b"X-A: b\r\n"]),
            st.binary(max_size=40),
        ),
        min_size=1,
        max_size=4,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=5),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_valid_requests_cut_anywhere_get_h11s_answers(
    requests: list[tuple[bytes, bytes, bytes, bytes]], cuts: list[int]
) -> None:
    data = b"".join(
        b"%s /p HTTP/%s\r\nhost: n\r\n%scontent-length: %d\r\n\r\n%s"
        % (method, version, extra, len(body), body)
        for method, version, extra, body in requests
    )
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points) if b > a]
    reference, answered = trio.run(both, pieces)
    assert answered == reference


# -- refusals -------------------------------------------------------------------------------------


async def refused(pieces: list[bytes]) -> tuple[bytes, bytes]:
    reference, answered = await both(pieces)
    return reference.split(b"\r\n", 1)[0], answered.split(b"\r\n", 1)[0]


async def test_a_head_over_16_kib_is_431_before_it_ends_as_h11_said() -> None:
    start = b"POST / HTTP/1.1\r\nhost: n\r\nx-pad: "
    assert await refused([start + b"y" * MAX_HEAD]) == (b"HTTP/1.1 431 ", b"HTTP/1.1 431 ")
    pieces = [start] + [b"y" * 4096] * 5  # dribbled: counted over the reads
    assert await refused(pieces) == (b"HTTP/1.1 431 ", b"HTTP/1.1 431 ")
    whole = start + b"y" * (MAX_HEAD - 100) + b"\r\n\r\n"  # under the limit: served
    reference, answered = await both([whole])
    assert answered == reference and answered.startswith(b"HTTP/1.1 200 ")


async def test_pipelined_bodies_read_together_with_the_next_head_do_not_count_as_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read that ends one head, carries its body and begins the next head counts none of it as
    head bytes: three pipelined 20 KB posts, each read ending inside the next request's head,
    are all served (the body bytes once made the third a 431)."""
    monkeypatch.setitem(globals(), "LIMIT", 100_000)  # serve() reads it at each request
    requests = [post(b"b" * 20_000) for _ in range(3)]
    stream = b"".join(requests)
    cuts = [len(requests[0]) + 10, 2 * len(requests[0]) + 10]
    pieces = [stream[: cuts[0]], stream[cuts[0] : cuts[1]], stream[cuts[1] :]]
    reference, answered = await both(pieces)
    assert answered == reference and answered.count(b"HTTP/1.1 200 ") == 3


async def test_http_11_without_host_and_bytes_that_are_not_http_are_400() -> None:
    assert await refused([b"GET / HTTP/1.1\r\n\r\n"]) == (b"HTTP/1.1 400 ", b"HTTP/1.1 400 ")
    assert await refused([b"\x16\x03\x01 not http at all\r\n\r\n"]) == (b"HTTP/1.1 400 ", b"HTTP/1.1 400 ")
    first = post(b"ok")  # a good request before a bad one is answered first
    reference, answered = await both([first + b"GET / HTTP/1.1\r\n\r\n"])
    assert answered.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 400 " in answered
    assert reference.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 400 " in reference


async def test_what_llhttp_refuses_and_h11_passed_on_is_400() -> None:
    """The documented differences: an unknown method, a transfer-encoding other than chunked."""
    for head in (
        b"BREW /pot HTTP/1.1\r\nhost: n\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: n\r\ntransfer-encoding: gzip\r\n\r\n",
    ):
        answered = await answers(ours, [head])
        assert answered.startswith(b"HTTP/1.1 400 ") and b"connection: close" in answered


async def test_an_upgrade_is_answered_and_the_connection_closed() -> None:
    upgrade = b"GET / HTTP/1.1\r\nhost: n\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
    answered = await answers(ours, [upgrade + post(b"not read")])
    assert answered.startswith(b"HTTP/1.1 200 ") and answered.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize("one_scope", [False, True])
async def test_the_deadlines_hold(autojump_clock: trio.testing.MockClock, one_scope: bool) -> None:
    """The first byte within idle_timeout, the head within read_header_timeout, the body within
    read_body_timeout, the answer taken within write_timeout (the clock jumps when everything
    waits); with each wait in a scope of its own, or all in the connection's (``deadlines``)."""

    async def slow(pieces: list[bytes], *, body: bool = False, answer: bool = False) -> None:
        # lockstep: what the server writes waits until the client reads it, and it never does
        client, server = trio.testing.lockstep_stream_pair()
        exchange = Exchange(server, Limits())
        async with trio.open_nursery() as nursery:
            for piece in pieces:
                nursery.start_soon(client.send_all, piece)
            scope = exchange.deadlines() if one_scope else contextlib.nullcontext()
            with pytest.raises(trio.TooSlowError), scope:
                request = await exchange.head()
                assert isinstance(request, Request) and (body or answer)
                assert await exchange.body(LIMIT) == b"12345" and answer
                await exchange.respond(200, b"x", "text/plain")
            nursery.cancel_scope.cancel()

    await slow([])
    await slow([b"POST / HTTP/1.1\r\n"])
    await slow([post(b"12345")[:-2]], body=True)
    await slow([post(b"12345")], answer=True)
