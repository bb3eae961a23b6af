"""Review r21 of 0c510b9 (a body text part decoded only as far as the index takes it, the
rest in pieces, counted). Each test compares extract() with extract() decoding every text
part whole (decoded_whole, as test_body_text_start.py does) on generated corpora."""
from __future__ import annotations

import random

from services.archive import extract
from tests.unit.archive.test_body_text_start import (CAP, decoded_bytes, decoded_whole,
                                                     message)

START = decoded_bytes(CAP)
SCRIPTS = ["Привет мир ", "Grüße aus Köln ", "日本語のテキスト ", "中文文本 ", "한국어 ",
           "😀 emoji ", "Ελληνικά ", "עברית "]


def _utf_8_bodies():
    """Valid UTF-8 texts of some 3 * START bytes, each in every position relative to the
    cut at START (0 to 3 ASCII bytes before it)."""
    for script in SCRIPTS:
        unit = script.encode()
        for shift in range(4):
            yield script, b"x" * shift + unit * (3 * START // len(unit))



def text_attachment_message(data: bytes) -> bytes:
    """A message of a short body and an unlabelled 8-bit text/plain attachment of `data`."""
    return (b"From: a@example.org\nSubject: file\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n"
            b"\nsee the file\n--b\nContent-Type: text/plain\n"
            b"Content-Disposition: attachment; filename=notes.txt\n"
            b"Content-Transfer-Encoding: 8bit\n\n" + data + b"\n--b--\n")

def test_valid_utf_8_cut_inside_a_character_is_read_as_utf_8():
    """F1 (high). An unlabelled (or us-ascii, unknown-8bit: labels that say nothing) body of
    valid UTF-8 longer than decoded_bytes(cap) is read in the charset of its first
    decoded_bytes(cap) bytes; when that cut falls inside a multi-byte character those bytes
    are no valid UTF-8, detection guesses (GB18030 for Cyrillic: "袩褉懈胁械褌"), and the
    indexed text is mojibake, its "of N" wrong. Whole, the body is UTF-8. Expected: a
    character cut at the end of the start is left to the rest (as decode_document_start's
    docstring says), so the start reads as UTF-8 and extract() is what decoding whole gives."""
    wrong = []
    for label in [None, "us-ascii", "unknown-8bit"]:
        for encoding in ["8bit", "base64", "quoted-printable"]:
            for script, body in _utf_8_bodies():
                raw = message(body, label, encoding)
                if extract.extract(raw, CAP) != decoded_whole(raw):
                    wrong.append((label, encoding, script, body[:3]))
    assert not wrong, f"{len(wrong)} of 192 read otherwise than whole: {wrong[:6]}"


def test_a_text_attachment_cut_inside_a_utf_8_character_is_read_as_utf_8():
    """F1, the same kind where the body's reading came from (present before 0c510b9): an
    unlabelled UTF-8 text attachment read up to decoded_bytes(cap) is mojibake when that cut
    falls inside a character. Expected: its text is the start of the attachment's UTF-8."""
    wrong = []
    for script, data in _utf_8_bodies():
        [entry] = extract.extract(text_attachment_message(data), CAP).attachments
        if not data.decode().startswith(entry.text) or entry.cut is None:
            wrong.append((script, data[:3], entry.text[:12]))
    assert not wrong, f"{len(wrong)} of 32 are mojibake: {wrong[:6]}"


# Bytes that ISO-2022 and HZ decoders read as a change of state and no character.
SHIFTS = {"iso-2022-jp": [b"\x1b(B", b"\x1b(J", b"\x1b$B\x1b(B"],
          "iso-2022-kr": [b"\x0e\x0f", b"\x0f"],
          "iso-2022-jp-2": [b"\x1b(B", b"\x1b.A"],
          "hz-gb-2312": [b"~{~}", b"~\n"]}


def test_shift_sequences_before_the_text_do_not_hide_it_from_the_index():
    """F2 (medium; an attacker's). decoded_bytes(cap) assumes each character takes at most
    4 bytes, but ISO-2022 escape sequences and HZ's "~{~}" or "~\\n" decode to no character:
    a body that opens with decoded_bytes(cap) bytes of them decodes to "" at its start, so
    the index takes no word of it (its words are past the start, counted only), where
    decoding whole indexes the text after them. A sender can so hide any body from search.
    Expected: the indexed body is that of decoding whole (decode on until cap_bytes of
    UTF-8 are read, or the part ends)."""
    rng, wrong = random.Random(21), []
    for label, fillers in SHIFTS.items():
        for encoding in ["8bit", "base64", "quoted-printable"]:
            for _ in range(4):
                filler = rng.choice(fillers)
                words = " ".join(f"word{rng.randrange(10 ** 6)}" for _ in range(3000))
                body = filler * (START // len(filler) + rng.randint(1, 50)) + words.encode()
                raw = message(body, label, encoding)
                read, whole = extract.extract(raw, CAP), decoded_whole(raw)
                assert whole.body.strip().startswith("word")  # (whole, the text is read)
                if read.body != whole.body:
                    wrong.append((label, encoding, filler, read.body[:20]))
    assert not wrong, f"{len(wrong)} of 48 hide their text: {wrong[:6]}"


def _alternative(plain: bytes, html: bytes) -> bytes:
    return (b"From: a@example.org\nSubject: s\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/alternative; boundary=bb\n\n"
            b"--bb\nContent-Type: text/plain; charset=utf-8\n\n" + plain +
            b"\n--bb\nContent-Type: text/html; charset=utf-8\n\n" + html + b"\n--bb--\n")


def test_an_html_alternative_does_not_count_the_plain_text_twice():
    """F3 (low). Beside a plain text read in part, the HTML alternative's words "not in"
    the plain text are those not in its start: all the words of the HTML past it, when the
    two say the same. They are added to the body (held, never indexed: they are past the
    cut), and body_cut's "of N" counts them and the plain part's unread rest both, some
    twice the body's size (11.4 MB for a 6.2 MB body). Expected: the cut says the size
    decoding whole gives (words of the HTML that the plain text has past its start are in
    the plain text)."""
    rng, wrong = random.Random(3), []
    for _ in range(6):
        words = " ".join(f"w{rng.randrange(10 ** 9)}" for _ in range(rng.randint(3, 8) * START // 11))
        raw = _alternative(words.encode(), f"<html><body><p>{words}</p></body></html>".encode())
        read, whole = extract.extract(raw, CAP), decoded_whole(raw)
        if read.cut != whole.cut:
            wrong.append((read.cut, whole.cut))
    assert not wrong, wrong[:2]
