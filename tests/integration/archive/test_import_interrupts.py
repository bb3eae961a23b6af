"""`archiver import` indexing while it stores (services/cli/import_indexing.py), when it is
interrupted or another import holds the index: it exits as it should (130 on Ctrl-C, never
an abort or a hang) and leaves nothing stored unindexed. Found by a reviewer; each test
failed on the first version of the change."""
import json
import os
import re
import mailbox
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from services.archive.indexer import IndexLock
from services.cli import archive as archive_cli
from services.cli.main import main
from tests import search_output
from tests.conftest import ARCHIVER
from tests.integration.archive.test_import_indexing import raw_message, stats
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def make_maildir(path, count, first=0):
    box = mailbox.Maildir(path, create=True)
    for n in range(first, first + count):
        box.add(raw_message(n))
    return path


def interrupt_while_indexing(source, data) -> tuple[int, str]:
    """Run an import, SIGINT it once a first batch is indexed; its exit code and stderr."""
    with open(data.with_suffix(".err"), "w+") as err:
        process = subprocess.Popen(
            [str(ARCHIVER), "import", "--data", str(data), str(source)],
            stdout=subprocess.DEVNULL, stderr=err, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        # Looked for often: indexing the rest takes under a second, and a SIGINT that
        # comes after the import has ended kills it in its finalization (exit -2).
        wait_until(lambda: re.search(r"indexing [1-9]\d*/", data.with_suffix(".err")
                                     .read_text()), timeout=120, what="a first batch indexed",
                   interval=0.02)
        process.send_signal(signal.SIGINT)
        process.wait(120)
        err.seek(0)
        return process.returncode, err.read()


def test_ctrl_c_while_indexing_ends_the_import_with_130_not_an_abort(tmp_path, archiver):
    """SIGINT once storing has ended (the "indexing" progress shows): the old code exited
    130; here the join of the indexing thread is interrupted (Python 3.11 then marks the
    thread stopped though it runs), the interpreter finalizes with that thread inside
    Xapian, and the process aborts, in about 2 runs of 5 (exit -6, "Fatal Python error:
    end: swig_pythreadstate unset in XapianSWIG_Python_Thread_Block::end()")."""
    source = make_maildir(tmp_path / "Maildir", 3000)
    for attempt in range(6):
        data = tmp_path / f"data{attempt}"
        code, err = interrupt_while_indexing(source, data)
        assert "Fatal Python error" not in err and code == 130, (attempt, code, err[-300:])
    archiver("import", "--data", data, "--json", source, check=0)
    after = stats(archiver, data)
    assert (after["stored"], after["pending"]) == (3000, 0)
    assert archiver("verify", "--data", data, check=0).returncode == 0


# Import B as its own process, its mail source pausing after `pause_after` messages until
# the file `resume` exists: a slow source, holding no lock (a SIGSTOP could land while B
# holds the store's write lock, and stall import A with it).
PAUSING_IMPORT = """
import os, sys, time
from services.cli import archive as archive_cli
from services.cli.main import main
pause_after, resume = int(sys.argv[1]), sys.argv[2]
real = archive_cli.iter_mail
def pausing(paths, max_bytes, mbox_ends=None):
    for number, item in enumerate(real(paths, max_bytes, mbox_ends=mbox_ends)):
        while number == pause_after and not os.path.exists(resume):
            time.sleep(0.05)
        yield item
archive_cli.iter_mail = pausing
sys.exit(main(sys.argv[3:]))
"""


def test_an_import_that_starts_while_another_indexes_leaves_nothing_unindexed(
        tmp_path, archiver, monkeypatch):
    """Import A (small, here) holds the index lock for its whole run; import B (another
    process), started meanwhile, only stores ("the indexer service is running", though
    none is), and what B stores after A has ended is indexed by nobody: B exits 0, its mail
    unsearchable. B's source pauses until A has ended, as a slow source would.
    Before this change B took the lock after storing and indexed it."""
    small = make_maildir(tmp_path / "small", 5)
    big = make_maildir(tmp_path / "big", 6000, first=100_000)
    data = tmp_path / "data"
    resume_b = tmp_path / "resume-b"
    go_a = threading.Event()
    real = archive_cli.iter_mail

    def pausing(paths, max_bytes, mbox_ends=None):
        for number, item in enumerate(real(paths, max_bytes, mbox_ends=mbox_ends)):
            if number == 1:
                go_a.wait(60)
            yield item
    monkeypatch.setattr(archive_cli, "iter_mail", pausing)
    result = {}
    a = threading.Thread(target=lambda: result.update(a=main(
        ["import", "--json", "--data", str(data), str(small)])))
    a.start()
    b = None
    try:
        def a_holds_the_lock():
            lock = IndexLock(data)
            if lock.acquire(wait=False):
                lock.release()
                return False
            return True
        wait_until(a_holds_the_lock, timeout=60, what="import A holds the index lock")
        b = subprocess.Popen([sys.executable, "-c", PAUSING_IMPORT, "400", str(resume_b),
                              "import", "--json", "--data", str(data), str(big)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: stats(archiver, data)["stored"] >= 400, timeout=60,
                   what="import B storing")
    finally:
        go_a.set()
        a.join(120)
        resume_b.touch()
    out, err = b.communicate(timeout=300)
    assert result == {"a": 0} and b.returncode == 0, (result, b.returncode, err[-500:])
    after = stats(archiver, data)
    assert (after["stored"], after["pending"]) == (6005, 0), (after, out)
    assert "another process holds the index" not in err, err  # A had ended: B indexed
    hits = archiver("search", "word105999", "--data", data, "--json", check=0).stdout
    assert len(search_output.hits(hits)) == 1


def test_ctrl_c_before_storing_is_told_it_ended_does_not_leave_indexing_forever(
        tmp_path, monkeypatch):
    """A KeyboardInterrupt (or any error) raised after the storing loop's try and before
    finish() sets _stored - progress.finish(), or finish()'s own status() read of the index
    (where it is raised here, as Ctrl-C landing there would) - leaves the non-daemon
    "import-indexing" thread polling the log every IDLE_SECONDS for ever: main() returns
    130, but the process cannot exit (the interpreter joins the thread at shutdown)."""
    from services.cli import import_indexing
    source = make_maildir(tmp_path / "Maildir", 300)

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(import_indexing, "status", interrupted)
    assert main(["import", "--json", "--data", str(tmp_path / "data"), str(source)]) == 130
    time.sleep(3)
    left = [thread for thread in threading.enumerate() if thread.name == "import-indexing"]
    for thread in left:  # let the test end: tell it storing ended
        thread._target.__self__._stored.set()
        thread.join(60)
    assert not left, "the indexing thread still runs after the import returned"


def test_ctrl_c_while_storing_prints_what_was_stored_and_indexed(tmp_path, archiver):
    """An import --json interrupted while it stores says what it had stored, as --json
    (review rv57: it printed nothing), and no more than the archive then holds."""
    source, data = make_maildir(tmp_path / "Maildir", 3000), tmp_path / "data"
    process = subprocess.Popen(
        [str(ARCHIVER), "import", "--json", "--data", str(data), str(source)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def stored_now() -> int:
        done = archiver("stats", "--data", data, "--json")
        return json.loads(done.stdout)["stored"] if done.returncode == 0 else 0
    wait_until(lambda: stored_now() > 0, timeout=120, what="a first batch stored",
               interval=0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-500:]
    said = json.loads(out.strip().splitlines()[-1])
    after = stats(archiver, data)
    # Exactly what it made durable (review rv59: it once said 10,400 of 10,600 stored)
    assert said["interrupted"] is True and 0 < said["imported"] == after["stored"] < 3000
    assert f"import interrupted: {said['imported']} messages stored" in err
    archiver("import", "--data", data, "--json", source, check=0)
    assert stats(archiver, data)["stored"] == 3000


def descendants(pid: int) -> set[int]:
    """The pids of the processes below pid."""
    return {child.pid for child in psutil.Process(pid).children(recursive=True)}


def import_with_workers_reading(tmp_path, **popen) -> tuple[subprocess.Popen, Path]:
    """An import of 3,000 messages started with Popen keywords `popen`, once its fork
    server and a worker at least run and a first batch is being indexed; and its stderr's
    file."""
    source = make_maildir(tmp_path / "Maildir", 3000)
    said = tmp_path / "import.err"
    with open(said, "w") as err:
        process = subprocess.Popen(
            [str(ARCHIVER), "import", "--data", str(tmp_path / "data"), str(source)],
            stdout=subprocess.DEVNULL, stderr=err, **popen)
    wait_until(lambda: len(descendants(process.pid)) >= 2 and re.search(
               r"indexing [1-9]\d*/", said.read_text()),
               timeout=120, what="the workers reading", interval=0.02)
    return process, said


def test_kill_9_of_an_import_ends_its_workers_without_a_traceback(tmp_path):
    """SIGKILL of the import while its extraction workers wait for work: each worker met
    its pipe reset and printed a ConnectionResetError traceback on the terminal. They end
    quietly now, and none is left running."""
    process, said = import_with_workers_reading(tmp_path)
    workers = descendants(process.pid)
    process.kill()
    process.wait(60)
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
               timeout=60, what="the workers to end")
    assert "Traceback" not in said.read_text(), said.read_text()[-3000:]


def test_ctrl_c_at_a_terminal_ends_the_import_130_without_worker_tracebacks(tmp_path):
    """Ctrl-C at a terminal signals the whole foreground process group: the extraction
    workers got SIGINT too and each printed a KeyboardInterrupt traceback beside the
    import's own "interrupted" line (review rv59 N1). The import stops its workers itself."""
    process, said = import_with_workers_reading(
        tmp_path, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(120) == 130
    assert "Traceback" not in said.read_text(), said.read_text()[-3000:]
