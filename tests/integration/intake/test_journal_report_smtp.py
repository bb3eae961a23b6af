"""Exchange envelope journaling over SMTP: the original is archived byte-exact with the
report's envelope; Bcc recipients are searchable; repeated reports merge recipients."""
import hashlib
import smtplib

import pytest

from tests.integration.processes import ArchiverService

pytestmark = pytest.mark.integration

ORIGINAL = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nCc: carol@example.com\r\n"
            b"Subject: Quarterly numbers\r\nMessage-ID: <q3@example.com>\r\n"
            b"Date: Mon, 02 Sep 2024 10:00:00 +0000\r\n\r\nThe numbers are in.\r\n"
            b"--not a boundary\r\n8-bit: \xe9t\xe9\r\n")


def report(envelope_lines: list[str], boundary: str = "=_journal") -> bytes:
    """A journal report as Microsoft documents it: envelope part, then the original."""
    envelope = "\r\n".join(envelope_lines).encode()
    return (f"From: Microsoft Exchange <journal-agent@example.com>\r\n"
            f"To: journal@archive.example.com\r\nSubject: Quarterly numbers\r\n"
            f"X-MS-Journal-Report:\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode() \
        + envelope + (f"\r\n\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n").encode() \
        + ORIGINAL + f"\r\n--{boundary}--\r\n".encode()


FIRST = ["Sender: alice@example.com", "Subject: Quarterly numbers", "Message-Id: <q3@example.com>",
         "To: bob@example.com", "Cc: carol@example.com", "Bcc: dave@example.com",
         "To: member@example.com, Expanded: sales@example.com"]
SECOND = FIRST[:3] + ["Bcc: erin@example.com", "To: fwd@example.net, Forwarded: frank@example.com"]


@pytest.fixture
def service(tmp_path):
    config = {"smtp": {"trusted_servers": ["127.0.0.1/32"], "local_domains": ["example.com"],
                       "journal_recipient": "journal@archive.example.com"}}
    started = ArchiverService(tmp_path, config, command=("run",)).start()
    yield started
    started.stop()


def send(service, raw, source="127.0.0.1"):
    with smtplib.SMTP("127.0.0.1", service.smtp_port, source_address=(source, 0)) as client:
        client.sendmail("journal-agent@example.com", ["journal@archive.example.com"], raw)


def test_reports_archive_the_original_with_the_envelope_and_merge(service):
    digest = hashlib.sha256(ORIGINAL).hexdigest()
    send(service, report(FIRST))
    service.wait_until_indexed(1)
    raw = service.cli("show", digest, "--json")
    assert raw.returncode == 0, raw.stderr
    for query in ("bcc:dave", "to:dave@example.com", "to:member", "bcc:member", "cc:carol",
                  "subject:quarterly", "to:sales@example.com"):
        assert service.search(query) == [digest], query
    assert service.search("bcc:bob") == []
    send(service, report(SECOND, boundary="=_other"))
    service.wait_until_indexed(1)
    assert service.stats()["stored"] == 1
    for query in ("bcc:erin", "bcc:dave", "to:fwd@example.net", "to:frank"):
        assert service.search(query) == [digest], query
    import subprocess
    from tests.conftest import ARCHIVER
    stored = subprocess.run([str(ARCHIVER), "show", digest, "--raw", "--data", str(service.data)],
                            capture_output=True, check=True).stdout
    assert stored == ORIGINAL


def test_a_report_from_an_untrusted_sender_is_kept_as_it_is(service):
    forged = report(FIRST)
    send(service, forged, source="127.0.0.2")
    service.wait_until_indexed(1)
    assert service.search("bcc:dave") == []
    assert service.search("x-ms-journal-report OR quarterly") == [hashlib.sha256(forged).hexdigest()]
