"""The index's size on disk, as status and /metrics read it (live_compaction.status,
compaction.size_of), while a real Xapian writer commits to the same shard: each commit
writes the shard's version file as v.tmp and renames it, so a walk lists files that are
gone when their size is asked. On an appliance this made /metrics answer 500 while the
indexer caught up with a mirror backlog (the VM tier's hard power-off test)."""
import threading
import time

import xapian

from services.archive import compaction, live_compaction
from services.archive.archive import Archive

OVERLAPS = 200  # commits made and walks done while both go on, at least
OVERLAP_SECONDS = 3.0  # and for this long at least: the longer, the likelier the race
TIMEOUT_SECONDS = 120.0


def committing(shard_dir, stop: threading.Event, commits: list[int]) -> None:
    """Add a document and commit, again and again, until `stop` (no fsync: more commits)."""
    database = xapian.WritableDatabase(str(shard_dir), xapian.DB_CREATE_OR_OPEN | xapian.DB_NO_SYNC)
    try:
        while not stop.is_set():
            document = xapian.Document()
            document.add_term(f"Q{len(commits)}")
            database.add_document(document)
            database.commit()
            commits.append(1)
    finally:
        database.close()


def walk_while_committing(index_dir, look) -> tuple[int, list]:
    """look() again and again while a writer commits to index_dir/shard0 (made first, so
    there is always something to measure), for OVERLAP_SECONDS and until each has been
    done OVERLAPS times: (commits made, what look() returned). The counts are what the
    tests need: on a busy machine the writer thread may get little time."""
    xapian.WritableDatabase(str(index_dir / "shard0"), xapian.DB_CREATE_OR_OPEN).close()
    stop, commits, seen = threading.Event(), [], []
    writer = threading.Thread(target=committing, args=(index_dir / "shard0", stop, commits))
    writer.start()
    try:
        started = time.monotonic()
        while (len(commits) < OVERLAPS or len(seen) < OVERLAPS
               or time.monotonic() < started + OVERLAP_SECONDS) \
                and time.monotonic() < started + TIMEOUT_SECONDS:
            seen.append(look())
    finally:
        stop.set()
        writer.join()
    return len(commits), seen


def test_the_index_size_is_read_while_a_writer_commits(tmp_path):
    index_dir = tmp_path / "index.1"
    index_dir.mkdir()
    commits, sizes = walk_while_committing(index_dir, lambda: compaction.size_of(index_dir))
    assert commits >= OVERLAPS and len(sizes) >= OVERLAPS  # the version file was replaced
    assert all(size > 0 for size in sizes)                  # that often during the walks
    assert compaction.size_of(index_dir) == sum(
        path.stat().st_size for path in (index_dir / "shard0").iterdir())


def test_the_live_index_status_is_read_while_the_index_commits(tmp_path):
    archive = Archive(tmp_path / "data")
    try:
        live = archive.index_dir()  # makes the live index and its link
        live.mkdir(parents=True, exist_ok=True)
        commits, statuses = walk_while_committing(live, lambda: live_compaction.status(archive))
        assert commits >= OVERLAPS and len(statuses) >= OVERLAPS
        assert all(status.index_bytes > 0 for status in statuses)
    finally:
        archive.store.close()


def test_an_index_directory_that_is_gone_has_no_size(tmp_path):
    assert compaction.size_of(tmp_path / "index.retired") == 0
