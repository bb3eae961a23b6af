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

PEM_BEGIN = b"-----BEGIN "
MAX_SKIP_DEPTH = 16   # nested indefinite lengths skipped at most (digest algorithms: 2)
_EOC = b"\x00\x00"    # end-of-contents of an indefinite length (X.690 8.1.5)


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


def carries_content(der: bytes) -> bool | None:
    """Whether the signed-data ContentInfo `der` holds a non-empty eContent (an opaque
    signature): False for a detached signature or a certificates-only bundle (no eContent,
    or an empty one), None when the bytes end or stray from signed-data's shape before that
    can be told."""
    try:
        at = _enter(der, 0, 0x30)        # ContentInfo
        at = _skip(der, at, 0x06)        # contentType (signed-data: the caller knows)
        at = _enter(der, at, 0xA0)       # content [0] EXPLICIT
        at = _enter(der, at, 0x30)       # SignedData
        at = _skip(der, at, 0x02)        # version
        at = _skip(der, at, 0x31)        # digestAlgorithms
        start, end = _contents(der, at, 0x30)  # encapContentInfo
        at = _skip(der, start, 0x06)           # eContentType
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


def first_element(der: bytes, size: int) -> bytes:
    """Up to `size` bytes from the first element inside the SEQUENCE `der` begins with (a
    ContentInfo's content type OID, tag and length included); b"" when `der` begins with
    no SEQUENCE header. The SEQUENCE may be cut: its header alone is read."""
    try:
        start, _ = _header(der, 0, 0x30)
    except _Unreadable:
        return b""
    return der[start:start + size]


def _enter(der: bytes, at: int, tag: int) -> int:
    """Where the contents of the element of `tag` at `at` begin."""
    return _contents(der, at, tag)[0]


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
