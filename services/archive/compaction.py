"""Compacting an index: Xapian's compact() writes every table again, its blocks full and in
order.

An index written a batch at a time leaves its B-tree blocks part full: 2,000 bench
messages indexed in 13 commits took 48 MB, and 20 MB once compacted (in 0.2 s). A rebuilt
index is compacted once before it goes live (services.archive.reindex.switch_over). The
live index is not: taking a commit every few seconds, it would split its blocks again.

The copy keeps every document under its document id (DBCOMPACT_NO_RENUMBER: the index's
document ids are the store's message numbers, and by default Xapian would close a gap at
the start) and the index's metadata (the indexer's position in the arrival log). An index
in shards (services.archive.shards) is copied a shard at a time, into the same shards:
Xapian's compact of them opened as one would merge them into a single database, where
ids no longer interleave as the stub says.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Callable

import xapian

from services.archive import shards
from services.archive.archive import Archive
from services.archive.space import is_out_of_space
from services.common.atomic_file import fsync_files_of, fsync_path

log = logging.getLogger("archiver")
KEEP_CURRENT_SECONDS = 0.5  # how often keep_current() runs while Xapian compacts
COMPACTING = "index.compacting"  # where a copy is written, in the archive's data directory
INDEX_DIR_NAME = re.compile(r"index\.(\d+|compacting)")  # Archive.new_index_dir's names


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
    """Bytes of the files of the index in directory `index_dir`, its shards' included."""
    return sum(path.stat().st_size for path in shards.files_of(index_dir))


def remove_strays(archive: Archive) -> None:
    """Remove the index directories of `archive` that are neither live nor being rebuilt:
    a rebuilt index once its compacted copy is live, and what a switch or a compaction cut
    short by a crash left. Only directories named as Archive.new_index_dir names them
    (or COMPACTING) are touched, compared by their resolved paths."""
    keep = {link.resolve() for link in (archive.index_link, archive.next_index_link)
            if link.is_symlink()}
    for path in archive.data_dir.iterdir():
        if INDEX_DIR_NAME.fullmatch(path.name) and path.is_dir() and not path.is_symlink() \
                and path.resolve() not in keep:
            shutil.rmtree(path, ignore_errors=True)
