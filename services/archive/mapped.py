"""Letting go of the pages of a file mapped in for reading, so they stop counting as ours.

LMDB reads through a shared, read-only mapping of its data file: every page read stays
mapped into the reading process, so the resident memory of a process that reads the whole
store (the indexer, a reindex) grows with the store, up to its size. The pages are page
cache the kernel may reclaim under pressure, yet they count as the process's RSS, and a
model's memory budget is read in RSS. madvise(MADV_DONTNEED) on such a mapping only drops
this process's page table entries: the pages stay in the page cache, and the next read
maps them again, unchanged (the mapping is of the file, MAP_SHARED, never written through).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from pathlib import Path
from typing import Callable, TypeVar

log = logging.getLogger("archiver")
MADV_DONTNEED = 4  # <sys/mman.h> on Linux
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_opening = threading.Lock()  # mapping_made_by's: one open of a mapped file at a time
T = TypeVar("T")


def mappings_of(path: Path) -> list[tuple[int, int]]:
    """(start, end) addresses of this process's shared mappings of the file `path`, from
    /proc/self/maps (proc(5)); empty where there is no /proc. Only shared ones: dropping
    the pages of a private mapping would drop what the process wrote into them."""
    target = str(Path(path).resolve())
    found = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and "s" in fields[1] and fields[5].rstrip("\n") == target:
                    start, end = (int(address, 16) for address in fields[0].split("-"))
                    found.append((start, end))
    except OSError:
        pass
    return found


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_statm: tuple[int, int] | None = None  # (pid, open /proc/PID/statm), kept: 3 us a read


def resident_file_bytes() -> int:
    """Bytes of this process's resident memory that files back (RssFile + RssShmem: the
    "shared" field of /proc/PID/statm, proc(5)); 0 where there is no /proc. A few
    microseconds: the kernel keeps the count, nothing is walked, and the file stays open
    (one per process: a forked child opens its own)."""
    global _statm
    try:
        if _statm is None or _statm[0] != os.getpid():
            _statm = (os.getpid(), os.open(f"/proc/{os.getpid()}/statm", os.O_RDONLY))
        return int(os.pread(_statm[1], 256, 0).split()[2]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def mapping_made_by(path: Path, open_file: Callable[[], T]) -> tuple[T, list[tuple[int, int]]]:
    """open_file()'s result and the (start, end) shared mappings of `path` it made (those
    of /proc/self/maps after it and not before; an LMDB environment's map), for
    release_ranges() to release without reading /proc/self/maps each time (some 0.6 ms in
    a process of a few hundred mappings: 2,500 times an import of 5,000 messages did).
    Opens through here are one at a time, so another thread's mapping of the same file is
    never taken for this one's. The ranges are valid until what open_file() opened is
    closed: the caller stops using them first."""
    with _opening:
        before = set(mappings_of(path))
        opened = open_file()
        return opened, [found for found in mappings_of(path) if found not in before]


def unmapped_by(close_file: Callable[[], object]) -> None:
    """close_file() (what undoes a mapping_made_by() open) while no mapping_made_by() runs:
    an open beside it could be given the address just freed and, having seen it before,
    not take it for its own."""
    with _opening:
        close_file()


def release_ranges(ranges: list[tuple[int, int]], length: int | None = None) -> int:
    """Drop this process's resident pages of shared file mappings that are still mapped
    ((start, end) addresses: mapping_made_by's, or mappings_of's just read), at most the
    first `length` bytes of each; return the bytes of address space advised. Never raises:
    failing to release is a cost in memory, not an error."""
    advised = 0
    for start, end in ranges:
        size = end - start if length is None else min(end - start, length)
        size -= size % _PAGE_SIZE
        if size and _libc.madvise(start, size, MADV_DONTNEED) == 0:
            advised += size
        elif size:
            log.debug("madvise of %#x-%#x failed: %s", start, end,
                      os.strerror(ctypes.get_errno()))
    return advised
