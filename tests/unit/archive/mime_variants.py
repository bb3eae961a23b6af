"""Generated MIME messages and mutations of messages, for comparing a MIME parser with the
stdlib's feedparser: random trees (multipart, message/rfc822, digest, delivery-status) with
random boundaries, line ends, transport padding, preambles and epilogues, then random cuts,
inserted delimiter and header lines, changed boundaries and types, line-end changes, bare
CRs, 8-bit bytes and spliced pieces. Deterministic for a given random.Random.
"""
from __future__ import annotations

import random
import re

BOUNDARY = re.compile(rb'boundary\*?(?:0\*?)?=\s*"?([^";\r\n]*)"?', re.I)
LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
CONTENT_TYPE = re.compile(rb"(?i)content-type:\s*([^;\r\n]*)")
# RFC 2046 bchars, and a few that are not (a boundary the parser must still take as given)
BOUNDARY_CHARACTERS = b"abcXYZ0189'()+_,-./:=? "
ODD_TYPES = [b"message/rfc822", b"multipart/digest", b"message/delivery-status",
             b"multipart/mixed", b"text/plain", b"message/partial", b"multipart/alternative",
             b"application/pdf", b"multipart", b"message/", b"MULTIPART/Mixed", b"text/html"]
ODD_LINES = [b"", b"From someone", b"From: x@example.org", b"\tcontinued", b" continued",
             b":novalue", b"X-H: v", b"\x80bad: x", b"no header line", b"\x00", b"--", b"----",
             b"Content-Type: text/plain", b"Content-Type: multipart/mixed; boundary=B",
             b"Content-Type: message/rfc822", b"Content-Transfer-Encoding: base64",
             b"Content-Type: message/delivery-status",
             b"Content-Type: multipart/digest; boundary=D"]

# Lines a delivery status (RFC 3464) carries that are no field, and fields among them.
STATUS_TEXT = [b"the mail system said no", b"Status 5.1.1 no colon", b"From the MTA",
               b"\xe9t\xe9: 8-bit name", b"Action: failed", b" folded", b"-- ", b"x" * 1200]


def lines(raw: bytes) -> list[bytes]:
    """raw cut into lines as the feedparser cuts it (CRLF, CR or LF ends one)."""
    return LINE.findall(raw)


def boundaries(raw: bytes) -> list[bytes]:
    return [match.group(1) for match in BOUNDARY.finditer(raw)] or [b"B"]


def delimiter_variants(boundary: bytes) -> list[bytes]:
    """Delimiter lines of `boundary`, and lines that only look like one."""
    dashed = b"--" + boundary
    return [dashed, dashed + b"--", dashed + b"  ", dashed + b"\t--", dashed + b"-- \t",
            dashed + b"x", b" " + dashed, dashed + b"--x", dashed + b"-", b"-" + dashed,
            b"--" + boundary.swapcase(), dashed[:-1], dashed + b"----", dashed + b" x"]


# --- random trees ----------------------------------------------------------------------------

def random_boundary(rng: random.Random, outer: list[bytes]) -> bytes:
    if outer and rng.random() < 0.15:  # the same as, a prefix of, or an extension of an outer one
        base = rng.choice(outer)
        return rng.choice([base, base[:max(1, len(base) - 1)], base + b"x", base + b"-"])
    size = rng.choice([1, 2, 5, 12, 40, 70])
    return bytes(rng.choice(BOUNDARY_CHARACTERS) for _ in range(size)).strip() or b"b"


def random_body(rng: random.Random, eol: bytes) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return b""
    if kind == 1:  # base64-like lines
        return b"".join(b"QUJD" * rng.randrange(1, 19) + eol for _ in range(rng.randrange(1, 30)))
    if kind == 2:  # text with lines that start with dashes
        pool = [b"hello", b"-- ", b"--", b"---- forwarded ----", b"", b"=2D-", b"From x", b" "]
        return b"".join(rng.choice(pool) + eol for _ in range(rng.randrange(1, 8)))
    if kind == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
    if kind == 4:
        return b"no final line end"
    return eol * rng.randrange(1, 4)


def random_entity(rng: random.Random, eol: bytes, depth: int, outer: list[bytes],
                  in_digest: bool = False) -> bytes:
    """One MIME entity (header block and body), mostly well formed."""
    headers = []
    roll = rng.random()
    if depth < 4 and roll < 0.35:
        boundary = random_boundary(rng, outer)
        subtype = rng.choice([b"mixed", b"alternative", b"digest", b"related", b"signed"])
        quoted = rng.random() < 0.5
        value = b'"' + boundary + b'"' if quoted or b" " in boundary else boundary
        headers.append(b"Content-Type: multipart/" + subtype + b"; boundary=" + value)
        if rng.random() < 0.05:
            headers.append(b"Content-Transfer-Encoding: base64")
        body = _multipart_body(rng, eol, depth, [*outer, boundary], boundary,
                               subtype == b"digest")
    elif depth < 4 and roll < 0.45:
        headers.append(b"Content-Type: message/rfc822")
        body = random_entity(rng, eol, depth + 1, outer)
    elif roll < 0.5:
        headers.append(b"Content-Type: message/delivery-status")
        blocks = [b"Reporting-MTA: dns; example.org", b"Final-Recipient: rfc822; a@example.org"
                  + eol + b"Action: failed", b"X-A: b" + eol + b" folded"]
        if rng.random() < 0.3:  # an MTA's text in a block (no field: the block's body)
            blocks.append(rng.choice(STATUS_TEXT) + eol + rng.choice(STATUS_TEXT))
        body = (eol * rng.randrange(1, 3)).join(rng.sample(blocks, rng.randrange(1, 4))) \
            + eol * rng.randrange(0, 3)
    else:
        if not in_digest or rng.random() < 0.5:
            headers.append(rng.choice([b"Content-Type: text/plain; charset=utf-8",
                                       b"Content-Type: application/pdf; name=a.pdf",
                                       b"Content-Type: text/html"]))
        if rng.random() < 0.3:
            headers.append(b"Content-Transfer-Encoding: base64")
        body = random_body(rng, eol)
    if rng.random() < 0.3:
        headers.append(b"Subject: part " + bytes([rng.randrange(0x80, 0x100)]) + eol + b"\tfolded")
    if rng.random() < 0.1:
        headers = []  # no header block at all
    rng.shuffle(headers)
    return b"".join(header + eol for header in headers) + eol + body


def _multipart_body(rng: random.Random, eol: bytes, depth: int, outer: list[bytes],
                    boundary: bytes, digest: bool) -> bytes:
    body = b""
    if rng.random() < 0.4:
        body += b"preamble" + eol + b"--not the boundary" + eol * rng.randrange(1, 3)
    for _ in range(rng.randrange(1, 4)):
        body += b"--" + boundary + rng.choice([b"", b" ", b"\t  "]) + eol
        body += random_entity(rng, eol, depth + 1, outer, digest) + eol
    body += b"--" + boundary + b"--" + rng.choice([b"", b" ", b"\t"])
    if rng.random() < 0.8:
        body += eol
    if rng.random() < 0.4:
        body += b"epilogue" + eol + b"--" + boundary + b"x" + eol
    return body


def random_message(rng: random.Random) -> bytes:
    eol = rng.choice([b"\r\n", b"\n", b"\r\n", b"\n", b"\r"])
    top = b"From: a@example.org" + eol + b"Subject: generated" + eol
    if rng.random() < 0.1:
        top = b"From sender@example.org Mon Jan  1 00:00:00 2024" + eol + top
    return top + random_entity(rng, eol, 0, [])


# --- mutations -------------------------------------------------------------------------------

def _line_ends(raw: bytes, rng: random.Random) -> bytes:
    choice = rng.randrange(4)
    out = []
    for line in lines(raw):
        content = line.rstrip(b"\r\n")
        if len(content) == len(line):
            out.append(line)
            continue
        out.append(content + ([b"\n", b"\r\n", b"\r"][choice] if choice < 3
                              else rng.choice([b"\n", b"\r\n", b"\r", b"\n\r"])))
    return b"".join(out)


def _some_line_end(found: list[bytes], rng: random.Random) -> bytes:
    ends = [line[len(line.rstrip(b"\r\n")):] for line in found if line.endswith((b"\n", b"\r"))]
    return rng.choice(ends) if ends else b"\n"


def mutate_once(raw: bytes, rng: random.Random) -> bytes:
    found = lines(raw)
    operation = rng.randrange(13)
    if operation == 0 and raw:
        return raw[:rng.randrange(len(raw))]
    if operation == 1:
        return _line_ends(raw, rng)
    if operation in (2, 3) and found:
        at = rng.randrange(len(found))
        found[at:at + 1] = [] if operation == 2 else [found[at], found[at]]
        return b"".join(found)
    if operation in (4, 5):
        new = rng.choice(delimiter_variants(rng.choice(boundaries(raw))) if operation == 4
                         else ODD_LINES)
        found.insert(rng.randrange(len(found) + 1), new + _some_line_end(found, rng))
        return b"".join(found)
    if operation == 6:
        return _change_boundary(raw, rng)
    if operation == 7:
        matches = list(CONTENT_TYPE.finditer(raw))
        if matches:
            match = rng.choice(matches)
            return raw[:match.start(1)] + rng.choice(ODD_TYPES) + raw[match.end(1):]
    if operation == 8:
        at = rng.randrange(len(raw) + 1)
        return raw[:at] + rng.choice([b"\r", b"\n", b"\r\n", b"\r\r", b"\n\n"]) + raw[at:]
    if operation == 9 and raw:
        at = rng.randrange(len(raw))
        return raw[:at] + raw[at + 1:]
    if operation == 10:
        at = rng.randrange(len(raw) + 1)
        return raw[:at] + bytes([rng.choice(b"-\x80\xff:\t \x00")]) + raw[at:]
    if operation == 11 and raw:
        start = rng.randrange(len(raw))
        piece = raw[start:start + rng.randrange(400)]
        at = rng.randrange(len(raw) + 1)
        return raw[:at] + piece + raw[at:]
    if operation == 12:  # drop the blank line after a header block
        matches = list(re.finditer(rb"(\r\n|\r|\n)(\r\n|\r|\n)", raw))
        if matches:
            match = rng.choice(matches)
            return raw[:match.start(2)] + raw[match.end(2):]
    return raw


def _change_boundary(raw: bytes, rng: random.Random) -> bytes:
    matches = list(BOUNDARY.finditer(raw))
    if not matches:
        return raw
    match = rng.choice(matches)
    old, others = match.group(1), boundaries(raw)
    new = rng.choice([rng.choice(others), b"", b'"', b" " + old, old + b" ", old + b"\t",
                      old.upper(), old + b"--", b"-", b"a:b", b"x y", b"\xe9", old + b"\r\n x",
                      old[:-1], old + b'"; boundary="other'])
    changed = raw[:match.start(1)] + new + raw[match.end(1):]
    if rng.random() < 0.2:  # as an RFC 2231 parameter
        changed = changed.replace(b"boundary=", b"boundary*=utf-8''", 1)
    return changed


def mutate(raw: bytes, rng: random.Random) -> bytes:
    """raw changed one to three times at random."""
    for _ in range(rng.randrange(1, 4)):
        raw = mutate_once(raw, rng)
    return raw
