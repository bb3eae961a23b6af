"""SMTP intake rate: 8 concurrent clients until every message has its 250 (durable), then
the time until all of them are searchable, against `archiver run` on loopback; or, with
`archiver serve smtp` alone (no indexer), the rate SMTP intake itself can take."""
from __future__ import annotations

import smtplib
import threading
import time
from pathlib import Path

from tests.integration.processes import ArchiverService

CLIENTS = 8


def bench_smtp(scratch: Path, messages: list[bytes], command=("run",)) -> dict:
    config = {"smtp": {"trusted_servers": ["127.0.0.1/32"]}}
    service = ArchiverService(scratch, config, command=command).start()
    indexes = "run" in command
    try:
        started = time.perf_counter()
        _send_all(service.smtp_port, messages)
        accepted = time.perf_counter() - started
        if indexes:
            service.wait_until_indexed(len(messages), timeout=3600)
        searchable = time.perf_counter() - started
    finally:
        service.stop()
    return {"command": " ".join(command), "messages": len(messages), "clients": CLIENTS,
            "accepted_msgs_per_s": round(len(messages) / accepted, 1),
            "seconds_to_250": round(accepted, 2),
            **({"seconds_to_searchable": round(searchable, 2)} if indexes else {})}


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
