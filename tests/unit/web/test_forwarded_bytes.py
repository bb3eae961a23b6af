"""A forwarded message's download (message/rfc822 part: the API's numbered download, the
page's part download) is the bytes the stored message carries for it, and the listing
sizes it so (review r9 F3: the parser's re-serialization made CRLF LF and refolded long
fields). A generated corpus of forwards: CRLF and LF messages, long folded fields, 8-bit
and binary parts, forwards in forwards 1-4 deep (as a part, or as a message's whole
body), at several numbers, preambles and epilogues, transport padding after delimiters,
a multipart/digest's parts, forwards sent base64. The expected bytes are those the
generator wrote for each forward, found again in the raw message by the test's own
slicing (never by services.web.forwarded)."""
from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from email.parser import BytesParser
from pathlib import Path

import pytest

from services.archive.mime import POLICY
from services.web import forwarded, mail_view, message_tree

CASE_12 = Path(__file__).parents[2] / "data" / "cases" / "12-forwarded-rfc822" / "message.eml"


@dataclass
class Built:
    """A generated message and, by the path of each message/* part in it, the bytes of
    its content the generator wrote (transfer-decoded: what its download must be)."""
    raw: bytes = b""
    forwards: dict[str, bytes] = field(default_factory=dict)
    numbered: dict[int, str] = field(default_factory=dict)  # download number -> path


def _below(path: str, number: int) -> str:
    return f"{path}.{number}" if path else str(number)


class Writer:
    """Writes messages of one kind of line end, noting each forward it writes."""

    def __init__(self, nl: bytes, padding: bytes, built: Built):
        self.nl, self.padding, self.built = nl, padding, built

    def lines(self, *lines: bytes) -> bytes:
        return b"".join(line + self.nl for line in lines)

    def head(self, subject: str, *more: bytes) -> bytes:
        return self.lines(b"From: Grace <grace@example.com>", b"To: heidi@example.com",
                          b"Subject: " + subject.encode(),
                          b"Date: Mon, 02 Feb 2026 08:30:00 +0000",
                          b"Message-ID: <" + subject.encode() + b"@example.com>",
                          b"MIME-Version: 1.0", *more)

    def multipart(self, boundary: str, parts: list[bytes], subtype: bytes = b"mixed",
                  preamble: bytes = b"", epilogue: bytes = b"") -> tuple[bytes, bytes]:
        """(the Content-Type line, the body) of a multipart of `parts`."""
        separator = b"--" + boundary.encode()
        body = (preamble + self.nl if preamble else b"") + b"".join(
            separator + self.padding + self.nl + part + self.nl for part in parts) \
            + separator + b"--" + self.padding + self.nl + epilogue
        return (b"Content-Type: multipart/" + subtype + b'; boundary="'
                + boundary.encode() + b'"'), body

    def text(self, words: str) -> bytes:
        return self.lines(b"Content-Type: text/plain; charset=us-ascii", b"") \
            + self.lines(words.encode(), b"")

    def file(self, name: str, data: bytes) -> bytes:
        return self.lines(b"Content-Type: text/csv; name=\"" + name.encode() + b'"',
                          b'Content-Disposition: attachment; filename="' + name.encode() + b'"',
                          b"Content-Transfer-Encoding: base64", b"") \
            + base64.encodebytes(data).replace(b"\n", self.nl)

    def forward_part(self, path: str, inner: bytes, name: str | None,
                     encoding: str | None = None) -> bytes:
        """A message/rfc822 part at `path` holding `inner`."""
        self.built.forwards[path] = inner
        fields = [b"Content-Type: message/rfc822"]
        if name:
            fields.append(b'Content-Disposition: attachment; filename="' + name.encode() + b'"')
        content = inner
        if encoding == "base64":
            fields.append(b"Content-Transfer-Encoding: base64")
            content = base64.encodebytes(inner).replace(b"\n", self.nl)
        elif encoding == "quoted-printable":  # (every line of it is short enough to read)
            fields.append(b"Content-Transfer-Encoding: quoted-printable")
            content = inner.replace(b"=", b"=3D")
        return self.lines(*fields, b"") + content


def inner_message(writer: Writer, kind: str, subject: str, path: str) -> bytes:
    """A message of `kind` (at `path`, for the forwards a digest holds)."""
    nl = writer.nl
    if kind == "plain":
        return writer.head(subject, b"Content-Type: text/plain") + nl + b"short body" + nl
    if kind == "folded":  # refolded by the generator; a signature over them would break
        return writer.head(
            subject, b"X-Long: " + b"word " * 60 + b"end",
            b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com;" + nl + b"\t s=sel;"
            + nl + b"\tbh=" + b"A" * 44 + b";" + nl + b"        b=" + b"Q" * 100,
            b"Subject2:no-space-after-colon", b"Content-Type: text/plain") \
            + nl + b"folded body" + nl
    if kind == "eightbit":
        binary = (b"Content-Type: application/octet-stream" + nl + b"Content-Disposition: "
                  b'attachment; filename="d.bin"' + nl + b"Content-Transfer-Encoding: 8bit"
                  + nl + nl + b"From \xff\xfe\x00binary\r" + nl + b"caf\xc3\xa9 line2\rx" + nl)
        content_type, body = writer.multipart("E" + subject, [writer.text("eight"), binary])
        return writer.head(subject, content_type) + nl + body
    if kind == "csv":
        content_type, body = writer.multipart(
            "C" + subject, [writer.text("see the figures"),
                            writer.file("inner-budget.csv", b"item,amount\r\nlamps,1200\r\n")],
            preamble=b"This is a multi-part message in MIME format.",
            epilogue=b"an epilogue line" + nl)
        return writer.head(subject, content_type) + nl + body
    if kind == "digest":  # its parts are message/rfc822 by default (RFC 2046 5.1.5)
        entries = [writer.head(f"{subject}d{number}") + nl + b"entry %d" % number + nl
                   for number in (1, 2)]
        for number, entry in enumerate(entries, 1):
            writer.built.forwards[_below(path, number)] = entry
        content_type, body = writer.multipart(
            "D" + subject, [nl + entry for entry in entries], subtype=b"digest")
        return writer.head(subject, content_type) + nl + body
    raise ValueError(kind)


def chain(writer: Writer, kind: str, depth: int, whole: bool, path: str) -> bytes:
    """A message at `path` forwarding `depth` levels down to a message of `kind`: each
    level forwards the next as its whole body (`whole`) or as its part 2."""
    if depth == 0:
        return inner_message(writer, kind, f"level0{kind}", path)
    nl, subject = writer.nl, f"level{depth}{kind}"
    if whole:
        inner = chain(writer, kind, depth - 1, not whole, _below(path, 1))
        writer.built.forwards[path] = inner
        return writer.head(subject, b"Content-Type: message/rfc822") + nl + inner
    inner = chain(writer, kind, depth - 1, not whole, _below(_below(path, 2), 1))
    part = writer.forward_part(_below(path, 2), inner, f"level{depth - 1}.eml")
    content_type, body = writer.multipart(f"L{depth}{kind}", [writer.text("forwarded"), part])
    return writer.head(subject, content_type) + nl + body


def build(nl: bytes, kind: str, depth: int, whole: bool, number: int, padding: bytes,
          encoding: str | None = None) -> Built:
    """A stored message whose file `number` is a forward of a `depth`-1 deep chain."""
    built = Built()
    writer = Writer(nl, padding, built)
    forward_path = str(number + 1)  # (part 1 is the body text)
    inner = chain(writer, kind, depth - 1, whole, _below(forward_path, 1))
    files = [writer.file(f"f{index}.csv", b"a,b%d" % index) for index in range(1, 4)]
    files[number - 1] = writer.forward_part(forward_path, inner, "forwarded.eml", encoding)
    built.numbered[number] = forward_path
    content_type, body = writer.multipart(
        "outer", [writer.text("see below"), *files],
        preamble=b"preamble" if padding else b"", epilogue=b"epilogue" + nl if padding else b"")
    built.raw = writer.head("outer", content_type) + nl + body
    return built


LINE_ENDS = {b"\r\n": "crlf", b"\n": "lf"}
CORPUS = [pytest.param(nl, kind, depth, whole, number, padding,
                       id=f"{LINE_ENDS[nl]}-{kind}-depth{depth}-"
                          f"{'whole' if whole else 'part'}-n{number}-{'pad' if padding else 'bare'}")
          for nl, kind, depth, whole, (number, padding) in itertools.product(
              [b"\r\n", b"\n"], ["plain", "folded", "eightbit", "csv", "digest"], [1, 2, 3, 4],
              [False, True], [(1, b""), (2, b" \t"), (3, b" ")])]


def node_at(node: message_tree.Part, path: str) -> message_tree.Part:
    for step in path.split("."):
        node = node.children[int(step) - 1]
    return node


def slice_of(raw: bytes, expected: bytes) -> bytes:
    """The bytes of raw where `expected` was written (it must be there, once at least)."""
    start = raw.find(expected)
    assert start >= 0
    return raw[start:start + len(expected)]


@pytest.mark.parametrize("nl, kind, depth, whole, number, padding", CORPUS)
def test_every_forward_downloads_as_its_stored_bytes(nl, kind, depth, whole, number, padding):
    built = build(nl, kind, depth, whole, number, padding)
    message = forwarded.parse(built.raw)
    tree = message_tree.tree(message, None)
    assert len(built.forwards) >= depth
    for path, expected in built.forwards.items():
        data = message_tree.decoded(message_tree.part_at(message, path))
        assert data == slice_of(built.raw, expected), path
        assert node_at(tree, path).size == len(expected), path
    found, data = mail_view.attachment(built.raw, number)
    assert data == built.forwards[built.numbered[number]]
    assert found.size == len(data)


@pytest.mark.parametrize("nl", [b"\r\n", b"\n"])
@pytest.mark.parametrize("kind", ["plain", "folded"])
def test_a_forward_sent_quoted_printable_downloads_as_its_decoded_bytes(nl, kind):
    """RFC 2046 forbids encoding a message/rfc822 part; mailers do. Its file is its
    stored content transfer-decoded (as extraction reads it), byte for byte."""
    built = build(nl, kind, 1, False, 2, b"", encoding="quoted-printable")
    found, data = mail_view.attachment(built.raw, 2)
    assert data == built.forwards["3"]
    assert b"=3D" in built.raw or b"=" not in data
    assert found.size == len(data)


@pytest.mark.parametrize("nl", [b"\r\n", b"\n"])
@pytest.mark.parametrize("kind", ["folded", "csv", "eightbit"])
def test_a_forward_sent_base64_is_served_as_parsed(nl, kind):
    """A base64 body is no header block: mimetree leaves the message to the feedparser
    (a defect), nothing is located, and the forward is served as before: the message
    extraction decodes and parses, re-serialized; its listed size is the download's."""
    built = build(nl, kind, 1, False, 2, b"", encoding="base64")
    found, data = mail_view.attachment(built.raw, 2)
    assert data == BytesParser(policy=POLICY).parsebytes(built.forwards["3"]).as_bytes()
    assert found.size == len(data)


@pytest.mark.parametrize("nl", [b"\r\n", b"\n"])
def test_a_forward_as_the_whole_stored_message(nl):
    built = Built()
    writer = Writer(nl, b"", built)
    inner = chain(writer, "csv", 2, False, "1")
    built.raw = writer.head("whole", b"Content-Type: message/rfc822") + nl + inner
    message = forwarded.parse(built.raw)
    assert message_tree.decoded(message) == built.raw[built.raw.index(nl + nl) + 2 * len(nl):]
    for path, expected in built.forwards.items():
        assert message_tree.decoded(message_tree.part_at(message, path)) == expected


def test_case_12_the_listed_size_is_the_downloads():
    raw = CASE_12.read_bytes()
    [forward] = [file for file in mail_view.files(raw) if file.content_type == "message/rfc822"]
    found, data = mail_view.attachment(raw, forward.number)
    head_end = b'filename="Original budget thread.eml"\r\n\r\n'
    start = raw.index(head_end) + len(head_end)
    assert data == raw[start:raw.index(b"\r\n--outer12--")]
    assert forward.size == found.size == len(data)
    [csv] = forward.files
    [downloaded_csv] = mail_view.files(data)
    assert csv.size == downloaded_csv.size == 37


def test_a_message_the_walk_cannot_follow_is_served_as_parsed():
    """A defect (no close delimiter) makes mimetree refuse the message: the forward is
    served as the parser's message, re-serialized, as before -- never other bytes."""
    writer = Writer(b"\r\n", b"", Built())
    inner = inner_message(writer, "folded", "cut", "")
    raw = writer.head("cut", b'Content-Type: multipart/mixed; boundary="B"') + b"\r\n" \
        + b"--B\r\n" + writer.text("body") + b"\r\n--B\r\n" \
        + writer.forward_part("2", inner, "cut.eml") + b"\r\n"
    parsed = BytesParser(policy=POLICY).parsebytes(raw).get_payload()[1].get_payload()[0]
    found, data = mail_view.attachment(raw, 1)
    assert data == parsed.as_bytes() != inner
    assert found.size == len(data)


def test_bytes_that_are_not_the_parts_message_are_not_served():
    """message_bytes serves the located bytes only when they parse into the message the
    part holds; given another message (as extract.inner_message gives a re-parsed one), it
    serves that message's bytes."""
    built = build(b"\r\n", "folded", 1, False, 1, b"")
    message = forwarded.parse(built.raw)
    part = message_tree.part_at(message, "2")
    other = BytesParser(policy=POLICY).parsebytes(b"Subject: another\r\n\r\nother body\r\n")
    assert forwarded.message_bytes(part, other) == other.as_bytes()
    fresh = message_tree.part_at(forwarded.parse(built.raw), "2")
    assert forwarded.message_bytes(fresh, message_tree.children(fresh)[0]) == built.forwards["2"]
