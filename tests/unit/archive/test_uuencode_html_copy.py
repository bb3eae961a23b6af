"""Review 155 F6: a multipart/alternative whose HTML shows the plain text shows its uuencoded
blocks too (in a <pre>). An exact copy of a block whose file left a text part adds no
words; a block only the HTML has keeps its words, as any HTML text."""
from __future__ import annotations

import gzip
import struct
import zlib

import pytest

from services.archive.extract import body_text, extract
from tests.unit.archive.test_uuencode import CAP, FILES, encoded, joined, message


def png(width: int = 16, height: int = 16) -> bytes:
    """A grey PNG image (ISO/IEC 15948): signature, IHDR, IDAT, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\x00" + bytes(range(width)) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


REAL = {  # name -> data: files of several types
    **{name: data for name, (data, _) in FILES.items()},
    "picture.png": png(),
    "archive.gz": gzip.compress(b"quokka " * 500, mtime=0),
    "short.txt": b"see you at the road",  # 19 bytes, ends in a zero low-bits byte
    "utf8.txt": "r\u00e9sum\u00e9 \u2014 f\u00fcr K\u00f6ln\n".encode() * 20,
}


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
