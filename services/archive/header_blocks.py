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
import secrets
from email.message import Message
from email.policy import compat32
from typing import Iterator

from services.archive import media_types

# Lines of all the header blocks of one message together, fields and continuation lines:
# the parser's cost grows with their number (some 170 bytes a field line), not with
# their length (a To: of 60,000 addresses on one line is one string). Real blocks have
# tens of lines; a recipient list folded one address a line, tens of thousands.
HEADER_LINES_LIMIT = 200_000
# A MIME field kept from past the cut: its first lines up to this many bytes (its type and
# parameters; mime.PARAMETER_HEADER_LIMIT reads no more of it).
KEPT_FIELD_LIMIT = 16 * 1024
# The fields the message's summary reads (services.archive.mime.summarize_message: its
# addresses, subject, date, Message-ID; a forwarded message's From, To and Subject), kept
# from past the cut too, at most this many bytes of each: a To of 250,000 addresses folded
# one a line was cut out whole, and the Subject after it with it (neither was searchable).
SUMMARY_FIELDS = (b"from", b"to", b"cc", b"bcc", b"resent-to", b"resent-cc", b"resent-bcc",
                  b"subject", b"date", b"message-id")
KEPT_SUMMARY_FIELD_LIMIT = 1024 * 1024
# Lines of a kept field, at most: the parser holds each line of a block while it reads it
# (a megabyte of "\tx" continuation lines is 330,000 of them).
KEPT_FIELD_LINES = 10_000
# Blocks walked in one message: each is a few finds; a message of more parts than this is
# bounded in its first ones only.
MAX_BLOCKS = 100_000


# A field's value, with its continuation lines. Its repeats are possessive: Python's re
# keeps a backtracking record of some 180 bytes for each repeat of a greedy group (a Subject
# folded into 2.7 million lines took 550 MB). Python 3.11.2's possessive repeat of a group
# does not restore the position when a try of the group fails after a repeat inside it
# has run (CPython gh-106052, gh-100061): each try here fails, if it does, in its first
# three characters, before its one inner repeat. tests/unit/archive/test_regex_repeats.py
# checks each such pattern against its greedy form.
_FOLDED = rb"[^\r\n]*+(?:\r\n[ \t][^\r\n]*+|\n[ \t][^\r\n]*+)*+"
# A line that is neither a header field nor a continuation line: where a block ends. As the
# feedparser's headerRE reads a block, a "From " line (a misplaced envelope line, ignored)
# and a line of an empty name and a colon (":x", ignored) do not end it: padding after
# one still reaches the parser.
_NOT_HEADER_LINE = re.compile(rb"^(?!From |:|[!-9;-~]+[ \t]*:|[ \t])", re.MULTILINE)
# A run of SHORT_RUN or more header lines (fields and continuation lines), matched
# possessively: a run is matched from its first line, never again from within it. Runs
# of fewer lines are not counted: each is a block of its own, so a message has to have a
# part for each (some 340 bytes of the parser's memory, as much as the fields it has).
SHORT_RUN = 3
_HEADER_RUN = re.compile(rb"(?:^(?:From |:|[!-9;-~]+[ \t]*:|[ \t])[^\n]*\n?){%d,}+" % SHORT_RUN,
                         re.MULTILINE)
# A line that starts a field (not a continuation line).
_FIELD_START = re.compile(rb"^(?:From |:|[!-9;-~]+[ \t]*:)", re.MULTILINE)
# The fields the parser acts on: a part's type, boundary, encoding, file name.
# Named, not any Content-*: a block of 3 million fields of distinct names (Content-Pad-1,
# Content-Pad-2...) kept them all, and the parser got the whole padding.
MIME_FIELDS = (b"content-type", b"content-transfer-encoding", b"content-disposition",
               b"content-id", b"content-description", b"content-location", b"mime-version")
# The header field services.archive.mime_parts adds to a body part that came x-uuencode
# (or another of its names) and is given to the parser in base64 past its LINE_CHECKS:
# its value, that encoding; mime_parts.restored() takes it out after the parse. Its name
# holds a token this process drew, so no sender's field is one. Kept from past a cut as
# the MIME fields are: added after the sender's own fields, a part of more header lines
# than HEADER_LINES_LIMIT lost it, and read as base64 junk (its file names and words
# lost; review 166 F1).
WRAPPED_FIELD = "X-Archive-Wrapped-" + secrets.token_hex(16)
_KEPT_FIELDS = MIME_FIELDS + SUMMARY_FIELDS + (WRAPPED_FIELD.lower().encode(),)
_MIME_FIELD = re.compile(rb"^(" + b"|".join(_KEPT_FIELDS) + rb")[ \t]*:"
                         + _FOLDED + rb"(?:\r?\n)?", re.MULTILINE | re.IGNORECASE)
# A block's Content-Type field, read by the stdlib's own Message (its type, its boundary:
# RFC 2231 continuations, quoted strings, comments, any length), as the parser reads it.
_CONTENT_TYPE = re.compile(rb"^content-type[ \t]*:" + _FOLDED, re.MULTILINE | re.IGNORECASE)
# Where a Content-Type's type may say multipart or message (before its first ';').
_COMPOSITE = re.compile(rb"(?i)multipart|message")
_BLANK_LINE = re.compile(rb"^\r?\n", re.MULTILINE)
# The feedparser also ends a line at a lone CR; the walk reads a copy with each lone CR
# made a LF (same length, so every position holds in both), where re's `^` finds them.
_LONE_CR = re.compile(rb"\r(?!\n)")
_LINE_END = re.compile(rb"\r?\n")
LONE_CR_CHUNK = 1 << 20
# What follows the delimiter on a delimiter line, as the feedparser's boundaryre reads it:
# "--" for the close one, then spaces and tabs (any number), then the line's end.
_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r?\n|\Z)")
# Delimiters longer than this (RFC 2046: a boundary has at most 70 characters; the parser
# takes any) are found by bytes.find, not by a regular expression of their own: compiling
# one of a 3,300-character delimiter takes sre_compile milliseconds, and a message of
# thousands of multiparts of such boundaries took the walk 25 s (the parser, 1.5 s).
COMPILED_DELIMITER_LIMIT = 128
# Of a Content-Type field's value, what the parser's policy gives it (mime._RawHeaders,
# mime.PARAMETER_HEADER_LIMIT): its type and boundary are read from these characters only.
# The walk reads them from the same: a boundary past them (RFC 2231 "boundary*1=",
# or one the limit cuts) was another boundary to the walk than to the parser, which then
# got every one of a million parts.
CONTENT_TYPE_VALUE_LIMIT = 16 * 1024


def bounded(raw: bytes) -> bytes:
    """`raw` (bytes of an RFC 5322 message) with its header blocks holding at most
    HEADER_LINES_LIMIT lines together: the block that reaches the limit, and each after
    it, cut at the last field start within the limit, keeping from past the cut the first
    field of each name of MIME_FIELDS (the one the parser uses), SUMMARY_FIELDS and
    WRAPPED_FIELD, at most KEPT_FIELD_LIMIT (KEPT_SUMMARY_FIELD_LIMIT) bytes and
    KEPT_FIELD_LINES lines of it. For parsing only. Returns `raw` itself when its blocks are within the limit
    (always for a message of fewer lines). Never raises but MemoryError."""
    if len(raw) <= HEADER_LINES_LIMIT or line_breaks(raw) <= HEADER_LINES_LIMIT:
        return raw  # (a line break is a byte: a short message needs no count)
    lines = lines_of(raw)
    kept, done, view = bytearray(), 0, memoryview(raw)  # (no copy of each piece: there may
    for cut, end in _cuts(lines):                       # be millions, past MAX_BLOCKS)
        kept += view[done:cut]
        for field in _mime_fields(lines, raw, cut, end):
            kept += field
        done = end
    if not done:
        return raw
    kept += view[done:]
    return bytes(kept)


def line_breaks(raw: bytes) -> int:
    """The LFs and CRs in `raw` (a CRLF counts two): at most len(raw)."""
    return raw.count(b"\n") + raw.count(b"\r")


def lines_of(raw: bytes) -> bytes:
    """`raw` as the walk reads it: each lone CR a LF (_lone_crs_as_line_feeds), same length,
    so that every position holds in both; `raw` itself when it has none."""
    return _lone_crs_as_line_feeds(raw) if _LONE_CR.search(raw) else raw


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


def _cuts(lines: bytes) -> Iterator[tuple[int, int]]:
    """(where it is cut, its end) of each block cut, in order: the blocks are walked in
    order (the message's, then depth first), each counted against what the ones before it
    left of HEADER_LINES_LIMIT; a block's parts are looked for after its cut is known, so
    that a cut Content-Type field is read as the parser gets it. A multipart's parts and
    a delivery status's blocks are found as the walk reaches them: a message of millions
    of parts costs MAX_BLOCKS of them and holds none."""
    # Each entry: (start, limit, default type, in a delivery status), or an iterator of them.
    pending: list = [(0, len(lines), "text/plain", False)]
    walked, budget = 0, HEADER_LINES_LIMIT
    while pending and walked < MAX_BLOCKS:
        entry = pending.pop()
        if not isinstance(entry, tuple):
            following = next(entry, None)
            if following is None:
                continue
            pending.append(entry)
            entry = following
        start, limit, default, in_status = entry
        end = block_end(lines, start, limit)
        walked += 1
        count, cut = lines.count(b"\n", start, end), None
        if count > budget:
            cut = _last_field_start(lines, start, _line_start(lines, start, budget))
            yield cut, end
        budget = max(0, budget - count)
        inner = inner_blocks(lines, start, end, limit, default, in_status, cut)
        if inner is not None:
            pending.append(inner)
    rest, delimiters = _next_start(pending)
    if rest is not None and lines.count(b"\n", rest) > budget:
        yield from _runs_cut(lines, rest, budget, delimiters)


class Parts:
    """The blocks of a multipart's body parts (an iterator of _cuts' entries), with its
    `delimiter` ("--" + boundary) and the end of its region (`limit`): its delimiter lines
    are delimiter lines, not header lines, up to there."""

    def __init__(self, entries: Iterator[tuple], delimiter: bytes, limit: int):
        self.entries, self.delimiter, self.limit = entries, delimiter, limit
        # The delimiter lines right after another (the parser makes no part between them)
        # the last next() went past: (where the first of them starts, how many), or None.
        # services.archive.mime_parts counts them as the parser's work.
        self.run: tuple[int, int] | None = None
        # A run longer than this ends the walk of the parts (None: no limit).
        self.run_limit: int | None = None
        # (start, end) of its preamble (before its first delimiter line; None if it has
        # none) and of its epilogue (after its close delimiter line), once the walk passed
        # them.
        self.preamble: tuple[int, int] | None = None
        self.epilogue: tuple[int, int] | None = None

    def __iter__(self):
        return self

    def __next__(self) -> tuple:
        self.run = None
        return next(self.entries)

    def close(self) -> None:
        """Ends the walk of its parts where it is: its entries' generator refers back to it,
        and to the message's lines (a cycle only the collector frees, holding the lines of
        a walk left part way, #20)."""
        self.entries = iter(())


def _next_start(pending: list) -> tuple[int | None, dict[bytes, list[Parts]]]:
    """Where the first block the walk did not reach starts (None: it reached them all),
    and the multiparts open there (open_delimiters)."""
    while pending:
        entry = pending.pop()
        if isinstance(entry, tuple):
            return entry[0], open_delimiters(pending)
        following = next(entry, None)
        if following is not None:
            return following[0], open_delimiters([*pending, entry])
    return None, {}


def open_delimiters(pending: list) -> dict[bytes, list[Parts]]:
    """The multiparts among `pending` (the walk's open ones) by their delimiter without
    its trailing spaces and tabs (_delimiter_keys)."""
    found: dict[bytes, list[Parts]] = {}
    for entry in pending:
        if isinstance(entry, Parts):
            found.setdefault(entry.delimiter.rstrip(b" \t"), []).append(entry)
    return found


def _runs_cut(lines: bytes, start: int, budget: int,
              delimiters: dict[bytes, list[Parts]]) -> Iterator[tuple[int, int]]:
    """Past MAX_BLOCKS blocks (a message of more parts than the walk reads), the cuts of
    every run of header lines from `start` on, counted against the `budget` left as if it
    were a block: each of the parser's blocks there is in one, so however the parts are
    written the parser gets no more lines than the limit (a run in a body is cut too, but
    only in a message of so many parts, and only past the limit). One match a run: a
    message of 100,001 empty parts and 3 million lines of padding in the next one once
    reached the parser whole. A delimiter line of an open multiparts (`delimiters`,
    open_delimiters) within a run ends a block there and is never cut: "--a:b", of a
    boundary with a colon (RFC 2046 bchars), has a header line's syntax."""
    for run in _HEADER_RUN.finditer(lines, start):
        for block_start, block_end in _split_at_delimiters(lines, run.start(), run.end(),
                                                           delimiters):
            count = lines.count(b"\n", block_start, block_end)
            if count > budget:
                yield _last_field_start(lines, block_start,
                                        _line_start(lines, block_start, budget)), block_end
            budget = max(0, budget - count)


def _split_at_delimiters(lines: bytes, start: int, end: int,
                         delimiters: dict[bytes, list[Parts]]) -> Iterator[tuple[int, int]]:
    """(start, end) of each piece of the lines from `start` to `end` (line starts) between
    the delimiter lines of `delimiters` in them; the whole when there are none (a find of
    LF "--", the common case)."""
    piece = start
    for at in dash_line_starts(lines, start, end) if delimiters else ():
        line_end = end_of_line(lines, at, end)
        if _is_open_delimiter(lines, at, line_end, delimiters):
            if at > piece:
                yield piece, at
            piece = line_end
    if piece < end:
        yield piece, end


def dash_line_starts(lines: bytes, start: int, end: int) -> Iterator[int]:
    """Where each line from `start` (a line start) to `end` that begins with "--" starts."""
    if lines.startswith(b"--", start, end):
        yield start
    found = lines.find(b"\n--", start, end)
    while found >= 0:
        yield found + 1
        found = lines.find(b"\n--", found + 1, end)


def end_of_line(lines: bytes, at: int, end: int) -> int:
    """Where the line at `at` ends (after its LF), at most `end`."""
    found = lines.find(b"\n", at, end)
    return end if found < 0 else found + 1


def _is_open_delimiter(lines: bytes, at: int, line_end: int,
                       delimiters: dict[bytes, list[Parts]]) -> bool:
    """Whether the line from `at` to `line_end` is a delimiter line of one of the open
    multiparts whose region it lies in, as the feedparser's boundaryre reads it."""
    found = delimiter_line(lines, at, line_end, delimiters)
    return found is not None and at < found[0].limit


def delimiter_line(lines: bytes, at: int, line_end: int,
                   delimiters: dict[bytes, list[Parts]]) -> tuple[Parts, bool] | None:
    """(the multipart, whether it is the close delimiter) of which the line from `at` to
    `line_end` (with its line end) is a delimiter line, as the feedparser's boundaryre
    reads it, wherever it lies; None if it is none of `delimiters`' (open_delimiters)."""
    for key in _delimiter_keys(lines[at:line_end]):
        for multipart in delimiters.get(key, ()):
            if lines.startswith(multipart.delimiter, at):
                tail = _DELIMITER_TAIL.match(lines, at + len(multipart.delimiter), line_end)
                if tail is not None:
                    return multipart, tail.group(1) is not None
    return None


def _delimiter_keys(line: bytes) -> tuple[bytes, ...]:
    """What a delimiter line may hold as its delimiter without trailing spaces and tabs:
    the line without its end and white space, and that without a close delimiter's "--"."""
    text = line.rstrip(b"\r\n").rstrip(b" \t")
    return (text, text[:-2].rstrip(b" \t")) if text.endswith(b"--") else (text,)


def _line_start(lines: bytes, start: int, count: int) -> int:
    """Where the line `count` lines after the one at `start` starts."""
    for _ in range(count):
        start = lines.find(b"\n", start) + 1
    return start


def block_end(raw: bytes, start: int, limit: int) -> int:
    found = _NOT_HEADER_LINE.search(raw, start, limit)
    return found.start() if found else limit


def inner_blocks(lines: bytes, start: int, end: int, limit: int, default: str,
                 in_status: bool, cut: int | None = None) -> Iterator[tuple] | None:
    """The blocks read after the block from `start` to `end` (of a part ending at `limit`,
    of type `default` unless it says otherwise, `in_status`: a delivery status's block,
    `cut`: where it is cut, if it is) and within its part, as (start, limit, default
    type, in a delivery status) entries: the next block of a delivery status (after the
    next blank line), else the blocks inside its body (_inner_regions); None if none."""
    if in_status:
        blank = _BLANK_LINE.search(lines, end, limit)
        if blank is not None and blank.end() < limit:
            return iter([(blank.end(), limit, "text/plain", True)])
        return None
    return _inner_regions(lines, start, end, limit, default, cut)


def _inner_regions(lines: bytes, start: int, end: int, limit: int, default: str,
                   cut: int | None) -> Iterator[tuple] | None:
    """Where the blocks inside this block's body start, each with the end of its part, its
    default type and whether it is a delivery status's block (an iterator), or None."""
    content_type, boundary = _type_and_boundary(lines, start, end, default, cut)
    if content_type == "message/delivery-status":  # RFC 3464: header blocks, one a recipient
        return iter([(_after_blank_line(lines, end), limit, "text/plain", True)])
    if content_type.startswith("message/"):
        return iter([(_after_blank_line(lines, end), limit, "text/plain", False)])
    if content_type.startswith("multipart/") and boundary is not None:
        inner_default = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
        try:
            delimiter = b"--" + boundary.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:  # (RFC 2231 decoded) no line of the message can match it
            return None
        parts = Parts(iter(()), delimiter, limit)
        parts.entries = ((part_start, part_end, inner_default, False)
                         for part_start, part_end in _parts(lines, delimiter, end, limit, parts))
        return parts
    return None


def content_type_field(lines: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(start, end) of the first Content-Type field (the one the parser reads) of the block
    from `start` to `end`, folded lines included, its line end not; None if it has none."""
    found = _CONTENT_TYPE.search(lines, start, end)
    return None if found is None else found.span()


def _type_and_boundary(lines: bytes, start: int, end: int, default: str,
                       cut: int | None) -> tuple[str, str | None]:
    """The block's content type and boundary as the parser's Message (mime._Message) reads
    them from the first Content-Type field it gets (of a cut block's kept field, its head):
    the type media_types.media_type's, the boundary the stdlib's."""
    found = _CONTENT_TYPE.search(lines, start, end)
    if found is None:
        return default, None
    if not _COMPOSITE.search(lines, found.start(), _type_end(lines, found)):
        return "text/plain", None  # (not composite, whatever it is: the common case, fast)
    field_end = found.end()
    if cut is not None and found.start() >= cut:  # kept past the cut: its head only
        field_end = _field_head_end(lines, found.start(), field_end)
    text = lines[found.start():field_end].decode("ascii", "surrogateescape")
    message = Message(policy=compat32)  # the value as Compat32.header_source_parse makes it
    value = text.split(":", 1)[1].lstrip(" \t").rstrip("\r\n")[:CONTENT_TYPE_VALUE_LIMIT]
    message.set_raw("Content-Type", value)
    kind = media_types.media_type(value)
    try:
        return kind, message.get_boundary()
    except Exception:  # as the parser's: a boundary it cannot read is no boundary
        return kind, None


def _parts(raw: bytes, delimiter: bytes, start: int, limit: int,
           tally: Parts | None = None) -> Iterator[tuple[int, int]]:
    """(start, end) of each body part as the feedparser reads them: after a delimiter line
    and the delimiter lines right after it (close ones too: it reads a run of them as one,
    no part between), up to the next delimiter line. None after the close delimiter: the
    epilogue is text to the parser whatever lines it holds (RFC 2046 5.1.1), and none
    before a close delimiter in the preamble (the body is then text too). Each run of
    delimiter lines right after another, the preamble and the epilogue are told to
    `tally` (Parts.run, .preamble, .epilogue; past its run_limit the walk ends)."""
    part_start = None
    for at, line_end, close in delimiter_lines(raw, delimiter, start, limit):
        if tally is not None:
            if part_start is None and at > start and not close:
                tally.preamble = start, at
            if close and part_start is not None and at != part_start:
                tally.epilogue = line_end, limit
        if at == part_start:  # right after a delimiter line
            if tally is not None:
                first, count = tally.run or (at, 0)
                tally.run = first, count + 1
                if tally.run_limit is not None and count + 1 > tally.run_limit:
                    return
            part_start = line_end
            continue
        if part_start is not None:
            yield part_start, at
        if close:
            return
        part_start = line_end
    if part_start is not None:
        yield part_start, limit


def _type_end(lines: bytes, found: re.Match) -> int:
    """The end of a Content-Type field's type: its first ';', or the field's end."""
    semicolon = lines.find(b";", found.start(), found.end())
    return found.end() if semicolon < 0 else semicolon


def delimiter_lines(raw: bytes, delimiter: bytes, start: int,
                    limit: int) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is the close delimiter) of each delimiter line from `start` (a line's
    start) to `limit`, as the feedparser matches them: the delimiter at a line's start,
    "--" for the close one, then only spaces and tabs to the line's end. Found by one
    regular expression from LF and the delimiter (searched for in C as a literal): a line
    holding the delimiter a million times costs no more than any other, and neither do
    lines of a longer boundary that starts with this one ("--b1" and a chain of "--b10",
    "--b100"... once took a Python check each)."""
    tail = _DELIMITER_TAIL.match(raw, len(delimiter), limit) if start == 0 else None
    if tail is not None and raw.startswith(delimiter, 0, limit):
        yield 0, tail.end(), tail.group(1) is not None
    if len(delimiter) > COMPILED_DELIMITER_LIMIT:
        yield from _long_delimiter_lines(raw, delimiter, start, limit)
        return
    line = re.compile(rb"\n" + re.escape(delimiter) + rb"(--)?[ \t]*(?=\r?\n|\Z)")
    for found in line.finditer(raw, max(0, start - 1), limit):
        end = found.end()
        end += 2 if raw.startswith(b"\r\n", end, limit) else raw.startswith(b"\n", end, limit)
        yield found.start() + 1, end, found.group(1) is not None


def _long_delimiter_lines(raw: bytes, delimiter: bytes, start: int,
                          limit: int) -> Iterator[tuple[int, int, bool]]:
    """delimiter_lines() past line 0 for a delimiter longer than COMPILED_DELIMITER_LIMIT:
    found by bytes.find, each line that starts with it checked in Python (there are at
    most a message's size over the delimiter's length of them)."""
    needle = b"\n" + delimiter
    found = raw.find(needle, max(0, start - 1), limit)
    while found >= 0:
        tail = _DELIMITER_TAIL.match(raw, found + len(needle), limit)
        if tail is not None:
            yield found + 1, tail.end(), tail.group(1) is not None
        found = raw.find(needle, found + 1, limit)


def _after_blank_line(raw: bytes, end: int) -> int:
    """Past the empty line that ends a block (if it is one), where the body starts."""
    line_end = _LINE_END.match(raw, end)
    return line_end.end() if line_end else end


def _mime_fields(lines: bytes, raw: bytes, start: int, end: int) -> Iterator[bytes]:
    """The first field of each name of MIME_FIELDS, SUMMARY_FIELDS and WRAPPED_FIELD in the
    block's lines from `start` to `end`, at most KEPT_FIELD_LIMIT (KEPT_SUMMARY_FIELD_LIMIT)
    bytes and KEPT_FIELD_LINES lines of each (cut at a line's end). Found in `lines`, taken
    from `raw`."""
    names = set()
    for field in _MIME_FIELD.finditer(lines, start, end):
        name = field.group(1).lower()
        if name not in names:
            names.add(name)
            if name in SUMMARY_FIELDS:
                field_end = _field_head_end(lines, field.start(), field.end(),
                                            KEPT_SUMMARY_FIELD_LIMIT, b",")
            else:
                field_end = _field_head_end(lines, field.start(), field.end())
            yield raw[field.start():field_end]


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


def _field_head_end(lines: bytes, start: int, end: int, limit: int = KEPT_FIELD_LIMIT,
                    separator: bytes | None = None) -> int:
    """Where a field kept whole or cut ends: at most `limit` bytes and KEPT_FIELD_LINES lines
    on, at a line's end (a field of one line longer than that is cut in its line: before
    its last `separator` within the limit if it has one, so that an address list loses no
    part of an address)."""
    if lines.count(b"\n", start, min(end, start + limit)) > KEPT_FIELD_LINES:
        return _line_start(lines, start, KEPT_FIELD_LINES)
    if end - start <= limit:
        return end
    line_end = lines.rfind(b"\n", start, start + limit)
    if line_end >= 0:
        return line_end + 1
    cut = lines.rfind(separator, start, start + limit) if separator else -1
    return cut if cut > start else start + limit
