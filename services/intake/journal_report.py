"""Unwrap Exchange envelope-journal reports: the original message, byte for byte, plus the
envelope that says who really received it (Bcc recipients and expanded groups included).

A report ([MS-XJRNL] "Journal Record Message File Format"; "Journal reports in Exchange") has
the top-level header X-MS-Journal-Report and a multipart body: a text/plain envelope part,
then the original as message/rfc822. The envelope is one field per line:

    Sender: alice@contoso.com
    On-Behalf-Of: boss@contoso.com                    (optional)
    Subject: ...
    Message-ID: <abc@contoso.com>
    To: dl-member@contoso.com, Expanded: dl@contoso.com
    Cc: fwd@contoso.com, Forwarded: user@contoso.com
    Recipient: someone@fabrikam.com                    (addressing not verifiable)

The address after the colon is the one delivered to; "Expanded:" names the group it came
from and "Forwarded:" the recipient it was redirected from. Other fields (Label, Mailbox,
SentUtc, ReceivedUtc) are ignored.

The original is sliced out of the report, never re-serialized: the archive keys messages by
the SHA-256 of their bytes, so a copy that differs by one byte is a different message.
Reports come from outside, so nothing here raises on bad input except NotAJournalReport;
as in services.archive.mime, MemoryError is left alone (a limit, not bad input).
"""
from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from typing import NamedTuple

from firmware.errors import ArchiverError
from services.archive.mime import (POLICY, SUMMARY_HEADER_LIMIT, decode_text, header,
                                   header_end, safely)
from services.archive.transfer_encoding import (decode_base64, decode_quoted_printable,
                                                 encoding_of)

JOURNAL_HEADER_NAME = b"x-ms-journal-report"
JOURNAL_HEADER = re.compile(rb"(?im)^" + JOURNAL_HEADER_NAME + rb"[ \t]*:")
BLANK_LINE = re.compile(rb"\n\r?\n")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
REDIRECTION = re.compile(r",\s*(expanded|forwarded)\s*:(.*)$", re.IGNORECASE | re.DOTALL)
RECIPIENT_FIELDS = ("to", "cc", "bcc", "recipient")
# Exchange Online may attach the original as TNEF (winmail.dat), which only MAPI can read.
TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")


class NotAJournalReport(ArchiverError):
    """The input is not a journal report this module can unwrap; archive it as it is."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JournalReport:
    original: bytes                     # the attached message, exactly (transfer-decoded)
    sender: str | None
    to: list[str]
    cc: list[str]
    bcc: list[str]
    expanded: dict[str, list[str]]      # group address -> members it was expanded to
    forwarded: dict[str, str]           # redirected recipient -> address it went to instead
    recipients: list[str]               # every address on a recipient line, in order, once
    message_id: str | None              # without angle brackets, as services.archive.mime has it
    on_behalf_of: str | None = None     # the mailbox owner when sent on behalf of one


class _Part(NamedTuple):
    content_type: str
    transfer_encoding: str
    charset: str | None
    body_start: int
    body_end: int


def is_journal_report(raw: bytes) -> bool:
    """True when the top-level headers carry X-MS-Journal-Report (its value is often empty)."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return False
    raw = bytes(raw)
    end = header_end(raw)
    # The name looked for in lower case first: a case-blind regular expression costs some
    # 40 us a message at intake, and nearly no message is a journal report.
    if JOURNAL_HEADER_NAME not in raw[:end].lower():
        return False
    return JOURNAL_HEADER.search(raw, 0, end) is not None


def unwrap(raw: bytes) -> JournalReport:
    """The original message (byte-exact) and envelope of an Exchange journal report
    (X-MS-Journal-Report; Microsoft's envelope journaling format: a text/plain envelope
    part, then the message/rfc822 original). Raises NotAJournalReport, saying why, for
    anything else: no such header, no original or envelope part, an empty original, an
    envelope part that names no recipient."""
    if not is_journal_report(raw):
        raise NotAJournalReport("no X-MS-Journal-Report header")
    raw = bytes(raw)
    parts, closed = _top_level_parts(raw)
    envelope = _first_part(parts, ("text/plain",))
    attached = _first_part(parts, ("message/rfc822",))
    if attached is None:
        raise NotAJournalReport(_why_no_original(parts, closed))
    if envelope is None:
        raise NotAJournalReport("no text/plain envelope part")
    original = _original(raw, attached)
    if not original.strip():
        raise NotAJournalReport("the attached message is empty")
    text = decode_text(_decoded_body(raw, envelope), envelope.charset)
    report = _report(original, _envelope_fields(text))
    if not report.recipients:  # unwrapped, it would be archived as mail to nobody
        raise NotAJournalReport("the envelope part names no recipient")
    return report


# --- MIME structure, on the raw bytes -------------------------------------------------------

def _top_level_parts(raw: bytes) -> tuple[list[_Part], bool]:
    """The parts a delimiter ends, and whether the close delimiter was seen."""
    body_start = header_end(raw)
    if body_start > SUMMARY_HEADER_LIMIT:  # parsing it would take 11x its size in memory
        raise NotAJournalReport(f"the header block is over {SUMMARY_HEADER_LIMIT} bytes")
    headers = _parse_headers(raw[:body_start])
    if safely(headers.get_content_maintype, "") != "multipart":
        raise NotAJournalReport("the report is not multipart")
    boundary = safely(headers.get_boundary, None)
    if not isinstance(boundary, str) or not boundary:
        raise NotAJournalReport("the report's multipart has no boundary")
    spans, closed = _part_spans(raw, body_start, _as_bytes(boundary))
    return [_part(raw, start, end) for start, end in spans], closed


def _part_spans(raw: bytes, body_start: int,
                boundary: bytes) -> tuple[list[tuple[int, int]], bool]:
    """(start, end) of each part that a delimiter ends. The line break before a delimiter
    belongs to it (RFC 2046), so it is not content. A part the close delimiter never ends
    was cut off and is left out. (In an LF report an original ending in a bare CR loses it:
    CR LF before a delimiter cannot be told apart from CR, then LF.)"""
    # A literal start lets the regex engine skip ahead: 100x faster than an optional CR.
    delimiter = re.compile(rb"\n--" + re.escape(boundary)
                           + rb"(?P<close>--)?[ \t]*(?=\r?\n|\Z)")
    spans, part_start = [], None
    # From one byte back: the header block's last LF precedes a delimiter opening the body.
    for match in delimiter.finditer(raw, max(body_start - 1, 0)):
        if part_start is not None:
            spans.append((part_start, _line_start(raw, match.start(), part_start)))
        if match.group("close"):
            return spans, True
        part_start = _skip_line_break(raw, match.end())
    return spans, False


def _line_start(raw: bytes, lf: int, floor: int) -> int:
    """Where the line break ending at this LF begins (at its CR, if it has one), but not
    before floor: in an empty part the LF ending the delimiter line also starts the next."""
    return lf - 1 if lf > floor and raw[lf - 1] == 0x0D else max(lf, floor)


def _part(raw: bytes, start: int, end: int) -> _Part:
    if raw.startswith((b"\r\n", b"\n"), start, end):  # no headers at all
        header_bytes, body_start = b"", _skip_line_break(raw, start)
    else:
        blank = BLANK_LINE.search(raw, start, end)
        header_bytes = raw[start:blank.start() + 1] if blank else raw[start:end]
        body_start = blank.end() if blank else end
    headers = _parse_headers(header_bytes)
    return _Part(
        content_type=safely(headers.get_content_type, "text/plain"),
        transfer_encoding=encoding_of(header(headers, "content-transfer-encoding")),
        charset=safely(headers.get_content_charset, None),
        body_start=body_start,
        body_end=max(body_start, end),
    )


def _original(raw: bytes, part: _Part) -> bytes:
    """The attached original, decoded; base64 only when it is clean (nothing but base64
    letters and line breaks, padding at the end only): else NotAJournalReport, and the
    report is kept as it is, byte-exact, rather than a guess at its message stored in
    its place and the report's own bytes lost (the envelope part is read leniently:
    decode_base64)."""
    if part.transfer_encoding != "base64":
        return _decoded_body(raw, part)
    body = raw[part.body_start:part.body_end].translate(None, b" \t\r\n")
    try:
        return binascii.a2b_base64(body, strict_mode=True)
    except binascii.Error as exc:
        raise NotAJournalReport(f"the attached message's base64 is not clean ({exc})") from None


def _decoded_body(raw: bytes, part: _Part) -> bytes:
    body = raw[part.body_start:part.body_end]
    if part.transfer_encoding == "base64":
        return decode_base64(body)
    if part.transfer_encoding == "quoted-printable":
        return decode_quoted_printable(body)
    return body


def _first_part(parts: list[_Part], types: tuple[str, ...]) -> _Part | None:
    return next((part for part in parts if part.content_type in types), None)


def _why_no_original(parts: list[_Part], closed: bool) -> str:
    if not closed:
        return "no complete message/rfc822 part (the report has no closing boundary)"
    tnef = _first_part(parts, TNEF_TYPES)
    if tnef is not None:
        return f"the original is attached as TNEF ({tnef.content_type}), not message/rfc822"
    return "no message/rfc822 part"


def _parse_headers(header_bytes: bytes) -> Message:
    parsed = safely(lambda: BytesHeaderParser(policy=POLICY).parsebytes(header_bytes), None)
    return parsed if parsed is not None else Message(policy=POLICY)  # a Message can be falsy


def _skip_line_break(raw: bytes, position: int) -> int:
    for line_break in (b"\r\n", b"\n"):
        if raw.startswith(line_break, position):
            return position + len(line_break)
    return position


def _as_bytes(boundary: str) -> bytes:
    try:
        return boundary.encode("utf-8", "surrogateescape")  # 8-bit bytes come back escaped
    except UnicodeError as exc:
        raise NotAJournalReport("the report's boundary is not encodable") from exc


# --- the envelope ---------------------------------------------------------------------------

def _envelope_fields(text: str) -> list[tuple[str, str]]:
    """(lowercased name, value) per line; a line starting with whitespace continues the
    previous one (folding), as in a header block."""
    fields: list[tuple[str, str]] = []
    for line in LINE_BREAK.split(text):
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + line)
        elif ":" in line:
            name, value = line.split(":", 1)
            fields.append((name.strip().lower(), value))
    return [(name, value.strip()) for name, value in fields]


def _report(original: bytes, fields: list[tuple[str, str]]) -> JournalReport:
    lines = _recipient_lines(fields)
    expanded: dict[str, list[str]] = {}
    forwarded: dict[str, str] = {}
    for line in lines:
        if line.redirection == "expanded":
            expanded.setdefault(line.source, []).append(line.delivered)
        elif line.redirection == "forwarded":
            forwarded[line.source] = line.delivered
    # A group or redirected address was addressed too, and for a Bcc the envelope is the
    # only record of it: searches and holds on it must find the message.
    everyone = [address for line in lines for address in (line.delivered, line.source)
                if address]
    return JournalReport(
        original=original,
        sender=_address(_first_value(fields, "sender")),
        to=_delivered(lines, "to"),
        cc=_delivered(lines, "cc"),
        bcc=_delivered(lines, "bcc"),
        expanded={group: _unique(members) for group, members in expanded.items()},
        forwarded=forwarded,
        recipients=_unique(everyone),
        message_id=_bare_message_id(_first_value(fields, "message-id")),
        on_behalf_of=_address(_first_value(fields, "on-behalf-of")),
    )


class _RecipientLine(NamedTuple):
    field: str                  # to, cc, bcc or recipient
    delivered: str
    redirection: str | None     # expanded, forwarded or None
    source: str | None          # the group, or the recipient it was redirected from


def _recipient_lines(fields: list[tuple[str, str]]) -> list[_RecipientLine]:
    lines = []
    for name, value in fields:
        if name not in RECIPIENT_FIELDS:
            continue
        redirection = REDIRECTION.search(value)
        source = _address(redirection.group(2)) if redirection else None
        delivered = _address(value[:redirection.start()] if redirection else value)
        if delivered is not None:
            kind = redirection.group(1).lower() if source else None
            lines.append(_RecipientLine(name, delivered, kind, source))
    return lines


def _delivered(lines: list[_RecipientLine], field: str) -> list[str]:
    return _unique([line.delivered for line in lines if line.field == field])


def _address(text: str | None) -> str | None:
    """Lowercased, without angle brackets; None for an empty one (the null sender "<>").
    Exchange may write a legacy DN (/O=.../CN=...) instead of SMTP: kept as it is."""
    if not text:
        return None
    text = text.strip()
    if "<" in text and ">" in text.split("<", 1)[1]:
        text = text.split("<", 1)[1].split(">", 1)[0]
    text = text.strip().lower()
    return text or None


def _bare_message_id(text: str | None) -> str | None:
    text = (text or "").strip().strip("<>").strip()
    return text or None


def _first_value(fields: list[tuple[str, str]], name: str) -> str | None:
    return next((value for field_name, value in fields if field_name == name), None)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
