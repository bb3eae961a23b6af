"""Giving the free memory of this process's heap back to the system.

glibc's malloc keeps memory freed by Python in its arenas: after a burst of large
allocations (a large message parsed, a batch of messages stored) tens of MB stay resident
though nothing uses them, and a long run's resident memory creeps up with them. Trimming
(malloc_trim(3)) returns them; it takes microseconds to a few milliseconds.
"""
from __future__ import annotations

import ctypes


def trim() -> None:
    """Return the heap's free memory to the system (glibc malloc_trim(3)); a no-op where
    the C library is not glibc. Never raises."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc


_malloc_trim = _find_malloc_trim()
