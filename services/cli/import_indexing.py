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

    Used as a context manager around the storing: on entering, indexing starts when the
    index is free; finish() (once storing has ended) waits until what was stored is indexed
    and gives how many log entries were; leaving the block any other way (an error,
    Ctrl-C) stops indexing after the batch at hand. Either way the thread has ended and the
    index lock is released when the block is left."""

    def __init__(self, archive: Archive, quiet: bool, enabled: bool = True):
        self.archive, self.quiet, self.enabled = archive, quiet, enabled
        self.indexed = 0
        self._lock = IndexLock(archive.data_dir)
        self._arrived = threading.Event()   # storing has stored a batch (or ended)
        self._stored = threading.Event()    # storing has ended: index the rest, then stop
        self._stopping = threading.Event()  # storing failed: stop after the batch at hand
        self._room_wanted = threading.Event()  # storing asks for the workers' memory
        self._room_made = threading.Event()    # caught up, and the workers have ended
        self._progress: Progress | None = None  # shown only once storing has ended
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        # Set by the thread as it ends. Not Thread.join()/is_alive(): a Ctrl-C that
        # interrupts join() makes Python 3.11 take the thread for ended while it runs.
        self._done = threading.Event()

    def __enter__(self) -> "IndexingAlongside":
        if self.enabled:
            self._start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._end(stop=True)

    def _start(self) -> bool:
        """Start indexing when no other process (the indexer service, another import)
        holds the index; False when one does."""
        if not self._lock.acquire(wait=False):
            return False
        self._thread = threading.Thread(target=self._run, name="import-indexing")
        self._thread.start()
        return True

    def arrived(self) -> None:
        """Storing has committed a batch: indexing begins, its extraction workers started
        only now. Started beside the first batch being read, they put the import of one
        100 MiB message over the model's memory bound (its bytes and their compressed copy
        in this process, and the workers' own), for no gain: they have nothing to read
        before this."""
        self._arrived.set()

    def make_room(self) -> None:
        """Storing is about to store a message of its largest kind, or has stored one:
        return once all that was stored before is indexed and the extraction workers and
        their fork server have ended (the next arrived() starts them again). A 100 MiB
        message stored beside workers extracting the one before it, or idle, put the
        import over the model's memory bound (review r24 F1, F2). Returns at once when no
        workers run, and if indexing has stopped (finish() raises its error)."""
        if self._thread is None or not self._arrived.is_set():
            return  # no workers: none started yet, or they ended at the last make_room
        self._room_made.clear()
        self._room_wanted.set()
        while not self._room_made.wait(IDLE_SECONDS):
            if self._done.is_set():
                return

    def finish(self) -> int:
        """Storing has ended: index what it stored, and return how many log entries were
        indexed. The index held by another process at the start is tried once more; still
        held, nothing is indexed here (a line on stderr says who will). Raises the error
        that stopped indexing (OSError/xapian.Error, e.g. a full disk)."""
        if not self.enabled:
            return 0
        if self._thread is None and not self._start():
            print("archiver: another process holds the index (the indexer service, or "
                  "another import): the service or the next import indexes the new mail",
                  file=sys.stderr)
            return 0
        self._show_progress()
        self._end(stop=False)
        if self._progress is not None:
            self._progress.finish()
        if self._error is not None:
            raise self._error
        return self.indexed

    def stop(self) -> int:
        """Storing failed: stop indexing after the batch at hand; how many log entries were
        indexed (an error of indexing's own is dropped: storing's is the one reported)."""
        self._end(stop=True)
        return self.indexed

    def _end(self, stop: bool) -> None:
        """Tell the thread storing has ended (`stop`: stop after the batch at hand), wait
        for it and release the index; a no-op once done. A Ctrl-C meanwhile stops it
        after its batch, and is raised again once it has ended: leaving while it is inside
        Xapian would abort the interpreter at exit."""
        if self._thread is None:
            return
        if stop:
            self._stopping.set()
        self._stored.set()
        self._arrived.set()
        interrupted = False
        while not self._done.is_set():
            try:
                self._done.wait()
            except KeyboardInterrupt:
                interrupted = True
                self._stopping.set()
        self._thread = None
        self._lock.release()
        if interrupted:
            raise KeyboardInterrupt

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
            while self._run_workers():
                pass
        except BaseException as exc:  # noqa: BLE001 - handed to finish(), which raises it
            self._error = exc
        finally:
            self._done.set()

    def _run_workers(self) -> bool:
        """Index with extraction workers from the next batch stored until storing has
        ended (False) or wants room (True: the workers have ended, all stored is indexed)."""
        self._arrived.wait()
        if self._stopping.is_set():  # (storing failed before it stored anything)
            return False
        with self.archive.extraction_pool() as pool:
            with self.archive.indexer(pool) as indexer:
                room_wanted = self._follow(indexer)
        if not room_wanted:
            return False
        pool.end_fork_server()
        # Cleared before make_room returns, so that storing's next arrived() counts; and
        # before looking whether storing has stopped meanwhile (_end sets _stopping, then
        # _arrived): else this thread waits for an arrival that never comes (review r25 F2).
        self._arrived.clear()
        self._room_wanted.clear()
        self._room_made.set()
        return not self._stopping.is_set()

    def _follow(self, indexer: Indexer) -> bool:
        """Catch up with the log until a catch-up that began after storing ended (False), or
        after storing asked for room (True), is done."""
        while not self._stopping.is_set():
            last_round = self._stored.is_set()
            room_wanted = self._room_wanted.is_set()
            count = indexer.catch_up(self._advance, between=self._stopping.is_set)
            if last_round or self._stopping.is_set():
                return False
            if room_wanted:
                return True
            if not count:
                self._stored.wait(IDLE_SECONDS)
        return False


def index_pending(archive: Archive, quiet: bool) -> int:
    """Index everything pending now, unless another process holds the index (then 0: the
    indexer service indexes it); how many arrival-log entries were indexed. Raises what
    stopped indexing (OSError/xapian.Error)."""
    with IndexingAlongside(archive, quiet) as indexing:
        return indexing.finish()
