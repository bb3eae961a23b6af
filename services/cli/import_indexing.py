"""Indexing what `archiver import` stores while it stores: a thread beside the storing.

Storing is one thread's work (reading files, the header summary, LMDB); indexing keeps the
extraction workers and the Xapian writer busy. One after the other, a core idled through
the whole storing phase (measured: about a sixth of the wall time of a 2,000-message
import). Here the indexer follows the arrival log as storing commits to it, and once
storing has ended it indexes what is left and stops.

What is durable when does not change: a message is counted imported when its store
transaction commits, indexed when its batch and the log position commit together
(services.archive.indexer).
"""
from __future__ import annotations

import sys
import threading

from services.archive.archive import Archive
from services.archive.indexer import Indexer, IndexLock, status
from services.common.progress import Progress

IDLE_SECONDS = 0.05  # how long the indexer waits for storing to log more, when caught up


class IndexingAlongside:
    """Indexes an archive's arrival log in a thread until told that storing has ended.

    start() takes the index lock (unless the indexer service holds it: then nothing is
    indexed here, as before); finish() waits for the thread and gives how many log entries
    it indexed, or raises what stopped it (OSError/xapian.Error, e.g. a full disk)."""

    def __init__(self, archive: Archive, quiet: bool):
        self.archive, self.quiet = archive, quiet
        self.indexed = 0
        self._lock = IndexLock(archive.data_dir)
        self._stored = threading.Event()    # storing has ended: index the rest, then stop
        self._stopping = threading.Event()  # storing failed: stop after the batch at hand
        self._progress: Progress | None = None  # shown only once storing has ended
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start indexing beside the storing; False (and a line on stderr) when the indexer
        service holds the index: it indexes the new mail itself."""
        if not self._lock.acquire(wait=False):
            print("archiver: the indexer service is running; it indexes the new mail",
                  file=sys.stderr)
            return False
        self._thread = threading.Thread(target=self._run, name="import-indexing")
        self._thread.start()
        return True

    def finish(self, stop: bool = False) -> int:
        """Storing has ended: wait until what it stored is indexed (with `stop`: only until
        the batch at hand is, because storing failed), release the index, and return how
        many log entries were indexed. Raises the error that stopped indexing, if one did."""
        if self._thread is None:
            return 0
        if stop:
            self._stopping.set()
        else:
            self._show_progress()
        self._stored.set()
        self._thread.join()
        self._lock.release()
        if self._progress is not None:
            self._progress.finish()
        if self._error is not None:
            raise self._error
        return self.indexed

    def _show_progress(self) -> None:
        """From now on, indexing shows its progress over what is still pending."""
        pending = status(self.archive.store, self.archive.index_dir()).pending
        self._progress = Progress("indexing", total=pending, enabled=not self.quiet)

    def _advance(self, count: int) -> None:
        self.indexed += count
        if self._progress is not None:
            self._progress.advance(count)

    def _run(self) -> None:
        try:
            with self.archive.extraction_pool() as pool:
                with Indexer(self.archive.store, self.archive.index_dir(), pool,
                             memory_bytes=self.archive.profile.indexing.memory_bytes) as indexer:
                    self._follow(indexer)
        except BaseException as exc:  # noqa: BLE001 - handed to finish(), which raises it
            self._error = exc

    def _follow(self, indexer: Indexer) -> None:
        """Catch up with the log until a catch-up that began after storing ended is done."""
        while not self._stopping.is_set():
            last_round = self._stored.is_set()
            count = indexer.catch_up(self._advance, between=self._stopping.is_set)
            if last_round:
                return
            if not count:
                self._stored.wait(IDLE_SECONDS)
