"""`archiver run`'s indexer in a process of its own, so that it never holds the GIL SMTP
intake needs: indexing is mostly Python (reading mail, making terms), and in one process
with the SMTP event loop it halved the rate of 250s.

The child is `archiver serve indexer` with the same configuration, data folder and model.
It holds the index lock the parent took (the lock's open file is handed over, so no
import can slip in between), dies with its parent (PR_SET_PDEATHSIG: a SIGKILLed `archiver
run` leaves no indexer behind holding the lock), records its own state for status like
any service, and is stopped (SIGTERM) when the parent stops.
"""
from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from services.appliance.service_state import describe

if TYPE_CHECKING:
    from services.archive.indexer import IndexLock
    from services.archive.store import Store

PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_SECONDS = 30.0  # then SIGKILL, as systemd's TimeoutStopSec would


class IndexerProcess:
    """The child process running the indexer service for this `archiver run`."""

    def __init__(self, process: subprocess.Popen):
        self.process = process

    @classmethod
    def start(cls, args, lock: IndexLock) -> "IndexerProcess":
        """`archiver serve indexer` with `args`' --config, --data and --model; it takes over
        `lock` when held (this process then lets go of its copy)."""
        command = [sys.executable, "-m", "services.cli.main", "serve", "indexer"]
        for option in ("config", "data", "model"):
            if getattr(args, option, None) is not None:
                command += [f"--{option}", str(getattr(args, option))]
        handed = [lock.fd] if lock.held else []
        if handed:
            command += ["--index-lock-fd", str(lock.fd)]
        process = subprocess.Popen(command, pass_fds=handed,
                                   preexec_fn=functools.partial(_die_with_parent, os.getpid()))
        lock.release()  # the child's copy of the open file keeps the lock held
        return cls(process)

    def ended(self, store: Store) -> str | None:
        """None while it runs; else why it ended, as its own record says."""
        code = self.process.poll()
        if code is None:
            return None
        record = describe(store, "indexer")
        reason = record["reason"] if record["state"] == "failed" else ""
        return reason or f"its process {self.process.pid} ended (exit status {code})"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux); at once if it died
    before this was asked for."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
