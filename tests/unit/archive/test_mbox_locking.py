"""Reading an mbox an MTA is appending to: under its lock (fcntl and dotlock, as mutt and
Dovecot read one), up to the size it had then, never a message half written; a lock held
too long is a failure naming the file. The appender is a real process (tests/mbox_appender)."""
import io
import threading
import time
from pathlib import Path

import pytest

from services.archive import mbox
from services.archive.mailfiles import MailItem, count_mail, iter_mail
from services.archive.mbox import count_entries, read_entries
from services.archive.store import Store
from tests.mbox_appender import LOCKS, Appender, entry_of

GiB = 1024 ** 3
APPENDER_WAITS = 0.5  # seconds the appender holds the lock, half a message written


def message(subject: str, body: str = "Hello.\n") -> bytes:
    return (f"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: {subject}\n"
            f"Message-ID: <{subject}@example.com>\nDate: Tue, 05 Mar 2024 14:07:09 +0100\n\n"
            f"{body}").encode()


ONE, TWO = message("one"), message("two")
# Large enough that its first half holds whole header lines and body lines.
THREE = message("three", "A line of the third message.\n" * 2000)


def mbox_of(path: Path, *raws: bytes) -> Path:
    path.write_bytes(b"".join(map(entry_of, raws)))
    return path


def imported(box: Path, ends: mbox.Ends) -> tuple[int, list[MailItem]]:
    """What `archiver import` does with one mbox: count it, then read it (same ends)."""
    return count_mail([box], ends), list(iter_mail([box], mbox_ends=ends))


@pytest.mark.parametrize("lock", LOCKS)
def test_a_message_being_appended_is_read_whole_once_the_appender_lets_go(tmp_path, lock):
    """dotlock: the dotlock is there when the import starts, goes away during its wait,
    and the import goes on."""
    box = mbox_of(tmp_path / "inbox", ONE, TWO)
    with Appender(box, THREE, lock) as appender:
        finish = threading.Timer(APPENDER_WAITS, appender.go_on)
        finish.start()
        started = time.monotonic()
        try:
            counted, items = imported(box, mbox.Ends(lock_wait=30))
        finally:
            finish.join()  # it goes on even if reading did not wait for it
        let_go = appender.let_go()
    assert started < let_go  # the import began while half the message was in the file
    assert [item.raw for item in items] == [ONE, TWO, THREE]  # byte-exact, none cut short
    assert counted == len(items)


def test_messages_appended_after_the_end_was_taken_are_the_next_imports_alone(tmp_path):
    """The store keeps the same bytes once (keyed by their SHA-256): importing the mbox
    again stores only what was appended, the rest are duplicates."""
    box = mbox_of(tmp_path / "inbox", ONE, TWO)
    store = Store(tmp_path / "store", map_size=GiB)
    try:
        ends = mbox.Ends()
        reading = iter_mail([box], mbox_ends=ends)
        first = next(reading)  # the end is taken before the first message comes
        with Appender(box, THREE, "fcntl") as appender:
            appender.go_on()
            appender.let_go()
        items = [first, *reading]
        assert [item.raw for item in items] == [ONE, TWO]
        assert count_mail([box], ends) == 2  # the same import counts what it reads
        assert [outcome.status for outcome in put(store, items)] == ["new", "new"]

        counted, again = imported(box, mbox.Ends())
        assert counted == 3 and [item.raw for item in again] == [ONE, TWO, THREE]
        assert [outcome.status for outcome in put(store, again)] == [
            "duplicate", "duplicate", "new"]
        assert (store.counters()["messages"], store.counters()["duplicates"]) == (3, 2)
    finally:
        store.close()


@pytest.mark.parametrize("lock", LOCKS)
def test_a_lock_held_past_the_wait_fails_the_mbox_by_name_and_reads_nothing(tmp_path, lock):
    box = mbox_of(tmp_path / "inbox", ONE, TWO)
    with Appender(box, THREE, lock):  # never told to go on: a stuck delivery, a stale lock
        started = time.monotonic()
        counted, items = imported(box, mbox.Ends(lock_wait=0.5))
        waited = time.monotonic() - started
    assert counted == len(items) == 1
    assert items[0].raw is None and items[0].label == str(box)
    assert items[0].error.startswith(
        f"mbox {box} is locked by another program (an MTA delivering?): ")
    if lock == "dotlock":
        assert f"remove {box}.lock if no program is delivering to it" in items[0].error
    assert 0.5 <= waited < 5  # waited once, for counting; reading knew it was locked


def test_an_mbox_rewritten_shorter_since_it_was_counted_is_read_to_its_new_end(tmp_path):
    """An expunge (mutt, an IMAP server) rewrites the mbox: the end counting took is no
    message boundary any more (it falls in the middle of the message being appended), so
    reading takes it again, under the lock."""
    box = mbox_of(tmp_path / "inbox", ONE, TWO, message("four"))
    ends = mbox.Ends()
    assert count_mail([box], ends) == 3
    mbox_of(box, ONE)  # rewritten in place, as an expunge of the last two leaves it
    with Appender(box, THREE, "fcntl") as appender:
        finish = threading.Timer(APPENDER_WAITS, appender.go_on)
        finish.start()
        try:
            items = list(iter_mail([box], mbox_ends=ends))
        finally:
            finish.join()  # it goes on even if reading did not wait for it
        appender.let_go()
    assert [item.raw for item in items] == [ONE, THREE]


@pytest.mark.parametrize("chunk", [None, 7, 100])
def test_reading_stops_at_the_end_given(chunk, monkeypatch):
    monkeypatch.setattr(mbox, "READ_CHUNK", chunk or mbox.READ_CHUNK)
    monkeypatch.setattr(mbox, "SPILL_BYTES", 2 * mbox.READ_CHUNK)  # large blocks spilled
    whole = entry_of(ONE) + entry_of(TWO)
    data = whole + entry_of(THREE)[:100]  # then half a message being appended
    found = list(read_entries(io.BytesIO(data), max_bytes=GiB, end=len(whole)))
    assert [entry.raw for entry in found] == [ONE, TWO]
    assert count_entries(io.BytesIO(data), end=len(whole)) == 2


def put(store: Store, items: list[MailItem]):
    """Store items as `archiver import` does."""
    return store.put_many([(item.raw, None, "import", None, item.from_line_date)
                           for item in items])
