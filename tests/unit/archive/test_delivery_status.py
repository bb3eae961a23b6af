"""Bounces (RFC 3464 delivery status notifications; RFC 6533's global, UTF-8 kin): the
fields of their message/delivery-status part (Final-Recipient, Action, Status,
Diagnostic-Code, Remote-MTA, Reporting-MTA...) are body text, a line each, so that an admin
who searches for the bounced address, its domain, the status code or the diagnostic text
finds the bounce. A generated corpus: one recipient or several, LF and CRLF, folded fields,
8-bit and UTF-8 global ones, transfer-encoded ones, one forwarded in a message, a message
that is itself a delivery status, malformed blocks."""
from __future__ import annotations

import base64
import quopri

import pytest

from services.archive.extract import body_text, extract
from tests.unit.archive.test_uuencode import found

CAP = 64 * 1024
HEAD = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
        b"To: alice@example.com\nSubject: Undelivered Mail Returned to Sender\n"
        b"Date: Tue, 01 Jul 2003 10:52:37 +0000\nMessage-ID: <bounce@mx.example.net>\n"
        b"MIME-Version: 1.0\n")
PER_MESSAGE = b"Reporting-MTA: dns; mx.example.net\nArrival-Date: Tue, 1 Jul 2003 10:52:37 +0000\n"


def recipient(address: bytes, status: bytes = b"5.1.1", address_type: bytes = b"rfc822",
              diagnostic: bytes = b"User unknown in local recipient table") -> bytes:
    """One per-recipient block, its Diagnostic-Code folded."""
    return (b"Final-Recipient: " + address_type + b"; " + address + b"\n"
            b"Original-Recipient: " + address_type + b";" + address + b"\n"
            b"Action: failed\nStatus: " + status + b"\n"
            b"Remote-MTA: dns; mail.example.org\n"
            b"Diagnostic-Code: smtp; 550 " + status + b" <" + address + b">: Recipient\n"
            b"    address rejected: " + diagnostic + b"\n")


def report(status: bytes, content_type: bytes = b"message/delivery-status",
           encoding: bytes | None = None) -> bytes:
    """A multipart/report bounce: a human-readable part, the delivery status, the headers
    of the message that bounced."""
    header = b"Content-Type: " + content_type + b"\n" + (
        b"Content-Transfer-Encoding: " + encoding + b"\n" if encoding else b"")
    return HEAD + (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"=B=\"\n\n"
        b"--=B=\nContent-Type: text/plain\n\nThis is the mail system at mx.example.net.\n\n"
        b"--=B=\n" + header + b"\n" + status +
        b"\n--=B=\nContent-Type: text/rfc822-headers\n\nFrom: alice@example.com\n"
        b"Subject: the quarterly figures\n\n--=B=--\n")


def blocks(*recipients: bytes) -> bytes:
    return b"\n".join([PER_MESSAGE, *recipients])


ONE = blocks(recipient(b"nobody@example.org"))
SEVERAL = blocks(recipient(b"nobody@example.org"),
                 recipient(b"gone@other.example", b"5.2.1", diagnostic=b"mailbox disabled"),
                 recipient(b"full@third.example", b"4.2.2", diagnostic=b"over quota"))
UTF8 = blocks(recipient("j\u00f6rg@b\u00fccher.example".encode(), address_type=b"utf-8",
                        diagnostic="Empf\u00e4nger unbekannt".encode()))


def forwarded(inner: bytes) -> bytes:
    return (b"From: alice@example.com\nTo: postmaster@example.com\nSubject: Fwd: bounce\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=OUT\n\n"
            b"--OUT\nContent-Type: text/plain\n\nwhy did this bounce?\n"
            b"--OUT\nContent-Type: message/rfc822\n\n" + inner + b"\n--OUT--\n")


def variants():
    """(id, raw, [queries that find it], the field that holds them) of each kind of bounce:
    the body's, or for a bounce forwarded in a message, the attachment's that message is."""
    one = ["nobody@example.org", "example.org", '"550 5.1.1"', "5.1.1", '"recipient table"',
           "mail.example.org", "mx.example.net"]
    several = one + ["gone@other.example", "5.2.1", '"mailbox disabled"', "full@third.example",
                     "4.2.2", "quota"]
    utf8 = ["j\u00f6rg@b\u00fccher.example", "b\u00fccher.example", "empf\u00e4nger", "5.1.1"]
    for newline in (b"\n", b"\r\n"):
        ending = "crlf" if newline == b"\r\n" else "lf"
        cases = [
            ("one", report(ONE), one),
            ("several", report(SEVERAL), several),
            ("global-8bit", report(UTF8, b"message/global-delivery-status", b"8bit"), utf8),
            ("global-base64", report(base64.encodebytes(UTF8),
                                     b"message/global-delivery-status", b"base64"), utf8),
            ("global-quoted-printable", report(quopri.encodestring(UTF8),
                                               b"message/global-delivery-status",
                                               b"quoted-printable"), utf8),
            ("8bit-in-plain-status", report(UTF8), utf8),
            ("base64-status", report(base64.encodebytes(SEVERAL), encoding=b"base64"), several),
            ("forwarded", forwarded(report(SEVERAL)), several),
            ("the-message-is-the-status",
             HEAD + b"Content-Type: message/delivery-status\n\n" + SEVERAL, several),
            ("no-per-message-block", report(recipient(b"nobody@example.org")), one[:-1]),
            ("no-blank-line-between-blocks",
             report(PER_MESSAGE + recipient(b"nobody@example.org")), one),
            ("prose-before-fields",
             report(b"the status follows\n" + ONE), one),
            ("lines-without-colon",
             report(PER_MESSAGE + b"\nFinal-Recipient rfc822 nobody@example.org\n"
                    b"Status 5.1.1 (550 5.1.1 User unknown in local recipient table)\n"
                    b"Remote-MTA: dns; mail.example.org\n"),
             ["nobody@example.org", '"550 5.1.1"', "mail.example.org"]),
            ("many-blank-lines", report(b"\n\n\n" + ONE.replace(b"\nFinal", b"\n\n\n\nFinal")),
             one),
        ]
        for name, raw, queries in cases:
            field = "attachment" if name == "forwarded" else "body"
            yield f"{name}-{ending}", raw.replace(b"\n", newline), queries, field


VARIANTS = list(variants())


@pytest.mark.parametrize("raw, queries, field", [variant[1:] for variant in VARIANTS],
                         ids=[variant[0] for variant in VARIANTS])
def test_a_bounce_is_found_by_recipient_domain_status_and_diagnostic(raw, queries, field):
    assert not extract(raw, CAP).failures
    for query in queries:
        assert found(raw, query) == 1, query
        assert found(raw, f"{field}:{query}") == 1, query
    assert found(raw, "nosuchone@example.org") == 0


@pytest.mark.parametrize("raw", [variant[1] for variant in VARIANTS if "forwarded" not in
                                 variant[0]],
                         ids=[variant[0] for variant in VARIANTS if "forwarded" not in variant[0]])
def test_the_fields_are_body_lines_a_result_page_shows_too(raw):
    extracted = extract(raw, CAP)
    body = extracted.body
    assert "Final-Recipient: rfc822; nobody@example.org\r" not in body  # lines of their own
    assert "\n    " not in body  # folded fields unfolded
    assert ("Status: 5.1.1" in body or "Status: 5.2.1" in body
            or "Status 5.1.1" in body)
    assert body_text(raw) == body
    types = [a.mime_type for a in extracted.attachments]
    assert types in ([], ["message/delivery-status"], ["message/global-delivery-status"])


def test_each_recipient_block_is_its_own_lines():
    body = extract(report(SEVERAL), CAP).body
    assert ("Final-Recipient: rfc822; nobody@example.org\n"
            "Original-Recipient: rfc822;nobody@example.org\nAction: failed\nStatus: 5.1.1\n"
            "Remote-MTA: dns; mail.example.org\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address "
            "rejected: User unknown in local recipient table\n\n"
            "Final-Recipient: rfc822; gone@other.example\n") in body
    assert body.startswith("This is the mail system at mx.example.net.\n\n"
                           "Reporting-MTA: dns; mx.example.net\n")


def test_a_global_status_in_utf8_reads_as_utf8():
    body = extract(report(UTF8, b"message/global-delivery-status"), CAP).body
    assert "Final-Recipient: utf-8; j\u00f6rg@b\u00fccher.example\n" in body
    assert "Empf\u00e4nger unbekannt" in body and "\ufffd" not in body


def test_a_bounce_whose_human_part_is_html_only_keeps_that_text_whole():
    """A bounce whose readable part is text/html alone: that HTML is the body as it was
    before its status was read (in order, every word, phrases found), the fields beside it;
    the fields are no plain-text alternative that leaves of the HTML only the words they
    lack ("does not exist" lost "not", "delivery failed" its second word)."""
    raw = HEAD + (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"=B=\"\n\n"
        b"--=B=\nContent-Type: text/html\n\n<html><body><p>Your message to nobody@example.org"
        b" could not be delivered.</p><p>The mailbox nobody@example.org does not exist. "
        b"Delivery failed.</p></body></html>\n"
        b"--=B=\nContent-Type: message/delivery-status\n\n" + ONE + b"\n--=B=--\n")
    body = extract(raw, CAP).body
    assert "The mailbox nobody@example.org does not exist. Delivery failed." in body
    assert "Final-Recipient: rfc822; nobody@example.org\n" in body
    assert found(raw, '"does not exist"') == found(raw, '"delivery failed"') == 1
    assert body_text(raw) == body


def test_the_status_fields_take_no_word_from_the_html_part_beside_them():
    """The same with the bounced message's headers (text/rfc822-headers, plain text): the
    HTML adds the words the plain text lacks, as before; that the status fields hold a word
    too ("failed", the address) does not take it from the HTML's text."""
    raw = HEAD + (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"=B=\"\n\n"
        b"--=B=\nContent-Type: text/html\n\n<html><body><p>The mailbox nobody@example.org "
        b"does not exist. Delivery failed.</p></body></html>\n"
        b"--=B=\nContent-Type: message/delivery-status\n\n" + ONE +
        b"\n--=B=\nContent-Type: text/rfc822-headers\n\nFrom: alice@example.com\n"
        b"Subject: the quarterly figures\n\n--=B=--\n")
    assert found(raw, '"delivery failed"') == found(raw, '"does not exist"') == 1
