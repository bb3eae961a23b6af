"""CPU time of a process and of everything it started, and whether any of it is ready to
run, from proc(5).

The extraction limits count CPU, not wall-clock time: the indexer runs at the idle
scheduling policy, below the services that acknowledge mail, so while they keep the cores
busy a reader may wait long for each slice of CPU. Waiting is not the reader's fault; only
the CPU it uses is. The limit kept for a reader that waits without computing counts only
the time it is blocked (BlockedClock), never the time it is ready to run, waiting for a
core. (schedstat's run_delay cannot tell the two apart while it lasts: the kernel adds a
wait to it only when the wait ends.)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
LOOK_S = 1.0  # the most one look of a BlockedClock counts
LATE_S = 2 * LOOK_S  # a look later than this after the one before counts nothing


@dataclass(frozen=True)
class Usage:
    cpu_s: float     # user + system CPU seconds
    runnable: bool   # whether one of the threads is running or ready to run now


def own_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` (all its threads) has used (proc(5) stat
    fields 14 and 15). Raises ProcessLookupError when there is no such process."""
    return _ticks(pid)[0] / _TICKS_PER_SECOND


def tree_usage(pid: int) -> Usage:
    """What process `pid` and its living descendants (task/*/children) use: the CPU
    seconds of each with the children it reaped (stat fields 14 to 17), and whether a
    thread of any is running or ready to run (task/*/stat field 3 is R). Raises
    ProcessLookupError when there is no such process. A descendant reaped while this reads
    may be missed once (`pid` is read before its children), never counted twice. Not
    counted: a descendant whose parent ended without reaping it (init reaps it), so a
    program that computes in such orphans escapes the tree's count (each reader here has
    its own RLIMIT_CPU, and none forks so)."""
    ticks, runnable = _tree_ticks(pid)
    return Usage(ticks / _TICKS_PER_SECOND, runnable)


def _tree_ticks(pid: int) -> tuple[int, bool]:
    """tree_usage(pid) in clock ticks."""
    ticks, threads = _ticks(pid)[1], _threads(pid)
    runnable = any(_thread_state(pid, thread) == b"R" for thread in threads)
    for child in _children(pid, threads):
        try:
            child_ticks, child_runnable = _tree_ticks(child)
        except ProcessLookupError:
            continue  # ended since its parent's list was read: its CPU counted once reaped
        ticks += child_ticks
        runnable = runnable or child_runnable
    return ticks, runnable


class BlockedClock:
    """Seconds a process and its descendants have been blocked (no thread running or ready
    to run: waiting for input, a lock or a timer, or stopped), as seen by looking at them
    about every LOOK_S: each look that finds them blocked counts the time since the
    previous look (or since `started`, time.monotonic()), but no more than LOOK_S. A look
    that comes late (more than LATE_S after the one before) counts nothing: its caller was
    kept waiting for a core, and what it looks at may have been waiting on the caller (to
    read the output filling a pipe, to be given input, to be answered). So while the
    caller itself is starved, the clock stands still."""

    def __init__(self, started: float | None = None):
        self.seconds = 0.0
        self.looked = time.monotonic() if started is None else started

    def add(self, usage: Usage | None, now: float | None = None) -> float:
        """Count one look (`usage`: tree_usage() now; None: the process is gone, not
        blocked); the blocked seconds so far."""
        now = time.monotonic() if now is None else now
        if usage is not None and not usage.runnable and now - self.looked <= LATE_S:
            self.seconds += min(max(now - self.looked, 0.0), LOOK_S)
        self.looked = now
        return self.seconds

    def look(self, pid: int, waits_on_caller: bool = False) -> float:
        """add() of tree_usage(pid) now; of nothing (not blocked) when `waits_on_caller`
        (the caller knows the process may be waiting on it: a pipe it has yet to read or
        write)."""
        try:
            return self.add(None if waits_on_caller else tree_usage(pid))
        except ProcessLookupError:
            return self.add(None)


def _ticks(pid: int) -> tuple[int, int]:
    """(user + system clock ticks of `pid`, the same with its reaped children's)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # Fields from 3 on follow the last ")": the command name may hold anything.
            fields = stat.read().rpartition(b")")[2].split()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    own = int(fields[11]) + int(fields[12])
    return own, own + int(fields[13]) + int(fields[14])


def _thread_state(pid: int, thread: str) -> bytes:
    """proc(5) stat field 3 of one thread (b"" once it ended)."""
    try:
        with open(f"/proc/{pid}/task/{thread}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split(maxsplit=1)[0]
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _threads(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []  # it ended: with its threads and children


def _children(pid: int, threads: list[str]) -> list[int]:
    """Process ids of the living children of `pid` (of any of its `threads`)."""
    children = []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as listed:
                children += map(int, listed.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread ended: its children are its process's now
    return children
