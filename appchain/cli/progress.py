"""Progress of long work (replay, import, export, generation) on stderr.

On a terminal it is a ``rich`` progress bar (blocks done, events per second, time left);
elsewhere (CI logs, pipes) one plain line at every 10%, which is what a log wants.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


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
        self._next_decile = 1
        self._bar: RichProgress | None = None
        if self.enabled and self.tty:
            self._bar = RichProgress(
                TextColumn(f"{label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("blocks, {task.fields[rate]} events/s"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._task = self._bar.add_task(label, total=self.total, rate="0")
            self._bar.start()

    def __call__(self, blocks: int, events: int) -> None:
        self.done += blocks
        self.events += events
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self._rate():,.0f}")
        elif self.done * 10 >= self._next_decile * self.total:
            self._next_decile = self.done * 10 // self.total + 1
            fraction = min(self.done / self.total, 1.0)
            filled = int(fraction * 30)
            bar = "#" * filled + "." * (30 - filled)
            self.stream.write(
                f"{self.label} [{bar}] {fraction:4.0%} {self.done}/{self.total} blocks, "
                f"{self._rate():,.0f} events/s\n"
            )
            self.stream.flush()

    def _rate(self) -> float:
        return self.events / max(time.perf_counter() - self.started, 1e-9)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
