"""`archiver run`: every service in one process, fed by SMTP and a journal mailbox at once."""
import hashlib
import smtplib
import time

import pytest

from tests.integration.processes import ArchiverService

pytestmark = pytest.mark.integration


def raw(n: int, via: str) -> bytes:
    return (f"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: via {via} {n}\r\n"
            f"Message-ID: <run-{via}-{n}@example.com>\r\n\r\nbody {n}\r\n").encode()


def test_smtp_and_journal_pull_together_end_up_searchable(tmp_path, dovecot):
    for n in range(5):
        dovecot.deliver(raw(n, "journal"))
    config = {"smtp": {"trusted_servers": ["127.0.0.1/32"]},
              "journal_accounts": [dovecot.account_settings("imap", "tls", poll_seconds=1)]}
    service = ArchiverService(tmp_path, config, command=("run",)).start()
    try:
        with smtplib.SMTP("127.0.0.1", service.smtp_port) as client:
            for n in range(3):
                client.sendmail("alice@example.com", ["bob@example.com"], raw(n, "smtp"))
        service.wait_until_indexed(8, timeout=60)
        expected = {hashlib.sha256(raw(n, via)).hexdigest()
                    for via, count in (("journal", 5), ("smtp", 3)) for n in range(count)}
        assert set(service.search("")) == expected
        assert len(service.search("source:journal")) == 5 and len(service.search("source:smtp")) == 3
        deadline = time.monotonic() + 20
        while dovecot.count() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert dovecot.count() == 0  # taken off the server once durable here
    finally:
        assert service.stop() == 0
