"""Review r13 of "a report's machine-readable part ... its download is its stored bytes
(transfer-decoded)" (03a7853): reproducers, each asserting the promised behaviour.
Generated: lines a real bounce carries in its message/delivery-status that are no field
(a continuation first, an MTA's free text, a "--" line, a field name with a NUL) x LF/CRLF
x 7bit/8bit/quoted-printable, with the returned message (message/rfc822) beside it.

F2  (medium, before 03a7853 too) one line in a message/delivery-status that is no field
    makes the feedparser read the blocks as a message; the views then serve that part
    rebuilt (report_bytes), not its stored bytes: a blank line inserted after the first
    field (a new block that is not in the mail), CRLF made LF in places (mixed line
    ends), the last line end dropped -- and the whole message is no longer located, so
    the returned message beside it is re-serialized too (CRLF made LF, "X-Odd:  two"
    made "X-Odd: two"). The claim (and r10 F3's rule) is the stored bytes, byte-exact.
    The other four report types are served byte-exact with the same lines.
"""
from __future__ import annotations

import quopri

import pytest

from services.archive.extract import REPORT_TYPES, extract
from services.web import mail_view

ORIGINAL = b"From: a@example.org\nSubject: original\nX-Odd:  two  spaces\n\nhello\nworld\n"
NO_FIELD = {
    "free-text": b"Reporting-MTA: dns; mx.example.org\nthe mail system said no\n\n"
                 b"Final-Recipient: rfc822; r1@example.org\nAction: failed\n",
    "dash-line": b"Reporting-MTA: dns; mx.example.org\n--notaboundary\n"
                 b"Final-Recipient: rfc822; r2@example.org\n",
    "continuation-first": b" folded first\nReporting-MTA: dns; mx.example.org\n\n"
                          b"Final-Recipient: rfc822; r3@example.org\n",
    "no-colon-tail": b"Reporting-MTA: dns; mx.example.org\n\n"
                     b"Final-Recipient: rfc822; r4@example.org\nStatus 5.1.1 without colon\n",
}


def bounce(kind: str, block: bytes, encoding: str, crlf: bool) -> tuple[bytes, bytes, bytes]:
    """(the raw bounce, the report part's decoded stored bytes, the returned message's)."""
    eol = b"\r\n" if crlf else b"\n"
    block, original = block.replace(b"\n", eol), ORIGINAL.replace(b"\n", eol)
    body = quopri.encodestring(block) if encoding == "quoted-printable" else block
    raw = (b"From: MAILER-DAEMON@example.org\nSubject: bounce\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=RB\n\n"
           b"--RB\nContent-Type: text/plain\n\nnot delivered\n--RB\n"
           + f"Content-Type: {kind}\nContent-Transfer-Encoding: {encoding}\n\n".encode()
           ).replace(b"\n", eol) + body + eol + b"--RB" + eol \
        + b"Content-Type: message/rfc822" + eol + eol + original + eol + b"--RB--" + eol
    return raw, block, original


CASES = [(kind, line, encoding, crlf) for kind in REPORT_TYPES for line in NO_FIELD
         for encoding in ("7bit", "8bit", "quoted-printable") for crlf in (False, True)]


@pytest.mark.parametrize("kind, line, encoding, crlf", CASES)
def test_f2_a_report_and_the_message_beside_it_download_as_stored(kind, line, encoding, crlf):
    raw, stored, original = bounce(kind, NO_FIELD[line], encoding, crlf)
    files = {file.content_type: file.number for file in mail_view.files(raw)}
    assert set(files) == {kind, "message/rfc822"}
    assert mail_view.attachment(raw, files[kind])[1] == stored
    assert mail_view.attachment(raw, files["message/rfc822"])[1] == original
    body = extract(raw, 1 << 20).body
    assert "mx.example.org" in body and "@example.org" in body  # its fields: searchable
