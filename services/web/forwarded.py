"""The bytes a stored message carries for a forwarded message (a message/* part, RFC 2046
5.2): a download of the part is those bytes, not the parser's re-serialization of the
message inside (which makes CRLF LF and refolds long header fields, so the file's size,
its attachments' bytes and a DKIM signature of it no longer match what was sent).

parse() parses a stored message; the first time the bytes of a message/* part reachable
from it (through multiparts and message/* parts at any depth) are asked for, where the
content of each lies in the raw bytes is found: services.archive.mimetree parses the raw
bytes a second time and notes where each part's body starts and where the delimiter line
(RFC 2046 5.1.1) that ends it does -- the same lines the parser split on -- and each part is
found at its place in that tree (the same child numbers, through parts of the same numbers
of children). Not before: a download of another file of a message that forwards one
parses the message once (the second parse of 50 MB of attachments took 0.2 s).
message_bytes() serves those bytes only when they are verified to be the part: parsed,
they give the message the parser put in the part (the same as_bytes()). Otherwise -- a
message mimetree leaves to the feedparser (a defect), a part inside a container or an
attachment that is not in the raw bytes -- it serves the inner message's as_bytes(), as
before. A message/* part sent base64 or quoted-printable (RFC 2046 forbids it; mailers do)
is its raw content transfer-decoded, verified the same way.
"""
from __future__ import annotations

from email.message import Message

from services.archive import mimetree
from services.archive.mime import POLICY, parse_message, safely
from services.archive.transfer_encoding import (decode_base64, decode_quoted_printable,
                                                encoding_of)

_PLACE_KEY = "_stored_place"  # a message/* part's (_Sources of its stored message, place)
_BYTES_KEY = "_stored_bytes"    # what message_bytes() answered for it, once
_DECODERS = {"base64": decode_base64, "quoted-printable": decode_quoted_printable}


def parse(raw: bytes) -> Message:
    """mime.parse_message(raw), each message/* part in it able to find where its content
    lies in `raw` (found when message_bytes() first asks, and verified then). Raises what
    parse_message raises (MemoryError)."""
    message = parse_message(raw)
    sources = None
    for part, place in _places(message):
        if _is_message_part(part):
            sources = sources or _Sources(raw)
            part.__dict__[_PLACE_KEY] = (sources, place)
    return message


def message_bytes(part: Message, inner: Message) -> bytes:
    """The file of message/* part `part` whose inner message (as the parser or
    extract.inner_message read it) is `inner`: the bytes of its content in the stored
    message (transfer-decoded if it came base64 or quoted-printable) when parse() located
    them and they parse into the same message; else inner.as_bytes(); b"" when neither can
    be had. Never raises but MemoryError."""
    if _BYTES_KEY not in part.__dict__:
        stored = _stored(part)
        if stored is None or not _same_message(stored, inner):
            stored = safely(inner.as_bytes, b"")
        part.__dict__[_BYTES_KEY] = stored
    return part.__dict__[_BYTES_KEY]


def _stored(part: Message) -> bytes | None:
    """The located content of `part`, transfer-decoded as its field says; None if none."""
    if _PLACE_KEY not in part.__dict__:
        return None
    sources, place = part.__dict__[_PLACE_KEY]
    found = sources.content(place)
    if found is None:
        return None
    start, end = found
    decoder = _DECODERS.get(encoding_of(part.get("content-transfer-encoding", "")))
    return decoder(sources.raw[start:end]) if decoder else sources.raw[start:end]


class _Sources:
    """Where the content of each message/* part of stored message `raw` lies, by the part's
    place (_places), found by one parse of `raw` (_Locating) the first time one is asked;
    no place for a message mimetree refuses (it leaves it to the feedparser)."""

    def __init__(self, raw: bytes):
        self.raw = raw
        self._contents: dict[tuple, tuple[int, int]] | None = None

    def content(self, place: tuple) -> tuple[int, int] | None:
        """[start, end) in `raw` of the content of the message/* part at `place`, or None."""
        if self._contents is None:
            located = _Locating(self.raw.decode("ascii", "surrogateescape"), POLICY)
            found = safely(located.root, None)  # (mimetree's refusal: nothing located)
            self._contents = {} if found is None else {
                at: located.contents[id(twin)] for twin, at in _places(found)
                if id(twin) in located.contents}
        return self._contents.get(place)


def _same_message(data: bytes, inner: Message) -> bool:
    return safely(lambda: parse_message(data).as_bytes() == inner.as_bytes(), False)


def _is_message_part(part: Message) -> bool:
    return safely(part.get_content_maintype, "") == "message"


def _places(message: Message):
    """(part, its place) of every part of `message`, depth first, through multiparts and
    message/* parts alike: a place is the (child number, children of its parent) of each
    step from the message down, so that two trees' parts at the same place lie where the two
    have the same shape down to them (the root: ())."""
    stack = [(message, ())]
    while stack:
        part, place = stack.pop()
        yield part, place
        # (the parsed payload itself: get_payload() of a leaf decodes it by its charset
        # label, and a hostile label raises; a leaf's payload is no list anyway)
        children = part._payload
        if isinstance(children, list):
            stack.extend((child, (*place, (number, len(children))))
                         for number, child in enumerate(children))


class _Locating(mimetree._Parser):
    """mimetree's parse noting, for each message/* part, the [start, end) of its content
    in the text (its body: from after its header block to the line that ends it, less the
    line end before a delimiter, which is the delimiter's: RFC 2046 5.1.1), keyed by the
    id() of the part in the tree it builds."""

    def __init__(self, text: str, policy):
        super().__init__(text, policy)
        self.body_starts: dict[int, int] = {}
        self.contents: dict[int, tuple[int, int]] = {}

    def _headers(self, message: Message, start: int, blank_ends: bool = False) -> int:
        body_start = super()._headers(message, start, blank_ends)
        self.body_starts[id(message)] = body_start
        return body_start

    def _message(self, start: int, parent: Message | None, depth: int) -> tuple[Message, int]:
        message, end = super()._message(start, parent, depth)
        if _is_message_part(message) and message.get_content_type() != "message/delivery-status":
            body_start = self.body_starts[id(message)]
            content = self.text[body_start:end]
            if end < self.size:  # ended by a delimiter line: the line end before it is its
                content = mimetree._without_line_end(content)
            self.contents[id(message)] = (body_start, body_start + len(content))
        return message, end
