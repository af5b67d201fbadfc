"""Where a node's CPU goes: process time, and the share spent verifying and making signatures.

:class:`SignatureClock` wraps the signature facades (:mod:`state.crypto.ed25519`,
:mod:`state.crypto.bls`) with timers; every caller looks them up on the module at call time, so
installing it covers the whole process. A node installs it when ``APPCHAIN_SIGNATURE_CLOCK=1``
(``bench/devnet.py`` sets it) and reports the totals in its status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from state.crypto import bls, ed25519

VERIFY: tuple[tuple[object, str], ...] = (
    (ed25519, "verify"),
    (bls, "verify"),
    (bls, "fast_aggregate_verify"),
    (bls, "verify_possession"),
)
SIGN: tuple[tuple[object, str], ...] = (
    (ed25519.SigningKey, "sign"),
    (bls, "sign"),
    (bls, "aggregate_signatures"),
)


class SignatureClock:
    """Accumulates the process time spent inside the signature facades while installed."""

    def __init__(self) -> None:
        self.verify_seconds = 0.0
        self.sign_seconds = 0.0
        self.calls = 0
        self._saved: list[tuple[object, str, object]] = []

    def _wrap(self, owner: object, name: str, account: Callable[[float], None]) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                account(time.process_time() - started)
                self.calls += 1

        self._saved.append((owner, name, original))
        setattr(owner, name, timed)

    def install(self) -> SignatureClock:
        for owner, name in VERIFY:
            self._wrap(owner, name, self._add_verify)
        for owner, name in SIGN:
            self._wrap(owner, name, self._add_sign)
        return self

    def _add_verify(self, seconds: float) -> None:
        self.verify_seconds += seconds

    def _add_sign(self, seconds: float) -> None:
        self.sign_seconds += seconds

    def restore(self) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()
