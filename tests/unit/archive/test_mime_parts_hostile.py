"""Shapes that tried to get past services.archive.mime_parts' cap (a hostile review of it):
a walk that reads the message otherwise than the parser (a boundary past the parser's 16 KB
of Content-Type, or past header_blocks' cut), a delivery status of many blocks, long
boundaries that cost the walk more than the parser, and forwarded messages whose parts were
cut without the message saying so."""
import base64

import pytest

from services.archive import extract, mime, mime_parts

MAX_PARTS = 300
MAX_DEPTH = 20
CUT = "partly indexed: MIME parts past the first"


@pytest.fixture(autouse=True)
def lower_limits(monkeypatch):
    monkeypatch.setattr(mime_parts, "MAX_PARTS", MAX_PARTS)
    monkeypatch.setattr(mime_parts, "MAX_DEPTH", MAX_DEPTH)


def parts(raw: bytes) -> int:
    return len(list(mime.iter_parts(mime.parse_message(raw))))


def lines(*each: bytes) -> bytes:
    return b"\r\n".join(each) + b"\r\n"


HEAD = (b"From: a@example.org", b"To: b@example.com", b"Subject: review", b"MIME-Version: 1.0")


def test_a_delivery_status_of_many_blocks_gives_the_parser_a_bounded_number_of_parts():
    """RFC 3464: each block of a message/delivery-status is a part (a Message) to the
    parser, some 1 KB of its memory each: 100,000 blocks of "A:b" (700 KB) took 115 MB,
    so a 4 MB report of 600,000 takes more than a worker's 512 MB, and the web process,
    which parses with mime.parse_message too, as much. The walk counts the blocks but
    never cuts there, and a report with fewer than MAX_DEPTH "--" lines is not walked."""
    raw = lines(*HEAD, b"Content-Type: multipart/report; report-type=delivery-status; "
                b"boundary=r", b"", b"--r", b"", b"firstword", b"--r",
                b"Content-Type: message/delivery-status", b"") \
        + b"A:b\r\n\r\n" * (10 * MAX_PARTS) + lines(b"--r", b"", b"lastword", b"--r--")
    assert parts(raw) <= MAX_PARTS + MAX_DEPTH


@pytest.mark.parametrize("content_type", [
    # RFC 2231 continuations: the parser reads the field's first 16 KB
    # (mime.PARAMETER_HEADER_LIMIT), so its boundary is "ab"; the walk reads all of it:
    # "abcd", and finds no part.
    b'multipart/mixed; boundary*0=ab; x="' + b"p" * 17_000 + b'"; boundary*1=cd',
    # A boundary the 16 KB limit cuts: "ab" to the parser, "abcd" to the walk.
    b'multipart/mixed; x="' + b"p" * (mime.PARAMETER_HEADER_LIMIT - 34) + b'"; boundary=abcd',
], ids=["rfc2231-continuation", "cut-in-the-boundary"])
def test_a_boundary_past_the_parser_s_16_kb_of_content_type_does_not_escape_the_cut(
        content_type):
    """The walk reads a Content-Type's boundary from the whole field; the parser's policy
    (mime._RawHeaders) gives it the field's first PARAMETER_HEADER_LIMIT characters. Each
    reads another boundary, and the parser gets every one of a million tiny parts (the
    memory blow-up mime_parts was made against, back)."""
    message = mime.parse_message(lines(*HEAD, b"Content-Type: " + content_type, b"", b"x"))
    assert message.get_boundary() == "ab"  # (the parser's)
    raw = lines(*HEAD, b"Content-Type: " + content_type, b"") \
        + b"--ab\r\n\r\nx\r\n" * (10 * MAX_PARTS) + b"--ab--\r\n"
    assert parts(raw) <= MAX_PARTS + MAX_DEPTH


def _inner_with_parts_cut() -> bytes:
    """A message whose parts mime_parts cuts (nested deeper than MAX_DEPTH), then an
    attachment whose text is base64: after the cut it is the rest's text, not read."""
    opening = []
    for n in range(MAX_DEPTH + 2):
        opening += [b"--d%d" % n, b"Content-Type: multipart/mixed; boundary=d%d" % (n + 1), b""]
    closing = [b"--d%d--" % n for n in reversed(range(1, MAX_DEPTH + 3))]
    return lines(*HEAD, b"Content-Type: multipart/mixed; boundary=d0", b"",
                 b"--d0", b"Content-Type: text/plain", b"", b"firstword",
                 *opening, b"--d%d" % (MAX_DEPTH + 2), b"", b"x", *closing,
                 b"--d0", b"Content-Type: text/plain", b"Content-Transfer-Encoding: base64",
                 b"Content-Disposition: attachment; filename=secret.txt", b"",
                 base64.b64encode(b"the secretword is here"), b"--d0--")


@pytest.mark.parametrize("declared", [b"message/rfc822", b"application/octet-stream"])
def test_a_forwarded_message_whose_parts_were_cut_is_flagged(declared):
    """A forwarded message parsed on its own (a base64 message/rfc822 part, an .eml
    attachment; S/MIME signed content goes the same way: extract._inner_entries) gets the
    PartsNotParsed defect on the inner message, which parts_cut never read: the inner
    message's attachments were read as base64 text, unsearchable, and nothing said so.
    Before h139 the feedparser read them (its secretword was found)."""
    inner = _inner_with_parts_cut()
    assert mime_parts.bounded(inner)[1]
    raw = lines(*HEAD, b"Content-Type: multipart/mixed; boundary=o", b"",
                b"--o", b"", b"see attached", b"--o", b"Content-Type: " + declared,
                b"Content-Disposition: attachment; filename=fwd.eml",
                b"Content-Transfer-Encoding: base64", b"",
                base64.encodebytes(inner).replace(b"\n", b"\r\n"), b"--o--")
    extracted = extract.extract(raw, 100_000)
    text = extracted.body + " ".join(entry.text for entry in extracted.attachments)
    assert "firstword" in text
    assert "secretword" in text or any(CUT in reason for reason in extracted.failures), \
        extracted.failures


def test_an_eml_attachment_in_base64_is_read_once_decoded():
    """An .eml sent as application/octet-stream in base64 (as web mailers and "attach
    file" send it): extract._inner_message took the decoded bytes (_part_bytes) and decoded
    them as base64 again, so the forwarded message was read as noise (From, To, Subject
    empty, its body garbage) and nothing was flagged. Not new in h139 (main has it too)."""
    inner = lines(b"From: x@example.org", b"Subject: inner subject", b"", b"the secretword")
    raw = lines(*HEAD, b"Content-Type: multipart/mixed; boundary=o", b"",
                b"--o", b"", b"see attached", b"--o",
                b"Content-Type: application/octet-stream; name=fwd.eml",
                b"Content-Disposition: attachment; filename=fwd.eml",
                b"Content-Transfer-Encoding: base64", b"",
                base64.encodebytes(inner).replace(b"\n", b"\r\n"), b"--o--")
    [entry] = extract.extract(raw, 100_000).attachments
    assert "inner subject" in entry.text and "secretword" in entry.text, entry.text[:100]


def test_many_multiparts_of_long_boundaries_cost_the_walk_no_more_than_the_parser(
        monkeypatch):
    """header_blocks.delimiter_lines compiles a regular expression of each delimiter it
    looks for: for a boundary of thousands of characters (RFC 2046 says 70; the parser
    takes any) some milliseconds in sre_compile, once per multipart. 4,900 multiparts of
    3,300-character boundaries (47 MB, under the 50 MB models 150 and 350 accept) took
    mime.parse_message 25 s, past the extraction worker's 20 s (1.5 s before h139: the
    parser finds delimiters with str.find); the web view parses it on each request too.
    Here 800 of them: the walks must cost no more than a few times the parse."""
    import time

    from services.archive import mimetree
    monkeypatch.setattr(mime_parts, "MAX_PARTS", 10_000)  # (1,601 parts: none cut)
    units = []
    for n in range(800):
        boundary = b"%06d" % n + b"P" * 3300
        units += [b"--top", b"Content-Type: multipart/mixed; boundary=" + boundary, b"",
                  b"--" + boundary, b"", b"x", b"--" + boundary + b"--"]
    raw = lines(*HEAD, b"Content-Type: multipart/mixed; boundary=top", b"", *units,
                b"--top--")
    assert raw.count(b"\n--") > MAX_DEPTH  # (walked)
    started = time.perf_counter()
    assert mimetree.parse(raw, mime.POLICY) is not None
    parse_s = time.perf_counter() - started
    started = time.perf_counter()
    assert mime_parts.bounded(raw) == (raw, 0)
    walk_s = time.perf_counter() - started
    assert walk_s <= 5 * parse_s + 0.2, (walk_s, parse_s)

