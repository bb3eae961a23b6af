"""Room to write: what each disk of an archive and the store's capacity have left, in the
three states status shows (ok, low, full), and whether an error means that one ran out.

The spaces of an archive (services.archive.archive.Archive.spaces):
  data_disk       the filesystem of the data folder (store, index, mirror identity)
  store_disk      the store's filesystem, when it is another one (a disk of its own)
  index_disk      the index's filesystem, when it is another one
  store_capacity  the model's capacity: the store's LMDB map less its bookkeeping reserve

A disk is low below the model's intake.min_free_disk_mb (intake waits there, so that the
indexer and the bookkeeping still have room) and full below FULL_BELOW_BYTES, where a write
of one batch may no longer fit; so status says "low" well before a write fails. The store's
capacity is low below the same threshold and full when the map has no room left outside
its reserve. Free space is what an unprivileged service may use (statvfs f_bavail).
"""
from __future__ import annotations

import errno
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import lmdb

from firmware.errors import ArchiverError

FULL_BELOW_BYTES = 1024 * 1024
# LMDB reports a write cut short by a full disk as EIO, not ENOSPC (mdb_page_flush): an
# I/O error is taken for a full disk when the disk has less than this left.
SHORT_WRITE_MARGIN_BYTES = 16 * 1024 * 1024
_OUT_OF_SPACE = {errno.ENOSPC, errno.EDQUOT}
_OUT_OF_SPACE_WORDS = tuple(os.strerror(code) for code in sorted(_OUT_OF_SPACE))


class OutOfSpace(ArchiverError):
    """A write could not be made for lack of room; nothing of it was written, what was
    stored before is kept, and the same write succeeds once there is room again."""
    exit_code = 75  # EX_TEMPFAIL (sysexits.h): try again later
    brief = "there is no room to write"  # for an SMTP reply or a status line

    def __init__(self, message: str, brief: str | None = None):
        super().__init__(message)
        self.brief = brief or self.brief


@dataclass(frozen=True)
class Space:
    """One space as status shows it; sizes in bytes."""
    key: str              # data_disk, store_disk, index_disk, store_capacity
    name: str             # "data disk", ... as the words say it
    path: str
    total_bytes: int
    free_bytes: int
    low_below_bytes: int
    full_below_bytes: int

    @property
    def state(self) -> str:
        """"full", "low" or "ok"."""
        if self.free_bytes < self.full_below_bytes:
            return "full"
        return "low" if self.free_bytes < self.low_below_bytes else "ok"

    def words(self) -> str:
        """E.g. "data disk low: 3.2 MiB free of 29.5 MiB (low below 5.0 MiB)"."""
        threshold = (f"full below {size_in_words(self.full_below_bytes)}"
                     if self.state == "full" and self.full_below_bytes > 1
                     else f"low below {size_in_words(self.low_below_bytes)}")
        return (f"{self.name} {self.state}: {size_in_words(self.free_bytes)} free of "
                f"{size_in_words(self.total_bytes)} ({threshold})")

    def as_json(self) -> dict:
        return {**asdict(self), "state": self.state, "words": self.words()}


def disk_space(key: str, name: str, path: Path, low_below_bytes: int) -> Space:
    """The filesystem holding `path` (which must exist). Raises OSError if it cannot be read."""
    found = os.statvfs(path)
    return Space(key, name, str(path), found.f_blocks * found.f_frsize,
                 found.f_bavail * found.f_frsize, low_below_bytes,
                 min(FULL_BELOW_BYTES, low_below_bytes))


def capacity_space(path: Path, total_bytes: int, free_bytes: int, low_below_bytes: int) -> Space:
    """The store's capacity (its LMDB map less the reserve): full once nothing is left."""
    return Space("store_capacity", "store capacity", str(path), total_bytes,
                 max(free_bytes, 0), min(low_below_bytes, total_bytes), 1)


def distinct_disks(data_dir: Path, others: dict[str, Path], low_below_bytes: int) -> list[Space]:
    """The data disk, then each of `others` (key -> path) on a filesystem of its own;
    a path that does not exist yet is on the data disk."""
    spaces = [disk_space("data_disk", "data disk", data_dir, low_below_bytes)]
    seen = {os.stat(data_dir).st_dev}
    for key, path in others.items():
        if path.exists() and (device := os.stat(path).st_dev) not in seen:
            seen.add(device)
            spaces.append(disk_space(key, key.replace("_", " "), path, low_below_bytes))
    return spaces


def is_out_of_space(exc: BaseException, path: Path | str) -> bool:
    """Whether `exc`, raised by a write under `path`, means the disk (or the store's map)
    ran out of room: ENOSPC or EDQUOT as OSError, LMDB or Xapian error, LMDB's map full, or
    an I/O error while the disk of `path` is all but full (LMDB's short write)."""
    if isinstance(exc, (OutOfSpace, lmdb.DiskError, lmdb.MapFullError)):
        return True
    if isinstance(exc, OSError):
        if is_no_room_error(exc):
            return True
        return exc.errno == errno.EIO and _all_but_full(path)
    words = _error_words(exc)
    if any(text in words for text in _OUT_OF_SPACE_WORDS):
        return True
    return os.strerror(errno.EIO) in words and _all_but_full(path)


def is_no_room_error(exc: OSError) -> bool:
    """Whether `exc` is the disk's (or the user's quota's) want of room, ENOSPC or EDQUOT:
    nothing wrong with the path written to, and the same write succeeds once there is room."""
    return exc.errno in _OUT_OF_SPACE


def _error_words(exc: BaseException) -> str:
    """What an LMDB or Xapian error says (Xapian's text ends in its errno's words);
    nothing for other errors, whose text is no system's."""
    xapian = sys.modules.get("xapian")  # only a process that indexes has Xapian loaded
    if isinstance(exc, lmdb.Error) or (xapian is not None and isinstance(exc, xapian.Error)):
        return str(exc)
    return ""


def _all_but_full(path: Path | str) -> bool:
    try:
        found = os.statvfs(path)
    except OSError:
        return False
    return found.f_bavail * found.f_frsize < SHORT_WRITE_MARGIN_BYTES


def size_in_words(count: int | float | None) -> str:
    """Bytes in binary units as the model profile counts them: "3.2 MiB", "512 B"."""
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
