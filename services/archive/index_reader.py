"""Reading the index while the indexer writes it: one revision at a time, read again when
Xapian discards it.

A reader opens the newest committed revision. Xapian's glass backend keeps the blocks of
the revision before the newest one; once the indexer has committed twice more, blocks of an
older revision may be reused, and a reader still on it gets xapian.DatabaseModifiedError
("the revision being read has been discarded"). The cure Xapian gives is to reopen and read
again from the start: a read is only consistent within one revision.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar

import xapian

__all__ = ["PATIENCE_SECONDS", "open_index", "read_consistently", "read_index", "reopen"]
T = TypeVar("T")
# How long a question is read again while the indexer keeps overtaking it. A count would not
# do: an indexer committing every few milliseconds overtook five searches in a row in a test.
PATIENCE_SECONDS = 30.0


def open_index(index_dir: Path) -> xapian.Database | None:
    """The index at `index_dir` opened for reading, or None when nothing is indexed yet."""
    try:
        return xapian.Database(str(index_dir))
    except xapian.DatabaseOpeningError:
        return None


def reopen(database: xapian.Database) -> None:
    """Move `database` to the newest revision of its index. An index the indexer switched
    away from (services.archive.live_compaction, services.archive.reindex) takes no commit
    any more and its folder goes: a reader that has it open stays on the revision it has,
    that index's last one (its files stay readable while they are open)."""
    try:
        database.reopen()
    except xapian.DatabaseOpeningError:  # its folder is gone (DatabaseNotFoundError)
        pass


def read_consistently(database: xapian.Database, read: Callable[[xapian.Database], T],
                      patience: float = PATIENCE_SECONDS) -> T:
    """read(database), every part of it on one revision: when the revision is discarded
    meanwhile, `database` is reopened at the newest and read() starts again, for up to
    `patience` seconds (and at least twice). `read` must have no effect beside its result.
    Raises xapian.DatabaseModifiedError when every attempt in that time was overtaken."""
    deadline, attempts = time.monotonic() + patience, 0
    while True:
        attempts += 1
        try:
            return read(database)
        except xapian.DatabaseModifiedError:
            if attempts >= 2 and time.monotonic() > deadline:
                raise
            database.reopen()


def read_index(index_dir: Path, read: Callable[[xapian.Database], T], absent: T) -> T:
    """read() on the index at `index_dir` as read_consistently does; `absent` when nothing
    is indexed yet."""
    database = open_index(index_dir)
    return absent if database is None else read_consistently(database, read)
