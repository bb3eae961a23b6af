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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import xapian

from firmware.errors import ArchiverError

from services.archive.extract import ExtractionPool
from services.archive.index import build_document, id_term
from services.archive.store import NotFound, Store

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
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


@dataclass
class Batch:
    """One slice of the arrival log on its way into the index."""
    entries: list[tuple[int, str]]                  # (seq, digest) as logged
    present: list[tuple[str, dict, bytes]] = field(default_factory=list)  # digest, meta, raw
    missing: list[str] = field(default_factory=list)  # deleted since they arrived
    extracted: list = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return self.entries[-1][0]


class Indexer:
    def __init__(self, store: Store, index_dir: Path, pool: ExtractionPool):
        self.store, self.index_dir, self.pool = store, Path(index_dir), pool
        self.database = xapian.WritableDatabase(str(self.index_dir), xapian.DB_CREATE_OR_OPEN)
        self.generator = xapian.TermGenerator()
        # What the index committed and the store has yet to record: (seq, attachment names).
        self._unrecorded: tuple[int, dict[str, list[str]]] = (0, {})

    def position(self) -> int:
        value = self.database.get_metadata(CURSOR_KEY)
        return int(value) if value else 0

    def index_batch(self) -> int:
        """Index the next batch of the arrival log; return how many log entries it took."""
        batch = self._read(self.position())
        if batch.entries:
            self._write(self._extract(batch))
        return len(batch.entries)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Index everything logged so far. The next batch is read and extracted (in the
        worker processes) while this one is written, so both cores stay busy."""
        done = 0
        with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as prefetch:
            upcoming = prefetch.submit(self._read_and_extract, self.position())
            while (batch := upcoming.result()).entries:
                upcoming = prefetch.submit(self._read_and_extract, batch.last_seq)
                self._write(batch)
                done += len(batch.entries)
                if progress:
                    progress(len(batch.entries))
        return done

    def follow(self, stop: Callable[[], bool], idle_sleep: float = 0.2,
               on_batch: Callable[[int], None] | None = None) -> None:
        while not stop():
            count = self.catch_up(on_batch)
            if not count:
                time.sleep(idle_sleep)

    def _read_and_extract(self, after_seq: int) -> Batch:
        return self._extract(self._read(after_seq))

    def _read(self, after_seq: int) -> Batch:
        batch, total = Batch([]), 0
        for seq, digest in self.store.log_after("arrival", after_seq, BATCH_MESSAGES):
            batch.entries.append((seq, digest))
            if any(digest == seen for seen, _, _ in batch.present) or digest in batch.missing:
                continue  # arrived twice in one batch: index it once
            try:
                meta, raw = self.store.meta(digest), self.store.get(digest)
            except NotFound:
                batch.missing.append(digest)
                continue
            batch.present.append((digest, meta, raw))
            total += len(raw)
            if total >= BATCH_BYTES:
                break
        return batch

    def _extract(self, batch: Batch) -> Batch:
        batch.extracted = self.pool.extract_many([raw for _, _, raw in batch.present])
        return batch

    def _write(self, batch: Batch) -> None:
        """Replace each document by its store number (no term lookup), then commit the
        batch and its log position together."""
        for digest in batch.missing:
            self.database.delete_document(id_term(digest))
        names = {}
        for (digest, meta, _), extracted in zip(batch.present, batch.extracted):
            document = build_document(digest, meta, extracted, self.generator)
            self.database.replace_document(meta["number"], document)
            names[digest] = [a.filename for a in extracted.attachments if a.filename]
        self.database.set_metadata(CURSOR_KEY, str(batch.last_seq))
        self.database.commit()
        self._unrecorded = (batch.last_seq, {**self._unrecorded[1], **names})
        self.record_progress()

    def record_progress(self) -> None:
        """Tell the store what the index committed (status, attachment names; Xapian's
        position is the truth). Kept until the store takes it: its disk may be full."""
        seq, names = self._unrecorded
        if seq:
            self.store.record_indexed(seq, names)
            self._unrecorded = (0, {})

    def abandon_writes(self) -> None:
        """Drop whatever a failed write (a full disk) left half done and close the index;
        reopen() goes on from the last commit, which holds the position in the log."""
        try:  # a failed flush leaves changes pending, which close() would commit again
            self.database.begin_transaction(False)
            self.database.cancel_transaction()  # drops every change since the last commit
        except xapian.Error:
            pass  # Xapian dropped them itself and closed the index
        try:
            self.database.close()
        except xapian.Error:
            pass
        self.database = None  # and with the object goes its write lock

    def reopen(self) -> None:
        """Open the index again after abandon_writes(); a no-op while it is open."""
        if self.database is None:
            self.database = xapian.WritableDatabase(str(self.index_dir),
                                                    xapian.DB_CREATE_OR_OPEN)

    def close(self) -> None:
        if self.database is not None:
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
