"""Apple Mail's files, told by what they hold: its .emlx messages and the metadata it keeps
beside its mail. services.archive.mailfiles asks; this module only reads bytes.

Apple Mail (macOS) leaves two kinds of tree an import is given:
  * "Export Mailbox..." writes a bundle, a folder NAME.mbox holding the file `mbox` (the
    mail, an mbox read as any other) and `Info.plist` (the mailbox's settings, an XML or a
    binary property list) and, from older versions, `table_of_contents` (a binary index of
    the mbox, NeXT Mail's format: a big-endian header whose first word is 0x000d9758; its
    later forms are undocumented, binary all the same).
  * Its own store (~/Library/Mail/V*/ACCOUNT/NAME.mbox/.../Data/.../Messages/) holds each
    message as an .emlx file: a first line holding the message's length in bytes (decimal,
    padded with spaces: "13681     "), LF, exactly that many bytes of RFC 5322 message,
    then an XML property list of Apple's metadata (flags, date-received...). A
    NNN.partial.emlx is a message whose large attachments Apple Mail stored apart (in the
    Attachments folder beside Messages/; each part left out keeps its MIME header with an
    X-Apple-Content-Length field and no body). Beside the store: property lists
    (.mboxCache.plist, MailData/*.plist) and SQLite databases (MailData/Envelope Index, its
    -wal and -shm files).

What is told by content alone (metadata_skipped): an XML or binary property list, an SQLite
database, write-ahead log or shared-memory index, a table_of_contents (NeXT Mail's magic,
in a bundle beside its `mbox`: mailtree's Found.bundle_metadata) and an attachment in
Attachments/ beside Messages/ (mailtree's Found.apple_attachment) are not mail: they are
listed as skipped with what they are. Each is told by its whole content, within bounds,
never by its name, its place or its first bytes alone (reviews 167 and 172), and only
when no byte of it looks like mail: no line anywhere in it is a From_ line or begins with
a message's header field (MAIL_SIGN), and an XML one holds no CDATA section and no
comment (Apple's writer, CFPropertyList, writes neither; they could hold anything). Else
it is read as any file is: it fails loudly, or its mail imports. Their structure:
  * a property list parses (plistlib, at most MAX_PLIST bytes) to the end of the file; an
    XML one ends with `</plist>` (Apple's DTD, PropertyList-1.0.dtd; the binary format is
    plistlib's "bplist00", whose 32-byte trailer places its offset table at the file's end);
  * an SQLite database (sqlite.org/fileformat2.html, "The Database Header"): a page size
    that is a power of two, 512 to 65536 (header bytes 16-17; 1 means 65536), bytes 21-23
    are 64, 32, 32 (the payload fractions, fixed), and the file is whole pages;
  * its write-ahead log ("WAL File Format"): version 3007000 and a page size as above in
    its 32-byte header, then whole frames (24-byte header and one page each);
  * its shared-memory index ("-shm", "WAL-index Format"): version 3007000 as its first
    word, and whole 32 KiB blocks.
  * an attachment: anything else (a PDF, an image) that holds no mail sign; a zip, an mbox
    or a message there is read (mailfiles never asks about those).
The whole file is read to tell (what main reads of it is its first bytes), so what that
costs is charged (`afford`) to the zip it is in, a byte parsed as a property list as
PLIST_PARSE_COST bytes inflated, and a property list is parsed only up to MAX_PLIST bytes
(Apple's are a few hundred KiB at most; review 172: 40 of 8 MiB in a zip took 15 times
what reading them as files did).

An .emlx (read_emlx) gives the counted bytes, exactly, as the message, when what follows them
is Apple's property list alone (it parses to a dict and only white space follows its
`</plist>`: else mail after it, or a count cut short at a `<plist>` line in the body, would
be lost unsaid; review 167). A property list that holds a CDATA section, a comment or a
mail sign (review 172: more mail hidden in it) is Emlx.trailer_refused: the message is read
and the property list fails on its own, loudly. The count line and the property list are
Apple's, not the message's, as an mbox's From_ line is the mbox's.
Its date-received is not kept: the From_ line's date is (services.archive.message_date),
but it is recorded as "mbox-from-line", which this is not, and the Date and Received header
fields, read first, date nearly all mail; so the property list is parsed only to tell that
it is whole, and not kept.
"""
from __future__ import annotations

import plistlib
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO, Callable

from services.archive import mbox

SNIFF_BYTES = 4096  # enough of a file's start to tell what it is
# The count line: decimal digits, the spaces Apple pads them with, LF. 15 digits are more
# than any file holds; a longer run of digits is no count (read as today: not mail).
EMLX_COUNT = re.compile(rb"([0-9]{1,15}) *\n")
# An XML property list's start: an XML declaration (optional), then its DOCTYPE or root.
XML_PLIST = re.compile(rb"(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]{0,300}\?>\s*)?"
                       rb"(?:<!DOCTYPE\s+plist|<plist[\s>])")
# What follows an .emlx's counted bytes at once: its property list's declaration or root.
EMLX_TRAILER = re.compile(rb"<\?xml[ \t\r\n]|<!DOCTYPE[ \t\r\n]+plist|<plist[ \t\r\n>]")
BINARY_PLIST = b"bplist00"
SQLITE_DATABASE = b"SQLite format 3\x00"
SQLITE_WAL = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")  # big-endian, either checksum order
# A -shm file's first word: the wal-index version 3007000, in the writer's byte order.
SQLITE_SHM = (struct.pack("<I", 3007000), struct.pack(">I", 3007000))
SQLITE_WAL_VERSION = 3007000
SQLITE_PAYLOAD_FRACTIONS = b"\x40\x20\x20"  # database header bytes 21-23: 64, 32, 32
SQLITE_WAL_HEADER, SQLITE_WAL_FRAME_HEADER = 32, 24
SQLITE_SHM_BLOCK = 32 * 1024
NEXT_TABLE_OF_CONTENTS = b"\x00\x0d\x97\x58"  # 0xd9758, big-endian
TRAILER_PROBE = 64  # of the property list after an .emlx's message: its first bytes
# Apple's property lists are a few hundred bytes after an .emlx's message, and some KiB
# to a few hundred KiB in MailData; a larger one is read as any file (it fails, loudly).
MAX_TRAILER = 1024 * 1024
MAX_PLIST = 1024 * 1024
# plistlib parses an XML property list of many short strings about 40 times slower than
# zlib inflates it (1 MiB: 51 ms against 1.3 ms, measured here): a byte parsed costs the
# zip's budget (counted in bytes inflated) this many.
PLIST_PARSE_COST = 40
# A part of a partial .emlx whose body Apple Mail stored apart keeps this field.
APPLE_CONTENT_LENGTH = re.compile(rb"^X-Apple-Content-Length[ \t]*:", re.IGNORECASE | re.MULTILINE)
PARTIAL_SUFFIX = ".partial.emlx"
# A line that is a From_ line or begins with a header field every message or mbox has one of
# (RFC 5322 3.6; MIME-Version and Content-Type, RFC 2045), anywhere in a file: mail may be
# there, so it is not skipped. Loose on purpose: a false sign costs a loud failure, as
# before this module; a missed one, mail skipped. After a line break (_has_mail_sign puts
# one before a file's start); white space before the colon is obsolete syntax (RFC 5322
# 4.5.2), up to 32 of it is a sign still.
MAIL_SIGN = re.compile(rb"[\r\n](?:From |(?:from|sender|to|cc|bcc|subject|date|message-id|"
                       rb"received|return-path|reply-to|in-reply-to|references|mime-version|"
                       rb"content-type)[ \t]{0,32}:)", re.IGNORECASE)
MAIL_SIGN_SPAN = 64  # more than the longest sign (46 bytes): chunks overlap by this
XML_HIDING = (b"<![CDATA[", b"<!--")  # what Apple's writer never writes in a property list
SCAN_CHUNK = 1024 * 1024

BUNDLE_METADATA_SKIPPED = ("Apple Mail's mailbox bundle metadata ({name}, beside the "
                           "bundle's mbox): not mail, not read")
PLIST_SKIPPED = ("an Apple property list ({kind}: settings or metadata, as Apple Mail keeps "
                 "in Info.plist, .mboxCache.plist and MailData): not mail, not read")
SQLITE_SKIPPED = ("an SQLite {kind} (as Apple Mail's MailData/Envelope Index keeps its "
                  "index of the mail): not mail, not read")
ATTACHMENT_SKIPPED = ("an attachment Apple Mail stored apart from its partial message (in "
                      "Attachments/ beside Messages/), holding no mail: not read")
TRAILER_REFUSED = ("the property list after the {count} bytes of message its first line "
                   "counts holds {what}, which Apple Mail never writes there (more mail "
                   "hidden?): the message is read, its property list is not")
PARTIAL_WARNING = ("a partial .emlx: Apple Mail stored its large attachments apart (the "
                   "Attachments folder beside Messages/), so it is stored without them, as "
                   "the file holds it (not reassembled)")


def metadata_skipped(stream: BinaryIO, size: int | None, name: str,
                     bundle_metadata: bool, apple_attachment: bool = False,
                     afford: Callable[[int], bool] = lambda cost: True) -> str | None:
    """Why the open file `stream` (at its start; `size` bytes, None: unknown) is listed as
    skipped: it holds Apple Mail's metadata or an attachment it stored apart, not mail (the
    module's docstring says how each is told); None if it is read. Ask only about a file
    that mailfiles would read as one message (no zip, mbox or .emlx). `name`: its last part;
    `bundle_metadata`: it is an Info.plist or table_of_contents beside a bundle's mbox
    (mailtree.Found.bundle_metadata); `apple_attachment`: it lies under Attachments/ beside
    Apple Mail's Messages/ (mailtree.Found.apple_attachment). `afford(n)`: whether n more
    bytes inflated are within the caller's budget, and spends them (a zip's): the file's
    size, PLIST_PARSE_COST times it for a property list; if not, it is read as any file. Reads the whole file, in chunks, and leaves the stream anywhere
    (the caller seeks back). Nothing that holds a mail sign anywhere is skipped."""
    start = stream.read(SNIFF_BYTES)
    if size is None or _begins_as_mail(start):
        return None
    form = _plist_form(start)
    reason = _candidate(start, size, name, bundle_metadata, apple_attachment, form)
    if reason is None or not afford(size * (PLIST_PARSE_COST if form is not None else 1)):
        return None
    if form is not None:
        whole = start + stream.read(MAX_PLIST + 1 - len(start))
        return reason if _is_clean_plist(whole, form) else None
    return None if _holds_mail_sign(start, stream) else reason


def _candidate(start: bytes, size: int, name: str, bundle_metadata: bool,
               apple_attachment: bool, form) -> str | None:
    """Why a file of `size` bytes beginning with `start` (a property list of plistlib's
    format `form`, if not None) is skipped if its whole content shows no mail (looked at
    next); None if it is read whatever it holds."""
    if form is not None and size > MAX_PLIST:
        return None  # read as any file: Apple's are far smaller
    kind = _PLIST_KINDS[form] if form is not None else _sqlite_kind(start, size)
    if bundle_metadata and (kind or name == "table_of_contents"
                            and start.startswith(NEXT_TABLE_OF_CONTENTS)):
        return BUNDLE_METADATA_SKIPPED.format(name=name)
    if form is not None:
        return PLIST_SKIPPED.format(kind=kind)
    if kind:
        return SQLITE_SKIPPED.format(kind=kind)
    return ATTACHMENT_SKIPPED if apple_attachment else None


def _begins_as_mail(start: bytes) -> bool:
    return bool(mbox.HEADER_FIELD.match(start)) or mbox.starts_with_from_line(start)


_PLIST_KINDS = {plistlib.FMT_BINARY: "binary", plistlib.FMT_XML: "XML"}


def _plist_form(start: bytes):
    """plistlib's format of a property list beginning with `start`, or None."""
    if start.startswith(BINARY_PLIST):
        return plistlib.FMT_BINARY
    return plistlib.FMT_XML if XML_PLIST.match(start) else None


def _is_clean_plist(data: bytes, form) -> bool:
    """Whether `data` is one whole property list of plistlib's format `form`, of at most
    MAX_PLIST bytes, holding no mail sign, and, in XML, no CDATA section or comment."""
    if len(data) > MAX_PLIST or _has_mail_sign(data) or _hides_in_xml(data, form):
        return False
    return _parses_as_plist(data, form) is not None


def _hides_in_xml(data: bytes, form) -> str | None:
    """What of XML_HIDING an XML property list `data` holds ("a CDATA section", "a
    comment"), or None."""
    if form is plistlib.FMT_XML:
        for hiding, what in zip(XML_HIDING, ("a CDATA section", "a comment")):
            if hiding in data:
                return what
    return None


def _has_mail_sign(data: bytes, at_start: bool = True) -> bool:
    """Whether a line of `data` (its first too, if `at_start`) is a mail sign."""
    return bool(MAIL_SIGN.search(b"\n" + data if at_start else data))


def _holds_mail_sign(start: bytes, rest: BinaryIO) -> bool:
    """Whether a mail sign (MAIL_SIGN) is anywhere in `start` and what `rest` still holds,
    read in chunks of SCAN_CHUNK bytes."""
    if _has_mail_sign(start):
        return True
    tail = start[-MAIL_SIGN_SPAN:]
    while more := rest.read(SCAN_CHUNK):
        # a sign across the chunks' border begins at a line break in the tail, kept
        if _has_mail_sign(tail + more, at_start=False):
            return True
        tail = more[-MAIL_SIGN_SPAN:]
    return False


def _parses_as_plist(data: bytes, form) -> object | None:
    """What `data` holds if it is one whole property list of the format `form`
    (plistlib.FMT_XML: ending with `</plist>` and white space), else None."""
    if form is plistlib.FMT_XML and not data.rstrip().endswith(b"</plist>"):
        return None
    try:  # expat refuses entity declarations in a plist (no billion laughs)
        return plistlib.loads(data, fmt=form)
    except Exception:  # noqa: BLE001 - any damage (InvalidFileException, ExpatError,
        return None    # ValueError, RecursionError...) says: not a property list


def _sqlite_kind(start: bytes, size: int | None) -> str | None:
    """What SQLite file `start` (its first bytes) and `size` make, by the structure the
    module's docstring gives; None if none (or `size` is unknown)."""
    if size is None:
        return None
    if start.startswith(SQLITE_DATABASE) and _is_sqlite_database(start, size):
        return "database"
    if start[:4] in SQLITE_WAL and _is_sqlite_wal(start, size):
        return "write-ahead log (-wal)"
    if start[:4] in SQLITE_SHM and size % SQLITE_SHM_BLOCK == 0:
        return "shared-memory index (-shm)"
    return None


def _is_sqlite_database(start: bytes, size: int) -> bool:
    if len(start) < 24 or start[21:24] != SQLITE_PAYLOAD_FRACTIONS:
        return False
    page = _sqlite_page_size(struct.unpack(">H", start[16:18])[0])
    return page is not None and size % page == 0


def _is_sqlite_wal(start: bytes, size: int) -> bool:
    if len(start) < SQLITE_WAL_HEADER:
        return False
    version, page = struct.unpack(">II", start[4:12])
    return version == SQLITE_WAL_VERSION and page in _SQLITE_PAGE_SIZES and \
        (size - SQLITE_WAL_HEADER) % (SQLITE_WAL_FRAME_HEADER + page) == 0


_SQLITE_PAGE_SIZES = frozenset(1 << bits for bits in range(9, 17))  # 512 ... 65536


def _sqlite_page_size(field: int) -> int | None:
    """A database header's page size field (1 stands for 65536, which 16 bits cannot hold),
    in bytes; None if it is none."""
    page = 65536 if field == 1 else field
    return page if page in _SQLITE_PAGE_SIZES else None


# --- .emlx ----------------------------------------------------------------------------------

def starts_like_emlx(start: bytes) -> bool:
    """Whether a file beginning with `start` may be an .emlx: its first line is a count
    (digits, padded with spaces). read_emlx says whether it is one."""
    return EMLX_COUNT.match(start) is not None


class NotEmlx(Exception):
    """A file that begins with a count but is no .emlx, or a damaged one: why, in words."""


@dataclass(frozen=True)
class Emlx:
    raw: bytes     # the counted bytes: the message, exactly
    partial: bool  # a .partial.emlx: its large attachments stored apart, not in it
    # why its property list is refused (TRAILER_REFUSED: it may hide mail), or None
    trailer_refused: str | None = None


class TooLarge(Exception):
    """An .emlx whose count is over the limit: `size` bytes, not read."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def read_emlx(stream: BinaryIO, size: int | None, max_bytes: int, name: str) -> Emlx:
    """The message of an open .emlx (Apple Mail's format, above) of `size` bytes (None:
    unknown), read from its start: no more than the count line, the counted bytes and
    MAX_TRAILER bytes of property list are read, and never more than `max_bytes` of
    message.
    `name`: its last part (NNN.partial.emlx says partial, as the content does).
    Raises NotEmlx (a count that is not one, longer than the file, or not followed by one
    whole XML property list holding a dict, and nothing else but white space)
    or TooLarge (a count over `max_bytes`: nothing read). A property list holding a CDATA
    section, a comment or a mail sign gives Emlx.trailer_refused (the caller fails it)."""
    line = stream.readline(32)
    counted = EMLX_COUNT.fullmatch(line)
    if not counted:
        raise NotEmlx("its first line is not the message's length in bytes")
    count = int(counted.group(1))
    if size is not None and count > size - len(line):
        raise NotEmlx(_short(count, size - len(line)))
    if count > max_bytes:
        raise TooLarge(count)
    raw = stream.read(count)
    if len(raw) < count:  # the file shrank since its size was taken, or its size is unknown
        raise NotEmlx(_short(count, len(raw)))
    trailer = stream.read(MAX_TRAILER + 1)  # bounded: a count cut short leaves the rest
    if not EMLX_TRAILER.match(trailer[:TRAILER_PROBE]):
        raise NotEmlx(f"the {count} bytes its first line counts are not followed by Apple's "
                      "property list (a wrong count?)")
    if len(trailer) > MAX_TRAILER or \
            not isinstance(_parses_as_plist(trailer, plistlib.FMT_XML), dict):
        raise NotEmlx(f"what follows the {count} bytes its first line counts is not Apple's "
                      "property list alone, ending the file (more mail after it? a count cut "
                      "short?)")
    partial = name.lower().endswith(PARTIAL_SUFFIX) or bool(APPLE_CONTENT_LENGTH.search(raw))
    return Emlx(raw, partial, _trailer_refused(trailer, count))


def _trailer_refused(trailer: bytes, count: int) -> str | None:
    """Why an .emlx's property list (`trailer`, after `count` bytes of message) may hide
    mail (TRAILER_REFUSED), or None: it holds none of what Apple's writer never writes."""
    what = _hides_in_xml(trailer, plistlib.FMT_XML) or (
        "a line that begins as mail does" if _has_mail_sign(trailer) else None)
    return TRAILER_REFUSED.format(count=count, what=what) if what else None


def _short(count: int, left: int) -> str:
    return (f"the {count} bytes of message its first line counts are more than the {left} "
            "that follow (a wrong count, or a file cut short?)")
