"""Rebuilding the index from the store, beside the live one, then switching over.

The index is derived data. When this code's schema (index.SCHEMA_VERSION) is not the live
index's (older; or newer, after a downgrade), the indexer service builds a new index in DATA/index.N (linked from
DATA/index.next) while the old one keeps answering searches and keeps taking new mail;
once the new one has caught up with the arrival log, DATA/index points to it and the old
one is retired: kept a while for searches that found it just before, then removed
(services.archive.retired_index). An interrupted rebuild resumes where its last commit left it.
`archiver reindex` runs the same rebuild in the foreground.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable, Protocol

import xapian

from services.archive import compaction, unsynced
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.index import SCHEMA_VERSION, schema_version
from services.archive.indexer import Indexer
from services.archive.space import is_out_of_space

log = logging.getLogger("archiver")


def needs_rebuild(archive: Archive) -> bool:
    """True when the live index is of another schema, or a rebuild was left unfinished.
    A newer one too: after a downgrade (flash --allow-downgrade) this code cannot know what
    that schema left out that it looks for (schema 4 has no unprefixed body words)."""
    if archive.next_index_link.is_symlink():
        return True
    try:
        database = xapian.Database(str(archive.index_dir()))
    except xapian.DatabaseOpeningError:
        return False  # nothing indexed yet: the indexer creates it in this schema
    version = schema_version(database)
    database.close()
    return version is not None and version != SCHEMA_VERSION


def rebuild(archive: Archive, pool: ExtractionPool, stop: Callable[[], bool] = lambda: False,
            progress: Callable[[int], None] | None = None, live: Indexer | None = None) -> bool:
    """Build the next index until it has caught up with the arrival log; True then, False
    when `stop()` said so first. `live`: the live index's writer, kept current between
    batches (the service); None when nothing else may write (the CLI holds the lock).
    `progress(n)`: n more arrival-log entries are in the new index. A write that fails
    (a full disk: services.archive.space.is_out_of_space) drops what it left unsaved;
    the next rebuild goes on from the last commit."""
    with _building(archive, pool) as building:
        try:
            return _catch_up(building, stop, progress, live)
        except BaseException:
            building.abandon_writes()
            raise


def _building(archive: Archive, pool: ExtractionPool) -> Indexer:
    """The writer of the index being rebuilt."""
    # Old archives get the current reading of their headers as they are indexed. Nobody
    # searches it before the switch: its commits skip fsync (services.archive.unsynced),
    # and closing it writes it to disk.
    return archive.indexer(pool, next_index_dir(archive), live=False, synced=False)


def _catch_up(building: Indexer, stop: Callable[[], bool],
              progress: Callable[[int], None] | None, live: Indexer | None) -> bool:
    def between() -> bool:
        if live is not None:
            live.catch_up()
        return stop()

    if progress is not None and building.position():
        progress(building.position())  # what an interrupted rebuild had done
    building.catch_up(progress, between)
    return not stop()


class Pause(Protocol):
    """How the service waits while a disk is full (services.supervisor.indexing.Pause)."""

    def wait(self, exc: Exception) -> None: ...

    def resumed(self, count: int = 0) -> None: ...


def rebuild_pausing(archive: Archive, pool: ExtractionPool, stop: Callable[[], bool],
                    pause: Pause) -> bool:
    """rebuild() beside the live index (the service), waiting in `pause` whenever a write
    runs out of room and then going on from the last commits; True once caught up, False
    when stopped first. Any other error is raised. The writers stay open across pauses,
    so what they committed and the store has yet to record is kept."""
    writers: dict[str, Indexer] = {}
    try:
        while True:
            try:
                if "live" not in writers:
                    writers["live"] = _live(archive, pool)
                if "next" not in writers:
                    writers["next"] = _building(archive, pool)
                for writer in writers.values():
                    writer.reopen()
                    writer.record_progress()
                finished = _catch_up(writers["next"], stop, pause.resumed, writers["live"])
                pause.resumed()
                return finished
            except Exception as exc:
                if not is_out_of_space(exc, archive.data_dir):
                    raise
                for writer in writers.values():
                    writer.abandon_writes()
                pause.wait(exc)
                if stop():
                    return False
    finally:
        for writer in writers.values():
            writer.close()


def _live(archive: Archive, pool: ExtractionPool) -> Indexer:
    return archive.indexer(pool)


def switch_over(archive: Archive, live: Indexer | None = None) -> None:
    """Make the rebuilt index live (its writer closed, so it is on disk), compacted
    (services.archive.compaction; as it is when the disk has no room for the copy); the
    old one is retired (Archive.swap_index: compaction.remove_strays removes it later),
    and the rebuilt one, when its copy went live, and any index directory an interrupted
    switch left are removed.
    `live`: the old live index's writer (the service), which takes new mail while the
    copy is written and is closed before the switch. Raises RuntimeError for an index not
    yet written to disk."""
    rebuilt = archive.next_index_link.resolve()
    if unsynced.is_marked(rebuilt):
        raise RuntimeError(f"the rebuilt index {rebuilt} is not on disk yet: close its writer")
    before = compaction.size_of(rebuilt)
    try:
        compacted = compaction.copy(archive, rebuilt, _keeping_current(live)) or rebuilt
    finally:
        if live is not None:
            live.close()
    if compacted != rebuilt:
        compaction.record(archive.store, compacted, before)
    archive.swap_index(compacted)
    archive.next_index_link.unlink(missing_ok=True)
    compaction.remove_strays(archive)


def next_index_dir(archive: Archive) -> Path:
    """The index being rebuilt: the unfinished one of this schema, or a new one (also
    when the system went down while the unfinished one was not on disk)."""
    link = archive.next_index_link
    if link.is_symlink():
        existing = link.resolve()
        if unsynced.lost(existing):
            log.warning("the index being rebuilt, %s, was not on disk when the system went "
                        "down: rebuilding it from the start", existing)
        elif existing.is_dir() and _schema_of(existing) in (None, SCHEMA_VERSION):
            return existing
        link.unlink()
        shutil.rmtree(existing, ignore_errors=True)
    fresh = archive.new_index_dir()
    temporary = archive.data_dir / "index.next-new"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(fresh.name)
    temporary.replace(link)
    return fresh


def progress_of(archive: Archive) -> dict | None:
    """{"done": messages in the index being rebuilt, "total": messages stored}, or None
    when no rebuild is under way."""
    link = archive.next_index_link
    if not link.is_symlink():
        return None
    try:
        done = xapian.Database(str(link.resolve())).get_doccount()
    except xapian.DatabaseOpeningError:
        done = 0
    return {"done": done, "total": archive.store.counters()["messages"]}


def serve(archive: Archive, pool: ExtractionPool, stop: Callable[[], bool],
          follow: Callable[[Indexer], None] | None = None, pause: Pause | None = None) -> None:
    """The indexer service: rebuild first when needed (old index answering meanwhile),
    then follow the arrival log until stopped: `follow(indexer)` does that (the service's
    pauses while a disk is full, services.supervisor.indexing), by default Indexer.follow.
    `pause`: how the rebuild waits while a disk is full; None: such an error is raised."""
    if needs_rebuild(archive):
        log.info("rebuilding the index of %s for schema %d in the background",
                 archive.data_dir, SCHEMA_VERSION)
        if pause is not None:
            finished = rebuild_pausing(archive, pool, stop, pause)
        else:
            with _live(archive, pool) as live:
                finished = rebuild(archive, pool, stop, live=live)
        if not finished:
            return
        switch_over(archive, live=_live(archive, pool))
        log.info("the rebuilt index of %s is live", archive.data_dir)
    with _live(archive, pool) as indexer:
        log.info("indexer following %s", archive.data_dir)
        if follow is None:
            indexer.follow(stop=stop)
        else:
            follow(indexer)


def _keeping_current(live: Indexer | None) -> Callable[[], None]:
    """What keeps the old live index taking new mail while the rebuilt one is compacted;
    once its disk is full, it stops (the rebuilt index takes that mail once it is live)."""
    full = live is None

    def keep_current() -> None:
        nonlocal full
        if full:
            return
        try:
            live.catch_up()
        except Exception as exc:
            if not is_out_of_space(exc, live.index_dir):
                raise
            live.abandon_writes()
            full = True

    return keep_current


def _schema_of(index_dir: Path) -> int | None:
    try:
        database = xapian.Database(str(index_dir))
    except xapian.DatabaseOpeningError:
        return None
    return schema_version(database)
