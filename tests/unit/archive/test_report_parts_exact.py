"""A report's machine-readable part (extract.REPORT_TYPES: RFC 3464's delivery status, RFC
8098's disposition, RFC 5965's feedback report, RFC 6533's global kin) with lines in it
that are no header field is still located in the stored message (review r13 F2): its
download, numbered and by part, is its stored bytes transfer-decoded, the returned message
(message/rfc822) or its header (text/rfc822-headers) beside it too, and a bounce
forwarded in a message/rfc822 part downloads as the bytes it was stored with.

Generated over the kind: every report type x each line a real report carries that is no
field (an MTA's free text, a line without a colon, blank lines between the recipients'
groups, a lone CR, 8-bit and invalid UTF-8 bytes, a field name with 8-bit bytes or a NUL,
an over-long line, a "From " line, a "--" line, a continuation first, a Content-Type field
naming a message or a multipart) x LF/CRLF x with or without a final line end x every
transfer encoding; the line at the start, after the first field or at the end of the
report, the report in a bounce or in a bounce forwarded. Its fields stay the body text the
indexer reads; no view raises."""
from __future__ import annotations

import base64
import quopri
import random

import pytest

from services.archive import mime, mimetree
from services.archive.extract import REPORT_TYPES, extract
from services.web import forwarded, mail_view, message_tree

CAP = 1 << 20
# Lines that are no field (and fields mimetree once refused in a delivery-status block).
NO_FIELD = {
    "free-text": b"the mail system said no",
    "no-colon": b"Status 5.1.1 without colon",
    "blank-lines": b"",  # (with the blank lines around it: three between two groups)
    "lone-cr": b"Diagnostic-Code: smtp; 550\rno such user",
    "latin-1": b"\xe9chec de livraison: r\xe9essayez",
    "invalid-utf-8": b"bad \xff\xfe\xc3( \xed\xa0\x80",  # (FF FE first: a UTF-16 mark)
    "8-bit-name": b"\xe9tat: 5.1.1",
    "nul-in-name": b"Sta\x00tus: 5.1.1",
    "over-long": b"Diagnostic-Code: smtp; " + b"x" * 5000 + b" " + b"y" * 3000,
    "from-line": b"From the mail system at mx.example.org",
    "dash-line": b"--notaboundary",
    "continuation": b"   folded on its own",
    "message-type": b"Content-Type: message/rfc822",
    "multipart-type": b"Content-Type: multipart/mixed; boundary=inner",
}
WHERE = ("first", "after-first-field", "last")
ENCODINGS = ("7bit", "8bit", "binary", "quoted-printable", "base64")
ORIGINAL = b"From: a@example.org\nSubject: original\nX-Odd:  two  spaces\n\nhello\nworld\n"
HEADERS_ONLY = b"From: a@example.org\nSubject: original\nX-Odd:  two  spaces\n"
ENCODE = {"quoted-printable": lambda data: quopri.encodestring(data),
          "base64": base64.encodebytes}


def report_content(kind: str, line: bytes, where: str, eol: bytes, final_eol: bool) -> bytes:
    """The report's content: a block for the message, two for recipients (one for a read
    receipt or an abuse report, whose one block this is too), `line` placed at `where`."""
    lines = [b"Reporting-MTA: dns; mx.example.org",
             b"Arrival-Date: Mon, 1 Jan 2024 00:00:00 +0000", b"",
             b"Final-Recipient: rfc822; r1@example.org", b"Action: failed",
             b"Status: 5.1.1", b"", b"Final-Recipient: rfc822; r2@example.org",
             b"Action: delayed"]
    if "global" in kind:
        lines[3] = "Final-Recipient: utf-8; rü@example.org".encode()
    at = {"first": 0, "after-first-field": 1, "last": len(lines)}[where]
    lines[at:at] = [b"", line, b""] if line == b"" else [line]
    content = eol.join(lines)
    return content + eol if final_eol else content


def bounce(kind: str, content: bytes, encoding: str, beside: str, eol: bytes) -> bytes:
    """A multipart/report of a text part, the report sent in `encoding`, and the returned
    message (message/rfc822) or its header (text/rfc822-headers)."""
    body = ENCODE[encoding](content) if encoding in ENCODE else content
    returned = ORIGINAL if beside == "message/rfc822" else HEADERS_ONLY
    head = (f"From: MAILER-DAEMON@example.org\nSubject: bounce\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/report; report-type=x; boundary=RB\n\n"
            f"--RB\nContent-Type: text/plain\n\nnot delivered\n--RB\n"
            f"Content-Type: {kind}\nContent-Transfer-Encoding: {encoding}\n\n").encode()
    return head.replace(b"\n", eol) + body + eol + b"--RB" + eol \
        + f"Content-Type: {beside}".encode() + eol + eol \
        + returned.replace(b"\n", eol) + eol + b"--RB--" + eol


def forwarded_bounce(raw: bytes, eol: bytes) -> bytes:
    return (b"From: b@example.org\nSubject: fwd\nMIME-Version: 1.0\nContent-Type: "
            b"multipart/mixed; boundary=F\n\n--F\nContent-Type: text/plain\n\nsee\n--F\n"
            b"Content-Type: message/rfc822\n\n").replace(b"\n", eol) + raw + eol \
        + b"--F--" + eol


CASES = [(kind, line, eol, final_eol) for kind in REPORT_TYPES for line in NO_FIELD
         for eol in (b"\n", b"\r\n") for final_eol in (True, False)]


def case_id(kind, line, eol, final_eol) -> str:
    ends = "CRLF" if eol == b"\r\n" else "LF"
    return f"{kind.split('/')[1]}-{line}-{ends}{'' if final_eol else '-no-final-eol'}"


def assert_served_as_stored(raw: bytes, numbered: dict[str, bytes], parts: dict[str, bytes]
                            ) -> None:
    """Each numbered file's download is `numbered` of its type, each part's (the page's,
    by its path) `parts` of its path; every message/* part is located in `raw` (not
    rebuilt); no view raises."""
    files = {file.content_type: file for file in mail_view.files(raw)}
    assert set(files) == set(numbered)
    for content_type, file in files.items():
        attachment, data = mail_view.attachment(raw, file.number)
        assert data == numbered[content_type], content_type
        assert attachment.size == file.size == len(data)
    message = forwarded.parse(raw)
    nodes = {node.path: node for node in message_tree.tree(message, None).walk()}
    assert set(parts) <= set(nodes)
    for path, node in nodes.items():
        part = message_tree.part_at(message, path) if path else message
        if path in parts:
            assert message_tree.decoded(part) == parts[path], path
            assert node.size == len(parts[path])
        if node.content_type.startswith("message/"):
            assert forwarded._SOURCE_KEY in part.__dict__, path  # located: not rebuilt
    mail_view.view(raw).as_json()
    message_tree.body(message)


@pytest.mark.parametrize("kind, line, eol, final_eol", CASES,
                         ids=[case_id(*case) for case in CASES])
def test_a_report_and_the_parts_beside_it_are_served_as_stored(kind, line, eol, final_eol):
    rng = random.Random(case_id(kind, line, eol, final_eol))
    for encoding in ENCODINGS:
        content = report_content(kind, NO_FIELD[line], rng.choice(WHERE), eol, final_eol)
        beside = rng.choice(["message/rfc822", "text/rfc822-headers"])
        raw = bounce(kind, content, encoding, beside, eol)
        returned = (ORIGINAL if beside == "message/rfc822" else HEADERS_ONLY).replace(
            b"\n", eol)
        numbered = {kind: content, beside: returned} if beside == "message/rfc822" \
            else {kind: content}  # (a returned header is text: shown, not a file)
        assert_served_as_stored(raw, numbered, {"2": content, "3": returned})
        outer = forwarded_bounce(raw, eol)
        assert_served_as_stored(outer, {"message/rfc822": raw},
                                {"2": raw, "2.1.2": content, "2.1.3": returned})
        body = extract(raw, CAP).body  # its fields: the text searched
        assert "mx.example.org" in body and "r2@example.org" in body
        assert "r1@example.org" in body or "global" in kind


@pytest.mark.parametrize("line", NO_FIELD)
def test_the_parser_builds_a_delivery_status_with_such_lines_itself(line):
    """mimetree reads it (the feedparser's tree, test_mimetree compares them): no message
    holding one is left to the feedparser, which says where no part lies."""
    for eol in (b"\n", b"\r\n", b"\r"):
        for where in WHERE:
            content = report_content(REPORT_TYPES[0], NO_FIELD[line], where, eol, True)
            raw = bounce(REPORT_TYPES[0], content, "7bit", "message/rfc822", eol)
            spans = []
            assert mimetree.parse(raw, mime.POLICY, spans) is not None
            located = {part.get_content_type() for part, _, _ in spans}
            assert {REPORT_TYPES[0], "message/rfc822"} <= located


MARKS = {"UTF-16LE": b"\xff\xfe", "UTF-16BE": b"\xfe\xff", "UTF-32LE": b"\xff\xfe\x00\x00",
         "UTF-8": b"\xef\xbb\xbf", "UTF-16LE text": b"R\x00e\x00"}


@pytest.mark.parametrize("kind", REPORT_TYPES)
@pytest.mark.parametrize("mark", MARKS)
def test_bytes_like_a_byte_order_mark_leave_the_fields_readable(kind, mark):
    """Fields are ASCII or UTF-8 (RFC 3464, 6533, 8098, 5965): a report starting with the
    bytes of a byte-order mark or of UTF-16 text is read as such fields (h17's finding: its
    text was read as UTF-16 and indexed as CJK characters)."""
    content = MARKS[mark] + b" odd start\n" + report_content(kind, b"free text", "last", b"\n",
                                                               True)
    body = extract(bounce(kind, content, "8bit", "message/rfc822", b"\n"), CAP).body
    assert "Reporting-MTA: dns; mx.example.org" in body
    assert "Final-Recipient: rfc822; r2@example.org" in body
