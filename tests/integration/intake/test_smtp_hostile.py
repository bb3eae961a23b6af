"""SMTP intake against a hostile sender (`archiver serve smtp`, real smtplib and raw
sockets): recipients are bounded, a journal report is unwrapped only when the journaling
server sends it to the journal recipient, AUTH is not offered, and a failed TLS handshake
is one warning line."""
import hashlib
import smtplib
import socket
import ssl
import time

import pytest

from services.archive.store import Store
from tests.integration.archive.hostile import charset_labels, eight_bit_headers, surrogate_texts
from tests.integration.certificates import TestCA
from tests.integration.intake.test_journal_report_smtp import FIRST, ORIGINAL, report
from tests.integration.processes import ArchiverService

pytestmark = pytest.mark.integration

TRUSTED, UNTRUSTED = "127.0.0.1", "127.0.0.2"
JOURNAL = "journal@archive.example.com"


@pytest.fixture
def service(tmp_path):
    cert, key = TestCA(tmp_path / "ca").issue("smtp", dns_names=["localhost"])
    config = {"smtp": {"trusted_servers": ["127.0.0.1/32"], "local_domains": ["example.com"],
                       "journal_recipient": JOURNAL,
                       "tls": {"cert": str(cert), "key": str(key)}}}
    started = ArchiverService(tmp_path, config, command=("serve", "smtp")).start()
    yield started
    started.stop()


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def stored_meta(service, raw: bytes) -> dict:
    import json
    shown = service.cli("show", digest(raw), "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_recipients_past_the_limit_get_452_and_the_message_goes_to_the_rest(service):
    raw = b"From: a@example.org\r\nSubject: many\r\nMessage-ID: <many@x>\r\n\r\nhello\r\n"
    recipients = [f"user{n:04d}@example.com" for n in range(1001)]
    with smtplib.SMTP("127.0.0.1", service.smtp_port, source_address=(UNTRUSTED, 0),
                      timeout=60) as client:
        refused = client.sendmail("a@example.org", recipients, raw)
    assert list(refused) == [recipients[-1]]
    code, text = refused[recipients[-1]]
    assert code == 452 and b"4.5.3 too many recipients" in text
    assert stored_meta(service, raw)["recipients"] == sorted(recipients[:1000])


def test_a_report_a_trusted_gateway_relays_to_a_mailbox_is_archived_as_delivered(service):
    """A gateway passes on what Internet senders write: a forged report to a mailbox must
    not replace the delivered message with the one it claims, nor lose its envelope."""
    forged = report(FIRST)
    with smtplib.SMTP("127.0.0.1", service.smtp_port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("evil@evil.test", ["victim@example.com"], forged)
    meta = stored_meta(service, forged)
    assert meta["recipients"] == ["victim@example.com"] and meta["sender"] == "evil@evil.test"
    assert service.cli("show", digest(ORIGINAL)).returncode != 0  # the claimed one: not there
    # Sent to the journal recipient alone, the same report is the journaling server's.
    with smtplib.SMTP("127.0.0.1", service.smtp_port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("journal-agent@example.com", [JOURNAL], report(FIRST, boundary="=_2"))
    assert "dave@example.com" in stored_meta(service, ORIGINAL)["recipients"]


def test_a_report_whose_envelope_names_no_recipient_is_kept_as_it_came(service):
    empty = report(["Label: x", "Subject: Quarterly numbers"])
    with smtplib.SMTP("127.0.0.1", service.smtp_port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("journal-agent@example.com", [JOURNAL], empty)
    assert stored_meta(service, empty)["sender"] == "journal-agent@example.com"
    assert "the envelope part names no recipient" in service.log.read_text()


def test_auth_is_neither_offered_nor_taken_before_or_after_starttls(service):
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AGFsaWNlAHNlY3JldA==")[0] == 502
        client.starttls(context=_trusting_nothing())
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "LOGIN")[0] == 502


def test_garbage_instead_of_a_tls_handshake_is_one_warning_line(service):
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", service.smtp_port), timeout=30) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            raw.sendall(b"EHLO x\r\n")
            while not reader.readline().startswith(b"250 "):
                pass
            raw.sendall(b"STARTTLS\r\n")
            assert reader.readline().startswith(b"220")
            raw.sendall(b"this is not a ClientHello\r\n" * 20)
            assert reader.read() == b""  # the server closes the session
    deadline = time.monotonic() + 10
    while service.log.read_text().count("STARTTLS handshake failed") < 3:
        assert time.monotonic() < deadline, service.log.read_text()
        time.sleep(0.1)
    assert "Traceback" not in service.log.read_text()
    assert smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30).noop()[0] == 250


def _trusting_nothing() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def test_without_a_journal_recipient_a_trusted_servers_reports_are_unwrapped_as_before(
        tmp_path):
    """Setups made before journal_recipient existed keep working, with a warning."""
    config = {"smtp": {"trusted_servers": ["127.0.0.1/32"], "local_domains": ["example.com"]}}
    service = ArchiverService(tmp_path, config, command=("serve", "smtp")).start()
    try:
        with smtplib.SMTP("127.0.0.1", service.smtp_port, source_address=(TRUSTED, 0)) as c:
            c.sendmail("journal-agent@example.com", [JOURNAL], report(FIRST))
        assert "dave@example.com" in stored_meta(service, ORIGINAL)["recipients"]
        assert "smtp.journal_recipient is not set" in service.log.read_text()
    finally:
        service.stop()


def test_every_hostile_header_message_gets_250_and_is_stored_byte_exact(service):
    """Charsets no charset has, 8-bit bytes in encoded-words, text that decodes to lone
    surrogates (hostile.charset_labels, eight_bit_headers, surrogate_texts): one such
    Subject got 451 on every try, never archived."""
    cases = charset_labels() + eight_bit_headers() + surrogate_texts()
    with smtplib.SMTP("127.0.0.1", service.smtp_port, source_address=(UNTRUSTED, 0),
                      timeout=60) as client:
        for case in cases:
            assert client.sendmail("a@example.org", ["rcpt@example.com"], case.raw) == {}
    store = Store(service.data / "store", 2**30)
    try:
        for case in cases:
            assert store.get(digest(case.raw)) == case.raw, case.name
    finally:
        store.close()
