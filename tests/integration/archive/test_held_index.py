"""A reader that keeps an index open holds its directory against removal
(services.archive.index_hold), on a real store and index: an export that runs on past a
switch and RETIRED_SECONDS lists every match, and its index goes at the first clean-up
after it ends; a reader in another process holds it too, and the clean-up does not wait
for it; a reader lets go when done, also when stopped partway; a reader that resolved the
link just before its directory was removed reads the live index instead."""
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from services.archive import compaction, index_walk, retired_index
from services.archive.archive import Archive
from services.archive.index_reader import open_index
from services.archive.store import Envelope
from services.archive.search_snapshot import take
from tests.integration.archive.export_changes import (BULK, READS_BEFORE_CHANGE,
                                                      AddMailMeanwhile, bulk,
                                                      change_after_reads, in_order,
                                                      index_now)
from tests.integration.archive.test_export_snapshot import (  # noqa: F401
    QUERY, data, exported)  # data: the fixture, an archive of BULK indexed messages

pytestmark = pytest.mark.integration
LATER = retired_index.RETIRED_SECONDS + 1  # past the time a retired index is kept
REPO = Path(__file__).resolve().parents[3]


def compact(data: Path) -> Path:
    """Switch to a compacted copy of the live index, as `archiver compact` does; returns
    the index switched from. The store is not opened (the export has it open)."""
    archive = Archive(data, 450)
    live = archive.index_dir()
    assert archive.swap_index(compaction.copy(archive, live)) == live
    return live


def remove_strays_later(data: Path) -> list[Path]:
    """What the indexer service's clean-up removes RETIRED_SECONDS + 1 from now."""
    return compaction.remove_strays(Archive(data, 450), now=time.time() + LATER)


def test_an_export_past_a_switch_and_retired_seconds_lists_all_then_its_index_goes(
        data, tmp_path, monkeypatch, capsys):
    """`archiver export`: after 100 messages are written, the indexer commits twice more,
    rewriting every document (the journal delivers them again, to more recipients: the
    revision the export read is discarded), the index is switched, and the clean-up
    comes past RETIRED_SECONDS. The export's next span read the discarded revision and
    reopened the index by its path: with the directory removed, that raised
    xapian.DatabaseNotFoundError, a traceback and half an export. Now the clean-up
    leaves it; the export reads its last revision, every message."""
    monkeypatch.setattr(index_walk, "SPAN", 25)  # a reopen every 25 messages
    index_dir = Archive(data, 450).index_dir()
    at_start, removed = in_order(index_dir, QUERY), []

    def commits_switch_and_clean_up(store):
        for commit in range(2):
            for n, raw in enumerate(bulk(BULK)):
                store.put(raw, Envelope(recipients=[f"copy{commit}-{n}@example.com"]))
            index_now(store, index_dir)
        assert compact(data) == index_dir
        removed.extend(remove_strays_later(data))
    ran = change_after_reads(monkeypatch, READS_BEFORE_CHANGE, commits_switch_and_clean_up)
    digests, _ = exported(data, tmp_path / "export.zip", capsys)
    assert ran and removed == [] and len(digests) == BULK and digests == at_start
    assert remove_strays_later(data) == [index_dir] and not index_dir.exists()


def test_an_index_no_reader_holds_goes_as_before(data):
    """Readers that are done (a search, an export read to its end) hold nothing."""
    index_dir = Archive(data, 450).index_dir()
    assert len(in_order(index_dir, QUERY)) == BULK
    snapshot = take(index_dir, QUERY)
    assert len(list(snapshot.digests())) == BULK
    assert compact(data) == index_dir
    assert compaction.remove_strays(Archive(data, 450)) == []  # retired just now
    assert remove_strays_later(data) == [index_dir]


def test_an_export_stopped_partway_lets_its_index_go(data):
    """A download the client left: the writer closes the export's generator."""
    index_dir = Archive(data, 450).index_dir()
    digests = take(index_dir, QUERY).digests()
    assert next(digests)
    assert compact(data) == index_dir
    assert remove_strays_later(data) == []
    digests.close()
    assert remove_strays_later(data) == [index_dir]


HOLDING_CHILD = """
import sys
import tempfile
from services.archive.index_reader import open_index
from services.archive.store import Envelope
database = open_index(sys.argv[1])
print(database.get_doccount(), flush=True)
sys.stdin.read()
"""


def test_a_reader_in_another_process_holds_the_index_and_the_clean_up_does_not_wait(data):
    """The web service reads in one process, the indexer service removes in another."""
    index_dir = Archive(data, 450).index_dir()
    child = subprocess.Popen([sys.executable, "-c", HOLDING_CHILD, str(index_dir)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout.readline() == f"{BULK}\n"  # it holds the index open
        assert compact(data) == index_dir
        started = time.monotonic()
        assert remove_strays_later(data) == [] and index_dir.is_dir()
        assert time.monotonic() - started < 5
    finally:
        child.communicate("")  # the reader ends: its hold with it
    assert child.returncode == 0
    assert remove_strays_later(data) == [index_dir]


def waiting_for_flock(path: Path, timeout: float = 10.0) -> bool:
    """Whether a flock on directory `path` is waited for (/proc/locks: "->"), within
    `timeout` seconds."""
    inode = f":{os.stat(path).st_ino} "
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/locks") as locks:
            if any("->" in line and "FLOCK" in line and inode in line for line in locks):
                return True
        time.sleep(0.01)
    return False


def test_a_reader_that_resolved_the_link_before_its_directory_was_removed_reads_the_live_one(
        data):
    """The reader resolves the link, then waits to hold the directory while it is being
    removed (its removal is under way here: an exclusive flock, as remove_unless_held
    takes, then the switch and the removal). Once let in it finds the directory gone,
    resolves the link again and reads the live index: not an index with nothing in it."""
    archive = Archive(data, 450)
    old = archive.index_dir()
    remover = os.open(old, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(remover, fcntl.LOCK_EX)
    opened = []
    reader = threading.Thread(target=lambda: opened.append(open_index(archive.index_link)))
    reader.start()
    try:
        assert waiting_for_flock(old)
        assert compact(data) == old
        shutil.rmtree(old)
    finally:
        os.close(remover)
        reader.join()
    database, live = opened[0], archive.index_dir()
    assert live != old and database is not None and database.index_dir == live
    assert database.get_doccount() == BULK
    database.close()


def test_a_reader_that_may_search_an_index_folder_but_not_list_it_still_reads_it():
    """Xapian needs only search permission on the folder; holding it needs a descriptor,
    which needs read permission. Such a reader reads the index unheld, never "nothing
    indexed" (a false zero). Run as user nobody, in a child process."""
    top = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        data = top / "data"
        archive = Archive(data, 450)
        archive.store.put_many((raw, None, "import") for raw in bulk(20))
        index_now(archive.store, archive.index_dir())
        folder = archive.index_dir()
        archive.close()
        for path in [top, data, *data.rglob("*")]:
            path.chmod(0o711 if path.is_dir() else 0o644)
        code = ("import os, sys; os.setgid(65534); os.setuid(65534)\n"
                "from services.archive.index_reader import open_index\n"
                "database = open_index(sys.argv[1])\n"
                "print(None if database is None else database.get_doccount())")
        done = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=REPO,
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["20"]
    finally:
        shutil.rmtree(top)
