"""An index switched from is retired, not removed (services.archive.retired_index), on a
real store and index: a search that resolved the index link before a rebuild's switch
still answers from it; compaction.remove_strays removes it only once it has been retired
for RETIRED_SECONDS, removes what was never made live at once, and never the live or the
next index; the indexer service's clean-up removes it each time the indexer has caught
up; an export (search_snapshot) taken before a switch keeps the old index until it has
listed every match, and one read again once it is gone fails rather than list nothing."""
import errno
import os
import time

import pytest

from services.archive import compaction, index_walk, reindex, retired_index
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.live_compaction import LiveCompaction
from services.archive.search import search
from services.archive.search_snapshot import IndexGone, take
from tests.integration.archive.export_changes import bulk, in_order, index_now

pytestmark = pytest.mark.integration
COUNT = 120
RETIRED = retired_index.RETIRED_SECONDS


@pytest.fixture
def archive(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    archive.store.put_many((raw, None, "import") for raw in bulk(COUNT))
    index_now(archive.store, archive.index_dir())
    yield archive
    archive.close()


def index_dirs(archive: Archive) -> list[str]:
    return sorted(path.name for path in archive.data_dir.glob("index.*")
                  if path.is_dir() and not path.is_symlink())


def compact(archive: Archive):
    """Switch to a compacted copy of the live index, as `archiver compact` does; returns
    the index switched from."""
    live = archive.index_dir()
    copied = compaction.copy(archive, live)
    assert archive.swap_index(copied) == live
    return live


def test_after_a_rebuild_switch_the_old_index_stays_and_a_search_resolved_before_answers(
        archive):
    resolved = archive.index_dir()  # a search resolved the link, then the switch came
    expected = in_order(resolved, "subject:bulk")
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        assert reindex.rebuild(archive, pool)
    reindex.switch_over(archive)
    assert archive.index_dir() != resolved
    assert in_order(resolved, "subject:bulk") == expected and len(expected) == COUNT
    at = retired_index.retired_at(resolved)
    assert at is not None and abs(at - time.time()) < 30
    assert index_dirs(archive) == sorted([archive.index_dir().name, resolved.name])


def test_a_retired_index_is_removed_once_retired_for_retired_seconds(archive):
    old = compact(archive)
    at = retired_index.retired_at(old)
    assert compaction.remove_strays(archive, now=at + RETIRED - 1) == [] and old.is_dir()
    assert compaction.remove_strays(archive, now=at + RETIRED) == [old]
    assert not old.exists() and index_dirs(archive) == [archive.index_dir().name]
    assert search(archive.index_dir(), "subject:bulk").total == COUNT


def test_a_clock_set_back_by_retired_seconds_counts_as_that_time_passed(archive):
    old = compact(archive)
    at = retired_index.retired_at(old)
    assert compaction.remove_strays(archive, now=at - RETIRED + 1) == []
    assert compaction.remove_strays(archive, now=at - RETIRED) == [old]


def test_a_stray_never_made_live_is_removed_at_once(archive):
    """What a crash left: a copy named but never switched to, a copy half written, a
    folder with a mark that cannot be read (not a number, not finite, no regular file:
    a FIFO is not waited on)."""
    copy = compaction.copy(archive, archive.index_dir())
    half = archive.data_dir / compaction.COMPACTING
    half.mkdir()
    unreadable = archive.new_index_dir()
    (unreadable / retired_index.MARK).write_text("not a time\n")
    endless = archive.new_index_dir()
    (endless / retired_index.MARK).write_text("nan\n")
    fifo = archive.new_index_dir()
    os.mkfifo(fifo / retired_index.MARK)
    assert compaction.remove_strays(archive) == sorted([copy, half, unreadable, endless, fifo])
    assert index_dirs(archive) == [archive.index_dir().name]


def test_the_live_and_the_next_index_are_never_removed_whatever_their_marks(archive):
    live = archive.index_dir()
    next_index = reindex.next_index_dir(archive)
    for index_dir in (live, next_index):
        retired_index.mark(index_dir, time.time() - 10 * RETIRED)
    assert compaction.remove_strays(archive) == []
    assert compaction.remove_strays(archive, now=time.time() + 10 * RETIRED) == []
    assert live.is_dir() and next_index.is_dir()
    assert search(live, "subject:bulk").total == COUNT


def test_a_switch_whose_mark_cannot_be_written_still_switches(archive, monkeypatch):
    """A full disk: the switch is done and not undone; the old index, unmarked, goes at
    the next clean-up as a crash's leftover would."""
    def no_room(index_dir, now=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(retired_index, "mark", no_room)
    old = compact(archive)
    assert archive.index_dir() != old and retired_index.retired_at(old) is None
    assert compaction.remove_strays(archive) == [old]


def test_the_indexer_service_removes_a_retired_index_each_time_it_has_caught_up(archive):
    """LiveCompaction.caught_up is what the service runs each time the indexer has caught
    up (services.supervisor.runtime): an index `archiver compact` retired while the
    service was stopped goes once retired long enough, not only at the service's start."""
    old = compact(archive)
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool) as indexer:
        service = LiveCompaction(archive, indexer)
        assert not service.caught_up()  # nothing due: the index is small
        assert old.is_dir()
        retired_index.mark(old, time.time() - RETIRED)
        assert not service.caught_up()
        assert not old.exists() and index_dirs(archive) == [archive.index_dir().name]


def test_an_export_taken_before_a_switch_keeps_its_index_and_lists_every_match(
        archive, monkeypatch):
    """The snapshot holds the old index (services.archive.index_hold) past RETIRED_SECONDS
    until its walk ends; the index goes at the next clean-up, and a walk after that fails
    rather than list nothing."""
    monkeypatch.setattr(index_walk, "SPAN", 25)  # several chunks of digests
    index_dir = archive.index_dir()
    expected = in_order(index_dir, "subject:bulk")
    snapshot = take(index_dir, "subject:bulk")
    assert compact(archive) == index_dir
    assert compaction.remove_strays(archive, now=time.time() + RETIRED) == []
    assert [digest for digest, _, _ in snapshot.messages(archive.store)] == expected
    assert compaction.remove_strays(archive, now=time.time() + RETIRED) == [index_dir]
    with pytest.raises(IndexGone, match="is gone"):  # read again: never an empty list
        list(snapshot.digests())
