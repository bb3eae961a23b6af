"""Memory for the messages intake is storing at once (models.yaml smtp.data_memory_mb).

Storing takes the message as bytes (the store hashes, summarizes and compresses them), so
each put reserves what it will take before it reads its spool, and waits its turn when the
budget is spent: first come, first served, so a large message is not passed over forever
by small ones. Memory of the puts in flight never exceeds the budget.
"""
from __future__ import annotations

import asyncio
from collections import deque

from firmware.models import HEADER_SUMMARY_MEMORY_MB, MESSAGE_MEMORY_COPIES

# The header summary takes at most this many times the header block (measured 55x for
# 256 KiB of "X:" lines), and the block is no longer than the message.
HEADER_SUMMARY_FACTOR = 64


def memory_to_store(size: int) -> int:
    """Bytes of memory storing a message of `size` bytes takes at most (firmware.models
    explains the copies)."""
    summary = min(HEADER_SUMMARY_FACTOR * size, HEADER_SUMMARY_MEMORY_MB * 1024 * 1024)
    return MESSAGE_MEMORY_COPIES * size + summary


class MemoryBudget:
    """A weighted first-come-first-served semaphore over bytes; event-loop only.

    `await take(n)` returns once n bytes are granted (n is capped at the whole budget, so
    any request is granted eventually, alone if it must); give_back(n) returns them."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()

    def share(self, wanted: int) -> int:
        return min(wanted, self.limit)

    async def take(self, wanted: int) -> int:
        """Wait for `wanted` bytes (capped at the budget); returns what was granted."""
        amount = self.share(wanted)
        if not self._waiting and self.used + amount <= self.limit:
            self.used += amount
            return amount
        granted = asyncio.get_running_loop().create_future()
        self._waiting.append((amount, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted as we were cancelled
                self.give_back(amount)
            else:
                self._grant()  # the head may have been this one
            raise
        return amount

    def give_back(self, amount: int) -> None:
        self.used -= amount
        self._grant()

    def _grant(self) -> None:
        while self._waiting:
            amount, granted = self._waiting[0]
            if granted.cancelled():
                self._waiting.popleft()
                continue
            if self.used + amount > self.limit:
                return
            self._waiting.popleft()
            self.used += amount
            granted.set_result(None)
