"""The indexer service's loop: follow the store's arrival log until stopped, pausing while
a disk it writes to is full and going on by itself once there is room again.

A write that fails for lack of room (Xapian's "Error writing block: No space left on
device", the store's DiskFullError), or a commit not begun for want of room for it
(services.archive.indexer.NoRoomToCommit), pauses indexing: the index drops the
half-written batch and goes on later from its last commit, which holds its position in the
log, so nothing is lost or indexed twice. The pause ends when the disks the indexer writes
to are no longer low and the commit would fit (the operator freed space), or after
RETRY_SECONDS in any case: a disk that stays low may still have room for the next batch.
Any other error ends the service.
Each time the indexer has caught up, it compacts the live index if that is due
(services.archive.live_compaction).
The background rebuild of an index of an older schema waits in the same Pause
(services.archive.reindex.rebuild_pausing).
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from services.archive.indexer import Indexer, NoRoomToCommit
from services.archive.space import Space, is_out_of_space

log = logging.getLogger(__name__)
RETRY_SECONDS = 60.0
POLL_SECONDS = 1.0


class Pause:
    """Waits while a disk the indexer writes to is full. `disks()` measures those disks;
    `note(detail)` tells status why indexing is paused ("" once it goes on); `stop` ends
    a wait early."""

    def __init__(self, disks: Callable[[], list[Space]], stop: threading.Event,
                 note: Callable[[str], None] = lambda detail: None,
                 tidy: Callable[[], object] = lambda: None):
        """`tidy()` runs as each wait begins, frees what room it can (the index folders
        retired long enough: compaction.remove_strays) and must not raise."""
        self.disks, self.stop, self.note, self.tidy = disks, stop, note, tidy
        self.paused = False

    def wait(self, exc: Exception) -> None:
        """After `exc` (a write that ran out of room, or a commit not begun for want of it:
        NoRoomToCommit): until the disks are no longer low and the commit fits,
        RETRY_SECONDS at most, or `stop` is set. Logged once per pause."""
        self.tidy()
        full = [space for space in self.disks() if space.state != "ok"]
        why = "; ".join(space.words() for space in full) or (
            str(exc) if isinstance(exc, NoRoomToCommit) else f"a write failed ({exc})")
        if not self.paused:  # once per pause, not at every retry
            log.warning("indexer paused: %s; it goes on by itself once there is room", why,
                        extra={"ARCHIVER_SERVICE": "indexer", "ARCHIVER_SPACE": why})
        self.paused = True
        self.note(f"paused: {why}")
        waited = 0.0
        while not self.stop.wait(POLL_SECONDS) and waited < RETRY_SECONDS:
            waited += POLL_SECONDS
            if all(space.state == "ok" for space in self.disks()) and (
                    not isinstance(exc, NoRoomToCommit) or exc.fits_now()):
                return

    def resumed(self, count: int = 0) -> None:
        """Indexing went on (`count` log entries; a progress callback's shape)."""
        if self.paused:
            self.paused = False
            self.note("")
            log.info("indexer resumed: there is room again", extra={"ARCHIVER_SERVICE": "indexer"})


class PausingIndexer:
    """Runs `indexer` until `pause.stop` is set, waiting in `pause` while a disk is full;
    `caught_up()` runs each time it has caught up with the arrival log (Indexer.follow)."""

    def __init__(self, indexer: Indexer, pause: Pause,
                 caught_up: Callable[[], object] | None = None):
        self.indexer, self.pause, self.caught_up = indexer, pause, caught_up

    def run(self) -> None:
        while not self.pause.stop.is_set():
            try:
                self.indexer.reopen()
                self.indexer.record_progress()
                self.indexer.catch_up(self.pause.resumed)  # the backlog, and what a pause held up
                self.pause.resumed()  # (even if nothing was left to write)
                self.indexer.follow(stop=self.pause.stop.is_set, on_batch=self.pause.resumed,
                                    caught_up=self.caught_up, sleep=self.pause.stop.wait)
            except Exception as exc:
                if not is_out_of_space(exc, self.indexer.index_dir):
                    raise
                self.indexer.abandon_writes()
                self.pause.wait(exc)
