"""Review 166 F1: past mime_parts.LINE_CHECKS an x-uuencode body part is given to the
parser in base64 under mime_parts.WRAPPED_FIELD; a part header that header_blocks.bounded
cuts (past HEADER_LINES_LIMIT header lines: its own, or an earlier block's) must keep
that field, else the part reads as base64 junk (its file name and words lost). The real
limits, no monkeypatching (poc_header_cut.py's shape: 40 nested multiparts, a text part
of filler lines taking the parser's line checks past LINE_CHECKS)."""
import binascii

import pytest

from services.archive import extract, header_blocks, mime_parts, uuencode

LEVELS = 40
FILLER = 499_000  # x LEVELS open multiparts: past LINE_CHECKS
CRLF = b"\r\n"
PADDING = header_blocks.HEADER_LINES_LIMIT + 10


def uu(name: bytes, data: bytes, end: bytes) -> bytes:
    lines = b"".join(binascii.b2a_uu(data[at:at + 45]) for at in range(0, len(data), 45))
    return (b"begin 644 " + name + b"\n" + lines + b"`\nend\n").replace(b"\n", end)


def message(encoding: bytes, where: str, end: bytes, filler: int = FILLER) -> bytes:
    """An attachment of x-uuencode `encoding` (words around a file) deep in nested
    multiparts, after `filler` lines; PADDING fields in its own header block ("own") or
    in an earlier part's ("earlier": the cut reaches every block after it). (A text
    part's base64 text is split into its uuencoded blocks whatever its encoding.)"""
    padding = b"X-Pad: p" + end
    raw = b"From: a@b.c" + end + b"Subject: s" + end
    raw += b"Content-Type: multipart/mixed; boundary=b0" + end + end
    for n in range(1, LEVELS):
        raw += b"--b%d%sContent-Type: multipart/mixed; boundary=b%d%s%s" % (n - 1, end, n, end, end)
    last = b"--b%d" % (LEVELS - 1) + end
    raw += last + b"Content-Type: text/plain" + end
    raw += (padding * PADDING if where == "earlier" else b"") + end + (b"x" + end) * filler
    raw += last + b"Content-Type: application/octet-stream" + end
    raw += b"Content-Transfer-Encoding: " + encoding + end
    raw += (padding * PADDING if where == "own" else b"") + end
    raw += b"prose okapiword before" + end
    raw += uu(b"secret-plans.txt", b"wombatword in the file\n" * 2000, end)
    raw += b"prose quokkaword after" + end
    for n in reversed(range(LEVELS)):
        raw += b"--b%d--" % n + end
    return raw


CASES = [(encoding.encode(), where, end) for at, encoding in enumerate(uuencode.ENCODINGS)
         for where, end in (("own", b"\r\n" if at % 2 else b"\n"),
                            ("earlier", b"\n" if at % 2 else b"\r\n"))]


@pytest.mark.parametrize("encoding,where,end", CASES,
                         ids=[f"{e.decode()}-{w}-{'crlf' if n == CRLF else 'lf'}"
                              for e, w, n in CASES])
def test_a_cut_header_keeps_the_wrapped_field(encoding, where, end):
    raw = message(encoding, where, end)
    given, _ = mime_parts.bounded(raw)
    assert b"begin 644 secret" not in given  # (past LINE_CHECKS: given in base64)
    assert header_blocks.bounded(given) is not given  # (and a header block cut)
    extracted = extract.extract(raw, 1 << 20)
    files = [a for a in extracted.attachments if a.filename == "secret-plans.txt"]
    assert len(files) == 1
    assert "wombatword" in (files[0].text or "")
    assert all("begin 644" not in (a.text or "") for a in extracted.attachments)
    assert not any(mime_parts.WRAPPED_FIELD.lower() in (a.text or "").lower()
                   for a in extracted.attachments)
    # as the same message reads within LINE_CHECKS (its x-uuencode body given as is)
    within = extract.extract(message(encoding, where, end, 1_000), 1 << 20)
    assert [(a.filename, a.mime_type, a.text) for a in extracted.attachments] == \
        [(a.filename, a.mime_type, a.text) for a in within.attachments]
