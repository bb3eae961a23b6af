"""A generated corpus of messages of many MIME parts, of any size: tiny parts side by side,
multiparts of tiny parts side by side, multiparts nested in a chain, parts with big
headers, delimiter lines with no part between them, parts that are attachments, and a
boundary holding ":" (RFC 2046 bchars). Each has a word in its first part (FIRST) and one
in its last (LAST). A correct archiver stores each byte-exact, finds it by its first
part's word, and by its last part's word or else flags it as partly indexed; its parser
holds a bounded number of parts (services.archive.mime_parts). A message of 1.6 million
tiny parts (16 MB) once ran an extraction worker out of memory, and the text of its last
parts was not searchable."""
from __future__ import annotations

from dataclasses import dataclass

FIRST, LAST = "firstpartword", "lastpartword"


@dataclass
class ManyParts:
    name: str
    raw: bytes
    words: tuple[str, str]  # (in its first part, in its last part)


def _message(boundary: bytes, units: bytes, end: bytes) -> bytes:
    """A multipart/mixed of `boundary`: a text part of FIRST, `units` (its delimiter lines
    and parts), a text part of LAST, the close delimiter."""
    delimiter = b"--" + boundary
    return end.join([b"From: a@example.org", b"To: b@example.com", b"Subject: many parts",
                     b"MIME-Version: 1.0",
                     b'Content-Type: multipart/mixed; boundary="' + boundary + b'"', b"",
                     delimiter, b"Content-Type: text/plain", b"", FIRST.encode()]) \
        + end + units + end.join([delimiter, b"Content-Type: text/plain", b"", LAST.encode(),
                                  delimiter + b"--", b""])


def _repeated(unit: list[bytes], end: bytes, size: int) -> bytes:
    """The lines of `unit` (a part, its delimiter line first), as many times as make some
    `size` bytes."""
    one = end.join(unit) + end
    return one * max(1, size // len(one))


def flat(size: int, end: bytes = b"\r\n", boundary: bytes = b"b") -> bytes:
    """Tiny text parts side by side (some 10 bytes each)."""
    return _message(boundary, _repeated([b"--" + boundary, b"", b"x"], end, size), end)


def nested(size: int, end: bytes = b"\r\n") -> bytes:
    """Multiparts of two tiny parts each, side by side."""
    unit = [b"--b", b"Content-Type: multipart/mixed; boundary=c", b"", b"--c", b"", b"x",
            b"--c", b"", b"y", b"--c--"]
    return _message(b"b", _repeated(unit, end, size), end)


def chain(size: int, end: bytes = b"\r\n") -> bytes:
    """Multiparts each the only part of the one before, LAST in the deepest."""
    depth = max(1, size // 60)
    opening = b"".join(b"--b%d%sContent-Type: multipart/mixed; boundary=b%d%s%s"
                       % (n, end, n + 1, end, end) for n in range(depth))
    closing = b"".join(b"--b%d--%s" % (n, end) for n in reversed(range(depth + 1)))
    return end.join([b"From: a@example.org", b"Subject: many parts",
                     b"Content-Type: multipart/mixed; boundary=b0", b"", b"--b0",
                     b"Content-Type: text/plain", b"", FIRST.encode(), b""]) \
        + opening + b"--b%d%s%s%s%s" % (depth, end, end, LAST.encode(), end) + closing


def big_headers(size: int, end: bytes = b"\r\n") -> bytes:
    """Tiny parts of twelve header fields each (some 600 bytes)."""
    fields = [b"X-Field-%d: %s" % (n, b"v" * 40) for n in range(10)]
    unit = [b"--b", b"Content-Type: text/plain; charset=us-ascii",
            b"Content-Transfer-Encoding: 7bit", *fields, b"", b"x"]
    return _message(b"b", _repeated(unit, end, size), end)


def empty_boundaries(size: int, end: bytes = b"\r\n") -> bytes:
    """Delimiter lines with no part between them (the parser makes no part of them)."""
    return _message(b"b", _repeated([b"--b"], end, size), end)


def attachments(size: int, end: bytes = b"\r\n") -> bytes:
    """Tiny base64 attachments, each named."""
    unit = [b"--b", b"Content-Type: application/octet-stream",
            b'Content-Disposition: attachment; filename="f.bin"',
            b"Content-Transfer-Encoding: base64", b"", b"AAEC"]
    return _message(b"b", _repeated(unit, end, size), end)


SHAPES = {
    "flat": flat,
    "flat-lf": lambda size: flat(size, b"\n"),
    "colon-boundary": lambda size: flat(size, boundary=b"a:b"),
    "nested": nested,
    "chain": chain,
    "big-headers": big_headers,
    "empty-boundaries": empty_boundaries,
    "attachments": attachments,
}


def corpus(size: int, names: tuple[str, ...] | None = None) -> list[ManyParts]:
    """Every shape (or those named), each of some `size` bytes."""
    return [ManyParts(name, build(size), (FIRST, LAST)) for name, build in SHAPES.items()
            if names is None or name in names]
