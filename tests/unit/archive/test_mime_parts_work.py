"""The parser's work on what mime_parts.bounded lets through, whatever the shape: the
feedparser (which parses any message the fast parser refuses, e.g. one with a "From " line
ending a header block; here made to parse those it reads, to_the_feedparser) matches every
line against every open multipart's boundary, so the lines left inside open multiparts
are its work, and so are delimiter lines right after another (no part to its tree, a line
each to read). These tests assert the shape the parser is given
(its lines, the parts counted), never time (tests/bench/mime_cuts_bench measures it)."""
import base64
import binascii

import pytest

from services.archive import extract, header_blocks, mime, mime_parts, mimetree

MAX_PARTS = 300
MAX_DEPTH = 20
LINE_CHECKS = 200_000


@pytest.fixture(autouse=True)
def lower_limits(monkeypatch):
    monkeypatch.setattr(mime_parts, "MAX_PARTS", MAX_PARTS)
    monkeypatch.setattr(mime_parts, "MAX_DEPTH", MAX_DEPTH)
    # (raising=False: without LINE_CHECKS the tests fail on the shape, not on the patch)
    monkeypatch.setattr(mime_parts, "LINE_CHECKS", LINE_CHECKS, raising=False)


def nest(levels: int, inner: bytes, closed: bool = True) -> bytes:
    """`inner` (a part: header block and body) the only part of `levels` nested multiparts
    (the message the outermost), each with a text part of "level" first; without the
    outermost close delimiter unless `closed`."""
    head = (b"Subject: nested\r\nContent-Type: multipart/mixed; boundary=o0\r\n\r\n"
            b"--o0\r\nContent-Type: text/plain\r\n\r\nfirstword\r\n")
    opening = b"".join(b"--o%d\r\nContent-Type: multipart/mixed; boundary=o%d\r\n\r\n"
                       b"--o%d\r\nContent-Type: text/plain\r\n\r\nlevel\r\n"
                       % (n, n + 1, n + 1) for n in range(levels - 1))
    closing = b"".join(b"--o%d--\r\n" % n for n in reversed(range(levels if closed else 1,
                                                                 levels)))
    return head + opening + b"--o%d\r\n" % (levels - 1) + inner + closing


def lines_in_open_multiparts(parsed: bytes) -> int:
    """How many lines the feedparser reads of `parsed` while some multipart is open
    (every line after the message's header block, at most)."""
    return parsed.count(b"\n", parsed.index(b"\r\n\r\n"))


def to_the_feedparser(monkeypatch) -> None:
    """mimetree refusing every message, as it once refused these (their close delimiter
    missing): the feedparser parses them, whose work these tests bound."""
    monkeypatch.setattr(mimetree, "parse", lambda raw, policy, spans=None, held=False: None)


def read_past_and_within_line_checks(raw: bytes, monkeypatch):
    """`raw` extracted past LINE_CHECKS (asserting its bodies were given on a few lines,
    no part cut) and then with LINE_CHECKS out of reach: (past, within)."""
    parsed, parts_cut = mime_parts.bounded(raw)
    assert parts_cut == 0
    assert lines_in_open_multiparts(parsed) < 20 * MAX_DEPTH
    to_the_feedparser(monkeypatch)
    past = extract.extract(raw, 10_000_000)
    monkeypatch.setattr(mime_parts, "LINE_CHECKS", 10 ** 12, raising=False)
    return past, extract.extract(raw, 10_000_000)


def test_a_too_deep_subtree_is_one_line_to_the_parser_and_its_text_is_read(monkeypatch):
    """Regression: 48 multiparts, then 400,000 small multiparts at depth 49: the subtree's
    2.6 million lines were a text part's lines inside 48 open multiparts."""
    unit = (b"--c\r\nContent-Type: multipart/mixed; boundary=d\r\n\r\n--d\r\n\r\nx\r\n"
            b"--d--\r\n")
    raw = nest(MAX_DEPTH, b"Content-Type: multipart/mixed; boundary=c\r\n\r\n" + unit * 2000
               + b"--c\r\n\r\ndeepword\r\n--c--\r\n", closed=False)
    parsed, count = mime_parts.bounded(raw)
    to_the_feedparser(monkeypatch)
    assert count == 2  # the subtree, and the "level" part beside it at the same depth
    assert lines_in_open_multiparts(parsed) < 10 * MAX_DEPTH
    extracted = extract.extract(raw, 64 << 20)  # (over any body: extract.body_cut)
    assert "deepword" in extracted.body and "firstword" in extracted.body
    assert "boundary=d" in extracted.body  # (the subtree's lines are its text)


def test_delimiter_lines_in_a_row_count_as_parts_and_are_cut():
    """Regression: 5 million "--b" lines in a row were no parts, nothing was cut, and the
    parser read every one (a Python step each, in either parser)."""
    run = b"--b\r\n" * (20 * MAX_PARTS)
    raw = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\n\r\nfirstword\r\n" + run + b"--b\r\n\r\nlastword\r\n--b--\r\n")
    parsed, count = mime_parts.bounded(raw)
    # The run (its delimiter lines but the first, which ends the first part), the last
    # part's delimiter line and the last part are cut: from the run's start on, the rest.
    assert count == 20 * MAX_PARTS + 1
    assert parsed.count(b"--b") <= MAX_PARTS + 2
    extracted = extract.extract(raw, 100_000)
    assert "firstword" in extracted.body and "lastword" in extracted.body
    assert extracted.cut is not None


def test_a_short_run_of_delimiter_lines_is_left_as_it_is():
    run = b"--b\r\n" * (MAX_PARTS // 2)
    raw = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\n\r\nfirstword\r\n" + run + b"--b\r\n\r\nlastword\r\n--b--\r\n")
    assert mime_parts.bounded(raw) == (raw, 0)


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "unclosed"])
def test_delimiter_lines_in_an_epilogue_deep_down_are_not_read_line_by_line(closed):
    """Regression: a million "--b" lines in the epilogue of a multipart under 46 others."""
    inner = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nlastword\r\n"
             b"--b--\r\n" + b"--b\r\n" * (LINE_CHECKS // 10))
    raw = nest(MAX_DEPTH - 2, inner, closed)
    parsed, count = mime_parts.bounded(raw)
    assert count == 0  # (no part is cut: an epilogue is no part's text)
    assert lines_in_open_multiparts(parsed) < 20 * MAX_DEPTH
    extracted = extract.extract(raw, 100_000)
    assert "firstword" in extracted.body and "lastword" in extracted.body
    assert extracted.cut is None


@pytest.mark.parametrize("encoding", ["", "7bit", "quoted-printable", "base64"])
def test_a_long_text_part_deep_down_is_one_line_to_the_parser_and_reads_the_same(
        encoding, monkeypatch):
    """Regression: a text part of 1.3 million short lines under 46 multiparts (the
    feedparser matched each against 46 boundaries)."""
    words = b"".join(b"word%d caf\xc3\xa9\r\n" % n for n in range(LINE_CHECKS // 2))
    body = {"": words, "7bit": words, "base64": base64.encodebytes(words),
            "quoted-printable": words.replace(b"\xc3\xa9", b"=C3=A9")}[encoding]
    field = b"Content-Transfer-Encoding: %s\r\n" % encoding.encode() if encoding else b""
    inner = b"Content-Type: text/plain; charset=utf-8\r\n" + field + b"\r\n" + body
    raw = nest(MAX_DEPTH - 2, inner, closed=False)
    extracted, as_lines = read_past_and_within_line_checks(raw, monkeypatch)
    assert extracted.body == as_lines.body
    assert "word%d café" % (LINE_CHECKS // 2 - 1) in extracted.body


def test_a_long_attachment_deep_down_is_still_read():
    data = b"".join(b"attached%d\n" % n for n in range(LINE_CHECKS // 2))
    inner = (b'Content-Type: text/plain; name="a.txt"\r\n'
             b'Content-Disposition: attachment; filename="a.txt"\r\n'
             b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data))
    raw = nest(MAX_DEPTH - 2, inner + b"--o%d\r\n\r\nbeside\r\n" % (MAX_DEPTH - 3))
    parsed, count = mime_parts.bounded(raw)
    assert count == 0 and lines_in_open_multiparts(parsed) < 20 * MAX_DEPTH
    extracted = extract.extract(raw, 10_000_000)
    texts = {entry.filename: entry.text for entry in extracted.attachments}
    assert "attached%d" % (LINE_CHECKS // 2 - 1) in texts["a.txt"]
    assert "beside" in extracted.body


def test_a_message_within_the_line_checks_is_left_as_it_is():
    inner = b"Content-Type: text/plain\r\n\r\n" + b"w\r\n" * (LINE_CHECKS // 40)
    raw = nest(MAX_DEPTH - 2, inner)
    assert mime_parts.bounded(raw) == (raw, 0)


def test_the_second_count_does_not_cut_the_text_part_of_the_first(monkeypatch):
    """Regression: with MAX_PARTS + 100 parts under a header block header_blocks cuts,
    mime_parts counted again (parse_message) and cut its own text part: a stray
    "Content-Type: text/plain" line in the text, and one part too many counted."""
    monkeypatch.setattr(header_blocks, "HEADER_LINES_LIMIT", 5_000)
    units = b"".join(b"--b\r\n\r\np%d\r\n" % n for n in range(MAX_PARTS + 99))
    raw = (b"Subject: s\r\n" + b"X:y\r\n" * 6_000
           + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + units + b"--b--\r\n")
    message = mime.parse_message(raw)
    [defect] = [each for each in message.defects if isinstance(each, mime_parts.PartsNotParsed)]
    assert defect.count == 100  # (the message and MAX_PARTS + 99 parts: 100 past MAX_PARTS)
    rest = message.get_payload()[-1].get_payload(decode=True)
    assert rest.startswith(b"\r\np%d\r\n" % (MAX_PARTS - 1))
    assert b"Content-Type" not in rest and b"p%d" % (MAX_PARTS + 98) in rest


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "unclosed"])
def test_a_multipart_s_fields_are_not_walked_for_each_of_its_parts(closed, monkeypatch):
    """Both parsers ask a multipart's type for each part they make, and Message.get walks
    every field: 3,000 parts under a header block of 50,000 lines took 170 s. Its fields
    are walked a bounded number of times, whatever the number of parts."""
    from email.message import Message
    walked = []
    real_get = Message.get

    def counting_get(self, name, failobj=None):
        walked.append(len(self._headers))
        return real_get(self, name, failobj)

    monkeypatch.setattr(Message, "get", counting_get)
    units = b"".join(b"--b\r\n\r\np%d\r\n" % n for n in range(MAX_PARTS - 10))
    raw = (b"Subject: s\r\n" + b"X:y\r\n" * 2_000
           + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + units
           + (b"--b--\r\n" if closed else b""))
    message = mime.parse_message(raw)
    assert len(message.get_payload()) == MAX_PARTS - 10
    assert sum(count > 1_000 for count in walked) < 20


def test_a_message_s_type_follows_its_fields():
    message = mime.parse_message(b"Content-Type: text/html\r\n\r\nx")
    assert message.get_content_type() == "text/html"
    message.replace_header("Content-Type", "text/plain")
    assert message.get_content_type() == "text/plain"
    del message["Content-Type"]
    assert message.get_content_type() == "text/plain"
    message["Content-Type"] = "image/png"
    assert message.get_content_type() == "image/png"
    message.set_type("application/pdf")
    assert message.get_content_type() == "application/pdf"
    message.set_default_type("message/rfc822")
    del message["Content-Type"]
    assert message.get_content_type() == "message/rfc822"
    message.add_header("Content-Type", "text/csv")
    assert message.get_content_type() == "text/csv"


@pytest.mark.parametrize("content", ["file", "no-file"])
def test_a_long_x_uuencode_part_deep_down_is_one_line_to_the_parser_and_reads_the_same(
        content, monkeypatch):
    """Regression (review 157 F5, scaled down): an x-uuencode part of 8.3 million lines
    under 47 open multiparts (25 MB) took the parser 52.9 s and 874 MB when its lines were
    given as they are; review 156 F2: given as base64, it lost its begin line's name and
    its file's text. Its body is a few lines to the parser, and it reads the same: its
    file by name, or (no block in it) its text."""
    count = LINE_CHECKS // 10  # (x MAX_DEPTH - 2 open multiparts: past LINE_CHECKS)
    if content == "file":
        data = b"".join(b"uuline%06d of the file\n" % n for n in range(count * 45 // 24))
        body = (b"begin 644 big notes.txt\r\n"
                + b"".join(binascii.b2a_uu(data[at:at + 45]).replace(b"\n", b"\r\n")
                           for at in range(0, len(data), 45)) + b"`\r\nend\r\n")
    else:
        body = b"".join(b"a%d\r\n" % n for n in range(count))
    inner = (b"Content-Type: application/octet-stream\r\n"
             b"Content-Transfer-Encoding: x-uuencode\r\n\r\n" + body)
    raw = nest(MAX_DEPTH - 2, inner + b"--o%d\r\n\r\nbeside\r\n" % (MAX_DEPTH - 3),
               closed=False)
    assert raw.count(b"\n") > count
    extracted, as_lines = read_past_and_within_line_checks(raw, monkeypatch)
    read = [(entry.filename, entry.text) for entry in extracted.attachments]
    assert read == [(entry.filename, entry.text) for entry in as_lines.attachments]
    if content == "file":
        assert read == [("big notes.txt", data.decode())]
    else:
        assert read[0][1].rstrip().endswith("\na%d" % (count - 1))
    assert "beside" in extracted.body
