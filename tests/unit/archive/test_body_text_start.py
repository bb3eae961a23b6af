"""A body text part larger than the index takes is decoded only as far as the index needs
(#20: a 90 MiB text body held its payload, its bytes and its whole decoded text at once, for
the 1 MiB the 450 indexes); the rest is decoded in pieces and counted, so that what extract()
says of the body is what it said when it decoded all of it: the same indexed text, the cut
and its "of N" size, and an OpenPGP armor anywhere in it.

charsets.decode_document_start reads the first bytes as decode_document does (their
charset found from them, as a text attachment's up to its cap is) and the rest, piece by
piece, in that charset: joined, the same text as decode_document's wherever the start is
read in the charset the whole is."""
from __future__ import annotations

import base64
import codecs
import quopri
import random
import tracemalloc

import pytest

from services.archive import charsets, extract
from services.archive.extract import PGP_ARMOR, read_text_bytes

KiB, MiB = 1024, 1024 * 1024
CAP = 16 * KiB  # a small cap: decoded_bytes(CAP) is some 65 KiB, so bodies of 200 KB do


def decoded_bytes(cap_bytes: int) -> int:
    """Where the decoded start of a body ends for a cap (the rest is counted)."""
    return charsets.decoded_start_bytes(read_text_bytes(cap_bytes))

LABELS = [None, "utf-8", "iso-8859-1", "us-ascii", "shift_jis", "iso-2022-jp", "utf-16",
          "utf-16le", "utf-7", "gb2312", "koi8-r", "big5", "euc-kr", "utf-32", "windows-1251"]
TEXTS = ["hello world ", "Grüße ", "Привет мир ", "日本語のテキスト ", "中文文本 ", "한국어 ",
         "😀 emoji ", "\n", "\x00", "+AOk-"]
ENCODINGS = ["utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "shift_jis", "iso2022_jp",
             "gb18030", "cp1251", "koi8_r", "utf-7", "euc_kr", "big5"]
MARKS = [codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, b""]


def generated_document(rng: random.Random) -> tuple[bytes, str | None]:
    """A text in some encoding, perhaps after a byte-order mark, perhaps with bytes
    changed, and a label that may or may not be its charset."""
    text = "".join(rng.choice(TEXTS) for _ in range(rng.randint(1, 60)))
    data = text.encode(rng.choice(ENCODINGS), "replace")
    if rng.random() < 0.3:
        data = rng.choice(MARKS) + data
    if rng.random() < 0.3:
        changed = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            changed[rng.randrange(len(changed))] = rng.randrange(256)
        data = bytes(changed)
    return data, rng.choice(LABELS)


@pytest.mark.parametrize("seed", range(4))
def test_the_start_and_its_pieces_are_the_whole_document(seed, monkeypatch):
    rng, compared = random.Random(seed), 0
    for _ in range(3000):
        data, label = generated_document(rng)
        text_bytes = rng.randint(0, len(data) // 4)
        start_bytes = charsets.decoded_start_bytes(text_bytes)
        monkeypatch.setattr(charsets, "PIECE_BYTES", rng.randint(8, 20))
        start, pieces = charsets.decode_document_start(data, label, text_bytes)
        whole = charsets.read_document(data, label)
        reading = charsets.read_document(data[:start_bytes], label, ended=False)
        if (reading.codec, reading.mark_bytes) == (whole.codec, whole.mark_bytes):
            assert start + "".join(pieces) == whole.text, (data, label, start_bytes)
            compared += 1
    assert compared > 2000


def test_a_document_no_longer_than_the_start_is_read_whole():
    for data, label in [("Grüße".encode(), None), ("Привет".encode("cp1251"), "koi8-r")]:
        start, pieces = charsets.decode_document_start(data, label, len(data))
        assert start == charsets.decode_document(data, label) and list(pieces) == []


@pytest.mark.parametrize("codec", ["iso2022_jp", "iso2022_jp_2", "iso2022_kr"])
def test_escape_sequences_that_overflow_an_iso_2022_decoder_are_read(codec, monkeypatch):
    """An ISO-2022 incremental decoder holds at most a few bytes it has not decoded yet,
    and raises (no UnicodeDecodeError) past that: hostile escapes are read, never raised."""
    monkeypatch.setattr(charsets, "PIECE_BYTES", 7)
    rng = random.Random(codec)
    for _ in range(200):
        data = bytes(rng.choice(b"\x1b$()BJ@ABC\x0e\x0f\n a\x81") for _ in range(3000))
        start, pieces = charsets.decode_document_start(data, codec, 100)
        assert isinstance(start + "".join(pieces), str)


# --- extract(): a body past what is decoded of it ---------------------------------------------

def message(body: bytes, charset: str | None, encoding: str = "8bit") -> bytes:
    if encoding == "base64":
        body = base64.encodebytes(body)
    elif encoding == "quoted-printable":
        body = quopri.encodestring(body)
    label = f"; charset={charset}" if charset else ""
    return (f"From: a@example.org\nTo: b@example.org\nSubject: long\n"
            f"Content-Type: text/plain{label}\nContent-Transfer-Encoding: {encoding}\n\n"
            ).encode() + body


def decoded_whole(raw: bytes, cap: int = CAP) -> extract.Extracted:
    """extract() as it was, decoding every text part whole (decode_document)."""
    def whole(data, label, text_bytes):
        return charsets.decode_document(bytes(data), label), iter(())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(charsets, "decode_document_start", whole)
        return extract.extract(raw, cap)


# name: (text, its encoding, its label, a byte-order mark before it)
BODIES = {
    "utf-8 Cyrillic": ("Привет мир " * 30000, "utf-8", "utf-8", b""),
    "unlabelled UTF-8": ("Grüße aus Köln " * 20000, "utf-8", None, b""),
    "cp1251": ("Привет мир " * 30000, "cp1251", "windows-1251", b""),
    "unlabelled 8-bit": ("Grüße aus Köln " * 20000, "latin-1", None, b""),
    "shift_jis": ("日本語のテキスト " * 20000, "shift_jis", "shift_jis", b""),
    "iso-2022-jp": ("日本語のテキスト\n" * 20000, "iso2022_jp", "iso-2022-jp", b""),
    "utf-16 marked": ("text words " * 20000, "utf-16-le", None, codecs.BOM_UTF16_LE),
    "utf-16 labelled": ("text words " * 20000, "utf-16-le", "utf-16", codecs.BOM_UTF16_LE),
    "utf-16 unmarked": ("text words\n" * 20000, "utf-16-be", None, b""),
    "emoji": ("😀 " * 60000, "utf-8", "utf-8", b""),
}


@pytest.mark.parametrize("encoding", ["8bit", "base64", "quoted-printable"])
@pytest.mark.parametrize("name", BODIES)
def test_a_long_body_reads_as_when_decoded_whole(name, encoding):
    text, codec, label, mark = BODIES[name]
    body = mark + (text + "\n-----BEGIN PGP MESSAGE-----\nlastword\n").encode(codec)
    assert len(body) > 2 * decoded_bytes(CAP)
    raw = message(body, label, encoding)
    extracted = extract.extract(raw, CAP)
    assert extracted == decoded_whole(raw)
    assert extracted.cut is not None and extracted.encrypted


def test_words_only_past_the_decoded_start_cut_the_body():
    raw = message(b"first words " + b" " * (2 * decoded_bytes(CAP)) + b"lastword", "utf-8")
    extracted = extract.extract(raw, CAP)
    assert extracted.cut is not None and extracted == decoded_whole(raw)
    assert extracted.cut.endswith(f"of {len(raw) - raw.index(b'first')}; the rest is not "
                                  "indexed")


def test_white_space_alone_past_the_decoded_start_is_no_cut():
    raw = message(b"first words " + b" \n" * (2 * decoded_bytes(CAP)), "utf-8")
    extracted = extract.extract(raw, CAP)
    assert extracted.cut is None and extracted == decoded_whole(raw)


@pytest.mark.parametrize("piece_bytes", [7, 13, 26, 1000])
def test_an_armor_line_across_pieces_is_found(piece_bytes, monkeypatch):
    monkeypatch.setattr(charsets, "PIECE_BYTES", piece_bytes)
    for shift in range(len(PGP_ARMOR)):
        body = b"x" * (decoded_bytes(CAP) - shift) + PGP_ARMOR.encode() + b"\n"
        assert extract.extract(message(body, "utf-8"), CAP).encrypted


def test_a_forwarded_message_s_long_body_cuts_its_entry_not_the_message():
    inner = message(b"inner words " + b" " * (2 * decoded_bytes(CAP)) + b"innerlast", "utf-8")
    raw = (b"From: a@example.org\nSubject: fwd\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
           b"see attached\n--b\nContent-Type: message/rfc822\n\n" + inner + b"\n--b--\n")
    extracted = extract.extract(raw, CAP)
    assert extracted.cut is None and extracted.body.strip() == "see attached"
    [forwarded] = [entry for entry in extracted.attachments
                   if entry.mime_type == "message/rfc822"]
    assert forwarded.cut is not None and "inner words" in forwarded.text
    assert extracted == decoded_whole(raw)


def test_a_long_8_bit_body_is_not_held_as_text_whole():
    """A body of 24 MiB of 8-bit text: extract() held its payload str (2 bytes a character),
    its bytes, its text and the text's UTF-8 at once (some 5 times its size); now its text
    is that of its start, what the cap needs (some 3.5 times)."""
    body = ("Grüße aus Köln, wörter " * (24 * MiB // 25)).encode()
    raw = message(body, "utf-8")
    tracemalloc.start()
    try:
        extracted = extract.extract(raw, 1 * MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert extracted.cut is not None
    assert peak < 4 * len(raw), peak / len(raw)
