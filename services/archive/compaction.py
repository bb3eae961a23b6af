"""Compacting an index: Xapian's compact() writes every table again, its blocks full and in
order.

An index written a batch at a time leaves its B-tree blocks part full: 2,000 bench
messages indexed in 13 commits took 48 MB, and 20 MB once compacted (in 0.2 s). A rebuilt
index is compacted once before it goes live (services.archive.reindex.switch_over). The
live index splits its blocks again with the first commits that touch them, so the indexer
service compacts it only once it has grown well past its size before the last compaction
(services.archive.live_compaction).

The copy keeps every document under its document id (DBCOMPACT_NO_RENUMBER: the index's
document ids are the store's message numbers, and by default Xapian would close a gap at
the start) and the index's metadata (the indexer's position in the arrival log). An index
in shards (services.archive.shards) is copied a shard at a time, into the same shards:
Xapian's compact of them opened as one would merge them into a single database, where
ids no longer interleave as the stub says.

The last compaction (by the indexer service, services.archive.live_compaction; by a
rebuild's switch; by `archiver compact`) is recorded in the store's node-local settings
(Record), for status and for when the service compacts next.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import xapian

from services.archive import index_hold, retired_index, shards
from services.archive.archive import Archive
from services.archive.space import OutOfSpace, is_out_of_space
from services.archive.store import Store
from services.common.atomic_file import fsync_files_of, fsync_path

log = logging.getLogger("archiver")
KEEP_CURRENT_SECONDS = 0.5  # how often keep_current() runs while Xapian compacts
COMPACTING = "index.compacting"  # where a copy is written, in the archive's data directory
INDEX_DIR_NAME = re.compile(r"index\.(\d+|compacting)")  # Archive.new_index_dir's names
RECORD_SETTING = "index.compaction"  # the store's node-local setting Record is kept in


@dataclass(frozen=True)
class Record:
    """The last compaction of an index of this archive, and the last one the indexer
    service skipped (no room, a failed copy). Times in epoch seconds, sizes in bytes
    (size_of); `index`, `skipped_index`: the name of the index directory (index.N) each
    is about."""
    index: str | None = None
    compacted_at: float | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None
    messages: int | None = None        # documents in the compacted index
    compactions: int = 0               # recorded since the archive was made
    skipped_index: str | None = None
    skipped_at: float | None = None
    skipped_bytes: int | None = None   # the index's size when it was skipped
    skipped_reason: str | None = None

    @classmethod
    def load(cls, store: Store) -> "Record":
        """The record kept in `store`; an empty one when there is none."""
        kept = store.setting(RECORD_SETTING) or {}
        return cls(**{f.name: kept[f.name] for f in fields(cls) if f.name in kept})

    def save(self, store: Store) -> None:
        """Keep it in `store`; a store without room keeps the one before (logged): the
        record is for status, and the indexer service keeps its own copy meanwhile."""
        try:
            store.set_setting(RECORD_SETTING, asdict(self))
        except OutOfSpace as full:
            log.warning("the index compaction is not recorded: %s", full)

    def compacted(self, index_dir: Path, bytes_before: int, messages: int,
                  now: float | None = None) -> "Record":
        """This record after `index_dir` (the compacted copy, as named live) was made
        from an index of `bytes_before` bytes, with `messages` documents."""
        return Record(Path(index_dir).name, time.time() if now is None else now,
                      bytes_before, size_of(index_dir), messages, self.compactions + 1)

    def skipped(self, index_dir: Path, size: int, reason: str, now: float) -> "Record":
        """This record after the compaction of `index_dir` (`size` bytes) was skipped."""
        return replace(self, skipped_index=Path(index_dir).name, skipped_at=now,
                       skipped_bytes=size, skipped_reason=reason)


def record(store: Store, index_dir: Path, bytes_before: int) -> None:
    """Record in `store` that `index_dir`, about to go live, is a compacted copy of an
    index of `bytes_before` bytes (Record)."""
    database = xapian.Database(str(index_dir))
    messages = database.get_doccount()
    database.close()
    Record.load(store).compacted(index_dir, bytes_before, messages).save(store)


def copy(archive: Archive, index_dir: Path, keep_current: Callable[[], None] = lambda: None
         ) -> Path | None:
    """A compacted, durable copy of `index_dir` (its writer closed) in a new index
    directory of `archive` (the caller makes it live: Archive.swap_index); None when the
    disk has no room for it (logged). `keep_current`: as compact() says. Raises any other
    failure of compact(); a partial copy is removed either way."""
    working = archive.data_dir / COMPACTING
    shutil.rmtree(working, ignore_errors=True)
    try:
        compact(index_dir, working, keep_current)
    except (OSError, xapian.Error) as exc:
        shutil.rmtree(working, ignore_errors=True)
        if not is_out_of_space(exc, archive.data_dir):
            raise
        log.warning("no room to compact the index %s (%s)", index_dir, exc)
        return None
    log.info("compacted the index %s: %d bytes, %d before", index_dir, size_of(working),
             size_of(index_dir))
    named = archive.new_index_dir()  # empty: the rename takes its place
    os.replace(working, named)
    fsync_path(archive.data_dir)
    return named


def compact(source: Path, target: Path, keep_current: Callable[[], None] = lambda: None
            ) -> None:
    """Write a compacted copy of the index in directory `source` (its writer closed) to
    directory `target` (which must not exist), and make it durable (every file and the
    directory fsync'd) before returning.

    Xapian compacts in a thread of its own (it releases the interpreter lock), and this
    thread calls `keep_current()` every KEEP_CURRENT_SECONDS meanwhile: the indexer service
    keeps the old live index current with it. Raises xapian.Error or OSError (a full
    disk: ENOSPC) from the compaction, or whatever keep_current raised; `target` may then
    hold part of a copy, for the caller to remove."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _compact_shards(Path(source), Path(target))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="index-compaction")
    worker.start()
    try:
        while worker.is_alive():
            keep_current()
            worker.join(KEEP_CURRENT_SECONDS)
    finally:
        worker.join()
    if failure:
        raise failure[0]
    fsync_files_of(target)


def _compact_shards(source: Path, target: Path) -> None:
    """Compact each shard of the index at `source` into the same place under `target`,
    then write the stub (a single database: into `target` itself)."""
    dirs = shards.shard_dirs(source)
    if dirs == [source]:
        _compact_one(source, target)
        return
    target.mkdir()
    for path in dirs:
        _compact_one(path, target / path.name)
    shutil.copyfile(source / shards.STUB, target / shards.STUB)


def _compact_one(source: Path, target: Path) -> None:
    database = xapian.Database(str(source))
    try:
        database.compact(str(target), xapian.DBCOMPACT_NO_RENUMBER)
    finally:
        database.close()


def size_of(index_dir: Path) -> int:
    """Bytes of the files of the index in directory `index_dir`, its shards' included; 0
    when the directory is gone. Status and /metrics ask while the indexer commits, and
    each Xapian commit writes a shard's version file as v.tmp and renames it: a file gone
    between the listing and its size counts nothing, as in any look at a folder that
    changes meanwhile (it raised FileNotFoundError, and /metrics answered 500)."""
    total = 0
    for path in shards.files_of(index_dir):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def remove_strays(archive: Archive, now: float | None = None) -> list[Path]:
    """Remove the index directories of `archive` that are neither live nor being rebuilt
    (what its links name, compared by resolved paths, whatever their marks): one retired
    by a switch (services.archive.retired_index) once it has been for RETIRED_SECONDS as
    of `now` (epoch seconds; default: the clock), so that a reader that found it just
    before the switch still opens it; one never made live (a rebuilt index once its
    compacted copy is live, what a copy or a switch cut short by a crash left) at once.
    One a reader holds (services.archive.index_hold: an export, a hold's count still
    reading it) is left, whatever its age, for a call after the reader lets it go; this
    never waits for a reader. Only directories named as Archive.new_index_dir names them
    (or COMPACTING) are touched. Returns those removed (sorted paths). The caller holds
    the indexer's lock (IndexLock), so that no copy or rebuild is under way; the first
    index, made without it, is never taken for a stray (first_index_lock). Cheap when
    there is nothing to remove, or only held directories (a lock tried on each): the
    indexer service asks each time it has caught up."""
    now = time.time() if now is None else now
    if not _strays(archive, now):
        return []
    with archive.first_index_lock():  # one listed may have gone live meanwhile: list again
        return [path for path in _strays(archive, now)
                if index_hold.remove_unless_held(path)]


def _strays(archive: Archive, now: float) -> list[Path]:
    """The index directories remove_strays would remove at `now`."""
    keep = {link.resolve() for link in (archive.index_link, archive.next_index_link)
            if link.is_symlink()}
    return [path for path in sorted(archive.data_dir.iterdir())
            if INDEX_DIR_NAME.fullmatch(path.name) and path.is_dir()
            and not path.is_symlink() and path.resolve() not in keep
            and _may_go(path, now)]


def _may_go(index_dir: Path, now: float) -> bool:
    at = retired_index.retired_at(index_dir)
    return at is None or retired_index.expired(at, now, retired_index.RETIRED_SECONDS)
