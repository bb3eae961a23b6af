"""A forwarded message's download (message/rfc822 part: the API's numbered download, the
page's part download) is the bytes the stored message carries for it, and the listing
sizes it so (review r9 F3: the parser's re-serialization made CRLF LF and refolded long
fields). A generated corpus of forwards: CRLF and LF messages, long folded fields, 8-bit
and binary parts, obsolete white space before a field's colon, forwards in forwards 1-4
deep (as a part, or as a message's whole body), at several numbers, preambles and
epilogues, transport padding after delimiters, a multipart/digest's parts; each level sent
as it is, base64, quoted-printable or mixed (review r10 F4); beside a part of malformed
mail (review r10 F3: a multipart without boundary, first or close delimiter, a header
block without its blank line, a misplaced "From " line, a continuation line first), or
the message cut short (its close delimiter missing). The expected bytes are those the
generator wrote for each forward (transfer-decoded), found again in the raw message, for
those no encoded forward holds, by the test's own search (never by
services.web.forwarded). The work of a view is counted (bytes re-serialized, bytes
parsed), never timed (review r10 F2)."""
from __future__ import annotations

import base64
import email.message
import itertools
import quopri
import random
from dataclasses import dataclass, field
from email.parser import BytesParser
from pathlib import Path

import pytest

from services.archive import mime, mimetree
from services.archive.extract import NESTED_TOO_DEEP
from services.archive.mime import POLICY
from services.web import forwarded, mail_view, message_tree
from tests.unit.archive.test_mimetree import tree as comparable

CASE_12 = Path(__file__).parents[2] / "data" / "cases" / "12-forwarded-rfc822" / "message.eml"


@dataclass
class Built:
    """A generated message and, by the path of each message/* part in it, the bytes of
    its content the generator wrote (transfer-decoded: what its download must be)."""
    raw: bytes = b""
    forwards: dict[str, bytes] = field(default_factory=dict)
    encoded: set[str] = field(default_factory=set)  # paths of the forwards sent encoded
    outer: str = ""  # the path of the forward that is a file of the message (build)

    def in_raw(self, path: str) -> bool:
        """Whether the forward at `path` lies in the raw message as it is: it and every
        forward holding it sent unencoded."""
        return not any(path == at or path.startswith(at + ".") for at in self.encoded)


def _below(path: str, number: int) -> str:
    return f"{path}.{number}" if path else str(number)


def encoded(content: bytes, encoding: str | None, nl: bytes) -> bytes:
    """`content` in a transfer encoding (RFC 2045 6.7, 6.8) with `nl` line ends."""
    if encoding == "base64":
        return base64.encodebytes(content).replace(b"\n", nl)
    if encoding == "quoted-printable":  # (a CR not in a line end is "=0D")
        return nl.join(quopri.encodestring(line).replace(b"=\n", b"=" + nl)
                       for line in content.split(nl))
    return content


class Writer:
    """Writes messages of one kind of line end, noting each forward it writes; the
    forwards it writes as parts are sent in encodings[level % len(encodings)]."""

    def __init__(self, nl: bytes, padding: bytes, built: Built,
                 encodings: tuple[str | None, ...] = (None,)):
        self.nl, self.padding, self.built, self.encodings = nl, padding, built, encodings

    def lines(self, *lines: bytes) -> bytes:
        return b"".join(line + self.nl for line in lines)

    def head(self, subject: str, *more: bytes) -> bytes:
        return self.lines(b"From: Grace <grace@example.com>", b"To: heidi@example.com",
                          b"Subject: " + subject.encode(),
                          b"Date: Mon, 02 Feb 2026 08:30:00 +0000",
                          b"Message-ID: <" + subject.encode() + b"@example.com>",
                          b"MIME-Version: 1.0", *more)

    def multipart(self, boundary: str, parts: list[bytes], subtype: bytes = b"mixed",
                  preamble: bytes = b"", epilogue: bytes = b"", closed: bool = True
                  ) -> tuple[bytes, bytes]:
        """(the Content-Type line, the body) of a multipart of `parts`; not `closed`: cut
        short after its last part, no close delimiter."""
        separator = b"--" + boundary.encode()
        body = (preamble + self.nl if preamble else b"") + b"".join(
            separator + self.padding + self.nl + part + self.nl for part in parts)
        if closed:
            body += separator + b"--" + self.padding + self.nl + epilogue
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

    def encoding(self, level: int) -> str | None:
        return self.encodings[level % len(self.encodings)]

    def forward_part(self, path: str, inner: bytes, name: str | None,
                     encoding: str | None = None) -> bytes:
        """A message/rfc822 part at `path` holding `inner`."""
        self.built.forwards[path] = inner
        fields = [b"Content-Type: message/rfc822"]
        if name:
            fields.append(b'Content-Disposition: attachment; filename="' + name.encode() + b'"')
        if encoding:
            fields.append(b"Content-Transfer-Encoding: " + encoding.encode())
            self.built.encoded.add(path)
        return self.lines(*fields, b"") + encoded(inner, encoding, self.nl)


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
    if kind == "obsolete":  # white space before colons (RFC 5322 4.5.3): in a part's header
        # block the parser reads the names closed; in the message's, its header block ends
        part = writer.lines(b"Content-Type : text/csv",
                            b'Content-Disposition : attachment; filename="old.csv"', b"", b"a,b")
        content_type, body = writer.multipart("O" + subject, [writer.text("obsolete"), part])
        return writer.head(subject, content_type, b"X-Obsolete : old") + nl + body
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
    level forwards the next as its whole body (`whole`) or as its part 2, in the
    writer's encoding of its level."""
    if depth == 0:
        return inner_message(writer, kind, f"level0{kind}", path)
    nl, subject, encoding = writer.nl, f"level{depth}{kind}", writer.encoding(depth)
    if whole:
        inner = chain(writer, kind, depth - 1, not whole, _below(path, 1))
        writer.built.forwards[path] = inner
        fields = [b"Content-Type: message/rfc822"]
        if encoding:
            fields.append(b"Content-Transfer-Encoding: " + encoding.encode())
            writer.built.encoded.add(path)
        return writer.head(subject, *fields) + nl + encoded(inner, encoding, nl)
    inner = chain(writer, kind, depth - 1, not whole, _below(_below(path, 2), 1))
    part = writer.forward_part(_below(path, 2), inner, f"level{depth - 1}.eml", encoding)
    content_type, body = writer.multipart(f"L{depth}{kind}", [writer.text("forwarded"), part])
    return writer.head(subject, content_type) + nl + body


# Parts of malformed mail, beside the forward (review r10 F3), each as the part it is
DEFECTS = {
    "none": None,
    "no boundary": (b"Content-Type: multipart/mixed", b"", b"text of a multipart"),
    "no start delimiter": (b'Content-Type: multipart/mixed; boundary="zz"', b"",
                           b"text, no delimiter"),
    "no close delimiter": (b'Content-Type: multipart/mixed; boundary="zz"', b"", b"--zz",
                           b"Content-Type: text/plain", b"", b"cut short"),
    "no blank line": (b"Content-Type: text/plain", b"a body line where the blank line was"),
    "misplaced From line": (b"Content-Type: text/plain", b"From someone", b"X-After: 1", b"",
                            b"body"),
    "continuation first": (b" a continuation line first", b"Content-Type: text/plain", b"",
                           b"body"),
    "nameless field": (b"Content-Type: text/plain", b": no name", b"", b"body"),
    "obsolete field names": (b"Content-Type : text/plain",
                             b'Content-Disposition :attachment; filename="obs.txt"', b"",
                             b"obsolete"),
}
ENCODINGS = {"plain": (None,), "base64": ("base64",), "qp": ("quoted-printable",),
             "mixed": ("base64", None, "quoted-printable")}


def build(nl: bytes, kind: str, depth: int, whole: bool, number: int, padding: bytes,
          encodings: tuple[str | None, ...] = (None,), defect: str = "none",
          cut: bool = False) -> Built:
    """A stored message whose file `number` is a forward (named forwarded.eml) of a
    `depth`-1 deep chain, each level sent in encodings[level % len(encodings)], a part of
    DEFECTS[defect] before its files, and its close delimiter missing if `cut`."""
    built = Built()
    writer = Writer(nl, padding, built, encodings)
    before = [writer.text("see below")]
    if DEFECTS[defect]:
        before.append(writer.lines(*DEFECTS[defect]))
    built.outer = str(len(before) + number)
    inner = chain(writer, kind, depth - 1, whole, _below(built.outer, 1))
    files = [writer.file(f"f{index}.csv", b"a,b%d" % index) for index in range(1, 4)]
    files[number - 1] = writer.forward_part(built.outer, inner, "forwarded.eml",
                                            writer.encoding(depth))
    content_type, body = writer.multipart(
        "outer", [*before, *files], preamble=b"preamble" if padding else b"",
        epilogue=b"epilogue" + nl if padding else b"", closed=not cut)
    built.raw = writer.head("outer", content_type) + nl + body
    return built


LINE_ENDS = {b"\r\n": "crlf", b"\n": "lf"}
KINDS = ["plain", "folded", "eightbit", "csv", "digest", "obsolete"]
NUMBERS = [(1, b""), (2, b" \t"), (3, b" ")]  # (the forward's number, transport padding)


def _id(nl, kind, depth, whole, number, padding, encodings="plain", defect="none", cut=False):
    return (f"{LINE_ENDS[nl]}-{kind}-depth{depth}-{'whole' if whole else 'part'}-n{number}-"
            f"{'pad' if padding else 'bare'}-{encodings}-{defect.replace(' ', '_')}"
            + ("-cut" if cut else ""))


WELL_FORMED = [(nl, kind, depth, whole, number, padding)
               for nl, kind, depth, whole, (number, padding) in itertools.product(
                   LINE_ENDS, KINDS, [1, 2, 3, 4], [False, True], NUMBERS)]
# A sample of every encoding, defect and cut with all the rest (the whole product is
# 20,736 messages): drawn once, the same each run.
MALFORMED = random.Random(2046).sample([
    (nl, kind, depth, whole, number, padding, encodings, defect, cut)
    for nl, kind, depth, whole, (number, padding), encodings, defect, cut in itertools.product(
        LINE_ENDS, KINDS, [1, 2, 3, 4], [False, True], NUMBERS, ENCODINGS, DEFECTS,
        [False, True])], 600)
CORPUS = [pytest.param(*case, "plain", "none", False, id=_id(*case)) for case in WELL_FORMED] \
    + [pytest.param(*case, id=_id(*case)) for case in MALFORMED]


def node_at(node: message_tree.Part, path: str) -> message_tree.Part:
    for step in path.split("."):
        node = node.children[int(step) - 1]
    return node


def slice_of(raw: bytes, expected: bytes) -> bytes:
    """The bytes of raw where `expected` was written (it must be there, once at least)."""
    start = raw.find(expected)
    assert start >= 0
    return raw[start:start + len(expected)]


def downloaded(raw: bytes, name: str = "forwarded.eml"):
    """(the listed file named `name`, its numbered download): the number as listed."""
    [listed] = [file for file in mail_view.files(raw) if file.filename == name]
    found, data = mail_view.attachment(raw, listed.number)
    assert (found.filename, found.size) == (listed.filename, listed.size)
    return listed, data


@pytest.mark.parametrize("nl, kind, depth, whole, number, padding, encodings, defect, cut",
                         CORPUS)
def test_every_forward_downloads_as_its_stored_bytes(nl, kind, depth, whole, number, padding,
                                                     encodings, defect, cut):
    built = build(nl, kind, depth, whole, number, padding, ENCODINGS[encodings], defect, cut)
    message = forwarded.parse(built.raw)
    tree = message_tree.tree(message, None)
    assert len(built.forwards) >= depth
    for path, expected in built.forwards.items():
        data = message_tree.decoded(message_tree.part_at(message, path))
        assert data == expected, path
        if built.in_raw(path):
            assert data == slice_of(built.raw, expected), path
        assert node_at(tree, path).size == len(expected), path
    listed, data = downloaded(built.raw)
    assert data == built.forwards[built.outer]
    assert listed.size == len(data)


class Work:
    """What a view does, counted: bytes re-serialized (Message.as_bytes) and bytes parsed
    (mime.parse_message, by whichever module calls it)."""

    def __init__(self, monkeypatch):
        self.serialized, self.parsed = 0, 0
        as_bytes, parse_message = email.message.Message.as_bytes, mime.parse_message

        def serializing(message, *args, **kwargs):
            data = as_bytes(message, *args, **kwargs)
            self.serialized += len(data)
            return data

        def parsing(raw, *args, **kwargs):
            self.parsed += len(raw)
            return parse_message(raw, *args, **kwargs)
        monkeypatch.setattr(email.message.Message, "as_bytes", serializing)
        for module in (mime, forwarded, message_tree, mail_view):
            if hasattr(module, "parse_message"):
                monkeypatch.setattr(module, "parse_message", parsing)


@pytest.mark.parametrize("depth", [8, 16, 24])
@pytest.mark.parametrize("encodings", ["plain", "mixed", "qp"])
@pytest.mark.parametrize("defect, cut", [("none", False), ("no close delimiter", True),
                                         ("obsolete field names", False)])
def test_a_views_work_is_linear_in_forward_nesting(depth, encodings, defect, cut, monkeypatch):
    """Review r10 F2: the listing (show, the API) and the download re-serialize nothing
    and parse the stored message once, and each forward sent encoded that they open once
    from its decoded bytes: those of one nesting level of them are disjoint and no larger
    than their encoded text, and REBUILT_NESTING levels are opened, so at most that many
    times the message's size more, however deep the nesting."""
    built = build(b"\r\n", "csv", depth, False, 2, b" ", ENCODINGS[encodings], defect, cut)
    work = Work(monkeypatch)
    listed, data = downloaded(built.raw)
    assert data == built.forwards[built.outer] and listed.size == len(data)
    assert work.serialized == 0
    if encodings == "plain":
        assert work.parsed == 2 * len(built.raw)  # (the listing's parse, the download's)
    assert work.parsed <= (2 + forwarded.REBUILT_NESTING) * len(built.raw)


def test_forwards_sent_encoded_are_opened_to_the_nesting_the_indexer_reads():
    """The forward sent encoded inside REBUILT_NESTING others is listed, its download its
    decoded bytes, its message not read (said so); those above are opened."""
    levels = forwarded.REBUILT_NESTING + 1
    built = build(b"\n", "csv", levels + 2, False, 1, b"", ("quoted-printable",))
    message = forwarded.parse(built.raw)
    tree = message_tree.tree(message, None)
    paths = sorted(built.encoded, key=len)  # outermost first, each inside the one before
    assert len(paths) == levels + 2
    for nesting, path in enumerate(paths[:levels]):
        node = node_at(tree, path)
        opened = nesting < forwarded.REBUILT_NESTING
        assert node.size == len(built.forwards[path])
        assert bool(node.children) is opened
        assert node.not_opened == (None if opened else forwarded.NOT_OPENED)
    with pytest.raises(IndexError):
        node_at(tree, paths[levels])


def _refused(raw: bytes) -> bytes:
    """`raw` with a "From " line ending its header block: mimetree leaves it to the
    feedparser, nothing is located (see test_a_message_the_parser_cannot_locate...)."""
    refused = raw.replace(b"\r\n\r\n", b"\r\nFrom nobody\r\n\r\n", 1)
    assert mimetree_refuses(refused)
    return refused


@pytest.mark.parametrize("depth", [3, 6, 16])
def test_forwards_not_located_are_rebuilt_to_the_nesting_the_indexer_reads(depth, monkeypatch):
    """Each forward of a message nothing is located in is its message re-serialized, and
    each re-serializes all it holds: REBUILT_NESTING levels are opened, the next listed
    (its download its bytes) but not read, so that a view re-serializes at most that many
    times the message, however deep the nesting (review r10 F2, where the parser cannot
    say where the forwards lie). `depth` forwards, each in the one before."""
    writer = Writer(b"\r\n", b"", Built())
    raw = inner_message(writer, "csv", "level0", "")
    for level in range(1, depth + 1):
        content_type, body = writer.multipart(f"L{level}", [
            writer.text("forwarded"), writer.forward_part("", raw, f"level{level - 1}.eml")])
        raw = writer.head(f"level{level}", content_type) + b"\r\n" + body
    raw = _refused(raw)
    work = Work(monkeypatch)
    [forward] = mail_view.files(raw)
    assert work.serialized <= (REBUILT + 2) * len(raw)
    found, data = mail_view.attachment(raw, 1)
    assert len(data) == found.size == forward.size
    chain = [forward]
    while inner := [file for file in chain[-1].files if file.filename.endswith(".eml")]:
        chain += inner
    assert len(chain) == min(depth, REBUILT + 1)
    # (the forward inside REBUILT_NESTING others is nested past the indexer's rule too,
    # extract.opens_nested, which the views ask first)
    assert chain[-1].not_opened == (NESTED_TOO_DEEP if depth > REBUILT else None)


REBUILT = forwarded.REBUILT_NESTING


@pytest.mark.parametrize("nl", [b"\r\n", b"\n"])
@pytest.mark.parametrize("kind", ["csv", "eightbit", "obsolete"])
@pytest.mark.parametrize("encoding", ["quoted-printable", "base64"])
def test_a_forward_sent_encoded_downloads_as_its_decoded_bytes(nl, kind, encoding):
    """RFC 2046 forbids encoding a message/rfc822 part; mailers do (review r10 F4). Its
    file is its stored content transfer-decoded (as extraction reads it), byte for byte,
    and what the views list in it is what that file holds."""
    built = build(nl, kind, 1, False, 2, b"", (encoding,))
    listed, data = downloaded(built.raw)
    assert data == built.forwards["3"]
    assert [(file.filename, file.size) for file in listed.files] == \
        [(file.filename, file.size) for file in mail_view.files(data)]
    part = message_tree.part_at(forwarded.parse(built.raw), "3")
    assert comparable(forwarded.inner_message(part)) == \
        comparable(mime.parse_message(forwarded.message_bytes(part)))


@pytest.mark.parametrize("nl", [b"\r\n", b"\n"])
@pytest.mark.parametrize("encoding", [None, "base64"])
def test_a_forward_as_the_whole_stored_message(nl, encoding):
    built = Built()
    writer = Writer(nl, b"", built)
    inner = chain(writer, "csv", 2, False, "1")
    fields = [b"Content-Type: message/rfc822"]
    if encoding:
        fields.append(b"Content-Transfer-Encoding: " + encoding.encode())
    built.raw = writer.head("whole", *fields) + nl + encoded(inner, encoding, nl)
    message = forwarded.parse(built.raw)
    assert message_tree.decoded(message) == inner
    for path, expected in built.forwards.items():
        assert message_tree.decoded(message_tree.part_at(message, path)) == expected


@pytest.mark.parametrize("encoding", [None, "base64", "quoted-printable"])
def test_a_forward_last_in_a_message_cut_short_ends_before_the_missing_delimiter(encoding):
    """Its last line end is the close delimiter's that never came (RFC 2046 5.1.1), as
    the parser reads it: the forward is the message as written, the listed one."""
    built = build(b"\r\n", "folded", 2, True, 3, b"", (encoding,), cut=True)
    assert not built.raw.endswith(b"--outer--\r\n")
    listed, data = downloaded(built.raw)
    assert data == built.forwards[built.outer] and listed.size == len(data)


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


@pytest.mark.parametrize("where", ["the message", "a part"])
def test_a_message_the_parser_cannot_locate_is_served_as_parsed(where):
    """A "From " line ending a header block before its blank line (the feedparser reads
    it as the body's first line and drops the blank line: no one span of text) makes
    mimetree leave the message to the feedparser: the forward is served as the parser's
    message, re-serialized, as before -- never other bytes -- and listed so."""
    writer = Writer(b"\r\n", b"", Built())
    inner = inner_message(writer, "folded", "cut", "")
    odd = b"From nobody\r\n"
    raw = writer.head("odd", b'Content-Type: multipart/mixed; boundary="B"') \
        + (odd if where == "the message" else b"") + b"\r\n--B\r\n" \
        + writer.text("body").replace(b"\r\n\r\n", b"\r\n" + odd + b"\r\n", 1
                                      if where == "a part" else 0) + b"\r\n--B\r\n" \
        + writer.forward_part("2", inner, "cut.eml") + b"\r\n--B--\r\n"
    assert mimetree_refuses(raw)
    parsed = BytesParser(policy=POLICY).parsebytes(raw).get_payload()[1].get_payload()[0]
    listed, data = downloaded(raw, "cut.eml")
    assert data == parsed.as_bytes() != inner
    assert listed.size == len(data)


def mimetree_refuses(raw: bytes) -> bool:
    return mimetree.parse(raw, POLICY) is None


def test_only_located_parts_are_served_as_stored_bytes():
    """message_bytes serves the stored bytes of a part parse() located, and of one it
    did not (a part of a tree parsed otherwise) its message re-serialized."""
    built = build(b"\r\n", "folded", 1, False, 1, b"")
    part = message_tree.part_at(forwarded.parse(built.raw), "2")
    assert forwarded.message_bytes(part) == built.forwards["2"]
    elsewhere = mime.parse_message(built.raw).get_payload()[1]
    assert forwarded.message_bytes(elsewhere) == elsewhere.get_payload(0).as_bytes() \
        != built.forwards["2"]
