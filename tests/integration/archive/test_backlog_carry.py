"""A backlog's commits are full: the small run of messages a batch ends with (less text
than a commit takes) is carried into the next batch's first commit instead of being a
commit of its own, which cost much the same as a full one. What was carried is indexed
as the later batch has it: a message that arrived again meanwhile with its later
metadata, one deleted meanwhile not at all, one deleted and stored again indexed; the last
batch's rest is committed at the end, and the position committed with each commit is that
of its last message. A rest is carried once: batches of little text are not held back
until the log ends (review)."""
from email.message import EmailMessage

import xapian
import pytest

from services.archive import indexer as indexer_module
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.index import id_term
from services.archive.indexer import (CURSOR_KEY, MEMORY_PER_TEXT_BYTE, BATCH_SHARE, Batch,
                                      Indexer, _joined, _parts, _text_size, status)
from services.archive.search import search
from tests.integration.archive.test_indexer_memory import WORDS_PER_MESSAGE, mail

pytestmark = pytest.mark.integration
TEXT = len(" ".join(f"word0x{k}" for k in range(WORDS_PER_MESSAGE)))
# Memory for commits of 4 messages of text: mail(n)'s text is TEXT for n < 10, about
# 1.1 TEXT after, and a commit ends before a message that would take it past its share.
FOUR_MESSAGES = int(4.7 * TEXT * MEMORY_PER_TEXT_BYTE)


def test_only_the_last_commit_of_a_backlog_is_less_than_full(tmp_path, monkeypatch):
    archive = Archive(tmp_path / "data", 450)
    count = 60
    for n in range(count):
        archive.store.put(mail(n))
    committed = []  # (text bytes, log position) of each commit
    commit = Indexer._commit
    monkeypatch.setattr(Indexer, "_commit", lambda self, part, *options: (
        committed.append((_text_size(part), part.last_seq)), commit(self, part, *options)))
    # A commit takes 4 messages of text, a batch 33 or 34 messages of bytes (memory /
    # BATCH_SHARE): every batch ends in a rest of 1 or 2, which used to be a commit of
    # its own.
    memory = FOUR_MESSAGES
    assert int(memory / BATCH_SHARE / len(mail(count - 1))) % 4 != 0
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool, memory_bytes=memory) as indexer:
        indexer.catch_up()
        limit = indexer.commit_text_bytes
    assert all(size <= limit < size + TEXT for size, _ in committed[:-1]), committed
    assert len(committed) == count // 4  # as few as the text allows (it made 16 before)
    assert [seq for _, seq in committed] == sorted(seq for _, seq in committed)
    database = xapian.Database(str(archive.index_dir()))
    assert int(database.get_metadata(CURSOR_KEY)) == archive.store.log_end("arrival")
    assert database.get_doccount() == count and status(archive.store,
                                                       archive.index_dir()).pending == 0
    assert len(search(archive.index_dir(), "word59x1999").hits) == 1
    archive.close()


def counting_progress(indexer, seen: list) -> callable:
    """A progress callback that records (entries counted so far, the index's position)."""
    def progress(committed):
        seen.append((committed + (seen[-1][0] if seen else 0), indexer.position()))
    return progress


@pytest.mark.parametrize("count", [25, 30])
def test_progress_counts_only_what_is_committed(tmp_path, monkeypatch, count):
    """A carried rest is counted with the commit that takes it, not with its own batch
    (import's indexed count, the indexer service's "resumed"): with the log ending after a
    batch that is not full (25), and right after a full one, whose rest is then written
    once the log has ended (30)."""
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 10)  # full at 10 entries
    archive = Archive(tmp_path / "data", 450)
    for n in range(count):
        archive.store.put(mail(n))
    read, batches = Indexer._read, []  # (full, last entry) of each batch read
    monkeypatch.setattr(Indexer, "_read", lambda self, after: (
        batch := read(self, after), batch.entries and batches.append(
            (batch.full, batch.last_seq)))[0])
    memory = FOUR_MESSAGES
    seen = []  # (entries counted so far, the index's position then)
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool, memory_bytes=memory) as indexer:
        assert indexer.catch_up(counting_progress(indexer, seen)) == count
    assert batches[:2] == [(True, 10), (True, 20)] and batches[-1] == (count == 30, count)
    # log entries are 1..count here, so the position is how many are committed
    assert all(counted == position for counted, position in seen), seen
    positions = [position for _, position in seen]
    assert positions[:3] == [4, 8, 12]  # the first batch's rest (9, 10) went with 11, 12
    assert positions[-2:] == ([24, 25] if count == 25 else [28, 30])  # 29, 30: after the log
    archive.close()


def full_disk_at(real, at: int):
    """`real` (a function or method), raising as on a full disk at its `at`-th call instead
    of doing anything."""
    calls = []

    def until_the_disk_is_full(*args, **kwargs):
        calls.append(args)
        if len(calls) == at:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)
    return until_the_disk_is_full


@pytest.mark.parametrize("failing", ["the third commit", "telling the store of the second"])
def test_progress_counts_the_commits_made_before_a_write_fails(tmp_path, monkeypatch,
                                                               failing):
    """A full disk in the middle of a batch, in Xapian's commit or in the store told of
    one: what was committed before is counted (import reports it as indexed), nothing
    after it; what the store was not told is kept for it (record_progress)."""
    archive = Archive(tmp_path / "data", 450)
    for n in range(60):
        archive.store.put(mail(n))
    memory = FOUR_MESSAGES
    if failing == "the third commit":
        monkeypatch.setattr(Indexer, "_commit", full_disk_at(Indexer._commit, 3))
    else:
        monkeypatch.setattr(archive.store, "record_indexed",
                            full_disk_at(archive.store.record_indexed, 2))
    seen = []
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool, memory_bytes=memory) as indexer:
        with pytest.raises(OSError):
            indexer.catch_up(counting_progress(indexer, seen))
        assert indexer.position() == 8  # two commits of the first batch
        assert seen == [(4, 4), (8, 8)]
        if failing != "the third commit":
            assert indexer._unrecorded.seq == 8  # for the store, once it has room
            indexer.record_progress()
        assert archive.store.cursor("indexer") == 8
    archive.close()


def test_the_store_is_told_even_when_progress_fails(tmp_path):
    """Progress shown on a full disk's stderr (ENOSPC), a closed pipe, a Ctrl-C: the commit
    stands, and the store learns of it all the same."""
    archive = Archive(tmp_path / "data", 450)
    for n in range(6):
        archive.store.put(mail(n))

    def failing_progress(committed):
        raise OSError(28, "No space left on device")
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool) as indexer:
        with pytest.raises(OSError):
            indexer.catch_up(failing_progress)
        assert indexer.position() == 6 and indexer._unrecorded is None
    assert archive.store.cursor("indexer") == 6
    archive.close()


def test_a_message_deleted_then_stored_again_across_a_carry_is_indexed(tmp_path,
                                                                        monkeypatch):
    """Found by review: the carried rest had the message as deleted, the next batch as
    stored again; the joined batch had it as both, and a later part deleted its document
    while the position moved past it."""
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 10)
    archive = Archive(tmp_path / "data", 450)
    for n in range(8):
        archive.store.put(mail(n))                  # log entries 1-8
    again = archive.store.put(mail(100))            # 9
    archive.store.delete([again])                   # 10: the first batch's rest
    read, reads = Indexer._read, []

    def read_then_store_again(self, after):
        batch = read(self, after)
        if not reads:  # the first batch is read: the message comes back after it
            for n in range(8, 12):
                archive.store.put(mail(n))          # 11-14
            archive.store.put(mail(100))            # 15
        reads.append(after)
        return batch

    monkeypatch.setattr(Indexer, "_read", read_then_store_again)
    memory = FOUR_MESSAGES
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool, memory_bytes=memory) as indexer:
        indexer.catch_up()
    database = xapian.Database(str(archive.index_dir()))
    assert again in archive.store and database.get_termfreq(id_term(again)) == 1
    assert database.get_doccount() == archive.store.counters()["messages"] == 13
    archive.close()


def _photo(n: int) -> bytes:
    """A message of almost no text: an empty body and an image."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.net", "p"
    message["Message-ID"] = f"<p{n}@example.org>"
    message.set_content("")
    message.add_attachment(b"\x89PNG" + bytes(2000), maintype="image", subtype="png",
                           filename=f"p{n}.png")
    return message.as_bytes()


def test_a_backlog_of_little_text_is_not_held_back(tmp_path, monkeypatch):
    """Found by review: the whole joined batch, under a commit's text, was carried again
    and again, so nothing was committed (and every document held) until the log ended.
    A rest is carried once: a commit spans at most two batches."""
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 100)
    archive = Archive(tmp_path / "data", 450)
    archive.store.put_many([(_photo(n), None, "import") for n in range(600)])
    committed = []
    commit = Indexer._commit
    monkeypatch.setattr(Indexer, "_commit", lambda self, part, *options: (
        committed.append(len(part.entries)), commit(self, part, *options)))
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool) as indexer:
        indexer.catch_up()
    assert committed == [200, 200, 200]
    assert xapian.Database(str(archive.index_dir())).get_doccount() == 600
    archive.close()


def test_a_trickle_is_not_carried(tmp_path, monkeypatch):
    """Carrying waits for the next batch: only a full batch (a backlog) carries its rest,
    so mail that trickles in is searchable at once."""
    archive = Archive(tmp_path / "data", 450)
    for n in range(3):
        archive.store.put(mail(n))
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool) as indexer:
        assert indexer.catch_up() == 3
        assert xapian.Database(str(archive.index_dir())).get_doccount() == 3
    archive.close()


class _Read:
    """A stand-in for what the extraction pool gives back (Extracted): its text size, and
    its document's terms (None: no document, _parts counts its text)."""

    def __init__(self, name: str, size: int = 10, terms: int | None = None):
        self.name, self.size, self.terms = name, size, terms

    def text_size(self) -> int:
        return self.size


def _batch(entries, present=(), missing=(), full=True) -> Batch:
    return Batch(list(entries), full, [(digest, {"v": version}, None) for digest, version in present],
                 list(missing), [_Read(f"{digest}{version}") for digest, version in present])


def _indexed(batch: Batch) -> tuple[dict, list]:
    """What the parts of `batch` add ({digest: its metadata's version}) and delete."""
    added, deleted = {}, []
    for part in _parts(batch, 10 ** 9):
        added.update({digest: meta["v"] for digest, meta, _ in part.present})
        deleted += part.missing
    return added, deleted


def test_a_message_in_both_is_indexed_as_the_later_batch_has_it():
    carried = _batch([(1, "a"), (2, "b")], present=[("a", 1), ("b", 1)])
    later = _batch([(3, "a"), (4, "c")], present=[("a", 2), ("c", 1)])
    joined = _joined(carried, later)
    assert joined.entries == [(1, "a"), (2, "b"), (3, "a"), (4, "c")]
    assert _indexed(joined) == ({"a": 2, "b": 1, "c": 1}, [])
    assert [read.name for read in joined.extracted] == ["b1", "a2", "c1"]


def test_a_message_deleted_in_the_later_batch_is_not_indexed():
    carried = _batch([(1, "a"), (2, "b")], present=[("a", 1), ("b", 1)])
    later = _batch([(3, "a")], missing=["a"], full=False)
    joined = _joined(carried, later)
    added, deleted = _indexed(joined)
    assert added == {"b": 1} and "a" in deleted and joined.full is False


def test_header_metadata_read_anew_goes_with_the_copy_indexed():
    """Found by review: a carried message's headers read anew (an older reading's
    metadata) were recorded although the later batch replaced it (deleted and stored
    again: its metadata is current), so the store took the deleted copy's dates."""
    carried = _batch([(1, "a"), (2, "b")], present=[("a", 1), ("b", 1)])
    carried.header_changes = {"a": {"sent_date": 1.0}, "b": {"sent_date": 2.0}}
    later = _batch([(3, "a"), (4, "a")], present=[("a", 2)], missing=[])
    assert _joined(carried, later).header_changes == {"b": {"sent_date": 2.0}}
    later.header_changes = {"a": {"sent_date": 3.0}}
    assert _joined(carried, later).header_changes == {"a": {"sent_date": 3.0},
                                                       "b": {"sent_date": 2.0}}
    deleted = _batch([(3, "b")], missing=["b"])
    assert _joined(carried, deleted).header_changes == {"a": {"sent_date": 1.0}}


def test_nothing_carried_is_the_batch_itself():
    later = _batch([(3, "a")], present=[("a", 1)])
    assert _joined(None, later) is later


def test_a_commit_ends_before_a_message_that_would_take_it_past_its_text():
    """Two messages of just under a commit's text are two commits, not one of twice as
    much (bodies cut at the text cap are such: Xapian held two of them at once); a message
    over it alone is a commit of its own."""
    sizes = {"a": 90, "b": 90, "c": 5, "d": 200, "e": 100}
    batch = _batch([(n, digest) for n, digest in enumerate(sizes, 1)],
                   present=[(digest, 1) for digest in sizes])
    for read in batch.extracted:
        read.size = sizes[read.name[0]]
    parts = list(_parts(batch, 100))
    assert [[digest for _, digest in part.entries] for part in parts] == \
        [["a"], ["b", "c"], ["d"], ["e"]]
    assert [_text_size(part) for part in parts] == [90, 95, 200, 100]
