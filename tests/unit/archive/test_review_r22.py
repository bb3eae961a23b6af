"""Review r22 of 0c510b9 and e6077a2 (a body text part decoded only as far as the index
takes it, the rest in pieces, counted). Each test compares extract() with extract()
decoding every text part whole (decoded_whole: charsets.decode_document, as
test_body_text_start.py does), at a small cap (4096 bytes) so that bodies of 20-200 KB
are read in part."""
from __future__ import annotations

import pytest

from services.archive import charsets, extract
from services.archive.extract import read_text_bytes
from tests.unit.archive import test_body_text_start
from tests.unit.archive.test_body_text_start import message
from tests.unit.archive.test_review_r21 import text_attachment_message

CAP = 4096
START = charsets.decoded_start_bytes(read_text_bytes(CAP))  # 17,428 bytes at this cap


def decoded_whole(raw: bytes) -> extract.Extracted:
    """extract() decoding every text part whole (decode_document)."""
    return test_body_text_start.decoded_whole(raw, CAP)


# Unlabelled texts in double-byte charsets that decoding whole reads right.
CJK = [("shift_jis", "日本語のテキスト "), ("gb18030", "中文文本 "), ("big5", "中文文本 ")]


def _cjk_bodies():
    """Each text some 90 KB long, after 0 to 3 ASCII bytes, so that the start's end falls
    both between characters and inside one."""
    for codec, text in CJK:
        for shift in range(4):
            yield codec, shift, b"x" * shift + (text * 6000).encode(codec)


@pytest.mark.parametrize("encoding", ["8bit", "base64", "quoted-printable"])
def test_an_unlabelled_double_byte_body_cut_inside_a_character_is_read_in_its_charset(encoding):
    """F1 (high). r21 F1 was fixed for UTF-8 only: an unlabelled body in Shift_JIS, GB18030
    or Big5 (the common case for Japanese and Chinese mail without a charset parameter)
    whose start (decoded_start_bytes) ends inside a two-byte character fails the strict
    trial of its own charset, detection falls back to windows-1252, and the indexed body is
    mojibake ("“ú–{Œê‚ÌƒeƒLƒXƒg" for 日本語のテキスト), its "of N" wrong: half of all
    such bodies (where the cut falls). Whole, each is read in its charset. Expected: a
    character cut at the start's end is no bad sequence in any multi-byte charset, and
    extract() indexes what decoding whole does."""
    wrong = []
    for codec, shift, body in _cjk_bodies():
        raw = message(body, None, encoding)
        read, whole = extract.extract(raw, CAP), decoded_whole(raw)
        assert whole.body.startswith(body.decode(codec)[:100])  # (whole, it is read right)
        if (read.body, read.cut) != (whole.body, whole.cut):
            wrong.append((codec, shift, read.body[:12]))
    assert not wrong, f"{len(wrong)} of 12 are mojibake: {wrong}"


def test_an_unlabelled_double_byte_text_attachment_cut_inside_a_character_is_read():
    """F1, in a text attachment (claim 6: read the same way): the attachment's text is
    windows-1252 mojibake where its start ends inside a character."""
    wrong = []
    for codec, shift, data in _cjk_bodies():
        [entry] = extract.extract(text_attachment_message(data), CAP).attachments
        if not data.decode(codec).startswith(entry.text):
            wrong.append((codec, shift, entry.text[:12]))
    assert not wrong, f"{len(wrong)} of 12 are mojibake: {wrong}"


def test_an_unlabelled_double_byte_forwarded_body_cut_inside_a_character_is_read():
    """F1, in a forwarded message's body (claim 5): its entry's text is mojibake."""
    wrong = []
    for codec, shift, body in _cjk_bodies():
        inner = message(body, None, "base64")
        raw = (b"From: a@example.org\nSubject: fw\nMIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=bb\n\n--bb\nContent-Type: text/plain\n"
               b"\nsee\n--bb\nContent-Type: message/rfc822\n\n" + inner + b"\n--bb--\n")
        read, whole = extract.extract(raw, CAP), decoded_whole(raw)
        if [a.text for a in read.attachments] != [a.text for a in whole.attachments]:
            wrong.append((codec, shift))
    assert not wrong, f"{len(wrong)} of 12 read otherwise than whole: {wrong}"


WHITESPACE = {"newlines": b"\n", "spaces": b" ", "CRLF": b"\r\n", "CR": b"\r", "tabs": b"\t",
              "form feeds": b"\x0c", "no-break spaces": "\u00a0".encode()}


@pytest.mark.parametrize("filler", WHITESPACE)
def test_a_body_whose_start_is_white_space_says_its_whole_size(filler):
    """F2 (low). A body that opens with more than decoded_start_bytes(cap) of white space
    (blank lines before a reply's text, padding) is said to be partly indexed "of N" with N
    short of the body's UTF-8 size by the whole start (20,701 for a body of 38,129 at cap
    4096): the start, all white space, is counted as nothing. Whole, N is the body's size.
    Expected: "of N" as decoding whole (claim 2; one charset throughout)."""
    words = " ".join(f"w{i}" for i in range(3000)).encode()
    raw = message(WHITESPACE[filler] * (2 * START // len(WHITESPACE[filler])) + words, "utf-8")
    read, whole = extract.extract(raw, CAP), decoded_whole(raw)
    assert read.cut == whole.cut


def test_beside_a_white_space_start_the_html_alternative_is_not_read_as_the_body():
    """F2, in multipart/alternative: the plain part's start being white space, the plain
    part is taken for empty and the HTML alternative's words are added and indexed as the
    body (claim 4 says none are added beside a plain part read in part), its "of N" that of
    the HTML and the plain part's rest. Whole, the body is the plain part (its white space
    indexed, no HTML word added past it within the cap). Expected: as decoding whole; its
    "of N" the plain part's size (claim 4: no HTML word is added beside a plain part read
    in part, nor counted)."""
    plain = b"\n" * (2 * START) + " ".join(f"p{i}" for i in range(3000)).encode()
    html = ("<html><body><p>" + " ".join(f"h{i}" for i in range(3000)) +
            "</p></body></html>").encode()
    raw = (b"From: a@example.org\nSubject: s\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/alternative; boundary=bb\n\n"
           b"--bb\nContent-Type: text/plain; charset=utf-8\n\n" + plain +
           b"\n--bb\nContent-Type: text/html; charset=utf-8\n\n" + html + b"\n--bb--\n")
    read, whole = extract.extract(raw, CAP), decoded_whole(raw)
    assert read.body == whole.body and "p0" not in read.body and "h0" not in read.body
    assert f"of {len(plain)};" in read.cut


def test_a_start_shaped_as_utf_32_does_not_hide_an_armor_past_it():
    """F3 (low; an attacker's). A body that opens with decoded_start_bytes(cap) bytes of
    "\\x00\\x00\\xfe\\xff" (a UTF-32BE byte-order mark, repeated) and has an OpenPGP message
    in ASCII past it: the start is valid UTF-32 and read so, the rest in UTF-32 (its ASCII
    mojibake), and encrypted is False. Decoding whole, the body is no UTF-32 (windows-1252)
    and the armor is found: encrypted True. Expected (claim 2: an armor line anywhere in
    the body): encrypted True, as decoding whole."""
    body = (b"\x00\x00\xfe\xff" * (START // 4 + 1000) +
            b"\nsome words\n-----BEGIN PGP MESSAGE-----\n\nhQEMA\n-----END PGP MESSAGE-----\n")
    raw = message(body, None)
    assert decoded_whole(raw).encrypted
    assert extract.extract(raw, CAP).encrypted
