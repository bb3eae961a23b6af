"""Quoted-printable decoded in pieces (transfer_encoding._QP_CUT) is decoded as it is whole,
and a large HTML text tidied as it comes (extract._TidiedText) is tidied as it is whole:
random texts of the characters that matter to each, cut at every few bytes."""
from __future__ import annotations

import random

from services.archive import extract, transfer_encoding

QP_TOKENS = [b"=", b"\n", b"\r", b"\r\n", b" ", b"\t", b"a", b"4", b"1", b"=41", b"=\n",
             b"=\r\n", b"=\r", b"= \n", b"x"]
SPACES = ["a", "b", " ", "  ", "\n", "\t", "\r", "\u00a0", "\n\n", " \n ", "\x0c"]


def test_quoted_printable_cut_into_pieces_decodes_as_whole(monkeypatch):
    rng = random.Random(1)
    for _ in range(20000):
        data = b"".join(rng.choices(QP_TOKENS, k=rng.randint(0, 30)))
        whole = transfer_encoding._decoded_lines(data)
        monkeypatch.setattr(transfer_encoding, "PIECE_BYTES", rng.randint(1, 8))
        assert transfer_encoding.decode_quoted_printable(data) == whole, data


def test_a_long_soft_broken_line_is_decoded_in_pieces():
    line = b"abcdefghij" * 100_000  # 1 MB of text on lines joined by soft line breaks
    encoded = b"=\r\n".join(line[at:at + 75] for at in range(0, len(line), 75))
    pieces = list(transfer_encoding._pieces(encoded, transfer_encoding._QP_CUT, after=True))
    assert len(pieces) > 10
    assert transfer_encoding.decode_quoted_printable(encoded) == line


def test_text_tidied_as_it_comes_is_the_text_tidied_whole(monkeypatch):
    rng = random.Random(3)
    for _ in range(20000):
        parts = ["".join(rng.choices(SPACES, k=rng.randint(0, 8)))
                 for _ in range(rng.randint(0, 6))]
        monkeypatch.setattr(extract, "TIDIED_PIECE", rng.randint(1, 6))
        sink = extract._TidiedText(1 << 30)
        for part in parts:
            sink.write(part)
        assert sink.text() == extract._tidy_whitespace("".join(parts)), parts


def test_white_space_tidied_as_it_comes_is_held_as_one_character(monkeypatch):
    monkeypatch.setattr(extract, "TIDIED_PIECE", 1024)
    sink = extract._TidiedText(1 << 30)
    sink.write("word")
    for _ in range(1000):
        sink.write(" \n\t" * 100)
    assert sink.untidied_characters < 2048
    sink.write("next")
    assert sink.text() == "word\nnext"


def html_message(html: bytes, encoding: str) -> bytes:
    import base64
    import quopri
    encoded = base64.encodebytes(html) if encoding == "base64" else quopri.encodestring(html)
    return (b"From: a@example.org\nSubject: s\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=sep\n\n--sep\nContent-Type: text/plain\n\n"
            b"see the file\n--sep\nContent-Type: text/html; name=p.html\n"
            b"Content-Transfer-Encoding: %s\nContent-Disposition: attachment; filename=p.html\n\n"
            b"%s\n--sep--\n" % (encoding.encode(), encoded))


def test_a_large_html_attachment_read_in_pieces_gives_the_text_read_whole():
    """Over LARGE_FILE_BYTES (read by _large_text) and under the cap: all its text, as the
    whole document's; over the cap: its start, cut."""
    rng = random.Random(4)
    rows = b"".join(b"<tr><td>%d</td><td>caf\xc3\xa9 %s</td></tr>\n   \n" % (
        at, bytes(rng.choices(b"abcdefgh  ", k=40))) for at in range(30000))
    html = b"<html><head><title>t</title></head><body><table>" + rows + b"</table></body>"
    whole = extract._html_to_text(html, "utf-8")
    for encoding in ("base64", "quoted-printable"):
        read = extract.extract(html_message(html, encoding), 8 << 20).attachments[0]
        assert (read.text, read.cut) == (whole, None)
        cut = extract.extract(html_message(html, encoding), 100_000).attachments[0]
        assert whole.startswith(cut.text) and 99_000 < len(cut.text.encode()) <= 100_000
        assert cut.cut == extract.cap_cut(100_000)
