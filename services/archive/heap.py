"""Giving the free memory of this process's heap back to the system.

glibc's malloc keeps memory freed by Python in its arenas: after a burst of large
allocations (a large message parsed, a batch of messages stored) tens of MB stay resident
though nothing uses them, and a long run's resident memory creeps up with them. Trimming
(malloc_trim(3)) returns them; it takes microseconds to a few milliseconds, and the pages
it returns cost a page fault each when the heap grows into them again.
"""
from __future__ import annotations

import ctypes


class _Mallinfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (mallinfo(3)): bytes, as size_t."""
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def trim(above_bytes: int = 0) -> None:
    """Return the heap's free memory to the system (glibc malloc_trim(3)); with
    `above_bytes`, only when more than that many bytes of it are free (mallinfo2(3)
    fordblks), so that a process which frees a little after each piece of work does not
    hand the same pages back and fault them in again each time. A no-op where the C
    library is not glibc (or, with `above_bytes`, older than 2.33). Never raises."""
    if _malloc_trim is None:
        return
    if above_bytes:
        if _mallinfo2 is None or _mallinfo2().fordblks <= above_bytes:
            return
    _malloc_trim(0)


def _find(name: str, restype=None):
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None  # not glibc, or an older one
    if restype is not None:
        function.restype = restype
    return function


_malloc_trim = _find("malloc_trim")
_mallinfo2 = _find("mallinfo2", _Mallinfo2)
