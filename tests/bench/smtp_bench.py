"""SMTP intake rate: 8 concurrent clients until every message has its 250 (durable), then
the time until all of them are searchable, against `archiver run` on loopback; or, with
`archiver serve smtp` alone (no indexer), the rate SMTP intake itself can take.

Whether all are searchable is asked in this process (the index's status every
POLL_SECONDS), not with `archiver stats` in a process of its own: each of those takes some
0.35 s of CPU, so polling with it took some two thirds of a core from the indexer it timed.

Beside the times it reports the CPU seconds the service and everything it started took,
its start and stop included (they are its children, waited for when it stops), and the
load average before it: on a machine shared with other work the times vary with that
load, the CPU much less.

While the clients send it also measures CPU per message: the service's process tree's
(under `archiver run` that includes the indexing done meanwhile) and the clients' (they run
in this process, on the same cores). cpu_bound_msgs_per_s is the machine's cores divided by
the two together: the rate no SMTP server of this per-message CPU could pass here with these
clients, however well it spread its work over the cores."""
from __future__ import annotations

import os
import smtplib
import threading
import time
from pathlib import Path

from services.archive.archive import Archive
from services.archive.indexer import status
from tests.integration.processes import ArchiverService

from .measure import tree_cpu_seconds

CLIENTS = 8
POLL_SECONDS = 0.05


def bench_smtp(scratch: Path, messages: list[bytes], command=("run",)) -> dict:
    config = {"smtp": {"trusted_servers": ["127.0.0.1/32"]}}
    load, cpu_before = os.getloadavg()[0], _children_cpu()
    service = ArchiverService(scratch, config, command=command).start()
    indexes = "run" in command
    try:
        service_cpu_before, clients_cpu_before = tree_cpu_seconds(service.process.pid), \
            time.process_time()
        started = time.perf_counter()
        _send_all(service.smtp_port, messages)
        accepted = time.perf_counter() - started
        clients_cpu = time.process_time() - clients_cpu_before
        service_cpu = tree_cpu_seconds(service.process.pid) - service_cpu_before
        if indexes:
            _wait_until_searchable(service, len(messages), timeout=3600)
        searchable = time.perf_counter() - started
    finally:
        service.stop()
    return {"command": " ".join(command), "messages": len(messages), "clients": CLIENTS,
            "accepted_msgs_per_s": round(len(messages) / accepted, 1),
            "seconds_to_250": round(accepted, 2),
            **({"seconds_to_searchable": round(searchable, 2),
                # the bound: searchable within 5 s of the last 250
                "searchable_after_last_250_s": round(searchable - accepted, 2)}
               if indexes else {}),
            "service_cpu_s": round(_children_cpu() - cpu_before, 2), "load_average": round(load, 2),
            **_cpu_per_message(service_cpu, clients_cpu, len(messages))}


def _cpu_per_message(service_cpu: float, clients_cpu: float, count: int) -> dict:
    """CPU milliseconds per message of the service and of the clients while sending, and
    the rate the machine's cores bound them to (msg/s)."""
    both = service_cpu + clients_cpu
    return {"service_cpu_ms_per_message": round(service_cpu / count * 1000, 3),
            "clients_cpu_ms_per_message": round(clients_cpu / count * 1000, 3),
            "cpu_bound_msgs_per_s": round(os.cpu_count() * count / both, 1) if both else None}


def _children_cpu() -> float:
    """User and system CPU seconds of this process's children that have ended."""
    times = os.times()
    return times.children_user + times.children_system


def _wait_until_searchable(service: ArchiverService, count: int, timeout: float) -> None:
    """Until the service's index holds `count` messages and nothing logged is pending;
    RuntimeError when the service ends first, TimeoutError after `timeout` seconds."""
    archive = Archive(service.data)
    deadline = time.monotonic() + timeout
    try:
        while (now := status(archive.store, archive.index_dir())).indexed < count or now.pending:
            if service.process.poll() is not None:
                raise RuntimeError(f"the service ended ({service.process.returncode}): {now}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not searchable after {timeout} s: {now}")
            time.sleep(POLL_SECONDS)
    finally:
        archive.store.close()


def _send_all(port: int, messages: list[bytes]) -> None:
    shares = [messages[k::CLIENTS] for k in range(CLIENTS)]
    errors = []

    def client(share):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as connection:
                for raw in share:
                    connection.sendmail("bench@example.org", ["archive@example.com"], raw)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, then fails loudly
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} SMTP clients failed, first: {errors[0]!r}")
