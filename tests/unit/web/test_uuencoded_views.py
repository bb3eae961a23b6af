"""Files uuencoded in a message's body text (old mailers: "begin 644 NAME" ... "end" in a
text/plain body) or sent as its body (Content-Transfer-Encoding: x-uuencode and its other
names, on a text type or none) are read alike by every view: extraction reads each as an
attachment where its text part is (`show` lists the names the indexer keeps of that
reading), the web's list (services.web.mail_view) numbers them in that order and serves
each one's exact bytes, the message tree has them as parts (a whole body's as 1, 2, ...)
and no view shows their encoded lines, or the file an x-uuencode body decodes to, as body
text. A block that does not decode (cut, no "end", a line no decoder reads) stays text,
nothing lost. Generated over the kind: every text type and none, LF and CRLF, the names of
x-uuencode in either case, names with blanks and non-ASCII letters, several blocks, blocks
in a multipart's text part and in attached messages; and the project's mail cases.
Review 199 F1 (the reviewer's reproducers are test_x_uuencode_whole_body_is_attachment_1)."""
from __future__ import annotations

import base64
import binascii
import itertools
import quopri
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.archive import mime
from services.archive.extract import extract
from services.archive.store import NotFound
from services.web import forwarded, mail_view, message_tree

HEAD = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
CAP = 1 << 20
CASES = Path(__file__).parents[2] / "data" / "cases"
PDF = b"%PDF-1.4\n\x00\x01\x80 binary\xfe\xff\n"
# name as the begin line has it (bytes), the charset of its text, the name every view gives
NAMES = [(b"report.pdf", None, "report.pdf"),
         (b"meeting notes 2024.txt", None, "meeting notes 2024.txt"),
         ("r\u00e9sum\u00e9 final.bin".encode(), "utf-8", "r\u00e9sum\u00e9 final.bin"),
         ("caf\u00e9.dat".encode("latin-1"), "iso-8859-1", "caf\u00e9.dat"),
         (b"=?utf-8?q?caf=C3=A9?=.bin", None, "=?utf-8?q?caf=C3=A9?=.bin")]
FILES = [PDF, b"zanzibar quokka notes\n", bytes(range(256)) * 3, b"\x00", PDF * 40]
TEXT_TYPES = [b"text/plain", b"TEXT/PLAIN", b"text/calendar", b"text/csv", b"text/enriched",
              b"text/x-unknown", None]
UUENCODINGS = [b"x-uuencode", b"X-UUENCODE", b"uuencode", b"x-uue", b"UUE",
               b"x-uuencode (old client)"]


def block(name: bytes, data: bytes, terminator: bytes | None = b"`") -> bytes:
    """A uuencoded file as uuencode(1) writes it, LF line ends."""
    lines = b"".join(binascii.b2a_uu(data[at:at + 45]) for at in range(0, len(data), 45))
    return b"begin 644 " + name + b"\n" + lines + \
        (terminator + b"\n" if terminator is not None else b"") + b"end\n"


@dataclass
class Case:
    id: str
    raw: bytes
    files: list[tuple[str, bytes]] | None  # (name, bytes) of each file, in order; None:
                                           # not known here (an attached message)
    words: list[str]                       # body words every view shows
    kept: list[str]                        # text of blocks that do not decode: body text


def _typed(content_type: bytes | None, charset: str | None) -> bytes:
    if content_type is None:
        return b""
    named = b"; charset=" + charset.encode() if charset else b""
    return b"Content-Type: " + content_type + named + b"\r\n"


def _bodies(at: int):
    """(id, body text with LF line ends, [(name, bytes)], body words, kept text, charset)
    of the `at`-th name and file: one block, text around it, several, and blocks that do
    not decode beside one that does."""
    name, charset, shown = NAMES[at % len(NAMES)]
    data, other = FILES[at % len(FILES)], FILES[(at + 1) % len(FILES)]
    one = block(name, data)
    yield "one", one, [(shown, data)], [], [], charset
    yield "around", b"Hello Bob,\nthe file:\n" + one + b"Regards, okapi\n", \
        [(shown, data)], ["okapi", "Hello"], [], charset
    yield "several", one + b"between wombat\n" + block(b"second.txt", other) + \
        block(b"third file.pdf", data, b""), \
        [(shown, data), ("second.txt", other), ("third file.pdf", data)], ["wombat"], [], \
        charset
    cut = block(b"cut.bin", other)
    yield "cut-and-bad", b"intro ibex\n" + cut[:cut.rindex(b"end")] + b"middle\n" + one + \
        b"begin 644 bad.bin\nthis line is prose, not data\nend\n", [(shown, data)], \
        ["ibex", "middle"], ["begin 644 cut.bin", "this line is prose"], charset
    yield "none-decodes", b"begin 644 was the code\nwe used\nend\n", [], ["code"], \
        ["begin 644 was the code"], charset


def _with_newline(case: Case, newline: bytes) -> Case:
    ending = "crlf" if newline == b"\r\n" else "lf"
    return Case(f"{case.id}-{ending}",
                case.raw.replace(b"\r\n", b"\n").replace(b"\n", newline), case.files,
                case.words, case.kept)


def whole_bodies():
    """A body sent x-uuencode, on each text type and none."""
    for (at, content_type), encoding in itertools.product(enumerate(TEXT_TYPES),
                                                          UUENCODINGS):
        for kind, body, files, words, kept, charset in _bodies(at):
            yield Case(f"whole-{content_type}-{encoding}-{kind}",
                       HEAD + _typed(content_type, charset) + b"Content-Transfer-Encoding: "
                       + encoding + b"\r\n\r\n" + body, files, words, kept)


TEXT_ENCODINGS = {None: bytes, b"7bit": bytes, b"8bit": bytes, b"base64": base64.encodebytes,
                  b"quoted-printable": quopri.encodestring}


def inline_bodies():
    """Blocks in a body of text (no transfer encoding, or one of RFC 2045's)."""
    for (at, content_type), (encoding, encode) in itertools.product(
            enumerate(TEXT_TYPES), TEXT_ENCODINGS.items()):
        for kind, body, files, words, kept, charset in _bodies(at):
            encoded = b"Content-Transfer-Encoding: " + encoding + b"\r\n" if encoding else b""
            yield Case(f"inline-{content_type}-{encoding}-{kind}",
                       HEAD + _typed(content_type, charset) + encoded + b"\r\n" + encode(body),
                       files, words, kept)


def multiparts():
    """Blocks in a multipart's text parts, beside MIME attachments and an HTML part."""
    for at, encoding in itertools.product(range(len(NAMES)), (None, b"x-uuencode")):
        for kind, body, files, words, kept, charset in _bodies(at):
            encoded = b"Content-Transfer-Encoding: " + encoding + b"\n" if encoding else b""
            text = b"Content-Type: text/plain" + (b"; charset=" + charset.encode()
                                                  if charset else b"") + b"\n" + encoded
            pdf = (b"Content-Type: application/pdf; name=\"mime.pdf\"\n"
                   b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(PDF))
            mixed = (b"Content-Type: multipart/mixed; boundary=B\n\n--B\n" + pdf + b"--B\n"
                     + text + b"\n" + body + b"--B\n" + pdf + b"--B--\n")
            yield Case(f"mixed-{encoding}-{at}-{kind}", HEAD + mixed,
                       [("mime.pdf", PDF), *files, ("mime.pdf", PDF)], words, kept)
            alternative = (b"Content-Type: multipart/alternative; boundary=A\n\n--A\n" + text
                           + b"\n" + body + b"--A\nContent-Type: text/html\n\n<p>page</p>\n"
                           b"--A--\n")
            yield Case(f"alternative-{encoding}-{at}-{kind}", HEAD + alternative, files,
                       words, kept)
            inner = b"Subject: inner\n" + text + b"\n" + body
            yield Case(f"rfc822-root-{encoding}-{at}-{kind}",
                       HEAD + b"Content-Type: message/rfc822\n\n" + inner, files, words, kept)
            yield Case(f"attached-{encoding}-{at}-{kind}",
                       HEAD + b"Content-Type: multipart/mixed; boundary=B\n\n--B\n"
                       b"Content-Type: text/plain\n\nforwarded below\n--B\n"
                       b"Content-Type: message/rfc822\n\n" + inner + b"--B--\n", None,
                       ["forwarded"], [])


CORPUS = [_with_newline(case, newline)
          for case in [*whole_bodies(), *inline_bodies(), *multiparts()]
          for newline in (b"\n", b"\r\n")]


def top_files(tree: message_tree.Part) -> list[message_tree.Part]:
    """The tree's parts that are files of the message itself: attachments not inside an
    attachment (a TNEF's files, an attached message's parts are its own)."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if node.path and node.attachment:
            found.append(node)
            continue
        stack.extend(reversed(node.children))
    return found


def agree(raw: bytes) -> tuple[list, mail_view.MessageView, message_tree.Body]:
    """Asserts that the web's list, downloads and message tree have the files extraction
    reads, in its order, and that `show`'s names are extraction's; returns (the files as
    extraction has them, the web's view, the tree's body)."""
    extracted = extract(raw, CAP)
    files = [entry for entry in extracted.attachments if entry.container is None]
    shown = mail_view.view(raw)
    assert [(a.number, a.filename) for a in shown.attachments] == \
        [(number, entry.filename or f"attachment-{number}")
         for number, entry in enumerate(files, 1)]
    message = forwarded.parse(raw)
    parts = top_files(message_tree.tree(message, []))
    assert [part.filename for part in parts] == [entry.filename for entry in files]
    for listed, part in zip(shown.attachments, parts):
        data = mail_view.attachment(raw, listed.number)[1]
        assert message_tree.decoded(message_tree.part_at(message, part.path)) == data
        assert listed.size == len(data)
    with pytest.raises(NotFound):
        mail_view.attachment(raw, len(files) + 1)
    # `show` lists the names the indexer records of the reading (services.archive.indexer)
    assert [entry.filename for entry in extracted.attachments if entry.filename] == \
        [name for name in _show_names(raw)]
    return files, shown, message_tree.body(message)


def _show_names(raw: bytes) -> list[str]:
    """The attachment names `archiver show` prints of a message: the indexer's record of
    its reading (services.archive.indexer: the names of extract()'s attachments)."""
    return [entry.filename for entry in extract(raw, CAP).attachments if entry.filename]


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_every_view_has_the_uuencoded_files_extraction_reads(case):
    files, shown, body = agree(case.raw)
    if case.files is not None:
        assert [(entry.filename, mail_view.attachment(case.raw, number)[1])
                for number, entry in enumerate(files, 1)] == case.files
    # the API's body is the first text/plain part's (mail_view._body_text), the page's
    # the first text part's (message_tree.body): each shows the text around the blocks
    plain = b"content-type: text/plain" in case.raw.lower() or \
        b"content-type:" not in case.raw.lower()
    for text in [body.text or "", *([shown.body] if plain else [])]:
        assert "\x00" not in text and "PDF-1.4" not in text  # no file is body text
        for name, data in case.files or []:  # (a long file's first line says it is there)
            assert name == "mime.pdf" or len(data) < 20 or \
                binascii.b2a_uu(data[:45]).decode().strip() not in text
            assert f"begin 644 {name}" not in text
        assert all(word in text for word in case.words + case.kept)


@pytest.mark.parametrize("content_type", [b"text/plain", b"text/plain; charset=utf-8",
                                          b"text/calendar", None])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_x_uuencode_whole_body_is_attachment_1(content_type, newline):
    """Review 199 F1's reproducers: they failed before the web read mime's rule."""
    typed = b"Content-Type: " + content_type + b"\r\n" if content_type else b""
    data = b"%PDF-1.4\n\x00\x01\x80 binary"
    body = (b"begin 644 report.pdf\n" + binascii.b2a_uu(data) + b"`\nend\n"
            ).replace(b"\n", newline)
    raw = HEAD + typed + b"Content-Transfer-Encoding: x-uuencode\r\n\r\n" + body
    assert [a.filename for a in extract(raw, 1 << 20).attachments] == ["report.pdf"]
    shown = mail_view.view(raw)
    assert "\x00" not in shown.body and "PDF-1.4" not in shown.body  # no binary as text
    assert [a.filename for a in shown.attachments] == ["report.pdf"]
    assert mail_view.attachment(raw, 1)[1] == data
    tree = message_tree.tree(forwarded.parse(raw), [])
    assert [p.path for p in tree.walk() if p.path and p.attachment] == ["1"]
    assert tree.children[0].shown_as == "pdf"


def test_an_x_uuencode_attachment_is_named_by_its_begin_line_everywhere():
    """A MIME attachment sent x-uuencode without a MIME name: extraction names it by its
    begin line, and so do the web's list and the tree (before: "attachment-1", no name)."""
    raw = (HEAD + b"Content-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: x-uuencode\r\n\r\n" + block(b"scan 1.pdf", PDF))
    files, shown, _ = agree(raw)
    assert [a.filename for a in shown.attachments] == ["scan 1.pdf"]


def test_the_listed_files_are_bounded_for_a_hostile_body(monkeypatch):
    """A body of more tiny blocks than the web lists (mime.UUENCODED_FILES_LISTED, in
    all, over every text part): the first ones are listed, the rest's blocks are no text."""
    monkeypatch.setattr(mime, "UUENCODED_FILES_LISTED", 5)
    tiny = b"".join(block(b"f%d" % n, b"x") for n in range(4))
    raw = (HEAD + b"Content-Type: multipart/mixed; boundary=B\n\n--B\n"
           b"Content-Type: text/plain\n\n" + tiny + b"--B\nContent-Type: text/plain\n\n"
           + tiny + b"words\n--B--\n")
    shown = mail_view.view(raw)
    assert [a.filename for a in shown.attachments] == ["f0", "f1", "f2", "f3", "f0"]
    parts = top_files(message_tree.tree(forwarded.parse(raw), []))
    assert [p.path for p in parts] == ["1.1", "1.2", "1.3", "1.4", "2.1"]
    assert shown.body.strip() == ""  # (the first text part's; it held only blocks)
    assert "begin" not in (message_tree.body(forwarded.parse(raw)).text or "")


@pytest.mark.parametrize("path", sorted(CASES.rglob("*.eml")) + sorted(
    path for path in CASES.rglob("*") if path.parent.name in ("cur", "new")),
    ids=lambda path: str(path.relative_to(CASES)))
def test_the_mail_cases_agree(path):
    agree(path.read_bytes())


@pytest.mark.parametrize("name, content_type", [
    ("report.pdf", "application/pdf"), ("NOTES.TXT", "text/plain"),
    (None, "application/octet-stream"), ("no extension", "application/octet-stream"),
    ("data:text/html,<script>x</script>", "application/octet-stream")])  # (no data URL)
def test_a_uuencoded_file_s_type_is_its_extension_s(name, content_type):
    assert mime.FoundFile(name, b"").get_content_type() == content_type
