"""A rebuilt index goes live compacted (services.archive.compaction): the same documents
under the same document ids (the store's message numbers, gaps included), the indexer's
position kept, and less disk; the old index takes mail while the copy is written; a disk
without room for the copy gets the rebuilt index as it is; the index switched from is
retired, kept for the searches that found it just before; a switch cut short leaves
nothing else behind once the next one is done."""
import errno
from email.message import EmailMessage

import pytest
import xapian

from services.archive import compaction, indexer as indexer_module, reindex, retired_index
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import CURSOR_KEY, Indexer
from services.archive.search import search

pytestmark = pytest.mark.integration
MESSAGES = 60


def mail(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = f"sender{n % 5}@example.org", "archive@example.com"
    message["Subject"], message["Message-ID"] = f"quarterly {n}", f"<q{n}@example.org>"
    message["Date"] = f"Tue, {n % 28 + 1:02d} May 2024 10:00:00 +0000"
    message.set_content(f"marker{n} " + " ".join(f"word{n * 7 + k}" for k in range(40)))
    return message.as_bytes()


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """MESSAGES messages, the first five deleted (the store's numbers then start at 6),
    indexed live; a rebuild committed every 3 messages, caught up, not yet switched."""
    archive = Archive(tmp_path / "data", 450)
    digests = [archive.store.put(mail(n), None, "smtp") for n in range(MESSAGES)]
    archive.store.delete(digests[:5])
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 3)
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        with Indexer(archive.store, archive.index_dir(), pool) as live:
            live.catch_up()
        assert reindex.rebuild(archive, pool)
    monkeypatch.undo()
    yield archive
    archive.close()


def documents(index_dir) -> dict[int, bytes]:
    """Each document's data by document id."""
    database = xapian.Database(str(index_dir))
    return {item.docid: database.get_document(item.docid).get_data()
            for item in database.postlist("")}


def test_the_rebuilt_index_goes_live_compacted_with_the_same_documents_ids_and_position(
        archive):
    old, rebuilt = archive.index_dir(), archive.next_index_link.resolve()
    before, size_before = documents(rebuilt), compaction.size_of(rebuilt)
    position = xapian.Database(str(rebuilt)).get_metadata(CURSOR_KEY)
    reindex.switch_over(archive)
    live = archive.index_dir()
    assert live != rebuilt and not rebuilt.exists()  # never live: removed at once
    assert documents(live) == before
    numbers = {archive.store.meta(digest)["number"] for digest in archive.store.digests()}
    assert set(before) == numbers and min(numbers) == 6  # no id moved to close the gap
    assert xapian.Database(str(live)).get_metadata(CURSOR_KEY) == position != b""
    assert compaction.size_of(live) < 0.8 * size_before
    assert len(search(live, "marker33").hits) == 1
    assert sorted(p.name for p in archive.data_dir.glob("index.*") if not p.is_symlink()) \
        == sorted([live.name, old.name])
    assert retired_index.retired_at(old) is not None  # kept a while for searches begun in it


def test_the_old_index_takes_mail_while_the_copy_is_written(archive, monkeypatch):
    """The service's switch: mail stored meanwhile reaches the old index, and the new one
    has it once it follows the log from the copy's position."""
    old = archive.index_dir()
    late = archive.store.put(mail(MESSAGES), None, "smtp")
    compact, seen = compaction.compact, []

    def compact_after_the_old_index_took_the_late_mail(source, target, keep_current):
        keep_current()
        seen.append(len(search(old, "marker60").hits))
        compact(source, target, keep_current)

    monkeypatch.setattr(compaction, "compact", compact_after_the_old_index_took_the_late_mail)
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        reindex.switch_over(archive, live=reindex._live(archive, pool))
        assert seen == [1]
        assert search(archive.index_dir(), "marker60").hits == []  # not in the copy yet
        with Indexer(archive.store, archive.index_dir(), pool) as following:
            following.catch_up()
    assert [hit.digest for hit in search(archive.index_dir(), "marker60").hits] == [late]


def test_without_room_for_the_copy_the_rebuilt_index_goes_live_as_it_is(archive, monkeypatch):
    rebuilt = archive.next_index_link.resolve()

    def no_room(source, target, keep_current):
        target.mkdir()
        (target / "postlist.glass").write_bytes(b"part of a copy")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(compaction, "compact", no_room)
    reindex.switch_over(archive)
    assert archive.index_dir() == rebuilt
    assert not (archive.data_dir / compaction.COMPACTING).exists()
    assert search(rebuilt, "quarterly").total == MESSAGES - 5


def test_another_failure_of_the_copy_is_raised_and_leaves_the_rebuild_to_switch_again(
        archive, monkeypatch):
    old, rebuilt = archive.index_dir(), archive.next_index_link.resolve()
    monkeypatch.setattr(compaction, "compact", lambda *_: (_ for _ in ()).throw(
        xapian.DatabaseCorruptError("a torn block")))
    with pytest.raises(xapian.DatabaseCorruptError):
        reindex.switch_over(archive)
    assert archive.index_dir() == old and archive.next_index_link.resolve() == rebuilt
    monkeypatch.undo()
    reindex.switch_over(archive)
    assert search(archive.index_dir(), "quarterly").total == MESSAGES - 5


def test_what_a_switch_cut_short_left_is_removed_by_the_next_one(archive):
    """A crash after the copy was named and before the switch: the copy stays beside the
    rebuilt index, which is switched to (compacted again) when the service starts again.
    The copy, never live, goes at once; the index switched from stays, retired."""
    old, stray_copy = archive.index_dir(), archive.new_index_dir()
    compaction.compact(archive.next_index_link.resolve(), stray_copy / "x")
    (archive.data_dir / compaction.COMPACTING).mkdir()
    reindex.switch_over(archive)
    assert sorted(p.name for p in archive.data_dir.glob("index.*") if not p.is_symlink()) \
        == sorted([archive.index_dir().name, old.name])


def test_a_relative_data_folder_keeps_the_index_that_went_live(tmp_path, monkeypatch):
    """`--data ./data` on a disk without room for the copy: the rebuilt index goes live
    as it is, and the clean-up after the switch must know it by its resolved path."""
    monkeypatch.chdir(tmp_path)
    archive = Archive("data", 450)
    for n in range(6):
        archive.store.put(mail(n), None, "smtp")
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        assert reindex.rebuild(archive, pool)
    monkeypatch.setattr(compaction, "compact", lambda *_: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    reindex.switch_over(archive)
    assert archive.index_dir().is_dir()
    assert search(archive.index_dir(), "quarterly").total == 6
    archive.close()


def test_the_clean_up_touches_only_index_folders_it_named(archive):
    (archive.data_dir / "index.notes").mkdir()
    (archive.data_dir / "index.12345").mkdir()
    compaction.remove_strays(archive)
    assert (archive.data_dir / "index.notes").is_dir()
    assert not (archive.data_dir / "index.12345").exists()
    assert archive.next_index_link.resolve().is_dir()  # being rebuilt: kept
