"""The indexer service's writer compacts the live index by itself once it has grown enough
(services.archive.live_compaction), with a real store and real Xapian in this process: the
same searches answer the same from a smaller index; mail stored while Xapian writes the
copy is searchable once the copy is live; nothing is compacted while a backlog is
pending; the old index is kept until it has been retired for RETIRED_SECONDS, then
removed the next time the indexer has caught up; a walk of the index begun before the
switch reads on after the old index is gone; a disk that fills while the copy is written (a real, small ext4) leaves the index
as it was and indexing going on."""
import random
from email.message import EmailMessage

import pytest

from firmware.models import load_models
from services.archive import (compaction, index_walk, indexer as indexer_module,
                              live_compaction, retired_index)
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.search import search
from tests.integration.processes import models_file
from tests.integration.small_disk import SmallDisk

pytestmark = pytest.mark.integration
MESSAGES = 400  # 200 words each of no other message: some 13 MB of index, 4 compacted
QUERIES = ["marker7", "sender3", "compaction AND marker123", "from:sender1@example.org"]


def mail(n: int, to: str = "archive@example.com", id_prefix: str = "live",
         crlf: bool = False) -> bytes:
    """Message n: 200 random words after "marker<n>", so indexes grow as real ones do."""
    rng = random.Random(n)
    message = EmailMessage()
    message["From"], message["To"] = f"sender{n % 5}@example.org", to
    message["Subject"], message["Message-ID"] = f"compaction {n}", f"<{id_prefix}{n}@example.org>"
    message.set_content(f"marker{n} " + " ".join(f"w{rng.randrange(10**9)}" for _ in range(200)))
    raw = message.as_bytes()
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def answers(index_dir) -> dict[str, list[str]]:
    return {query: sorted(hit.digest for hit in search(index_dir, query, limit=10_000).hits)
            for query in QUERIES}


@pytest.fixture
def pool():
    with ExtractionPool(load_models().get(450).attachment_text_bytes) as pool:
        yield pool


def live_writer(archive: Archive, pool) -> Indexer:
    """The indexer service's writer, with the 150's and 350's memory (48 MiB: a commit of
    768 KiB of text); the fewer, larger commits of a larger model grow the same MESSAGES
    into a smaller index, under MIN_GROWTH_BYTES."""
    return Indexer(archive.store, archive.index_dir(), pool,
                   memory_bytes=load_models().get(350).indexing.memory_bytes)


def store(archive: Archive, numbers) -> list[str]:
    return [archive.store.put(mail(n), None, "smtp") for n in numbers]


def test_the_live_index_is_compacted_once_it_has_grown_enough(tmp_path, pool):
    archive = Archive(tmp_path / "data", 450)
    with live_writer(archive, pool) as indexer:
        compactor = live_compaction.LiveCompaction(archive, indexer)
        store(archive, range(20))
        indexer.catch_up()
        small = archive.index_dir()
        assert not compactor.caught_up() and archive.index_dir() == small  # not worth it yet

        store(archive, range(20, MESSAGES))
        indexer.catch_up()
        old = archive.index_dir()
        before, expected = compaction.size_of(old), answers(old)
        assert compactor.caught_up()
        assert old.is_dir()  # kept a while for searches that found it just before the switch
        assert answers(old) == expected
        live = archive.index_dir()
        assert live != old and indexer.index_dir == live
        assert compaction.size_of(live) < 0.6 * before
        assert answers(live) == expected
        record = compaction.Record.load(archive.store)
        assert (record.index, record.compactions, record.messages) == (live.name, 1, MESSAGES)
        assert (record.bytes_before, record.bytes_after) == (before, compaction.size_of(live))

        assert not compactor.caught_up() and archive.index_dir() == live  # not due again
        assert old.is_dir()  # not retired for RETIRED_SECONDS yet
        retired_index.mark(old, retired_index.retired_at(old) - retired_index.RETIRED_SECONDS)
        assert not compactor.caught_up()  # each time it has caught up, not only the first
        assert sorted(p.name for p in archive.data_dir.glob("index.*")
                      if not p.is_symlink()) == [live.name]

        (late,) = store(archive, [MESSAGES])  # the writer goes on in the compacted index
        indexer.catch_up()
        assert [hit.digest for hit in search(archive.index_dir(), f"marker{MESSAGES}").hits] \
            == [late]
    archive.close()


def test_mail_stored_while_the_copy_is_written_is_searchable_once_it_is_live(
        tmp_path, pool, monkeypatch):
    archive = Archive(tmp_path / "data", 450)
    store(archive, range(MESSAGES))
    real_compact, during = compaction.compact, []

    def mail_arrives_while_xapian_compacts(source, target, keep_current):
        during.extend(store(archive, range(MESSAGES, MESSAGES + 3)))
        # the old index still answers meanwhile
        assert search(archive.index_dir(), "compaction").total == MESSAGES
        real_compact(source, target, keep_current)

    monkeypatch.setattr(compaction, "compact", mail_arrives_while_xapian_compacts)
    with live_writer(archive, pool) as indexer:
        indexer.catch_up()
        position = indexer.position()
        assert live_compaction.LiveCompaction(archive, indexer).caught_up()
        assert indexer.position() == position  # the copy's: the late mail is still to do
        indexer.catch_up()
    live = archive.index_dir()
    for n, digest in zip(range(MESSAGES, MESSAGES + 3), during):
        assert [hit.digest for hit in search(live, f"marker{n}").hits] == [digest]
    assert search(live, "compaction").total == MESSAGES + 3
    archive.close()


def test_nothing_is_compacted_while_a_backlog_is_pending(tmp_path, pool, monkeypatch):
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 50)  # a backlog: a full batch
    archive = Archive(tmp_path / "data", 450)
    store(archive, range(MESSAGES))
    with live_writer(archive, pool) as indexer:
        compactor = live_compaction.LiveCompaction(archive, indexer)
        indexer.catch_up()  # big enough already, and then a backlog
        store(archive, range(MESSAGES, MESSAGES + 50))
        live = archive.index_dir()
        assert compaction.size_of(live) > live_compaction.MIN_GROWTH_BYTES
        assert archive.store.log_end("arrival") - indexer.position() == 50
        assert not compactor.caught_up()
        assert archive.index_dir() == live and compaction.Record.load(archive.store).compactions == 0
        indexer.catch_up()
        assert compactor.caught_up()
    assert compaction.Record.load(archive.store).messages == MESSAGES + 50
    archive.close()


def test_a_walk_begun_before_the_switch_keeps_the_old_index_until_it_ends(
        tmp_path, pool, monkeypatch):
    """An export or a retention run walks the index span by span, moving to the newest
    revision before each: the old index, once switched from, is held by the walk
    (services.archive.index_hold) and read to its last revision; the clean-up after the
    walk removes it."""
    monkeypatch.setattr(index_walk, "SPAN", 50)
    monkeypatch.setattr(retired_index, "RETIRED_SECONDS", 0.0)
    archive = Archive(tmp_path / "data", 450)
    store(archive, range(MESSAGES))
    with live_writer(archive, pool) as indexer:
        indexer.catch_up()
        old = archive.index_dir()
        walk = index_walk.read_spans(old, lambda database, ids: [
            database.get_document(posting.docid).get_data() for posting in database.postlist("")
            if posting.docid in ids])
        first = next(walk)
        compactor = live_compaction.LiveCompaction(archive, indexer)
        assert compactor.caught_up()
        assert not compactor.caught_up() and old.is_dir()  # the clean-up left it: held
        rest = [document for span in walk for document in span]
        assert not compactor.caught_up() and not old.exists()  # let go: removed
    assert len(first) + len(rest) == MESSAGES
    archive.close()


@pytest.mark.slow
def test_a_disk_that_fills_while_the_copy_is_written_leaves_the_index_as_it_was(
        tmp_path, pool, monkeypatch):
    monkeypatch.setenv("ARCHIVER_MODELS", str(models_file(tmp_path, intake={
        "min_free_disk_mb": 1})))
    real_compact = compaction.compact
    with SmallDisk(tmp_path / "disk", 64) as disk:
        archive = Archive(disk.mount_point / "data", 450)
        store(archive, range(MESSAGES))

        def the_disk_fills_meanwhile(source, target, keep_current):
            disk.fill()  # e.g. a large import beside it
            real_compact(source, target, keep_current)

        monkeypatch.setattr(compaction, "compact", the_disk_fills_meanwhile)
        with live_writer(archive, pool) as indexer:
            indexer.catch_up()
            live, expected = archive.index_dir(), answers(archive.index_dir())
            compactor = live_compaction.LiveCompaction(archive, indexer)
            assert not compactor.caught_up()
            assert archive.index_dir() == live and answers(live) == expected
            assert not (archive.data_dir / compaction.COMPACTING).exists()
            record = compaction.Record.load(archive.store)
            assert record.compactions == 0 and record.skipped_index == live.name
            assert record.skipped_reason.startswith("no room for a copy of the index: data disk")
            disk.release()
            assert not compactor.caught_up()  # not again before the index has grown
            (late,) = store(archive, [MESSAGES])
            indexer.catch_up()  # indexing goes on
            assert [hit.digest for hit in search(live, f"marker{MESSAGES}").hits] == [late]
        archive.close()
