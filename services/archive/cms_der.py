"""What the first bytes of a CMS object (RFC 5652) say, read from its DER without parsing it
all: whether a signed-data object carries the content it signs.

An S/MIME signed-data object is one of three things (RFC 8551): an opaque signature
(.p7m: the signed MIME entity inside, eContent present), a detached signature (smime.p7s of a
multipart/signed message: no eContent, the entity beside it) or a certificates-only bundle
(.p7c: no eContent, no signer). Only the first holds files to open; the other two are plain
files, and openssl, asked for a content that is not there, fails.

The walk reads tag and length headers (X.690 8.1.2-8.1.3), BER's indefinite lengths
included (openssl's streamed output), down to the EncapsulatedContentInfo (RFC 5652 5.2):
ContentInfo SEQUENCE, [0] EXPLICIT, SignedData SEQUENCE, version, digestAlgorithms SET,
then encapContentInfo SEQUENCE { eContentType OID, eContent [0] OPTIONAL }.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from services.archive.file_bytes import FileBytes

PEM_BEGIN = b"-----BEGIN "
MAX_SKIP_DEPTH = 16   # nested indefinite lengths skipped at most (digest algorithms: 2)
_EOC = b"\x00\x00"    # end-of-contents of an indefinite length (X.690 8.1.5)
# Segments of a constructed eContent content_of walks at most (openssl -stream writes one
# per 4 KiB: 17,920 for 70 MiB); past them the object is read whole (each costs ~100 bytes).
MAX_RUNS = 1 << 16


class _Unreadable(Exception):
    """The bytes end, or are not the DER the walk expects, before it can tell."""


def der_of(data: bytes) -> bytes:
    """The DER of a CMS object given as DER or as PEM (RFC 7468: "-----BEGIN PKCS7-----" or
    "CMS", base64 lines); `data` itself when it is no PEM or its base64 is broken."""
    if not data[:256].lstrip().startswith(PEM_BEGIN):
        return data
    lines = data.strip().splitlines()[1:]
    body = b"".join(line.strip() for line in lines if not line.startswith(b"-----"))
    try:
        return base64.b64decode(body, validate=False)
    except (binascii.Error, ValueError):
        return data


def carries_content(der: bytes | FileBytes) -> bool | None:
    """Whether the signed-data ContentInfo `der` holds a non-empty eContent (an opaque
    signature): False for a detached signature or a certificates-only bundle (no eContent,
    or an empty one), None when the bytes end or stray from signed-data's shape before that
    can be told."""
    try:
        at, end = _encapsulated(der, [])
        if at == end or (end is None and _byte_range(der, at, 2) == _EOC):
            return False                       # no eContent: detached
        at = _enter(der, at, 0xA0)             # eContent [0] EXPLICIT
        found = _byte_range(der, at, 1)[0]
        if found not in (0x04, 0x24):          # OCTET STRING, primitive or (BER) in chunks
            raise _Unreadable
        start, end = _contents(der, at, found)
        return _byte_range(der, start, 2) != _EOC if end is None else end > start
    except _Unreadable:
        return None


@dataclass
class Content:
    """Where the eContent of an opaque signed-data object lies in its DER (content_of): its
    OCTET STRING element from `start` to `end` (header included), the content's bytes in
    `runs` ((start, end) each, in order: one of a primitive string, one a segment of a
    constructed one), and the length field of each definite-length element around it,
    outermost first: (where the field's length bytes begin, how many there are, the
    length they say)."""
    start: int
    end: int
    runs: list[tuple[int, int]]
    lengths: list[tuple[int, int, int]]


def content_of(der: bytes | FileBytes) -> Content | None:
    """Where the eContent of signed-data `der` lies (Content), when its shape is plain: an
    OCTET STRING, primitive or constructed of at most MAX_RUNS primitive segments (as
    openssl's streamed output is), inside every definite length around it. None for any
    other (no eContent, a nested constructed string, a length past its enclosing one, the
    bytes ending first)."""
    try:
        lengths: list[tuple[int, int, int]] = []
        at, _ = _encapsulated(der, lengths)
        at = _enter(der, at, 0xA0, lengths)  # eContent [0] EXPLICIT
        end, runs = _octet_runs(der, at)
    except _Unreadable:
        return None
    inside = all(end <= field + count + length for field, count, length in lengths)
    return Content(at, end, runs, lengths) if inside else None


def stand_in(der: bytes | FileBytes, content: Content, octets: bytes
             ) -> list[tuple[int, int] | bytes] | None:
    """The pieces (file_bytes.spliced_chunks) of `der` with its eContent (`content`)
    replaced by a primitive OCTET STRING of `octets` (fewer than 128 bytes), each length
    around it shortened by as much, written in as many bytes as it was (BER allows a length
    its leading zero bytes, X.690 8.1.3.5); the rest as it is. None when the eContent is
    not longer than its replacement."""
    element = bytes([0x04, len(octets)]) + octets
    shorter = content.end - content.start - len(element)
    if shorter <= 0:
        return None
    pieces: list[tuple[int, int] | bytes] = []
    copied = 0
    for field, count, length in content.lengths:
        pieces += [(copied, field), (length - shorter).to_bytes(count, "big")]
        copied = field + count
    return pieces + [(copied, content.start), element, (content.end, len(der))]


def _encapsulated(der: bytes | FileBytes, lengths: list[tuple[int, int, int]]
                  ) -> tuple[int, int | None]:
    """(where encapContentInfo's element after its eContentType begins, where its contents
    end: None for an indefinite length) of signed-data `der`; the length fields of the
    definite-length elements entered on the way appended to `lengths` (Content.lengths)."""
    at = _enter(der, 0, 0x30, lengths)          # ContentInfo
    at = _skip(der, at, 0x06)                   # contentType (signed-data: the caller knows)
    at = _enter(der, at, 0xA0, lengths)         # content [0] EXPLICIT
    at = _enter(der, at, 0x30, lengths)         # SignedData
    at = _skip(der, at, 0x02)                   # version
    at = _skip(der, at, 0x31)                   # digestAlgorithms
    start, end = _contents(der, at, 0x30)       # encapContentInfo
    _note_length(der, at, end, lengths)
    return _skip(der, start, 0x06), end         # eContentType


def _octet_runs(der: bytes | FileBytes, at: int) -> tuple[int, list[tuple[int, int]]]:
    """(where the OCTET STRING at `at` ends, its runs: Content.runs). Raises _Unreadable for
    another element, a segment that is no primitive OCTET STRING, more than MAX_RUNS of
    them, or segments past the string's definite length."""
    found = _byte_range(der, at, 1)[0]
    if found == 0x04:
        start, end = _contents(der, at, 0x04)
        return end, [(start, end)]
    if found != 0x24:
        raise _Unreadable
    at, end = _contents(der, at, 0x24)
    runs = []
    while (at < end) if end is not None else (_byte_range(der, at, 2) != _EOC):
        if len(runs) >= MAX_RUNS:
            raise _Unreadable
        runs.append(_contents(der, at, 0x04))
        at = runs[-1][1]
    if end is not None and at != end:
        raise _Unreadable
    return (at if end is not None else at + 2), runs


def first_element(der: bytes, size: int) -> bytes:
    """Up to `size` bytes from the first element inside the SEQUENCE `der` begins with (a
    ContentInfo's content type OID, tag and length included); b"" when `der` begins with
    no SEQUENCE header. The SEQUENCE may be cut: its header alone is read."""
    try:
        start, _ = _header(der, 0, 0x30)
    except _Unreadable:
        return b""
    return der[start:start + size]


def _enter(der: bytes | FileBytes, at: int, tag: int,
           lengths: list[tuple[int, int, int]] | None = None) -> int:
    """Where the contents of the element of `tag` at `at` begin; its length field appended
    to `lengths` (Content.lengths) when it is definite."""
    start, end = _contents(der, at, tag)
    _note_length(der, at, end, lengths)
    return start


def _note_length(der: bytes | FileBytes, at: int, end: int | None,
                 lengths: list[tuple[int, int, int]] | None) -> None:
    """Append the length field of the element at `at` (Content.lengths), of a definite
    length (its contents ending at `end`), to `lengths`."""
    if end is None or lengths is None:
        return
    first = _byte_range(der, at + 1, 1)[0]
    count = first - 0x80 if first > 0x80 else 1  # long form: the bytes after this one
    field = at + 2 if first > 0x80 else at + 1
    lengths.append((field, count, end - field - count))


def _skip(der: bytes, at: int, tag: int | None, depth: int = 0) -> int:
    """Where the element at `at` (of `tag`, any when None) ends."""
    start, end = _contents(der, at, tag)
    if end is not None:
        return end
    if depth >= MAX_SKIP_DEPTH:
        raise _Unreadable
    at = start
    while _byte_range(der, at, 2) != _EOC:
        at = _skip(der, at, None, depth + 1)
    return at + 2


def _contents(der: bytes, at: int, tag: int | None) -> tuple[int, int | None]:
    """(start, end) of the contents of the element at `at`; end None for an indefinite
    length. Raises _Unreadable for another tag, a length past the bytes or a header cut."""
    start, end = _header(der, at, tag)
    if end is not None and end > len(der):
        raise _Unreadable
    return start, end


def _header(der: bytes, at: int, tag: int | None) -> tuple[int, int | None]:
    """_contents() read from the element's header alone: its end may lie past the bytes.
    Raises _Unreadable for another tag or a header cut."""
    found, length = _byte_range(der, at, 2)
    if tag is not None and found != tag:
        raise _Unreadable
    start = at + 2
    if length == 0x80:
        if not found & 0x20:  # only a constructed element may be of indefinite length
            raise _Unreadable
        return start, None
    if length > 0x80:  # long form: the next length - 0x80 bytes, big-endian
        count = length - 0x80
        if count > 4:
            raise _Unreadable
        length = int.from_bytes(_byte_range(der, start, count), "big")
        start += count
    return start, start + length


def _byte_range(der: bytes, at: int, count: int) -> bytes:
    if at + count > len(der):
        raise _Unreadable
    return der[at:at + count]
