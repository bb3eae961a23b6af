"""A TNEF stream's attributes ([MS-OXTNEF] 2.1.3), walked before the `tnef` tool unpacks it.

`tnef` (services.archive.containers) gives up on a whole winmail.dat for one bad part of it:
a stream cut short or followed by other bytes (it aborts), one name longer than a file name
may be once it has %XX-escaped it ("File name too long": every file after it is lost). And
it names a file without a name "tnef-tmp", as a sender may name one. So the stream is
first walked here, attribute by attribute (each: a level byte, 1 for the message, 2 for an
attachment; a 32-bit little-endian id, type << 16 | tag; a 32-bit length; the data; a
16-bit checksum, the sum of the data's bytes), and given to `tnef` as `prepared` says:

- cut before the first attribute that is not whole or whose level is neither (`damage`
  says where), and before the attachment it falls in when that one's data
  (attAttachData) had not come yet: the files before it are unpacked, none half;
- every attachment named as tnef can write it: right after its attAttachRendData (which
  begins each one) comes a stand-in title, which a title of its own, later, replaces; a
  title that is empty or too long to be a file name is a stand-in too, and so is a MAPI long
  file name (PR_ATTACH_LONG_FILENAME in attAttachment's property list, [MS-OXTNEF]
  2.1.3.4), which tnef prefers to the title, when too long; an empty one is taken out (the
  title names the file). A stand-in holds a random token, so no sender can write one, and
  `titles` maps each back to the name it stands for (None: it has none). A name is read
  as tnef reads it: up to its first NUL.

A checksum is not checked (tnef is told to ignore it): what a wrong one says of a file's
bytes, the file's own reader finds. The walk costs some 0.3 us an attribute and copies only
what it changes; a property list that cannot be walked whole is given as it is (then a
long name in it still stops tnef there: the files before it are read).
"""
from __future__ import annotations

import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from services.archive import charsets, file_bytes
from services.archive.file_bytes import FileBytes

HEADER_BYTES = 6  # the signature (0x223E9F78) and the legacy key ([MS-OXTNEF] 2.1.3.1)
SIGNATURE = (0x223E9F78).to_bytes(4, "little")
LEVELS = (1, 2)  # LVL_MESSAGE, LVL_ATTACHMENT
LVL_ATTACHMENT = 2
ATT_ATTACH_REND_DATA = 0x00069002  # begins each attachment ([MS-OXTNEF] 2.1.3.3)
ATT_ATTACH_TITLE = 0x00018010     # its title, a NUL-ended string in the stream's code page
ATT_ATTACH_DATA = 0x0006800F      # its bytes
ATT_ATTACHMENT = 0x00069005       # its MAPI properties
ATT_OEM_CODEPAGE = 0x00069007     # two 32-bit code pages, the first in use
WATCHED = frozenset({ATT_ATTACH_REND_DATA, ATT_ATTACH_TITLE, ATT_ATTACH_DATA, ATT_ATTACHMENT,
                     ATT_OEM_CODEPAGE})
PR_ATTACH_LONG_FILENAME = 0x3707
PT_STRING8, PT_UNICODE = 0x001E, 0x001F
MV_FLAG = 0x1000  # a multi-valued property: a count, then the values
# Bytes a value of each fixed-size property type takes, padded to 4 ([MS-OXTNEF] 2.1.3.4).
FIXED_BYTES = {0x0002: 4, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8,
               0x000A: 4, 0x000B: 4, 0x0014: 8, 0x0040: 8, 0x0048: 16}
VARIABLE_TYPES = (0x000D, PT_STRING8, PT_UNICODE, 0x0102)  # object, strings, binary
# The longest name given to tnef as it is: tnef writes a byte it escapes as 3 ("%XX"),
# and adds ".N" to a second file of one name; a Linux file name holds 255 bytes.
TITLE_BYTES = 80
# Windows code page identifiers Python spells otherwise than "cpNNN" (codec names); of 8-bit
# or escaped text (a title is a NUL-ended string: UTF-16's 1200 cannot be one).
CODE_PAGES = {
    10000: "mac_roman", 10006: "mac_greek", 10007: "mac_cyrillic", 10029: "mac_latin2",
    10079: "mac_iceland", 10081: "mac_turkish",
    20866: "koi8_r", 21866: "koi8_u", 20932: "euc_jp", 51932: "euc_jp", 51949: "euc_kr",
    50220: "iso2022_jp", 50221: "iso2022_jp_ext", 50222: "iso2022_jp", 50225: "iso2022_kr",
    936: "gbk", 20936: "gb2312", 54936: "gb18030", 52936: "hz", 1361: "johab", 65001: "utf-8",
    **{28590 + n: f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 15)},
}
COPY_BYTES = 1 << 20  # the source's bytes copied into the stream at once (Prepared.chunks)
_ATTRIBUTE = struct.Struct("<BII")
_PROPERTY = struct.Struct("<HH")
_U32 = struct.Struct("<I")


@dataclass
class Prepared:
    """A stream as `tnef` should unpack it (module docstring): `pieces` in order, each the
    source's bytes from start to end ((start, end)) or bytes given in their place."""
    source: bytes | FileBytes
    pieces: list[tuple[int, int] | bytes]
    titles: dict[bytes, bytes | None]  # stand-in title -> the name (None: it had none)
    codec: str | None  # the Python codec of its code page (attOemCodepage), if known
    damage: str | None  # where it stops being a stream, or None
    over_limit: bytes | None = None  # what a file stands in for one over the limit

    @property
    def data(self) -> bytes:
        """The stream, whole."""
        return b"".join(self.chunks())

    def chunks(self, size: int = COPY_BYTES) -> Iterator[bytes]:
        """The stream a chunk of at most `size` bytes at a time (a replacement whole)."""
        return file_bytes.spliced_chunks(self.source, self.pieces, size)


def prepared(data: bytes | FileBytes, limit: int | None = None) -> Prepared:
    """`data` (a TNEF stream, or bytes that only claim to be one: bytes, or a FileBytes of
    a file of them, read a slice at a time) as `tnef` should unpack it, with the stand-in
    titles in it and where it is damaged. With a `limit` (bytes), an attachment's data
    (attAttachData) longer than that is given to tnef as `over_limit`, a token of the walk
    that no sender can write: its file is known to be over the limit without tnef holding
    and writing it (one of 70 MiB was 70 MiB in tnef, and more than the 64 MiB a tool may
    write). Never raises but OSError from reading a file; a `data` without the TNEF
    signature is given back unchanged, for `tnef` to refuse."""
    if data[:len(SIGNATURE)] != SIGNATURE:
        return Prepared(data, [(0, len(data))], {}, None, None)
    walk = _Walk(data, limit)
    return Prepared(data, walk.pieces, walk.titles, walk.codec, walk.damage, walk.over_limit)


class _Walk:
    """One walk of a stream (prepared()): `pieces`, `titles`, `codec`, `damage`,
    `over_limit`."""

    def __init__(self, data: bytes | FileBytes, limit: int | None = None):
        self.data, self.titles, self.codec, self.damage = data, {}, None, None
        self.token = secrets.token_hex(8)
        self.limit = limit
        self.over_limit = None if limit is None else f"over-limit-{self.token}".encode("ascii")
        self.pieces: list[tuple[int, int] | bytes] = []
        self.copied = 0        # data before this is in pieces
        self.unwritten = None  # (len(pieces), byte) where an attachment without data began
        self._walk()

    def _walk(self) -> None:
        data, at, size = self.data, HEADER_BYTES, len(self.data)
        unpack = _ATTRIBUTE.unpack
        while at < size:
            if at + 9 > size:
                return self._damaged(at)
            level, attribute, length = unpack(data[at:at + 9])
            end = at + 11 + length
            if level not in LEVELS or end > size:
                return self._damaged(at)
            if attribute in WATCHED:
                self._watched(level, attribute, at, end)
            at = end
        self.pieces.append((self.copied, size))

    def _damaged(self, at: int) -> None:
        if self.unwritten is not None:  # the attachment it cut before its data: none of it
            del self.pieces[self.unwritten[0]:]
        else:
            self.pieces.append((self.copied, at))
        self.damage = f"damaged at byte {at} of {len(self.data)}: the rest is not read"

    def _watched(self, level: int, attribute: int, at: int, end: int) -> None:
        if attribute == ATT_ATTACH_REND_DATA:
            self._replace(at, at, b"")  # (where the attachment begins, in pieces)
            self.unwritten = (len(self.pieces), at)
            self._replace(end, end, _title(self._stand_in("untitled", None)))
        elif attribute == ATT_ATTACH_DATA:
            self.unwritten = None
            if self.limit is not None and end - at - 11 > self.limit:
                self._replace(at, end, _attribute(level, attribute, self.over_limit))
        elif attribute == ATT_OEM_CODEPAGE and self.codec is None and end - at - 11 >= 4:
            page = _U32.unpack(self.data[at + 9:at + 13])[0]
            self.codec = charsets.codec_for(CODE_PAGES.get(page, f"cp{page}"))
        elif attribute == ATT_ATTACH_TITLE:
            name = _c_string(self.data[at + 9:end - 2])
            if not name or len(name) > TITLE_BYTES:
                kind = "long" if name else "untitled"
                self._replace(at, end, _title(self._stand_in(kind, name or None)))
        elif attribute == ATT_ATTACHMENT:
            renamed = self._long_name_replaced(self.data[at + 9:end - 2])
            if renamed is not None:
                self._replace(at, end, _attribute(level, attribute, renamed))

    def _replace(self, at: int, end: int, replacement: bytes) -> None:
        """Give tnef `replacement` for data[at:end]."""
        self.pieces.append((self.copied, at))
        if replacement:
            self.pieces.append(replacement)
        self.copied = end

    def _stand_in(self, kind: str, name: bytes | None) -> bytes:
        stand_in = f"{kind}-{self.token}-{len(self.titles)}".encode("ascii")
        self.titles[stand_in] = name
        return stand_in

    def _long_name_replaced(self, properties: bytes) -> bytes | None:
        """attAttachment's property list with its PR_ATTACH_LONG_FILENAME replaced by a
        stand-in when too long (as tnef writes it: UTF-8 for PT_UNICODE), taken out when
        empty; None when it needs neither, or cannot be walked whole."""
        found = _long_name(properties)
        if found is None:
            return None
        start, end, kind, name = found
        count = _U32.unpack_from(properties)[0]
        if not name:  # the title names the file
            return _U32.pack(count - 1) + properties[4:start] + properties[end:]
        if len(name) <= TITLE_BYTES:
            return None
        stand_in = self._stand_in("long", name)
        value = (stand_in.decode("ascii").encode("utf-16-le") + b"\0\0"
                 if kind == PT_UNICODE else stand_in + b"\0")
        replaced = (_PROPERTY.pack(kind, PR_ATTACH_LONG_FILENAME) + _U32.pack(1)
                    + _U32.pack(len(value)) + value + b"\0" * (-len(value) % 4))
        return properties[:start] + replaced + properties[end:]


def _long_name(properties: bytes) -> tuple[int, int, int, bytes] | None:
    """(start, end, type, the name as tnef reads it) of the first PR_ATTACH_LONG_FILENAME
    of a property list, a single string; None when it has none, or when a property before
    it cannot be walked (a type not known here, a length past the end)."""
    if len(properties) < 4:
        return None
    at, size = 4, len(properties)
    for _ in range(_U32.unpack_from(properties)[0]):
        walked = _property_end(properties, at)
        if walked is None:
            return None
        kind, tag, values_at, end = walked
        if tag == PR_ATTACH_LONG_FILENAME and kind in (PT_STRING8, PT_UNICODE) \
                and _U32.unpack_from(properties, values_at)[0] == 1:
            length = _U32.unpack_from(properties, values_at + 4)[0]
            value = properties[values_at + 8:values_at + 8 + length]
            if kind == PT_UNICODE:
                value = value.decode("utf-16-le", "replace").split("\0", 1)[0].encode("utf-8")
            return at, end, kind, _c_string(value)
        at = end
        if at >= size:
            return None
    return None


def _property_end(properties: bytes, at: int) -> tuple[int, int, int, int] | None:
    """(type less MV_FLAG, tag, where its values begin, where it ends) of the MAPI property
    at `at`; None past the end or of a type not known here."""
    size = len(properties)
    if at + 4 > size:
        return None
    kind, tag = _PROPERTY.unpack_from(properties, at)
    at += 4
    if tag >= 0x8000:  # a named property: a GUID, a kind, then a number or a UTF-16 name
        if at + 24 > size:
            return None
        named_by_string = _U32.unpack_from(properties, at + 16)[0] != 0
        at += 24 + (_padded(_U32.unpack_from(properties, at + 20)[0]) if named_by_string else 0)
    values_at, base, count = at, kind & ~MV_FLAG, 1
    if kind & MV_FLAG or base in VARIABLE_TYPES:
        if at + 4 > size:
            return None
        count, at = _U32.unpack_from(properties, at)[0], at + 4
    if base in VARIABLE_TYPES:
        for _ in range(count):  # each value's length, then the value; at most to the end
            if at + 4 > size:
                return None
            at += 4 + _padded(_U32.unpack_from(properties, at)[0])
    elif base in FIXED_BYTES:
        at += count * FIXED_BYTES[base]
    else:
        return None
    return (base, tag, values_at, at) if at <= size else None


def _c_string(value: bytes) -> bytes:
    """`value` up to its first NUL, as tnef (C) reads a string."""
    return value.split(b"\0", 1)[0]


def _title(title: bytes) -> bytes:
    """An attAttachTitle attribute of `title`, NUL-ended."""
    return _attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, title + b"\0")


def _attribute(level: int, attribute: int, value: bytes) -> bytes:
    """One attribute: level, id, length, `value` and its checksum."""
    return _ATTRIBUTE.pack(level, attribute, len(value)) + value \
        + (sum(value) & 0xFFFF).to_bytes(2, "little")


def _padded(length: int) -> int:
    return length + (-length % 4)
