"""A text that starts with a byte-order mark is read in the encoding the mark names, whatever
its label says (WHATWG Encoding Standard, "decode": BOM sniffing, as browsers read it). A
UTF-16 part labelled ISO-8859-1, or not labelled, was read as a letter and a NUL by turns:
none of its words could be found, and the web showed it so.

The corpus: sentences in several scripts, each encoded with each mark (UTF-8, UTF-16LE,
UTF-16BE), under labels that lie, say nothing or are missing, as a plain body, an HTML body
and a text attachment; read by extraction, the index's document and the web reader."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.archive import charsets
from services.archive.extract import extract
from services.archive.index import build_document
from services.web import mail_view

SENTENCES = ["Quarterly giraffe report", "Grüße aus Köln Übersicht", "Отчёт о продажах",
             "会议 预算案", "שלום עולם"]
MARKS = {"utf-8": b"\xef\xbb\xbf", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff",
         "utf-32-le": b"\xff\xfe\x00\x00", "utf-32-be": b"\x00\x00\xfe\xff"}
LABELS = [None, "iso-8859-1", "us-ascii", "windows-1252", "utf-8", "utf-16", "x-klingon",
          "koi8-r"]
WHERE = ["body", "html", "attachment"]


def marked(sentence: str, codec: str) -> bytes:
    return MARKS[codec] + sentence.encode(codec)


def message(data: bytes, label: str | None, where: str) -> bytes:
    typed = (b"text/html" if where == "html" else b"text/plain") + (
        f"; charset={label}".encode() if label else b"")
    head = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
    if where != "attachment":
        return head + b"Content-Type: " + typed + b"\r\nContent-Transfer-Encoding: binary\r\n\r\n" + data
    return (head + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            b"Content-Type: text/plain\r\n\r\nsee the file\r\n--b\r\nContent-Type: " + typed
            + b'\r\nContent-Disposition: attachment; filename="notes.txt"\r\n'
            b"Content-Transfer-Encoding: binary\r\n\r\n" + data + b"\r\n--b--\r\n")


def body_terms(raw: bytes) -> set[str]:
    document = build_document("ab" * 32, {"size": len(raw)}, extract(raw, 1 << 20))
    return {term.term.decode() for term in document.termlist()}


CASES = list(itertools.product(SENTENCES, MARKS, LABELS, WHERE))


@pytest.mark.parametrize("sentence, codec, label, where", CASES)
def test_a_marked_text_is_read_in_its_marks_encoding(sentence, codec, label, where):
    raw = message(marked(sentence, codec), label, where)
    read = extract(raw, 1 << 20)
    text = read.body if where != "attachment" else read.attachments[0].text
    assert text.strip() == sentence  # the mark itself is no text
    # its words are the index's as if it had come labelled, without a mark
    reference = message(sentence.encode("utf-8"), "utf-8", where)
    prefix = "XA" if where == "attachment" else "XB"
    assert {term for term in body_terms(raw) if term.startswith(prefix)} == {
        term for term in body_terms(reference) if term.startswith(prefix)}
    if where != "attachment":
        assert mail_view.view(raw).body.strip() == sentence


@pytest.mark.parametrize("label", [None, "utf-32", "iso-8859-1", "utf-16"])
@pytest.mark.parametrize("codec", ["utf-32", "utf-32-le", "utf-32-be"])
def test_a_utf_32_mark_is_not_read_as_utf_16s(codec, label):
    text = "hej där, giraffe"
    data = (b"" if codec == "utf-32" else "\ufeff".encode(codec)) + text.encode(codec)
    assert charsets.decode_document(data, label) == text


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(LABELS))
def test_without_a_mark_a_text_reads_as_before(data, label):
    """(But UTF-16 and UTF-32 without a mark: test_unmarked_unicode.)"""
    if not data.startswith(tuple(MARKS.values())) and \
            charsets.unmarked_encoding(data, label) is None:
        assert charsets.decode_document(data, label) == charsets.decode(data, label)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(sorted(MARKS)), st.sampled_from(LABELS))
def test_any_marked_text_reads_back(text, codec, label):
    data = MARKS[codec] + text.encode(codec, "surrogatepass")
    decoded = charsets.decode_document(data, label)
    if data == MARKS["utf-32-le"]:  # UTF-32LE's mark alone, or UTF-16LE's and a U+0000
        assert decoded in ("", "\x00")
        return
    if codec == "utf-16-le" and text.startswith("\x00") and _utf_32_le(data[4:]) is not None:
        # UTF-16LE's mark and a U+0000 are UTF-32LE's mark: what follows, valid UTF-32 too
        # ("\x000\x10" is U+100030), reads as UTF-32 (test_utf_16_text_that_begins_with...)
        assert decoded == charsets.without_surrogates(_utf_32_le(data[4:]))
        return
    assert decoded == charsets.without_surrogates(text) or charsets.has_surrogates(text)


def _utf_32_le(data: bytes) -> str | None:
    try:
        return data.decode("utf-32-le")
    except UnicodeDecodeError:
        return None


@pytest.mark.parametrize("label", [None, "utf-16", "utf-32"])
def test_utf_16_text_that_begins_with_u0000_stays_utf_16(label):
    """UTF-32LE's mark is UTF-16LE's and a U+0000: text that is no valid UTF-32 is UTF-16."""
    data = b"\xff\xfe" + "\x00before after".encode("utf-16-le")
    assert charsets.decode_document(data, label) == "\x00before after"
