"""A TNEF stream's attributes ([MS-OXTNEF] 2.1.3), walked before the `tnef` tool unpacks it.

`tnef` (services.archive.containers) gives up on a whole winmail.dat for one bad part of it:
a stream cut short or followed by other bytes (it aborts), one title longer than a file name
may be once it has %XX-escaped it ("File name too long": every file after it is lost). And
it names a file without a title "tnef-tmp", as a sender may name one. So the stream is
first walked here, attribute by attribute (each: a level byte, 1 for the message, 2 for an
attachment; a 32-bit little-endian id, type << 16 | tag; a 32-bit length; the data; a
16-bit checksum, the sum of the data's bytes), and given to `tnef` as `prepared` says:

- cut before the first attribute that is not whole or whose level is neither (`damage`
  says where), and before the attachment it falls in when that one's data
  (attAttachData) had not come yet: the files before it are unpacked, none half;
- every attachment titled: right after its attAttachRendData (which begins each one) comes a
  stand-in title, which a title of its own, later, replaces; a title too long to be a file
  name is replaced by a stand-in too. A stand-in holds a random token, so no sender can
  write one, and `titles` maps each back to the title it stands for (None: untitled, an
  empty title included).

The first WALKED_ATTRIBUTES attributes are walked so; the rest is given as it is.

A MAPI long file name (PR_ATTACH_LONG_FILENAME in attAttachment's property list, [MS-OXTNEF]
2.1.3.4), which `tnef` prefers to the title, is replaced by a stand-in when too long, where
the property list can be walked whole (else it is given as it is, and one too long still
stops `tnef` there: the files before it are read).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from services.archive import charsets

HEADER_BYTES = 6  # the signature (0x223E9F78) and the legacy key ([MS-OXTNEF] 2.1.3.1)
SIGNATURE = (0x223E9F78).to_bytes(4, "little")
LEVELS = (1, 2)  # LVL_MESSAGE, LVL_ATTACHMENT
LVL_ATTACHMENT = 2
ATT_ATTACH_REND_DATA = 0x00069002  # begins each attachment ([MS-OXTNEF] 2.1.3.3)
ATT_ATTACH_TITLE = 0x00018010     # its title, a NUL-ended string in the stream's code page
ATT_ATTACH_DATA = 0x0006800F      # its bytes
ATT_OEM_CODEPAGE = 0x00069007     # two 32-bit code pages, the first in use
ATT_ATTACHMENT = 0x00069005       # the attachment's MAPI properties
PR_ATTACH_LONG_FILENAME = 0x3707
PT_STRING8, PT_UNICODE = 0x001E, 0x001F
MV_FLAG = 0x1000  # a multi-valued property: a count, then the values
# Bytes a value of each fixed-size property type takes, padded to 4 ([MS-OXTNEF] 2.1.3.4).
FIXED_BYTES = {0x0002: 4, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8,
               0x000A: 4, 0x000B: 4, 0x0014: 8, 0x0040: 8, 0x0048: 16}
VARIABLE_TYPES = (0x000D, PT_STRING8, PT_UNICODE, 0x0102)  # object, strings, binary
# The longest title given to tnef as it is: tnef writes a byte it escapes as 3 ("%XX"),
# and adds ".N" to a second file of one name; a Linux file name holds 255 bytes.
TITLE_BYTES = 80
# Attributes walked at most: the rest of a stream is given to tnef as it is. Some 1 us each
# (a 10 MB stream of 400,000 attachments took 1 s); a file takes at least 2 of them, and
# containers.MAX_MEMBERS (500) are listed.
WALKED_ATTRIBUTES = 20_000


@dataclass
class Prepared:
    """A stream as `tnef` should unpack it (module docstring)."""
    data: bytes
    titles: dict[bytes, bytes | None]  # stand-in title -> the title (None: it had none)
    codec: str | None  # the Python codec of its code page (attOemCodepage), if known
    damage: str | None  # where it stops being a stream, or None


def prepared(data: bytes) -> Prepared:
    """`data` (a TNEF stream, or bytes that only claim to be one) as `tnef` should unpack
    it, with the stand-in titles in it and where it is damaged. Never raises; a `data`
    without the TNEF signature is given back unchanged, for `tnef` to refuse."""
    if not data.startswith(SIGNATURE):
        return Prepared(data, {}, None, None)
    token, titles, codec = secrets.token_hex(8), {}, None
    kept, at = [data[:HEADER_BYTES]], HEADER_BYTES
    unwritten = None  # where in `kept` an attachment without its data so far begins
    for _ in range(WALKED_ATTRIBUTES):
        if at >= len(data):
            break
        end = _attribute_end(data, at)
        if end is None:
            return Prepared(b"".join(kept[:unwritten]), titles, codec,
                            f"damaged at byte {at} of {len(data)}: the rest is not read")
        attribute = int.from_bytes(data[at + 1:at + 5], "little")
        if attribute == ATT_ATTACH_REND_DATA:
            unwritten = len(kept)
        elif attribute == ATT_ATTACH_DATA:
            unwritten = None
        elif attribute == ATT_OEM_CODEPAGE and codec is None and end - at >= 15:
            codec = charsets.codec_for(f"cp{int.from_bytes(data[at + 9:at + 13], 'little')}")
        kept.append(_kept(data, at, end, attribute, titles, token))
        at = end
    return Prepared(b"".join(kept) + data[at:], titles, codec, None)


def _kept(data: bytes, at: int, end: int, attribute: int, titles: dict, token: str) -> bytes:
    """The attribute from `at` to `end` as tnef is given it: a title it cannot write as a
    stand-in; an attachment's beginning followed by a stand-in title (module docstring)."""
    if attribute == ATT_ATTACH_REND_DATA:
        return data[at:end] + _title(_stand_in(titles, token, "untitled", None))
    if attribute == ATT_ATTACH_TITLE:
        title = data[at + 9:end - 2].rstrip(b"\0")
        if not title:  # tnef would call the file "tnef-tmp"
            return _title(_stand_in(titles, token, "untitled", None))
        if len(title) > TITLE_BYTES:
            return _title(_stand_in(titles, token, "long", title))
    if attribute == ATT_ATTACHMENT:
        renamed = _long_name_replaced(data[at + 9:end - 2], titles, token)
        if renamed is not None:
            return _attribute(data[at], attribute, renamed)
    return data[at:end]


def _attribute_end(data: bytes, at: int) -> int | None:
    """Where the attribute at `at` ends (after its checksum); None when it is no whole
    attribute (cut short, or a level no attribute has: bytes after the stream)."""
    if at + 9 > len(data) or data[at] not in LEVELS:
        return None
    end = at + 9 + int.from_bytes(data[at + 5:at + 9], "little") + 2
    return end if end <= len(data) else None


def _stand_in(titles: dict, token: str, kind: str, title: bytes | None) -> bytes:
    stand_in = f"{kind}-{token}-{len(titles)}".encode("ascii")
    titles[stand_in] = title
    return stand_in


def _title(title: bytes) -> bytes:
    """An attAttachTitle attribute of `title`, NUL-ended."""
    return _attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, title + b"\0")


def _attribute(level: int, attribute: int, value: bytes) -> bytes:
    """One attribute: level, id, length, `value` and its checksum."""
    return (bytes([level]) + attribute.to_bytes(4, "little") + len(value).to_bytes(4, "little")
            + value + (sum(value) & 0xFFFF).to_bytes(2, "little"))


def _long_name_replaced(properties: bytes, titles: dict, token: str) -> bytes | None:
    """attAttachment's property list with a PR_ATTACH_LONG_FILENAME longer than TITLE_BYTES
    (as tnef writes it: UTF-8 for PT_UNICODE) replaced by a stand-in of its type; None when
    it has none such, or cannot be walked whole (a type this does not know, a length past
    the end)."""
    if len(properties) < 4:
        return None
    kept, at, replaced = [properties[:4]], 4, False
    for _ in range(_u32(properties, 0)):
        walked = _property(properties, at)
        if walked is None:
            return None
        kind, tag, values_at, end, strings = walked
        name = strings[0].rstrip(b"\0") if strings else b""
        if kind == PT_UNICODE:
            name = strings[0].decode("utf-16-le", "replace").rstrip("\0").encode("utf-8")
        if tag == PR_ATTACH_LONG_FILENAME and kind in (PT_STRING8, PT_UNICODE) \
                and len(strings) == 1 and len(name) > TITLE_BYTES:
            stand_in = _stand_in(titles, token, "long", name)
            value = (stand_in.decode("ascii").encode("utf-16-le") + b"\0\0"
                     if kind == PT_UNICODE else stand_in + b"\0")
            kept.append(properties[at:values_at] + (1).to_bytes(4, "little")
                        + len(value).to_bytes(4, "little") + value + b"\0" * (-len(value) % 4))
            replaced = True
        else:
            kept.append(properties[at:end])
        at = end
    return b"".join(kept) + properties[at:] if replaced else None


def _property(properties: bytes, at: int
              ) -> tuple[int, int, int, int, list[bytes]] | None:
    """The MAPI property at `at`: (its type less MV_FLAG, its tag, where its values
    begin, where it ends, its values when of a variable type); None past the end or of a
    type not known here."""
    if at + 4 > len(properties):
        return None
    kind, tag = _u16(properties, at), _u16(properties, at + 2)
    at += 4
    if tag >= 0x8000:  # a named property: a GUID, then a number or a UTF-16 name
        if at + 24 > len(properties):
            return None
        at += 24 if _u32(properties, at + 16) == 0 else 24 + _padded(_u32(properties, at + 20))
    values_at, base = at, kind & ~MV_FLAG
    count = 1
    if kind & MV_FLAG or base in VARIABLE_TYPES:
        if at + 4 > len(properties):
            return None
        count, at = _u32(properties, at), at + 4
    strings = []
    if base in VARIABLE_TYPES:
        for _ in range(count):
            if at + 4 > len(properties):
                return None
            length = _u32(properties, at)
            strings.append(properties[at + 4:at + 4 + length])
            at += 4 + _padded(length)
    elif base in FIXED_BYTES:
        at += count * FIXED_BYTES[base]
    else:
        return None
    return (base, tag, values_at, at, strings) if at <= len(properties) else None


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 2], "little")


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "little")


def _padded(length: int) -> int:
    return length + (-length % 4)
