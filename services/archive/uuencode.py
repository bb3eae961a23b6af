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
into a block (_BLOCK), and each block's lines are decoded once. A block has no line of more
than LINE_CAP bytes.

A large part is split a piece at a time (split_pieces, text_pieces, FoundBlock.pieces),
never held whole: its blocks are found line by line in the pieces its source gives, each
file's size, SHA-256 and first bytes computed as it is decoded; its text and its files'
data are read again from the source when they are wanted. The blocks found and taken out
are split()'s.
"""
from __future__ import annotations

import binascii
import hashlib
import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

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
# The longest line a block may have, its line end included: the pieces of a large part are
# read a line at a time (split_pieces), and a line of tens of megabytes (a body of one
# line) is not held to be read as one; split() takes no block with a longer line either,
# so both agree. A begin line's name may be long (a megabyte is read: its first
# mime.PARAMETER_HEADER_LIMIT bytes name the file).
LINE_CAP = 4 << 20
# A line of a block as split_pieces reads it, whole (its LF included; an end line may end
# the input without one): a begin line (_BLOCK's, checked as _is_block checks a block's
# data and blank lines), an end line.
_BEGIN_LINE = re.compile(rb"begin[ \t]++([0-7]{3,6})[ \t]++([^\r\n]*+)\r?+\n")
_END_LINE = re.compile(rb"end[ \t]*+\r?+\n?")
_DATA_LINE = re.compile(rb"[\x21-\x60][\x20-\x60]*+\r?+\n")
_BLANK_LINE = re.compile(rb"[ \t]*+\r?+\n")
# Decoded data is digested and handed on in pieces of about this many bytes.
_PIECE_BYTES = 1 << 16
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
                and _BLANK_LINES.fullmatch(data, *block.span(4))
                and _within_line_cap(block))


def _within_line_cap(block: re.Match) -> bool:
    """Whether a match of _BLOCK's begin line, blank lines and end line are each of
    LINE_CAP bytes at most (its data lines are checked as they are decoded: _decoded)."""
    if block.start(3) - block.start() > LINE_CAP or block.end() - block.end(4) > LINE_CAP:
        return False
    data, start, end = block.string, *block.span(4)
    while start < end:
        line_end = data.index(b"\n", start, end) + 1
        if line_end - start > LINE_CAP:
            return False
        start = line_end
    return True


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
        if line_end + 1 - start > LINE_CAP:
            return None, False
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


# A part's bytes as pieces: each call gives a new iterator over them from the start.
Source = Callable[[], Iterable[bytes]]


@dataclass
class FoundBlock:
    """A file split_pieces found: its begin line's name and mode, where its lines of data
    are in its source's bytes (offsets, whole lines), and what its data is: its size in
    bytes, SHA-256 (hex) and first `head` bytes; its data itself is read again from its
    source (pieces, data)."""
    name: bytes
    mode: bytes
    data_start: int
    data_end: int
    size: int
    sha256_hex: str
    head: bytes
    source: Source = field(repr=False, compare=False)

    def pieces(self) -> Iterator[bytes]:
        """The file's data, decoded a piece (of about _PIECE_BYTES) at a time."""
        lines = _lines(_pieces_from(self.source(), self.data_start))
        decoded = bytearray()
        for offset, line in lines:  # (offsets from data_start)
            if offset >= self.data_end - self.data_start:
                break
            decoded += _line(line.rstrip())  # (it decoded when it was found)
            if len(decoded) >= _PIECE_BYTES:
                yield bytes(decoded)
                decoded.clear()
        if decoded:
            yield bytes(decoded)

    def data(self) -> bytes:
        """The file's data whole (size bytes)."""
        return b"".join(self.pieces())


@dataclass
class PiecesSplit:
    """split() of a source read a piece at a time (split_pieces): the blocks taken out of
    its text, as offsets (start, end, start, end...: text_pieces reads the text without
    them), the first `keep` files, and how many more there were."""
    taken: array = field(default_factory=lambda: array("q"))
    files: list[FoundBlock] = field(default_factory=list)
    more: int = 0

    @property
    def count(self) -> int:
        return len(self.files) + self.more


def split_pieces(source: Source, keep: int, head_bytes: int) -> PiecesSplit:
    """split() of the bytes `source`'s pieces join to, read one pass through them and a
    line (of LINE_CAP bytes at most) at a time, never whole: the same blocks taken, and the
    same files found, each as a FoundBlock with its first `head_bytes`. Holds a line, a
    piece of a file's data and two offsets a block taken (consecutive blocks share theirs).
    Never raises but MemoryError."""
    found, block = PiecesSplit(), None
    for offset, line in _lines(source()):
        if block is not None and not block.read(line):
            if block.ended:
                _taken(found, block, offset + len(line), source, keep)
                block = None
                continue
            block = None  # (this line is read again: it may begin a block)
        begin = _BEGIN_LINE.fullmatch(line) if block is None and line is not None else None
        if begin is not None:
            block = _Block(offset, begin, len(found.files) < keep, head_bytes)
    return found


def _taken(found: PiecesSplit, block: _Block, end: int, source: Source, keep: int) -> None:
    """Adds a block read to its end line (its lines end at `end`) to `found`, if it is one
    split() takes (it has a name, its lines are exact lines and decode)."""
    if not block.valid or block.data_end is None:
        return  # (text as it was)
    if block.exact:
        if found.taken and found.taken[-1] == block.start:
            found.taken[-1] = end
        else:
            found.taken.extend((block.start, end))
    if len(found.files) < keep:
        found.files.append(block.found(source))
    else:
        found.more += 1


class _Block:
    """A block being read by split_pieces, from its begin line on: its lines of data
    checked and decoded as they come (the file's size, SHA-256 and head kept when it is
    one of the files to keep), then its blank lines, then its end line."""

    def __init__(self, start: int, begin: re.Match, keeps: bool, head_bytes: int):
        self.start, self.mode, self.name = start, begin.group(1), begin.group(2).strip()
        self.valid, self.exact, self.ended = bool(self.name), True, False
        self.data_start = start + len(begin.group())
        self.data_end: int | None = None  # (after its last line of data, when it has one)
        self.blank = False  # (past its lines of data)
        self.keeps, self.head_bytes = keeps, head_bytes
        self.size, self.digest, self.head, self.held = 0, hashlib.sha256(), b"", bytearray()
        self.offset = self.data_start  # of the next line

    def read(self, line: bytes | None) -> bool:
        """Reads the next line (None: longer than LINE_CAP); False when it is not one of the
        block's lines before its end: its end line (self.ended), or a line that ends the
        block unended (no block: its lines are text)."""
        if line is None or not line.endswith(b"\n"):
            self.ended = line is not None and _END_LINE.fullmatch(line) is not None
            return False
        first = line[0]
        if not self.blank and 0x21 <= first <= 0x60:
            self._read_data(line)
        elif first in b" \t\r\n":
            self.blank = True
            self.valid = self.valid and _BLANK_LINE.fullmatch(line) is not None
        else:
            self.ended = _END_LINE.fullmatch(line) is not None
            return False
        self.offset += len(line)
        return True

    def _read_data(self, line: bytes) -> None:
        self.data_end = self.offset + len(line)
        if not self.valid or not _DATA_LINE.fullmatch(line):
            self.valid = False
            return
        stripped = line.rstrip()
        decoded = _line(stripped)
        if decoded is None:
            self.valid = False
            return
        # (as split's _decoded: blanks an encoder wrote for zero bits count)
        self.exact = self.exact and len(line[:-1].rstrip(b"\r")) + PADDING >= \
            _full_length(stripped)
        self.size += len(decoded)
        if self.keeps:
            self._keep(decoded)

    def _keep(self, decoded: bytes) -> None:
        if len(self.head) < self.head_bytes:
            self.head += decoded[:self.head_bytes - len(self.head)]
        self.held += decoded
        if len(self.held) >= _PIECE_BYTES:
            self.digest.update(self.held)
            self.held.clear()

    def found(self, source: Source) -> FoundBlock:
        self.digest.update(self.held)
        return FoundBlock(self.name, self.mode, self.data_start, self.data_end, self.size,
                          self.digest.hexdigest(), self.head, source)


def text_pieces(pieces: Iterable[bytes], taken: array) -> Iterator[bytes]:
    """The bytes `pieces` join to without the spans `taken` (offsets start, end, start,
    end..., in order: PiecesSplit.taken), a piece (what is left of one) at a time."""
    spans = iter(taken)
    start, end = next(spans, None), next(spans, None)
    at = 0  # the offset of the piece
    for piece in pieces:
        kept, position, piece_end = [], at, at + len(piece)
        while start is not None and start < piece_end:
            kept.append(piece[max(0, position - at):max(0, start - at)])
            position = max(position, min(end, piece_end))
            if end > piece_end:
                break
            start, end = next(spans, None), next(spans, None)
        kept.append(piece[position - at:])
        text = b"".join(kept)
        if text:
            yield text
        at = piece_end


def _pieces_from(pieces: Iterable[bytes], start: int) -> Iterator[bytes]:
    """The pieces from offset `start` of the bytes they join to on (the first cut there)."""
    at = 0
    for piece in pieces:
        if at + len(piece) > start:
            yield piece[max(0, start - at):]
        at += len(piece)


def _lines(pieces: Iterable[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(offset, line) for each line of the bytes `pieces` join to: its bytes, the LF that
    ends it included (the last line may have none), or None for a line of more than
    LINE_CAP bytes (it is not held)."""
    offset, held, held_bytes = 0, [], 0  # the start of the line being read, its bytes
    for piece in pieces:
        *ended, last = piece.split(b"\n")
        for part in ended:
            length = held_bytes + len(part) + 1
            yield offset, (None if length > LINE_CAP else
                           b"".join((*held, part, b"\n")) if held else part + b"\n")
            offset, held, held_bytes = offset + length, [], 0
        held_bytes += len(last)
        if last and held_bytes <= LINE_CAP:
            held.append(last)
        elif held_bytes > LINE_CAP:
            held = []
    if held_bytes:
        yield offset, None if held_bytes > LINE_CAP else b"".join(held)
