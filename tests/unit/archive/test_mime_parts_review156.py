"""Review 156: what mime_parts.bounded gives the parser past LINE_CHECKS must read as the
message did (shape and text, never time)."""
import binascii

import pytest

from services.archive import extract, mime, mime_parts

LINE_CHECKS = 2_000


@pytest.fixture(autouse=True)
def lower_limits(monkeypatch):
    monkeypatch.setattr(mime_parts, "LINE_CHECKS", LINE_CHECKS)


def test_a_multipart_message_without_parts_keeps_its_header():
    """A multipart message with no delimiter line and more lines than LINE_CHECKS: its
    body may become text, but its own header (From, To, Subject) must stay the
    message's, not become text of a text part."""
    raw = (b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: secretsubject\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\nbodyword\r\n"
           + b"line\r\n" * (2 * LINE_CHECKS))
    parsed, _ = mime_parts.bounded(raw)
    message = mime.parse_message(raw)
    assert message["Subject"] == "secretsubject"
    assert parsed.startswith(b"From: alice@example.com\r\n")
    extracted = extract.extract(raw, 1 << 20)
    assert extracted.summary.subject == "secretsubject"
    assert extracted.summary.from_addrs == ["alice@example.com"]
    assert "bodyword" in extracted.body
    assert "secretsubject" not in extracted.body


def test_lines_sharing_long_boundary_prefixes_are_charged_for_their_length():
    """20 nested multiparts whose boundaries are 2,000-character prefixes of each other
    and a text part of 50 lines that each start with all of them (a few lines x open
    multiparts, far under LINE_CHECKS): the feedparser's match of a line against a
    boundary compares their common prefix, so each line costs it 20 x 2,000 characters
    (25 MB of such lines under 47 levels: 17 s; 50 MB: 24 s and 536 MB, past the
    extraction worker's limits). What the parser is given must not hold more than
    LINE_CHECKS x 100 characters of such comparisons."""
    import os

    levels, length = 20, 2_000
    bounds = [b"b" * (length - n) for n in range(levels)]
    raw = b"Subject: s\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n" % bounds[0]
    raw += b"".join(b"--%s\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
                    % (bounds[n], bounds[n + 1]) for n in range(levels - 1))
    line = b"--" + b"b" * length + b"x\r\n"
    raw += b"--%s\r\nContent-Type: text/plain\r\n\r\nmarkword\r\n" % bounds[-1] + line * 50
    parsed, _ = mime_parts.bounded(raw)
    body = parsed[parsed.index(b"markword"):] if b"markword" in parsed else \
        parsed[parsed.rindex(b"Content-Type: text/plain"):]
    delimiters = [b"--" + bound for bound in bounds]
    work = sum(len(os.path.commonprefix([each, delimiter]))
               for each in body.split(b"\r\n") if each.startswith(b"--")
               for delimiter in delimiters)
    assert work <= mime_parts.LINE_CHECKS * 100


def _uuencoded(name: bytes, data: bytes) -> bytes:
    """A uuencoded block (POSIX uuencode), CRLF line ends."""
    return (b"begin 644 " + name + b"\r\n"
            + b"".join(binascii.b2a_uu(data[i:i + 45]).replace(b"\n", b"\r\n")
                       for i in range(0, len(data), 45)) + b"`\r\nend\r\n")


@pytest.mark.parametrize("encoding", [b"x-uuencode", b"uuencode", b"x-uue", b"uue"])
def test_an_x_uuencode_body_past_line_checks_is_still_its_file(encoding):
    """A part sent as x-uuencode after a text part past LINE_CHECKS: its file (the begin
    line's name and the file's text) is read as when the message is under the budget,
    and the parser is given its body on a few lines."""
    data = b"uuencodedword and more words\n" * 10
    raw = (b"From: a@b.c\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
           b"--o\r\nContent-Type: text/plain\r\n\r\n" + b"filler\r\n" * (LINE_CHECKS - 10)
           + b"--o\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n"
           + _uuencoded(b"notes.txt", data) + b"--o--\r\n")
    parsed, _ = mime_parts.bounded(raw)
    assert b"begin 644" not in parsed  # (past the budget: base64 on long lines)
    names = {a.filename: a.text for a in extract.extract(raw, 1 << 20).attachments}
    assert names == {"notes.txt": data.decode()}


def test_an_x_uuencode_text_part_past_line_checks_keeps_its_text_and_every_file(
        monkeypatch):
    """A text part of transfer encoding x-uuencode (text around two blocks) past
    LINE_CHECKS reads as it does under the budget: body text, names and files."""
    body = (b"prose before zebra\r\n" + _uuencoded(b"one.txt", b"first wombat file\n")
            + b"middle giraffe\r\n" + _uuencoded(b"two.txt", b"second wombat file\n")
            + b"after okapi\r\n")
    raw = (b"From: a@b.c\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
           b"--o\r\nContent-Type: text/plain\r\n\r\n" + b"filler\r\n" * (LINE_CHECKS - 10)
           + b"--o\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n"
           b"\r\n" + body + b"--o--\r\n")
    assert b"zebra" not in mime_parts.bounded(raw)[0]  # (past the budget: base64)
    past = extract.extract(raw, 1 << 20)
    monkeypatch.setattr(mime_parts, "LINE_CHECKS", 10 ** 12)
    within = extract.extract(raw, 1 << 20)
    assert [(a.filename, a.text) for a in past.attachments] == [
        (a.filename, a.text) for a in within.attachments] == [
        ("one.txt", "first wombat file\n"), ("two.txt", "second wombat file\n")]
    assert past.body == within.body and "okapi" in past.body and "begin" not in past.body
