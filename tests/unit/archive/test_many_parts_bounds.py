"""A message of thousands of body parts is read in bounded memory (#20): the plain texts
past what the index takes are counted, not held (extract._PlainTexts), HTML texts past a
few caps likewise (_HtmlTexts), small payloads are views into the message when together
they are most of it (mimetree), mime_parts.bounded() writes its answer once (_Pieces), and
the parse gives back only the start of a message it cut (mime.parse_message)."""
from __future__ import annotations

import re

from services.archive import extract, mime, mime_parts
from services.archive.index import PARTLY_INDEXED


REPEAT = 80  # words a part: some 560 bytes, over mimetree.HELD_SMALL_BYTES


def many_parts(count: int, html_every: int = 0) -> bytes:
    """A message of `count` text parts, part n saying "wordN" REPEAT times (every
    `html_every`-th an HTML part)."""
    parts = []
    for number in range(count):
        text = (" ".join([f"word{number}"] * REPEAT)).encode()
        if html_every and number % html_every == html_every - 1:
            parts.append(b"Content-Type: text/html\r\n\r\n<p>" + text + b"</p>\r\n")
        else:
            parts.append(b"Content-Type: text/plain\r\n\r\n" + text + b"\r\n")
    body = b"".join(b"--B\r\n" + part for part in parts) + b"--B--\r\n"
    return (b"From: a@example.org\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n" + body)


def test_plain_texts_keep_parts_until_their_text_bytes_are_used():
    plain = extract._PlainTexts(10)
    assert plain.has_room()
    plain.append("abcdefgh")  # 8 bytes and its line break
    assert plain.has_room()
    plain.append("é")  # 2 bytes: 12 in all
    assert not plain.has_room()
    assert plain.texts == ["abcdefgh", "é"]


def test_text_parts_past_the_cap_are_counted_not_read():
    """The index takes the same first cap of the body as when every part was read, and the
    cut says the whole body's size: the parts' texts and the line breaks between them."""
    raw = many_parts(400)
    cap = 4000
    read = extract.extract(raw, cap)
    whole = "\n".join(" ".join([f"word{number}"] * REPEAT) for number in range(400))
    assert read.body == extract.truncate_on_a_word(whole, cap)
    assert f"body text cut at {cap} bytes" in read.cut
    assert f"of {len(whole.encode())}" in read.cut


def test_text_parts_past_the_cap_are_not_held(monkeypatch):
    kept = []
    real = extract._start_kept

    def watched(start, rest, was_kept, unread):
        kept.append(was_kept)
        return real(start, rest, was_kept, unread)

    monkeypatch.setattr(extract, "_start_kept", watched)
    extract.extract(many_parts(400), 4000)
    # (each part gives 80 words of 7-9 bytes: some 7 fill the cap)
    assert 4 < kept.count(True) < 10 and kept.count(False) == 400 - kept.count(True)


def test_html_parts_past_a_few_caps_are_counted_and_flag_the_body():
    raw = many_parts(400, html_every=1)  # HTML alone: its text is the body
    cap = 4000
    read = extract.extract(raw, cap)
    whole = "\n".join(" ".join([f"word{number}"] * REPEAT) for number in range(400))
    assert read.body == extract.truncate_on_a_word(whole, cap)
    assert read.cut.startswith(PARTLY_INDEXED) and "body text cut" in read.cut


def test_html_texts_hold_at_most_their_factor_of_the_cap():
    texts = extract._HtmlTexts(1000)
    message = mime.parse_message(many_parts(400, html_every=1))
    for part in message.get_payload():
        texts.read(part)
    held = sum(map(len, texts.texts))
    limit = extract.HTML_HELD_FACTOR * extract.read_text_bytes(1000)
    # (and what is held untidied: the texts are tidied when wanted)
    assert limit <= held < limit + extract.UNTIDIED_HELD_CHARACTERS + 1000
    assert texts.unread.words and texts.unread.parts == 0


def test_small_payloads_that_are_most_of_the_message_are_views():
    message = mime.parse_message(many_parts(50), held=True)
    parts = message.get_payload()
    assert all(isinstance(part.payload_bytes, memoryview) for part in parts)
    assert parts[3].get_payload() == " ".join(["word3"] * REPEAT)


def test_a_few_small_payloads_in_a_large_header_are_copies():
    raw = many_parts(3).replace(b"Subject: many", b"Subject: " + b"x" * 20000)
    message = mime.parse_message(raw, held=True)
    assert all(part.payload_bytes is None for part in message.get_payload())


def test_bounded_answers_as_the_delimiter_lines_taken_out_by_a_substitution():
    """_without_delimiter_lines writes views between the delimiter lines: the same bytes as
    re.subn took out, the same count of delimiters that are not close ones."""
    lines = (b"a\r\n--B\r\nb\r\n--B--\r\nc\r\n--C \r\n" * 5000) + b"--B"
    open_parts = [type("Open", (), {"delimiter": d})() for d in (b"--B", b"--C")]
    written = []

    class Kept:
        def write(self, source, start, end):
            written.append(source[start:end])

    count = mime_parts._without_delimiter_lines(lines, 0, len(lines), open_parts, Kept())
    any_line = mime_parts._delimiter_line([b"--B", b"--C"])
    close_line = mime_parts._delimiter_line([b"--B", b"--C"], True)
    expected, found = any_line.subn(b"", lines)
    assert b"".join(written) == expected
    assert count == found - len(close_line.findall(lines)) == 10001


def test_a_message_of_more_than_max_parts_is_cut_as_before(monkeypatch):
    monkeypatch.setattr(mime_parts, "MAX_PARTS", 100)
    raw = many_parts(300)
    cut, unparsed = mime_parts.bounded(raw)
    assert isinstance(cut, bytes) and unparsed >= 200
    rest = cut[cut.index(b"word99 "):]
    assert re.search(rb"word299", rest) and b"--B\r\nContent" not in rest


def test_a_message_given_in_a_list_is_given_back_as_its_start_when_cut(monkeypatch):
    monkeypatch.setattr(mime_parts, "MAX_PARTS", 100)
    raw = many_parts(3000)  # (past what the summary and charsets read)
    given = [raw]
    message = mime.parse_message(given, held=True)
    assert len(given) == 1 and len(given[0]) < len(raw) and raw.startswith(given[0])
    assert any(isinstance(d, mime_parts.PartsNotParsed) for d in message.defects)
    small = [many_parts(3)]
    mime.parse_message(small)
    assert small[0] == many_parts(3)


def test_parse_of_a_list_summarises_as_of_the_bytes(monkeypatch):
    monkeypatch.setattr(mime_parts, "MAX_PARTS", 100)
    raw = many_parts(300)
    assert extract.parse([raw]).summary == extract.parse(raw).summary


def test_a_spilled_message_gives_the_same_cut(monkeypatch):
    """Spilled to a file before its cut is joined (mime_parts._Pieces.spill), a message
    cut past MAX_PARTS gives the same bytes as joined from the message, and the parse
    gives back only its start."""
    monkeypatch.setattr(mime_parts, "MAX_PARTS", 50)
    raw = many_parts(400)
    expected, count = mime_parts.bounded(raw)
    pieces, spilled_count = mime_parts.bounded_pieces(raw)
    monkeypatch.setattr(mime_parts, "SPILL_BYTES", 0)
    assert pieces.spill() and pieces.joined() == expected and spilled_count == count
    given = [raw]
    mime.parse_message(given, held=True)
    assert len(given[0]) < len(raw)


def test_the_short_pieces_of_a_cut_are_copied_together(monkeypatch):
    """The lines between the delimiter lines of tiny parts are one copy, not a range each
    (1.6 million of them took a worker to 1.3 GB)."""
    monkeypatch.setattr(mime_parts, "MAX_PARTS", 50)
    raw = (b"From: a@example.org\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
           + b"--B\r\n\r\nx\r\n" * 5000 + b"--B--\r\n")
    pieces, _ = mime_parts.bounded_pieces(raw)
    assert len(pieces.pieces) <= 2
    cut = pieces.joined()
    assert cut.count(b"--B\r\n") == 50 and cut.count(b"x\r\n") == 5000


def test_a_cut_that_cannot_be_spilled_is_joined_from_the_message(monkeypatch):
    monkeypatch.setattr(mime_parts, "MAX_PARTS", 50)
    raw = many_parts(400)
    expected, _ = mime_parts.bounded(raw)
    pieces, _ = mime_parts.bounded_pieces(raw)
    monkeypatch.setattr(mime_parts, "SPILL_BYTES", 0)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mime_parts.tempfile, "TemporaryFile", full_disk)
    assert not pieces.spill() and pieces.joined() == expected
