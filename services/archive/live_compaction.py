"""The indexer service compacts the live index by itself, when that is worth it.

An index written a batch at a time leaves its blocks part full: it grows to 2-2.5x its
compacted size (2,000 messages: 71 MB, 29 MB compacted), and `archiver compact` cannot run
while the service holds the index, so without this nothing would ever compact it.

When (due): the live index's size on disk (compaction.size_of) is at least GROWTH_FACTOR
times, and at least MIN_GROWTH_BYTES more than, its size right before its last compaction
(0 for an index not compacted since it was made: it is compacted once it reaches
MIN_GROWTH_BYTES); the last compaction of any index of the archive is at least
MIN_INTERVAL_SECONDS ago; and the indexer has caught up with the arrival log (checked each
time it has, never between the batches of a backlog; what arrived since is a trickle, not
a backlog, while it is less than a full batch, indexer.BATCH_MESSAGES: under steady SMTP
intake a message or two always are).

Why the size before, not after: a compacted index that takes mail again swells back at
once, its full blocks split (and copied: Xapian writes a changed block elsewhere) by the
first commits that touch them. Measured with commits of 10 messages: bench corpus, 2,000
messages, 72.0 MB imported, 29.2 MB compacted (2.46x), then 2.64x after 2.5% more mail and
2.85x after 20% (never compacted: 2.68x); 10,000 messages without attachments, 198.6 MB,
100.9 MB compacted (1.97x), then 1.66x after 1.2% more and 1.85x after 10% (never
compacted: 2.02x). So the size right after a compaction would have it compacted again and
again for nothing, while the size before is about what a live index of that mail settles
at. The larger the index, the smaller the share of its blocks new mail touches, and the
longer a compaction's gain lasts: small indexes gain least (or nothing). Growing by a
factor keeps the cost in proportion: each compaction reads and writes the index once,
for at least half as much index written since, so however large the archive grows,
compacting costs a fixed share of indexing; the minimum spares a small index rewrites
for a few megabytes.

How: Xapian writes the copy in a thread of its own (compaction.copy) and the indexer
waits: it may not commit to the index being read (Xapian discards the revision a reader
is on two commits later, and the compaction fails with xapian.DatabaseModifiedError).
Mail arriving meanwhile waits in the arrival log, durable; the copy holds the live
index's position in the log, so the indexer indexes that mail into the copy as soon as it
is live. Searches go on in the old index all along; the switch marks it retired
(services.archive.retired_index), and compaction.remove_strays, which runs each time the
indexer has caught up, removes it once it has been for RETIRED_SECONDS: a search that
found it just before still opens it, and a longer walk stays on its last revision
(index_reader.reopen). A stop meanwhile leaves the mark for the next start.

Room: the copy is written on the data disk beside the live index, at most as large as the
live index; it is begun only when the data disk would still have ROOM_RESERVES times the
model's intake.min_free_disk_mb free with a copy that large, so that intake never has to
wait for room because of it. Without that room, with the index on a disk of its own (a
copy would move it to the data disk), or when the copy fails after all: skipped, logged
once, the index as it was; tried again once the index has grown RETRY_FACTOR times since.
The last compaction and the last skip are recorded for status (compaction.Record).
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from services.archive import compaction, indexer as indexer_module
from services.archive.archive import Archive
from services.archive.indexer import Indexer
from services.archive.space import disk_space, size_in_words

log = logging.getLogger("archiver")
GROWTH_FACTOR = 1.5
MIN_GROWTH_BYTES = 8 * 1024 * 1024
MIN_INTERVAL_SECONDS = 3600.0
RETRY_FACTOR = 1.1
ROOM_RESERVES = 2


def threshold(record: compaction.Record, index_name: str) -> int:
    """The size in bytes at which the live index named `index_name` is compacted next."""
    baseline = record.bytes_before if record.index == index_name and record.bytes_before \
        else 0
    due_at = max(math.ceil(GROWTH_FACTOR * baseline), baseline + MIN_GROWTH_BYTES)
    if record.skipped_index == index_name and record.skipped_bytes:
        due_at = max(due_at, math.ceil(RETRY_FACTOR * record.skipped_bytes))
    return due_at


def not_before(record: compaction.Record) -> float | None:
    """The epoch second before which nothing is compacted again, or None."""
    return None if record.compacted_at is None \
        else record.compacted_at + MIN_INTERVAL_SECONDS


def due(record: compaction.Record, index_name: str, size: int, now: float) -> bool:
    """Whether the live index named `index_name`, of `size` bytes, is to be compacted at
    `now` (epoch seconds), as the module says; a clock set back counts as time passed."""
    if size < threshold(record, index_name):
        return False
    since = None if record.compacted_at is None else now - record.compacted_at
    return since is None or not 0 <= since < MIN_INTERVAL_SECONDS


class LiveCompaction:
    """Compacts the index `indexer` (the indexer service's writer of `archive`'s live
    index) when it is due; `caught_up` is what the service calls each time the indexer
    has caught up (Indexer.follow)."""

    def __init__(self, archive: Archive, indexer: Indexer,
                 now: Callable[[], float] = time.time):
        self.archive, self.indexer, self.now = archive, indexer, now
        self.record = compaction.Record.load(archive.store)

    def caught_up(self) -> bool:
        """Remove the index directories no longer wanted (compaction.remove_strays: those
        retired long enough, what a crash left), then compact the live index if it is due
        and the arrival log holds nothing more to index; True when the copy went live.
        Never raises for a compaction that failed (skipped, logged): indexing goes on
        either way."""
        compaction.remove_strays(self.archive)
        pending = self.archive.store.log_end("arrival") - self.indexer.position()
        if pending >= indexer_module.BATCH_MESSAGES:
            return False  # a backlog (a full batch or more): indexing comes first
        live = self.indexer.index_dir
        size = compaction.size_of(live)
        if not due(self.record, live.name, size, self.now()):
            return False
        why_not, copied = self._no_room(live, size), None
        if why_not is None:
            try:
                copied = compaction.copy(self.archive, live)  # the indexer waits: see above
            except Exception as exc:  # noqa: BLE001 - the index stays as it was
                log.exception("compacting the index %s failed", live)
                why_not = f"the copy failed: {type(exc).__name__}: {exc}"[:500]
            else:
                why_not = None if copied is not None else self._room_words(size)
        if copied is None:
            self._skip(live, size, why_not)
            return False
        self._switch(copied, size)
        return True

    def _no_room(self, live: Path, size: int) -> str | None:
        """Why a copy of the live index (`size` bytes) may not be written now, or None."""
        if os.stat(live).st_dev != os.stat(self.archive.data_dir).st_dev:
            return ("the index is on a disk of its own: a compacted copy, written on the "
                    "data disk, would move it there")
        reserve = self.archive.profile.intake.min_free_disk_bytes
        free = disk_space("data_disk", "data disk", self.archive.data_dir, reserve).free_bytes
        return self._room_words(size) if free - size < ROOM_RESERVES * reserve else None

    def _room_words(self, size: int) -> str:
        reserve = self.archive.profile.intake.min_free_disk_bytes
        disk = disk_space("data_disk", "data disk", self.archive.data_dir, reserve)
        return (f"no room for a copy of the index: {disk.words()}; a copy takes up to "
                f"{size_in_words(size)}, and {size_in_words(ROOM_RESERVES * reserve)} stay "
                "free for intake")

    def _switch(self, copied: Path, size: int) -> None:
        """Make `copied` live and the indexer write it; the index it was copied from is
        retired (swap_index marks it; remove_strays removes it later)."""
        try:  # the writer has caught up: nothing uncommitted, the copy holds it all
            self.archive.swap_index(copied)
        except BaseException:
            shutil.rmtree(copied, ignore_errors=True)
            raise
        self.indexer.move_to(copied)  # not close(): that ends the shards' writer threads
        self.record = self.record.compacted(copied, size, self.indexer.document_count(),
                                            self.now())
        self.record.save(self.archive.store)
        log.info("compacted the live index: %s, %s before; %d messages",
                 size_in_words(self.record.bytes_after), size_in_words(size),
                 self.record.messages, extra={"ARCHIVER_SERVICE": "indexer"})

    def _skip(self, live: Path, size: int, why_not: str) -> None:
        first = self.record.skipped_index != live.name
        self.record = self.record.skipped(live, size, why_not, self.now())
        self.record.save(self.archive.store)
        if first:  # once for this index; it is tried again only once it has grown
            log.warning("the index is not compacted: %s; tried again once it reaches %s",
                        why_not, size_in_words(threshold(self.record, live.name)),
                        extra={"ARCHIVER_SERVICE": "indexer"})


@dataclass(frozen=True)
class Status:
    """The live index's size and compaction, as status shows them (epoch seconds, bytes)."""
    index_bytes: int | None            # None: no index yet
    compacts_at_bytes: int | None      # the size at which it is compacted next,
    not_before: float | None           # not before this time (None: any time)
    record: compaction.Record


def status(archive: Archive) -> Status:
    """The live index's Status; it makes no index where there is none."""
    record = compaction.Record.load(archive.store)
    link = archive.index_link
    if not link.is_dir():
        return Status(None, None, None, record)
    live = link.resolve()
    return Status(compaction.size_of(live), threshold(record, live.name), not_before(record),
                  record)
