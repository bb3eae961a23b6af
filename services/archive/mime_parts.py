"""MIME parts bounded for parsing: a sender who writes a multipart of millions of tiny body
parts (RFC 2046 sets no limit on their number) must not run the parser out of memory.

The parser (services.archive.mimetree, the stdlib's feedparser) makes a Message of every
body part, some 300 bytes each however small the part: 1.6 million parts of a few bytes
(16 MB) took more than an extraction worker's 512 MB, and the fallback, which parses only
the message's first megabytes, never reached the last parts, whose text was then not
searchable. bounded() gives the parser at most MAX_PARTS parts, none nested deeper than
MAX_DEPTH (a part's parts are deeper): a part too deep becomes a text/plain part of its
own lines (its parts' too), the parts beside it staying parts; the body parts after the
last one kept, up to the outermost multipart's close delimiter, become the text of one
text/plain part in their place (their header and body lines, without the delimiter
lines); and the parsed message says how many were not parsed (PartsNotParsed). What is
stored is never changed.

Parts are counted in the order the parser reads them (the message, then depth first: each
body part of a multipart, the message inside a message/* part), with the walk of
services.archive.header_blocks, which reads types, boundaries, delimiter lines, preambles
and epilogues as the parser does.
"""
from __future__ import annotations

import re
from email import errors
from typing import Iterator

from services.archive import header_blocks, mimetree

# Parts of one message the parser gets, at most: real mail has tens; a digest of a
# mailing list's month, hundreds; a journal report, a few. Some 4 MB of the parser's
# memory, and well under the extraction worker's time limit.
MAX_PARTS = 10_000
# Levels of parts (multipart or message/*; the message is the first), at most: a part
# is read at most mimetree.MAX_DEPTH levels below the message, as the fast parser takes
# it. Past it the feedparser parsed
# alone, matching every line against every enclosing boundary (a chain of 200 nested
# multiparts in 19 MB took it 110 s) and recursing a level for each (past some 900 it ran
# out of Python's recursion). Real mail nests a few levels; forwarded forwards, tens.
MAX_DEPTH = mimetree.MAX_DEPTH
# The header of the part that holds the text of the parts past MAX_PARTS: its charset is
# left to be found (services.archive.charsets), as for any unlabelled text.
REST_TYPE = b"Content-Type: text/plain"
REST_HEADER = REST_TYPE + b"\r\n\r\n"
REST_CHUNK = 1 << 20
# A delivery status (RFC 3464) is blocks, each a part to the parser: a message that may
# have one is walked whatever its delimiter lines.
_STATUS = re.compile(rb"(?i)delivery-status")


class PartsNotParsed(errors.MessageDefect):
    """MIME parts past MAX_PARTS or deeper than MAX_DEPTH were not parsed as parts;
    `count`: how many at least (one for each too deep part; past MAX_PARTS, the part cut
    and the delimiter lines, not close ones, of the multiparts open there, after it; of a
    message that is itself a delivery status, its MAX_PARTS blocks). Their text is text
    parts'."""

    def __init__(self, count: int):
        super().__init__(f"MIME parts past the first {MAX_PARTS} or nested deeper than "
                         f"{MAX_DEPTH} not parsed ({count} at least)")
        self.count = count


def bounded(raw: bytes) -> tuple[bytes, int]:
    """(`raw` for the parser, the count of parts not parsed): `raw` itself and 0 when the
    parser reads at most MAX_PARTS parts of it, none deeper than MAX_DEPTH (always for a
    message of fewer than MAX_DEPTH lines starting "--" and no delivery status: a
    multipart's parts are one deeper, and each follows a delimiter line). Else `raw` with
    each part deeper than MAX_DEPTH (the outermost of its subtree) a text/plain part of its
    text, its header's and its parts' lines, and with the rest from the first part past
    MAX_PARTS on cut as _with_rest_as_text says; a message that is itself a delivery
    status of more blocks than that, with its body one text/plain part. For parsing only.
    Never raises but MemoryError."""
    if raw.count(b"\n--") + raw.count(b"\r--") < MAX_DEPTH and not _STATUS.search(raw):
        return raw, 0
    lines = header_blocks.lines_of(raw)
    too_deep, rest = _unparsed(lines)
    if rest is not None and rest[0] == 0:  # the message itself is the delivery status
        return _status_as_text(raw, lines), MAX_PARTS
    if not too_deep and rest is None:
        return raw, 0
    kept = _with_too_deep_as_text(raw, lines, too_deep, len(raw) if rest is None else rest[0])
    if rest is None:
        return bytes(kept), len(too_deep)
    skipped = _with_rest_as_text(kept, raw, lines, *rest)
    return bytes(kept), len(too_deep) + skipped


def _unparsed(lines: bytes) -> tuple[list[tuple[int, int]], tuple[int, list] | None]:
    """([(start, end) of each part deeper than MAX_DEPTH, the outermost of its subtree],
    in order; (where the block of the first part past MAX_PARTS starts, the multiparts
    open there, outermost first: header_blocks.Parts) or None when there is no such part).
    A too deep part's subtree is not walked: it is text, and the parts beside it, at
    allowed depths, are still parts (counted). The blocks of a delivery status (RFC 3464)
    count, but are never where the cut is (nor walked once MAX_PARTS are counted): the
    cut is at the part holding them, and is (0, []) when that part is the message itself."""
    pending: list = [iter([(0, len(lines), "text/plain", False)])]
    count, status, too_deep = 0, None, []
    while pending:
        entry = next(pending[-1], None)
        if entry is None:
            pending.pop()
            continue
        start, limit, default, in_status = entry
        count += 1
        if not in_status and count > MAX_PARTS:
            return too_deep, (start, _open_parts(pending))
        if not in_status and len(pending) > MAX_DEPTH:
            too_deep.append((start, limit))
            continue
        if in_status:
            pending.pop()  # (its one block: the next one replaces it, not nested in it)
            if count > MAX_PARTS:
                return too_deep, status  # the delivery status part is cut, blocks and all
        inner = _inner(lines, start, limit, default, in_status)
        if inner is not None and inner[1]:
            # Each block of a delivery status is a part to the parser: past MAX_PARTS the
            # part holding them is where the cut is (a block cannot hold the rest as text:
            # the parser reads the blocks after it as blocks).
            status = (start, _open_parts(pending))
        if inner is not None:
            pending.append(inner[0])
    return too_deep, None


def _inner(lines: bytes, start: int, limit: int, default: str,
           in_status: bool) -> tuple[Iterator, bool] | None:
    """(the entries of the blocks within the part whose block starts at `start`:
    header_blocks.inner_blocks, whether they are a delivery status's first block), or
    None when it has none."""
    end = header_blocks.block_end(lines, start, limit)
    inner = header_blocks.inner_blocks(lines, start, end, limit, default, in_status)
    if inner is None or in_status or isinstance(inner, header_blocks.Parts):
        return None if inner is None else (inner, False)
    inner = list(inner)  # (a message/* part's one: its message, or its first block)
    return iter(inner), bool(inner) and inner[0][3]


def _open_parts(pending: list) -> list:
    return [each for each in pending if isinstance(each, header_blocks.Parts)]


def _with_too_deep_as_text(raw: bytes, lines: bytes, too_deep: list[tuple[int, int]],
                           until: int) -> bytearray:
    """`raw` up to `until` with each part of `too_deep` ((start, end), in order, before
    `until`) a text/plain part of its lines. Their regions hold no delimiter line of an
    enclosing multipart: the walk ends a part at the first. Taken from `lines` (a lone CR
    there is a LF: the same text)."""
    kept, done, view = bytearray(), 0, memoryview(raw)
    for start, end in too_deep:
        kept += view[done:start]
        kept += REST_HEADER
        kept += memoryview(lines)[start:end]
        done = end
    kept += view[done:until]
    return kept


def _status_as_text(raw: bytes, lines: bytes) -> bytes:
    """`raw` with its Content-Type field (the first, the one the parser reads) saying
    text/plain: a message that is itself a delivery status of more than MAX_PARTS blocks
    is read as the text of its blocks, its header whole (its other fields as they are)."""
    found = header_blocks.content_type_field(lines, 0, header_blocks.block_end(lines, 0,
                                                                               len(lines)))
    if found is None:  # (not a delivery status to the parser: the walk reads it as it)
        return raw
    return raw[:found[0]] + REST_TYPE + raw[found[1]:]


def _with_rest_as_text(kept: bytearray, raw: bytes, lines: bytes, start: int,
                       open_parts: list) -> int:
    """Adds to `kept` (`raw` up to `start`) the rest from `start`, where the first part
    past MAX_PARTS starts: a text/plain part of the text from there to the outermost open
    multipart's close delimiter (the delimiter lines of the multiparts open there left
    out), a close delimiter for each of those multiparts, and the rest of `raw`; returns
    how many parts that leaves unparsed, at least (the part cut, and the delimiter lines,
    not close ones, after it). The rest's text is taken from `lines` (a lone CR there is
    a LF: the same text)."""
    end, closed = _outermost_close(lines, start, open_parts)
    kept += REST_HEADER
    skipped = 1 + _without_delimiter_lines(lines, start, end, open_parts, kept)
    if kept[-1:] != b"\n":
        kept += b"\r\n"
    for multipart in reversed(open_parts[1:] if closed else open_parts):
        kept += multipart.delimiter + b"--\r\n"
    kept += memoryview(raw)[end:]
    return skipped


def _without_delimiter_lines(lines: bytes, start: int, end: int, open_parts: list,
                             kept: bytearray) -> int:
    """Adds to `kept` the lines from `start` to `end` but the delimiter lines of
    `open_parts`, a chunk of about REST_CHUNK bytes at a time (one re.sub over millions
    of delimiter lines holds a piece for each until it joins them); returns how many of
    them were not close delimiters."""
    if not open_parts:
        kept += lines[start:end]
        return 0
    delimiters = [multipart.delimiter for multipart in open_parts]
    any_line, close_line = _delimiter_line(delimiters), _delimiter_line(delimiters, True)
    count = 0
    while start < end:
        chunk_end = lines.find(b"\n", min(end, start + REST_CHUNK) - 1, end) + 1 or end
        chunk = lines[start:chunk_end]
        closes = len(close_line.findall(chunk))
        chunk, found = any_line.subn(b"", chunk)
        kept += chunk
        count += found - closes
        start = chunk_end
    return count


def _delimiter_line(delimiters: list[bytes], close: bool | None = None) -> re.Pattern:
    """A whole delimiter line of any of `delimiters` ("--" + boundary), as the feedparser's
    boundaryre reads it (close delimiters only if `close`), in text whose line ends are
    CR LF or LF (header_blocks.lines_of)."""
    names = b"|".join(re.escape(delimiter) for delimiter in dict.fromkeys(delimiters))
    tail = rb"--" if close else rb"(?:--)?"
    return re.compile(rb"^(?:" + names + rb")" + tail + rb"[ \t]*(?:\r?\n|\Z)", re.MULTILINE)


def _outermost_close(lines: bytes, start: int, open_parts: list) -> tuple[int, bool]:
    """(where the outermost open multipart's close delimiter line after `start` starts,
    True), or (the end of its region, False) when it has none; (the end, False) when no
    multipart is open (the part past MAX_PARTS is a message/* part's message)."""
    if not open_parts:
        return len(lines), False
    outermost, after_delimiter = open_parts[0], None
    for at, line_end, close in header_blocks.delimiter_lines(lines, outermost.delimiter,
                                                             start, outermost.limit):
        if close and at != after_delimiter:  # (right after one, the parser skips it)
            return at, True
        after_delimiter = line_end
    return outermost.limit, False
