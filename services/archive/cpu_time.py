"""CPU time of a process, and of a process with everything it started, from proc(5).

The extraction limits count CPU, not wall-clock time: the indexer runs at the idle
scheduling policy, below the services that acknowledge mail, so while they keep the cores
busy a reader may wait seconds for each slice of CPU. Waiting is not the reader's fault;
only the CPU it uses is.
"""
from __future__ import annotations

import os

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def own_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` (all its threads) has used (proc(5) stat
    fields 14 and 15). Raises ProcessLookupError when there is no such process."""
    return _ticks(pid, reaped=False) / _TICKS_PER_SECOND


def tree_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid`, of the children it has reaped (stat
    fields 16 and 17) and of every living descendant (task/*/children). Raises
    ProcessLookupError when there is no such process. A descendant reaped while this reads
    may be missed once (`pid` is read before its children), never counted twice."""
    ticks = _ticks(pid, reaped=True)
    for child in _children(pid):
        try:
            ticks += round(tree_seconds(child) * _TICKS_PER_SECOND)
        except ProcessLookupError:
            pass  # ended since its parent's list was read: counted once reaped
    return ticks / _TICKS_PER_SECOND


def _ticks(pid: int, reaped: bool) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # Fields from 3 on follow the last ")": the command name may hold anything.
            fields = stat.read().rpartition(b")")[2].split()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    return sum(int(value) for value in fields[11:15 if reaped else 13])


def _children(pid: int) -> list[int]:
    """Process ids of the living children of `pid` (of any of its threads)."""
    children = []
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as listed:
                children += map(int, listed.read().split())
    except FileNotFoundError:  # it ended, or a thread did: its children went with it
        pass
    return children
