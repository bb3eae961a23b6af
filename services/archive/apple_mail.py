"""Apple Mail's .emlx messages, told by what they hold. services.archive.mailfiles asks;
this module only reads bytes.

Apple Mail (macOS) keeps each message of its store (~/Library/Mail/V*/ACCOUNT/NAME.mbox/
.../Data/.../Messages/) as an .emlx file: a first line holding the message's length in bytes
(decimal, padded with spaces: "13681     "), LF, exactly that many bytes of RFC 5322
message, then an XML property list of Apple's metadata (flags, date-received, subject...).
A NNN.partial.emlx is a message whose large attachments Apple Mail stored apart (in the
Attachments folder beside Messages/; each part left out keeps its MIME header with an
X-Apple-Content-Length field and no body).

Only the .emlx is Apple's here: every other file of its trees (an exported bundle's mbox,
Info.plist and table_of_contents, property lists, the SQLite Envelope Index and its -wal and
-shm files, attachments) is read as any file is (its mail imports, anything else fails
loudly: reviews 167, 172 and 176 found mail that every test of "holds no mail" let through).

An .emlx (read_emlx) is told by its content, never by its name: a first line that counts
bytes, and right after the counted bytes (white space allowed) the start of an XML property
list, `<?xml` or `<plist`. Then the counted bytes are the message, stored exactly; the
count line and the property list are Apple's, not the message's, as an mbox's From_ line is
the mbox's. Anything else whose first line is a number is read as any file (it fails: no
header field begins it), with why it is no .emlx.
The property list is Apple's metadata only if it is what Apple's writer (CFPropertyList)
writes there and holds nothing that could be mail (trailer_refusal; review 176): within
MAX_TRAILER bytes; an XML declaration of version 1.0 (UTF-8, if an encoding is named), at
most Apple's DOCTYPE line (no internal subset: no entity declarations), `<plist
version="1.0">` and no attribute elsewhere, no CDATA section, comment or processing
instruction, only the elements of a property list but <data>, no text outside <key>,
<string>, <integer>, <real> and <date>; and plistlib reads it as a dict whose values are
integers, reals, booleans, dates or strings (keys too) of at most MAX_TRAILER_STRING
characters and no CR or LF (a message is lines: `&#10;` can spell them), or arrays and dicts
of those, nested at most MAX_TRAILER_DEPTH deep. Anything else (more mail hidden there, or
a count cut short in the middle of a message whose own tail looks like a property list) is
Emlx.trailer_refused: the counted message is still read, and the rest of the file fails on
its own, loudly, as a second item; nothing is dropped unsaid.
Its date-received is not kept: the From_ line's date is (services.archive.message_date),
but it is recorded as "mbox-from-line", which this is not, and the Date and Received header
fields, read first, date nearly all mail; so the property list is parsed only to tell what
it is, and not kept.
"""
from __future__ import annotations

import datetime
import plistlib
import re
from dataclasses import dataclass
from typing import BinaryIO
from xml.parsers import expat

# The count line: decimal digits, the spaces Apple pads them with, LF. 15 digits are more
# than any file holds; a longer run of digits is no count (read as today: not mail).
EMLX_COUNT = re.compile(rb"([0-9]{1,15}) *\n")
# What follows an .emlx's counted bytes at once (white space allowed): its property list's
# XML declaration or root.
EMLX_TRAILER = re.compile(rb"[ \t\r\n]*(?:<\?xml[ \t\r\n]|<plist[ \t\r\n>])")
TRAILER_PROBE = 64  # of what follows an .emlx's message: its first bytes
# Apple's property list after an .emlx's message is a few hundred bytes (a few KiB with a
# long subject and many recipients); a larger one is refused unread past this.
MAX_TRAILER = 64 * 1024
MAX_TRAILER_STRING = 4096  # characters of one string or key
MAX_TRAILER_DEPTH = 4      # the top dict is 1
# Apple's DOCTYPE lines (CFPropertyList's; "Apple Computer" in older versions).
APPLE_DOCTYPES = {("plist", "-//Apple//DTD PLIST 1.0//EN",
                   "http://www.apple.com/DTDs/PropertyList-1.0.dtd"),
                  ("plist", "-//Apple Computer//DTD PLIST 1.0//EN",
                   "http://www.apple.com/DTDs/PropertyList-1.0.dtd")}
TRAILER_ELEMENTS = {"plist", "dict", "array", "key", "string", "integer", "real", "date",
                    "true", "false"}  # a property list's, but <data> (any bytes)
TRAILER_TEXT = {"key", "string", "integer", "real", "date"}  # elements that hold text
TRAILER_SCALARS = (bool, int, float, datetime.datetime)
# A part of a partial .emlx whose body Apple Mail stored apart keeps this field.
APPLE_CONTENT_LENGTH = re.compile(rb"^X-Apple-Content-Length[ \t]*:", re.IGNORECASE | re.MULTILINE)
PARTIAL_SUFFIX = ".partial.emlx"

TRAILER_REFUSED = ("what follows the {count} bytes of message the first line of this "
                   "Apple Mail .emlx counts is not Apple's property list as Apple Mail "
                   "writes it ({why}): not read (its message is read: it may be cut short "
                   "by a wrong count, or mail may be hidden after it)")
PARTIAL_WARNING = ("a partial .emlx: Apple Mail stored its large attachments apart (the "
                   "Attachments folder beside Messages/), so it is stored without them, as "
                   "the file holds it (not reassembled)")


def starts_like_emlx(start: bytes) -> bool:
    """Whether a file beginning with `start` may be an .emlx: its first line is a count
    (digits, padded with spaces). read_emlx says whether it is one."""
    return EMLX_COUNT.match(start) is not None


@dataclass(frozen=True)
class Emlx:
    raw: bytes | None  # the counted bytes: the message, exactly (None: not kept, counting)
    partial: bool      # a .partial.emlx: its large attachments stored apart, not in it
    # why what follows the message is refused (TRAILER_REFUSED), or None: Apple's metadata
    trailer_refused: str | None = None


class NotEmlx(Exception):
    """A file that begins with a count but is no .emlx: why, in words."""


class TooLarge(Exception):
    """An .emlx whose count is over the limit: `size` bytes, not read."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def read_emlx(stream: BinaryIO, size: int | None, max_bytes: int, name: str,
              keep: bool = True) -> Emlx:
    """The message of an open .emlx (the module's docstring says what one is) of `size`
    bytes (None: unknown), read from its start: no more than the count line, the counted
    bytes and MAX_TRAILER + 1 bytes after them are read, never more than `max_bytes` of
    message. `name`: its last part (NNN.partial.emlx says partial, as the content does).
    `keep`: False skips the message (seeks past it; Emlx.raw is None): count_mail's way.
    Raises NotEmlx (a count that is not one, longer than the file, or not followed by the
    start of a property list) or TooLarge (a count over `max_bytes`: nothing read). What
    follows the message and is not Apple's metadata gives Emlx.trailer_refused."""
    line = stream.readline(32)
    counted = EMLX_COUNT.fullmatch(line)
    if not counted:
        raise NotEmlx("its first line is not the message's length in bytes")
    count = int(counted.group(1))
    if size is not None and count > size - len(line):
        raise NotEmlx(_short(count, size - len(line)))
    if count > max_bytes:
        raise TooLarge(count)
    if keep or size is None:
        raw = stream.read(count)
        if len(raw) < count:  # the file shrank since its size was taken, or size unknown
            raise NotEmlx(_short(count, len(raw)))
    else:
        raw = None
        stream.seek(len(line) + count)
    trailer = stream.read(MAX_TRAILER + 1)
    if not EMLX_TRAILER.match(trailer[:TRAILER_PROBE]):
        raise NotEmlx(f"the {count} bytes its first line counts are not followed by Apple's "
                      "property list (a wrong count?)")
    partial = name.lower().endswith(PARTIAL_SUFFIX) or (
        raw is not None and bool(APPLE_CONTENT_LENGTH.search(raw)))
    why = trailer_refusal(trailer)
    return Emlx(raw if keep else None, partial,
                TRAILER_REFUSED.format(count=count, why=why) if why else None)


def trailer_refusal(trailer: bytes) -> str | None:
    """Why `trailer` (what follows an .emlx's message, up to the file's end) is not Apple's
    metadata alone (the module's docstring gives the rule), in words; None if it is."""
    if len(trailer) > MAX_TRAILER:
        return f"over {MAX_TRAILER} bytes"
    trailer = trailer.lstrip(b" \t\r\n")
    why = _xml_refusal(trailer)
    if why:
        return why
    try:
        value = plistlib.loads(trailer, fmt=plistlib.FMT_XML)
    except Exception as exc:  # noqa: BLE001 - any damage says: not a property list
        return f"not a property list: {type(exc).__name__}: {exc}"
    if not isinstance(value, dict):
        return f"a property list of a {type(value).__name__}, not a dict"
    return _value_refusal(value, 1)


def _xml_refusal(trailer: bytes) -> str | None:
    """Why `trailer` is not XML as Apple's writer writes a property list, or None."""
    refusals: list[str] = []
    stack: list[str] = []

    def refuse(why: str) -> None:
        refusals.append(why)
        raise _Refused

    def declaration(version, encoding, standalone):
        if version != "1.0" or (encoding or "utf-8").lower() != "utf-8" or standalone != -1:
            refuse(f"an XML declaration of version {version!r}, encoding {encoding!r}"
                   + ("" if standalone == -1 else ", standalone"))

    def doctype(name, system_id, public_id, has_internal_subset):
        if has_internal_subset or (name, public_id, system_id) not in APPLE_DOCTYPES:
            refuse("a DOCTYPE other than Apple's" + (
                " (with declarations)" if has_internal_subset else ""))

    def start(name, attributes):
        if name not in TRAILER_ELEMENTS:
            refuse(f"an element <{name}>" + (" (any bytes, base64)" if name == "data" else ""))
        if attributes != ({"version": "1.0"} if name == "plist" else {}):
            refuse(f"attributes on <{name}>")
        if (name == "plist") != (not stack):
            refuse("<plist> other than as the root")
        stack.append(name)

    def end(name):
        stack.pop()

    def text(data):
        if data.strip() and (not stack or stack[-1] not in TRAILER_TEXT):
            refuse(f"text in <{stack[-1]}>" if stack else "text outside the property list")

    parser = expat.ParserCreate()
    parser.XmlDeclHandler = declaration
    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.CommentHandler = lambda data: refuse("a comment")
    parser.StartCdataSectionHandler = lambda: refuse("a CDATA section")
    parser.ProcessingInstructionHandler = lambda target, data: refuse(
        "a processing instruction")
    parser.EntityDeclHandler = lambda *args: refuse("an entity declaration")
    parser.SkippedEntityHandler = lambda name, is_parameter: refuse(f"an entity &{name};")
    try:
        parser.Parse(trailer, True)
    except _Refused:
        return refusals[0]
    except expat.ExpatError as exc:
        return f"not well-formed XML ({exc})"
    except RecursionError:
        return "nested too deep"
    return None


class _Refused(Exception):
    """Raised from inside expat's handlers: stop parsing, refusals[0] says why."""


def _value_refusal(value: object, depth: int) -> str | None:
    """Why a property list's `value`, nested `depth` deep (the top dict: 1), is not what
    Apple's metadata holds, or None."""
    if isinstance(value, TRAILER_SCALARS):
        return None
    if isinstance(value, str):
        if len(value) > MAX_TRAILER_STRING:
            return f"a string of {len(value)} characters (over {MAX_TRAILER_STRING})"
        if "\r" in value or "\n" in value:
            return "a string holding a line break"
        return None
    if not isinstance(value, (list, dict)):
        return f"a value of type {type(value).__name__}"
    if depth > MAX_TRAILER_DEPTH:
        return f"arrays or dicts nested over {MAX_TRAILER_DEPTH} deep"
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    for item in items:
        if why := _value_refusal(item, depth + 1 if isinstance(item, (list, dict)) else depth):
            return why
    return None


def _short(count: int, left: int) -> str:
    return (f"the {count} bytes of message its first line counts are more than the {left} "
            "that follow (a wrong count, or a file cut short?)")
