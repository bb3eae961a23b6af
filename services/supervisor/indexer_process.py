"""`archiver run`'s indexer in a process of its own, so that it never holds the GIL SMTP
intake needs: indexing is mostly Python (reading mail, making terms), and in one process
with the SMTP event loop it halved the rate of 250s.

The child is `archiver serve indexer` with the same configuration, data folder and model.
It holds the index lock the parent took (the lock's open file is handed over, so no
import can slip in between), dies with its parent (PR_SET_PDEATHSIG: a SIGKILLed `archiver
run` leaves no indexer behind holding the lock), records its own state for status like
any service, and is stopped (SIGTERM) when the parent stops.

A child that ends on its own (a crash: Xapian's C++ code can abort the process) is started
again RESTART_SECONDS later, as systemd's Restart=on-failure starts the appliance's indexer
unit again: the new one goes on from the index's last commit, and the run's other services
never stop for it. Only a child that keeps ending (START_LIMIT_BURST times within
START_LIMIT_SECONDS, systemd's start limit) fails the run.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from services.appliance.service_state import ServiceRecords, describe
from services.archive.indexer import IndexLock

if TYPE_CHECKING:
    from services.archive.store import Store

log = logging.getLogger("archiver")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_SECONDS = 30.0  # then SIGKILL, as systemd's TimeoutStopSec would
RESTART_SECONDS = 2.0  # the units' RestartSec
# The index is derived and catches up; a 250 waits for the CPU it shares with indexing. So
# the indexer (and its extraction workers, which inherit it) runs under SCHED_IDLE: it gets
# the CPU the services that acknowledge mail leave, and gives it up as soon as one wakes.
# Measured (3,000 messages, 8 clients, 2 rounds each): without attachments 1,176-1,194
# msg/s acknowledged, searchable 3.2 s after the last 250, where nice 10 gave 890-951 msg/s
# and 2.1-2.2 s; with attachments 725-840 msg/s and 5.7-6.2 s, where nice 10 gave 634-638
# and 4.4-4.5 s (nice 10 itself had 486 against 416 at the same priority; nice 19 gave no
# more than nice 10: 900 msg/s without attachments). While other work keeps every core busy,
# an idle-class process waits seconds for each slice of CPU: so extraction's time limits
# count CPU, not wall-clock time (services.archive.cpu_time).
INDEXER_POLICY = os.SCHED_IDLE
START_LIMIT_BURST = 5  # endings within START_LIMIT_SECONDS that fail the run
START_LIMIT_SECONDS = 60.0


class IndexerProcess:
    """The child process running the indexer service for this `archiver run`."""

    def __init__(self, process: subprocess.Popen, args):
        self.process, self.args = process, args
        self.endings: list[float] = []  # time.monotonic() of its recent endings
        self.why_ended: str | None = None  # while it waits to be started again

    @classmethod
    def start(cls, args, lock: IndexLock) -> "IndexerProcess":
        """`archiver serve indexer` with `args`' --config, --data and --model; it takes over
        `lock` when held (this process then lets go of its copy)."""
        return cls(_spawn(args, lock), args)

    def supervise(self, store: Store, data_dir: Path) -> str | None:
        """Run every few seconds by the parent: start the child again RESTART_SECONDS after
        it ended, once the index lock it let go of is free (an import may hold it a while).
        Returns why it ended once it has ended START_LIMIT_BURST times within
        START_LIMIT_SECONDS (the run fails then); else None."""
        if self.why_ended is None:
            self.why_ended = self.ended(store)
            if self.why_ended is None:
                return None
            now = time.monotonic()
            self.endings = [at for at in self.endings if now - at < START_LIMIT_SECONDS] + [now]
            if len(self.endings) >= START_LIMIT_BURST:
                return (f"{self.why_ended}; it ended {len(self.endings)} times within "
                        f"{START_LIMIT_SECONDS:.0f} s")
            log.error("indexer failed: %s; it is started again in %.0f s", self.why_ended,
                      RESTART_SECONDS, extra={"ARCHIVER_SERVICE": "indexer"})
            # Status says so meanwhile (the child's own record names a pid that is gone).
            ServiceRecords(store, ["indexer"]).failed(
                f"{self.why_ended}; it is started again in {RESTART_SECONDS:.0f} s")
        if time.monotonic() - self.endings[-1] >= RESTART_SECONDS:
            lock = IndexLock(data_dir)
            if lock.acquire(wait=False):
                self.process, self.why_ended = _spawn(self.args, lock), None
        return None

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


def _spawn(args, lock: IndexLock) -> subprocess.Popen:
    """The child, handed `lock` when held (this process then lets go of its copy: the
    child's copy of the open file keeps the lock held)."""
    command = [sys.executable, "-m", "services.cli.main", "serve", "indexer"]
    for option in ("config", "data", "model"):
        if getattr(args, option, None) is not None:
            command += [f"--{option}", str(getattr(args, option))]
    handed = [lock.fd] if lock.held else []
    if handed:
        command += ["--index-lock-fd", str(lock.fd)]
    # prctl is looked up here, not in the child: between fork and exec a child of a process
    # with threads must not take the dynamic loader's lock (dlopen), which another thread
    # may have held at the fork.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    process = subprocess.Popen(command, pass_fds=handed,
                               preexec_fn=functools.partial(_die_with_parent, os.getpid(), prctl))
    lock.release()
    return process


def _die_with_parent(parent: int, prctl) -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux; `prctl` is libc's,
    looked up by the parent); at once if it died before this was asked for. And the idle
    scheduling policy (INDEXER_POLICY), below the services that acknowledge mail."""
    os.sched_setscheduler(0, INDEXER_POLICY, os.sched_param(0))
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
