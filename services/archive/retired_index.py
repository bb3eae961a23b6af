"""An index directory switched away from, kept a while for the readers that found it just
before.

A reader resolves the link DATA/index, then opens the directory it names: a switch to
another index in between (the indexer service's compaction, a rebuild's switch, `archiver
compact`: Archive.swap_index) must leave that directory for it to open, or a search finds
nothing there, and says so as if nothing matched. So the switch marks the old directory
retired (a file MARK inside it holding the epoch second of the switch) instead of
removing it, and compaction.remove_strays removes it only once it has been retired for
RETIRED_SECONDS. A reader that keeps the index open longer (an export, a hold's count)
holds it (services.archive.index_hold), and remove_strays leaves it until it is let go.

A directory is marked the same way whoever switched from it, and whether or not the
process that did still runs: there is no timer to be lost when the service stops.
"""
from __future__ import annotations

import math
import os
import stat
import time
from pathlib import Path

from services.common.atomic_file import atomic_output

MARK = "retired"  # in a retired index directory: the epoch second it was retired, as text
# A reader resolves the index link, then opens the directory: well within this.
RETIRED_SECONDS = 60.0


MARK_BYTES = 64  # more than a mark holds: what is read of one at most


def mark(index_dir: Path, now: float | None = None) -> None:
    """Mark `index_dir` retired at `now` (epoch seconds; default: the clock), durably.
    Raises OSError when the mark cannot be written."""
    at = time.time() if now is None else now
    with atomic_output(Path(index_dir) / MARK, mode=0o644) as output:
        output.write(f"{at!r}\n".encode("ascii"))


def retired_at(index_dir: Path) -> float | None:
    """The epoch second `index_dir` was retired at; None when it is not marked, or its
    mark is no regular file holding a finite number (it is opened without following a
    symlink or waiting on a FIFO, and read MARK_BYTES at most)."""
    try:
        descriptor = os.open(Path(index_dir) / MARK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        at = float(os.read(descriptor, MARK_BYTES).decode("ascii"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    finally:
        os.close(descriptor)
    return at if math.isfinite(at) else None


def expired(at: float, now: float, retired_for: float) -> bool:
    """Whether an index retired at `at` may go at `now` (epoch seconds), `retired_for`
    seconds being its time. A clock set back by as much counts as that time passed: a
    mark in the future would otherwise keep the index for as long as the clock was off."""
    return abs(now - at) >= retired_for
