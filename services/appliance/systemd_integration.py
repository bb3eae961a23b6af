"""What a service says to systemd when it runs under it: READY, STATUS, WATCHDOG and
STOPPING through sd_notify, and its log as journal entries with structured fields
(MESSAGE_DIGEST, PEER, ACCOUNT given as `extra=`). Without systemd, notifying does
nothing and the log goes to stderr, so the same code runs in `archiver run`."""
from __future__ import annotations

import logging
import os
import sys

from systemd import daemon

# Any of these tells that systemd started us: the journal as stdout/stderr, the unit's
# invocation id, or the socket Type=notify services report to.
SYSTEMD_VARIABLES = ("JOURNAL_STREAM", "INVOCATION_ID", "NOTIFY_SOCKET")
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def under_systemd() -> bool:
    return any(os.environ.get(name) for name in SYSTEMD_VARIABLES)


def log_to_journal_or_stderr(identifier: str) -> None:
    """Route the root logger: the journal (SYSLOG_IDENTIFIER=identifier) under systemd,
    else stderr with timestamps (also when journald is not there to take entries, as in a
    test that plays systemd's notification socket)."""
    if under_systemd() and os.path.exists(JOURNAL_SOCKET):
        from systemd.journal import JournalHandler
        handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER=identifier)
        handler.setFormatter(logging.Formatter("%(message)s"))  # the journal adds the rest
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def notify(*assignments: str) -> None:
    """Send e.g. "READY=1", "STATUS=..." to systemd; a no-op without NOTIFY_SOCKET."""
    daemon.notify("\n".join(assignments))


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec=, as sd_watchdog_enabled(3)
    advises), or None when systemd does not watch this process."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    watched_pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (watched_pid and watched_pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2
