"""`archiver show` writes each character of a file's name that shows as no glyph of its own
as its escape, as the message page does (review r9 F5): "in\u200bvoice.pdf" printed raw
reads "invoice.pdf", another file's name. Generated over every format character (Unicode
Cf: zero-width, bidi, soft hyphen, U+180E, tag characters ...) and samples of the other
unseen kinds (private use, unassigned, surrogate-free default ignorables), in names the
sender encodes by RFC 2231 (filename*) and by RFC 2047 (an encoded word in name=)."""
from __future__ import annotations

import base64
import re
import sys
import unicodedata
import urllib.parse

import pytest

from services.cli.archive import _file_lines
from services.common.terminal import BIDI_CONTROLS, IGNORABLE_NOT_FORMAT, name_safe
from services.web import mail_view
from services.web.formatting import visible

FORMAT_CHARACTERS = [chr(code) for code in range(sys.maxunicode + 1)
                     if unicodedata.category(chr(code)) == "Cf"]
OTHER_UNSEEN = ["\ue000", "\U000f0001", "\U0010fffd",  # private use
                "\u0378", "\U000e0080", "\U0001fbff",  # unassigned (Cn)
                *sorted(IGNORABLE_NOT_FORMAT)[::7]]
UNSEEN = FORMAT_CHARACTERS + OTHER_UNSEEN


def rfc2231(name: str) -> str:
    return f"Content-Disposition: attachment; filename*=utf-8''{urllib.parse.quote(name)}"


def rfc2047(name: str) -> str:
    encoded = base64.b64encode(name.encode()).decode()
    return f'Content-Type: application/pdf; name="=?utf-8?b?{encoded}?="\r\n' \
           f"Content-Disposition: attachment"


def message(headers: list[str]) -> bytes:
    parts = [b"Content-Type: text/plain\r\n\r\nhello\r\n"] + [
        f"{header}\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n".encode()
        for header in headers]
    return (b"From: a@example.org\r\nSubject: names\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
            + b"".join(b"--B\r\n" + part for part in parts) + b"--B--\r\n")


def test_the_corpus_has_every_format_character():
    assert len(FORMAT_CHARACTERS) > 150  # U+00AD ... the tag characters
    assert {"\u200b", "\u2060", "\ufeff", "\u00ad", "\u180e", "\U000e0001",
            "\U000e007f", "\u202e"} <= set(FORMAT_CHARACTERS)


@pytest.mark.parametrize("encode", [rfc2231, rfc2047])
def test_show_escapes_every_unseen_character_of_a_name(encode):
    names = [f"in{char}voice.pdf" for char in UNSEEN]
    files = mail_view.files(message([encode(name) for name in names] + [encode("invoice.pdf")]))
    assert [file.filename for file in files] == names + ["invoice.pdf"]  # decoded, as sent
    lines = _file_lines([file.as_json() for file in files])
    plain = quoted(lines[-1])
    for char, line in zip(UNSEEN, lines):
        shown = quoted(line)
        assert char not in line and shown != plain, (hex(ord(char)), line)
        assert shown == f'"in{escape(char)}voice.pdf"'


def escape(char: str) -> str:
    """Python's escape of a character it does not print."""
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def quoted(line: str) -> str:
    return re.search(r'"[^"]*"', line).group()


@pytest.mark.parametrize("char", UNSEEN)
def test_the_page_escapes_a_name_as_show_does(char):
    name = f"a{char}b.pdf"
    assert visible(name) == name_safe(name)
    kept = visible(name, keep=BIDI_CONTROLS)  # the page's text: `isolated` marks these
    assert kept == (name if char in BIDI_CONTROLS else name_safe(name))


def test_a_seen_name_is_as_it_is():
    """Right-to-left scripts, accents, combining marks, emoji, CJK: shown, not escaped."""
    for name in ["\u05d3\u05d5\u05d7.pdf", "cafe\u0301.txt", "r\u00e9sum\u00e9.doc",
                 "\U0001f600.png", "\u8acb\u6c42\u66f8.pdf", "\u0627\u0644\u0641.pdf"]:
        assert name_safe(name) == name and visible(name) == name


@pytest.mark.parametrize("char", ["\u200b", "\u202e", "\t", "\u3000", "\U000e0041"])
def test_an_escape_typed_in_a_name_never_reads_as_the_character(char):
    """A name typed "in\\u200bvoice.pdf" (a backslash, u, 2 ...) and one holding U+200B are
    told apart in show and on the page: the typed backslash is written twice."""
    typed, real = f"in{escape(char)}voice.pdf", f"in{char}voice.pdf"
    for write in (name_safe, visible, lambda name: visible(name, keep=BIDI_CONTROLS)):
        assert write(typed) != write(real)
    lines = _file_lines([{"number": at, "filename": name, "named": True, "size": 1,
                          "content_type": "text/plain", "files": []}
                         for at, name in enumerate([typed, real], 1)])
    assert quoted(lines[0]) != quoted(lines[1])
