"""Review 157 F1: lines of capitals that happen to form a uuencode block (exact length, so
their block decodes) decode to bytes of no type; their lines stay body text, searchable
(services.archive.uuencode.split's `known`, services.archive.filetypes.known_content),
while a real file's encoded lines still leave it. A generated corpus of both kinds: several
file types, each encoded with backticks and with blanks for zero bits; several shapes of
capitals prose (exact short lines, full "M" lines, mixed, terminators, CRLF). And review
155 F6: an HTML alternative's copy of a text part's block (in a <pre>) adds no words."""
from __future__ import annotations

import gzip
import random
import struct
import zlib

import pytest

from services.archive import uuencode
from services.archive.extract import body_text, extract
from tests.unit.archive.test_uuencode import CAP, FILES, encoded, found, joined, message


def png(width: int = 16, height: int = 16) -> bytes:
    """A grey PNG image (ISO/IEC 15948): signature, IHDR, IDAT, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\x00" + bytes(range(width)) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


REAL = {  # name -> data: files whose encoded lines leave the body text
    **{name: data for name, (data, _) in FILES.items()},
    "picture.png": png(),
    "archive.gz": gzip.compress(b"quokka " * 500, mtime=0),
    "short.txt": b"see you at the road",  # 19 bytes, ends in a zero low-bits byte
    "utf8.txt": "r\u00e9sum\u00e9 \u2014 f\u00fcr K\u00f6ln\n".encode() * 20,
}

WORDS = ("MEET", "AT", "THE", "DOCKS", "DAWN,", "BRING", "$500", "AND", "PAPERS.", "TELL",
         "NO", "ONE!", "WIRE", "4471-22", "FRIDAY", "NOON;", "BOSS", "SAYS", "OK")


def capitals_line(rng: random.Random, count: int) -> bytes:
    """A line of capitals whose length character (count bytes, a multiple of 3) says its
    length: it decodes whole."""
    text = ""
    while len(text) < count // 3 * 4:
        text += rng.choice(WORDS) + rng.choice(" ,.")
    return bytes([32 + count]) + text[:count // 3 * 4].encode()


def capitals_shapes():
    """(id, block lines): prose of capitals framed as a block that decodes."""
    yield "short-exact", [b"begin 644 plan", b",MEET AT THE DOCK", b"`", b"end"]
    yield "full-m", [b"begin 644 plan", b"M" + b"MEET AT THE DOCKS AT DAWN, BRING $500 AND THE "
                     b"PAPERS. TELL NO ", b"`", b"end"]
    rng = random.Random(157)
    for n in range(24):
        counts = [rng.choice((45, 45, 45, 12, 30, 3 * rng.randint(1, 15)))
                  for _ in range(rng.randint(1, 8))]
        terminator = [(b"`",), (b"",), ()][n % 3]
        yield f"random{n}", [b"begin %d plan%d" % (rng.choice((644, 600, 755)), n),
                             *(capitals_line(rng, count) for count in counts),
                             *terminator, b"end"]


SHAPES = list(capitals_shapes())


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("lines", [lines for _, lines in SHAPES],
                         ids=[shape for shape, _ in SHAPES])
def test_capitals_that_decode_stay_in_the_body_text(lines, newline):
    """The block decodes (a file is found, as before), yet every word of its lines is in
    the body text extract() indexes and body_text() shows."""
    body = joined([b"hello bob", *lines, b"bye"], newline)
    assert uuencode.split(body, 5).files  # (a block that decodes: the shape is meaningful)
    raw = message(body, newline)
    for indexed in (extract(raw, CAP).body, body_text(raw)):
        assert body.decode().replace("\r\n", "\n") in indexed.replace("\r\n", "\n")


def test_a_word_only_in_capitals_that_decode_is_found():
    lines = dict(SHAPES)["full-m"]
    assert found(message(joined([b"hi", *lines, b"bye"], b"\n")), "docks") == 1


@pytest.mark.parametrize("backtick", [True, False], ids=["backtick", "blanks"])
@pytest.mark.parametrize("name", REAL)
def test_a_real_file_s_encoded_lines_leave_the_body_text(name, backtick):
    """Each file type, encoded with backticks or with blanks for zero bits: an attachment,
    none of its encoded lines in the body."""
    body = joined([b"see attached", *encoded(name.encode(), REAL[name], backtick=backtick),
                   b"bye"], b"\n")
    raw = message(body)
    extracted = extract(raw, CAP)
    assert [a.filename for a in extracted.attachments] == [name]
    assert extracted.body == body_text(raw) == "see attached\nbye\n"


# --- review 155 F6: an HTML alternative showing the plain part's block --------------------

def _alternative(plain: bytes, html: bytes) -> bytes:
    """A message of multipart/alternative: a text/plain part, a text/html part."""
    return message(b"--B\nContent-Type: text/plain\n\n" + plain +
                   b"--B\nContent-Type: text/html\n\n" + html + b"\n--B--\n",
                   head=b"MIME-Version: 1.0\n"
                   b"Content-Type: multipart/alternative; boundary=B\n")


def _escaped(text: bytes) -> bytes:
    return text.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


@pytest.mark.parametrize("backtick", [True, False], ids=["backtick", "blanks"])
@pytest.mark.parametrize("name", REAL)
def test_the_html_alternative_s_copy_of_a_block_adds_no_encoded_words(name, backtick):
    """multipart/alternative whose HTML shows the plain text (the block in a <pre>): the
    file is read from the plain part, and the HTML's copy of its lines adds no words; the
    words only the HTML has around it are read."""
    block = joined(encoded(name.encode(), REAL[name], backtick=backtick), b"\n")
    raw = _alternative(
        b"plain words\n" + block,
        b"<html><body><p>plain words, and htmlonlyword</p><pre>\n" + _escaped(block) +
        b"</pre><p>closing quokkaword</p></body></html>")
    extracted = extract(raw, CAP)
    assert [a.filename for a in extracted.attachments] == [name]
    assert extracted.body.split() == ["plain", "words", "and", "htmlonlyword", "closing",
                                      "quokkaword"]
    assert body_text(raw) == extracted.body


def test_a_block_only_the_html_shows_keeps_its_words():
    """A block in the HTML whose file no text part gave (the plain part says something
    else) is no copy: its lines are words only the HTML has, as any."""
    block = joined(encoded(b"other.txt", b"another file\n"), b"\n")
    raw = _alternative(
        b"plain words\n" + joined(encoded(b"notes.txt", REAL["notes.txt"]), b"\n"),
        b"<pre>\n" + _escaped(block) + b"</pre>")
    body = extract(raw, CAP).body
    assert {"begin", "644", "other", "end"} <= set(body.split())
