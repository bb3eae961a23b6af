"""Progress on stderr for long commands: a live line on a terminal, a line every few
seconds otherwise (logs, CI), and nothing at all when the caller wants only JSON."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, what: str, total: int | None = None, enabled: bool = True,
                 interval: float = 5.0):
        self.what, self.total, self.enabled = what, total, enabled
        self.done, self.started = 0, time.monotonic()
        self._tty = sys.stderr.isatty()
        self._interval = 0.2 if self._tty else interval
        self._last = 0.0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self._last >= self._interval:
            self._last = now
            self._show(end="\r" if self._tty else "\n")

    def finish(self) -> None:
        if self.enabled and self.done:
            self._show(end="\n")

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def _show(self, end: str) -> None:
        of = f"/{self.total}" if self.total else ""
        share = f" {100 * self.done // self.total}%" if self.total else ""
        sys.stderr.write(f"{self.what} {self.done}{of}{share} ({self.rate():.0f}/s){end}")
        sys.stderr.flush()
