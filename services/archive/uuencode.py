"""uuencoded files in mail (uuencode(1), POSIX): a "begin MODE NAME" line, lines of
encoded data (each a length character, then four characters for each three bytes), a
line of length zero ("`", or a blank line where a mailer stripped the space), and "end".

Older mail clients (Outlook Express, Usenet-era tools, scanners and scripts) send files
so: inline in a text/plain body, often several with text between them, or as a MIME part
whose Content-Transfer-Encoding is x-uuencode (uuencode, x-uue, uue). Read as text, the
encoded lines were indexed as junk words and the files never read; split() finds each
block that decodes whole, so that its file is read as an attachment and the text around it
stays body text.

A block is taken only when it decodes from its begin line to its end line: a "begin" line
that is prose ("begin 644 was the code"), a block with no end (a truncated message), a line
no decoder reads, all stay text as they were. A block with a line shorter than its length
character says by more than a group's padding (a mailer that stripped a run of trailing
blanks, or a line of capitals that merely decodes: "MEET AT THE DOCKS") gives its file and
keeps its lines in the text too: what a mail client may show as words is never taken out of
search. Lines end in LF or CRLF. Work is linear in
the input: blocks are found by one pass of a regular expression that never backtracks
into a block (_BLOCK), and each block's lines are decoded once.
"""
from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

# A block, found in C (a regular expression) and decoded line by line after: a begin line
# ("begin", blanks, a mode of octal digits: 644, 0644, 100644; blanks, a name), lines of the
# uuencode alphabet (' ' to '`'; a line starting with a blank has length zero: it is a
# blank line to the pattern, as once a mailer strips its trailing blanks), blank lines,
# "end". Possessive: nothing in a block is matched two ways, so a failed block is never
# read again by backtracking (nor does the matcher keep a mark for each of its lines: a
# greedy or atomic group keeps some 130 bytes a line, 1 GB for a part of 8 million lines).
# Python up to 3.11.4 (Debian 12 has 3.11.2) leaves a possessive group's repeat where a
# failed try of it stopped (CPython gh-100061): "begin 644 a / ! / !end" matched, with a
# data line "!" cut short. So _BLOCK's groups take any line their kind of line begins
# with (their tries fail only at a line's first byte, or at the end of the data, where no
# "end" follows), and _is_block checks the lines taken against the exact patterns with
# fullmatch, which a try stopped early cannot satisfy. The two kinds of line begin with
# different bytes, and a begin line with neither, so the blocks found are the same.
_BLOCK = re.compile(rb"(?m)^begin[ \t]++([0-7]{3,6})[ \t]++([^\r\n]*+)\r?+\n"
                    rb"((?:[\x21-\x60][^\n]*+\n)*+)"      # data lines, and more
                    rb"((?:[ \t\r][^\n]*+\n|\n)*+)"     # blank lines, and more
                    rb"end[ \t]*+\r?+(?:\n|\Z)")
_BEGIN = re.compile(rb"begin")  # (a search takes a memoryview too, "in" no bytes)
# A line that may begin a block, after the line break before it (or a first line after
# a line break put before the text): a text without one holds no block.
BEGIN_LINE = re.compile(rb"\nbegin[ \t]")
_DATA_LINES = re.compile(rb"(?:[\x21-\x60][\x20-\x60]*+\r?+\n)*+")
_BLANK_LINES = re.compile(rb"(?:[ \t]*+\r?+\n)*+")
# Transfer encodings of a MIME part that is a uuencoded file (as the email package names
# them, and as mail clients send them).
ENCODINGS = ("x-uuencode", "uuencode", "x-uue", "uue")
# Characters a line of data may lack and still be exact: the blanks (zero bits) that pad
# its last group of four, which encoders that write zero as a blank leave for a mailer to
# strip.
PADDING = 2


@dataclass
class File:
    name: bytes       # as the begin line has it (its charset is the text's)
    mode: bytes       # octal, as written
    data: bytes


@dataclass
class Split:
    text: bytes | memoryview    # the input without the blocks taken (the text around them)
    files: list[File]           # the first `keep` files, in order
    more: int = 0               # files decoded and taken out past those

    @property
    def count(self) -> int:
        return len(self.files) + self.more


def split(data: bytes | memoryview, keep: int) -> Split:
    """`data` (a text part's bytes) with each uuencoded block that decodes taken out: its
    text, the first `keep` files, and how many more there were (their blocks are taken out
    of the text too, their data dropped: a hostile body of millions of tiny blocks costs
    no more memory than its own size). The text is `data` itself when no block is taken (a
    memoryview then too). Never raises but MemoryError."""
    first = _BEGIN.search(data)
    # (a begin line is sought only from the first "begin": a body of prose that says
    # "beginning" is not copied, nor read twice through)
    found = None if first is None else _BLOCK.search(data, first.start())
    if found is None:
        return Split(data, [])
    given, data = data, bytes(data)  # (a block's lines are read with bytes' own methods)
    text, files, more, taken = bytearray(), [], 0, 0
    for block in _BLOCK.finditer(data, found.start()):  # (none starts before it)
        name = block.group(2).strip()
        found = name and _is_block(block)
        content, exact = _decoded(data, *block.span(3)) if found else (None, False)
        if content is None:
            continue  # text as it was (no line of it starts another block)
        if exact:  # (else its lines stay text: see the module docstring)
            text += data[taken:block.start()]
            taken = block.end()
        if len(files) < keep:
            files.append(File(name, block.group(1), content))
        else:
            more += 1
    if not files and not more:
        return Split(given, [])
    text += data[taken:]
    return Split(bytes(text), files, more)


def _is_block(block: re.Match) -> bool:
    """Whether a match of _BLOCK is a block: its lines after the begin line are lines of
    data, then blank lines (see _BLOCK for why they are checked apart)."""
    data = block.string
    return bool(_DATA_LINES.fullmatch(data, *block.span(3))
                and _BLANK_LINES.fullmatch(data, *block.span(4)))


def first_file(data: bytes) -> File | None:
    """The first file in `data` that decodes whole (a part encoded x-uuencode), or None."""
    found = split(data, 1)
    return found.files[0] if found.files else None


def decode(data: bytes) -> bytes:
    """What a part of transfer encoding x-uuencode stands for: its first file's data; `data`
    itself when no block in it decodes (its text is not lost). Never raises but
    MemoryError."""
    found = first_file(data)
    return found.data if found is not None else data


def _decoded(data: bytes, start: int, end: int) -> tuple[bytes | None, bool]:
    """(the data the lines of a block (`data[start:end]`, whole lines) stand for, whether
    every line was as long as its length character says); (None, False) when one of them
    is no line of data, or there is none (a begin line of prose, a blank line and "end":
    no file). Line by line, never a copy of them all."""
    if start == end:
        return None, False
    content, exact = bytearray(), True
    while start < end:
        line_end = data.index(b"\n", start, end)
        line = data[start:line_end].rstrip()
        decoded = _line(line)
        if decoded is None:
            return None, False
        # (as it came: blanks an encoder wrote for zero bits count; only a line end goes)
        exact = exact and len(data[start:line_end].rstrip(b"\r")) + PADDING >= \
            _full_length(line)
        content += decoded
        start = line_end + 1
    return bytes(content), exact


def _line(line: bytes) -> bytes | None:
    """The bytes a line of data stands for, or None when it is no such line. A line may be
    shorter than its length character says (a mailer stripped the blanks, which stand for
    zero bits, at its end) and one character longer (some encoders add a checksum); a
    longer one is no line of data (its characters would be lost)."""
    full = _full_length(line)
    if len(line) > full + 1:
        return None
    try:
        return binascii.a2b_uu(line[:full])
    except binascii.Error:
        return None


def _full_length(line: bytes) -> int:
    """The characters a line of data has, its length character's count of bytes encoded
    (four characters for each three bytes, the last three padded) and itself."""
    return 1 + (((line[0] - 32) & 63) + 2) // 3 * 4
