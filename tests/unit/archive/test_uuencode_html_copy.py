"""A multipart/alternative whose HTML shows the plain text shows its uuencoded blocks too
(in a <pre>): the file is read once, from the text part, and the HTML's words, its
blocks' lines among them, are read as any words only the HTML has. Review 155 F6 (an
exact copy of a text part's block adding its encoded lines as words) is open: a copy
rule took real words out of search (review 166 F2: lines of capitals that are valid
uuencode in both parts were searchable in neither), and telling such lines from encoded
data by their characters is unsound (a file with zero runs, encoded with blanks for
zero, has lines of capitals and blanks: 313 of 1127 real files)."""
from __future__ import annotations

import binascii
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
def test_the_html_alternative_s_copy_of_a_block_is_read_once_as_a_file(name, backtick):
    """multipart/alternative whose HTML shows the plain text (the block in a <pre>): the
    file is read from the plain part, once; the words only the HTML has around it are
    read."""
    block = joined(encoded(name.encode(), REAL[name], backtick=backtick), b"\n")
    raw = _alternative(
        b"plain words\n" + block,
        b"<html><body><p>plain words, and htmlonlyword</p><pre>\n" + _escaped(block) +
        b"</pre><p>closing quokkaword</p></body></html>")
    extracted = extract(raw, CAP)
    assert [a.filename for a in extracted.attachments] == [name]
    assert extracted.body.split()[:2] == ["plain", "words"]
    assert {"htmlonlyword", "quokkaword"} <= set(extracted.body.split())
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


# --- review 158 F3: a copy is the same begin line's name and mode, and a file's data -------

GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
       b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")  # 1x1 GIF89a


def _block(begin: bytes, data: bytes) -> bytes:
    """A uuencoded block of `data` under the begin line `begin`, LF line ends."""
    return joined(encoded(b"x", data), b"\n").replace(b"begin 644 x", begin, 1)


@pytest.mark.parametrize("plain_begin, html_begin, data, words", [
    (b"begin 644 x", b"begin 644 MEET AT THE DOCKS QUOKKA", b"",
     ["MEET", "DOCKS", "QUOKKA"]),  # an empty file's block: only its begin line's words
    (b"begin 644 x", b"begin 644 MEET AT THE DOCKS QUOKKA", b"hello world\n",
     ["MEET", "DOCKS", "QUOKKA"]),
    (b"begin 644 pic.gif", b"begin 644 pic.gif WIRE MONEY TO ACCOUNT ZEBRA4471", GIF,
     ["WIRE", "MONEY", "ZEBRA4471"]),
    (b"begin 644 pic.gif", b"begin 755 pic.gif", GIF, ["755"]),
], ids=["empty-file", "text-file", "gif", "other-mode"])
def test_an_html_block_of_the_same_data_under_another_begin_line_keeps_its_words(
        plain_begin, html_begin, data, words):
    """The HTML's block holds the plain part's file, but its begin line says more (or
    another mode): it is no copy, and the words only it has are read."""
    raw = _alternative(b"hello\n" + _block(plain_begin, data),
                       b"<p>hello</p><pre>" + _block(html_begin, data) + b"</pre>")
    extracted = extract(raw, CAP)
    assert set(words) <= set(extracted.body.split())
    assert body_text(raw) == extracted.body


def test_an_empty_file_takes_no_html_block_out():
    """The plain part's empty file (sha256(b"")) is no copy of any HTML block: the HTML's
    empty blocks of other names keep their words."""
    raw = _alternative(b"hello\nbegin 644 x\n`\nend\n",
                       b"<p>hello</p><pre>begin 644 MEET AT THE DOCKS QUOKKA\n`\nend\n</pre>")
    assert "QUOKKA" in extract(raw, CAP).body


# --- review 161 F2 and 166 F2: the HTML's lines of capitals are its words -------------------

# Words an encoded line can be: capitals, digits and blanks are all uuencode characters.
WORDS = b" WIRE 40000 TO ACCOUNT 4471 QUOKKA ZEBRA NOW MEET AT THE DOCKS AT NINE"
BEGINS = [b"begin 644 report.txt", b"begin 0600 scan 01.bin", b"begin 100755 a"]


def _worded_lines(width: int) -> list[bytes]:
    """Three full data lines of `width` bytes each (a multiple of 3) whose characters are
    WORDS (blanks after): what an encoder writing lines of that length wrote for the file
    they decode to."""
    characters = width // 3 * 4
    line = (WORDS[:characters].rsplit(b" ", 1)[0]).ljust(characters)
    return [bytes([32 + width]) + line] * 3


def _lines_of(begin: bytes, data: bytes, width: int) -> list[bytes]:
    """A block of `data` under `begin`, its data lines of `width` bytes (uuencode(1)'s 45,
    or another encoder's)."""
    return [begin] + [binascii.b2a_uu(data[at:at + width]).rstrip(b"\n")
                      for at in range(0, len(data), width)] + [b"`", b"end"]


def _decoded_lines(lines: list[bytes]) -> bytes:
    return b"".join(binascii.a2b_uu(line) for line in lines)


def _html_and_plain(html_lines: list[bytes], plain_lines: list[bytes],
                    newline: bytes) -> bytes:
    return _alternative(b"hello" + newline + joined(plain_lines, newline),
                        b"<p>hello</p><pre>\n" + _escaped(joined(html_lines, b"\n")) +
                        b"</pre>")


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("begin", BEGINS)
@pytest.mark.parametrize("html_width, plain_width", [
    (15, 45), (30, 45), (42, 45), (45, 30), (45, 24), (30, 15)])
def test_the_same_file_on_other_lines_in_the_html_keeps_their_words(
        html_width, plain_width, begin, newline):
    """The HTML's block is the plain part's file under the same begin line, encoded on
    lines of another length: its characters are other words (here WORDS), read as any
    words only the HTML has; the file is read once, from the plain part."""
    html_lines = [begin, *_worded_lines(html_width), b"`", b"end"]
    data = _decoded_lines(html_lines[1:-2])
    plain_lines = _lines_of(begin, data, plain_width)
    assert plain_lines != html_lines and _decoded_lines(plain_lines[1:-2]) == data
    raw = _html_and_plain(html_lines, plain_lines, newline)
    extracted = extract(raw, CAP)
    assert len(extracted.attachments) == 1
    words = set(html_lines[1][1:].decode().split())  # (after the length character)
    assert {"WIRE", "40000"} <= words <= set(extracted.body.split())
    assert body_text(raw) == extracted.body


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("begin", BEGINS)
@pytest.mark.parametrize("width", [15, 30, 42, 45])
def test_the_same_lines_in_both_parts_keep_their_words(width, begin, newline):
    """Review 166 F2: lines of capitals that are valid uuencode (WORDS), the same in the
    plain part's block and in the HTML's <pre>: they leave the plain part's text (an
    exact block), and the HTML's words are read, as on main (a copy rule took them out of
    both)."""
    lines = [begin, *_worded_lines(width), b"`", b"end"]
    raw = _html_and_plain(lines, lines, newline)
    extracted = extract(raw, CAP)
    assert len(extracted.attachments) == 1
    words = set(lines[1][1:].decode().split())  # (after the length character)
    assert {"WIRE", "40000"} <= words <= set(extracted.body.split())
    assert "hello" in extracted.body.split()
    assert body_text(raw) == extracted.body
