"""A generated corpus of messages whose header blocks are padded with many lines, in every
place a header block is (the message's, a MIME part's, a forwarded message's), with the
MIME fields before or after the padding, padding of fields or of one field's continuation
lines, obsolete white space before colons, and CR LF, LF or lone-CR line ends. Each message
hides words after its padding (`words`): in its body, in a part's text, in an attachment's
file name. A correct archiver finds each by them, however many lines the padding has
(services.archive.header_blocks)."""
from __future__ import annotations

import base64
from dataclasses import dataclass

LINE_ENDS = {"crlf": b"\r\n", "lf": b"\n", "cr": b"\r"}


@dataclass
class Padded:
    name: str
    raw: bytes
    words: list[str]  # each must find the message


def padding(lines: int, kind: str) -> list[bytes]:
    """`lines` lines of padding: fields, fields with white space before the colon
    (RFC 5322 4.5.3), or the continuation lines of one field."""
    if kind == "fields":
        return [b"X-Pad: %d" % n for n in range(lines)]
    if kind == "obsolete":
        return [b"X-Pad%d : v" % n for n in range(lines)]
    return [b"X-Folded: start", *(b"\tfold %d" % n for n in range(lines))]


def _message(name: str, lines: list[bytes], line_end: bytes, words: list[str]) -> Padded:
    return Padded(name, line_end.join(lines), words)


def top_level(lines: int, kind: str, mime_first: bool) -> list[bytes]:
    """A quoted-printable text body after a padded message header."""
    mime = [b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: quoted-printable"]
    head = [b"From: a@example.org", b"To: b@example.com", b"Subject: padded"]
    pad = padding(lines, kind)
    fields = head + (mime + pad if mime_first else pad + mime)
    return fields + [b"", b"hiddenbodyword =C3=A9t=C3=A9", b""]


def multipart_top(lines: int, kind: str) -> list[bytes]:
    """The multipart's type and boundary after the padding of the message header."""
    return ([b"From: a@example.org", b"Subject: padded", *padding(lines, kind),
             b"Content-Type: multipart/mixed; boundary=\"b1\"", b""]
            + _parts([b"Content-Type: text/plain", b"", b"hiddenpartword"],
                     _attachment(b"hiddenfilename.txt", [])))


def part_header(lines: int, kind: str) -> list[bytes]:
    """A part whose own header is padded (its file name after the padding), and a text
    part after that one."""
    return ([b"From: a@example.org", b"Subject: padded", b"MIME-Version: 1.0",
             b"Content-Type: multipart/mixed; boundary=b1", b""]
            + _parts(_attachment(b"hiddenfilename.txt", padding(lines, kind)),
                     [b"Content-Type: text/plain", b"", b"hiddenpartword"]))


def forwarded(lines: int, kind: str) -> list[bytes]:
    """A forwarded message (message/rfc822) whose own header is padded."""
    inner = [b"From: c@example.org", b"Subject: inner", *padding(lines, kind),
             b"Content-Type: text/plain", b"", b"hiddeninnerword"]
    return ([b"From: a@example.org", b"Subject: padded",
             b"Content-Type: multipart/mixed; boundary=b1", b""]
            + _parts([b"Content-Type: text/plain", b"", b"see the forwarded one"],
                     [b"Content-Type: message/rfc822", b"", *inner]))


def _attachment(filename: bytes, pad: list[bytes]) -> list[bytes]:
    return [b"Content-Type: application/octet-stream", *pad,
            b"Content-Disposition: attachment; filename=\"" + filename + b"\"",
            b"Content-Transfer-Encoding: base64", b"",
            base64.b64encode(b"attached data")]


def _parts(*parts: list[bytes]) -> list[bytes]:
    lines = []
    for part in parts:
        lines += [b"--b1", *part]
    return lines + [b"--b1--", b""]


def corpus(lines: int, names: tuple[str, ...] | None = None) -> list[Padded]:
    """Every shape (or those named), each with `lines` lines of padding."""
    return [_message(name, build(), line_end, words)
            for name, build, line_end, words in _shapes(lines)
            if names is None or name in names]


def _shapes(lines: int):
    """(name, what builds its lines, line end, words) of each shape."""
    for end_name, line_end in LINE_ENDS.items():
        for kind in ("fields", "obsolete", "folded"):
            for mime_first in (True, False):
                where = "first" if mime_first else "last"
                yield (f"top-{end_name}-{kind}-mime-{where}",
                       lambda kind=kind, mime_first=mime_first: top_level(lines, kind, mime_first),
                       line_end, ["hiddenbodyword", "été"])
        yield (f"multipart-{end_name}", lambda: multipart_top(lines, "fields"), line_end,
               ["hiddenpartword", "hiddenfilename"])
        yield (f"part-{end_name}", lambda: part_header(lines, "fields"), line_end,
               ["hiddenpartword", "hiddenfilename"])
        yield (f"forwarded-{end_name}", lambda: forwarded(lines, "fields"), line_end,
               ["hiddeninnerword"])
