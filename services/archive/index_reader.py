"""Reading the index while the indexer writes it: one revision at a time, read again when
Xapian discards it.

A reader opens the newest committed revision. Xapian's glass backend keeps the blocks of
the revision before the newest one; once the indexer has committed twice more, blocks of an
older revision may be reused, and a reader still on it gets xapian.DatabaseModifiedError
("the revision being read has been discarded"). The cure Xapian gives is to reopen and read
again from the start: a read is only consistent within one revision.

An index opened here is held against removal until it is closed (services.archive.index_hold):
a reader may read it, and reopen it, for as long as it takes, though it was switched from.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar

import xapian

from services.archive import index_hold

__all__ = ["PATIENCE_SECONDS", "HeldDatabase", "open_index", "read_consistently",
           "read_index", "reopen"]
T = TypeVar("T")
# How long a question is read again while the indexer keeps overtaking it. A count would not
# do: an indexer committing every few milliseconds overtook five searches in a row in a test.
PATIENCE_SECONDS = 30.0


class HeldDatabase(xapian.Database):
    """An index opened for reading, its directory `index_dir` (resolved) held against
    removal (index_hold) until close(), or until this object is collected."""

    def __init__(self, held: index_hold.Held):
        super().__init__(str(held.path))  # by the held directory: the link may switch
        self.index_dir, self._held = held.path, held

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._held.release()


def open_index(index_dir: Path) -> HeldDatabase | None:
    """The index at `index_dir` (the index link, or an index directory) opened for reading
    and held until closed; None when nothing is indexed there (yet, or any more). A link
    to a directory removed before it was held is resolved again (index_hold.hold)."""
    held = index_hold.hold(index_dir)
    if held is None:
        return None
    try:
        return HeldDatabase(held)
    except xapian.DatabaseOpeningError:
        held.release()
        return None
    except BaseException:
        held.release()
        raise


def reopen(database: xapian.Database) -> None:
    """Move `database` to the newest revision of its index. An index the indexer switched
    away from (services.archive.live_compaction, services.archive.reindex) takes no commit
    any more: a reader that has it open (held, open_index) reopens it at its last revision.
    One opened otherwise whose folder is gone stays on the revision it has."""
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
    is indexed yet. The index is closed (let go) after, raised or not."""
    database = open_index(index_dir)
    if database is None:
        return absent
    try:
        return read_consistently(database, read)
    finally:
        database.close()
