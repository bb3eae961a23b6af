"""Reading the message body out of an IMAP UID FETCH answer, trusting nothing (RFC 3501).

imaplib hands over a FETCH answer as loosely split pieces: a line up to a literal's `{n}`
paired with the literal's bytes, then the rest of the line as plain bytes. A hostile or
broken server may answer for another message, send a partial section, a literal shorter
than the message (the rest spilling into the line after it), or FETCH responses nobody
asked for. Only one answer is taken as the message: a complete, well-formed msg-att list
that carries UID <the one asked for> and exactly the section BODY[]. Anything else is
refused with the reason. (RFC822.SIZE is not compared with the body: the literal's {n} is
the exact count, and real servers' RFC822.SIZE is off by a few bytes at times.)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Attributes whose value is (part of) a message: one of them for another message, or a
# section other than BODY[], must never be taken for the message asked for.
_BODY_NAME = re.compile(rb"(BODY|BINARY)(\.PEEK)?\[.*|RFC822(\.HEADER|\.TEXT)?$", re.I | re.S)
_RESPONSE = re.compile(rb"([1-9][0-9]*) \((.*)\)", re.S)
_LITERAL_AT_END = re.compile(rb"\{([0-9]+)\+?\}$")
_NZ_NUMBER = re.compile(rb"[1-9][0-9]*")


class Refused(Exception):
    """The server's answer to UID FETCH is not this message, whole and well-formed."""


@dataclass
class _Literal:
    index: int


def body_of(data: list, uid: int) -> bytes | None:
    """The message with `uid` from imaplib's FETCH data (a list of bytes and (bytes, bytes)
    pieces, or [None]); None when no response carries any body (the message is gone).
    Raises Refused (with why) when bodies came but none is exactly BODY[] of `uid`."""
    reasons, found = [], []
    for pieces in _responses(data):
        try:
            attributes, literals = _parse(pieces)
        except Refused as bad:
            reasons.append(str(bad))
            continue
        body = _body(attributes, literals, uid)
        if isinstance(body, bytes):
            found.append(body)
        elif body is not None:
            reasons.append(body)
    if len(found) == 1 and not reasons:
        return found[0]
    if len(found) > 1:
        reasons.append(f"{len(found)} bodies for UID {uid}")
    if not reasons:
        return None
    raise Refused("; ".join(reasons))


def _responses(data: list) -> list[list]:
    """imaplib's pieces grouped by FETCH response: a response ends with a plain-bytes piece."""
    grouped, current = [], []
    for piece in data:
        if piece is None:
            continue
        current.append(piece)
        if isinstance(piece, bytes):
            grouped.append(current)
            current = []
    if current:
        grouped.append(current)  # ended on a literal: _parse refuses it
    return grouped


def _parse(pieces: list) -> tuple[list[tuple[bytes, object]], list[bytes]]:
    """One FETCH response -> ([(attribute name, value)], literals); Refused if malformed."""
    text, literals = b"", []
    for piece in pieces:
        if b"\0" in (piece[0] if isinstance(piece, tuple) else piece):
            raise Refused("a NUL in a FETCH response")  # RFC 3501: never outside a literal
        if isinstance(piece, tuple):
            head, literal = piece
            size = _LITERAL_AT_END.search(head)
            if size is None or int(size.group(1)) != len(literal):
                raise Refused("a literal shorter than announced (the connection ended)")
            text += head[:size.start()] + b"\0%d\0" % len(literals)
            literals.append(literal)
        else:
            text += piece
    match = _RESPONSE.fullmatch(text)
    if match is None:
        raise Refused(f"a malformed FETCH response ({_clip(text)})")
    tokens = _tokens(match.group(2))
    if len(tokens) % 2:
        raise Refused(f"a malformed FETCH response ({_clip(text)})")
    return list(zip(tokens[0::2], tokens[1::2])), literals


def _body(attributes: list, literals: list[bytes], uid: int) -> bytes | str | None:
    """The body if this response is exactly BODY[] of `uid`; else why not (str), or None
    when it carries no body at all (e.g. an unsolicited FLAGS update)."""
    names = [name.upper() for name, _ in attributes if isinstance(name, bytes)]
    if len(names) != len(attributes) or len(set(names)) != len(names):
        return "a FETCH response with repeated or unnamed attributes"
    values = dict(zip(names, (value for _, value in attributes)))
    bodies = [name for name in names if _BODY_NAME.fullmatch(name)]
    if not bodies:
        return None
    said_uid = values.get(b"UID")
    if not (isinstance(said_uid, bytes) and _NZ_NUMBER.fullmatch(said_uid)):
        return "a message body without its UID"
    if int(said_uid) != uid:
        return f"the body of UID {int(said_uid)} where UID {uid} was asked for"
    if bodies != [b"BODY[]"]:
        return f"section {b' '.join(bodies).decode('ascii', 'replace')} instead of BODY[]"
    value = values[b"BODY[]"]
    if isinstance(value, _Literal):
        body = literals[value.index]
    elif isinstance(value, bytes) and not isinstance(value, _Atom):
        body = value  # a quoted string: legal for a small message
    else:
        return "BODY[] without a message"
    return body


class _Atom(bytes):
    """An atom (NIL, a number, an attribute name), as opposed to a quoted string."""


def _tokens(text: bytes) -> list:
    """msg-att tokens: atoms and section names (_Atom), quoted strings (bytes), parenthesized
    lists (skipped, as a list of nothing worth reading), literals (_Literal)."""
    tokens, at = [], 0
    while at < len(text):
        if tokens:
            if text[at:at + 1] != b" ":
                raise Refused(f"a malformed FETCH response ({_clip(text)})")
            at += 1
        token, at = _token(text, at)
        tokens.append(token)
    return tokens


def _token(text: bytes, at: int) -> tuple[object, int]:
    char = text[at:at + 1]
    if char == b"\0":
        end = text.index(b"\0", at + 1)
        return _Literal(int(text[at + 1:end])), end + 1
    if char == b'"':
        return _quoted(text, at)
    if char == b"(":
        return [], _list_end(text, at)
    return _atom(text, at)


def _quoted(text: bytes, at: int) -> tuple[bytes, int]:
    out, at = bytearray(), at + 1
    while at < len(text):
        char = text[at:at + 1]
        if char == b'"':
            return bytes(out), at + 1
        if char == b"\\":
            at += 1
            char = text[at:at + 1]
        out += char
        at += 1
    raise Refused(f"an unterminated string in a FETCH response ({_clip(text)})")


def _list_end(text: bytes, at: int) -> int:
    depth = 0
    while at < len(text):
        char = text[at:at + 1]
        if char == b'"':
            _, at = _quoted(text, at)
            continue
        depth += {b"(": 1, b")": -1}.get(char, 0)
        at += 1
        if depth == 0:
            return at
    raise Refused(f"an unbalanced list in a FETCH response ({_clip(text)})")


def _atom(text: bytes, at: int) -> tuple[_Atom, int]:
    """An atom; a section name runs to its "]" (it may hold spaces and lists) and a partial
    range "<n>" after it is part of the name (BODY[]<0> is not BODY[])."""
    start = at
    while at < len(text) and text[at:at + 1] not in (b" ", b"(", b")", b"\0", b'"'):
        if text[at:at + 1] == b"[":
            close = text.find(b"]", at)
            if close < 0:
                raise Refused(f"an unterminated section in a FETCH response ({_clip(text)})")
            at = close
        at += 1
    if at == start:
        raise Refused(f"a malformed FETCH response ({_clip(text)})")
    return _Atom(text[start:at]), at


def _clip(text: bytes) -> str:
    shown = text.replace(b"\0", b"").decode("ascii", "replace")
    return shown if len(shown) <= 80 else shown[:77] + "..."
