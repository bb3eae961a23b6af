"""A live mbox read while mail clients and MTAs work on it (found by a review of the first
locking change): a rewrite in place while it is read (an expunge), a writer that locks with
flock alone, a dotlock-only delivery between the reader's two looks, many locked mboxes in
one import, and an mbox found locked while counting but free when read. No message is ever
stored cut short or spliced, and none is left out without a word."""
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.archive import mbox
from services.archive.mailfiles import count_mail, iter_mail
from tests.mbox_appender import entry_of


def message(subject: str, lines: int = 1) -> bytes:
    return (f"From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: {subject}\n"
            f"Message-ID: <{subject}@example.com>\nDate: Tue, 05 Mar 2024 14:07:09 +0100\n\n"
            + f"Line of {subject}.\n" * lines).encode()


# 400 messages of ~11 KB: 4.5 MiB, several of mbox.READ_CHUNK (1 MiB), as a real inbox.
MESSAGES = [message(f"m{number:03}", 500) for number in range(400)]


def test_an_expunge_rewriting_the_mbox_in_place_during_the_read_stores_no_spliced_message(
        tmp_path):
    """mutt and Dovecot rewrite an mbox in place (same inode) when a message is expunged or
    a flag changes (Status: header), under their fcntl write lock and dotlock. Reading lets
    go of the lock once the end is taken and reads for minutes: a rewrite meanwhile shifts the
    bytes under the reader. Every message read must be one of the mbox's messages, whole."""
    box = tmp_path / "inbox"
    box.write_bytes(b"".join(map(entry_of, MESSAGES)))
    reading = iter_mail([box], mbox_ends=mbox.Ends())
    items = [next(reading)]
    # The user expunges the first message in mutt: the mailbox is rewritten in place.
    with open(box, "r+b") as rewrite:
        fcntl.lockf(rewrite, fcntl.LOCK_EX)
        rewrite.write(b"".join(map(entry_of, MESSAGES[1:])))
        rewrite.truncate()
        fcntl.lockf(rewrite, fcntl.LOCK_UN)
    items += list(reading)
    known = set(MESSAGES)
    spliced = [item.label for item in items if item.raw is not None and item.raw not in known]
    assert not spliced, f"stored as if whole, but no message of the mbox: {spliced}"
    # ... and none of the 399 left is silently absent: read, or reported.
    read = {item.raw for item in items}
    missing = [raw[:200] for raw in MESSAGES[1:] if raw not in read]
    failed = [item for item in items if item.error]
    assert not missing or failed, f"{len(missing)} messages neither read nor reported"


_FLOCK_APPENDER = r"""
import fcntl, sys
path, entry = sys.argv[1], open(sys.argv[2], "rb").read()
with open(path, "ab") as box:
    fcntl.flock(box, fcntl.LOCK_EX)  # BSD flock(2): mail.local, postfix with flock, alpine
    box.write(entry[:len(entry) // 2]); box.flush()
    print("half written", flush=True)
    sys.stdin.readline()
    box.write(entry[len(entry) // 2:]); box.flush()
    fcntl.flock(box, fcntl.LOCK_UN)
"""


def test_a_message_appended_under_an_flock_lock_is_not_read_half_written(tmp_path):
    """On Linux flock(2) and fcntl(2) locks do not see each other (local file systems), so a
    writer that locks with flock alone (postfix mailbox_delivery_lock = flock, Dovecot
    mbox_write_locks = flock, UW c-client/alpine with its dotlock unwritable) is not seen."""
    box = tmp_path / "inbox"
    box.write_bytes(entry_of(MESSAGES[0]))
    entry_file = tmp_path / "entry"
    entry_file.write_bytes(entry_of(MESSAGES[1]))
    appender = subprocess.Popen([sys.executable, "-c", _FLOCK_APPENDER, str(box),
                                 str(entry_file)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert appender.stdout.readline() == "half written\n"
        items = list(iter_mail([box], mbox_ends=mbox.Ends(lock_wait=1)))
    finally:
        appender.stdin.write("go on\n")
        appender.stdin.close()
        appender.wait(timeout=30)
        appender.stdout.close()
    cut = [item.label for item in items
           if item.raw is not None and item.raw not in (MESSAGES[0], MESSAGES[1])]
    assert not cut, f"stored cut short: {cut}"


def test_a_dotlock_only_delivery_done_between_the_two_dotlock_checks_is_not_cut(
        tmp_path, monkeypatch):
    """_size_if_unlocked looks for the dotlock, takes the size, looks again. A writer that
    uses the dotlock alone (the file system keeps no fcntl locks: NFS mounted nolock, where
    postfix and procmail rely on the dotlock) whose whole locked section falls in between
    (the reader descheduled on a loaded machine) leaves the size taken mid-message, and
    both looks found no dotlock. Here the delivery is run at exactly that moment."""
    box = tmp_path / "inbox"
    box.write_bytes(entry_of(MESSAGES[0]))
    entry = entry_of(MESSAGES[1])
    real_fstat, done = os.fstat, []

    def fstat_while_delivering(descriptor):
        if done or not os.path.samestat(real_fstat(descriptor), os.stat(box)):
            return real_fstat(descriptor)
        done.append(True)
        dotlock = os.open(f"{box}.lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(dotlock)
        with open(box, "ab") as writer:
            writer.write(entry[:len(entry) // 2]); writer.flush()
            status = real_fstat(descriptor)  # the size the reader takes
            writer.write(entry[len(entry) // 2:]); writer.flush()
        os.unlink(f"{box}.lock")
        return status

    ends = mbox.Ends(lock_wait=1)
    with open(box, "rb") as stream:
        monkeypatch.setattr(mbox.os, "fstat", fstat_while_delivering)
        try:
            end = mbox.end_under_lock(stream, box, wait=1)
        finally:
            monkeypatch.setattr(mbox.os, "fstat", real_fstat)
    assert done
    assert end in (len(entry_of(MESSAGES[0])), len(entry_of(MESSAGES[0])) + len(entry)), \
        f"end {end} is no message boundary: a message would be stored cut short"
    del ends


def test_several_locked_mboxes_wait_once_in_all_not_once_each(tmp_path):
    """A user who can make files beside their mboxes (their own ~/mail) leaves a dotlock
    (or a symlink or folder of that name) beside each: the import waits lock_wait per mbox,
    so N of them stall it N x 30 s before the first message is stored."""
    boxes = []
    for number in range(4):
        box = tmp_path / f"folder{number}"
        box.write_bytes(entry_of(MESSAGES[number]))
        boxes.append(box)
    os.symlink("/nonexistent", tmp_path / "folder0.lock")  # dangling symlink: "a lock"
    os.mkdir(tmp_path / "folder1.lock")                      # a directory: "a lock"
    (tmp_path / "folder2.lock").write_bytes(b"")
    (tmp_path / "folder3.lock").write_bytes(b"")
    ends = mbox.Ends(lock_wait=0.5)
    started = time.monotonic()
    count_mail(boxes, ends)
    waited = time.monotonic() - started
    assert waited < 1.5 * 0.5, f"waited {waited:.1f} s for 4 locked mboxes (0.5 s each)"


def test_an_mbox_locked_while_counting_is_looked_at_again_when_read(tmp_path):
    """Counting waited lock_wait for it and gave up; by the time reading reaches it (minutes
    or hours later in a large import) the delivery is long done, yet it is failed unread."""
    box = tmp_path / "inbox"
    box.write_bytes(entry_of(MESSAGES[0]))
    dotlock = tmp_path / "inbox.lock"
    dotlock.write_bytes(b"")
    ends = mbox.Ends(lock_wait=0.2)
    count_mail([box], ends)
    dotlock.unlink()  # the delivery finished
    items = list(iter_mail([box], mbox_ends=ends))
    assert [item.raw for item in items] == [MESSAGES[0]], items[0].error
