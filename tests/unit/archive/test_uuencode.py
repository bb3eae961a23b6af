"""uuencoded files in mail (services.archive.uuencode, read by services.archive.extract): a
generated corpus of the ways mail carries them (inline begin/end blocks in a text body, one
or several, with text between; x-uuencode parts; LF and CRLF; mode, terminator and name
variants; nested in multipart/mixed and in a forwarded message; .txt, .pdf and .docx
inside), each file an attachment read like a MIME one and found by its name and its text,
the text around it kept as body text; and the blocks that do not decode (no end, bad lines,
a "begin" line of prose) left as text, never lost, whatever else the body holds."""
from __future__ import annotations

import binascii
import datetime as dt
import time
import tracemalloc

import pytest
import xapian

from services.archive import containers, index, mime, query, uuencode
from services.archive.extract import body_text, extract
from tests.unit.archive.test_extract import DOCX_TYPE, PDF_TYPE, make_docx, pdf_with_text

CAP = 64 * 1024
SECRET = "zanzibar quokka manifest"
HEAD = ("From: Old Client <old@example.org>\nTo: bob@example.org\nSubject: files\n"
        "Date: Tue, 01 Jul 2003 10:52:37 +0000\nMessage-ID: <uu@example.org>\n")


def encoded(name: bytes, data: bytes, mode: bytes = b"644", terminator: bytes | None = b"`",
            backtick: bool = True) -> list[bytes]:
    """The lines of a uuencoded block (no line ends): begin, data, the zero-length line
    (`terminator`; None: none), end."""
    lines = [b"begin " + mode + b" " + name]
    for at in range(0, len(data), 45):
        lines.append(binascii.b2a_uu(data[at:at + 45], backtick=backtick).rstrip(b"\n"))
    return lines + ([terminator] if terminator is not None else []) + [b"end"]


def joined(lines: list[bytes], newline: bytes) -> bytes:
    return b"".join(line + newline for line in lines)


def message(body: bytes, newline: bytes = b"\n", head: bytes = b"") -> bytes:
    """A message of HEAD (and `head`), its body `body` (already with `newline` line ends)."""
    header = (HEAD.encode() + head).replace(b"\n", newline)
    return header + newline + body


def found(raw: bytes, text: str) -> int:
    """How many documents a query finds in an index of this one message."""
    database = xapian.WritableDatabase("", xapian.DB_BACKEND_INMEMORY)
    database.add_document(index.build_document("0" * 64, {"number": 1, "size": len(raw)},
                                               extract(raw, CAP)))
    enquire = xapian.Enquire(database)
    enquire.set_query(query.to_xapian(query.parse(text), query.Context(
        database, dt.timezone.utc, time.time())))
    return enquire.get_mset(0, 10).size()


# --- the corpus ------------------------------------------------------------------------------

FILES = {  # name -> (data, what of its text is read)
    "notes.txt": ((SECRET + " in a text file\n").encode(), SECRET),
    "report.pdf": (pdf_with_text("zanzibar quokka report"), "zanzibar quokka report"),
    "minutes.docx": (make_docx(["zanzibar quokka minutes"], [["a", "b"]]),
                     "zanzibar quokka minutes"),
}
NAMES = {  # how the begin line writes a name -> (declared charset, the name as read)
    b"notes.txt": (None, "notes.txt"),
    b"meeting notes 2003.txt": (None, "meeting notes 2003.txt"),
    "r\u00e9sum\u00e9 f\u00fcr K\u00f6ln.txt".encode(): ("utf-8", "r\u00e9sum\u00e9 f\u00fcr K\u00f6ln.txt"),
    "r\u00e9sum\u00e9.txt".encode("latin-1"): ("iso-8859-1", "r\u00e9sum\u00e9.txt"),
}


def inline_variants():
    """(id, raw, [(name, text read)], words of the body): one inline block or several."""
    for newline in (b"\n", b"\r\n"):
        nl = "crlf" if newline == b"\r\n" else "lf"
        for mode in (b"644", b"0644", b"666", b"100644"):
            for terminator in (b"`", b"", b" ", None):
                for backtick in (True, False):
                    lines = [b"Hello Bob,", b"", b"here is the file:", b"",
                             *encoded(b"notes.txt", FILES["notes.txt"][0], mode, terminator,
                                      backtick),
                             b"", b"Regards, Old Client"]
                    yield (f"{nl}-mode{mode.decode()}-term{terminator!r}-bt{backtick}",
                           message(joined(lines, newline), newline),
                           [("notes.txt", SECRET)], ["hello", "regards"])
        for name, (charset, read) in NAMES.items():
            head = (b"MIME-Version: 1.0\nContent-Type: text/plain; charset=" +
                    charset.encode() + b"\n") if charset else b""
            lines = [b"see below", *encoded(name, FILES["notes.txt"][0]), b"thanks"]
            yield (f"{nl}-name-{read}", message(joined(lines, newline), newline, head),
                   [(read, SECRET)], ["see", "thanks"])
        lines = [b"Three files follow.", b""]
        expected = []
        for n, (name, (data, text)) in enumerate(FILES.items()):
            lines += [*encoded(name.encode(), data), b"", f"text after file {n}".encode(), b""]
            expected.append((name, text))
        yield (f"{nl}-three-kinds", message(joined(lines, newline), newline), expected,
               ["three", "after"])


def mime_variants():
    """(id, raw, [(name, text read)], words of the body): blocks in MIME structures, and
    parts of transfer encoding x-uuencode."""
    block = joined(encoded(b"notes.txt", FILES["notes.txt"][0]), b"\n")
    mixed = (b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
             b"--XX\nContent-Type: text/plain; charset=us-ascii\n\nintro words\n" + block +
             b"closing words\n--XX\nContent-Type: text/plain\n\nsecond part words\n--XX--\n")
    yield "in-multipart-mixed", HEAD.encode() + mixed, [("notes.txt", SECRET)], \
        ["intro", "closing", "second"]
    forwarded = (b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=OUT\n\n"
                 b"--OUT\nContent-Type: text/plain\n\nforwarding this\n"
                 b"--OUT\nContent-Type: message/rfc822\n\n" + HEAD.encode() +
                 b"\ninner words\n" + block + b"inner closing\n--OUT--\n")
    yield "in-forwarded-message", forwarded, [("notes.txt", SECRET)], ["forwarding"]
    quoted = (b"MIME-Version: 1.0\nContent-Type: text/plain\n"
              b"Content-Transfer-Encoding: quoted-printable\n\nbefore\n" +
              block.replace(b"=", b"=3D") + b"after\n")
    yield "in-quoted-printable-body", HEAD.encode() + quoted, [("notes.txt", SECRET)], \
        ["before", "after"]
    # A named part whose encoding is a bare name the email package knows was read before
    # (its stdlib decoder): here are those with a comment, a blank or a fold after the
    # name, and those named only by their begin line.
    for encoding in (b"x-uuencode", b"X-UUENCODE", b"uuencode", b"x-uue", b"uue",
                     b"x-uuencode (old client)", b"x-uuencode  ", b"\n x-uuencode"):
        for named in (False, True) if encoding.strip() != encoding or b" " in encoding \
                else (False,):
            for newline in (b"\n", b"\r\n"):
                ending = "crlf" if newline == b"\r\n" else "lf"
                for name, (data, text) in FILES.items():
                    content_type = (b"application/octet-stream; name=\"" + name.encode() + b"\""
                                    if named else b"application/octet-stream")
                    part = (b"--XX\nContent-Type: " + content_type +
                            b"\nContent-Transfer-Encoding: " + encoding + b"\n\n" +
                            joined(encoded(name.encode(), data), b"\n"))
                    raw = HEAD.encode() + (
                        b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
                        b"--XX\nContent-Type: text/plain\n\nthe body\n" + part + b"--XX--\n")
                    shown = encoding.decode().replace("\n", "fold-").replace(" ", "_")
                    yield (f"part-{shown}-named{named}-{name}-{ending}",
                           raw.replace(b"\n", newline), [(name, text)], ["body"])


VARIANTS = [*inline_variants(), *mime_variants()]


@pytest.mark.parametrize("raw, files, words", [variant[1:] for variant in VARIANTS],
                         ids=[variant[0] for variant in VARIANTS])
def test_each_uuencoded_file_is_an_attachment_and_the_text_around_it_body(raw, files, words):
    extracted = extract(raw, CAP)
    assert not extracted.failures
    read = [(a.filename, a.text) for a in extracted.attachments if a.filename]
    assert len(read) == len(files)
    for (name, text), (filename, got) in zip(files, read):
        assert filename == name and text in got
    body = extracted.body.lower()
    assert all(word in body for word in words)
    assert "begin " not in body and "\nend" not in body and "`" not in body
    assert "zanzibar" not in body  # the file's text is the attachment's, not the body's
    assert not any("begin 6" in a.text for a in extracted.attachments)
    assert body == body_text(raw).lower()  # what a result page shows holds no encoded line


@pytest.mark.parametrize("name, data, types", [
    ("notes.txt", FILES["notes.txt"][0], {"text/plain"}),
    ("report.pdf", FILES["report.pdf"][0], {PDF_TYPE}),
    ("minutes.docx", FILES["minutes.docx"][0], {DOCX_TYPE}),
], ids=["txt", "pdf", "docx"])
def test_a_uuencoded_file_is_found_by_name_extension_type_and_text(name, data, types):
    raw = message(joined([b"see attached", *encoded(name.encode(), data), b"bye"], b"\n"))
    extension = name.rsplit(".", 1)[1]
    assert found(raw, f"filename:{name}") == found(raw, f"filename:{extension}") == 1
    assert found(raw, "has:attachment") == 1
    assert all(found(raw, f"type:{mime_type}") == 1 for mime_type in types)
    assert found(raw, "attachment:zanzibar") == found(raw, "zanzibar quokka") == 1
    assert found(raw, "body:zanzibar") == 0
    assert found(raw, "body:see") == found(raw, "body:bye") == 1


# --- what does not decode stays text ---------------------------------------------------------

GOOD = encoded(b"good.txt", FILES["notes.txt"][0])
BAD_BLOCKS = {
    "no-end": encoded(b"cut.txt", b"truncated file words " * 9)[:-1],
    "no-end-no-terminator": encoded(b"cut.txt", b"truncated file words " * 9)[:-2],
    "lowercase-line": [*GOOD[:2], b"this line is prose, not data", *GOOD[2:]],
    "line-too-long": [GOOD[0], GOOD[1] + b"XXXXXXXX", *GOOD[2:]],
    "illegal-character": [GOOD[0], b"M" + b"~" * 60, *GOOD[2:]],
    "prose-begin": [b"begin 644 was the code we used", b"and then we changed it", b"end"],
    "prose-begin-blank-end": [b"begin 644 was the code", b"", b"end"],
    "begin-no-name": [b"begin 644", *GOOD[1:]],
    "begin-mode-not-octal": [b"begin 9x9 name.txt", *GOOD[1:]],
    "end-only": [b"end"],
    "begin-at-eof": [b"begin 644 last.txt"],
}


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("kind", BAD_BLOCKS)
def test_a_block_that_does_not_decode_is_left_as_text_beside_one_that_does(kind, newline):
    """The good block before it is read; every line of the bad one stays body text."""
    bad = BAD_BLOCKS[kind]
    raw = message(joined([b"first words", *GOOD, b"middle words", *bad], newline), newline)
    extracted = extract(raw, CAP)
    assert [a.filename for a in extracted.attachments] == ["good.txt"]
    assert SECRET in extracted.attachments[0].text
    body = extracted.body.replace("\r\n", "\n")
    assert body.startswith("first words\nmiddle words\n")
    assert body == "first words\nmiddle words\n" + joined(bad, b"\n").decode()


def test_a_uuencoded_part_that_does_not_decode_keeps_its_text():
    raw = HEAD.encode() + (
        b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
        b"--XX\nContent-Type: text/plain\n\nthe body\n"
        b"--XX\nContent-Type: text/plain; name=\"broken.txt\"\n"
        b"Content-Transfer-Encoding: x-uuencode\n\n"
        b"begin 644 broken.txt\nthis is no data at all\nend\n"
        b"--XX\nContent-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: x-uuencode (old client)\n\n" +
        joined(encoded(b"fine.txt", FILES["notes.txt"][0]), b"\n") + b"--XX--\n")
    attachments = {a.filename: a.text for a in extract(raw, CAP).attachments}
    assert "this is no data at all" in attachments["broken.txt"]
    assert SECRET in attachments["fine.txt"]


# --- bounded whatever the input --------------------------------------------------------------

def test_many_blocks_are_read_up_to_the_attachment_cap_and_taken_out_of_the_body():
    """More uuencoded files than a message may read (containers.MESSAGE_ATTACHMENTS): the
    first are read, the rest counted as passed (the message flagged partly indexed), and
    none of their lines is body text."""
    count = containers.MESSAGE_ATTACHMENTS + 500
    lines = [b"many files"]
    for n in range(count):
        lines += encoded(f"f{n}.txt".encode(), f"word{n}\n".encode())
    extracted = extract(message(joined(lines, b"\n")), CAP)
    assert len(extracted.attachments) == containers.MESSAGE_ATTACHMENTS
    assert extracted.attachments[-1].text == f"word{containers.MESSAGE_ATTACHMENTS - 1}\n"
    assert extracted.body.strip() == "many files"
    assert any("500 attachments past the first" in reason for reason in extracted.failures)


TINY = b"begin 644 a\n#86)C\n`\nend\n"
HOSTILE = {
    "begin-lines": b"begin 644 a\n" * 300_000,
    "no-end": b"begin 644 a\nM" + b"!" * 60 + b"\n" * 200_000,
    "tiny-blocks": TINY * 50_000,
    "long-begin-line": b"begin 644 a" + b" " * 4_000_000 + b"\n",
    "long-data-line": b"begin 644 a\n" + b"M" * 4_000_000 + b"\nend\n",
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_bodies_cost_memory_in_proportion_to_their_size(kind):
    """A body of hostile blocks, then one file: the file is read, the hostile lines that do
    not decode stay text, those that do are taken out (their files past the cap counted),
    and splitting them costs memory in proportion to the body."""
    body = HOSTILE[kind] + joined(encoded(b"last.txt", FILES["notes.txt"][0]), b"\n")
    tracemalloc.start()
    try:
        split = uuencode.split(body, containers.MESSAGE_ATTACHMENTS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(body) + (1 << 20)
    extracted = extract(message(body), 64 << 20)  # (over any body: extract.body_cut)
    names = [a.filename for a in extracted.attachments]
    if kind == "tiny-blocks":
        assert names == ["a"] * containers.MESSAGE_ATTACHMENTS and split.count == 50_001
        assert extracted.body == "" and extracted.failures
    else:
        assert names == ["last.txt"] and SECRET in extracted.attachments[0].text
        assert extracted.body.replace("\ufffd", "?") == HOSTILE[kind].decode()
        assert not extracted.failures


def test_a_large_file_decodes_whole():
    data = bytes(range(256)) * 20_000
    text = b"".join(b"line %d of a long text file\n" % n for n in range(20_000))
    raw = message(joined([b"big", *encoded(b"big.bin", data), b"then",
                          *encoded(b"big.txt", text), b"done"], b"\n"))
    split = uuencode.split(raw, 2)
    assert [file.data for file in split.files] == [data, text]
    assert split.files[0].mode == b"644" and split.text.endswith(b"\n\nbig\nthen\ndone\n")
    extracted = extract(raw, CAP)
    assert [a.filename for a in extracted.attachments] == ["big.bin", "big.txt"]
    # (cut at CAP inside "long": its first letter is left out, extract.truncate_on_a_word)
    assert extracted.attachments[1].text == text[:CAP].decode().removesuffix("l")
    assert extracted.body == "big\nthen\ndone\n"


# --- review r155 -----------------------------------------------------------------------------

def test_control_characters_in_a_begin_line_name_are_blanked_as_in_a_mime_filename():
    """A begin line's name is a sender's text like a Content-Type name=: its control
    characters (an escape sequence, a NUL) are blanked, as mime.filename_of blanks them,
    before it is stored as an attachment name, shown and indexed."""
    raw = message(joined([b"see below", *encoded(b"evil\x1b[2J\x00name.txt", b"quokka\n"),
                          b"bye"], b"\n"))
    assert [a.filename for a in extract(raw, CAP).attachments] == ["evil [2J name.txt"]


def test_an_x_uuencode_body_part_keeps_its_text_and_every_file():
    """A text part of transfer encoding x-uuencode is read as an inline body is: the text
    around its blocks stays body text and each block that decodes is a file, not only the
    first (the rest of the part was lost, text and files)."""
    first = joined(encoded(b"one.txt", FILES["notes.txt"][0]), b"\n")
    second = joined(encoded(b"two.txt", b"second wombat file\n"), b"\n")
    raw = HEAD.encode() + (
        b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
        b"--XX\nContent-Type: text/plain\n\nthe body\n"
        b"--XX\nContent-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\n"
        b"prose before zebra\n" + first + b"middle giraffe\n" + second + b"after okapi\n"
        b"--XX--\n")
    extracted = extract(raw, CAP)
    assert [(a.filename, a.text) for a in extracted.attachments] == [
        ("one.txt", FILES["notes.txt"][0].decode()), ("two.txt", "second wombat file\n")]
    assert all(word in extracted.body for word in ("the body", "zebra", "giraffe", "okapi"))
    assert "begin" not in extracted.body


def test_prose_in_capitals_between_begin_and_end_stays_searchable():
    """A sender's words framed as a block that decodes (a line of capitals, shorter than its
    length character says): what a mail client shows as text stays searchable."""
    raw = message(b"hi\nbegin 600 the attack\nMEET AT THE DOCKS AT DAWN, BRING $500.\nend\n"
                  b"bye\n")
    assert found(raw, "docks") == 1


def test_a_block_of_short_lines_gives_its_file_and_keeps_its_lines_in_the_text():
    """A block whose lines a mailer cut short (their trailing blanks stripped) still decodes
    to its file; its lines stay text, as every line not of exact length does."""
    lines = encoded(b"short.txt", b"quokka paddock\n" * 9)
    cut = [line[:-4] if at == 1 else line for at, line in enumerate(lines)]
    split = uuencode.split(joined(cut, b"\n"), 5)
    assert [file.name for file in split.files] == [b"short.txt"]
    assert b"begin 644 short.txt" in split.text


def test_a_begin_line_name_is_no_longer_than_a_mime_name_may_be():
    """A MIME name is at most a header field's kept length (mime.PARAMETER_HEADER_LIMIT);
    a begin line's name was as long as the sender made it (a megabyte in the stored
    metadata, each listing and each show, for each of a thousand files)."""
    raw = message(joined([b"see below", *encoded(b"x" * 1_000_000 + b".txt", b"quokka\n"),
                          b"bye"], b"\n"))
    [attachment] = extract(raw, CAP).attachments
    assert attachment.filename.startswith("xxx")
    assert len(attachment.filename) <= mime.PARAMETER_HEADER_LIMIT
