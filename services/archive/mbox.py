"""The mbox format: From_ lines, splitting a stream into messages, and mboxrd quoting.

A separator is a From_ line that starts the file (after a UTF-8 byte order mark or blank
lines, if any) or follows a blank line. A From_ line is "From <sender> <date>", "From" and
one space as every writer writes it: the asctime date qmail's mbox(5) and RFC 4155
describe, with the variants writers use (no seconds or fractional ones, a zone name or
offset before or after the year, a two-digit year, day and month names in any case,
"remote from"), after one word, none (two blanks), a quoted local part that has blanks or
pipermail's "alice at example.com"; or an RFC 5322 date after a sender that looks like
one (an "@" in it, MAILER-DAEMON, "-", pipermail's). Any other line that begins with
"From " is body text and stays in its message: a body's "From the moderators: ..." or
"From 9 Mar 2024 22:00 UTC" never becomes a headerless message of its own.
tests/unit/archive/test_mbox_from_variants.py lists the writers' lines and such prose.

Dialect: mboxrd, both ways. Writing puts one ">" before every line matching "^>*From ";
reading takes one ">" off every line matching "^>+From ". So a written mbox reads back
byte-exact, except what mbox cannot carry at all:

  * a message that does not end with a line ending gets one (CRLF if the message uses
    CRLF, else LF), because the blank line that separates messages has to start on a
    line of its own. An empty message comes back as a single LF.

CRLF line endings survive: lines are split on LF only and the separator written is LF.
Python's mailbox.mbox and mutt quote mboxo-style ("From " only) and never unquote; the
price of reading them as mboxrd is mboxo's own ambiguity: a body line that read ">From "
before such a writer quoted nothing comes back as "From ". The blank line before a
separator (LF or CRLF) belongs to the separator, not to the message.

Locking: an MTA (postfix local, dovecot-lda, procmail, mutt) appends to an mbox holding its
fcntl write lock and/or its dotlock "<mbox>.lock", so a message it is halfway through
writing is there for anyone who reads without the lock. A reader does as mutt and Dovecot
do: it takes an fcntl read lock and waits for no dotlock to be there (creating none: reading
needs no more, and the folder may not be ours), takes the file's size, and lets go at once;
that size is a message boundary, and it reads no further (`end_under_lock`, `Ends`).
"""
from __future__ import annotations

import calendar
import contextlib
import email.utils
import errno
import fcntl
import functools
import io
import itertools
import os
import re
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

from services.archive.message_date import epoch_of

READ_CHUNK = 1 << 20  # an mbox is read a MiB at a time, never whole
# A block larger than this is moved out of the reader's buffer as it is read (_spill).
SPILL_BYTES = 4 * READ_CHUNK
FROM_LINE_LIMIT = 1000  # bytes; a longer line is no From_ line (RFC 5322 caps lines at 998)
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_DAY_NAME = rb"(?i:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = rb"(?P<month>(?i:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec))"
_TIME = (rb"(?P<hour>\d{1,2}):(?P<minute>\d\d)"
         rb"(?::(?P<second>\d\d)(?:[.,]\d{1,9})?)?")  # seconds may be missing or fractional
_YEAR = rb"(?P<year>\d{4}|\d\d)"  # two digits: "96" (old ctime-alikes)
# Every unbounded quantifier below is possessive (never gives back what it took): the
# pattern runs on any "From " line after a blank line of an untrusted mbox, and with the
# optional parts each starting with blanks, greedy ones backtracked quadratically over a
# line of blanks (test_from_line_patterns_cannot_backtrack_over_a_long_line).
_BLANKS = rb"[ \t]++"
# A zone name before an asctime year: any capitals, as before RFC 5322 dates were read
# (capitals only, so that "2024 and" is words). Anywhere else only a name zones have:
# RFC 5322's (4.3; the military letters aside) and common abbreviations, never AM or PM.
# Read as UTC but for RFC 5322's own names (_ZONE_NAMES).
_ZONE_NAME = rb"[A-Z]{1,5}"
_KNOWN_ZONE_NAME = (rb"(?:UTC?|GMT|[ECMP][SD]T|WES?T|CES?T|MES?T|EES?T|BST|IST|MSK|JST|KST"
                    rb"|HKT|SGT|AWST|AC[SD]T|AE[SD]T|NZ[SD]T|HST|AK[SD]T|[AN][SD]T)")
_ZONE_OFFSET = rb"[+-]\d\d:?\d\d"
# The sender. Under an asctime date, as before RFC 5322 dates were read, one word or none
# (two blanks: "From %s %s" of an empty sender), a quoted local part that has blanks
# ('"john smith"@example.org') or pipermail's spelled-out address ("alice at example.com",
# a dot in its domain). Under an RFC 5322 date only what looks like a sender: a word with
# an "@" (Eudora's "???@???" too), "MAILER-DAEMON", Thunderbird's "-", or pipermail's:
# prose has RFC 5322-like dates ("From Monday 5 May 2024 10:00", "From 9 Mar 2024 22:00
# UTC"), and never becomes a headerless message of its own.
_QUOTED_LOCAL = rb'"[^"\r\n]*+"'
# Pipermail's "x at host.domain": no possessive repeat of a group, which CPython before
# 3.11.5 (gh-106052) ran wrongly, so a host is its first label, a dot and the rest.
_PIPERMAIL = rb"\S++ at [^\s.]++\.\S*+"
_ASCTIME_SENDER = rb"(?:(?P<sender>" + _QUOTED_LOCAL + rb"\S*+|" + _PIPERMAIL + rb"|\S++)" \
    + _BLANKS + rb"|" + _BLANKS + rb")"
_ADDRESS_SENDER = (rb"(?P<sender>" + _QUOTED_LOCAL + rb"[^\s@]*+@\S*+|[^\s@\"]*+@\S*+|"
                   + _PIPERMAIL + rb"|MAILER-DAEMON|-)" + _BLANKS)
_ENDING = rb"(?:" + _BLANKS + rb"remote from \S++)?[ \t]*+\r?\n?"
# asctime (ctime(3)), as qmail's mbox(5), RFC 4155, mutt, postfix local(8), procmail,
# Dovecot, Python's mailbox, Thunderbird and Gmail Takeout write it, with the variants some
# add: a zone name or offset before the year (Takeout's "+0000 2024") or after it.
_ASCTIME = (_DAY_NAME + _BLANKS + _MONTH + _BLANKS + rb"(?P<day>\d{1,2})" + _BLANKS + _TIME
            + rb"(?:" + _BLANKS + rb"(?:(?P<zone_before>" + _ZONE_OFFSET + rb")|"
            + rb"(?P<name_before>" + _ZONE_NAME + rb")))?"
            + _BLANKS + _YEAR
            + rb"(?:" + _BLANKS + rb"(?:(?P<zone_after>" + _ZONE_OFFSET + rb")|"
            + rb"(?P<name_after>" + _KNOWN_ZONE_NAME + rb")))?")
# An RFC 5322 date-time, as some exporters write it: "Tue, 05 Mar 2024 11:00:00 +0000".
_RFC5322 = (rb"(?:" + _DAY_NAME + rb",?" + _BLANKS + rb")?(?P<day>\d{1,2})" + _BLANKS + _MONTH
            + _BLANKS + _YEAR + _BLANKS + _TIME
            + rb"(?:" + _BLANKS + rb"(?:(?P<zone_after>" + _ZONE_OFFSET + rb")|"
            + rb"(?P<name_after>" + _KNOWN_ZONE_NAME + rb")))?"
            + rb"(?:" + _BLANKS + rb"\([^()\r\n]*+\))?")
# "From" and one space, as every writer writes it: the splitter looks for "\nFrom ".
FROM_LINES = (re.compile(rb"From " + _ASCTIME_SENDER + _ASCTIME + _ENDING),
              re.compile(rb"From " + _ADDRESS_SENDER + _RFC5322 + _ENDING))
# RFC 5322's zone names (4.3, obsolete syntax); any other name is read as UTC.
_ZONE_NAMES = {b"UT": 0, b"UTC": 0, b"GMT": 0, b"Z": 0, b"EST": -5, b"EDT": -4, b"CST": -6,
               b"CDT": -5, b"MST": -7, b"MDT": -6, b"PST": -8, b"PDT": -7}
_SEPARATOR_CANDIDATE = b"\nFrom "
_LINE_STARTING_FROM = re.compile(rb"^From ", re.MULTILINE)
# A header field: its name, then ":" (RFC 5322; obsolete syntax allows blanks before it).
# RFC 5322 allows any printable ASCII in a name; names in use are tokens (RFC 2045's token
# characters, starting with a letter or digit), and "<x:xmpmeta" or "(D:2024" are not.
# Windows tools may put a UTF-8 byte order mark first: still mail, kept as it is.
HEADER_FIELD = re.compile(rb"(?:\xef\xbb\xbf)?[A-Za-z0-9][A-Za-z0-9!#$%&'*+.^_`|~-]*[ \t]*:")
PRELUDE_LIMIT = 1024  # bytes of byte order mark and blank lines before the first From_ line
_PRELUDE = re.compile(rb"(?:\xef\xbb\xbf)?(?:[ \t]*\r?\n)*")
SNIFF_BYTES = PRELUDE_LIMIT + FROM_LINE_LIMIT + 2  # what tells an mbox (starts_with_from_line)
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_FROM_TO_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_HEADER_END = re.compile(rb"\n\r?\n")
# Lines of a message an Entry names as unseparated From_ lines: the import's warning shows 10
# and "..." when there are more (services.archive.mailfiles).
UNSEPARATED_KEPT = 11
FROM_FIELD_LIMIT = 2000  # bytes of a field a From_ line is made from (RFC 5322: 998 a line)
# Where a header field a From_ line is made from starts; its value runs on through its
# continuation lines (RFC 5322 2.2.3), read by hand (_unfolded): a pattern matching them too
# kept backtracking state for every one (a 12 MB field of short lines took 945 MB).
_FROM_LINE_FIELD = re.compile(rb"^(return-path|sender|from|date)[ \t]*:",
                              re.MULTILINE | re.IGNORECASE)
_FROM_LINE_FIELD_NAMES = 4
_PLAIN_ADDRESS = re.compile(r"[!-~]+")  # printable ASCII without spaces, as a From_ line needs
# How long reading waits for an appender to let go of an mbox before it gives up on it: a
# delivery holds the lock for the time it takes to write one message (milliseconds; seconds
# for a large one on a busy disk). Longer is a stuck or stale lock, and waiting on hides it.
LOCK_WAIT_SECONDS = 30.0
LOCK_POLL_SECONDS = 0.05  # how often it looks again meanwhile
REWRITE_CHECK_BYTES = 4096  # the last bytes read, found again before the next chunk is read
DOTLOCK_SUFFIX = ".lock"  # "<mbox>.lock", as postfix, procmail, mutt and Dovecot make it
# Errors of a lock attempt that mean another process holds a conflicting lock (POSIX
# allows either); any other means the file system keeps no fcntl locks (NFS without lockd).
_HELD = (errno.EACCES, errno.EAGAIN)


@dataclass(frozen=True)
class FromLine:
    sender: str
    date: float | None  # epoch seconds UTC; None if not a real, plausible date


@dataclass(frozen=True)
class Entry:
    """One message of an mbox: its raw bytes, or its size when it was over the limit."""
    raw: bytes | None
    from_line: FromLine | None
    size: int  # bytes between its From_ line and the next separator
    line: int = 1  # the line of the mbox its From_ line is on
    # Lines of the mbox in it that look like a From_ line followed by a header field: the
    # separator of a message its writer put no blank line before, so merged into this one
    # (kept so: a body may hold such a line; the reader is told). The first UNSEPARATED_KEPT.
    unseparated: tuple[int, ...] = ()


def parse_from_line(line: bytes) -> FromLine | None:
    """The From_ line `line` (with or without its line ending), or None if it is not one.
    A date without a zone, or with a zone name RFC 5322 does not define (CET), is UTC, as
    writers since Python's mailbox and qmail write it; a two-digit year is 19xx from 50 on,
    else 20xx (RFC 5322 4.3). A line of the form with a date that is no real, plausible
    one ("Mon Jan 99 99:99 2024", 1970) is still a From_ line, a separator: its date is
    None (FromLine(sender, None)), as before RFC 5322 dates were read."""
    match = _from_line_match(line)
    if not match:
        return None
    zone = match["zone_after"] or match.groupdict().get("zone_before")
    name = match["name_after"] or match.groupdict().get("name_before")
    if zone:
        zone = zone.replace(b":", b"")
        offset = (1 if zone[:1] == b"+" else -1) * (int(zone[1:3]) * 3600 + int(zone[3:]) * 60)
    else:
        offset = _ZONE_NAMES.get(name.upper(), 0) * 3600 if name else 0
    year = int(match["year"])
    if len(match["year"]) == 2:
        year += 1900 if year >= 50 else 2000
    date = epoch_of(year, _MONTHS[match["month"].decode().lower()], int(match["day"]),
                    int(match["hour"]), int(match["minute"]), int(match["second"] or 0), offset)
    return FromLine(match["sender"].decode("ascii", "replace") if match["sender"] else "", date)


def is_from_line(line: bytes) -> bool:
    """Whether `line` (with or without its line ending) is a From_ line, date read or not."""
    return _from_line_match(line) is not None


def _from_line_match(line: bytes) -> re.Match | None:
    if len(line) > FROM_LINE_LIMIT + 2 or not line.startswith(b"From "):
        return None
    for pattern in FROM_LINES:
        match = pattern.fullmatch(line)
        if match:
            return match
    return None


def prelude_length(start: bytes) -> int:
    """How many bytes come before the first line of `start` that may be a From_ line: a
    UTF-8 byte order mark (Windows tools write one) and blank lines (some exporters begin
    an mbox with one), at most PRELUDE_LIMIT bytes. 0 when there are none."""
    match = _PRELUDE.match(start, 0, PRELUDE_LIMIT)
    return match.end() if match else 0


def split_leading_from_line(raw: bytes) -> tuple[bytes, FromLine | None]:
    """A single message's bytes without the mbox From_ line it may start with (and a byte
    order mark or blank lines before it), and that line; nothing else changes. Bytes that
    start with no From_ line come back as they are."""
    skip = prelude_length(raw)
    if not raw.startswith(b"From ", skip):
        return raw, None
    end = raw.find(b"\n", skip, skip + FROM_LINE_LIMIT + 2)
    line = raw[skip:end + 1] if end >= 0 else raw[skip:]
    from_line = parse_from_line(line)
    return (raw[skip + len(line):], from_line) if from_line else (raw, None)


def starts_with_from_line(start: bytes) -> bool:
    """Whether a file whose first bytes are `start` (SNIFF_BYTES of them, or all there is) is
    an mbox: starts with a From_ line, after a byte order mark or blank lines if any."""
    skip = prelude_length(start)
    end = start.find(b"\n", skip, skip + FROM_LINE_LIMIT + 2)
    return is_from_line(start[skip:end + 1] if end >= 0 else start[skip:])


# --- reading ------------------------------------------------------------------------------

def read_entries(stream: BinaryIO, max_bytes: int, end: int | None = None) -> Iterator[Entry]:
    """The messages of an mbox stream that starts with a From_ line, in order, up to byte
    `end` (from the stream's position; None: to its end). A message of more than `max_bytes`
    is not kept (raw None, its size given); memory holds one chunk plus at most `max_bytes`
    of one message, whatever the mbox's size, and nothing here holds a message once it is
    yielded (starmap binds no variable: a for loop's would keep it while it is stored)."""
    return itertools.starmap(functools.partial(_entry, max_bytes), _blocks(stream, max_bytes, end))


def _entry(max_bytes: int, line: bytes | None, message: io.BytesIO | None, size: int,
           first_line: int) -> Entry:
    """The Entry of one block of _blocks: its From_ line, and the message after it unquoted
    where it is (a message of 100 MiB is held once, not also as an unquoted copy)."""
    if message is None or size > max_bytes:
        return Entry(None, None, size, first_line)
    raw = message.getvalue()  # its buffer, not a copy
    unseparated = tuple(first_line + 1 + n for n in _unseparated_from_lines(raw))
    quoted = b">From " in raw
    del raw  # else the buffer is shared, and unquoting it would copy it
    if quoted:
        unquote_in_place(message)
    raw = message.getvalue()
    message.close()
    return Entry(raw, parse_from_line(line), size, first_line, unseparated)


def _unseparated_from_lines(message: bytes) -> list[int]:
    """The lines (from 0) of a message, as written (still quoted), that are From_ lines
    followed by a header field: a separator a writer put no blank line before. The first
    UNSEPARATED_KEPT of them: the warning shows 10 lines and "..." for more. Lines are
    counted on from the last one found (counting from the start for each took hours for
    a message of a million such lines)."""
    found: list[int] = []
    line, counted = 0, 0  # line: the line number of byte `counted`
    for match in _LINE_STARTING_FROM.finditer(message):
        end = message.find(b"\n", match.start(), match.start() + FROM_LINE_LIMIT + 1)
        if end >= 0 and is_from_line(message[match.start():end + 1]) and \
                HEADER_FIELD.match(message, end + 1):
            line += message.count(b"\n", counted, match.start())
            counted = match.start()
            found.append(line)
            if len(found) == UNSEPARATED_KEPT:
                break
    return found


def count_entries(stream: BinaryIO, end: int | None = None) -> int:
    """How many messages read_entries finds up to byte `end`, holding no message in memory."""
    return sum(1 for _ in _blocks(stream, max_bytes=0, end=end))


def _blocks(stream: BinaryIO, max_bytes: int, end: int | None
            ) -> Iterator[tuple[bytes | None, io.BytesIO | None, int, int]]:
    """(From_ line, message, size, line) per block: a block is a From_ line through the
    blank line before the next separator (which is not the message's); line and message
    are None when the block grew past `max_bytes` (its bytes were dropped); size, the
    block's; line, the line of the mbox it starts on. A block past SPILL_BYTES is moved
    into a spill as it is read (_spill), so that the message is held once. Reads
    no further than byte `end`, if given: then the stream is a live mbox file, read a chunk
    at a time under its lock, and Rewritten is raised when what was read is no longer there
    (a message spanning the change is never yielded)."""
    left = end  # bytes still to read; None: all there is
    live = end is not None and _is_file(stream)  # a file of its own, not in memory
    tail = b""  # the last bytes read: still there, unless the mbox was rewritten
    buffer = bytearray()
    start = 0     # where the current block begins in buffer
    scanned = 0   # no separator starts a line in buffer[start:scanned + 1]
    gone = 0      # bytes of the current block already let go: dropped, or in `spilled`
    spilled = None  # (From_ line, message so far) of a large block, or None
    at_end = False
    leading = True  # where the first message starts is not known yet (prelude_length)
    first = 1  # the line of the mbox buffer[start] is on
    gone_lines = 0  # line endings of the current block already let go
    while True:
        if leading and (at_end or len(buffer) > PRELUDE_LIMIT + len(_SEPARATOR_CANDIDATE)):
            leading = False
            skip = prelude_length(bytes(buffer[:PRELUDE_LIMIT]))
            if skip and buffer.startswith(b"From ", skip):  # not a message's: dropped
                start = scanned = skip
                first += buffer.count(b"\n", 0, skip)
        while not leading and \
                (found := buffer.find(_SEPARATOR_CANDIDATE, max(scanned, start + 1))) >= 0:
            line_end = buffer.find(b"\n", found + 1, found + FROM_LINE_LIMIT + 2)
            if line_end < 0 and not at_end and len(buffer) - found < FROM_LINE_LIMIT + 2:
                break  # the candidate line continues in the next chunk
            scanned = found + 1
            # Without a line ending within the limit, the line is no From_ line (or the last).
            line = buffer[found + 1:line_end + 1 if line_end >= 0 else found + FROM_LINE_LIMIT + 2]
            if _follows_blank_line(buffer, found) and is_from_line(line):
                block_first, block_end = first, found + 1
                first += buffer.count(b"\n", start, block_end) + gone_lines
                yield (*_block(buffer, start, block_end, gone, spilled), block_first)
                start, gone, gone_lines, spilled = block_end, 0, 0, None
        else:
            if not leading:
                scanned = max(start, len(buffer) - len(_SEPARATOR_CANDIDATE) + 1)
        if at_end:
            break
        del buffer[:start]  # once per chunk, so small messages do not shift the buffer
        scanned, start = scanned - start, 0
        over = gone + len(buffer) > max_bytes
        if over:  # past the limit: dropped, spilled or not
            spilled = None
        if over or spilled or len(buffer) > SPILL_BYTES:
            # keep only what a separator check needs
            let_go = max(0, min(scanned, len(buffer)) - 3)
            if not over:
                spilled = _spill(buffer, let_go, spilled)
                let_go = let_go if spilled else 0  # its From_ line is not whole yet
            gone_lines += buffer.count(b"\n", 0, let_go)
            del buffer[:let_go]
            scanned, gone = scanned - let_go, gone + let_go
        size = READ_CHUNK if left is None else min(READ_CHUNK, left)
        chunk = _read_unrewritten(stream, size, tail) if live else stream.read(size)
        tail = (tail + chunk)[-REWRITE_CHECK_BYTES:]
        left = None if left is None else left - len(chunk)
        at_end = not chunk
        buffer += chunk
    if start < len(buffer) or gone:
        yield (*_block(buffer, start, len(buffer), gone, spilled), first)


def _block(buffer: bytearray, start: int, end: int, gone: int,
           spilled: tuple[bytes, io.BytesIO] | None
           ) -> tuple[bytes | None, io.BytesIO | None, int]:
    """(From_ line, message, size) of the block whose last bytes are buffer[start:end] and
    whose first `gone` bytes were let go: spilled (its From_ line and message so far), or
    dropped (line and message None)."""
    line = message = None
    if spilled:
        line, spill = spilled
        with memoryview(buffer) as view:
            spill.write(view[start:_message_end(buffer, start, end)])
        message = spill
    elif not gone:
        line_end = buffer.find(b"\n", start, end)
        message_start = line_end + 1 if line_end >= 0 else end
        line = bytes(buffer[start:message_start])
        with memoryview(buffer) as view:  # one copy: a bytearray slice would be another
            message = io.BytesIO(view[message_start:_message_end(buffer, message_start, end)])
    return line, message, gone + end - start


def _spill(buffer: bytearray, end: int, spilled: tuple[bytes, io.BytesIO] | None
           ) -> tuple[bytes, io.BytesIO] | None:
    """buffer[:end], the first or next bytes of a large block, added to its message so far
    (From_ line, io.BytesIO), begun here when there is none; None (nothing added) when
    buffer[:end] does not hold the whole From_ line yet. An io.BytesIO grows without
    copying what it holds, and getvalue() hands over its buffer: the message is held once,
    where a buffer and then a copy of it held it twice while it was read."""
    start = 0
    if spilled is None:
        start = buffer.find(b"\n", 0, end) + 1  # after the From_ line
        if not start:
            return None
        spilled = bytes(buffer[:start]), io.BytesIO()
    with memoryview(buffer) as view:
        spilled[1].write(view[start:end])
    return spilled


def _message_end(buffer: bytearray, start: int, end: int) -> int:
    """Where the message in buffer[start:end] ends: before the blank line that ends a
    block, which separates messages and is not theirs."""
    for blank in (b"\n", b"\r\n"):
        if end - start == len(blank) and buffer.endswith(blank, start, end) or \
                end - start > len(blank) and buffer.endswith(b"\n" + blank, start, end):
            return end - len(blank)
    return end


def _follows_blank_line(buffer: bytearray, newline: int) -> bool:
    """Whether the line that ends at buffer[newline] is empty (LF or CRLF)."""
    return buffer[newline - 1:newline] == b"\n" or buffer[newline - 2:newline] == b"\n\r"


# --- the mailbox lock ---------------------------------------------------------------------

class Locked(Exception):
    """An mbox whose lock another program held for all the time reading would wait."""


class Rewritten(Exception):
    """An mbox rewritten in place while it was read (a mail client's expunge or flag change
    shifts its bytes): the messages read before are whole; the rest is not read."""


def _is_file(stream: BinaryIO) -> bool:
    try:
        stream.fileno()
    except (AttributeError, io.UnsupportedOperation):
        return False
    return True


def _read_unrewritten(stream: BinaryIO, size: int, tail: bytes) -> bytes:
    """Up to `size` bytes of a live mbox, read holding its shared locks (a rewrite, made under
    the writer's lock, is never half read), once the `tail` read last is found still where
    it was; raises Rewritten if it is not, Locked if a writer holds the lock past
    LOCK_WAIT_SECONDS."""
    descriptor, offset = stream.fileno(), stream.tell()
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        with _read_lock(descriptor) as taken:
            if taken:
                if tail and os.pread(descriptor, len(tail), offset - len(tail)) != tail:
                    raise Rewritten(f"the mbox was rewritten while it was read (a mail "
                                    f"client's expunge or flag change?): the messages after "
                                    f"byte {offset - len(tail)} are not read; import it again")
                return stream.read(size)
        if time.monotonic() >= deadline:
            raise Locked(f"an mbox stayed locked for {LOCK_WAIT_SECONDS:g} s in the middle "
                         f"of reading it, at byte {offset}; the rest is not read")
        time.sleep(LOCK_POLL_SECONDS)


class Ends:
    """Where each mbox file of one import ends (bytes): its size taken under its lock
    (end_under_lock) the first time it is counted or read, so counting for progress and
    reading see the same messages, and messages appended meanwhile wait for the next import
    (which stores only those: the store keeps the same bytes once). Files are told apart by
    (device, inode). An end that is no message boundary any more (the mbox was rewritten,
    an expunge) is taken again."""

    def __init__(self, lock_wait: float = LOCK_WAIT_SECONDS):
        self.lock_wait = lock_wait  # seconds, for all the import's mboxes together
        self._ends: dict[tuple[int, int], int | None] = {}  # None: found locked

    def end_of(self, stream: BinaryIO, path: os.PathLike | str) -> int:
        """The end of the open mbox `stream` found at `path`; raises Locked (see
        end_under_lock) or OSError. The import waits lock_wait seconds for locked mboxes
        in all, not each (a user can leave a dotlock beside each of theirs); one found
        locked before is looked at once more, without waiting."""
        status = os.fstat(stream.fileno())
        identity = (status.st_dev, status.st_ino)
        known = self._ends.get(identity, -1)
        if known is None or known < 0 or not _still_ends_there(stream.fileno(), known,
                                                                status.st_size):
            wait = 0.0 if known is None else self.lock_wait
            started = time.monotonic()
            try:
                known = end_under_lock(stream, path, wait)
            except Locked:
                self._ends[identity] = None
                raise
            finally:
                self.lock_wait = max(0.0, self.lock_wait - (time.monotonic() - started))
            self._ends[identity] = known
        return known


def end_under_lock(stream: BinaryIO, path: os.PathLike | str,
                   wait: float = LOCK_WAIT_SECONDS) -> int:
    """The size in bytes of the open mbox `stream` (the file at `path`), taken while no
    appender can be writing to it: holding an fcntl read lock (F_RDLCK, the whole file) with
    no dotlock "<path>.lock" there, as mutt and Dovecot read an mbox. The lock is let go at
    once: reading takes minutes, a delivery must not wait for it. Appends only extend an
    mbox, so bytes up to that size are whole messages whatever is appended later. Waits at
    most `wait` seconds, then raises Locked naming the file; OSError if it cannot stat it."""
    dotlock = f"{os.fspath(path)}{DOTLOCK_SUFFIX}"
    deadline = time.monotonic() + wait
    while (size := _size_if_unlocked(stream.fileno(), dotlock)) is None:
        if time.monotonic() >= deadline:
            raise Locked(_locked_reason(path, dotlock, wait))
        time.sleep(LOCK_POLL_SECONDS)
    return size


def _still_ends_there(descriptor: int, end: int, size: int) -> bool:
    """Whether a message still ends at byte `end` of the file of `size` bytes: the file ends
    there, or a separator (a From_ line after a blank line) starts there. Appending keeps it
    so; rewriting the mbox (an expunge) need not. Its bytes are read without the lock: an
    appender writing there now writes a new entry, whose From_ line starts at `end`."""
    if end == size or end == 0:
        return True
    if end > size:
        return False
    start = max(0, end - 3)  # the blank line before it: LF, or CRLF, then the LF at end - 1
    around = bytearray(os.pread(descriptor, end - start + FROM_LINE_LIMIT + 2, start))
    newline = end - 1 - start
    line = around[newline + 1:]
    line = line[:line.find(b"\n") + 1] or line  # up to its line ending (none: the last line)
    return around[newline:newline + 1] == b"\n" and _follows_blank_line(around, newline) \
        and is_from_line(line)


def _size_if_unlocked(descriptor: int, dotlock: str) -> int | None:
    """The file's size if we hold its read lock and no dotlock is there, else None."""
    with _read_lock(descriptor) as taken:
        # The dotlock is looked for under our lock: a writer taking both (Dovecot, postfix)
        # may hold the dotlock while it waits for the fcntl lock we hold. Looked for again
        # after the size: one who takes the dotlock alone may just have begun writing.
        if not taken or os.path.lexists(dotlock):
            return None
        size = os.fstat(descriptor).st_size
        if os.path.lexists(dotlock) or os.fstat(descriptor).st_size != size:
            return None  # a delivery under the dotlock alone came and went meanwhile
        return size


@contextlib.contextmanager
def _read_lock(descriptor: int) -> Iterator[bool]:
    """Shared locks on the whole file of both kinds a writer may take, fcntl (POSIX) and
    flock (BSD; on Linux neither sees the other), taken without waiting: False if another
    process holds a write lock of either kind. On a file system that keeps no locks of a
    kind no one can hold one, and MTAs writing there rely on the dotlock: True then."""
    with _shared(fcntl.lockf, descriptor) as posix, _shared(fcntl.flock, descriptor) as bsd:
        yield posix and bsd


@contextlib.contextmanager
def _shared(lock: Callable, descriptor: int) -> Iterator[bool]:
    """A shared lock by `lock` (fcntl.lockf or fcntl.flock) without waiting: False if held."""
    try:
        lock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _HELD:
            yield False
            return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            lock(descriptor, fcntl.LOCK_UN)


def _locked_reason(path: os.PathLike | str, dotlock: str, wait: float) -> str:
    waited = f"waited {wait:g} s" if wait else "the import's wait for locked mboxes is over"
    if os.path.lexists(dotlock):
        return (f"mbox {path} is locked by another program (an MTA delivering?): its lock "
                f"file {dotlock} is there ({waited}); not read. Import it again when the "
                f"delivery is done, or remove {dotlock} if no program is delivering to it "
                "(a stale lock)")
    return (f"mbox {path} is locked by another program (an MTA delivering?): its fcntl or "
            f"flock lock is held ({waited}); not read. Import it again when the delivery is "
            "done")


# --- writing ------------------------------------------------------------------------------

def write_entries(messages, output: BinaryIO) -> int:
    """Write (name, raw) pairs to `output` as mboxrd (mbox keeps no names); returns how
    many were written. The stream need not be seekable."""
    written = 0
    for _name, raw in messages:
        output.write(from_line_for(raw))
        write_quoted(raw, output)
        output.write(final_line_ending(raw))
        output.write(b"\n")  # the blank line after every message, the last one too
        written += 1
    return written


# Quoting and unquoting go through the message a match at a time and pass on the bytes
# between matches in pieces of at most this size. re.sub built a list of two pieces per
# match and joined them: quoting a 52 MB message of 8.7 million "From " lines took 2 GB.
_PIECE = 1 << 20


def write_quoted(raw: bytes, output: BinaryIO) -> None:
    """Write `raw` to `output` with mboxrd quoting (quote_from_lines), in pieces of at most
    _PIECE bytes (bytes objects): memory beyond `raw` stays about 2 * _PIECE however many
    lines there are to quote."""
    if b"From " not in raw:
        output.write(raw)
        return
    _write_edited(raw, _FROM_TO_QUOTE, b">", 0, output.write)


def quote_from_lines(raw: bytes) -> bytes:
    """mboxrd quoting: one more ">" before every line matching "^>*From "."""
    if b"From " not in raw:
        return raw
    result = io.BytesIO()
    write_quoted(raw, result)
    return result.getvalue()


def unquote_from_lines(message: bytes) -> bytes:
    """mboxrd unquoting: one ">" less before every line matching "^>+From "."""
    if b">From " not in message:
        return message
    unquoted = io.BytesIO(message)
    unquote_in_place(unquoted)  # on a copy: the BytesIO shares `message` until written
    return unquoted.getvalue()


def unquote_in_place(message: io.BytesIO) -> None:
    """unquote_from_lines of the bytes `message` holds, where they are: each quoting ">"
    let go and the bytes after it moved up (memmove), then the end cut. No copy, unless
    the buffer is shared (a getvalue() still held). Every later match is found after the
    bytes already moved, so the search never reads what it wrote."""
    with message.getbuffer() as view:
        kept = read = 0  # view[:kept] is unquoted; view[read:] is still to move
        for match in _QUOTED_FROM.finditer(view):
            length = match.start() - read
            view[kept:kept + length] = view[read:match.start()]
            kept, read = kept + length, match.start() + 1
        view[kept:kept + len(view) - read] = view[read:]
        kept += len(view) - read
    message.truncate(kept)


def _write_edited(raw: bytes, pattern: re.Pattern, insert: bytes, skip: int,
                  write: Callable[[bytes], object]) -> None:
    """Write `raw` with `insert` put before, and `skip` bytes left out at, the start of each
    match of `pattern`, in pieces (bytes) of at most about _PIECE bytes."""
    pending = bytearray()
    start = 0  # raw[start:] is not written yet

    def flush() -> None:
        nonlocal pending
        if pending:
            write(bytes(pending))
            pending = bytearray()

    def copy(end: int) -> None:  # raw[start:end]
        if end - start + len(pending) <= _PIECE:
            pending.extend(memoryview(raw)[start:end])
            return
        flush()
        for at in range(start, end, _PIECE):
            write(raw[at:min(at + _PIECE, end)])

    for match in pattern.finditer(raw):
        copy(match.start())
        pending.extend(insert)
        start = match.start() + skip
        if len(pending) >= _PIECE:
            flush()
    copy(len(raw))
    flush()


def final_line_ending(raw: bytes) -> bytes:
    """What with_final_line_ending adds to `raw` (quoted or not: quoting changes neither its
    last bytes nor whether it holds a CRLF)."""
    if raw.endswith(b"\n"):
        return b""
    if raw.endswith(b"\r"):
        return b"\n"
    return b"\r\n" if b"\r\n" in raw else b"\n"


def with_final_line_ending(raw: bytes) -> bytes:
    """`raw` ending in a line ending: CRLF if it uses CRLF, else LF."""
    ending = final_line_ending(raw)
    return raw + ending if ending else raw


def from_line_for(raw: bytes) -> bytes:
    """"From SENDER DATE", the form mutt's and Python's readers expect, ASCII only."""
    headers = _from_line_fields(raw)
    sent = time.asctime(_sent_time(headers.get("date")))
    return f"From {_envelope_sender(headers)} {sent}\n".encode("ascii")


def _from_line_fields(raw: bytes) -> dict[str, str]:
    """The first Return-Path, Sender, From and Date fields of the header section, unfolded,
    each at most FROM_FIELD_LIMIT bytes (lowercased name -> value). Only these are read:
    the whole section through the email package cost 13 times a 48 MB header field."""
    end = _HEADER_END.search(raw)
    limit = end.start() + 1 if end else len(raw)
    fields: dict[str, str] = {}
    for match in _FROM_LINE_FIELD.finditer(raw, 0, limit):
        name = match.group(1).lower().decode("ascii")
        if name not in fields:
            value = re.sub(rb"\r?\n", b"", _unfolded(raw, match.end(), limit))
            fields[name] = value.decode("ascii", "surrogateescape").strip()
            if len(fields) == _FROM_LINE_FIELD_NAMES:
                break
    return fields


def _unfolded(raw: bytes, start: int, limit: int) -> bytes:
    """The first FROM_FIELD_LIMIT bytes of the field value starting at `start` (line endings
    still in it), through its continuation lines (those starting with a space or a tab), at
    most to byte `limit`; it ends before the line ending of its last line. Reads no more
    than FROM_FIELD_LIMIT + 2 bytes, however many lines the field has."""
    window = raw[start:min(limit, start + FROM_FIELD_LIMIT + 2)]
    position = 0
    while (line_end := window.find(b"\n", position)) >= 0:
        if window[line_end + 1:line_end + 2] not in (b" ", b"\t"):
            return window[:min(line_end, FROM_FIELD_LIMIT)]
        position = line_end + 1
    return window[:FROM_FIELD_LIMIT]


def _envelope_sender(headers: dict[str, str]) -> str:
    for field in ("return-path", "sender", "from"):
        address = email.utils.parseaddr(str(headers.get(field, "")))[1]
        if address and _PLAIN_ADDRESS.fullmatch(address):
            return address
    return "MAILER-DAEMON"


def _sent_time(date_header) -> time.struct_time:
    """The Date header in UTC; the time of export when it is missing or unreadable."""
    try:
        sent = email.utils.parsedate_to_datetime(str(date_header))
        if sent.tzinfo is None:
            return sent.timetuple()  # "-0000": the zone is unknown, the time is UTC
        return time.gmtime(sent.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return time.gmtime()
