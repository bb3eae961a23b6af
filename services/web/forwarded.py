"""The bytes a stored message carries for a forwarded message (a message/* part, RFC 2046
5.2): a download of the part is those bytes, not the parser's re-serialization of the
message inside (which makes CRLF LF and refolds long header fields, so the file's size,
its attachments' bytes and a DKIM signature of it no longer match what was sent).

parse() parses a stored message as mime.parse_message does, which says where the content
of each message/* part lies in the raw bytes: the text the parser read the message inside
from, from after the part's header block to the line that ended it, less the line end
that belongs to a delimiter (services.archive.mimetree: the same single parse, malformed
mail included -- a multipart cut short, one without its boundary or its first delimiter,
a header block without its blank line). message_bytes() serves those bytes,
transfer-decoded where a mailer sent the part base64 or quoted-printable (RFC 2046 forbids
it; mailers do), and inner_message() is the message parsed from exactly them, so that
what a view lists inside a forward is what its download holds, and the forwards inside
an encoded one are located in their turn. Nothing is re-serialized and nothing parsed
twice: a view's work is linear in the message however deep its forwards nest (review r10
F2: each level's check re-parsed and re-serialized everything below it).

Where the parser cannot say -- the few inputs mimetree leaves to the feedparser (a "From "
line ending a header block, a boundary holding a line break, nesting past
mimetree.MAX_DEPTH), a message cut by parse_message's bounds -- a part
is served as its inner message's as_bytes(), as before. Such a part, and one sent encoded,
the view must rebuild (re-serialize everything it holds; decode and parse it), and those
nest: one inside REBUILT_NESTING others is not opened (listed and downloadable, the
message inside not read), so that a view rebuilds at most that many times the message.
"""
from __future__ import annotations

from email.message import Message

from services.archive import extract
from services.archive.mime import FoundFile, parse_message, safely
from services.archive.transfer_encoding import DECODERS, encoding_of

# Forwards a view must rebuild (module docstring) within one another that it opens, as deep
# as the indexer reads forwarded messages (extract.MAX_NESTED_MESSAGES): each costs the
# size of all it holds, so that a chain of them cost a view the message's size once a
# level (60 levels of 27 MB: quoted-printable that decodes to itself, or plain forwards
# beside a "From " line that ends a header block).
REBUILT_NESTING = extract.MAX_NESTED_MESSAGES
NOT_OPENED = (f"not opened in this view: a forwarded message sent encoded, or not found in "
              f"the stored bytes, inside {REBUILT_NESTING} others; download it")

_SOURCE_KEY = "_stored_source"    # a located message/* part's (raw, start, end)
_NESTING_KEY = "_rebuilt_nesting"  # how many forwards rebuilt hold a message/* part
_DECODED_KEY = "_stored_decoded"  # an encoded one's content, transfer-decoded once
_READ_KEY = "_stored_read"        # its inner message as read (_read), once
_BYTES_KEY = "_stored_bytes"      # of a part not located: its inner message's as_bytes()
# What a part knows of its content: a part made of the same content (the entity of a
# message whose whole body is a forward sent as a file, message_tree._whole_body) knows it.
CONTENT_KEYS = (_SOURCE_KEY, _NESTING_KEY, _DECODED_KEY, _READ_KEY, _BYTES_KEY)


def parse(raw: bytes, nesting: int = 0) -> Message:
    """mime.parse_message(raw), each message/* part in it knowing where its content lies
    in `raw` (mime.parse_message's spans). `nesting`: how many forwards the view rebuilt
    hold `raw` (0: the stored message). Raises what parse_message raises (MemoryError)."""
    spans: list[tuple[Message, int, int]] = []
    message = parse_message(raw, spans)
    for part, start, end in spans:
        part.__dict__[_SOURCE_KEY] = (raw, start, end)
    return _nested(message, nesting) if nesting else message


def message_bytes(part: Message) -> bytes:
    """The file of message/* part `part`: the bytes of its content in the stored message
    (transfer-decoded if it came base64 or quoted-printable) where parse() located them;
    else, of a report's fields (extract.REPORT_TYPES: blocks of fields), its blocks made
    whole as extraction reads them (extract.report_bytes), of any other the message inside
    it as extraction reads it, re-serialized (also where inner_message() does not open
    it); b"" when neither can be had. Never raises but MemoryError."""
    stored = _stored(part)
    if stored is not None:
        return stored
    if safely(part.get_content_type, "") in extract.REPORT_TYPES \
            and isinstance(part._payload, list):  # (status blocks, no message: made whole)
        return safely(lambda: extract.report_bytes(part), b"")
    if _BYTES_KEY not in part.__dict__:
        inner = safely(lambda: _read(part), None)
        part.__dict__[_BYTES_KEY] = safely(inner.as_bytes, b"") \
            if isinstance(inner, Message) else b""
    return part.__dict__[_BYTES_KEY]


def message_size(part: Message) -> int:
    """len(message_bytes(part)), in bytes, without copying the located content of a part
    sent as it is (a view sizes every forward of a chain: each copy holds all below it)."""
    if not _rebuilt(part):  # (located, sent as it is: its span is its file)
        _, start, end = part.__dict__[_SOURCE_KEY]
        return end - start
    return len(message_bytes(part))


def inner_message(part: Message) -> Message | None:
    """The message inside message/* part `part`: where parse() located its content, the
    one parsed from message_bytes() -- for a part sent unencoded the parser's own, for an
    encoded one parse() of its decoded bytes; of a .eml file found in a container or
    uuencoded, parse() of its bytes; else as extraction reads it (extract.inner_message).
    None for one the view would rebuild inside REBUILT_NESTING others (not_opened). Read
    once a part. Raises what those raise (MemoryError)."""
    return None if not_opened(part) else _read(part)


def not_opened(part: Message) -> str | None:
    """Why inner_message() does not read the message inside message/* part `part`
    (NOT_OPENED), or None."""
    if part.__dict__.get(_NESTING_KEY, 0) < REBUILT_NESTING or not _rebuilt(part):
        return None
    return NOT_OPENED


def _rebuilt(part: Message) -> bool:
    """Whether the view rebuilds what `part` holds: it is not located, or sent encoded."""
    return _SOURCE_KEY not in part.__dict__ or _decoder(part) is not None


def _read(part: Message) -> Message:
    """The message inside `part` (inner_message, whatever its nesting), read once, the
    message/* parts in it knowing how many rebuilt forwards hold them."""
    if _READ_KEY not in part.__dict__:
        nesting = part.__dict__.get(_NESTING_KEY, 0) + _rebuilt(part)
        if isinstance(part, FoundFile):
            inner = parse(part.data, nesting)
        elif _SOURCE_KEY in part.__dict__ and _decoder(part) is not None:
            inner = parse(_stored(part), nesting)
        elif _rebuilt(part):  # (not located: the parser's, re-serialized to be served)
            inner = _nested(extract.inner_message(part), nesting)
        else:  # (located, sent as it is: the parser's own, nested as `part` is already)
            inner = extract.inner_message(part)
        part.__dict__[_READ_KEY] = inner
    return part.__dict__[_READ_KEY]


def _nested(message: Message, nesting: int) -> Message:
    """`message`, each message/* part in it (at any depth: what it holds is rebuilt in
    its turn, _read) held by `nesting` rebuilt forwards."""
    stack = [message]
    while stack:
        part = stack.pop()
        if safely(part.get_content_maintype, "") == "message":
            part.__dict__[_NESTING_KEY] = nesting
        # (the parsed payload itself: get_payload() of a leaf decodes it by its charset
        # label, and a hostile label raises; a leaf's payload is no list anyway)
        if isinstance(part._payload, list):
            stack.extend(child for child in part._payload if isinstance(child, Message))
    return message


def _stored(part: Message) -> bytes | None:
    """The located content of `part`, transfer-decoded as its field says (once: a plain
    one is a slice, made anew each time rather than kept, so that a chain of forwards
    does not hold each level's copy of all below it); None if not located."""
    if _SOURCE_KEY not in part.__dict__:
        return None
    raw, start, end = part.__dict__[_SOURCE_KEY]
    decoder = _decoder(part)
    if decoder is None:
        return raw[start:end]
    if _DECODED_KEY not in part.__dict__:
        part.__dict__[_DECODED_KEY] = decoder(raw[start:end])  # (they never raise)
    return part.__dict__[_DECODED_KEY]


def _decoder(part: Message):
    """The decoder of the transfer encoding `part` declares (base64, quoted-printable), or
    None: its content is the message as it is."""
    return DECODERS.get(encoding_of(safely(lambda: part.get("content-transfer-encoding", ""),
                                            "")))
