"""The import's progress line on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """A progress line on stderr: rows, rate, share of the file, ETA."""

    def __init__(self, total_bytes: int, stream: TextIO = sys.stderr) -> None:
        self.total = max(1, total_bytes)
        self.stream = stream
        self.started = time.monotonic()
        self.interactive = stream.isatty()
        self._last = 0.0

    def update(self, rows: int, done_bytes: int, rejected: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < (0.2 if self.interactive else 5.0):
            return
        self._last = now
        elapsed = max(1e-6, now - self.started)
        rate = rows / elapsed
        share = min(1.0, done_bytes / self.total)
        eta = (elapsed / share - elapsed) if share > 0 else 0.0
        bar = "#" * int(share * 30)
        line = (
            f"[{bar:<30}] {share:6.1%}  {rows:,} rows  {rate:,.0f} rows/s  "
            f"ETA {int(eta // 60)}m{int(eta % 60):02d}s  rejected {rejected:,}"
        )
        end = "\n" if final or not self.interactive else ""
        self.stream.write(("\r" if self.interactive else "") + line + end)
        self.stream.flush()
