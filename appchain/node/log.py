"""The node's log: structured lines on stderr, one record a line.

``2026-11-29T19:30:00.123Z info block applied height=5 round=0 peer=ab12…``: time (UTC,
milliseconds), level, event, then ``key=value`` fields (the logger's context first: the node's
key). A traceback follows its record with each line indented, so every line that starts in the
first column is a record; nothing written can break a line or fail to encode.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40}


class Logger:
    """Structured log lines: time, level, event, then ``key=value`` fields."""

    def __init__(self, level: str = "info", stream: TextIO | None = None) -> None:
        self.threshold = LEVELS[level]
        self.stream = stream or sys.stderr
        self.context: dict[str, Any] = {}

    def __call__(self, level: str, event: str, *, traceback: str | None = None, **fields: Any) -> None:
        """One line; a ``traceback`` follows it, each of its lines indented by four spaces (so
        every line of the log that starts in the first column is a record)."""
        if LEVELS.get(level, 20) < self.threshold:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        parts = " ".join(f"{k}={v}" for k, v in {**self.context, **fields}.items())
        text = f"{stamp} {level} {event}{' ' if parts else ''}{parts}".replace("\n", " ")
        if traceback:
            text += "".join(f"\n    {line}" for line in traceback.splitlines())
        self.stream.write(text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
        self.stream.flush()
