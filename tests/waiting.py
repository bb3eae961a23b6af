"""Waiting for a condition in tests that drive real processes, namespaces or VMs."""
from __future__ import annotations

import time


def wait_until(condition, timeout: float = 120, what: str = "condition", interval: float = 0.3):
    """Call condition() every `interval` seconds until it returns something true, and return
    that; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
