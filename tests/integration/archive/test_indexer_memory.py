"""The indexer's memory is bounded whatever the backlog: it commits whenever the text added
since its last commit reaches its share of the model's indexing memory, each commit with
its log position; a message deleted or delivered twice within a batch lands in the right
commit; and the store's pages it read leave its resident memory."""
import os
from email.message import EmailMessage

import pytest
import xapian

from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import CURSOR_KEY, MEMORY_PER_TEXT_BYTE, Indexer, status
from services.archive.search import search
from services.archive.store import Envelope

pytestmark = pytest.mark.integration
WORDS_PER_MESSAGE = 2000  # about 16 KB of body text each


def mail(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "alice@example.org", "bob@example.net"
    message["Subject"], message["Message-ID"] = f"report {n}", f"<r{n}@example.org>"
    message.set_content(" ".join(f"word{n}x{k}" for k in range(WORDS_PER_MESSAGE)))
    return message.as_bytes()


def revisions_while_indexing(archive: Archive, memory_bytes: int) -> int:
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool,
                    memory_bytes=memory_bytes) as indexer:
        before = indexer.database.get_revision()
        indexer.catch_up()
        return indexer.database.get_revision() - before


def test_a_backlog_is_committed_in_pieces_of_bounded_text_each_with_its_position(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    digests = [archive.store.put(mail(n)) for n in range(20)]
    archive.store.put(mail(3), Envelope(None, ["late@example.net"]))  # merged: logged again
    archive.store.delete([digests[7]])                                   # deleted: logged
    text_per_message = len(" ".join(f"word0x{k}" for k in range(WORDS_PER_MESSAGE)))
    # A commit takes memory_bytes / MEMORY_PER_TEXT_BYTE of text: here about four messages.
    commits = revisions_while_indexing(archive, 4 * text_per_message * MEMORY_PER_TEXT_BYTE)
    assert 5 <= commits <= 8  # 22 log entries, 19 messages of text, in one read batch
    database = xapian.Database(str(archive.index_dir()))
    assert int(database.get_metadata(CURSOR_KEY)) == archive.store.log_end("arrival")
    assert status(archive.store, archive.index_dir()).pending == 0
    assert database.get_doccount() == 19
    assert not search(archive.index_dir(), "word7x5").hits
    assert len(search(archive.index_dir(), "to:late@example.net").hits) == 1
    assert len(search(archive.index_dir(), "word19x1999").hits) == 1


def test_a_message_larger_than_the_share_is_a_commit_of_its_own(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    for n in range(3):
        archive.store.put(mail(n))
    assert revisions_while_indexing(archive, memory_bytes=1) == 3
    assert xapian.Database(str(archive.index_dir())).get_doccount() == 3


def resident_file_kb() -> int:
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


def test_the_store_pages_read_leave_the_readers_resident_memory(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    # Random hex bodies: 24 MiB, some 12 MiB of the store's map once compressed.
    digests = [archive.store.put(b"Subject: noise\n\n" + os.urandom(1024 * 1024).hex().encode())
               for _ in range(12)]
    baseline = resident_file_kb()
    for digest in digests:
        archive.store.get(digest)
    grown = resident_file_kb()
    assert grown - baseline > 8 * 1024  # the pages read are resident...
    archive.store.release_pages()
    assert resident_file_kb() < baseline + 4 * 1024  # ...until released
    assert all(archive.store.get(digest).startswith(b"Subject: noise") for digest in digests)


def test_a_bulk_import_leaves_no_store_pages_resident(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    baseline = resident_file_kb()
    for _ in range(40):  # 32 MiB stored; without releasing, a third of it stays mapped
        archive.store.put_many([(b"Subject: noise\n\n" + os.urandom(40_000), None, "import")
                                for _ in range(20)])
    assert resident_file_kb() < baseline + 4 * 1024
