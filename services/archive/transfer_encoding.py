"""Quoted-printable (RFC 2045 6.7) decoded without losing text: every decoding of a body
or part goes through here, never through binascii.a2b_qp, quopri or
Message.get_payload(decode=True) on their own.

CPython's a2b_qp (which quopri and the email package use) takes "=" and a CR as the start
of a soft line break and skips to the next LF: in a message whose lines end in a lone CR
(classic Mac OS mailers) everything after the first soft line break was lost, and in any
other a sender could hide the rest of a line from the index behind "=<CR>". It also keeps
the transport padding RFC 2045 allows between the "=" and the line break ("= <CRLF>").
Here a soft line break is "=", optional blanks, and a line break of any of the three kinds
(CRLF, LF, lone CR), and it is taken out before a2b_qp decodes the rest.
"""
from __future__ import annotations

import binascii
import re
from email.message import Message

_SOFT_LINE_BREAK = re.compile(rb"=[ \t]*+(?:\r\n|\n|\r)")


def decode_quoted_printable(data: bytes) -> bytes:
    """The bytes quoted-printable `data` stands for (RFC 2045 6.7): soft line breaks after
    any line ending joined, "=XX" decoded, anything else kept as it is. Never raises."""
    return binascii.a2b_qp(_SOFT_LINE_BREAK.sub(b"", data))


def decoded_payload(part: Message) -> bytes:
    """What part.get_payload(decode=True) gives (bytes), with a quoted-printable part
    decoded by decode_quoted_printable; b"" for a multipart or what cannot be decoded. The
    email package decides the same way which encoding a part has (its
    Content-Transfer-Encoding, lower-cased, as is). Raises only MemoryError (a limit, not
    bad input)."""
    try:
        data = _decoded(part)
    except MemoryError:
        raise
    except Exception:  # the stdlib's accessors parse headers on the way
        return b""
    return data if isinstance(data, bytes) else b""


def _decoded(part: Message) -> bytes | None:
    if part.is_multipart() or \
            str(part.get("content-transfer-encoding", "")).lower() != "quoted-printable":
        return part.get_payload(decode=True)
    # What get_payload(decode=True) reads, which no public accessor gives undecoded: the
    # bytes parser kept 8-bit bytes as surrogates, and they go back to what they were.
    payload = part._payload
    if not isinstance(payload, str):
        return part.get_payload(decode=True)
    try:
        data = payload.encode("ascii", "surrogateescape")
    except UnicodeError:  # a part made from text, as the email package falls back to
        data = payload.encode("raw-unicode-escape")
    return decode_quoted_printable(data)
