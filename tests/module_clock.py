"""A module's `time` whose time() the test sets: monkeypatch.setattr(module, "time",
ModuleClock(now)) moves that module's clock alone (a store's arrivals, a retention run's
"now"), while sleeps, timeouts and every other module keep the real one."""
from __future__ import annotations

import time


class ModuleClock:
    def __init__(self, now: float):
        self.now = now  # epoch seconds time() gives

    def time(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)  # gmtime, strftime, monotonic... as they are
