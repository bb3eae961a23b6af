"""uuencode.split_pieces, text_pieces and FoundBlock (a large part split a piece at a
time, never held whole: issue #20) find the blocks, text and files split() finds, whatever
the pieces' sizes; and extraction of a large part through them (extract._large_text_part,
_attachment_split, _found_block_file) gives what it gave reading the part whole."""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import quopri
import random
import zipfile
from array import array

import pytest

from services.archive import extract as extract_module
from services.archive import transfer_encoding, uuencode
from services.archive.extract import extract
from services.archive.mime import parse_message

MiB = 1 << 20
CAP = 64 * 1024


def encoded(data: bytes, name: bytes = b"f.bin", eol: bytes = b"\n",
            backtick: bool = True) -> bytes:
    """`data` uuencoded as a block (begin line, lines of data, a zero-length line, end)."""
    lines = [b"begin 644 " + name]
    lines += [binascii.b2a_uu(data[at:at + 45], backtick=backtick).rstrip(b"\n")
              for at in range(0, len(data), 45)]
    return eol.join([*lines, b"`" if backtick else b" ", b"end"]) + eol


def damaged_block(rng: random.Random) -> bytes:
    """A block of random data, some of its lines cut short, made longer or unreadable,
    its end line or zero-length line missing or odd, on LF or CRLF lines."""
    lines = encoded(rng.randbytes(rng.randint(0, 200)), rng.choice(
        [b"a", b"b c", b"", b" "]), backtick=rng.random() < 0.5).split(b"\n")[:-1]
    lines[0] = lines[0].replace(b"644", rng.choice([b"644", b"0644", b"12", b"100644"]))
    for at in range(1, len(lines) - 2):
        damage = rng.random()
        lines[at] = (lines[at][:-3] if damage < 0.03 else lines[at] + b"x" if damage < 0.05
                     else b"~" + lines[at][1:] if damage < 0.06 else lines[at])
    ending = rng.choice([[b"end"], [b"end  "], [], [b"endx"], [b"`"]])
    lines[-1:] = ending if ending != [b"`"] else []
    eol = rng.choice([b"\n", b"\r\n"])
    return eol.join(lines) + rng.choice([eol, b""])


def random_text(rng: random.Random) -> bytes:
    return b"".join(damaged_block(rng) if rng.random() < 0.6 else rng.choice(
        [b"hello\n", b"begin 644 prose here\n", b"end\n", b"\n", b"M" * 70 + b"\n", b"x"])
        for _ in range(rng.randint(0, 6)))


def source_of(data: bytes, size: int):
    return lambda: (data[at:at + size] for at in range(0, len(data), size))


def pieces_split(data: bytes, keep: int, size: int):
    """(text, files as (name, mode, data), more) as split_pieces and text_pieces give them
    of `data` in pieces of `size` bytes."""
    source = source_of(data, size)
    found = uuencode.split_pieces(source, keep, 16)
    text = b"".join(uuencode.text_pieces(source(), found.taken))
    return text, [(file.name, file.mode, file.data()) for file in found.files], found.more


def whole_split(data: bytes, keep: int):
    found = uuencode.split(data, keep)
    return bytes(found.text), [(file.name, file.mode, file.data) for file in found.files], \
        found.more


def test_pieces_split_as_split_does_whatever_the_pieces():
    """Texts of prose, begin lines of prose, damaged and whole blocks: the same text, files
    and count of files past `keep`, in pieces of 1 byte to 1,000."""
    rng = random.Random(20)
    taken = 0
    for _ in range(3000):
        data, keep, size = random_text(rng), rng.randint(0, 3), rng.choice([1, 3, 64, 1000])
        expected = whole_split(data, keep)
        assert pieces_split(data, keep, size) == expected, data
        taken += expected[0] != data
    assert taken > 200  # (the blocks were taken, not all left as text)


def test_a_found_block_has_its_size_sha256_and_head():
    data = random.Random(3).randbytes(100_000)
    body = b"text before\r\n" + encoded(data, eol=b"\r\n") + b"text after\r\n"
    [block] = uuencode.split_pieces(source_of(body, 4096), 1, 1000).files
    assert (block.name, block.mode, block.size) == (b"f.bin", b"644", len(data))
    assert block.sha256_hex == hashlib.sha256(data).hexdigest()
    assert block.head == data[:1000]
    assert b"".join(block.pieces()) == data and max(map(len, block.pieces())) <= 2 * 65536


def test_consecutive_blocks_share_their_span():
    body = b"a\n" + encoded(b"one") + encoded(b"two") + b"b\n"
    found = uuencode.split_pieces(source_of(body, 7), 5, 16)
    assert list(found.taken) == [2, len(body) - 2]
    assert b"".join(uuencode.text_pieces(source_of(body, 7)(), found.taken)) == b"a\nb\n"


def test_a_block_with_a_line_over_the_cap_is_text_both_ways(monkeypatch):
    """A blank line, a begin line or a line of data longer than LINE_CAP: no block, in
    split() as in split_pieces (both agree on a body of any size)."""
    monkeypatch.setattr(uuencode, "LINE_CAP", 64)
    for body in (encoded(b"data").replace(b"`\n", b" " * 70 + b"\n"),
                 encoded(b"data", b"n" * 60),
                 encoded(b"data").replace(b"\n", b" " * 70 + b"\n", 2)):
        assert uuencode.split(body, 1).files == []
        assert pieces_split(body, 1, 10) == (body, [], 0)
    assert uuencode.split(encoded(b"data", b"n" * 40), 1).files  # (under the cap: a file)


def test_lines_gives_offsets_and_no_line_over_the_cap(monkeypatch):
    monkeypatch.setattr(uuencode, "LINE_CAP", 8)
    pieces = [b"ab\ncd", b"ef\n", b"0123456789", b"\nlast"]
    assert list(uuencode._lines(pieces)) == [(0, b"ab\n"), (3, b"cdef\n"), (8, None),
                                             (19, b"last")]


def test_text_pieces_cuts_spans_across_pieces():
    data = bytes(range(100))
    taken = array("q", [5, 25, 30, 31, 90, 100])
    for size in (1, 7, 10, 100):
        assert b"".join(uuencode.text_pieces(source_of(data, size)(), taken)) == \
            data[:5] + data[25:30] + data[31:90]


def test_uuencoded_pieces_are_the_held_payload_as_it_came():
    raw = (b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
           b"caf\xe9\n" + encoded(b"\xff" * 100_000))  # (held: an 8-bit byte)
    part = parse_message(raw, held=True)
    assert transfer_encoding.held_bytes(part) is not None
    assert b"".join(transfer_encoding.uuencoded_pieces(part)) == \
        transfer_encoding.uuencoded_payload(part)
    other = parse_message(raw.replace(b"x-uuencode", b"8bit"), held=True)
    assert transfer_encoding.uuencoded_pieces(other) is None


def message(body: bytes, encoding: bytes = b"7bit", content_type: bytes = b"text/plain"
            ) -> bytes:
    return (b"From: a@example.org\r\nSubject: uu\r\nMessage-ID: <uu@example.org>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: %s\r\nContent-Transfer-Encoding: %s\r\n"
            b"\r\n%s" % (content_type, encoding, body))


def zipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("inner.txt", b"zipword " + data[:1000].hex().encode())
    return out.getvalue() + data  # (trailing bytes: still read as a zip)


RNG = random.Random(21)
BINARY = RNG.randbytes(MiB + 4321)
TEXT = b"the uniquefileword starts the file\n" + b"".join(
    b"%d line of words, some more words\n" % n for n in range(40_000))
AROUND = encoded(BINARY) + b"between the files\n" + encoded(TEXT, b"t.txt")
LARGE = {
    "binary and text, 7bit": message(b"before\n" + AROUND + b"after\n"),
    "CRLF": message((b"before\n" + AROUND + b"after\n").replace(b"\n", b"\r\n")),
    "quoted-printable": message(quopri.encodestring(b"before\n" + AROUND),
                                b"quoted-printable"),
    "base64": message(base64.encodebytes(AROUND + b"after\n"), b"base64"),
    "x-uuencode body": message(b"junk\n" + AROUND, b"x-uuencode"),
    "html file": message(encoded(b"<p>htmlword</p>" * 90_000, b"p.html")),
    "zip file (read whole)": message(encoded(zipped(BINARY), b"z.zip")),
    "no end": message(encoded(BINARY)[:-5] + b"after\n"),
    "short lines": message(encoded(BINARY).replace(b"M", b"MM", 1)),
    "x-uuencode attachment of two": (
        b"From: a@example.org\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=sep\r\n\r\n--sep\r\n"
        b"Content-Type: text/plain\r\n\r\nsee\r\n--sep\r\n"
        b"Content-Type: application/octet-stream; name=a.bin\r\n"
        b"Content-Transfer-Encoding: x-uuencode\r\nContent-Disposition: attachment\r\n\r\n"
        + AROUND + b"\r\n--sep--\r\n"),
}


@pytest.mark.parametrize("raw", LARGE.values(), ids=LARGE.keys())
def test_a_large_part_is_extracted_in_pieces_as_it_was_whole(raw, monkeypatch):
    """The same Extracted (body, attachments: names, types, SHA-256-keyed texts, cuts) as
    when every part is read whole (LARGE_FILE_BYTES past any part), and split_pieces read
    the part."""
    calls = []
    split_pieces = uuencode.split_pieces
    monkeypatch.setattr(uuencode, "split_pieces",
                        lambda *args: calls.append(1) or split_pieces(*args))
    in_pieces = dataclasses.asdict(extract(raw, CAP))
    assert calls
    monkeypatch.setattr(extract_module, "LARGE_FILE_BYTES", 1 << 40)
    assert in_pieces == dataclasses.asdict(extract(raw, CAP))
