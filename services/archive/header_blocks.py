"""Header blocks bounded for parsing: a sender who pads a header block with millions of
field lines (RFC 5322 sets no limit on their number) must not hide the body after them.

The parser (services.archive.mimetree, the stdlib's feedparser) keeps every field of a
block as Python strings, some 170 bytes a line: 3 million lines of `X-Pad: n` (46 MB)
took more than an extraction worker's 512 MB, and the fallback, which parses only the
message's first megabytes, then held nothing but header, so the body was not searchable.
bounded() gives the parser at most HEADER_LINES_LIMIT header lines in all, the MIME fields
the parser acts on kept from past the cut, and every body whole. What is stored is never
changed; the fields the access check reads come from mime.header_block, bounded already.

A header block here is what the feedparser reads as one: from its start, the lines that
are header fields or their continuation lines (headerRE's syntax, RFC 5322 2.2 and the
obsolete white space before the colon of 4.5.3), up to the first line that is not. Blocks
start at the message's start, after each delimiter line of a multipart's boundary (RFC
2046 5.1.1), and after the block of a message/* part (the inner message's own header).
"""
from __future__ import annotations

import re
from typing import Iterator

# Lines of all the header blocks of one message together, fields and continuation lines:
# the parser's cost grows with their number (some 170 bytes a field line), not with
# their length (a To: of 60,000 addresses on one line is one string). Real blocks have
# tens of lines; a recipient list folded one address a line, tens of thousands.
HEADER_LINES_LIMIT = 200_000
# A MIME field kept from past the cut: its first lines up to this many bytes (its type and
# parameters; mime.PARAMETER_HEADER_LIMIT reads no more of it).
KEPT_FIELD_LIMIT = 16 * 1024
# Blocks walked in one message: each is a few finds; a message of more parts than this is
# bounded in its first ones only.
MAX_BLOCKS = 100_000


_FOLDED = rb"[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*"  # a field's value, with its continuation lines
# A line that is neither a header field nor a continuation line: where a block ends.
_NOT_HEADER_LINE = re.compile(rb"^(?![!-9;-~]+[ \t]*:|[ \t])", re.MULTILINE)
# A line that starts a field (not a continuation line).
_FIELD_START = re.compile(rb"^[!-9;-~]+[ \t]*:", re.MULTILINE)
# The fields the parser acts on: a part's type, boundary, encoding, file name.
_MIME_FIELD = re.compile(rb"^(content-[!-9;-~]*|mime-version)[ \t]*:" + _FOLDED + rb"(?:\r?\n)?",
                         re.MULTILINE | re.IGNORECASE)
_CONTENT_TYPE = re.compile(rb"^content-type[ \t]*:[ \t]*([!-~]+?/[!-~]+?)[ \t]*(?:;|\r?\n|$)("
                           + _FOLDED + rb")", re.MULTILINE | re.IGNORECASE)
# The feedparser also ends a line at a lone CR; the walk reads a copy with each lone CR
# made a LF (same length, so every position holds in both), where re's `^` finds them.
_LONE_CR = re.compile(rb"\r(?!\n)")
_LINE_END = re.compile(rb"\r?\n")
LONE_CR_CHUNK = 1 << 20
_BOUNDARY = re.compile(rb'(?i)(?:^|[;\s])boundary[ \t]*=[ \t]*(?:"([^"\r\n]{1,70})"'
                       rb'|([^\s;"]{1,70}))')
# Spaces and tabs a delimiter line may carry after the delimiter (RFC 2046's transport
# padding) before this parser stops looking for its end.
PADDING_LIMIT = 200


def bounded(raw: bytes) -> bytes:
    """`raw` (bytes of an RFC 5322 message) with its header blocks holding at most
    HEADER_LINES_LIMIT lines together: the block that reaches the limit, and each after
    it, cut at the last field start within the limit, keeping from past the cut the first
    field of each MIME name (Content-*, MIME-Version: the one the parser uses), at most
    KEPT_FIELD_LIMIT bytes of it. For parsing only. Returns `raw` itself when its blocks
    are within the limit (always for a message of fewer lines). Never raises but
    MemoryError."""
    if raw.count(b"\n") + raw.count(b"\r") <= HEADER_LINES_LIMIT:
        return raw
    lines = _lone_crs_as_line_feeds(raw) if _LONE_CR.search(raw) else raw
    pieces, done, budget = [], 0, HEADER_LINES_LIMIT
    for start, end in _blocks(lines):
        count = lines.count(b"\n", start, end)
        if count > budget:
            cut = _last_field_start(lines, start, _line_start(lines, start, budget))
            pieces += [raw[done:cut], *_mime_fields(lines, raw, cut, end)]
            done = end
        budget = max(0, budget - count)
    return b"".join([*pieces, raw[done:]]) if pieces else raw


def _lone_crs_as_line_feeds(raw: bytes) -> bytes:
    """`raw` with each lone CR made a LF, a megabyte at a time: one re.sub over millions of
    lone CRs holds a piece for each until it joins them (600 MB for 3 million)."""
    pieces, start = [], 0
    while start < len(raw):
        end = min(len(raw), start + LONE_CR_CHUNK)
        while raw.endswith(b"\r", 0, end) and end < len(raw):
            end += 1  # a CR at the chunk's end is lone or not by the byte after it
        pieces.append(_LONE_CR.sub(b"\n", raw[start:end]))
        start = end
    return b"".join(pieces)


def _blocks(lines: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each header block, in order: the message's, then depth first."""
    regions, walked = [(0, len(lines))], 0
    while regions and walked < MAX_BLOCKS:
        start, limit = regions.pop()
        end = _block_end(lines, start, limit)
        walked += 1
        yield start, end
        regions += reversed(list(_inner_regions(lines, start, end, limit)))


def _line_start(lines: bytes, start: int, count: int) -> int:
    """Where the line `count` lines after the one at `start` starts."""
    for _ in range(count):
        start = lines.find(b"\n", start) + 1
    return start


def _block_end(raw: bytes, start: int, limit: int) -> int:
    found = _NOT_HEADER_LINE.search(raw, start, limit)
    return found.start() if found else limit


def _inner_regions(raw: bytes, start: int, end: int, limit: int) -> Iterator[tuple[int, int]]:
    """Where the blocks inside this block's body start, each with the end of its part."""
    content_type = _CONTENT_TYPE.search(raw, start, end)
    if content_type is None:
        return
    kind = content_type.group(1).lower()
    if kind.startswith(b"message/") and kind != b"message/delivery-status":
        yield _after_blank_line(raw, end), limit
    elif kind.startswith(b"multipart/"):
        boundary = _BOUNDARY.search(content_type.group(2))
        if boundary is not None:
            yield from _parts(raw, b"--" + (boundary.group(1) or boundary.group(2)), end, limit)


def _parts(raw: bytes, delimiter: bytes, start: int, limit: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each body part: after a delimiter line, up to the next one."""
    lines = list(_delimiter_lines(raw, delimiter, start, limit))
    for (_, line_end, close), (following, _, _) in zip(lines, [*lines[1:], (limit, 0, 0)]):
        if not close:
            yield line_end, following


def _delimiter_lines(raw: bytes, delimiter: bytes, start: int,
                     limit: int) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is the close delimiter) of each delimiter line, as the feedparser
    matches them: the delimiter at a line's start, "--" for the close one, then only
    spaces and tabs (at most PADDING_LIMIT) to the line's end. Each look is bounded, so
    a line holding the delimiter a million times costs a million short looks."""
    at = raw.find(delimiter, start, limit)
    while at >= 0:
        after = at + len(delimiter)
        window = min(limit, after + PADDING_LIMIT)
        line_end = _LINE_END.search(raw, after, window)
        end = line_end.end() if line_end else (limit if window == limit else -1)
        rest = raw[after:window if end < 0 else end]
        close = rest.startswith(b"--")
        if end >= 0 and _starts_line(raw, at) and not rest[2 * close:].strip(b" \t\r\n"):
            yield at, end, close
        at = raw.find(delimiter, after, limit)


def _starts_line(raw: bytes, at: int) -> bool:
    return at == 0 or raw[at - 1] == 0x0A


def _after_blank_line(raw: bytes, end: int) -> int:
    """Past the empty line that ends a block (if it is one), where the body starts."""
    line_end = _LINE_END.match(raw, end)
    return line_end.end() if line_end else end


def _mime_fields(lines: bytes, raw: bytes, start: int, end: int) -> Iterator[bytes]:
    """The first field of each MIME name in the block's lines from `start` to `end`, at
    most KEPT_FIELD_LIMIT bytes of each (cut at a line's end). Found in `lines`, taken
    from `raw`."""
    names = set()
    for field in _MIME_FIELD.finditer(lines, start, end):
        name = field.group(1).lower()
        if name not in names:
            names.add(name)
            yield raw[field.start():_field_head_end(lines, field.start(), field.end())]


def _last_field_start(lines: bytes, start: int, limit: int) -> int:
    """The last start of a field at or before `limit` (a line's start): a prefix of a
    field is another field, so the one the limit cuts is left out whole; `start` if the
    block holds none."""
    if _FIELD_START.match(lines, limit):
        return limit
    last = start
    for field in _FIELD_START.finditer(lines, start, limit):
        last = field.start()
    return last


def _field_head_end(lines: bytes, start: int, end: int) -> int:
    """Where a field kept whole or cut ends: at most KEPT_FIELD_LIMIT bytes on, at a line's
    end (a field of one line longer than that is cut in its line)."""
    if end - start <= KEPT_FIELD_LIMIT:
        return end
    line_end = lines.rfind(b"\n", start, start + KEPT_FIELD_LIMIT)
    return line_end + 1 if line_end >= 0 else start + KEPT_FIELD_LIMIT
