"""Boundaries: the one place where each listener and each long-lived task catches what its
handler did not expect, so that a bug in one request, one connection or one frame costs that
request, never the node.

In trio an exception that leaves a task cancels its whole nursery, and the node is one nursery:
without a boundary, one ``HEAD`` request (h11 refusing a body on a HEAD answer), one height of
2^64 (``int.to_bytes(8)``) or one lone surrogate (an error text that cannot be encoded) ended
the process, and with it a quorum member. So, as nginx, oxend and every production server do:

- each **connection** of the public port, the admin port and the p2p port is served inside a
  boundary; what escapes its handler is caught there, answered with HTTP 500 or a JSON-RPC
  internal error (:data:`INTERNAL_ERROR`) where an answer is still possible, and that connection
  is closed;
- each **JSON-RPC call** (public and admin) is one: a batch's other calls are still answered;
- each **p2p frame** handed to the consensus core is one: the frame is dropped; the core
  verifies before it mutates, so the state and the chain are as they were;
- each **long-lived task** (the core loop, the peer loop, the swarm layer's loops) runs under
  :meth:`Faults.supervise`, which starts it again after a pause if it fails.

Every catch is logged once, at ``error``, with its traceback, and counted by place in
:attr:`Faults.counts` (``appchain_unexpected_errors{place=…}`` in ``/metrics``).

What is *not* caught: :data:`FATAL`, the errors that mean the node's own data cannot be trusted
or written (a corrupt store, a LevelDB error, a full disk behind it, no memory). Those still
stop the node with one ``fatal:`` line: going on would serve or sign from a state that may be
wrong (DESIGN.md: "always a loud stop for internal corruption"). Cancellation is a
``BaseException`` and passes through untouched.

Why this module is in :mod:`appchain.home`: the swarm layer (:mod:`appchain.messaging`), the
public port (:mod:`appchain.rpc`) and the node (:mod:`appchain.node`) all keep boundaries, and a
room imports only its own modules and rooms on lower floors, so the floors all three may import
are messaging's and home's below it. The boundary sits on the lowest, home's: it is no part of
the swarm layer, and it needs home anyway, since what no boundary may catch is the home's own
store failing (:class:`~appchain.home.store.StoreCorrupt`, a LevelDB error).
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import plyvel
import trio

from appchain.home.store import StoreCorrupt

Log = Callable[..., None]
"""``log(level, event, **fields)``: the node's structured logger."""

FATAL: tuple[type[BaseException], ...] = (StoreCorrupt, plyvel.Error, MemoryError)
"""Errors no boundary catches: the node's own data is in doubt, so it stops loudly."""

INTERNAL_ERROR = -32603
"""JSON-RPC 2.0's code for an error inside the server."""

RESTART_PAUSE = (0.5, 30.0)
"""A failed long-lived task starts again after this pause, doubling from the first to the second
value while it keeps failing within a minute of its start."""


def is_fatal(exc: BaseException) -> bool:
    """Whether ``exc`` (or, for an exception group, any exception inside it) is :data:`FATAL`."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(lambda inner: isinstance(inner, FATAL)) is not None
    return isinstance(exc, FATAL)


class Faults:
    """The unexpected exceptions this node caught at its boundaries: counted by place, logged."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.counts: dict[str, int] = {}
        """Exceptions caught, by place (``rpc``, ``json_rpc``, ``admin``, ``p2p``, ``frame``,
        ``task:<name>``…)."""

    def caught(self, place: str, exc: BaseException, **fields: Any) -> None:
        """Count and log one exception caught at ``place`` (the caller has recovered)."""
        self.counts[place] = self.counts.get(place, 0) + 1
        text = "".join(traceback.format_exception(exc)).rstrip()
        self.log("error", "unexpected error", place=place, error=_describe(exc), traceback=text, **fields)

    @contextmanager
    def boundary(self, place: str, **fields: Any) -> Iterator[None]:
        """Catch, count and log what the block raises, but :data:`FATAL` errors and cancellation."""
        try:
            yield
        except Exception as exc:
            if is_fatal(exc):
                raise
            self.caught(place, exc, **fields)

    async def supervise(self, name: str, task: Callable[[], Awaitable[None]]) -> None:
        """Run the long-lived ``task`` for ever: when it fails unexpectedly, count and log it,
        pause (:data:`RESTART_PAUSE`) and start it again. A task that returns is done."""
        low, high = RESTART_PAUSE
        pause = 0.0
        while True:
            started = trio.current_time()
            try:
                await task()
                return
            except Exception as exc:
                if is_fatal(exc):
                    raise
                self.caught(f"task:{name}", exc)
            steady = trio.current_time() - started > 60
            pause = low if steady or not pause else min(high, pause * 2)
            await trio.sleep(pause)


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line, safe to write whatever the message holds."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
