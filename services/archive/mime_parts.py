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

The parser's work is bounded by what bounded() lets through, whatever the shape: the
feedparser, which parses whatever the fast parser refuses, matches every line against
every open multipart's boundary, so delimiter lines right after another count as
parts, and past LINE_CHECKS matches the text of a cut and a body part's body are given
in base64 on a few long lines (REST_HEADER_BASE64, B64_LINE) and a preamble's or
epilogue's lines are left out. The text read is the same: an x-uuencode body given so is
marked (WRAPPED_FIELD), and restored() makes the parsed part the x-uuencode part it was.

Parts are counted in the order the parser reads them (the message, then depth first: each
body part of a multipart, the message inside a message/* part), with the walk of
services.archive.header_blocks, which reads types, boundaries, delimiter lines, preambles
and epilogues as the parser does.
"""
from __future__ import annotations

import base64
import binascii
import io
import mmap
import re
import tempfile
from email import errors
from email.message import Message
from typing import BinaryIO, Iterator

from services.archive import header_blocks, mimetree, transfer_encoding, uuencode

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
# The header of the part that holds the text of the parts past MAX_PARTS (or of a too
# deep subtree): its charset is left to be found (services.archive.charsets), as for any
# unlabelled text. Its body is that text's lines as they are (REST_HEADER) or, past
# LINE_CHECKS, that text in base64 on lines of B64_LINE characters (REST_HEADER_BASE64:
# decoded, the same text; the parser reads a few lines of it). As lines, each was matched
# by the feedparser against every open boundary: the text of a too deep subtree of 2.6
# million lines inside 48 multiparts took it 16.5 s and 431 MB. Not one line: the
# feedparser holds a line it has not seen the end of in a StringIO, 4 bytes a character
# (the text of a 25 MB subtree on one line took it 468 MB). Not always base64: it takes a
# third more memory in each copy of the text.
REST_TYPE = b"Content-Type: text/plain"
REST_HEADER = REST_TYPE + b"\r\n\r\n"
REST_HEADER_BASE64 = REST_TYPE + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
REST_CHUNK = 1 << 20
# A message of this many bytes or more that parse_message may let go (given alone in a list)
# is moved into an unlinked temporary file before its cut is written, and read back from
# its map a REST_CHUNK at a time, each let go once copied (_Pieces.spill): the message and
# its cut were both held at once, the message's size twice (84 MiB of 20,000 text parts:
# a worker at 205 MB, #20). Below it, the file's writing costs more than the copy saves.
SPILL_BYTES = 16 << 20
# A piece of a cut shorter than this is copied, joined to the short pieces beside it
# (_Pieces): a range or a view each, the lines between the delimiter lines of 1.6 million
# tiny parts took 275 to 1,336 MB (#20), where a copy of them is the message's size at most.
SHORT_PIECE = 1024
B64_LINE = 1 << 16
# Matches of a line against an open multipart's boundary, at most, in the parser's work:
# the feedparser (which parses what the fast parser refuses: a message missing one close
# delimiter) matches each line against every open boundary, some 0.13 us each here: a
# text part of 1.3 million short lines (5 MB) inside 46 multiparts took it 7.7 s, and one
# of 25 MB would take the extraction worker past its time limit. Past these, a body part's
# body is given on a few lines (_add_line_free_body: the same bytes, decoded), a preamble's
# or epilogue's lines left out (no text is read from them). Real mail: a few levels of
# multiparts around up to a million lines of base64.
LINE_CHECKS = 20_000_000
# A line starting "--" is matched against an open boundary for as long as the two agree (a
# boundary may be thousands of characters long, where RFC 2046 allows 70; 25 MB of lines
# sharing 4,000-character prefixes with 47 open boundaries took the parser 17 s): such a
# line longer than LONG_DASH_LINE bytes is charged one match more for each DASH_BYTES_PER_
# CHECK of its bytes (measured: some 9 bytes of a compare cost one line's match).
LONG_DASH_LINE = 128
DASH_BYTES_PER_CHECK = 8
_LONG_DASH_LINE = re.compile(rb"(?m)^--[^\n]{%d,}" % (LONG_DASH_LINE - 2))
_TRANSFER_ENCODING = re.compile(rb"^content-transfer-encoding[ \t]*:(" + header_blocks._FOLDED
                                + rb")(?:\r?\n)?", re.MULTILINE | re.IGNORECASE)
# A delivery status (RFC 3464) is blocks, each a part to the parser: a message that may
# have one (these letters in any case) is walked whatever its delimiter lines.
_STATUS = b"delivery-status"
# Bytes of a message lower-cased at a time to look for _STATUS in: a regular expression
# ignoring case (rb"(?i)delivery-status") took 5 ns a byte, more than the parse of a
# message of attachments; bytes.lower() and a find, under 1 ns, and no copy of a whole
# message of tens of megabytes.
STATUS_SCAN_BYTES = 1 << 16
# The header field of a body part that came x-uuencode (or another of its names) and is
# given to the parser in base64 past LINE_CHECKS: its value, that encoding. Plain base64
# lost what uuencode's lines hold (the begin lines' names, each file, the text around
# them). It never leaves the parse: restored() takes it out of the parsed part, which
# becomes the x-uuencode part it was (review 161 F1: served in a part's bytes, the name
# told a web user what to write to have his own base64 part or HTML read as uuencode,
# review 158 F1). Its name holds a token this process drew, so no sender's field is one;
# held by header_blocks, which keeps it from past a cut (review 166 F1).
WRAPPED_FIELD = header_blocks.WRAPPED_FIELD


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


def bounded(raw: bytes, more: int = 0) -> tuple[bytes, int]:
    """bounded_pieces(raw, more) with its pieces joined: (the bytes for the parser, the
    count of parts not parsed)."""
    pieces, count = bounded_pieces(raw, more)
    return (pieces if isinstance(pieces, bytes) else pieces.joined()), count


def bounded_pieces(raw: bytes, more: int = 0) -> tuple[bytes | _Pieces, int]:
    """(`raw` for the parser, the count of parts not parsed): `raw` itself and 0 when the
    parser reads at most MAX_PARTS parts of it, none deeper than MAX_DEPTH (always for a
    message of fewer than MAX_DEPTH lines starting "--" and no delivery status: a
    multipart's parts are one deeper, and each follows a delimiter line). Else `raw` with
    each part deeper than MAX_DEPTH (the outermost of its subtree) a text/plain part of its
    text, its header's and its parts' lines, and with the rest from the first part past
    MAX_PARTS on cut as _with_rest_as_text says; a message that is itself a delivery
    status of more blocks than that, with its body one text/plain part. Each delimiter
    line right after another (a part to the parser's work, no part to its tree) counts as
    a part. `more`: parts allowed past MAX_PARTS (the text part of an earlier count's
    cut, counted again). Cut, its answer is given as the _Pieces it joins to (ranges of
    `raw` in part, which _Pieces.spill can let `raw` go before they are joined), or bytes.
    For parsing only. Never raises but MemoryError."""
    dashes = raw.count(b"\n--") + raw.count(b"\r--")  # (a multipart open: a line each)
    if dashes < MAX_DEPTH and not _names_delivery_status(raw) \
            and _line_checks_within(raw, dashes + 1):
        return raw, 0
    lines = header_blocks.lines_of(raw)
    edits, rest, checks = _unparsed(lines, MAX_PARTS + more)
    for multipart in rest[1] if rest is not None else ():
        multipart.close()  # (the walk ends here: what it holds of `lines` is let go)
    if rest is not None and rest[0] == 0:  # the message itself is the delivery status
        return _status_as_text(raw, lines), MAX_PARTS
    if not edits and rest is None:
        return raw, 0
    kept = _with_edits(raw, lines, edits, len(raw) if rest is None else rest[0])
    cut = sum(kind.startswith("text") for _, _, kind in edits)
    if rest is None:
        return kept, cut
    skipped = _with_rest_as_text(kept, raw, lines, *rest, checks)
    return kept, cut + skipped


class _Pieces:
    """The bytes of bounded_pieces()'s answer, as the pieces they join to: ranges of the
    message (`raw`) where they are its bytes, views into its lines (header_blocks.lines_of,
    when not `raw`) or new bytes where they are not; joined() makes them one bytes, written
    once. A bytearray grown to the message's size and copied into bytes was the message
    twice beside the message (a message of 20,000 parts of 84 MiB: 254 MB in a worker,
    #20)."""

    def __init__(self, raw: bytes):
        self.raw: bytes | mmap.mmap = raw
        self.pieces: list[bytes | memoryview | tuple[int, int]] = []  # (start, end) of raw
        self.short = bytearray()  # the short pieces (SHORT_PIECE) after the last in pieces
        self.spilled: BinaryIO | None = None

    def __iadd__(self, data: bytes | bytearray | memoryview) -> _Pieces:
        if len(data) < SHORT_PIECE:
            self.short += data
        else:  # (a bytearray is copied: its writer may change it after)
            self._add(bytes(data) if isinstance(data, bytearray) else data)
        return self

    def take(self, source: bytes, start: int, end: int) -> None:
        """Adds source[start:end], `source` the message or its lines, not copied unless
        short (SHORT_PIECE)."""
        if end - start < SHORT_PIECE:
            self.short += memoryview(source)[start:max(start, end)]
        else:
            self._add((start, end) if source is self.raw else memoryview(source)[start:end])

    def _add(self, piece: bytes | memoryview | tuple[int, int]) -> None:
        if self.short:
            self.pieces.append(bytes(self.short))
            self.short = bytearray()
        self.pieces.append(piece)

    def ends_a_line(self) -> bool:
        """Whether the bytes so far end with a LF (or are none)."""
        if self.short or not self.pieces:
            return self.short[-1:] in (b"\n", b"")
        last = self.pieces[-1]
        return (self.raw[last[1] - 1:last[1]] if isinstance(last, tuple) else last[-1:]) \
            == b"\n"

    def spill(self) -> bool:
        """Moves `raw` into an unlinked temporary file, held mapped (its pages in memory
        only while joined() copies them), when it is SPILL_BYTES or more and its ranges
        are the pieces; True if so: the caller's reference to `raw` is then the last that
        keeps it (let it go before joined()). A file that cannot be written (a full disk)
        is no spill: joined() copies from `raw` as it would. Raises MemoryError."""
        if len(self.raw) < SPILL_BYTES or \
                any(isinstance(piece, memoryview) for piece in self.pieces):
            return False
        try:
            spilled = tempfile.TemporaryFile(prefix="archiver-cut-")
        except OSError:
            return False
        try:
            spilled.write(self.raw)
            spilled.flush()
            self.raw = mmap.mmap(spilled.fileno(), 0, prot=mmap.PROT_READ)
        except OSError:
            spilled.close()
            return False
        self.spilled = spilled
        return True

    def joined(self) -> bytes:
        """The pieces as one bytes; the pieces and `raw` are let go. From a spilled `raw`,
        each REST_CHUNK of its map copied is given back (madvise) before the next is read:
        the map and the answer are never held whole at once."""
        self._add(b"")  # (the short pieces left)
        pieces, self.pieces = self.pieces, []
        if self.spilled is None:
            joined = b"".join(memoryview(self.raw)[piece[0]:piece[1]]
                              if isinstance(piece, tuple) else piece for piece in pieces)
            self.raw = b""
            return joined
        out = io.BytesIO()  # (its getvalue() is its buffer, not a copy)
        for piece in pieces:
            if isinstance(piece, tuple):
                self._copy_spilled(out, *piece)
            else:
                out.write(piece)
        self.raw.close()
        self.spilled.close()
        self.raw, self.spilled = b"", None
        return out.getvalue()

    def _copy_spilled(self, out: io.BytesIO, start: int, end: int) -> None:
        """Writes raw[start:end] of the spilled map to `out`, REST_CHUNK at a time, each
        range of whole pages read given back."""
        for at in range(start, end, REST_CHUNK):
            upto = min(end, at + REST_CHUNK)
            out.write(self.raw[at:upto])
            first = at - at % mmap.PAGESIZE
            self.raw.madvise(mmap.MADV_DONTNEED, first, upto - first)


def _names_delivery_status(raw: bytes) -> bool:
    """Whether `raw` holds "delivery-status", its ASCII letters in any case (as a bytes
    pattern ignoring case matches them: no other byte has a case)."""
    overlap = len(_STATUS) - 1  # (a match across two pieces is whole in one of them)
    return any(_STATUS in raw[start:start + STATUS_SCAN_BYTES + overlap].lower()
               for start in range(0, len(raw), STATUS_SCAN_BYTES))


def _line_checks_within(raw: bytes, boundaries: int) -> bool:
    """Whether matching each line of `raw` against `boundaries` boundaries stays within
    LINE_CHECKS; a message short enough for it needs no count of its lines."""
    return (boundaries * len(raw) <= LINE_CHECKS
            or boundaries * header_blocks.line_breaks(raw) <= LINE_CHECKS)


def _unparsed(lines: bytes, max_parts: int) -> tuple[list[tuple[int, int, str]],
                                                    tuple[int, list] | None, int]:
    """([(start, end, what to make of it) of each part deeper than MAX_DEPTH, the outermost
    of its subtree ("text": a text part of its lines; "text64", of them in base64, past
    LINE_CHECKS), and, past LINE_CHECKS (_Work), of
    each body part's body ("body") or preamble or epilogue ("drop")], in order; (where the block of the first part past `max_parts` starts, or the delimiter
    line right after another that is past them, the multiparts
    open there, outermost first: header_blocks.Parts) or None when there is no such part).
    A too deep part's subtree is not walked: it is text, and the parts beside it, at
    allowed depths, are still parts (counted). The blocks of a delivery status (RFC 3464)
    count, but are never where the cut is (nor walked once MAX_PARTS are counted): the
    cut is at the part holding them, and is (0, []) when that part is the message itself;
    the parser's matches of lines against boundaries counted, _Work.checks)."""
    pending: list = [iter([(0, len(lines), "text/plain", False)])]
    count, status, too_deep = 0, None, []
    work = _Work(lines, too_deep)
    while pending:
        top = pending[-1]
        entry = next(top, None)
        if isinstance(top, header_blocks.Parts):
            if top.run is not None:
                count += top.run[1]
                if count > max_parts:
                    return too_deep, (top.run[0], _open_parts(pending)), work.checks
            if top.preamble is not None:  # (its lines are matched against its boundary too)
                work.charge(*top.preamble, _opened(pending), "drop")
                top.preamble = None
        if entry is None:
            pending.pop()
            if isinstance(top, header_blocks.Parts):
                work.closed(top, _opened(pending))
            continue
        if isinstance(top, header_blocks.Parts):
            top.walked = True
        start, limit, default, in_status = entry
        count += 1
        if not in_status and count > max_parts:
            return too_deep, (start, _open_parts(pending)), work.checks
        if not in_status and len(pending) > MAX_DEPTH:
            work.charge(start, limit, _opened(pending), "text64", as_text=True)
            continue
        if in_status:
            pending.pop()  # (its one block: the next one replaces it, not nested in it)
            if count > max_parts:
                return too_deep, status, work.checks  # (the part is cut, blocks and all)
        inner = _inner(lines, start, limit, default, in_status)
        if inner is not None and inner[1]:
            # Each block of a delivery status is a part to the parser: past MAX_PARTS the
            # part holding them is where the cut is (a block cannot hold the rest as text:
            # the parser reads the blocks after it as blocks).
            status = (start, _open_parts(pending))
        if inner is not None:
            if isinstance(inner[0], header_blocks.Parts):
                work.opened(inner[0], start, max_parts)
            pending.append(inner[0])
        elif not in_status:
            work.leaf(start, limit, default, _opened(pending))
    return too_deep, None, work.checks


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


def _opened(pending: list) -> int:
    """How many multiparts are open (their boundaries matched against each line)."""
    return sum(isinstance(each, header_blocks.Parts) for each in pending)


class _Work:
    """The parser's matches of lines against open boundaries, counted in the walk's order
    (lines.count over each region, once: the regions do not overlap); past LINE_CHECKS,
    each region of more than one line is added to `edits`, to be given in base64 lines of
    B64_LINE characters or left out instead (and its matches are not counted)."""

    def __init__(self, lines: bytes, edits: list):
        self.lines, self.edits, self.checks = lines, edits, 0

    def charge(self, start: int, end: int, opened: int, kind: str,
               edit_start: int | None = None, as_text: bool = False) -> None:
        """The lines from `start` to `end`, matched against `opened` boundaries; past
        LINE_CHECKS, an edit of `kind` from `edit_start` (else `start`) to `end`; within
        them, with `as_text`, a "text" edit of the region (a part cut as text)."""
        if as_text and (not opened or start >= end):
            self.edits.append((start, end, "text"))
            return
        if not opened or start >= end:
            return
        count = self.lines.count(b"\n", start, end)
        count += _long_dash_bytes(self.lines, start, end) // DASH_BYTES_PER_CHECK
        self.checks += count * opened
        if self.checks > LINE_CHECKS and count > 1:
            self.edits.append((start if edit_start is None else edit_start, end, kind))
            self.checks -= count * opened
        elif as_text:
            self.edits.append((start, end, "text"))

    def leaf(self, start: int, limit: int, default: str, opened: int) -> None:
        """A part that holds no parts, from `start` to `limit`: its body's lines ("body"),
        or, for a multipart or message/* part to its header that has none to the walk,
        all its lines (a text part of them: "text")."""
        if not opened:
            return
        end = header_blocks.block_end(self.lines, start, limit)
        found = header_blocks.content_type_field(self.lines, start, end)
        type_end = -1 if found is None else self.lines.find(b";", *found)
        if found is not None and header_blocks._COMPOSITE.search(
                self.lines, found[0], found[1] if type_end < 0 else type_end):
            self.charge(start, limit, opened, "text64")
        else:
            self.charge(header_blocks._after_blank_line(self.lines, end), limit, opened,
                        "body", start)

    def opened(self, parts: header_blocks.Parts, start: int, max_parts: int) -> None:
        parts.start, parts.edits, parts.walked = start, len(self.edits), False
        parts.run_limit = max_parts  # (a longer run is cut: no need to walk it all)

    def closed(self, parts: header_blocks.Parts, opened: int) -> None:
        """Its epilogue, or all of it when it had no parts to the walk (then text to the
        parser, unless lines of it were edited already)."""
        if parts.walked:
            if parts.epilogue is not None:
                self.charge(*parts.epilogue, opened, "drop")
        elif len(self.edits) == parts.edits and opened:
            self.charge(parts.start, parts.limit, opened + 1, "text64")
        elif len(self.edits) == parts.edits:
            # (the message itself, or the message of the outermost message/* part: its
            # header stays its own, only its body becomes a text part's, "message")
            end = header_blocks.block_end(self.lines, parts.start, parts.limit)
            self.charge(header_blocks._after_blank_line(self.lines, end), parts.limit, 1,
                        "message", parts.start)


def _long_dash_bytes(lines: bytes, start: int, end: int) -> int:
    """Bytes of the lines from `start` to `end` that start "--" and are longer than
    LONG_DASH_LINE (see DASH_BYTES_PER_CHECK)."""
    return sum(found.end() - found.start()
               for found in _LONG_DASH_LINE.finditer(lines, start, end))


def _with_edits(raw: bytes, lines: bytes, edits: list[tuple[int, int, str]],
               until: int) -> _Pieces:
    """`raw` up to `until` with each region of `edits` ((start, end, kind), in order, before
    `until`): "text", a part made a text/plain part of its lines, "text64", of them in
    base64 (_add_text_part; taken from `lines`: a lone CR there is a LF, the same text); "message", a multipart (the message itself) of no parts whose header is kept, saying
    text/plain, its body given as "body" is; "body", a body part whose body is
    given on a few lines (_add_line_free_body); "drop", a preamble or epilogue left out.
    Their regions hold no delimiter line of an enclosing multipart: the walk ends a part
    at the first."""
    kept, done = _Pieces(raw), 0
    for start, end, kind in edits:
        kept.take(raw, done, start)
        if kind == "text":
            kept += REST_HEADER
            kept.take(lines, start, end)
        elif kind == "text64":
            _add_text_part(kept, memoryview(lines)[start:end])
        elif kind == "body":
            _add_line_free_body(kept, raw, lines, start, end)
        elif kind == "message":
            _add_line_free_body(kept, raw, lines, start, end, as_text=True)
        done = end
    kept.take(raw, done, until)
    return kept


def _add_text_part(kept: _Pieces, text) -> None:
    """Adds to `kept` a text/plain part of `text` (bytes up to a delimiter line: its last
    line end is the delimiter's), its body `text` in base64 (REST_HEADER, B64_LINE)."""
    if text[-2:] == b"\r\n":
        text = text[:-2]
    elif text[-1:] == b"\n":
        text = text[:-1]
    kept += REST_HEADER_BASE64
    _add_base64_lines(kept, text)


def _add_line_free_body(kept: _Pieces, raw: bytes, lines: bytes, start: int,
                        end: int, as_text: bool = False) -> None:
    """Adds to `kept` the body part from `start` to `end` (up to a delimiter line) with its
    body in base64 on lines of B64_LINE characters: its header block as it is but its Content-Transfer-Encoding
    fields, "Content-Transfer-Encoding: base64", the blank line, and the bytes its body
    stands for, decoded as extraction decodes them (services.archive.transfer_encoding);
    an x-uuencode body's lines as they came, under a WRAPPED_FIELD naming that encoding
    (one linear pass, as for any body; restored() undoes it after the parse)."""
    header_end = header_blocks.block_end(lines, start, end)
    header = lines[start:header_end]
    found = _TRANSFER_ENCODING.search(header)
    encoding = "" if found is None else transfer_encoding.encoding_of(
        found.group(1).decode("ascii", "surrogateescape"))
    if as_text:  # (a multipart of no parts: its Content-Type says text/plain, its body as is)
        encoding = ""
        field = header_blocks.content_type_field(lines, start, header_end)
        if field is not None:
            header = lines[start:field[0]] + REST_TYPE + lines[field[1]:header_end]
    kept += _TRANSFER_ENCODING.sub(b"", header)
    if encoding in uuencode.ENCODINGS and not as_text:
        # Its lines as they came (decode is None), saying what they are: restored() makes
        # the parsed part x-uuencode again, read as such (its begin lines' names, its
        # files, the text around them).
        kept += b"%s: %s\r\n" % (WRAPPED_FIELD.encode(), encoding.encode())
    kept += b"Content-Transfer-Encoding: base64\r\n\r\n"
    body = raw[header_blocks._after_blank_line(lines, header_end):end]
    for line_end in (b"\r\n", b"\n", b"\r"):  # (the delimiter's)
        if body.endswith(line_end):
            body = body[:-len(line_end)]
            break
    decode = transfer_encoding.DECODERS.get(encoding)
    _add_base64_lines(kept, body if decode is None else decode(body))


def restored(message: Message) -> Message:
    """`message` (the parser's tree of bounded()'s bytes) with each part bearing
    WRAPPED_FIELD made the x-uuencode part it came as: the field out, Content-Transfer-
    Encoding its value again (RFC 2045 6.1), the payload its lines as they came (the
    base64 decoded: the parser's work is done). No serialisation of the tree holds the
    field, and what reads it never asks which parts were given so. Walked without
    recursion; never raises but MemoryError."""
    stack = [message]
    while stack:
        part = stack.pop()
        if part.is_multipart():
            stack.extend(child for child in part.get_payload() if isinstance(child, Message))
        elif WRAPPED_FIELD in part:
            _restore(part)
    return message


def _restore(part: Message) -> None:
    """`part`, a leaf bearing WRAPPED_FIELD, as it came (restored()); a part whose field
    or encoding another cut changed (header_blocks.bounded) keeps what it has, field out."""
    encoding = transfer_encoding.encoding_of(part.get(WRAPPED_FIELD, ""))
    del part[WRAPPED_FIELD]
    payload = part.get_payload()
    if encoding not in uuencode.ENCODINGS or not isinstance(payload, str) or \
            transfer_encoding.encoding_of(part.get("content-transfer-encoding", "")) \
            != "base64":
        return
    try:
        lines = binascii.a2b_base64(transfer_encoding.payload_bytes(payload))
    except binascii.Error:  # (not the base64 _add_line_free_body wrote: left as it is)
        return
    part.replace_header("Content-Transfer-Encoding", encoding)
    part.set_payload(lines.decode("ascii", "surrogateescape"))


def _add_base64_lines(kept: _Pieces, data) -> None:
    """Adds to `kept` `data` in base64, lines of B64_LINE characters (each ended)."""
    step = B64_LINE // 4 * 3
    for start in range(0, len(data), step):
        kept += base64.b64encode(data[start:start + step])
        kept += b"\r\n"
    if not len(data):
        kept += b"\r\n"


def _status_as_text(raw: bytes, lines: bytes) -> bytes:
    """`raw` with its Content-Type field (the first, the one the parser reads) saying
    text/plain: a message that is itself a delivery status of more than MAX_PARTS blocks
    is read as the text of its blocks, its header whole (its other fields as they are)."""
    found = header_blocks.content_type_field(lines, 0, header_blocks.block_end(lines, 0,
                                                                               len(lines)))
    if found is None:  # (not a delivery status to the parser: the walk reads it as it)
        return raw
    return raw[:found[0]] + REST_TYPE + raw[found[1]:]


def _with_rest_as_text(kept: _Pieces, raw: bytes, lines: bytes, start: int,
                       open_parts: list, checks: int = 0) -> int:
    """Adds to `kept` (`raw` up to `start`) the rest from `start`, where the first part
    past MAX_PARTS starts: a text/plain part of the text from there to the outermost open
    multipart's close delimiter (the delimiter lines of the multiparts open there left
    out; _Base64Text), a close delimiter for each of those multiparts, and the rest of
    `raw`; returns
    how many parts that leaves unparsed, at least (the part cut, and the delimiter lines,
    not close ones, after it). The rest's text is taken from `lines` (a lone CR there is
    a LF: the same text)."""
    end, closed = _outermost_close(lines, start, open_parts)
    # (in base64 if its lines would take the parser's matches past LINE_CHECKS)
    base64_text = checks + lines.count(b"\n", start, end) * len(open_parts) > LINE_CHECKS
    text = _Base64Text(kept) if base64_text else _PlainText(kept)
    skipped = 1 + _without_delimiter_lines(lines, start, end, open_parts, text)
    text.close()
    for multipart in reversed(open_parts[1:] if closed else open_parts):
        kept += multipart.delimiter + b"--\r\n"
    kept.take(raw, end, len(raw))
    return skipped


class _PlainText:
    """A text/plain part added to `kept` (REST_HEADER) whose body is the bytes written to
    it as they are; close() ends its last line."""

    def __init__(self, kept: _Pieces):
        self.kept = kept
        kept += REST_HEADER

    def write(self, lines: bytes, start: int, end: int) -> None:
        self.kept.take(lines, start, end)

    def close(self) -> None:
        if not self.kept.ends_a_line():
            self.kept += b"\r\n"


class _Base64Text:
    """A text/plain part added to `kept` (REST_HEADER) whose body is the bytes written to
    it, in base64 on lines of B64_LINE characters as they come (the rest's text is never
    held whole beside it: as big as the message); close() leaves out the last line end
    written (the delimiter's) and ends it."""

    def __init__(self, kept: _Pieces):
        self.kept, self.pending = kept, bytearray()
        kept += REST_HEADER_BASE64

    def write(self, lines: bytes, start: int, end: int) -> None:
        self.pending += memoryview(lines)[start:end]
        step = B64_LINE // 4 * 3
        if len(self.pending) > step + 2:  # (the last two bytes may be the line end left out)
            whole = (len(self.pending) - 2) // step * step
            _add_base64_lines(self.kept, bytes(self.pending[:whole]))
            del self.pending[:whole]

    def close(self) -> None:
        text = self.pending
        if text[-2:] == b"\r\n":
            del text[-2:]
        elif text[-1:] == b"\n":
            del text[-1:]
        _add_base64_lines(self.kept, text)


def _without_delimiter_lines(lines: bytes, start: int, end: int, open_parts: list,
                             kept: _Base64Text) -> int:
    """Writes to `kept` the lines from `start` to `end` but the delimiter lines of
    `open_parts`, the lines between them as views into `lines` (a copy of each chunk and
    another without its delimiter lines were the rest of the message twice, #20), a chunk
    of about REST_CHUNK bytes at a time; returns how many of them were not close
    delimiters."""
    if not open_parts:
        for chunk_start in range(start, end, REST_CHUNK):
            kept.write(lines, chunk_start, min(end, chunk_start + REST_CHUNK))
        return 0
    delimiters = [multipart.delimiter for multipart in open_parts]
    any_line, close_line = _delimiter_line(delimiters), _delimiter_line(delimiters, True)
    count = 0
    while start < end:
        chunk_end = lines.find(b"\n", min(end, start + REST_CHUNK) - 1, end) + 1 or end
        written = start  # (chunks start at a line: `pos` then reads as a slice's start)
        for found in any_line.finditer(lines, start, chunk_end):
            if found.start() > written:
                kept.write(lines, written, found.start())
            written = found.end()
            count += close_line.match(lines, found.start(), chunk_end) is None
        if chunk_end > written:
            kept.write(lines, written, chunk_end)
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
