"""Each service's state as the process running it records it, so that `archiver status`
in another process can tell running, stale (its process died without a word), stopped,
failed (and why) or never started, with or without systemd.

Records live in the store's node-local settings as "service.<name>" (never replicated):
{"state": "running"|"stopped"|"failed", "pid", "time" (last written), "started", "reason"}.
A running service rewrites its record every HEARTBEAT_SECONDS.
"""
from __future__ import annotations

import logging
import os
import time

import psutil

from services.archive.store import OutOfSpace, Store

log = logging.getLogger(__name__)

# The appliance's long-running services, each a systemd unit archiver-NAME.service and a
# thread or task of `archiver run` (services.supervisor.runtime).
SERVICES = ("smtp", "journal", "indexer", "mirror", "web")
HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS


def _key(service: str) -> str:
    return f"service.{service}"


class ServiceRecords:
    """Writes the records of the services one process runs."""

    def __init__(self, store: Store, services: list[str]):
        self.store, self.services = store, list(services)
        self.started = time.time()

    def running(self, details: dict[str, str] | None = None) -> None:
        """Each service runs; `details`: what status adds for some (e.g. "paused: ...")."""
        for service in self.services:
            self._write(service, "running", (details or {}).get(service, ""))

    def stopped(self) -> None:
        for service in self.services:
            self._write(service, "stopped", "")

    def failed(self, reason: str, service: str | None = None) -> None:
        """`service` (None: every one) could not start or went down; the others of the
        process stop with it."""
        for other in self.services:
            if service in (None, other):
                self._write(other, "failed", reason)
            else:
                self._write(other, "stopped", f"{service} failed: {reason}")

    def _write(self, service: str, state: str, reason: str) -> None:
        try:
            self.store.set_setting(_key(service), {"state": state, "pid": os.getpid(),
                                                   "time": time.time(), "started": self.started,
                                                   "reason": reason})
        except OutOfSpace as full:  # the service goes on; status tells it has not beaten
            log.warning("the state of %s is not recorded: %s", service, full)


def describe(store: Store, service: str, now: float | None = None) -> dict:
    """A service's state for status: the record, judged by whether its process still beats."""
    record = store.setting(_key(service))
    if record is None:
        return {"state": "never started", "reason": "", "pid": None, "since": None,
                "last_seen": None}
    now = time.time() if now is None else now
    state, reason = record["state"], record.get("reason", "")
    if state == "running" and not psutil.pid_exists(record["pid"]):
        state, reason = "stale", f"its process {record['pid']} is gone without stopping"
    elif state == "running" and now - record["time"] > STALE_AFTER_SECONDS:
        state = "stale"
        reason = f"no heartbeat for {int(now - record['time'])} s (process {record['pid']})"
    return {"state": state, "reason": reason, "pid": record["pid"],
            "since": record.get("started"), "last_seen": record["time"]}
