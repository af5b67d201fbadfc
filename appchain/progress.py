"""A dependency-free progress line on stderr for long work (replay, import, generation).

On a terminal it redraws one line; elsewhere (CI logs, pipes) it prints a line at every 10%.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, *, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = self.stream.isatty()
        self.done = 0
        self.events = 0
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._next_decile = 1

    def __call__(self, blocks: int, events: int) -> None:
        self.done += blocks
        self.events += events
        if not self.enabled:
            return
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self._draw("\r", "")
        elif self.done * 10 >= self._next_decile * self.total:
            self._next_decile = self.done * 10 // self.total + 1
            self._draw("", "\n")

    def _draw(self, before: str, after: str) -> None:
        fraction = min(self.done / self.total, 1.0)
        width = 30
        filled = int(fraction * width)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(
            f"{before}{self.label} [{bar}] {fraction:4.0%} {self.done}/{self.total} blocks, "
            f"{self.events / elapsed:,.0f} events/s{after}"
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
