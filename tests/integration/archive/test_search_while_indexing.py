"""Search while the indexer follows live intake, one message at a time: every search answers
from one revision (Xapian discards a revision two commits on, services.archive.index_reader
reads it again), and the following indexer commits at most every FOLLOW_COMMIT_SECONDS, so
that no search is overtaken again and again."""
import multiprocessing
import threading
import time
from email.message import EmailMessage

import pytest
import xapian

from services.archive import shards
from services.archive.archive import Archive
from services.archive.index_reader import read_index
from services.archive.indexer import FOLLOW_COMMIT_SECONDS, Indexer
from services.archive.search import search
from services.archive.store import Envelope
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
MESSAGES = 150


def mail(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "intake@example.org", "audit@example.net"
    message["Subject"], message["Message-ID"] = f"Live {n}", f"<live{n}@example.org>"
    message.set_content(f"common words of message number{n}")
    return message.as_bytes()


def follow(data_dir: str, started, stop) -> None:
    archive = Archive(data_dir)
    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool)
        started.set()
        indexer.follow(stop=stop.is_set, idle_sleep=0.01)
        indexer.close()
    archive.close()


def test_searches_answer_while_a_following_indexer_commits_what_arrives(tmp_path):
    archive = Archive(tmp_path)
    archive.store.put(mail(0), Envelope("intake@example.org", ["audit@example.net"]), "smtp")
    context = multiprocessing.get_context("spawn")  # its own LMDB and Xapian handles
    started, stop = context.Event(), context.Event()
    indexer = context.Process(target=follow, args=(str(tmp_path), started, stop))
    indexer.start()
    try:
        assert started.wait(timeout=120)
        began, seen = time.monotonic(), 0
        revision_before = _revision(archive)
        for n in range(1, MESSAGES):
            archive.store.put(mail(n), Envelope("intake@example.org", ["audit@example.net"]),
                              "smtp")
            results = search(archive.index_dir(), "common", limit=MESSAGES)
            assert results.total == len(results.hits) == len({h.digest for h in results.hits})
            assert results.total >= seen  # never an older revision than one seen before
            seen = results.total
        took = time.monotonic() - began
        wait_until(lambda: search(archive.index_dir(), "common").total == MESSAGES, 120,
                   "the indexer to catch up", 0.05)
        commits = _revision(archive) - revision_before
        # Each commit is at least FOLLOW_COMMIT_SECONDS after the one before it.
        assert commits <= (time.monotonic() - began) / FOLLOW_COMMIT_SECONDS + 2
        assert took > 0 and commits < MESSAGES  # messages went into commits together
    finally:
        stop.set()
        indexer.join(timeout=60)
        archive.close()
    assert indexer.exitcode == 0


def _revision(archive: Archive) -> int:
    try:
        return shards.revision(archive.index_dir())  # shard 0's: committed every commit
    except xapian.DatabaseOpeningError:
        return 0



SLOW_READ_SECONDS = 0.3  # a search on a slow appliance (a VM without KVM)


def test_a_slow_search_is_overtaken_at_most_once_while_intake_goes_on(tmp_path):
    archive = Archive(tmp_path)
    put = lambda n: archive.store.put(mail(n), Envelope("intake@example.org",  # noqa: E731
                                                         ["audit@example.net"]), "smtp")
    put(0)
    context = multiprocessing.get_context("spawn")
    started, stop = context.Event(), context.Event()
    indexer = context.Process(target=follow, args=(str(tmp_path), started, stop))
    indexer.start()
    intake_done = threading.Event()

    def intake():  # a message every few milliseconds, as long as the searches go on
        n = 1
        while not intake_done.is_set():
            put(n)
            n += 1
            time.sleep(0.003)
    try:
        assert started.wait(timeout=120)
        wait_until(lambda: search(archive.index_dir(), "common").total == 1, 120, "indexed")
        feeder = threading.Thread(target=intake)
        feeder.start()
        for _ in range(6):
            attempts = []

            def slow_read(database):
                attempts.append(1)
                first = database.get_doccount()
                time.sleep(SLOW_READ_SECONDS)
                found = [item.docid for item in database.postlist("XBcommon")]
                return first, len(found)
            first, found = read_index(archive.index_dir(), slow_read, absent=None)
            assert first == found  # one revision throughout
            assert len(attempts) <= 2
    finally:
        intake_done.set()
        stop.set()
        indexer.join(timeout=60)
        archive.close()
    assert indexer.exitcode == 0
