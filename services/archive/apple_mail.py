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
The property list is Apple's metadata only if it is what Apple Mail writes there and holds
nothing that could be mail (trailer_refusal; reviews 176 and 183), judged by what its bytes
hold (expat's events), never by what plistlib keeps (it drops a duplicate key's first
value, text before a child element, text after a date): within MAX_TRAILER bytes, right
at the counted end (no white space first: a count short by the message's last blank lines
would drop them unsaid); Apple's XML declaration, DOCTYPE and `<plist version="1.0">` byte
for byte, ending `</plist>` and at most a line break; no attribute, CDATA section, comment,
processing instruction, entity declaration, <data>, white space inside a tag or other than
Apple's indentation (a line break and tabs) between tags; no element inside <key>,
<string>, <integer>, <real>, <date>, <true/> or <false/>, nesting at most MAX_TRAILER_DEPTH
elements; one <dict> whose children alternate key and value, each key once and one of
Apple Mail's (APPLE_KEYS: date-received, date-sent, date-last-viewed, flags,
conversation-id, remote-id, original-mailbox, subject, sender, to, color, gmail-label-ids),
its value what Apple writes for it: integers of at most 20 digits, reals of at most 32
characters, dates matching the plist date whole, strings of at most MAX_TRAILER_STRING
characters without C0 or C1 controls (tab, CR, LF, NEL) or U+2028 and U+2029 (remote-id
printable ASCII of at most 160, color six hex digits), gmail-label-ids an array of at most
MAX_TRAILER_ARRAY integers; no nested dict. Anything else (more mail hidden there, or a
count cut short in the middle of a message whose own tail looks like a property list) is
Emlx.trailer_refused, its reason naming what was refused: the counted message is still
read, and the rest of the file fails on its own, loudly, as a second item; nothing is
dropped unsaid. What the rule still lets through is what its bounds allow: a string of
Apple's keys could carry a short text, as a subject does.
Its date-received is not kept: the From_ line's date is (services.archive.message_date),
but it is recorded as "mbox-from-line", which this is not, and the Date and Received header
fields, read first, date nearly all mail; so the property list is parsed only to tell what
it is, and not kept.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import BinaryIO
from xml.parsers import expat

# The count line: decimal digits, the spaces Apple pads them with, LF. 15 digits are more
# than any file holds; a longer run of digits is no count (read as today: not mail).
EMLX_COUNT = re.compile(rb"([0-9]{1,15}) *(\r?)\n")  # CR LF: told, and refused
# What follows an .emlx's counted bytes at once (white space allowed): its property list's
# XML declaration or root.
EMLX_TRAILER = re.compile(rb"[ \t\r\n]*(?:<\?xml[ \t\r\n]|<plist[ \t\r\n>])")
TRAILER_PROBE = 64  # of what follows an .emlx's message: its first bytes
NOT_EMLX_START = 64 * 1024  # of a file read as an .emlx and found none: kept to say what it is
# Apple's property list after an .emlx's message is a few hundred bytes (a few KiB with a
# long subject and many recipients); a larger one is refused unread past this.
MAX_TRAILER = 64 * 1024
MAX_TRAILER_STRING = 1024  # characters of one string
MAX_TRAILER_ARRAY = 64     # values of one array
MAX_TRAILER_DEPTH = 4      # elements: <plist>, <dict>, <array>, its values
# Apple's DOCTYPE lines (CFPropertyList's; "Apple Computer" in older versions).
APPLE_DOCTYPES = {("plist", "-//Apple//DTD PLIST 1.0//EN",
                   "http://www.apple.com/DTDs/PropertyList-1.0.dtd"),
                  ("plist", "-//Apple Computer//DTD PLIST 1.0//EN",
                   "http://www.apple.com/DTDs/PropertyList-1.0.dtd")}
# How Apple's writer begins and ends a property list, byte for byte (LF, or CRLF if the
# file's line ends were converted); between tags it writes a line break and tabs at most.
APPLE_HEAD = re.compile(
    rb'(?:<\?xml version="1\.0" encoding="UTF-8"\?>\r?\n)?'
    rb'(?:<!DOCTYPE plist PUBLIC "-//Apple(?: Computer)?//DTD PLIST 1\.0//EN" '
    rb'"http://www\.apple\.com/DTDs/PropertyList-1\.0\.dtd">\r?\n)?<plist version="1\.0">')
APPLE_TAIL = re.compile(rb"</plist>(?:\r?\n)?\Z")
APPLE_INDENT = re.compile(r"(?:\n\t{0,8})?")  # expat reads CRLF as LF
SPACE_IN_TAG = re.compile(rb"<[^>]*[ \t\r\n]")
TRAILER_ELEMENTS = {"plist", "dict", "array", "key", "string", "integer", "real", "date",
                    "true", "false"}  # a property list's, but <data> (any bytes)
TRAILER_TEXT = {"key", "string", "integer", "real", "date"}  # elements that hold text
TRAILER_LEAVES = TRAILER_TEXT | {"true", "false"}  # elements that hold no element
# What Apple Mail writes in an .emlx's property list (public .emlx readers list these
# keys): each key, the elements its value may be. No other key, no nested dict.
APPLE_DATE = ("integer", "real", "date")  # seconds since 1970 (Apple writes integers)
APPLE_KEYS = {"date-received": APPLE_DATE, "date-sent": APPLE_DATE,
              "date-last-viewed": APPLE_DATE, "flags": ("integer",),
              "conversation-id": ("integer",), "remote-id": ("string", "integer"),
              "original-mailbox": ("string",), "subject": ("string",),
              "sender": ("string",), "to": ("string",), "color": ("string",),
              "gmail-label-ids": ("array",)}
ARRAY_ITEMS = {"gmail-label-ids": ("integer",)}  # the arrays Apple writes, of what
# Strings of a known form: an IMAP UID or a server's id (printable ASCII, no space; an
# Exchange item id is some 150 characters), a label colour in hex.
STRING_FORMATS = {"remote-id": re.compile(r"[!-~]{1,160}"),
                  "color": re.compile(r"[0-9A-Fa-f]{6}")}
SCALAR_TEXT = {  # the text of a number or date, as Apple writes one
    "integer": re.compile(r"[+-]?[0-9]{1,20}"),
    "real": re.compile(r"(?=.{1,32}\Z)[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?"),
    "date": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")}
# Not in a string: C0 and C1 controls (tab, line breaks, NEL) and Unicode's line and
# paragraph separators, all of which could join a message's lines.
NOT_IN_STRING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
LINE_BREAKS = "\n\r\x0b\x0c\x85\u2028\u2029"
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
    """A file that begins with a count but is no .emlx: why, in words. If it was read past
    its count line (its counted bytes, then what follows them), `start` is the file's first
    NOT_EMLX_START bytes and `read` how many were read; `start` is None otherwise."""

    def __init__(self, why: str, start: bytes | None = None, read: int = 0):
        super().__init__(why)
        self.start = start
        self.read = read


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
    if counted.group(2):
        raise NotEmlx("its first line, a count, ends in CR LF, where Apple Mail ends it in "
                      "LF alone")
    count = int(counted.group(1))
    if size is not None and count > size - len(line):
        raise NotEmlx(_short(count, size - len(line)))
    if count > max_bytes:
        raise TooLarge(count)
    if keep or size is None:
        raw = stream.read(count)
    else:
        raw = None
        stream.seek(len(line) + count)
    short = raw is not None and len(raw) < count  # the file shrank since, or size unknown
    trailer = b"" if short else stream.read(MAX_TRAILER + 1)
    if short or not EMLX_TRAILER.match(trailer[:TRAILER_PROBE]):
        why = _short(count, len(raw)) if short else (
            f"the {count} bytes its first line counts are not followed by Apple's property "
            "list (a wrong count?)")
        if raw is None:
            raise NotEmlx(why)
        error = NotEmlx(why, (line + raw[:NOT_EMLX_START] + trailer)[:NOT_EMLX_START],
                        len(line) + len(raw) + len(trailer))
        del raw  # not kept alive by the traceback while the caller reads on (review 183, F3)
        raise error
    partial = name.lower().endswith(PARTIAL_SUFFIX) or (
        raw is not None and bool(APPLE_CONTENT_LENGTH.search(raw)))
    why = trailer_refusal(trailer)
    return Emlx(raw if keep else None, partial,
                TRAILER_REFUSED.format(count=count, why=why) if why else None)


def trailer_refusal(trailer: bytes) -> str | None:
    """Why `trailer` (what follows an .emlx's message, up to the file's end) is not Apple's
    metadata alone (the module's docstring gives the rule), in words; None if it is. Every
    check is on what the bytes hold (expat's events), never on what a parser keeps."""
    if len(trailer) > MAX_TRAILER:
        return f"over {MAX_TRAILER} bytes"
    if trailer[:1] in (b" ", b"\t", b"\r", b"\n"):
        return ("white space before it, where Apple Mail writes none (a count short by "
                "the message's last blank lines?)")
    root = _Element("")
    why = _xml_refusal(trailer, root)
    if why:
        return why
    head = APPLE_HEAD.match(trailer)
    if not head:
        return "an XML declaration, DOCTYPE or <plist> other than Apple's, byte for byte"
    if SPACE_IN_TAG.search(trailer, head.end()):
        return "white space inside a tag"
    if not APPLE_TAIL.search(trailer):
        return "more after </plist> than a line break"
    [plist] = root.children
    if [child.name for child in plist.children] != ["dict"]:
        return "a property list that is not a dict"
    return _dict_refusal(plist.children[0])


@dataclass
class _Element:
    """An element of a trailer as its bytes hold it: its text is all its character data."""
    name: str
    text: list[str] = field(default_factory=list)
    children: list[_Element] = field(default_factory=list)


def _xml_refusal(trailer: bytes, root: _Element) -> str | None:
    """Why `trailer` is not XML as Apple's writer writes a property list, or None; its
    elements, as read, become the children of `root`."""
    refusals: list[str] = []
    stack: list[_Element] = [root]
    gap: list[str] = []  # the character data since the last tag, outside text elements

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

    def tag(name: str) -> None:  # what precedes a tag: Apple's indentation at most
        blanks = "".join(gap)
        gap.clear()
        if not APPLE_INDENT.fullmatch(blanks):
            where = stack[-1].name
            refuse(f"text in <{where}>" if blanks.strip() else
                   f"white space other than Apple's indentation in <{where}>")

    def start(name, attributes):
        parent = stack[-1]
        tag(name)
        if name not in TRAILER_ELEMENTS:
            refuse(f"an element <{name}>" + (" (any bytes, base64)" if name == "data" else ""))
        if attributes != ({"version": "1.0"} if name == "plist" else {}):
            refuse(f"attributes on <{name}>")
        if (name == "plist") != (parent is root):
            refuse("<plist> other than as the root")
        if parent.name in TRAILER_LEAVES:
            refuse(f"an element <{name}> inside <{parent.name}>")
        if len(stack) > MAX_TRAILER_DEPTH:
            refuse(f"elements nested over {MAX_TRAILER_DEPTH} deep")
        element = _Element(name)
        parent.children.append(element)
        stack.append(element)

    def end(name):
        if stack[-1].name not in TRAILER_TEXT:
            tag(name)
        stack.pop()

    def text(data):
        (stack[-1].text if stack[-1].name in TRAILER_TEXT else gap).append(data)

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
    return None


class _Refused(Exception):
    """Raised from inside expat's handlers: stop parsing, refusals[0] says why."""


def _dict_refusal(top: _Element) -> str | None:
    """Why the top dict of a trailer is not Apple's metadata (APPLE_KEYS), or None."""
    names = [child.name for child in top.children]
    if len(names) % 2 or any((name == "key") != (n % 2 == 0) for n, name in enumerate(names)):
        return "a dict whose children do not alternate <key> and a value"
    seen: set[str] = set()
    for key_element, value in zip(top.children[::2], top.children[1::2]):
        key = "".join(key_element.text)
        if key not in APPLE_KEYS:
            return f"a key Apple Mail does not write there ({_shown(key)})"
        if key in seen:
            return f"the key {key} twice"
        seen.add(key)
        if why := _value_refusal(key, value):
            return why
    return None


def _value_refusal(key: str, value: _Element) -> str | None:
    """Why `value` is not what Apple Mail writes for `key` (APPLE_KEYS), or None."""
    kinds = APPLE_KEYS[key]
    if value.name == "array" and "array" in kinds:
        if len(value.children) > MAX_TRAILER_ARRAY:
            return (f"an array of {len(value.children)} values for {key} (over "
                    f"{MAX_TRAILER_ARRAY})")
        items = value.children
        kinds = ARRAY_ITEMS[key]
    else:
        items = [value]
    for item in items:
        if item.name not in kinds:
            return f"a <{item.name}> for {key}, where Apple Mail writes {' or '.join(kinds)}"
        text = "".join(item.text)
        if why := _text_refusal(item.name, text):
            return f"{why} for {key}"
        if item.name == "string" and key in STRING_FORMATS and not STRING_FORMATS[
                key].fullmatch(text):
            return f"a {key} other than Apple's ({_shown(text)})"
    return None


def _text_refusal(kind: str, text: str) -> str | None:
    """Why `text`, held by a <`kind`> element, is not as Apple Mail writes one, or None."""
    if kind == "string":
        if bad := NOT_IN_STRING.search(text):
            what = "a line break" if bad.group() in LINE_BREAKS else "a control character"
            return f"a string holding {what} (U+{ord(bad.group()):04X})"
        if len(text) > MAX_TRAILER_STRING:
            return f"a string of {len(text)} characters (over {MAX_TRAILER_STRING})"
        return None
    if kind in SCALAR_TEXT and not SCALAR_TEXT[kind].fullmatch(text):
        return f"{'an' if kind[0] in 'aeiou' else 'a'} <{kind}> other than Apple's ({_shown(text)})"
    return None


def _shown(text: str) -> str:
    """`text`, cut short, for a reason."""
    return repr(text[:40]) + ("..." if len(text) > 40 else "")


def _short(count: int, left: int) -> str:
    return (f"the {count} bytes of message its first line counts are more than the {left} "
            "that follow (a wrong count, or a file cut short?)")
