"""Every file of an attachment sent x-uuencode (mime's rule, UUENCODED_ATTACHMENT), and one
numbering of a message's files past the 1,000 extraction reads (containers.
MESSAGE_ATTACHMENTS; review r4 F1), in extraction, `show` and the web alike.

An attachment part (Content-Disposition: attachment, a type other than text, or a name)
sent x-uuencode whose payload holds two or more blocks that decode is all of them: extraction
reads each (its text indexed), `show` lists their names, the web lists, numbers and serves
each and the message tree has them as the part's children. The first keeps the part's own
name (else its begin line's) and type, the others their begin lines' names; the text around
the blocks (blocks that do not decode included) is stored, not indexed as body text, and the
web's reader does not show it either (search and reader agree). Generated over
the kind: 1 to 4 blocks, the part named or not, every name of x-uuencode, LF and CRLF, a
truncated last block, a block that does not decode, the part in a multipart/mixed between
MIME attachments, as the whole body, and inside a forwarded message/rfc822.

Numbering: a file's number is its place among all the message's files (mime's order);
extraction reads the first 1,000 and the web lists them under the same numbers, and more
after them, so that what is stored stays downloadable; uuencoded files past the web's own
limit (mime.UUENCODED_FILES_LISTED) are counted though not listed."""
from __future__ import annotations

import base64
import binascii
import itertools
from dataclasses import dataclass

import pytest

from services.archive import containers, mime
from services.archive.extract import extract
from services.web import forwarded, mail_view, message_tree
from tests.unit.web.test_uuencoded_views import (CAP, HEAD, PDF, UUENCODINGS, agree, block,
                                                 top_files)

FILES = [(b"alpha.txt", "alpha.txt", b"zanzibar quokka notes\n"),
         (b"scan 2.pdf", "scan 2.pdf", PDF),
         (b"table.bin", "table.bin", bytes(range(256)) * 2),
         (b"last one.dat", "last one.dat", b"\x00\x01 tail")]
# (the part's Content-Type and -Disposition fields, its MIME name or None)
ATTACHMENT_KINDS = [
    (b"Content-Type: application/octet-stream; name=\"pack.uue\"\n", "pack.uue"),
    (b"Content-Type: application/octet-stream\n", None),
    (b"Content-Type: text/plain\nContent-Disposition: attachment\n", None),
    (b"Content-Type: text/plain\nContent-Disposition: attachment; filename=\"notes.txt\"\n",
     "notes.txt"),
    (b"Content-Type: image/png\n", None)]


@dataclass
class Case:
    id: str
    raw: bytes
    files: list[tuple[str, bytes]] | None  # the message's own files in order (None: the
                                           # part is inside a forwarded message)
    inner: list[str]                       # names of the forwarded message's files
    words: list[str]                       # words around the blocks: neither indexed
                                           # as body text nor in the reader's body
    as_text: int | None = None             # no block decodes: the file at this index
                                           # of `files` is the payload


def _crlf(case: Case) -> Case:
    """`case` with CR LF line ends (the payload a file is too, when none decodes)."""
    files = case.files
    if case.as_text is not None and files is not None:
        files = [(name, data.replace(b"\n", b"\r\n") if at == case.as_text else data)
                 for at, (name, data) in enumerate(files)]
    raw = case.raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return Case(case.id + "-crlf", raw, files, case.inner,
                case.words, case.as_text)


def _payload(blocks: int, tail: str) -> tuple[bytes, list[tuple[bytes, str, bytes]], list[str]]:
    """(an x-uuencode payload of `blocks` blocks with text around them and `tail` after
    them, the blocks' (begin name, name, data), the words around them)."""
    files = [FILES[at % len(FILES)] for at in range(blocks)]
    body = b"intro okapi\n" + b"between wombat\n".join(block(name, data)
                                                       for name, _, data in files)
    words = ["okapi"] + (["wombat"] if blocks > 1 else [])
    if tail == "truncated":
        cut = block(b"cut.bin", b"never whole")
        body += cut[:cut.rindex(b"end")]
        words.append("cut.bin")
    elif tail == "prose":
        body += b"begin 644 was the code\nwe used ibex\nend\n"
        words.append("ibex")
    return body, files, words


def _expected(files, mime_name: str | None, payload: bytes) -> list[tuple[str | None, bytes]]:
    """The files the part is: its blocks', the first named as the part is; itself (its
    payload as it came, its MIME name) when none decodes."""
    if not files:
        return [(mime_name, payload)]
    (_, first_name, first_data), *more = files
    return [(mime_name or first_name, first_data), *((name, data) for _, name, data in more)]


def _part(kind: bytes, encoding: bytes, payload: bytes) -> bytes:
    return kind + b"Content-Transfer-Encoding: " + encoding + b"\n\n" + payload


def generated():
    pdf = (b"Content-Type: application/pdf; name=\"mime.pdf\"\n"
           b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(PDF))
    for blocks, tail, (kind, mime_name), encoding in itertools.product(
            range(0, 5), ("", "truncated", "prose"), ATTACHMENT_KINDS, UUENCODINGS[:4]):
        if blocks == 0 and not tail:
            continue
        payload, files, words = _payload(blocks, tail)
        expected = _expected(files, mime_name, payload)
        around = words  # (no block decodes: the text is the file, no body text either)
        part = _part(kind, encoding, payload)
        kind_id = kind.split(b";")[0].replace(b"Content-Type: ", b"").replace(
            b"\nContent-Disposition: ", b"+").strip().decode()
        tag = f"{blocks}-{tail or 'end'}-{mime_name}-{kind_id}-{encoding.decode()}"
        # (the line break before a boundary is the delimiter's: not of the part)
        in_multipart = expected if files else [(mime_name, payload[:-1])]
        yield Case(f"mixed-{tag}", HEAD + b"Content-Type: multipart/mixed; boundary=B\n\n"
                   b"--B\nContent-Type: text/plain\n\nhello\n--B\n" + pdf + b"--B\n" + part
                   + b"--B\n" + pdf + b"--B--\n",
                   [("mime.pdf", PDF), *in_multipart, ("mime.pdf", PDF)], [], around,
                   None if files else 1)
        yield Case(f"whole-{tag}", HEAD + part, expected, [], around, None if files else 0)
        inner = b"Subject: inner\nMIME-Version: 1.0\n" + (
            b"Content-Type: multipart/mixed; boundary=I\n\n--I\n" + part + b"--I--\n")
        yield Case(f"forwarded-{tag}", HEAD + b"Content-Type: multipart/mixed; boundary=B\n\n"
                   b"--B\nContent-Type: text/plain\n\nforwarded below\n--B\n"
                   b"Content-Type: message/rfc822\n\n" + inner + b"--B--\n", None,
                   [name for name, _ in expected], [])


CORPUS = [variant for case in generated() for variant in (case, _crlf(case))]


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_every_file_of_an_x_uuencode_attachment_in_every_view(case):
    files, shown, _ = agree(case.raw)  # extraction, `show`, the web's list and tree agree
    extracted = extract(case.raw, CAP)
    if case.files is not None:
        assert [(entry.filename, mail_view.attachment(case.raw, number)[1])
                for number, entry in enumerate(files, 1)] == \
            [(name, data) for name, data in case.files]
        assert [a.filename for a in shown.attachments] == \
            [name or f"attachment-{number}" for number, (name, _) in enumerate(case.files, 1)]
    else:  # the forwarded message's files, in its entry's wake, none of the message's own
        assert [entry.filename for entry in extracted.attachments
                if entry.container is not None] == case.inner
    body = mail_view.view(case.raw).body
    for word in case.words:  # the text around the blocks: stored, not body text
        assert word not in extracted.body and word not in body, word


def test_the_first_file_keeps_the_part_s_name_and_type_the_others_their_begin_lines():
    payload, _, _ = _payload(3, "")
    raw = HEAD + _part(b"Content-Type: application/pdf; name=\"scan.pdf\"\n", b"x-uuencode",
                       payload)
    shown = mail_view.view(raw)
    assert [(a.number, a.filename, a.content_type) for a in shown.attachments] == [
        (1, "scan.pdf", "application/pdf"), (2, "scan 2.pdf", "application/pdf"),
        (3, "table.bin", "application/octet-stream")]
    tree = message_tree.tree(forwarded.parse(raw), [])
    assert [(p.path, p.filename) for p in top_files(tree)] == \
        [("1", "scan.pdf"), ("2", "scan 2.pdf"), ("3", "table.bin")]


def test_one_block_stays_the_part_itself():
    """One block that decodes: the part is its one file, as it always was (its download,
    its node in the tree); the text around it is not body text (review r5 F1: its
    truncated, undecodable encoded lines had been indexed)."""
    payload, _, _ = _payload(1, "prose")
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=B\n\n--B\n" + _part(
        b"Content-Type: application/octet-stream; name=\"one.bin\"\n", b"x-uuencode",
        payload) + b"--B--\n"
    agree(raw)
    tree = message_tree.tree(forwarded.parse(raw), [])
    assert [(p.path, p.filename) for p in top_files(tree)] == [("1", "one.bin")]
    assert "ibex" not in extract(raw, CAP).body
    assert "ibex" not in mail_view.view(raw).body


# -- numbering past the 1,000 files extraction reads (review r4 F1) --------------------------

def _uu(name: bytes, data: bytes) -> bytes:
    return b"begin 644 " + name + b"\n" + binascii.b2a_uu(data) + b"`\nend\n"


def _mime(name: str) -> bytes:
    return (b"Content-Type: application/octet-stream\nContent-Disposition: attachment; "
            b"filename=" + name.encode() + b"\n\n" + name.encode() + b" data\n")


def _blocks(prefix: str, count: int) -> bytes:
    return b"".join(_uu(f"{prefix}{n}.bin".encode(), b"x%d" % n) for n in range(count))


def _mixed(*parts: bytes) -> bytes:
    return (HEAD + b"Content-Type: multipart/mixed; boundary=XX\n\n" +
            b"".join(b"--XX\n" + part + b"\n" for part in parts) + b"--XX--\n")


def _text(body: bytes) -> bytes:
    return b"Content-Type: text/plain\n\nhello\n" + body


def _x_uuencode(body: bytes) -> bytes:
    return b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: x-uuencode\n\n" \
        + body


def _forwarded(*parts: bytes) -> bytes:
    inner = b"Subject: inner\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=YY\n\n" \
        + b"".join(b"--YY\n" + part + b"\n" for part in parts) + b"--YY--\n"
    return b"Content-Type: message/rfc822\n\n" + inner


MANY = {  # (the message, how many files it has of its own)
    "r4-F1: 1,200 uuencoded in the body, then a PDF": (_mixed(
        _text(_blocks("f", 1200)), b"Content-Type: application/pdf\nContent-Disposition: "
        b"attachment; filename=last.pdf\n\n%PDF-1.4 hi\n"), 1201),
    "600 MIME, 600 uuencoded, 2 MIME": (_mixed(
        _text(b""), *(_mime(f"m{n}.txt") for n in range(600)), _text(_blocks("u", 600)),
        _mime("after1.txt"), _mime("after2.txt")), 1202),
    "10 MIME, an x-uuencode attachment of 1,500, 3 MIME": (_mixed(
        _text(b""), *(_mime(f"m{n}.txt") for n in range(10)), _x_uuencode(_blocks("x", 1500)),
        *(_mime(f"z{n}.txt") for n in range(3))), 1513),
    "a forwarded message of 500 files, then 700 uuencoded and a MIME one": (_mixed(
        _text(b""), _forwarded(*(_mime(f"in{n}.txt") for n in range(500))),
        _text(_blocks("v", 700)), _mime("end.txt")), 702),
    "999 MIME, then an x-uuencode attachment of 5": (_mixed(
        _text(b""), *(_mime(f"m{n}.txt") for n in range(999)), _x_uuencode(_blocks("y", 5))),
        1004),
    # wholly past the 1,000 extraction reads: each file counted in its note (review r5 F4)
    "1,000 MIME, then x-uuencode attachments of 5 and 2": (_mixed(
        _text(b""), *(_mime(f"m{n}.txt") for n in range(1000)), _x_uuencode(_blocks("y", 5)),
        _x_uuencode(_blocks("w", 2))), 1007),
    "999 MIME, x-uuencode attachments of 3, of 1 among bad, of none, of 4, a MIME": (_mixed(
        _text(b""), *(_mime(f"m{n}.txt") for n in range(999)), _x_uuencode(_blocks("a", 3)),
        _x_uuencode(_blocks("b", 1) + b"begin 644 bad\n!8\x7f``\n`\nend\n" * 3),
        _x_uuencode(b"begin 644 bad\n!8\x7f``\n`\nend\n"), _x_uuencode(_blocks("c", 4)),
        _mime("end.txt")), 1009),
}


@pytest.mark.parametrize("raw, own", MANY.values(), ids=MANY.keys())
def test_one_numbering_past_the_files_extraction_reads(raw, own):
    extracted = extract(raw, CAP)
    read = [entry.filename for entry in extracted.attachments if entry.container is None]
    listed = mail_view.view(raw).attachments
    # the files extraction reads (and `show` lists) are the web's first, under its numbers
    assert [(a.number, a.filename) for a in listed[:len(read)]] == \
        [(number, name or f"attachment-{number}") for number, name in enumerate(read, 1)]
    # every file of the message is listed, numbered by its place, and downloadable
    assert [a.number for a in listed] == list(range(1, own + 1))
    for found in listed[len(read) - 2:len(read) + 2] + listed[-2:]:
        attachment, data = mail_view.attachment(raw, found.number)
        assert attachment == found and len(data) == found.size
    # the tree has them in that order
    parts = top_files(message_tree.tree(forwarded.parse(raw), []))
    assert [p.filename or f"attachment-{number}" for number, p in enumerate(parts, 1)] \
        == [a.filename for a in listed]
    # extraction read MESSAGE_ATTACHMENTS in all (its forwarded message's files count) and
    # says how many it left: the rest of the message's own and its forwarded one's
    inner = sum(1 for entry in extracted.attachments if entry.container is not None)
    assert len(extracted.attachments) == containers.MESSAGE_ATTACHMENTS
    left = own + inner - containers.MESSAGE_ATTACHMENTS
    assert f"{left} attachments past the first {containers.MESSAGE_ATTACHMENTS} not read" \
        in (extracted.cut or "")


def test_files_past_the_web_s_limit_keep_their_numbers(monkeypatch):
    """uuencoded files past mime.UUENCODED_FILES_LISTED are not listed, but counted: the
    MIME attachment after them has the number extraction gives it."""
    monkeypatch.setattr(mime, "UUENCODED_FILES_LISTED", 30)
    raw = _mixed(_text(_blocks("f", 20)), _x_uuencode(_blocks("x", 20)), _mime("end.txt"))
    read = [entry.filename for entry in extract(raw, CAP).attachments]
    assert len(read) == 41 and read[-1] == "end.txt"
    listed = mail_view.view(raw).attachments
    assert [(a.number, a.filename) for a in listed] == \
        [(number, name) for number, name in enumerate(read, 1) if number <= 31 or
         number == 41]
    assert mail_view.attachment(raw, 41)[1] == b"end.txt data\n"


# -- a forwarded message sent as a uuencoded .eml file (review r5 F6) -------------------------

EML = (b"From: x@example.org\nSubject: the inner one\nMIME-Version: 1.0\n"
       b"Content-Type: text/plain\n\nnarwhal minutes\n")
EML_PLACES = {  # (the message, the .eml file's top-level part path in the tree)
    "in body text": (HEAD + b"Content-Type: text/plain\n\nsee below\n" + block(b"fwd.eml", EML),
                     "1"),
    "in body text after another file": (
        HEAD + b"Content-Type: text/plain\n\nsee\n" + block(b"a.txt", b"first\n") +
        block(b"fwd.eml", EML), "2"),
    "the second file of an x-uuencode attachment": (
        _mixed(_text(b""), _x_uuencode(block(b"a.txt", b"first\n") + block(b"fwd.eml", EML))),
        "2.2"),
    "in body text, CRLF": ((HEAD + b"Content-Type: text/plain\n\nsee below\n" +
                            block(b"fwd.eml", EML)).replace(b"\n", b"\r\n"), "1"),
}


@pytest.mark.parametrize("raw, path", EML_PLACES.values(), ids=EML_PLACES.keys())
def test_a_uuencoded_eml_file_shows_its_message_in_the_tree(raw, path):
    agree(raw)
    part = message_tree.part_at(forwarded.parse(raw), path)
    assert isinstance(part, mime.FoundFile) and part.name == "fwd.eml"
    node = message_tree.tree(forwarded.parse(raw), [], path)
    assert node.shown_as == "message" and node.subject == "the inner one"
    assert [child.content_type for child in node.children] == ["text/plain"]  # its body
    assert b"narwhal minutes" in message_tree.decoded(part)
    assert b"narwhal minutes" in message_tree.decoded(message_tree.children(part)[0])
    assert any("narwhal" in entry.text for entry in extract(raw, CAP).attachments)


# -- the tree's bound across the messages it parses anew (review r5 F2) -----------------------

def _signed(entity: bytes) -> bytes:
    from tests.reading_corpus import smime_signed_data
    return (b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\n"
            b"Content-Transfer-Encoding: base64\n\n" +
            base64.encodebytes(smime_signed_data(entity.replace(b"\n", b"\r\n"))))


def _encoded_forward(prefix: str) -> bytes:
    inner = b"Subject: inner\nMIME-Version: 1.0\nContent-Type: text/plain\n\nhi\n" + \
        _blocks(prefix, 20)
    return (b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n" +
            base64.encodebytes(inner))


BOUNDED = {  # (messages of 20 uuencoded files in each of several parsed-anew messages, how
    # many x-uuencode attachments: the first file of each is the part itself, not counted)
    "S/MIME signed-data x3": (
        _mixed(*(_signed(_text(_blocks(f"s{n}-", 20))) for n in range(3))), 0),
    "signed-data holding an x-uuencode attachment, x3": (_mixed(
        *(_signed(_x_uuencode(_blocks(f"x{n}-", 20))) for n in range(3))), 3),
    "base64 forwarded messages x3": (
        _mixed(*(_encoded_forward(f"e{n}-") for n in range(3))), 0),
    "body text, then signed-data and a base64 forwarded one": (_mixed(
        _text(_blocks("b", 20)), _signed(_text(_blocks("s", 20))), _encoded_forward("e")), 0),
}


@pytest.mark.parametrize("raw, firsts", BOUNDED.values(), ids=BOUNDED.keys())
def test_the_tree_lists_at_most_the_bound_in_all(monkeypatch, raw, firsts):
    """At most mime.UUENCODED_FILES_LISTED uuencoded files in the whole tree, however
    many messages it parses anew (S/MIME signed content, encoded forwarded messages)."""
    monkeypatch.setattr(mime, "UUENCODED_FILES_LISTED", 30)
    tree = message_tree.tree(forwarded.parse(raw), [])
    found = [node for node in tree.walk() if node.attachment and node.filename
             and node.filename.endswith(".bin")]
    assert 20 <= len(found) <= 30 + firsts
    assert found[0].filename.endswith("0.bin")  # (the first listed, in order)
