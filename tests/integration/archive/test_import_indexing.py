"""`archiver import` indexes what it has stored while it goes on reading and storing.

The import runs in this process (services.cli.main) over a real Maildir, store, extraction
workers and Xapian index; only its source is held back: the real iter_mail, paused after
some messages (as a slow disk or network share would), so the test can look at the
archive from another process (`archiver stats`) while the import is still reading.
"""
import json
import mailbox
import threading
import time
from pathlib import Path

import pytest

from services.archive.indexer import IndexLock
from services.archive.store import Store
from services.cli import archive as archive_cli
from services.cli.archive import IMPORT_BATCH
from services.cli.main import main
from tests import search_output
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

FIRST, LATER = 230, 40  # more than one store transaction (IMPORT_BATCH) before the pause


def raw_message(n: int) -> bytes:
    return (f"From: sender{n % 7}@example.com\nTo: rcpt{n % 5}@example.com\n"
            f"Subject: import while indexing {n}\nMessage-ID: <iw{n}@example.com>\n"
            f"Date: Tue, {1 + n % 28:02d} Feb 2022 10:00:00 +0000\n\n"
            f"Body word{n} of message {n}.\n").encode()


@pytest.fixture
def maildir(tmp_path):
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for n in range(FIRST + LATER):
        box.add(raw_message(n))
    return tmp_path / "Maildir"


def source_that_pauses(monkeypatch, after: int, then):
    """iter_mail as the import uses it, calling then() before its item number `after`."""
    real = archive_cli.iter_mail

    def pausing(paths, max_bytes, mbox_ends=None):
        for number, item in enumerate(real(paths, max_bytes, mbox_ends=mbox_ends)):
            if number == after:
                then()
            yield item
    monkeypatch.setattr(archive_cli, "iter_mail", pausing)


def stats(archiver, data) -> dict:
    return json.loads(archiver("stats", "--data", data, "--json", check=0).stdout)


def run_import(data, maildir, result: dict) -> threading.Thread:
    def run():
        try:
            result["exit"] = main(["import", "--json", "--data", str(data), str(maildir)])
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            result["error"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_what_is_stored_is_indexed_while_the_import_still_reads(archiver, maildir, tmp_path,
                                                                monkeypatch, capsys):
    data, go_on, result = tmp_path / "data", threading.Event(), {}
    source_that_pauses(monkeypatch, FIRST, lambda: go_on.wait(120))
    importing = run_import(data, maildir, result)
    try:
        # The first store transaction (IMPORT_BATCH messages) is durable by now; before,
        # indexing began only once every message was read and stored.
        seen = wait_until(lambda: (now := stats(archiver, data))["indexed"] >= 200 and now,
                          timeout=90, what="indexing while the import is paused")
        assert seen["stored"] < FIRST + LATER and importing.is_alive()
    finally:
        go_on.set()
        importing.join(120)
    assert result == {"exit": 0}
    summary = json.loads(capsys.readouterr().out)
    assert (summary["imported"], summary["indexed"], summary["failed"]) == (FIRST + LATER,) * 2 + (0,)
    after = stats(archiver, data)
    assert (after["stored"], after["indexed"], after["pending"]) == (FIRST + LATER,) * 2 + (0,)
    hits = archiver("search", "word0 OR word269", "--data", data, "--json", check=0).stdout
    assert len(search_output.hits(hits)) == 2


def test_an_import_that_fails_midway_stops_indexing_and_the_next_one_finishes(
        archiver, maildir, tmp_path, monkeypatch):
    data, result = tmp_path / "data", {}

    def fail():
        raise RuntimeError("the source went away")
    source_that_pauses(monkeypatch, FIRST, fail)
    run_import(data, maildir, result).join(120)
    assert isinstance(result.get("error"), RuntimeError)
    assert not [thread for thread in threading.enumerate() if thread.name == "import-indexing"]
    lock = IndexLock(data)
    assert lock.acquire(wait=False)  # released: the service or the next import can index
    lock.release()
    partial = stats(archiver, data)
    assert partial["indexed"] + partial["pending"] == partial["stored"] < FIRST + LATER

    monkeypatch.undo()
    again = json.loads(archiver("import", "--data", data, "--json", maildir, check=0).stdout)
    assert again["imported"] + again["duplicates"] == FIRST + LATER
    after = stats(archiver, data)
    assert (after["stored"], after["indexed"], after["pending"]) == (FIRST + LATER,) * 2 + (0,)


def test_with_the_index_held_elsewhere_the_import_only_stores(archiver, maildir, tmp_path):
    data = tmp_path / "data"
    archiver("import", "--data", data, "--no-index", maildir, check=0)  # makes the archive
    held = IndexLock(data)
    assert held.acquire(wait=False)
    try:
        done = archiver("import", "--data", data, "--json", maildir, check=0)
    finally:
        held.release()
    assert "another process holds the index" in done.stderr
    assert json.loads(done.stdout)["indexed"] == 0
    assert stats(archiver, data)["pending"] == FIRST + LATER


def child_processes() -> list[str]:
    """This process's children (the extraction workers' fork server and its helpers)."""
    found = []
    for task in Path("/proc/self/task").iterdir():
        found += (task / "children").read_text().split()
    return found


def test_the_extraction_workers_start_once_the_first_batch_is_stored(
        archiver, maildir, tmp_path, monkeypatch, capsys):
    # Started beside the first batch being read, they put the import of one 100 MiB
    # message over the model 450's 256 MB (#20): they have nothing to read before it.
    data, seen, go_on, result = tmp_path / "data", {}, threading.Event(), {}

    def look():
        seen["stats"] = stats(archiver, data)
        go_on.wait(120)
    before = set(child_processes())
    source_that_pauses(monkeypatch, IMPORT_BATCH - 1, look)
    importing = run_import(data, maildir, result)
    try:
        wait_until(lambda: "stats" in seen, timeout=60, what="the import to read a batch")
        time.sleep(1)  # (an eager start would have forked by now)
        assert set(child_processes()) - before == set()
        assert seen["stats"]["stored"] == 0
    finally:
        go_on.set()
        importing.join(120)
    assert result == {"exit": 0}
    assert json.loads(capsys.readouterr().out)["indexed"] == FIRST + LATER


def fork_server_running() -> bool:
    """Whether one of this process's children is a multiprocessing fork server (the
    extraction workers are its children)."""
    return any(b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
               for pid in child_processes() if Path(f"/proc/{pid}").exists())


def test_a_message_half_the_limit_is_stored_with_no_workers_and_indexing_resumes(
        archiver, tmp_path, monkeypatch, capsys):
    # Stored beside the workers (extracting the mail before it, or idle, and their fork
    # server), a message of the model's largest size put the import over the model 450's
    # 256 MB (review r24 F1, F2): the import now makes room for it, then starts them again.
    box, data = tmp_path / "Maildir", tmp_path / "data"
    mailbox.Maildir(box, create=True)
    for n in range(IMPORT_BATCH + 20):
        (box / "new" / f"a{n:04d}:2,").write_bytes(raw_message(n))
    large = raw_message(900) + b"filler\n" * (50 * 1024 * 1024 // 7 + 1)  # 50 MiB + (450)
    assert len(large) >= 100 * 1024 * 1024 // archive_cli.ROOM_SHARE
    (box / "new" / "b-large:2,").write_bytes(large)
    for n in range(1000, 1010):
        (box / "new" / f"c{n:04d}:2,").write_bytes(raw_message(n))
    put_prepared, seen = Store.put_prepared, []

    def recording(store, batch, *args, **kwargs):
        seen.append(([ready.meta["size"] for ready in batch], fork_server_running()))
        return put_prepared(store, batch, *args, **kwargs)
    monkeypatch.setattr(Store, "put_prepared", recording)
    assert main(["import", "--json", "--model", "450", "--data", str(data), str(box)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["imported"], summary["indexed"]) == (IMPORT_BATCH + 31,) * 2
    # The first batch (before any worker), the rest of the a's, the large one alone with
    # no fork server, then the c's (before the workers start again).
    assert [sizes for sizes, _ in seen][2] == [len(large)]
    assert [len(sizes) for sizes, _ in seen] == [IMPORT_BATCH, 20, 1, 10]
    assert [running for _, running in seen[2:]] == [False, False], seen
    hits = archiver("search", "word0 OR word900 OR word1009", "--data", data, "--json",
                    check=0).stdout
    assert len(search_output.hits(hits)) == 3
