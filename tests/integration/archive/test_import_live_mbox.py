"""`archiver import` of an mbox an MTA is delivering to: it reads under the mailbox's lock, up
to the size the mbox had then, so no message half written is stored; importing it again
stores what was appended since. The appenders are real: a process appending under the fcntl
lock as postfix and mutt do (tests/mbox_appender), and Dovecot's own LDA when installed."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from services.archive import mbox
from services.archive.mailfiles import iter_mail
from tests import search_output
from tests.conftest import ARCHIVER
from tests.mbox_appender import Appender, entry_of
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"


def message(subject: str, body: str = "Hello.\n") -> bytes:
    return (f"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.com>\n"
            f"Date: Tue, 05 Mar 2024 14:07:09 +0100\n\n{body}").encode()


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def stored_digests(archiver, data) -> list[str]:
    done = archiver("search", "", "--data", data, "--json", "--limit", 1000, check=0)
    return sorted(search_output.digests(done.stdout))


def has_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has the file `path` open."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path)
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # it exited, or closed a descriptor as we looked
        return False


def test_import_waits_for_a_delivery_in_progress_and_the_next_stores_what_came_after(
        archiver, tmp_path):
    data, box = tmp_path / "data", tmp_path / "inbox"
    one, two, three = message("one"), message("two"), message("three", "A line.\n" * 5000)
    box.write_bytes(entry_of(one) + entry_of(two))
    with Appender(box, three, "fcntl") as appender:
        importing = subprocess.Popen([ARCHIVER, "import", "--data", data, "--json", box],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=tmp_path)
        try:
            wait_until(lambda: has_open(importing.pid, box) or importing.poll() is not None,
                       timeout=120, what="the import opening the mbox", interval=0.02)
            time.sleep(1)  # code that does not wait for the lock reads the half meanwhile
            appender.go_on()
            appender.let_go()
            out, err = importing.communicate(timeout=120)
        finally:
            if importing.poll() is None:
                importing.kill()
                importing.wait()
    summary = json.loads(out)
    assert (summary["imported"], summary["failed"]) == (3, 0), err
    assert stored_digests(archiver, data) == sorted(map(digest, [one, two, three]))

    four = message("four")
    with Appender(box, four, "fcntl") as appender:  # a later delivery
        appender.go_on()
        appender.let_go()
    again = json.loads(archiver("import", "--data", data, "--json", box, check=0).stdout)
    # The store keys messages by the SHA-256 of their bytes: the three read before are
    # duplicates, stored once; only the fourth is new.
    assert (again["imported"], again["duplicates"], again["failed"]) == (1, 3, 0)
    assert stored_digests(archiver, data) == sorted(map(digest, [one, two, three, four]))


# --- Dovecot's LDA ------------------------------------------------------------------------

LDA_CONFIG = """\
mail_location = mbox:{folder}/mail:INBOX={folder}/inbox
log_path = {folder}/dovecot.log
ssl = no
"""
DELIVERIES = 40
BODY_LINES = 20_000  # some 600 KB a message: many writes while Dovecot holds the lock


def lda_body(number: int) -> str:
    return "".join(f"delivery {number}, line {line}\n" for line in range(BODY_LINES))


@pytest.fixture
def lda_folder():
    """A folder Dovecot may deliver into. It refuses to deliver as root, so it runs as the
    user nobody, who can neither reach pytest's tmp_path nor make a dotlock in it."""
    if not os.access(DOVECOT_LDA, os.X_OK):
        pytest.skip(f"no {DOVECOT_LDA}")
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root, and no setpriv to deliver as nobody")
    folder = Path(tempfile.mkdtemp(prefix="archiver-lda-"))
    folder.chmod(0o777)
    (folder / "dovecot.conf").write_text(LDA_CONFIG.format(folder=folder))
    yield folder
    shutil.rmtree(folder)


def deliver(folder: Path, number: int) -> None:
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] \
        if os.geteuid() == 0 else []
    raw = message(f"delivery {number}", lda_body(number))
    subprocess.run([*as_nobody, DOVECOT_LDA, "-c", folder / "dovecot.conf",
                    "-f", "alice@example.com"], input=raw, check=True, timeout=120,
                   env={**os.environ, "HOME": str(folder)})


def test_imports_during_dovecot_lda_deliveries_store_only_whole_messages(lda_folder):
    """Dovecot appends under its dotlock and fcntl lock (mbox_write_locks), and adds its own
    header fields, Content-Length among them: every message read is checked against it and
    against the body delivered."""
    inbox = lda_folder / "inbox"
    deliver(lda_folder, 0)
    failures: list[BaseException] = []

    def deliveries():
        try:
            for number in range(1, DELIVERIES):
                deliver(lda_folder, number)
        except BaseException as exc:
            failures.append(exc)
    delivering = threading.Thread(target=deliveries)
    delivering.start()
    read: dict[str, bytes] = {}  # every message any import read, by digest
    imports = 0
    while delivering.is_alive() or imports == 0:
        for item in iter_mail([inbox], mbox_ends=mbox.Ends()):  # one import
            assert item.error is None, item
            read[digest(item.raw)] = item.raw
        imports += 1
    delivering.join()
    assert not failures, failures
    for item in iter_mail([inbox], mbox_ends=mbox.Ends()):  # the one after the deliveries
        read[digest(item.raw)] = item.raw
    subjects = set()
    for raw in read.values():
        headers, body = raw.split(b"\n\n", 1)
        number = int(re.search(rb"^Subject: delivery (\d+)$", headers, re.M)[1])
        length = re.search(rb"^Content-Length: (\d+)$", headers, re.M)
        assert length, f"delivery {number} read cut short in its header"
        assert (len(body), body) == (int(length[1]), lda_body(number).encode()), \
            f"delivery {number} read cut short: {len(body)} of {int(length[1])} bytes"
        subjects.add(number)
    assert subjects == set(range(DELIVERIES))
    assert imports > 1
