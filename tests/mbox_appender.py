"""A program appending one message to an mbox the way an MTA does (postfix local, procmail,
mutt, dovecot-lda): under the mailbox's fcntl write lock, or under its dotlock "<mbox>.lock"
alone (procmail's and mail.local's way where no kernel lock is used), for tests of reading
an mbox that is being delivered to.

It is a process of its own, because fcntl locks are per process: a lock the test process
held would not keep its own reads out. It writes the first half of the message's mbox entry
(From_ line, mboxrd-quoted message, blank line), then holds the lock, with half a message in
the file, until told to go on; then it writes the rest and lets go.
"""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from services.archive import mbox

LOCKS = ("fcntl", "dotlock")
_SCRIPT = r"""
import fcntl, os, sys, time
path, lock, entry = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
with open(path, "ab") as box:
    if lock == "fcntl":
        fcntl.lockf(box, fcntl.LOCK_EX)
    else:
        os.close(os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    box.write(entry[:len(entry) // 2])
    box.flush()
    print("half written", flush=True)
    sys.stdin.readline()  # the test says when to go on
    box.write(entry[len(entry) // 2:])
    box.flush()
    print(time.monotonic(), flush=True)  # when it lets go (CLOCK_MONOTONIC: system-wide)
    if lock == "fcntl":
        fcntl.lockf(box, fcntl.LOCK_UN)
    else:
        os.unlink(path + ".lock")
"""


def entry_of(raw: bytes) -> bytes:
    """The mbox entry of one message, as mbox.write_entries writes it."""
    output = io.BytesIO()
    mbox.write_entries([("", raw)], output)
    return output.getvalue()


class Appender:
    """Appends `raw` to the mbox `path` under `lock` ("fcntl" or "dotlock"). Once made, the
    lock is held and half the entry is in the file; go_on() lets it finish; let_go() waits
    until it has and says when (time.monotonic()). Use it as a context manager: on leaving,
    a process still holding the lock is killed."""

    def __init__(self, path: Path, raw: bytes, lock: str):
        assert lock in LOCKS
        entry_file = path.with_name(path.name + ".appending")
        entry_file.write_bytes(entry_of(raw))
        self.process = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(path), lock,
                                         str(entry_file)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line == "half written\n", f"the appender failed: {line!r}"

    def go_on(self) -> None:
        self.process.stdin.write("go on\n")
        self.process.stdin.flush()

    def let_go(self) -> float:
        """When it let go of the lock, the whole message written (monotonic seconds)."""
        when = float(self.process.stdout.readline())
        assert self.process.wait(timeout=30) == 0
        return when

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()
