"""The indexer begins a commit only with room for it on the index's disk, and never commits
by closing: Xapian 1.4 ends the whole process (std::terminate) when a commit's value
streams meet a full disk, so a full disk must be met before a commit, never inside one.
The disk is a small ext4 of the test's own (tests/integration/small_disk.py)."""
import threading
import time

import pytest
import xapian

from services.archive import shards
from services.archive.archive import Archive
from services.archive.indexer import BATCH_SHARE, COMMIT_DISK_PER_DOCUMENT, Indexer, NoRoomToCommit
from services.archive.search import search
from services.archive.space import FULL_BELOW_BYTES, disk_space, is_out_of_space
from services.archive.store import Envelope
from services.supervisor.indexing import POLL_SECONDS, RETRY_SECONDS, Pause
from tests.integration.small_disk import SmallDisk

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MiB = 1024 * 1024
COUNT = 50


def messages(start: int, count: int) -> list[tuple]:
    """put_many items: short messages, some 1 KB of text each."""
    return [(f"From: a@example.org\r\nTo: b@example.net\r\nSubject: room {n}\r\n"
             f"Message-ID: <room{n}@example.org>\r\n\r\nroomy{n} ".encode() + b"words " * 170,
             Envelope(None, ["b@example.net"]), "test", None)
            for n in range(start, start + count)]


def revisions(index_dir) -> list[int]:
    """Each shard's revision."""
    revisions = []
    for path in shards.shard_dirs(index_dir):
        database = xapian.Database(str(path))
        revisions.append(database.get_revision())
        database.close()
    return revisions


@pytest.fixture
def disk(tmp_path):
    with SmallDisk(tmp_path / "disk", 40) as small:
        yield small


def test_a_commit_without_room_for_it_is_not_begun_and_goes_on_once_there_is(disk):
    archive = Archive(disk.mount_point / "data")
    archive.store.put_many(messages(0, COUNT))
    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool)
        before = revisions(archive.index_dir())
        # Less than even one message's commit without its text is taken to need.
        disk.fill(leave_bytes=FULL_BELOW_BYTES - 16 * COMMIT_DISK_PER_DOCUMENT)
        with pytest.raises(NoRoomToCommit) as refused:
            indexer.catch_up()
        assert is_out_of_space(refused.value, archive.index_dir())
        assert str(refused.value).startswith("the index's disk has ")
        assert "its next commit may take up to " in str(refused.value)
        assert not refused.value.fits_now()
        indexer.abandon_writes()
        assert revisions(archive.index_dir()) == before  # nothing of it written
        disk.release()
        assert refused.value.fits_now()
        indexer.reopen()
        assert indexer.catch_up() == COUNT
        indexer.close()
    assert search(archive.index_dir(), "roomy7").total == 1
    archive.close()


def test_near_a_full_disk_a_batch_is_committed_in_smaller_commits_that_fit(disk):
    archive = Archive(disk.mount_point / "data")
    archive.store.put_many(messages(0, COUNT))
    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool)
        first = revisions(archive.index_dir())[0]
        # Room for a commit of some of the batch, not of all of it at once.
        disk.fill(leave_bytes=FULL_BELOW_BYTES + 10 * COMMIT_DISK_PER_DOCUMENT * 2)
        try:
            indexer.catch_up()
        except NoRoomToCommit:  # the room ran out before the batch's end: the rest waits
            indexer.abandon_writes()
            indexer.reopen()
        assert revisions(archive.index_dir())[0] - first >= 2  # commits of parts of it
        assert 0 < indexer.position()
        disk.release()
        indexer.catch_up()
        assert indexer.document_count() == COUNT
        indexer.close()
    assert search(archive.index_dir(), "roomy49").total == 1
    archive.close()


def long_message() -> tuple:
    """A put_many item of some 90 KB of distinct words: its whole commit is taken to need
    about 4 MiB, without its text 1 MiB and 8 KiB."""
    body = " ".join(f"wordy{n}" for n in range(8000)).encode()
    return (b"From: a@example.org\r\nSubject: long\r\n\r\nlongmail " + body,
            Envelope(None, ["b@example.net"]), "test", None)


@pytest.mark.parametrize("low_below_bytes, waits", [(8 * MiB, True), (MiB // 2, False)])
def test_only_on_a_disk_that_is_not_low_is_a_message_that_does_not_fit_indexed_without_text(
        disk, low_below_bytes, waits):
    """A message whose commit does not fit alone is indexed without its text so that one
    long message cannot hold up the rest; but on a disk below the model's low threshold
    it is the disk that is short: every message would lose its text there (a service
    found 181 of 4,315 so on a 3 MiB index disk), so indexing waits for room instead."""
    archive = Archive(disk.mount_point / "data")
    archive.store.put_many([long_message()])
    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool,
                          low_below_bytes=low_below_bytes)
        # Room for its document without its text (the margin and 8 KiB), not for all of it.
        disk.fill(leave_bytes=FULL_BELOW_BYTES + 256 * 1024)
        if waits:
            with pytest.raises(NoRoomToCommit) as refused:
                indexer.catch_up()
            indexer.abandon_writes()
            assert indexer.document_count() == 0
            disk.release()
            assert refused.value.fits_now()
            indexer.reopen()
        assert indexer.catch_up() == 1
        indexer.close()
    assert search(archive.index_dir(), "longmail").total == int(waits)
    assert search(archive.index_dir(), "has:extraction-failure").total == int(not waits)
    archive.close()


def test_a_wait_for_room_on_a_low_disk_ends_once_the_disk_is_not_low(disk):
    """Freed up to the threshold, though not up to the whole commit: it is begun (without
    the message's text), so the pause must not wait for the whole (RETRY_SECONDS)."""
    archive = Archive(disk.mount_point / "data")
    archive.store.put_many([long_message()])
    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool, low_below_bytes=2 * MiB)
        disk.fill(leave_bytes=3 * MiB)
        disk.fill(leave_bytes=FULL_BELOW_BYTES + 256 * 1024)
        with pytest.raises(NoRoomToCommit) as refused:
            indexer.catch_up()
        indexer.abandon_writes()
        assert not refused.value.fits_now()
        disk.ballast.pop().unlink()  # about 3 MiB free: not low, short of the whole
        assert refused.value.fits_now()
        indexer.reopen()
        assert indexer.catch_up() == 1
        indexer.close()
    assert search(archive.index_dir(), "has:extraction-failure").total == 1
    archive.close()


def test_the_pause_after_a_commit_not_begun_lasts_until_it_fits(disk):
    """The disk is not low (its threshold is the model's), yet the commit does not fit: the
    pause waits for room, rather than trying again at every poll."""
    path = disk.mount_point
    disk.fill(leave_bytes=4 * MiB)
    refused = NoRoomToCommit(path, 8 * MiB, disk.free_bytes())
    stop = threading.Event()
    pause = Pause(lambda: [disk_space("data_disk", "data disk", path, MiB)], stop)
    assert pause.disks()[0].state == "ok"
    waiting = threading.Thread(target=pause.wait, args=(refused,))
    waiting.start()
    try:
        time.sleep(3 * POLL_SECONDS)
        assert waiting.is_alive()
        disk.release()
        waiting.join(timeout=3 * POLL_SECONDS)
        assert not waiting.is_alive()
    finally:
        stop.set()
        waiting.join()
    assert RETRY_SECONDS > 6 * POLL_SECONDS  # so it ended for the room, not the retry


def test_each_pause_first_frees_what_room_it_can(disk):
    """The index folders retired long enough go as each pause begins (the service passes
    compaction.remove_strays), not only once indexing has caught up: a pause for room
    must not wait while a retired index holds it."""
    path = disk.mount_point
    ballast = path / "retired-index"
    ballast.write_bytes(b"x" * 8 * MiB)
    disk.fill(leave_bytes=4 * MiB)
    refused = NoRoomToCommit(path, 8 * MiB, disk.free_bytes())
    pause = Pause(lambda: [disk_space("data_disk", "data disk", path, MiB)], threading.Event(),
                  tidy=lambda: ballast.unlink())
    started = time.monotonic()
    pause.wait(refused)  # freed at once: over at its first poll
    assert not ballast.exists() and time.monotonic() - started < RETRY_SECONDS / 2


def test_closing_drops_what_was_not_committed(tmp_path):
    """Xapian's own close() commits what is pending; the indexer's does not."""
    archive = Archive(tmp_path)
    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool, shard_count=1)
        document = xapian.Document()
        document.add_term("Qpending")
        indexer.shards[0].replace_document(7, document)
        before = revisions(archive.index_dir())
        indexer.close()
    assert revisions(archive.index_dir()) == before
    reader = xapian.Database(str(shards.shard_dirs(archive.index_dir())[0]))
    assert reader.get_termfreq("Qpending") == 0
    archive.close()


@pytest.mark.parametrize("model", [150, 450, 1050])
def test_every_indexer_the_archive_makes_keeps_the_models_limits(tmp_path, model):
    """Import, reindex and the indexer service all get their Indexer from
    Archive.indexer: the model's indexing memory and low-disk threshold, whatever else."""
    archive = Archive(tmp_path / "data", model=model)
    archive.store.put_many(messages(0, 2))
    with archive.extraction_pool() as pool:
        for index_dir, options in ((None, {}), (tmp_path / "next", {"live": False,
                                                                   "synced": False})):
            with archive.indexer(pool, index_dir, **options) as indexer:
                assert indexer.low_below_bytes == archive.profile.intake.min_free_disk_bytes
                assert indexer.batch_bytes == archive.profile.indexing.memory_bytes // BATCH_SHARE
                assert indexer.catch_up() == 2
    assert search(archive.index_dir(), "roomy1").total == 1
