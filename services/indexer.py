"""The single Xapian writer: follows the store's arrival log and indexes in batches.

The arrival-log position is Xapian metadata committed in the same commit as the batch, so a
SIGKILL at any point leaves index and position agreeing: on restart the writer redoes
exactly the batch that was not committed. Documents are replaced by their digest term, so a
message that arrives again (merged recipients) still has one document.
"""
from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import xapian

from firmware.errors import ArchiverError

from .extract import ExtractionPool
from .index import build_document, id_term
from .store import NotFound, Store

CURSOR_KEY = "arrival_seq"
BATCH_MESSAGES = 500
BATCH_BYTES = 64 * 1024 * 1024


class IndexerBusy(ArchiverError):
    exit_code = 3


@dataclass
class IndexStatus:
    stored: int
    indexed: int
    pending: int
    position: int
    log_end: int


class IndexLock:
    """Only one process writes the index: the indexer service, or import/reindex on the CLI."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "indexer.lock"
        self._fd: int | None = None

    def acquire(self, wait: bool) -> bool:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Indexer:
    def __init__(self, store: Store, index_dir: Path, pool: ExtractionPool):
        self.store, self.index_dir, self.pool = store, Path(index_dir), pool
        self.database = xapian.WritableDatabase(str(self.index_dir), xapian.DB_CREATE_OR_OPEN)
        self.generator = xapian.TermGenerator()

    def position(self) -> int:
        value = self.database.get_metadata(CURSOR_KEY)
        return int(value) if value else 0

    def index_batch(self) -> int:
        """Index the next batch of the arrival log; return how many log entries it took."""
        entries = self._next_entries()
        if not entries:
            return 0
        digests = list(dict.fromkeys(digest for _, digest in entries))  # once per batch
        present, raws = [], []
        for digest in digests:
            try:
                raws.append(self.store.get(digest))
                present.append(digest)
            except NotFound:  # deleted since it arrived
                self.database.delete_document(id_term(digest))
        for digest, raw, extracted in zip(present, raws, self.pool.extract_many(raws)):
            meta = self.store.meta(digest)
            self.database.replace_document(id_term(digest),
                                           build_document(digest, meta, extracted, self.generator))
        last_seq = entries[-1][0]
        self.database.set_metadata(CURSOR_KEY, str(last_seq))
        self.database.commit()
        self.store.set_cursor("indexer", last_seq)  # for status only; Xapian's is the truth
        return len(entries)

    def _next_entries(self) -> list[tuple[int, str]]:
        entries = self.store.log_after("arrival", self.position(), BATCH_MESSAGES)
        total, taken = 0, []
        for seq, digest in entries:
            taken.append((seq, digest))
            total += self.store.meta(digest)["size"] if digest in self.store else 0
            if total >= BATCH_BYTES:
                break
        return taken

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        done = 0
        while count := self.index_batch():
            done += count
            if progress:
                progress(count)
        return done

    def follow(self, stop: Callable[[], bool], idle_sleep: float = 0.2,
               on_batch: Callable[[int], None] | None = None) -> None:
        while not stop():
            count = self.index_batch()
            if on_batch:
                on_batch(count)
            if not count:
                time.sleep(idle_sleep)

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> "Indexer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def status(store: Store, index_dir: Path) -> IndexStatus:
    try:
        database = xapian.Database(str(index_dir))
        indexed, position = database.get_doccount(), int(database.get_metadata(CURSOR_KEY) or 0)
    except xapian.DatabaseOpeningError:
        indexed, position = 0, 0
    end = store.log_end("arrival")
    return IndexStatus(stored=store.counters()["messages"], indexed=indexed,
                       pending=end - position, position=position, log_end=end)
