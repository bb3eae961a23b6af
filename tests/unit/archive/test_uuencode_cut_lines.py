"""uuencode.split on Debian 12's Python (3.11.2), whose possessive group repeats end where a
failed try of them stopped (CPython gh-100061, fixed in 3.11.5): a block whose data or
blank lines are followed by a line that only begins like one ("!end", "  end") had matched
with a line cut short, and split raised ValueError (review r7 F0: `archiver show`, the API
and every download of such a message failed). The blocks split finds are compared with a
reader of the block grammar written line by line, over generated soups of lines of every
kind and of lines cut short."""
from __future__ import annotations

import random
import re

import pytest

from services.archive import uuencode
from services.web import mail_view

BEGIN = re.compile(rb"begin[ \t]+([0-7]{3,6})[ \t]+([^\r\n]*)\r?\n\Z")
DATA = re.compile(rb"[\x21-\x60][\x20-\x60]*\r?\n\Z")
BLANK = re.compile(rb"[ \t]*\r?\n\Z")
END = re.compile(rb"end[ \t]*\r?(?:\n|\Z)\Z")

# Whole lines of each kind, and lines that begin like one kind and are not it.
LINES = [b"begin 644 a\n", b"begin 0644 b c\r\n", b"begin 644 x.txt\n", b"begin 644 \n",
         b"!\n", b"M\n", b"M!!\r\n", b"#86)C\n", b"#86)C\r\n", b"`\n", b" \n", b"\n", b"\t\r\n",
         b"\r\n", b"end\n", b"end \r\n", b"hello world\n",
         b"!end\n", b"Mend\n", b"#86)Cend\n", b"  end\n", b"\rend\n", b"\t end\n", b"M!!\rend\n",
         b"M\r\r\n", b"#86)C\t\n", b"x", b"\r", b"end"]


def blocks_by_lines(data: bytes) -> list[tuple[int, int, bytes, bytes, int, int]]:
    """The blocks of `data` as the grammar reads them, line by line: (start, end, mode,
    name, start and end of the data lines) of each, in order, none overlapping."""
    lines, at = [], 0
    for line in data.splitlines(keepends=True):  # (splits at \r too: joined back below)
        if lines and not lines[-1][1].endswith(b"\n"):
            lines[-1] = (lines[-1][0], lines[-1][1] + line)
        else:
            lines.append((at, line))
        at += len(line)
    found, k = [], 0
    while k < len(lines):
        begin = BEGIN.match(lines[k][1])
        block = begin and _block_from(lines, k)
        if block is None:
            k += 1
            continue
        end_line, data_start, data_end = block
        start, last = lines[k][0], lines[end_line]
        found.append((start, last[0] + len(last[1]), begin.group(1), begin.group(2),
                      data_start, data_end))
        k = end_line + 1
    return found


def _block_from(lines, k):
    """(the end line's index, the data lines' span) of the block whose begin line is
    lines[k], or None: data lines, then blank lines, then the end line."""
    j = k + 1
    data_start = lines[j][0] if j < len(lines) else None
    while j < len(lines) and DATA.match(lines[j][1]):
        j += 1
    data_end = lines[j][0] if j < len(lines) else None
    while j < len(lines) and BLANK.match(lines[j][1]):
        j += 1
    if j < len(lines) and END.match(lines[j][1]):
        return j, data_start, data_end
    return None


def split_by_lines(data: bytes, keep: int) -> uuencode.Split:
    """What split() gives, the blocks found by blocks_by_lines (the decoding of their lines
    is uuencode's own)."""
    text, files, more, taken = bytearray(), [], 0, 0
    for start, end, mode, name, data_start, data_end in blocks_by_lines(data):
        content, exact = uuencode._decoded(data, data_start, data_end) if name.strip() \
            else (None, False)
        if content is None:
            continue
        if exact:
            text += data[taken:start]
            taken = end
        if len(files) < keep:
            files.append(uuencode.File(name.strip(), mode, content))
        else:
            more += 1
    if not files and not more:
        return uuencode.Split(data, [])
    return uuencode.Split(bytes(text + data[taken:]), files, more)


def soups(count: int, seed: int) -> list[bytes]:
    generator = random.Random(seed)
    return [b"".join(generator.choice(LINES) for _ in range(generator.randint(0, 16)))
            for _ in range(count)]


@pytest.mark.parametrize("seed", range(4))
def test_split_finds_the_blocks_the_grammar_reads(seed):
    for data in soups(5000, seed):
        assert uuencode.split(data, 3) == split_by_lines(data, 3), data


@pytest.mark.parametrize("cut", [b"!end", b"Mend", b"#86)Cend", b"M!!\rend"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_a_data_line_cut_short_by_end_is_no_block_and_the_next_block_is_read(cut, newline):
    bad = b"begin 644 a" + newline + b"!" + newline + cut + newline
    good = b"begin 644 b.txt" + newline + b"#86)C" + newline + b"`" + newline + b"end" + newline
    found = uuencode.split(b"hello" + newline + bad + good, 5)
    assert [(file.name, file.data) for file in found.files] == [(b"b.txt", b"abc")]
    assert found.text == b"hello" + newline + bad


@pytest.mark.parametrize("cut", [b"  end", b"\t end", b"\rend"])
def test_an_end_line_after_blanks_on_its_line_is_no_end(cut):
    data = b"begin 644 a.txt\n#86)C\n`\n" + cut + b"\n"
    assert uuencode.split(data, 5) == uuencode.Split(data, [])


def test_a_message_of_such_a_body_is_viewed_and_has_no_attachment():
    raw = (b"From: s@example.org\nTo: alice@example.com\nSubject: cut\n"
           b"Message-ID: <cut@example.org>\n\nhello\nbegin 644 a\n!\n!end\n")
    view = mail_view.view(raw)
    assert view.as_json()["attachments"] == []
    assert "hello" in view.body and "!end" in view.body
