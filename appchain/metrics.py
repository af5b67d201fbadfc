"""Where a node's CPU goes: signature work counted call by call.

:class:`SignatureClock` wraps the signature facades (:mod:`state.crypto.ed25519`,
:mod:`state.crypto.bls`); every caller looks them up on the module at call time, so installing
it covers the whole process. It counts the calls of each function and the wall time inside
them. A node installs it when ``APPCHAIN_SIGNATURE_CLOCK=1`` (``bench/devnet.py`` sets it) and
reports both in its status.

Why counts: the wall time inside a call includes the time the process was preempted, which on a
loaded machine (12 nodes on 2 cores) inflates it several times over, and the process CPU clock
(``process_time``) is a real system call that costs more here (~0.4 ms under load) than the
signature it would time. ``bench/devnet.py`` multiplies the counts by each call's cost measured
on an idle core in the same run.
"""

from __future__ import annotations

import time
from typing import Any

from state.crypto import bls, ed25519

WRAPPED: tuple[tuple[object, str, str], ...] = (
    (ed25519, "verify", "ed25519.verify"),
    (bls, "verify", "bls.verify"),
    (bls, "fast_aggregate_verify", "bls.fast_aggregate_verify"),
    (bls, "verify_possession", "bls.verify_possession"),
    (ed25519.SigningKey, "sign", "ed25519.sign"),
    (bls, "sign", "bls.sign"),
    (bls, "aggregate_signatures", "bls.aggregate_signatures"),
)


class SignatureClock:
    """Counts the calls of the signature facades, and the wall time inside them."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.wall: dict[str, float] = {}
        self._saved: list[tuple[object, str, object]] = []

    def _wrap(self, owner: object, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        calls, wall = self.calls, self.wall
        calls[name], wall[name] = 0, 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                wall[name] += time.perf_counter() - started
                calls[name] += 1

        self._saved.append((owner, attribute, original))
        setattr(owner, attribute, timed)

    def install(self) -> SignatureClock:
        for owner, attribute, name in WRAPPED:
            self._wrap(owner, attribute, name)
        return self

    def report(self) -> dict[str, dict[str, float]]:
        return {
            name: {"calls": self.calls[name], "wall_seconds": round(self.wall[name], 3)}
            for name in self.calls
        }

    def restore(self) -> None:
        for owner, attribute, original in reversed(self._saved):
            setattr(owner, attribute, original)
        self._saved.clear()
