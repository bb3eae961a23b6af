"""Review 157: the late uuencode commits (383f7da, bee206d) and mime_parts' charge of long
"--" lines and x-uuencode pass-through (cf41e05): a blank-encoded file's lines judged by
their length as they came; bee206d reverted (it took words the HTML shows); no x-uuencode
pass-through past LINE_CHECKS."""
from __future__ import annotations

import binascii

from services.archive import mime_parts, uuencode
from services.archive.extract import extract
from tests.unit.archive.test_uuencode import CAP, FILES, HEAD, encoded, found, joined, message


# --- 383f7da: real files encoded with blanks for zero leave their lines as text -------------

def test_a_space_encoded_binary_with_zero_runs_leaves_no_encoded_lines_in_the_text():
    """binascii.b2a_uu's default (and historical uuencode) writes zero bits as blanks; a
    line ending in zero bytes ends in blanks, which _decoded strips itself (rstrip) before
    judging the line's length: the line is 'cut short' though nothing cut it, and the whole
    block (a 50 KB docx here: 9 of 817 lines) stays in the body as junk words. Before
    383f7da the block was taken out."""
    data = FILES["minutes.docx"][0]
    text = uuencode.split(joined([b"hello", *encoded(b"m.docx", data, backtick=False),
                                  b"bye"], b"\n"), 5)
    assert [file.name for file in text.files] == [b"m.docx"]
    assert text.text == b"hello\nbye\n"


def test_a_space_encoded_text_file_ending_in_a_zero_low_bits_byte_is_taken_out():
    """A text file of 3n+1 bytes whose last byte has its low two bits zero ('d', 't', 'l',
    'h', 'p', 'x', '0', '4', '8', ...) ends its last line in three blanks: stripped, the
    line is 3 short and the block stays text."""
    data = b"see you at the road"  # 19 bytes, ends 'd'
    assert len(data) % 3 == 1 and data[-1] & 3 == 0
    text = uuencode.split(joined([b"hello", *encoded(b"n.txt", data, backtick=False),
                                  b"bye"], b"\n"), 5)
    assert [file.name for file in text.files] == [b"n.txt"]
    assert text.text == b"hello\nbye\n"


def test_a_space_encoded_docx_inline_leaves_no_junk_in_the_indexed_body():
    """The same end to end: the body indexed holds none of the encoded lines."""
    data = FILES["minutes.docx"][0]
    raw = message(joined([b"see attached", *encoded(b"minutes.docx", data, backtick=False),
                          b"bye"], b"\n"))
    extracted = extract(raw, CAP)
    assert "begin 644" not in extracted.body
    assert len(extracted.body) < 100


# --- bee206d: a plain part's block hides the words its HTML alternative shows ----------------

def _alternative(plain: bytes, html: bytes) -> bytes:
    return (HEAD.encode() + b"MIME-Version: 1.0\n"
            b"Content-Type: multipart/alternative; boundary=ALT\n\n"
            b"--ALT\nContent-Type: text/plain\n\n" + plain +
            b"--ALT\nContent-Type: text/html\n\n" + html + b"--ALT--\n")


def test_words_only_the_html_shows_stay_searchable_beside_a_block_in_the_plain_part():
    """multipart/alternative: the plain part is 'see attached' and a block whose one line
    (61 characters, exact) carries the words in capitals; the HTML (what clients show)
    says them in prose. The block is taken out of the plain text, and bee206d makes its
    lines the reference for the HTML: 'docks' is in no indexed text (before bee206d it was
    an HTML-only word)."""
    line = b"MEET AT THE DOCKS AT DAWN, BRING $500 AND THE PAPERS. TELL NO"
    plain = b"see attached\nbegin 644 a.bin\n" + line + b"\n`\nend\n"
    html = b"<p>Meet at the docks at dawn, bring $500 and the papers.</p>\n"
    assert found(_alternative(plain, html), "docks") == 1


def test_html_only_words_are_not_dropped_for_tokens_of_a_real_encoded_file():
    """Not hostile: a plain part carries a space-encoded binary (its lines split into many
    short tokens of capitals and digits at blanks and punctuation); an HTML-only word that
    happens to be one of those tokens is no longer indexed."""
    data = bytes(range(256)) * 40
    lines = encoded(b"data.bin", data, backtick=False)
    import re
    tokens = sorted({t for line in lines[1:-2] for t in re.findall(rb"\w+", line)
                     if len(t) == 3 and t.isalpha()})
    word = tokens[0].decode()  # an ordinary-looking three-letter word the HTML uses
    plain = joined([b"see attached", *lines], b"\n")
    html = f"<p>see attached, ref {word.lower()}</p>\n".encode()
    assert found(_alternative(plain, html), word.lower()) == 1


# --- cf41e05: an x-uuencode part past LINE_CHECKS is passed through uncharged ---------------

def test_an_x_uuencode_part_that_is_not_uuencode_past_line_checks_is_still_bounded(
        monkeypatch):
    """5 nested multiparts (no close delimiter: the feedparser parses it) around a part
    labelled x-uuencode holding 20,000 short lines of no uuencode. Past LINE_CHECKS its
    body is kept as it is (cf41e05) and its matches are taken back out of the count
    (_Work.charge subtracts an edited region's), so the parser matches every one of its
    lines against every open boundary: what is given the parser must stay within
    LINE_CHECKS (here lowered to 2,000), as a 7bit part's body does (base64 lines)."""
    monkeypatch.setattr(mime_parts, "LINE_CHECKS", 2_000)
    levels = 5
    raw = b"From: a@b.c\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for n in range(levels - 1):
        raw += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n, n + 1)
    part = (b"--b%d\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: %%s\r\n\r\n" % (levels - 1)) + b"a\r\n" * 20_000
    tail = b"--b%d\r\nContent-Type: text/plain\r\n\r\ntailword\r\n" % (levels - 1)
    plain, _ = mime_parts.bounded(raw + part % b"7bit" + tail)
    assert plain.count(b"\n") * levels < 2 * mime_parts.LINE_CHECKS  # (base64: bounded)
    given, _ = mime_parts.bounded(raw + part % b"x-uuencode" + tail)
    assert given.count(b"\n") * levels < 2 * mime_parts.LINE_CHECKS
