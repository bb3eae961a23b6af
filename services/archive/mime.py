"""Header summary of a raw RFC 822 message, for store metadata and the index.

Everything here takes bytes from strangers, so nothing raises on bad input: malformed MIME,
unknown charsets, 8-bit headers, NULs, megabyte header lines and absurdly deep multiparts all
yield a best-effort summary. Only MemoryError gets through: it is a limit, not bad input. The stdlib parser with the compat32 policy is the tolerant one; the
decoding of headers (RFC 2047) and of 8-bit bytes is done here, where its errors are ours.
"""
from __future__ import annotations

import binascii
import bisect
import dataclasses
import email.utils
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from email import errors
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from typing import Iterator

from services.archive import (charsets, header_blocks, media_types, mime_parts, mimetree,
                              transfer_encoding, uuencode)
from services.archive.addresses import parse_address_list

# The header block the intake summary reads: a message without a blank line is all header,
# and parsing 100 MB of header lines takes 11 times that in memory before the 250 (measured).
# Real header blocks are a few KB; Postfix keeps 100 KB of one (header_size_limit).
# Whose mail a message is comes from this bounded block too, in the index and in the web's
# access check alike (header_block, summarize_parsed).
SUMMARY_HEADER_LIMIT = 256 * 1024
# Of each value of a field the summary reads (SUMMARY_FIELDS), its first bytes: as much as
# header_blocks keeps of one past its cut. A Subject of 50 MiB took the worker's summary
# 240 MB and the indexer 1 GB; extract.within_index_limits bounds what the index takes.
# An address list is cut after its last comma within the limit (no part of an address).
FIELD_VALUE_LIMIT = header_blocks.KEPT_SUMMARY_FIELD_LIMIT

PARAMETER_HEADERS = ("content-type", "content-disposition")
# Whose addresses say whose mail it is. The Resent- fields (RFC 5322 3.6.6) are the
# recipients of a resent copy: they work as To, Cc and Bcc do ("function identically ...
# except that they indicate the recipients of the resent message").
ADDRESS_HEADERS = ("from", "to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")
PARAMETER_HEADER_LIMIT = header_blocks.CONTENT_TYPE_VALUE_LIMIT  # (the walks read as much)

# RFC 2047 encoded words. Encoded text holds no '?', so `[^?]*` stops at the next '?' and
# the scan stays linear; the stdlib's lazy `.*?` is quadratic on a long run of '=?x?q?a'.
ENCODED_WORD = re.compile(r"=\?([^?]*)\?([qQbB])\?([^?]*)\?=")
# Control characters mean nothing in a header and garble logs and lists: CR/LF are folding
# (dropped, the whitespace after them stays), the others become spaces.
HEADER_CONTROLS = {c: " " for c in [*range(0x00, 0x20), 0x7F]} | {0x0D: None, 0x0A: None}
# Charset detection on header text is rarely worth its cost (a few characters say little):
# one header value gets at most this many attempts, so a header of thousands of encoded
# words in made-up charsets stays linear.
HEADER_DETECTIONS = 2
# Raw (unencoded) 8-bit header bytes that are not UTF-8 (RFC 6532) are most likely in the
# charset the message declares for its text: its own Content-Type charset, else that of its
# first text part (found within this many bytes after the header block, so that the store's
# metadata at put, which parses the header block alone, reads them as the index does). A
# declared charset is taken when the bytes decode in it without error into text that is no
# mess (charset-normalizer's mess ratio of its first HINT_SAMPLE characters below
# HINT_MESS_LIMIT, no private-use, unassigned or control characters): a label that lies
# leaves the bytes to the guess (charsets.decode_unlabelled), as an unlabelled message.
CHARSET_SCAN_LIMIT = 64 * 1024
HINT_SAMPLE = 4096
HINT_MESS_LIMIT = 0.1
# 7-bit header text with escape sequences (ISO-2022-JP and kin, sent raw by Japanese
# mailers), decoded by the first of these (after a declared ISO-2022 charset) it fits.
ISO_2022 = ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_2004", "iso2022_kr")
_CONTENT_TYPE_FIELD = re.compile(rb"(?im)^content-type:(" + header_blocks._FOLDED + rb")")
_CHARSET_PARAMETER = re.compile(rb'(?i)(?:^|[;\s])charset[ \t]*=[ \t]*"?[ \t]*([^"\s;]{1,64})')
BODY_SAMPLE_BYTES = 16 * 1024
_TRANSFER_ENCODING = re.compile(
    rb"(?im)^content-transfer-encoding:[ \t]*+(?:\r?\n[ \t]++)?([a-z0-9-]+)")
_CHARSETS_KEY = "_declared_charsets"  # where parse_message/parse_headers leave them on a part


@dataclass(frozen=True)
class MessageSummary:
    message_id: str | None
    sent_date: float | None          # epoch seconds, UTC
    from_addrs: list[str]            # "Name <addr>" or "addr"
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    attachment_names: list[str]
    has_attachment: bool
    # The bare addresses of From, To, Cc, Bcc and the Resent- recipients by header name
    # (ADDRESS_HEADERS: "from", "to", ..., "resent-bcc"; absent when none), lowercased, as
    # services.archive.addresses read them: whose mail the message is. Always read from
    # header_block(raw) (summarize_parsed).
    header_addresses: dict[str, list[str]] = field(default_factory=dict)
    # The Resent-To, Resent-Cc and Resent-Bcc fields' recipients, as displayed (all resent
    # blocks' together, RFC 5322 3.6.6).
    resent_to: list[str] = field(default_factory=list)
    resent_cc: list[str] = field(default_factory=list)
    resent_bcc: list[str] = field(default_factory=list)


class NestingTooDeep(errors.MessageDefect):
    """The MIME tree recursed past the interpreter's limit; only the headers were parsed."""


class _RawHeaders(Compat32):
    """compat32, but header values come back as the parser stored them (8-bit bytes as
    surrogate escapes) instead of as Header objects, so one decoder handles every case.
    Headers with parameters are cut short: the stdlib's parameter parser is quadratic in
    their number (2.6 s for a 1 MB Content-Type), and no real one is longer than a few KB."""

    def header_fetch_parse(self, name, value):
        if name.lower() in PARAMETER_HEADERS:
            return value[:PARAMETER_HEADER_LIMIT]
        return value


class _Message(Message):
    """email.message.Message whose content type is read from its fields once until they
    change: both parsers ask a multipart's type for each part they make (a digest's parts
    default to message/rfc822), and Message.get walks every field of it: 3,000 parts under
    a header block of 50,000 lines took 170 s, and what header_blocks and mime_parts let
    through (200,000 lines, 10,000 parts) would take the extraction worker far past its
    time limit. The cache holds the list of fields itself (compared by identity, so a new
    list is never taken for the old) with its length and the default type; the one
    mutator that changes a field in place, replace_header, and the others, drop it.
    The type is media_types.media_type's (a clean `type/subtype`, else text/plain), not
    the stdlib's: the parser, the walks, the index and the web all read this one."""

    _memo = None  # (the fields' list, its length, the default type, {key: what was read})

    def get_content_type(self):
        memo = self.memo()
        if "type" not in memo:
            memo["type"] = self._read_content_type()
        return memo["type"]

    def _read_content_type(self) -> str:
        field = self.get("content-type")  # the first, as the stdlib's reads it
        return self.get_default_type() if field is None else media_types.media_type(str(field))

    def memo(self) -> dict:
        """A dict for what is read from this part's fields (the type; is_attachment,
        filename_of), kept while the fields stay the same list of the same length under
        the same default type, and dropped by every mutator."""
        memo, fields = self._memo, self._headers
        if memo is None or memo[0] is not fields or memo[1] != len(fields) \
                or memo[2] != self._default_type:
            memo = self._memo = (fields, len(fields), self._default_type, {})
        return memo[3]

    def _changed(self):
        self._memo = None

    def replace_header(self, _name, _value):
        self._changed()
        super().replace_header(_name, _value)

    def __setitem__(self, name, val):
        self._changed()
        super().__setitem__(name, val)

    def __delitem__(self, name):
        self._changed()
        super().__delitem__(name)

    def add_header(self, _name, _value, **_params):
        self._changed()
        super().add_header(_name, _value, **_params)

    def set_raw(self, name, value):
        self._changed()
        super().set_raw(name, value)


POLICY = _RawHeaders(message_factory=_Message)


class _HeldMessage(mimetree.HeldPayload, _Message):
    """A _Message whose 8-bit leaf payload the parser may hold as bytes (parse_message's
    `held`)."""


HELD_POLICY = POLICY.clone(message_factory=_HeldMessage)


def summarize(raw: bytes) -> MessageSummary:
    return summarize_parsed(parse_message(raw), raw)


def summarize_headers(raw: bytes) -> MessageSummary:
    """The summary from the top-level headers only (no attachment names): what the store
    needs at intake, at a fraction of a full parse; the indexer fills in the rest. Only
    header_block(raw) is read."""
    return summarize_message(parse_headers(raw))


def summarize_parsed(message: Message, raw: bytes) -> MessageSummary:
    """The summary of `message`, parsed whole from `raw` (or from its first bytes, when those
    hold the whole header block), its header_addresses as summarize_headers reads them: so
    the index's address terms and the access check (services.web.access) take whose mail a
    message is from the same bounded header block, whatever its size. The other fields
    (names and addresses to search by words, subject...) are read to FIELD_VALUE_LIMIT
    bytes of each value (extract.within_index_limits bounds what the index takes)."""
    summary = summarize_message(message)
    if header_end(raw) <= SUMMARY_HEADER_LIMIT:
        return summary  # `message` holds the whole block: the same addresses either way
    return dataclasses.replace(summary,
                               header_addresses=summarize_headers(raw).header_addresses)


def header_end(raw: bytes) -> int:
    """Where the header block ends: after the first empty line, whatever the line endings."""
    crlf = raw.find(b"\r\n\r\n")
    crlf_end = crlf + 4 if crlf >= 0 else len(raw)
    # LF LF ends it first only if it lies before that: a CR LF message is not read through.
    lf = raw.find(b"\n\n", 0, crlf_end)
    return lf + 2 if lf >= 0 else crlf_end


def header_block(raw: bytes) -> bytes:
    """The top-level header block of a raw message as far as it is ever read: whole up to
    SUMMARY_HEADER_LIMIT bytes; past that, the complete header fields before the limit.
    The field the limit cuts is left out whole, folded lines included, because a prefix of
    it is another field: `To: bob@example.community` cut after `.com` would be bob's."""
    end = header_end(raw)
    if end <= SUMMARY_HEADER_LIMIT:
        return raw[:end]
    cut = SUMMARY_HEADER_LIMIT
    while cut > 0:  # back to the last line break before the limit that starts a new field
        cut = max(raw.rfind(b"\n", 0, cut), raw.rfind(b"\r", 0, cut))
        if cut >= 0 and raw[cut + 1] not in b" \t\r\n":
            return raw[:cut + 1]
    return b""


def parse_headers(raw: bytes) -> Message:
    """The top-level header block of a raw message, parsed alone (no body, no parts): a
    third of the cost of parse_message on the same block. Only header_block(raw) is read,
    as for summarize_headers: this runs at intake."""
    message = _parse_headers_only(with_field_names_closed(header_block(raw)))
    return _declaring(message, raw)


# RFC 5322 4.5.3 (obs-optional): white space may come between a field's name and its colon.
# The stdlib parser takes such a line ("CC : alice@...") for the end of the header block,
# so the fields after it were lost: the subject, the date, a Cc that grants access; in a
# MIME part's header block, its type, its file name, its encoding (the attachment was read
# as text of the part before it).
# A line starts after a LF or a lone CR: the feedparser ends lines at both.
_OBS_FIELD_NAME = re.compile(rb"(?:^|(?<=\r))([!-9;-~]+)[ \t]+:", re.MULTILINE)
# A boundary a multipart declares (RFC 2046 5.1.1: 1-70 characters), quoted or not.
_BOUNDARY = re.compile(rb'(?i)[;\s]boundary[ \t]*=[ \t]*(?:"([^"\r\n]{1,70})"|([^\s;"]{1,70}))')


def with_field_names_closed(raw: bytes) -> bytes:
    """`raw` with white space between a header field's name and its colon removed (RFC 5322
    4.5.3's obsolete syntax) in the top-level header block and in each MIME part's, the
    lines after a delimiter of a boundary the message declares (RFC 2046 5.1.1) up to the
    first empty line; for parsing only: what is stored stays as it came. Bodies are left
    as they are. Bytes in, bytes out; never raises."""
    return _without(raw, _field_name_closings(raw))


def _without(raw: bytes, closings: list[tuple[int, int]]) -> bytes:
    """`raw` without its bytes at `closings` ([start, end) each, in order); `raw` itself
    when there are none."""
    if not closings:
        return raw
    kept, position = [], 0
    for start, end in closings:
        kept.append(raw[position:start])
        position = end
    kept.append(raw[position:])
    return b"".join(kept)


# A line with its line end, as bytes.splitlines(keepends=True) cuts them: CR LF, CR or LF.
_LINE = re.compile(rb"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+\Z")


def _field_name_closings(raw: bytes) -> list[tuple[int, int]]:
    """The [start, end) of each run of white space with_field_names_closed removes from
    `raw`, in order."""
    if b" :" not in raw and b"\t:" not in raw:  # the common case, at the speed of a find
        return []
    end = header_end(raw)
    return [_spaces_of(found, 0) for found in _OBS_FIELD_NAME.finditer(raw, 0, end)] \
        + _part_field_name_closings(raw, end)


def _spaces_of(found: re.Match, offset: int) -> tuple[int, int]:
    """The white space an _OBS_FIELD_NAME match holds, at `offset` + its place."""
    return offset + found.end(1), offset + found.end() - 1


def _part_field_name_closings(raw: bytes, start: int) -> list[tuple[int, int]]:
    """_field_name_closings in each part's header block of raw[start:]."""
    delimiters = {b"--" + (quoted or bare) for quoted, bare in _BOUNDARY.findall(raw)}
    if not delimiters:
        return []
    closings, in_header = [], False
    for found_line in _LINE.finditer(raw, start):  # (not splitlines: a copy of the body)
        line = found_line.group()
        if in_header and line.strip(b"\r\n"):
            closings += [_spaces_of(found, found_line.start())
                         for found in _OBS_FIELD_NAME.finditer(line)]
        else:  # a delimiter line, with its transport padding, opens a part's header block
            in_header = line.rstrip() in delimiters
    return closings


def parse_message(raw: bytes | list[bytes], spans: list | None = None,
                  held: bool = False) -> Message:
    """The message tree; on a too deeply nested one, its headers only (with a defect).
    The tree is the stdlib feedparser's; services.archive.mimetree builds the same tree for
    a fraction of the CPU where it can, the feedparser where it cannot. Of a header block
    past header_blocks.HEADER_LINES_LIMIT, its first fields and its MIME fields
    (services.archive.header_blocks): millions of header lines would take gigabytes. Of
    more than mime_parts.MAX_PARTS parts, the first ones, the text of the rest as one
    text/plain part, and a mime_parts.PartsNotParsed defect on the message saying how
    many (services.archive.mime_parts): millions of parts would take gigabytes too.
    mime_parts counts the parts of the message itself first (header_blocks walking a 19
    MB chain of multiparts before mime_parts cut it took over 120 s), and again those of
    header_blocks' answer when it cut a block: a Content-Type past its cut is the field's
    head to the parser, whose boundary may be another than the whole field's (the text
    part of the first count's cut, a part itself, is allowed past MAX_PARTS: it was
    re-cut, and counted twice). A body mime_parts gave in base64 that came x-uuencode is
    an x-uuencode part in the tree (mime_parts.restored: no bytes of it hold its mark).

    `spans`, if a list, gets (part, start, end) for each message/* part (a delivery status
    too) whose content the parse read from raw[start:end] (mimetree.parse's spans, of
    `raw` itself: white space removed before a field name's colon is counted back in);
    none where the parser cannot say (the feedparser parsed, or a bound above cut).
    `held`: each leaf part whose payload holds an 8-bit byte holds it as its bytes
    (mimetree.HeldPayload: the str of such a payload takes twice its size; the str is made
    when read), where mimetree parses.

    `raw` may be given as a list holding it alone (`given`), which the parse then holds
    the only reference to: when mime_parts cuts it into other bytes, the list gets back
    only its start that the tree and the summary read (_charset_prefix: its header block
    and more), and the rest is freed before the parse (a worker held a message of 20,000
    parts beside its cut copy: 84 MiB more, #20); else `raw` itself."""
    given = raw if isinstance(raw, list) else None
    if given is None:
        parts, unparsed = mime_parts.bounded(raw)
    else:
        parts, unparsed = _bounded_letting_go(given)
        raw = given[-1]
    parsed = header_blocks.bounded(parts)
    if parsed is not parts:  # a block cut: its parts counted again, as the parser gets it
        parsed, more = mime_parts.bounded(parsed, 1 if unparsed else 0)  # (its text part)
        unparsed += more
    closings = _field_name_closings(parsed)
    located = [] if spans is not None and parsed is raw else None  # (a cut's are not raw's)
    parsed = _without(parsed, closings)
    del parts
    message = _parsed(parsed, located, held)
    if located:
        spans.extend(_in_raw(located, closings))
    if parsed is not raw:  # (an x-uuencode body given in base64 is x-uuencode again)
        message = mime_parts.restored(message)
    if unparsed:
        message.defects.append(mime_parts.PartsNotParsed(unparsed))
    return _declaring(message, raw)


def _bounded_letting_go(given: list[bytes]) -> tuple[bytes, int]:
    """mime_parts.bounded of the message `given` holds alone, which it takes from it: when
    cut, the list gets back its start (_charset_prefix), and the message is let go before
    its cut is joined when mime_parts can spill it (_Pieces.spill); else the message is
    given back as it is."""
    raw = given.pop()
    pieces, unparsed = mime_parts.bounded_pieces(raw)
    if pieces is raw:
        given.append(raw)
        return raw, unparsed
    given.append(_charset_prefix(raw))
    if isinstance(pieces, bytes):
        return pieces, unparsed
    pieces.spill()
    del raw  # (spilled, the map holds it; else the pieces still do)
    return pieces.joined(), unparsed


def _parsed(parsed: bytes, spans: list | None = None, held: bool = False) -> Message:
    """The message tree of `parsed` (parse_message's bounded bytes); on a too deeply
    nested one, its headers only (with a NestingTooDeep defect). `spans`: mimetree's,
    in `parsed`; `held`: parse_message's."""
    policy = HELD_POLICY if held else POLICY
    try:
        message = mimetree.parse(parsed, policy, spans, held)
        if message is None:
            message = BytesParser(policy=policy).parsebytes(parsed)
    except RecursionError:
        message = _parse_headers_only(parsed)
        message.defects.append(NestingTooDeep())
    except MemoryError:
        raise  # not bad input: the caller's resources ran out (the extraction pool says so)
    except Exception:  # the parser is meant to record defects, not raise; never trust it
        message = _parse_headers_only(parsed)
    return message


def _in_raw(spans: list[tuple[Message, int, int]], closings: list[tuple[int, int]]
            ) -> list[tuple[Message, int, int]]:
    """`spans` (positions in _without(raw, closings)) as positions in raw: each after a
    closing is as much later as the white space removed before it. None lies inside one
    (a part's body starts and ends at a line's start or end; a closing is inside a line)."""
    if not closings:
        return spans
    closed_at, removed, total = [], [], 0  # where each closing is in the closed text
    for start, end in closings:
        closed_at.append(start - total)
        total += end - start
        removed.append(total)

    def in_raw(position: int) -> int:
        before = bisect.bisect_right(closed_at, position)  # closings at or before it
        return position + (removed[before - 1] if before else 0)
    return [(part, in_raw(start), in_raw(end)) for part, start, end in spans]


class _Declared:
    """The codecs of the charsets a message declares (declared_charsets), found the first
    time they are asked for: most header blocks are ASCII and never ask. `guessed()`: the
    charset detection finds in its first text part's body (body_sample), for raw header
    bytes that fit none of them (a message with no label, or one that lies)."""

    def __init__(self, find, guess=lambda: ()):
        self._find, self._found, self._guess, self._guessed = find, None, guess, None

    def __iter__(self):
        if self._found is None:
            self._found = tuple(self._find())
        return iter(self._found)

    def __eq__(self, other):  # what they find (trees compared whole, as in the tests)
        return isinstance(other, _Declared) and \
            (tuple(self), self.guessed()) == (tuple(other), other.guessed())

    __hash__ = None

    def __repr__(self):
        return f"_Declared({tuple(self)!r}, guessed={self.guessed()!r})"

    def guessed(self) -> tuple[str, ...]:
        if self._guessed is None:
            self._guessed = tuple(self._guess())
        return self._guessed


def _detected_in(sample: bytes) -> tuple[str, ...]:
    codec = charsets.detected(sample) if not sample.isascii() else None
    return (codec,) if codec else ()


def _declaring(message: Message, raw: bytes) -> Message:
    """`message` with every part knowing the charsets its message declares (charsets_of):
    the top-level message's from its raw bytes (declared_charsets, as at put), an attached
    message's from its own parts. The tree holds only the start of `raw` those read
    (_charset_prefix), not all of it: a large message's bytes are freed once parsed."""
    read = _charset_prefix(raw)
    stack = [(message, _Declared(lambda: declared_charsets(read),
                                      lambda: _detected_in(body_sample(read))))]
    while stack:
        part, declared = stack.pop()
        part.__dict__[_CHARSETS_KEY] = declared
        if not part.is_multipart():
            continue
        inner = part is not message and safely(part.get_content_maintype, "") == "message"
        for child in part.get_payload():
            if isinstance(child, Message):
                stack.append((child, _tree_declared(child) if inner else declared))
    return message


def _charset_prefix(raw: bytes) -> bytes:
    """The start of `raw` that declared_charsets and body_sample read, which give the same
    of it as of `raw`: the header block, the first text part's header field and header
    block within CHARSET_SCAN_LIMIT bytes after it, and a sample of that part's content.
    `raw` itself when it is no longer."""
    return raw[:header_end(raw) + 2 * CHARSET_SCAN_LIMIT + 2 * BODY_SAMPLE_BYTES]


def declared_charsets(raw: bytes) -> tuple[str, ...]:
    """The codecs (charsets.codec_for) of the charsets a raw message declares for its text:
    its Content-Type's, then its first text part's with one (within CHARSET_SCAN_LIMIT bytes
    after the header block). Read from the bytes, so the header block alone (at put) and the
    whole message (the indexer) give the same."""
    found = []
    field = _CONTENT_TYPE_FIELD.search(header_block(raw))
    if field:
        found.append(_charset_parameter(field.group(1)))
    start = header_end(raw)
    for field in _CONTENT_TYPE_FIELD.finditer(raw, start, start + CHARSET_SCAN_LIMIT):
        if field.group(1).lstrip().lower().startswith(b"text/"):
            codec = _charset_parameter(field.group(1))
            if codec:
                found.append(codec)
                break
    return tuple(dict.fromkeys(codec for codec in found if codec))


def body_sample(raw: bytes) -> bytes:
    """The first BODY_SAMPLE_BYTES of the first text part's content (transfer encoding
    undone), found as declared_charsets finds its label; the body of a message that is not
    multipart."""
    start = header_end(raw)
    block = header_block(raw)
    field = _CONTENT_TYPE_FIELD.search(block)
    if field is None or not field.group(1).lstrip().lower().startswith(b"multipart/"):
        return _content(block, raw[start:start + BODY_SAMPLE_BYTES * 2])
    for field in _CONTENT_TYPE_FIELD.finditer(raw, start, start + CHARSET_SCAN_LIMIT):
        if field.group(1).lstrip().lower().startswith(b"text/"):
            part_start = field.start()
            head_end = part_start + header_end(raw[part_start:part_start + CHARSET_SCAN_LIMIT])
            return _content(raw[part_start:head_end],
                            raw[head_end:head_end + BODY_SAMPLE_BYTES * 2])
    return b""


def _content(head: bytes, data: bytes) -> bytes:
    encoding = _TRANSFER_ENCODING.search(head)
    encoding = encoding.group(1).lower() if encoding else b""
    data = data.split(b"\n--", 1)[0]
    if encoding == b"base64":
        data = transfer_encoding.decode_base64(
            b"".join(data.split())[:BODY_SAMPLE_BYTES // 3 * 4])
    elif encoding == b"quoted-printable":
        data = transfer_encoding.decode_quoted_printable(data)
    return data[:BODY_SAMPLE_BYTES]


def _tree_declared(message: Message) -> _Declared:
    def sample() -> bytes:
        for part in iter_parts(message, into_messages=False):
            if not part.is_multipart() and safely(part.get_content_maintype, "") == "text":
                return transfer_encoding.decoded_payload(part)[:BODY_SAMPLE_BYTES]
        return b""
    return _Declared(lambda: _tree_charsets(message), lambda: _detected_in(sample()))


def _charset_parameter(value: bytes) -> str | None:
    label = _CHARSET_PARAMETER.search(value)
    return charsets.codec_for(label.group(1).decode("ascii", "replace")) if label else None


def _tree_charsets(message: Message) -> tuple[str, ...]:
    """declared_charsets of a message known only as a parsed tree (an attached message)."""
    found = [charsets.codec_for(safely(message.get_content_charset, None))]
    for part in iter_parts(message, into_messages=False):
        if not part.is_multipart() and safely(part.get_content_maintype, "") == "text":
            codec = charsets.codec_for(safely(part.get_content_charset, None))
            if codec:
                found.append(codec)
                break
    return tuple(dict.fromkeys(codec for codec in found if codec))


def charsets_of(part: Message) -> tuple[str, ...] | _Declared:
    """The codecs of the charsets the message `part` belongs to declares: the hints for
    decoding its raw 8-bit header bytes (decode_header_text)."""
    declared = part.__dict__.get(_CHARSETS_KEY)
    if declared is None:  # a Message not made by parse_message or parse_headers
        declared = part.__dict__[_CHARSETS_KEY] = _tree_declared(part)
    return declared


def _parse_headers_only(raw: bytes) -> Message:
    try:
        return BytesParser(policy=POLICY).parsebytes(raw, headersonly=True)
    except MemoryError:
        raise
    except Exception:
        return Message(policy=POLICY)


def summarize_message(message: Message) -> MessageSummary:
    declared = charsets_of(message)
    fields = _fields(message, SUMMARY_FIELDS)
    found = {name: _addresses_of_values(fields[name], declared) for name in ADDRESS_HEADERS}
    names, has_attachment = _attachment_names(message)
    return MessageSummary(
        message_id=_message_id(_first(fields["message-id"])),
        sent_date=_epoch(_first(fields["date"])),
        from_addrs=_displayed(found["from"]), to=_displayed(found["to"]),
        cc=_displayed(found["cc"]), bcc=_displayed(found["bcc"]),
        subject=decode_header_text(_first(fields["subject"]), declared),
        attachment_names=names,
        has_attachment=has_attachment,
        header_addresses={name: [address for _, address in pairs]
                          for name, pairs in found.items() if pairs},
        resent_to=_displayed(found["resent-to"]), resent_cc=_displayed(found["resent-cc"]),
        resent_bcc=_displayed(found["resent-bcc"]),
    )


def _attachment_names(message: Message) -> tuple[list[str], bool]:
    """The file names of the message's attachments (is_attachment, each part of it), and
    whether it has any."""
    names, has_attachment = [], False
    for part in iter_parts(message):
        if is_attachment(part):
            has_attachment = True
            name = filename_of(part)
            if name:
                names.append(name)
    return names, has_attachment


def summarize_origin(message: Message) -> tuple[str | None, list[str], str]:
    """(Message-ID, From addresses as displayed, Subject) exactly as summarize_message reads
    them, without reading recipients or parts: what the store's metadata takes at intake
    (recipients are read once, by the indexer)."""
    return (_message_id(header(message, "message-id")),
            _displayed(addresses_in(message, "from")),
            decode_header_text(header(message, "subject"), charsets_of(message)))


def iter_parts(message: Message, into_messages: bool = True) -> Iterator[Message]:
    """Every part, depth first, without recursion (deep trees must not blow the stack).
    With into_messages=False an attached message/rfc822 is a leaf."""
    stack = [message]
    while stack:
        part = stack.pop()
        yield part
        if not part.is_multipart():
            continue
        if not into_messages and part is not message and part.get_content_maintype() == "message":
            continue
        children = part.get_payload()
        stack.extend(child for child in reversed(children) if isinstance(child, Message))


def is_attachment(part: Message) -> bool:
    """A leaf that is not body text: marked as attachment, named, or not text at all.
    Read once a part (_remembered): the summary and the extraction both ask."""
    return _remembered(part, "is_attachment", _is_attachment)


def whole_body_is_attachment(message: Message) -> bool:
    """Whether a message's (not a part's) body is one entity that is an attachment: a
    scanner's PDF, a photo, a named file, a text with Content-Disposition: attachment, a
    forwarded message sent as a file (FORWARDED_AS_FILE). Extraction reads that body as
    the message's one attachment (the root is no container to it), so the views list it
    as attachment 1 (services.web.mail_view) and part 1 (services.web.message_tree), and
    show no body."""
    if not message.is_multipart():
        return is_attachment(message)
    return _forwarded_as_file(message)


# A message whose whole body is a forwarded message (message/rfc822, message/global: RFC
# 2046 5.2.1, RFC 6532 3.5) with Content-Disposition: attachment (RFC 2183) or a file name
# is what its mailer shows: a mail with no text and one attached message, "fwd.eml" (review
# r11 F8: its files were listed as the message's own, the forward itself nowhere). Without
# either, the message/* body is a wrapper (a journal's, a gateway's): the message inside is
# the mail, read as its body and files.
FORWARDED_AS_FILE = ("message/rfc822", "message/global")


def _forwarded_as_file(message: Message) -> bool:
    return safely(message.get_content_type, "") in FORWARDED_AS_FILE \
        and (safely(message.get_content_disposition, None) == "attachment"
             or filename_of(message) is not None)


def message_parts(message: Message) -> Iterator[Message]:
    """The parts of `message` its body and files are read from, depth first: the message
    alone when its whole body is one attachment (whole_body_is_attachment: a forward sent
    as a file holds its own), else each part, an attached message a leaf
    (iter_parts(into_messages=False))."""
    if message.is_multipart() and whole_body_is_attachment(message):
        return iter([message])
    return iter_parts(message, into_messages=False)


# The files of a message, in the order extraction reads them (services.archive.extract: the
# indexer keeps their names, for filename: searches), the web, the API and `show` number
# them from 1 (services.web.mail_view) and the message tree has them
# (services.web.message_tree): each leaf that is an attachment (is_attachment; the message
# itself when its whole body is one, whole_body_is_attachment), and each file uuencoded in
# a part of body text (is_body_text, body_text_split), where that part is. Old mailers put
# files so into a text/plain body, or sent the body as one (Content-Transfer-Encoding:
# x-uuencode on a text or no type). UUENCODED_ATTACHMENT: an attachment sent x-uuencode (or
# another of its names) whose payload holds two or more blocks that decode is all of them,
# in order (attachment_files): a user expects every file the sender put there, where it had
# been its first alone. The first keeps the part's own name (filename_of, else its begin
# line's) and type: it is the file the part always stood for, under the number, name and
# download it always had (one such part of one block, or of none that decodes, stays its
# own one file, as it was); each further one is named by its begin line, as a file in body
# text is. The text around the blocks (blocks that do not decode included) is no body text:
# it is stored (the message as sent, the raw download) and neither indexed
# (services.archive.extract) nor shown in the web's reader, so that search and reader
# agree; around one block it is mostly a sender's or a mailer's damage (truncated or
# undecodable encoded lines). Numbering (one for every view): a file's number is its place
# in this order, counted from 1 over the whole message. Extraction reads the first
# containers.MESSAGE_ATTACHMENTS of them (forwarded messages' own files take from that
# count too; those past it are named by the indexer's "partly indexed" note). Its stored
# names are no numbering: they leave out unnamed files and have forwarded messages' (and
# TNEF files') own in line, where the views number such a file once and list its own inside
# it (review r5 F5). The views list more than those read, under the same numbers, so that
# what is stored stays downloadable (it always was: MIME attachments past 1,000 were listed
# and served before): at most this many uuencoded files of a message (uuencoded_files,
# attachment_files), as a hostile body of a million tiny blocks would be a million parts in
# memory and on the page.
UUENCODED_FILES_LISTED = mime_parts.MAX_PARTS
_UUENCODED_FILES_KEY = "_uuencoded_files"  # where uuencoded_files keeps a part's
_SPLIT_TEXT_KEY = "_body_text_split_text"  # and the text around them (body_text_of)
_UUENCODED_READ_KEY = "_uuencoded_files_read"  # on a message read_uuencoded_files has read
_NOT_LISTED_KEY = "_uuencoded_files_not_listed"  # how many past those (files_not_listed)
_FIRST_FILE_KEY = "_x_uuencode_first_file"  # an x-uuencode attachment's (attachment_files)
_LEFT_KEY = "_uuencoded_files_left"  # [how many more a page may list] (read_uuencoded_files)
# (the keys a part's split is kept under: services.web.message_tree's entity of a whole
# body shares its message's)
SPLIT_KEYS = (_UUENCODED_FILES_KEY, _SPLIT_TEXT_KEY, _NOT_LISTED_KEY, _FIRST_FILE_KEY)


def is_body_text(part: Message) -> bool:
    """Whether `part` is a leaf of body text read as text (not HTML, no attachment): the
    parts whose uuencoded files (body_text_split) are files of the message."""
    return not part.is_multipart() and not is_attachment(part) \
        and safely(part.get_content_type, "text/plain") != "text/html"


def body_text_split(part: Message, keep: int, view: bool = False) -> uuencode.Split:
    """A part of body text (is_body_text) as uuencode.split gives it: its text without the
    uuencoded blocks that decode, and its first `keep` files. An x-uuencode part is split
    from its lines as they came (the text around its blocks and every file; decoding it
    gives its first file alone), any other from its decoded bytes. `view`: the text may be
    a memoryview (transfer_encoding.payload_view: no copy of a large body). Never raises
    but MemoryError."""
    data = transfer_encoding.uuencoded_payload(part)
    if data is None:
        data = (transfer_encoding.payload_view if view else
                transfer_encoding.decoded_payload)(part)
    return uuencode.split(data, keep)


def uuencoded_name(name: bytes, charset: str | None) -> str | None:
    """The file name of a begin line, in its text's charset, its control characters blanked
    (as filename_of blanks those of a MIME name), no longer than a MIME name may be."""
    name = charsets.decode(name[:PARAMETER_HEADER_LIMIT], charset)  # a name, no document
    return name.translate(HEADER_CONTROLS).strip() or None


def attachment_name(part: Message) -> str | None:
    """The name of a file of the message as extraction names it: a uuencoded file's
    (FoundFile) as its begin line gives it; an attachment's filename_of, else, for one
    sent x-uuencode, its first file's begin line's."""
    if isinstance(part, FoundFile):
        return part.name
    name = filename_of(part)
    if name is None:
        found = x_uuencode_first_file(part)
        if found is not None:
            name = uuencoded_name(found.name, safely(part.get_content_charset, None))
    return name


class FoundFile(Message):
    """A file uuencoded in a part of body text, or found in a container (a TNEF file's,
    a zip archive's member), as a part of its own for the views: an attachment of the type
    its name's extension says (application/octet-stream without one; a .eml is
    message/rfc822, a forwarded message), its name (attachment_name) and its bytes
    (`data`); `unreadable`, of a container's member that could not be read out of it
    (containers.Member.problem: encrypted, a compression zipfile cannot undo, corrupt,
    over a limit), why: its `data` is then b"", no content of the file. `declared`: the
    (type, filename) its fields declare as extraction reads it: a found file has none
    (application/octet-stream, None); the first file of an x-uuencode attachment the
    part's (`content_type`, `declared_name`). A name makes no message: a .eml is one where
    extraction reads it as one (extract.reads_as_message, by its content)."""

    def __init__(self, name: str | None, data: bytes, content_type: str | None = None,
                 unreadable: str | None = None, declared_name: str | None = None):
        super().__init__()
        self.declared = (content_type or "application/octet-stream", declared_name)
        # by its extension alone: guess_type reads a name such as "data:text/html,..." as
        # a data URL, and a stranger names the file
        extension = name.rsplit(".", 1)[1] if name and "." in name else ""
        guessed = mimetypes.guess_type("file." + extension)[0] if extension else None
        # (`content_type`: the first file of an x-uuencode attachment is of the part's)
        self["Content-Type"] = content_type or guessed or "application/octet-stream"
        self["Content-Disposition"] = "attachment"
        self.name, self.data, self.unreadable = name, data, unreadable


def read_uuencoded_files(message: Message, within: Message | None = None) -> None:
    """Finds the uuencoded files of every part of body text of `message` (attached
    messages' too) and the further files of every attachment sent x-uuencode
    (attachment_files), at most UUENCODED_FILES_LISTED in all, in the order of the parts,
    and leaves each part's with it for uuencoded_files and attachment_files. Read once a
    message. `within`: the part of a message already read that `message` was parsed from
    (S/MIME signed content, an encoded or .eml forwarded message): its files count in that
    message's UUENCODED_FILES_LISTED (review r5 F2: a page's parsed messages, however
    many, list that many in all)."""
    if message.__dict__.get(_UUENCODED_READ_KEY):
        return
    left = (within.__dict__.get(_LEFT_KEY) if within is not None else None) \
        or [UUENCODED_FILES_LISTED]
    for part in iter_parts(message):
        part.__dict__[_LEFT_KEY] = left  # (shared: a message parsed from it takes from it)
        if _UUENCODED_FILES_KEY in part.__dict__:
            continue  # (read before, counted then)
        if is_body_text(part):
            left[0] -= len(uuencoded_files(part, left[0]))
        elif is_attachment(part):
            left[0] -= max(0, len(attachment_files(part, left[0])) - 1)
    message.__dict__[_UUENCODED_READ_KEY] = True


def attachment_split(part: Message, keep: int) -> uuencode.Split | None:
    """An attachment (is_attachment) sent x-uuencode (or another of its names), split
    (uuencode.split) with its first file and `keep` more; None for any other part. Never
    raises but MemoryError."""
    data = transfer_encoding.uuencoded_payload(part)
    return uuencode.split(data, 1 + max(0, keep)) if data is not None else None


def attachment_files(part: Message, keep: int = UUENCODED_FILES_LISTED) -> list[FoundFile]:
    """The files of an attachment sent x-uuencode whose payload holds two or more blocks
    that decode (UUENCODED_ATTACHMENT): its first file, named as the part is
    (attachment_name) and of the part's type, then at most `keep` more, each named by its
    begin line; [] for any other part (an attachment is then its own one file). Kept with
    the part the first time it is asked (read_uuencoded_files asks with what its message
    may still list), with its first file (x_uuencode_first_file), one split a view."""
    if _UUENCODED_FILES_KEY not in part.__dict__:
        found = attachment_split(part, keep) if is_attachment(part) else None
        part.__dict__[_FIRST_FILE_KEY] = found.files[0] if found and found.files else None
        files = []
        if found is not None and found.count >= 2:
            charset = safely(part.get_content_charset, None)
            first, *more = found.files
            files = [FoundFile(filename_of(part) or uuencoded_name(first.name, charset),
                               first.data, safely(part.get_content_type, None),
                               declared_name=filename_of(part)),
                     *_found_files(more, charset)]
        part.__dict__[_UUENCODED_FILES_KEY] = files
        part.__dict__[_NOT_LISTED_KEY] = found.more if files else 0
    return part.__dict__[_UUENCODED_FILES_KEY]


def x_uuencode_first_file(part: Message) -> uuencode.File | None:
    """The first file that decodes of a part sent x-uuencode (its name as its begin line
    gives it); None for another part, or when none decodes. An attachment's is read from the
    split attachment_files keeps with it (review r5 F3: each view splits it once, as a part
    of body text is, whatever the number of its blocks). Never raises but MemoryError."""
    if not is_attachment(part):
        return transfer_encoding.uuencoded_file(part)
    attachment_files(part)
    return part.__dict__[_FIRST_FILE_KEY]


def attachment_content(part: Message) -> bytes:
    """A leaf's content as transfer_encoding.decoded_payload gives it (bytes; b"" for what
    cannot be decoded): an attachment sent x-uuencode's first file
    (x_uuencode_first_file), its payload as it came when none decodes. Never raises but
    MemoryError."""
    payload = safely(lambda: transfer_encoding.uuencoded_payload(part), None)
    if payload is None or not is_attachment(part):
        return transfer_encoding.decoded_payload(part)
    first = x_uuencode_first_file(part)
    return first.data if first is not None else payload


def uuencoded_files(part: Message, keep: int = UUENCODED_FILES_LISTED) -> list[FoundFile]:
    """The files uuencoded in a part of body text (is_body_text), at most `keep` of them
    the first time the part is asked (read_uuencoded_files asks every part of a message
    with what its message may still list); kept with the part after."""
    if _UUENCODED_FILES_KEY not in part.__dict__:
        charset = safely(part.get_content_charset, None)
        found = body_text_split(part, max(0, keep))
        part.__dict__[_UUENCODED_FILES_KEY] = _found_files(found.files, charset)
        part.__dict__[_SPLIT_TEXT_KEY] = found.text
        part.__dict__[_NOT_LISTED_KEY] = found.more
    return part.__dict__[_UUENCODED_FILES_KEY]


def _found_files(files: list[uuencode.File], charset: str | None) -> list[FoundFile]:
    """Uuencoded files as parts for the views, each named by its begin line (in `charset`,
    its text's)."""
    return [FoundFile(uuencoded_name(file.name, charset), file.data) for file in files]


def files_not_listed(part: Message) -> int:
    """How many uuencoded files of `part` decode past those uuencoded_files or
    attachment_files keep (UUENCODED_FILES_LISTED): their numbers are taken all the same,
    so that a file after them has the number it has in every view."""
    return part.__dict__.get(_NOT_LISTED_KEY, 0)


def body_text_of(part: Message) -> bytes:
    """A part of body text's bytes without its uuencoded blocks (body_text_split's text),
    kept with the part: a view asks for them after listing the part's files, and a split
    decodes every block of the part (2 s of CPU for a body of a million tiny ones)."""
    if _SPLIT_TEXT_KEY not in part.__dict__:
        part.__dict__[_SPLIT_TEXT_KEY] = body_text_split(part, 0).text
    return part.__dict__[_SPLIT_TEXT_KEY]


def _is_attachment(part: Message) -> bool:
    maintype = safely(part.get_content_maintype, "text")
    if maintype == "multipart":
        return False
    disposition = safely(part.get_content_disposition, None)
    return disposition == "attachment" or maintype != "text" or filename_of(part) is not None


def filename_of(part: Message) -> str | None:
    """The decoded filename (RFC 2231 or RFC 2047 in the parameter), or the Content-Type
    name= that older mailers use instead. RFC 2231 charsets go through services.archive.
    charsets like any other (the stdlib would run any codec a stranger names). Read once
    a part (_remembered) for the charsets its message declares (charsets_of)."""
    declared = charsets_of(part)
    found = _remembered(part, "filename", lambda part: (declared, _filename_of(part)))
    if found[0] is not declared:  # (declared anew since: read again)
        found = part.memo()["filename"] = (declared, _filename_of(part))
    return found[1]


def _remembered(part: Message, key: str, read):
    """read(part), kept in the memo of a part the parsers made (_Message.memo) until its
    fields change; read each time for any other Message."""
    if not isinstance(part, _Message):
        return read(part)
    memo = part.memo()
    if key not in memo:
        memo[key] = read(part)
    return memo[key]


def _filename_of(part: Message) -> str | None:
    name = safely(lambda: part.get_param("filename", None, "content-disposition"), None) \
        or safely(lambda: part.get_param("name"), None)
    if isinstance(name, tuple) and len(name) == 3:  # RFC 2231: (charset, language, %-decoded)
        charset, _, text = name
        name = charsets.decode(str(text).encode("raw-unicode-escape"), charset, detect=False)
    if not isinstance(name, str):
        return None
    own = charsets.codec_for(safely(part.get_content_charset, None))
    declared = charsets_of(part)
    name = decode_header_text(name, _Declared(lambda: ((own,) if own else ()) + tuple(declared),
                                              declared.guessed))
    return name or None


def header(message: Message, name: str) -> str:
    """The first value of a header, raw (surrogate-escaped 8-bit), or ''."""
    return _first(safely(lambda: message.get_all(name), None))


def _first(values: list | None) -> str:
    """The first of a field's values as get_all gives them, raw, if it is a str; else ''."""
    values = values or [""]
    return values[0] if isinstance(values[0], str) else ""


# The fields summarize_message reads, all of them found in one walk of the header block.
SUMMARY_FIELDS = ("message-id", "date", "subject", *ADDRESS_HEADERS)


def _fields(message: Message, names: tuple[str, ...]) -> dict[str, list]:
    """{name: every value of the field `name` (lowercase) as message.get_all gives them,
    [] for none}, in one walk of the fields instead of one a name: the summary reads ten.
    Should the walk raise (it is the stdlib's policy that reads each value), each name is
    read alone as header() and addresses_in read it, [] for one whose get_all raises."""
    found: dict[str, list] = {name: [] for name in names}
    try:
        fetch = message.policy.header_fetch_parse
        for name, value in message.raw_items():
            values = found.get(name.lower())
            if values is not None:
                values.append(_value_head(name.lower(), fetch(name, value)))
        return found
    except MemoryError:
        raise
    except Exception:
        return {name: safely(lambda: message.get_all(name), None) or [] for name in names}


def fields_cut(message: Message) -> list[str]:
    """The names (lowercase, sorted) of the summary's fields (SUMMARY_FIELDS) of `message`
    a value of which is longer than FIELD_VALUE_LIMIT, so read in part (_value_head)."""
    try:
        return sorted({name.lower() for name, value in message.raw_items()
                       if name.lower() in SUMMARY_FIELDS and isinstance(value, str)
                       and len(value) > FIELD_VALUE_LIMIT})
    except MemoryError:
        raise
    except Exception:  # (as _fields: the stdlib's policy reads each value)
        return []


def _value_head(name: str, value):
    """A field's value to FIELD_VALUE_LIMIT characters; an address list's to its last comma
    before the limit (an entry a comma within a quoted name cuts is read as broken)."""
    if not isinstance(value, str) or len(value) <= FIELD_VALUE_LIMIT:
        return value
    if name in ADDRESS_HEADERS:
        comma = value.rfind(",", 0, FIELD_VALUE_LIMIT)
        return value[:max(comma, 0)]
    return value[:FIELD_VALUE_LIMIT]


def addresses_in(message: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of every `name` header of `message` (see addresses)."""
    return _addresses_of_values(safely(lambda: message.get_all(name), None) or [],
                                charsets_of(message))


def _addresses_of_values(values: list, declared) -> list[tuple[str, str]]:
    """(display name, address) pairs of every value of one address field (see addresses)."""
    return [pair for value in values for pair in addresses(value, declared)]


def addresses(header_value, declared=()) -> list[tuple[str, str]]:
    """(display name, lowercased address) pairs of an address header, read by the one strict
    parser (services.archive.addresses): a display name or comment is never an address,
    and a malformed entry yields nothing. Names are RFC 2047 decoded; addresses are not
    (RFC 2047 section 5), but raw 8-bit bytes are read as UTF-8 (RFC 6532), else as
    decode_header_text reads them (`declared`: the message's charsets, charsets_of)."""
    if not isinstance(header_value, str) or not header_value.strip():
        return []
    value = decode_raw(header_value.replace("\r", "").replace("\n", ""), declared)
    return [(decode_header_text(mailbox.display_name), mailbox.address)
            for mailbox in parse_address_list(value)]


def decode_raw(text: str, declared=(), detect: bool = True) -> str:
    """Header text as the parser left it, decoded: 8-bit bytes (the parser's surrogate
    escapes) as UTF-8 when they are (RFC 6532), else in the first charset the message
    declares (`declared`, charsets_of) they fit into text that is no mess, else by guess
    (charsets.decode_unlabelled, detection only if `detect`); ISO-2022 escape sequences in
    7-bit text by the ISO-2022 charset they fit."""
    if text.isascii():
        return _iso_2022(text, declared) if "\x1b" in text else text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for codec in _hinted_charsets(declared):
        try:
            decoded = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        if not charsets.has_surrogates(decoded) and _no_mess(decoded):
            return decoded
    return charsets.decode_unlabelled(data, detect)


def _hinted_charsets(declared) -> Iterator[str]:
    """The declared charsets, then (only when none of them fits: detection in the body
    costs milliseconds) the one detected in the message's first text part."""
    yield from declared
    if isinstance(declared, _Declared):
        yield from declared.guessed()


def _iso_2022(text: str, declared) -> str:
    data = text.encode("ascii")
    for codec in dict.fromkeys([*(c for c in declared if c.startswith("iso2022")), *ISO_2022]):
        try:
            decoded = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if "\x1b" not in decoded:
            return decoded
    return text


def _no_mess(text: str) -> bool:
    """Whether decoded header text reads as text: no private-use, unassigned or control
    characters, and a mess ratio (python3-charset-normalizer) under HINT_MESS_LIMIT."""
    sample = text[:HINT_SAMPLE]
    if any(unicodedata.category(c) in ("Co", "Cn", "Cs") or
           (unicodedata.category(c) == "Cc" and c not in "\t") for c in sample):
        return False
    from charset_normalizer.md import mess_ratio  # 0.1 s to import: only where needed
    return mess_ratio(sample, HINT_MESS_LIMIT) < HINT_MESS_LIMIT


def _displayed(pairs: list[tuple[str, str]]) -> list[str]:
    """"Name <addr>" or "addr", for lists and free-text search."""
    return [f"{person} <{address}>" if person else address for person, address in pairs]


def decode_header_text(value: str, declared=()) -> str:
    """A header value as text: unfolded, RFC 2047 words and raw bytes decoded (decode_raw;
    `declared`: the charsets of its message, charsets_of),
    control characters blanked. Whitespace between adjacent encoded words is dropped, and
    adjacent words in one charset are joined as bytes before decoding (RFC 2047 section
    6.2), so a character split across two words survives. Linear in len(value)."""
    if not isinstance(value, str):
        return ""
    if value.isascii() and value.isprintable() and "=?" not in value:
        return value.strip()  # no word, no 8-bit byte, no ESC, no control: as it is
    decoder = _HeaderDecoder(declared)
    position, after_word = 0, False
    for word in ENCODED_WORD.finditer(value):
        gap = value[position:word.start()]
        if not (after_word and gap.strip(" \t\r\n") == ""):
            decoder.add_text(gap)
        decoder.add_word(*word.groups())
        position, after_word = word.end(), True
    decoder.add_text(value[position:])
    return decoder.text().translate(HEADER_CONTROLS).strip()


class _HeaderDecoder:
    """Collects a header's pieces; runs of encoded words in one charset become one byte
    string, decoded once."""

    def __init__(self, declared=()):
        self.declared = declared
        self.pieces: list[str] = []
        self.run_charset: str | None = None
        self.run: list[bytes] = []
        self.detections = HEADER_DETECTIONS

    def add_text(self, text: str) -> None:
        self._flush()
        if text.isascii() and "\x1b" not in text:
            self.pieces.append(text)
        else:  # raw 8-bit header bytes (the parser's surrogate escapes) or ISO-2022 escapes
            self.pieces.append(decode_raw(text, self.declared,
                                          detect=not text.isascii() and self._may_detect()))

    def add_word(self, charset: str, encoding: str, encoded: str) -> None:
        data = _word_bytes(encoding, encoded)
        if data is None:  # not valid Q or B: shown as it came, its 8-bit bytes decoded
            self.add_text(encoded)
            return
        charset = charset.split("*", 1)[0].strip().lower()  # RFC 2231 language: "utf-8*en"
        if self.run and charset != self.run_charset:
            self._flush()
        self.run_charset = charset
        self.run.append(data)

    def text(self) -> str:
        self._flush()
        return "".join(self.pieces)

    def _flush(self) -> None:
        if self.run:
            data = b"".join(self.run)
            self.pieces.append(charsets.decode(data, self.run_charset,
                                               detect=not data.isascii() and self._may_detect()))
        self.run, self.run_charset = [], None

    def _may_detect(self) -> bool:
        self.detections -= 1
        return self.detections >= 0


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The bytes of an encoded word's text (Q or B encoding), or None if it is neither."""
    data = text.encode("utf-8", "surrogateescape")
    try:
        if encoding in "qQ":
            return binascii.a2b_qp(data, header=True)
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def decode_text(data: bytes, charset: str | None) -> str:
    """A part's bytes (a whole text) as text, never raising: see services.archive.charsets.
    decode_document (a byte-order mark first, then WHATWG and Python labels, text charsets
    only, then UTF-8, detection, Windows-1252)."""
    return charsets.decode_document(data, charset)


def _message_id(value: str) -> str | None:
    text = decode_header_text(value)
    if "<" in text and ">" in text.split("<", 1)[1]:
        text = text.split("<", 1)[1].split(">", 1)[0]
    text = text.strip().strip("<>").strip()
    return text or None


def _epoch(value: str) -> float | None:
    text = decode_header_text(value)
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_tz(text)
        return float(email.utils.mktime_tz(parsed)) if parsed else None
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def safely(read, default):
    """read(), or default if it raises: for stdlib accessors that parse a header on the way.
    MemoryError is not bad input but a limit reached, so it is left to the caller."""
    try:
        return read()
    except MemoryError:
        raise
    except Exception:
        return default
