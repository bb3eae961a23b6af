"""Header blocks padded with many lines, in every place and shape (tests.padded_headers):
what they hide is read, and the parser holds a bounded number of fields. A message padded
with 3 million header lines once ran an extraction worker out of memory, and its body was
never searchable (the big ones: tests/integration/archive/test_padded_headers_cli.py)."""
import pytest

from services.archive import extract, header_blocks, mime
from tests.padded_headers import corpus

LINES = 40_000  # of padding: past LIMIT, which the tests set lower than the real one
LIMIT = 5_000


@pytest.fixture(autouse=True)
def lower_limit(monkeypatch):
    """Parsing the real limit's 200,000 lines 50 times would take a minute: the same cuts
    at a lower limit (the real one, on 3 million lines: test_padded_headers_cli)."""
    monkeypatch.setattr(header_blocks, "HEADER_LINES_LIMIT", LIMIT)
    monkeypatch.setattr(header_blocks, "KEPT_FIELD_LINES", LIMIT // 10)


def found_texts(extracted) -> str:
    names = [entry.filename or "" for entry in extracted.attachments]
    texts = [entry.text for entry in extracted.attachments]
    return " ".join([extracted.body, *names, *texts])


@pytest.mark.parametrize("case", corpus(LINES), ids=lambda case: case.name)
def test_what_a_padded_header_block_hides_is_read(case):
    extracted = extract.extract(case.raw, 100_000)
    assert extracted.failed is None, case.name
    for word in case.words:
        assert word in found_texts(extracted), (case.name, word)


@pytest.mark.parametrize("case", corpus(LINES), ids=lambda case: case.name)
def test_the_parser_gets_a_bounded_number_of_fields(case):
    message = mime.parse_message(case.raw)
    names = [name.lower() for part in mime.iter_parts(message) for name in part.keys()]
    other = [name for name in names if not name.startswith("content-") and name != "mime-version"]
    assert len(other) <= LIMIT, case.name  # of some 40,000 in the padding
    assert len(names) - len(other) <= 12, case.name  # the MIME fields of its parts


def test_the_cut_keeps_whole_fields_and_the_first_of_each_mime_name():
    pad = b"".join(b"X-Pad: %d\r\n" % n for n in range(LINES))
    raw = (b"Subject: s\r\n" + pad + b"Content-Type: text/html\r\nContent-Type: text/plain\r\n"
           b"content-transfer-encoding : base64\r\n\tcontinued\r\n\r\nPGI+aGk8L2I+\r\n")
    kept = header_blocks.bounded(raw)
    head, _, body = kept.partition(b"\r\n\r\n")
    assert body == b"PGI+aGk8L2I+\r\n"
    lines = head.split(b"\r\n")
    assert len(lines) == LIMIT + 3
    assert lines[0] == b"Subject: s"
    assert all(line.startswith(b"X-Pad: ") and line[7:].isdigit() for line in lines[1:-3])
    assert lines[-3:] == [b"Content-Type: text/html", b"content-transfer-encoding : base64",
                          b"\tcontinued"]


def test_a_kept_mime_field_of_millions_of_bytes_is_cut_at_a_line_end():
    folded = b"".join(b"\tx%d=y\r\n" % n for n in range(LINES))
    raw = (b"Subject: s\r\n" + b"".join(b"X-Pad: %d\r\n" % n for n in range(LINES))
           + b"Content-Type: text/plain; charset=utf-8;\r\n" + folded + b"\r\nbody\r\n")
    kept = header_blocks.bounded(raw)
    field = kept[kept.index(b"Content-Type"):kept.index(b"\r\n\r\n") + 2]
    assert len(field) <= header_blocks.KEPT_FIELD_LIMIT and field.endswith(b"\r\n")
    assert mime.parse_message(raw).get_content_charset() == "utf-8"


def big_body(line: bytes) -> bytes:
    return line * 2 * LIMIT


@pytest.mark.parametrize("raw", [
    b"Subject: small header\r\n\r\n" + big_body(b"Key: value lines in a body\r\n"),
    b"Subject: a body glued to its header\r\n" + big_body(b"QUJDREVGR0hJSktMTU5PUA==\r\n"),
    b"To: " + b", ".join(b"user%d@example.org" % n for n in range(60_000)) + b"\n\nbody",
    (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
     + big_body(b"Key: value\r\n") + b"--b--\r\n"),
], ids=["body-of-field-lines", "no-blank-line", "one-long-line", "part-body-of-field-lines"])
def test_bodies_and_short_blocks_are_left_as_they_are(raw):
    assert header_blocks.bounded(raw) is raw


def padded_part_message(content_type: bytes, delimiter: bytes, first_line: bytes = b"") -> bytes:
    """A multipart whose first part's header is padded, the words after the padding."""
    pad = b"".join(b"X-Pad: %d\r\n" % n for n in range(LINES))
    return (b"From: a@example.org\r\nSubject: s\r\n" + content_type + b"\r\n\r\n"
            + delimiter + b"\r\n" + first_line + b"Content-Type: application/octet-stream\r\n"
            + pad + b"Content-Disposition: attachment; filename=\"hiddenfilename.txt\"\r\n\r\n"
            b"data\r\n" + delimiter + b"\r\nContent-Type: text/plain\r\n\r\nhiddenpartword\r\n"
            + delimiter.rstrip() + b"--\r\n")


LONG_BOUNDARY = b"L" * 75
# Shapes whose padding the first walk missed, as the parser reads them: a boundary in RFC
# 2231 continuations, one of more than 70 characters, a quoted "boundary=" before the real
# one, a Content-Type whose value starts on a continuation line, delimiter lines with more
# than 200 spaces of transport padding, a digest's part with no Content-Type (a
# message/rfc822 by default) and a delivery status's per-recipient block.
MISSED = {
    "rfc2231-boundary": padded_part_message(
        b'Content-Type: multipart/mixed; boundary*0="b"; boundary*1="1"', b"--b1"),
    "long-boundary": padded_part_message(
        b'Content-Type: multipart/mixed; boundary="' + LONG_BOUNDARY + b'"', b"--" + LONG_BOUNDARY),
    "quoted-decoy": padded_part_message(
        b'Content-Type: multipart/mixed; x="; boundary=zz"; boundary=b1', b"--b1"),
    "type-on-continuation-line": padded_part_message(
        b"Content-Type:\r\n multipart/mixed; boundary=b1", b"--b1"),
    "transport-padding": padded_part_message(
        b"Content-Type: multipart/mixed; boundary=b1", b"--b1" + b" " * 300),
    "digest-default": padded_part_message(
        b"Content-Type: multipart/digest; boundary=b1", b"--b1", first_line=b"\r\n"),
}


@pytest.mark.parametrize("name", MISSED)
def test_parts_the_parser_reads_are_bounded_however_their_type_is_written(name):
    raw = MISSED[name]
    assert header_blocks.bounded(raw) is not raw
    message = mime.parse_message(raw)
    fields = sum(len(part.keys()) for part in mime.iter_parts(message))
    assert fields <= LIMIT + 12, name
    extracted = extract.extract(raw, 100_000)
    assert "hiddenpartword" in found_texts(extracted), name


@pytest.mark.parametrize("line", [b"From someone", b":x"])
def test_a_line_the_parser_keeps_in_the_header_does_not_end_the_block(line):
    """The feedparser's headerRE takes a "From " line and a line of an empty name for
    header lines (ignoring them): the padding after one is still header."""
    pad = b"".join(b"X-Pad: %d\r\n" % n for n in range(LINES))
    raw = (b"From: a@example.org\r\nSubject: s\r\n" + line + b"\r\n" + pad
           + b"Content-Type: text/plain\r\n\r\nhiddenbodyword\r\n")
    assert header_blocks.bounded(raw) is not raw
    assert len(mime.parse_message(raw).keys()) <= LIMIT + 1
    assert "hiddenbodyword" in extract.extract(raw, 100_000).body


def test_a_delivery_status_block_is_bounded():
    pad = b"".join(b"X-Pad: %d\r\n" % n for n in range(LINES))
    raw = (b"From: a@example.org\r\nContent-Type: multipart/report; boundary=b1\r\n\r\n"
           b"--b1\r\nContent-Type: text/plain\r\n\r\nbounce\r\n"
           b"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
           b"Final-Recipient: rfc822; b@example.com\r\n" + pad
           + b"--b1\r\nContent-Type: text/plain\r\n\r\nhiddenpartword\r\n--b1--\r\n")
    assert header_blocks.bounded(raw) is not raw
    fields = sum(len(part.keys()) for part in mime.parse_message(raw).walk())
    assert fields <= LIMIT + 12
    assert "hiddenpartword" in found_texts(extract.extract(raw, 100_000))


def test_a_line_holding_the_delimiter_millions_of_times_costs_one_find():
    """Each look at a delimiter not at a line's start once cost a few microseconds: 13
    million of them took the walk 25 s, past the worker's time limit (and the fallback's)."""
    import time
    body = (b"--a" * 1000 + b"\n") * 4000  # 12 million delimiters, 4,000 lines
    raw = (b"Subject: s\nContent-Type: multipart/mixed; boundary=a\n\n--a\n"
           b"Content-Type: text/plain\n\nword\n" + b"\n" * LIMIT + body + b"--a--\n")
    started = time.process_time()
    assert header_blocks.bounded(raw) is raw
    assert time.process_time() - started < 2


def test_fields_of_distinct_content_names_are_not_kept_past_the_cut():
    """Only the MIME fields the parser reads are kept: a padding of fields named
    Content-Pad-0, Content-Pad-1... was kept whole, one field of each name."""
    pad = b"".join(b"Content-Pad-%d: x\r\n" % n for n in range(LINES))
    raw = (b"From: a@example.org\r\nSubject: s\r\n" + pad
           + b"Content-Type: text/plain\r\n\r\nhiddenbodyword\r\n")
    assert len(mime.parse_message(raw).keys()) <= LIMIT + 1
    assert "hiddenbodyword" in extract.extract(raw, 100_000).body


def test_a_recipient_list_past_the_limit_keeps_its_head_and_the_fields_after_it():
    """A To of more addresses than the limit has lines, folded one a line, was cut out
    whole, and the Subject and Date after it too: the message was not found by them."""
    recipients = b",\r\n ".join(b"user%d@example.org" % n for n in range(2 * LIMIT))
    raw = (b"From: a@example.org\r\nTo: " + recipients + b"\r\nSubject: the subject\r\n"
           b"Date: Thu, 3 Dec 2026 07:00:00 +0000\r\n\r\nbody\r\n")
    summary = extract.extract(raw, 100_000).summary
    assert summary.subject == "the subject"
    assert summary.sent_date is not None
    assert summary.to[:2] == ["user0@example.org", "user1@example.org"]
    assert len(summary.to) <= header_blocks.KEPT_FIELD_LINES


def test_a_kept_field_holds_at_most_kept_field_lines_lines():
    folded = b"".join(b"\tx\r\n" for _ in range(LINES))
    raw = (b"Subject: s\r\n" + b"".join(b"X-Pad: %d\r\n" % n for n in range(LINES))
           + b"To: a@example.org\r\n" + folded + b"\r\nbody\r\n")
    kept = header_blocks.bounded(raw)
    head = kept[kept.index(b"\r\nTo: ") + 2:kept.index(b"\r\n\r\n") + 2]
    assert head.count(b"\n") == header_blocks.KEPT_FIELD_LINES


def test_padding_past_max_blocks_blocks_is_bounded(monkeypatch):
    """The walk reads MAX_BLOCKS blocks; past them, each run of header lines counts against
    the limit: 100,001 empty parts before a padded one once left its padding whole."""
    monkeypatch.setattr(header_blocks, "MAX_BLOCKS", 100)
    pad = b"".join(b"X-Pad: %d\r\n" % n for n in range(LINES))
    raw = (b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
           + b"--b1\r\n\r\np\r\n" * 150 + b"--b1\r\nContent-Type: application/octet-stream\r\n"
           + pad + b"Content-Disposition: attachment; filename=\"hiddenfilename.txt\"\r\n\r\n"
           b"data\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhiddenpartword\r\n--b1--\r\n")
    message = mime.parse_message(raw)
    assert sum(len(part.keys()) for part in message.walk()) <= LIMIT + 12
    assert "hiddenpartword" in found_texts(extract.extract(raw, 100_000))
    assert "hiddenfilename" in found_texts(extract.extract(raw, 100_000))


# RFC 2046 5.1.1: bchars include ":", so a delimiter line "--a:b" has a header line's
# syntax (a name "--a", a colon): a cut of header lines must still leave every one whole.
COLON_BOUNDARY = b"a:b"


def colon_boundary_message(parts: list[bytes]) -> bytes:
    """A multipart/mixed of boundary "a:b" holding `parts` (each a part's lines, CRLF)."""
    delimiter = b"--" + COLON_BOUNDARY + b"\r\n"
    return (b"From: a@example.org\r\nSubject: s\r\nContent-Type: multipart/mixed; "
            b'boundary="' + COLON_BOUNDARY + b'"\r\n\r\n'
            + b"".join(delimiter + part for part in parts)
            + b"--" + COLON_BOUNDARY + b"--\r\n")


HIDDEN_ATTACHMENT = (b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment;"
                     b' filename="hiddenfilename.txt"\r\nContent-Transfer-Encoding: base64\r\n'
                     b"\r\nYXR0YWNoZWQgZGF0YQ==\r\n")
HIDDEN_TEXT = b"Content-Type: text/plain\r\n\r\nhiddenpartword\r\n"


def leaves(raw: bytes) -> list:
    return [part for part in mime.iter_parts(mime.parse_message(raw)) if not part.is_multipart()]


def test_a_delimiter_line_with_a_colon_ends_a_padded_block():
    """A part with no blank line after its padded header ends at the next delimiter line,
    as the parser reads it: the walk reads a part's block within the part (its end is the
    next delimiter line), so the cut never reaches "--a:b". (Passed before the fix too.)"""
    pad = b"".join(b"X-Pad: %d\r\n" % n for n in range(LINES))
    raw = colon_boundary_message([b"Content-Type: text/plain\r\n" + pad,
                                  HIDDEN_ATTACHMENT, HIDDEN_TEXT])
    assert header_blocks.bounded(raw) is not raw
    assert len(leaves(raw)) == 3
    assert mime.summarize(raw).attachment_names == ["hiddenfilename.txt"]
    assert "hiddenpartword" in found_texts(extract.extract(raw, 100_000))


def test_delimiter_lines_with_a_colon_past_max_blocks_are_not_cut(monkeypatch):
    """Past MAX_BLOCKS the runs of header lines are counted and cut; a delimiter line of a
    boundary holding ":" was a line of such a run, and cut with it: the parts after the
    limit ran together."""
    monkeypatch.setattr(header_blocks, "MAX_BLOCKS", 100)
    small = b"Content-Type: text/plain\r\nX-Note: n\r\n\r\np\r\n"
    count = 4 * LIMIT // 5  # of 2 header lines each: past the limit, within MAX_PARTS
    raw = colon_boundary_message([small] * count + [HIDDEN_ATTACHMENT, HIDDEN_TEXT])
    assert header_blocks.bounded(raw) is not raw
    assert len(leaves(raw)) == count + 2
    assert mime.summarize(raw).attachment_names == ["hiddenfilename.txt"]
