"""Where services.archive.mime_parts cuts, in generated shapes: only the subtree nested
deeper than MAX_DEPTH becomes text (the parts beside it are still parts, their
attachments read); a message that is itself a delivery status (RFC 3464) of many blocks
is cut like one inside a multipart; and delimiter lines that the parser does not read as
delimiters (in an epilogue, after the close delimiter; right after another delimiter
line) are no parts, so they raise no "partly indexed" flag."""
import base64
import itertools

import pytest

from services.archive import extract, mime, mime_parts, mimetree

MAX_PARTS = 300
MAX_DEPTH = 20
CUT = "partly indexed: MIME parts past the first"
# RFC 2046 bchars beside digits and letters (a space, but not last): each boundary of a
# test holds some, so a walk that reads them otherwise than the parser shows.
SPECIAL = ["b", "a:b", "x'()+_,-./=?y", "sp ace", "=_Part_0_1.2"]
ENDS = [b"\r\n", b"\n"]


@pytest.fixture(autouse=True)
def lower_limits(monkeypatch):
    monkeypatch.setattr(mime_parts, "MAX_PARTS", MAX_PARTS)
    monkeypatch.setattr(mime_parts, "MAX_DEPTH", MAX_DEPTH)


def boundary(name: str, n: int) -> bytes:
    return b"%s%d" % (name.encode(), n)


def content_type(kind: str, name: bytes) -> bytes:
    return b'Content-Type: multipart/%s; boundary="%s"' % (kind.encode(), name)


def attachment(name: str, word: str) -> list[bytes]:
    """The header and body lines of a base64 attachment (its text, undecoded, is noise)."""
    return [b"Content-Type: text/plain", b"Content-Transfer-Encoding: base64",
            b'Content-Disposition: attachment; filename="%s"' % name.encode(), b"",
            base64.b64encode(f"the {word} is here".encode())]


def deep_part(levels: int, style: str, name: str, n: int = 0) -> list[bytes]:
    """The lines of a part whose deepest part lies `levels` levels or more below it
    (mime_parts' levels: a multipart's part is one below it, a message/* part's message
    one below the part), a text leaf of
    "deepword"; beside the nested part of its second multipart, an attachment (mid.txt,
    "midsecret"), past the deep one. `style`: "mixed" (multiparts), "digest"
    (multipart/digest, whose parts are message/rfc822 by default) or "rfc822" (multiparts
    in message/rfc822 parts)."""
    if levels <= 0:
        return [b"Content-Type: text/plain", b"", b"deepword"]
    delimiter = b"--" + boundary(name, n)
    beside = [delimiter, *attachment("mid.txt", "midsecret")] if n == 1 else []
    if style == "digest":  # the digest's message/rfc822 part, that part's message
        return [content_type("digest", boundary(name, n)), b"", delimiter, b"",
                *deep_part(levels - 2, style, name, n + 1), *beside, delimiter + b"--"]
    inner = deep_part(levels - (2 if style == "rfc822" else 1), style, name, n + 1)
    if style == "rfc822":
        inner = [b"Content-Type: message/rfc822", b"", b"Subject: inner", *inner]
    return [content_type("mixed", boundary(name, n)), b"", delimiter, *inner, *beside,
            delimiter + b"--"]


def with_deep_part(levels: int, style: str, name: str, end: bytes) -> bytes:
    """A multipart/mixed: a text part of "firstword", the deep part, an attachment beside
    it (top.txt, "topsecret"), a last text part of "lastword"."""
    top = b"--" + boundary(name, 99)
    return end.join([b"From: a@example.org", b"Subject: deep", b"MIME-Version: 1.0",
                     content_type("mixed", boundary(name, 99)), b"",
                     top, b"Content-Type: text/plain", b"", b"firstword",
                     top, *deep_part(levels, style, name),
                     top, *attachment("top.txt", "topsecret"),
                     top, b"Content-Type: text/plain", b"", b"lastword", top + b"--", b""])


DEEP = [pytest.param(levels, style, name, end,
                     id=f"{style}-{levels}-{name}-{'crlf' if end == ENDS[0] else 'lf'}")
        for (levels, style), name, end in itertools.product(
            # (a part two levels below the message: one, two, many levels too deep)
            [(MAX_DEPTH - 1, "mixed"), (MAX_DEPTH, "mixed"), (3 * MAX_DEPTH, "mixed"),
             (MAX_DEPTH - 1, "digest"), (MAX_DEPTH, "digest"), (2 * MAX_DEPTH, "digest"),
             (MAX_DEPTH - 1, "rfc822"), (MAX_DEPTH, "rfc822"), (4 * MAX_DEPTH, "rfc822")],
            SPECIAL[:3], ENDS)]


def read_attachments(extracted) -> dict[str, str]:
    return {entry.filename: entry.text for entry in extracted.attachments if entry.filename}


@pytest.mark.parametrize("levels, style, name, end", DEEP)
def test_only_the_subtree_deeper_than_max_depth_is_text(levels, style, name, end):
    """The parts beside a too deep part, at allowed depths, are parts: their attachments
    are read (decoded), not indexed as the base64 text of the rest."""
    raw = with_deep_part(levels, style, name, end)
    extracted = extract.extract(raw, 100_000)
    assert extracted.failed is None
    attachments = read_attachments(extracted)
    assert "topsecret" in attachments.get("top.txt", ""), attachments
    assert "midsecret" in attachments.get("mid.txt", ""), attachments
    assert "firstword" in extracted.body and "lastword" in extracted.body
    assert extracted.cut is not None and CUT in extracted.cut
    # The deep part's text is a text part's (in a forwarded message for digest and rfc822:
    # extract reads those to its own MAX_NESTED_MESSAGES levels).
    texts = [part.get_payload(decode=True).decode()
             for part in mime.iter_parts(mime.parse_message(raw))
             if part.get_content_type() == "text/plain" and not part.is_multipart()]
    assert any("deepword" in text for text in texts)


@pytest.mark.parametrize("levels, style, name, end", DEEP)
def test_a_message_cut_at_max_depth_is_well_formed_and_bounded(levels, style, name, end):
    raw = with_deep_part(levels, style, name, end)
    parsed, count = mime_parts.bounded(raw)
    assert count >= 1
    assert mimetree.parse(parsed, mime.POLICY) is not None
    message = mime.parse_message(raw)
    deepest = max(depth_of(message))
    assert deepest <= MAX_DEPTH + 1  # (the text part in the place of the deep one)


def depth_of(message, depth: int = 1):
    """mime_parts' level of each part (the message is 1)."""
    yield depth
    if message.is_multipart():
        for part in message.get_payload():
            yield from depth_of(part, depth + 1)


def test_deep_subtrees_side_by_side_are_each_cut_and_the_parts_between_are_read():
    units = []
    for n in range(3):
        name = f"s{n}"
        units += [b"--o", *deep_part(MAX_DEPTH + 4, "mixed", name),
                  b"--o", *attachment(f"between{n}.txt", f"between{n}word")]
    raw = b"\r\n".join([b"Subject: s", b'Content-Type: multipart/mixed; boundary="o"', b"",
                        *units, b"--o--", b""])
    extracted = extract.extract(raw, 100_000)
    attachments = read_attachments(extracted)
    for n in range(3):
        assert f"between{n}word" in attachments.get(f"between{n}.txt", ""), attachments
    assert extracted.body.count("deepword") == 3
    assert mime_parts.bounded(raw)[1] >= 3


def test_past_max_parts_the_rest_is_still_cut_after_a_deep_subtree():
    """A deep cut and then more than MAX_PARTS parts: the rest is one text part."""
    raw = b"\r\n".join([b"Subject: s", b'Content-Type: multipart/mixed; boundary="o"', b"",
                        b"--o", *deep_part(MAX_DEPTH + 4, "mixed", "d"),
                        *[b"--o\r\n\r\nx%d" % n for n in range(2 * MAX_PARTS)],
                        b"--o", b"", b"lastword", b"--o--", b""])
    message = mime.parse_message(raw)
    assert len(list(mime.iter_parts(message))) <= MAX_PARTS + MAX_DEPTH
    assert mimetree.parse(mime_parts.bounded(raw)[0], mime.POLICY) is not None
    assert "lastword" in extract.extract(raw, 100_000).body


# --- a message that is itself a delivery status ---------------------------------------------

def status_report(blocks: int, end: bytes, field: bytes) -> bytes:
    return end.join([b"From 'mailer-daemon' Mon Jan  1 00:00:00 2024", b"From: m@example.org",
                     b"Subject: report", field, b"MIME-Version: 1.0", b"",
                     b"Reporting-MTA: dns; firstword.example", b""]) + end \
        + (b"Final-Recipient: rfc822; u@example.org" + end + b"Action: failed" + end + end) \
        * blocks + b"Final-Recipient: rfc822; lastword@example.org" + end


STATUS_FIELDS = [b"Content-Type: message/delivery-status",
                 b"Content-Type: Message/Delivery-Status; charset=us-ascii",
                 b"Content-Type:\r\n message/delivery-status;\r\n\treport=x"]


@pytest.mark.parametrize("end", ENDS, ids=["crlf", "lf"])
@pytest.mark.parametrize("field", STATUS_FIELDS, ids=["plain", "parameter", "folded"])
@pytest.mark.parametrize("blocks", [MAX_PARTS, 10 * MAX_PARTS])
def test_a_message_that_is_a_delivery_status_of_many_blocks_is_cut(blocks, field, end):
    """RFC 3464: each block is a part (a Message) to the parser; a report of 600,000
    blocks took 49 s and 340 MB to extract. A delivery status inside a multipart was cut,
    the message itself one never was (its header would be lost): the parser reads its
    blocks as one text part, its header whole."""
    raw = status_report(blocks, end, field.replace(b"\r\n", end))
    message = mime.parse_message(raw)
    assert len(list(mime.iter_parts(message))) <= MAX_PARTS + MAX_DEPTH
    assert message["subject"] == "report" and message.get_unixfrom()
    extracted = extract.extract(raw, 64 << 20)  # (over any body: extract.body_cut)
    assert extracted.failed is None and extracted.summary.subject == "report"
    assert CUT in (extracted.cut or "")
    assert "firstword" in extracted.body and "lastword" in extracted.body


def test_a_delivery_status_of_max_parts_blocks_or_fewer_is_left_as_it_is():
    raw = status_report(MAX_PARTS - 4, b"\r\n", STATUS_FIELDS[0])
    assert mime_parts.bounded(raw) == (raw, 0)
    assert mime.parse_message(raw).get_content_type() == "message/delivery-status"


# --- delimiter lines that are no delimiters ------------------------------------------------

def multipart(name: bytes, parts: int, epilogue: bytes, end: bytes, kind: str = "mixed",
              extra: list[bytes] = ()) -> list[bytes]:
    """The lines of a multipart of `parts` text parts, then `epilogue` (lines), `extra`
    lines before its close delimiter."""
    delimiter = b"--" + name
    units = [line for n in range(parts)
             for line in [delimiter, b"Content-Type: text/plain", b"", b"part%d" % n]]
    return [content_type(kind, name), b"", *units, *extra, delimiter + b"--",
            *epilogue.split(b"\n")]


def epilogue_of_delimiters(name: bytes, count: int) -> bytes:
    return b"\n".join(b"--%s\n\nfake%d" % (name, n) for n in range(count)) + b"\nepiword"


def top(lines: list[bytes], end: bytes) -> bytes:
    return end.join([b"Subject: epilogue", *lines, b""])


@pytest.mark.parametrize("end", ENDS, ids=["crlf", "lf"])
@pytest.mark.parametrize("name", SPECIAL)
@pytest.mark.parametrize("kind", ["mixed", "digest", "alternative"])
def test_delimiter_lines_in_an_epilogue_are_no_parts(name, kind, end):
    """RFC 2046 5.1.1: after the close delimiter comes the epilogue, text the parser
    keeps as it is whatever lines it holds; the walk counted each delimiter line there as
    a part and flagged the message partly indexed."""
    boundary_ = name.encode()
    lines = multipart(boundary_, 3, epilogue_of_delimiters(boundary_, 3 * MAX_PARTS), end, kind)
    raw = top(lines, end)
    assert mime_parts.bounded(raw) == (raw, 0)
    extracted = extract.extract(raw, 100_000)
    assert extracted.cut is None, extracted.cut


@pytest.mark.parametrize("end", ENDS, ids=["crlf", "lf"])
@pytest.mark.parametrize("name", SPECIAL[:3])
def test_delimiter_lines_in_an_inner_epilogue_are_no_parts_and_the_outer_parts_are(
        name, end):
    """An inner multipart's epilogue ends at the enclosing one's next delimiter line: the
    outer parts after it are parts (and past MAX_PARTS of them, cut)."""
    inner, outer = name.encode() + b"i", name.encode() + b"o"
    inner_lines = multipart(inner, 2, epilogue_of_delimiters(inner, 3 * MAX_PARTS), end)
    few = [b"--" + outer, *inner_lines, b"--" + outer, b"", b"after"]
    raw = top([content_type("mixed", outer), b"", *few, b"--" + outer + b"--"], end)
    assert mime_parts.bounded(raw) == (raw, 0)
    many = few + [line for n in range(2 * MAX_PARTS) for line in [b"--" + outer, b"", b"x%d" % n]]
    raw = top([content_type("mixed", outer), b"", *many, b"--" + outer + b"--"], end)
    assert mime_parts.bounded(raw)[1] > 0
    assert len(list(mime.iter_parts(mime.parse_message(raw)))) <= MAX_PARTS + MAX_DEPTH


@pytest.mark.parametrize("end", ENDS, ids=["crlf", "lf"])
@pytest.mark.parametrize("name", SPECIAL[:3])
def test_delimiter_lines_right_after_a_delimiter_line_are_no_parts(name, end):
    """The parser reads the delimiter lines right after a delimiter line (close ones too)
    as one: no part between them (up to MAX_PARTS of them in all: test_mime_parts_work)."""
    boundary_ = name.encode()
    runs = [b"--" + boundary_] * (MAX_PARTS // 2)
    raw = top(multipart(boundary_, 3, b"", end, extra=runs + [b"", b"last"]), end)
    assert mime_parts.bounded(raw) == (raw, 0)
    assert extract.extract(raw, 100_000).cut is None
    assert len(mime.parse_message(raw).get_payload()) == 4


@pytest.mark.parametrize("end", ENDS, ids=["crlf", "lf"])
def test_a_close_delimiter_right_after_a_delimiter_line_does_not_end_the_rest(end):
    """Past MAX_PARTS the rest's text runs to the outermost multipart's close delimiter;
    one right after a delimiter line the parser skips (it is no close to it), so the rest
    runs on to the real one, and the parts after the skipped one are text too."""
    units = [line for n in range(2 * MAX_PARTS) for line in [b"--b", b"", b"x%d" % n]]
    raw = top([content_type("mixed", b"b"), b"", *units, b"--b", b"--b--", b"", b"skipped",
               *units, b"--b", b"", b"lastword", b"--b--"], end)
    message = mime.parse_message(raw)
    assert len(list(mime.iter_parts(message))) <= MAX_PARTS + MAX_DEPTH
    assert mimetree.parse(mime_parts.bounded(raw)[0], mime.POLICY) is not None
    assert "lastword" in extract.extract(raw, 100_000).body
