"""Quoted-printable (RFC 2045 6.7), base64 (RFC 2045 6.8) and x-uuencode decoded without
losing text: every decoding of a body or part goes through here, never through binascii,
quopri or Message.get_payload(decode=True) on their own.

CPython's a2b_qp (which quopri and the email package use) takes "=" and a CR as the start
of a soft line break and skips to the next LF: in a message whose lines end in a lone CR
(classic Mac OS mailers) everything after the first soft line break was lost, and in any
other a sender could hide the rest of a line from the index behind "=<CR>". It also keeps
the transport padding RFC 2045 allows between the "=" and the line break ("= <CRLF>").
Here a soft line break is "=", optional blanks, and a line break of any of the three kinds
(CRLF, LF, lone CR), and it is taken out before a2b_qp decodes the rest.

a2b_base64 (and the email package) stop at the first padding "=": a body of chunks each
encoded on its own ("aGVsbA==" then "d29ybGQ="), as some encoders write line by line,
kept only its first chunk, and a sender could hide text from the index behind a padded
line that no mail client stops at. RFC 2045 allows taking "=" as the end of the data; an
archive reads on, each padded run decoded on its own: more text indexed than a client
shows costs nothing, less could hide evidence.

x-uuencode (and its other names, services.archive.uuencode.ENCODINGS) is read as encoding_of
reads a token: the email package decoded only a value that was the bare name, so
"x-uuencode (old client)" or a trailing blank left the file's encoded lines as its text.
"""
from __future__ import annotations

import binascii
import bisect
import io
import mmap
import re
import sys
import tempfile
from collections.abc import Iterator
from email.message import Message
from typing import BinaryIO

from services.archive import uuencode

_SOFT_LINE_BREAK = re.compile(rb"=[ \t]*+(?:\r\n|\n|\r)")
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_BASE64 = bytes(set(range(256)) - set(_BASE64_ALPHABET + b"="))
_PADDING = re.compile(rb"=+")
# Base64 on lines, padded only at its end, as an encoder writes it (services.archive.
# mime_parts' cut text, at megabytes), blanks and blank lines allowed (a sender's lines
# ending in a blank, blank lines after the padding: review r24 F3): a2b_base64 reads it as
# decode_base64 does, without the copy that leaves out what is not base64 (a copy of the
# whole text, at the peak of an extraction's memory). Matched against its end (without
# the white space after it).
_WHITE_SPACE = b" \t\r\n"
_PLAIN_BASE64_END = re.compile(rb"[A-Za-z0-9+/ \t\r\n]*(?:[A-Za-z0-9+/]={0,2})?")
_LETTERS_AND_WHITE_SPACE = _BASE64_ALPHABET + _WHITE_SPACE
# What _PLAIN_BASE64_END is matched against: the last bytes before the white space that
# ends the text, "=" padding and the letter before it, with room to spare.
PADDED_TAIL = 8
# Padding that ends no run: after a whole number of quads (nothing to pad) or a quad's first
# letter (six bits: no byte). a2b_base64 and the email package read on past it as if it
# were not there; only padding after a quad's second or third letter ends a run.
_IGNORED_PADDING = re.compile(rb"(?:\A|=)(?:(?:[^=]{4})++[^=]?|[^=])=")
_TOKEN_END = re.compile(r"[\s;(]")
# Bodies are worked on in pieces of about this many bytes: a regular expression's
# substitution or split keeps an object per match until it is done (some 60 bytes each),
# and a hostile body is all matches ("a=<CR>" or "QQ=" over and over): 24 MB of it took
# 1.4 GB (quoted-printable) and 0.7 GB (base64), past an extraction worker's limit and in
# the web's and intake's own memory.
PIECE_BYTES = 1 << 16
_QP_PIECE_START = re.compile(rb"[^ \t\r\n]")  # no soft line break goes on past it
# Where quoted-printable can be cut into pieces decoded each on its own (the end of a
# match): after two characters that are neither "=" (no "=XX" goes on past them) nor
# blanks or line breaks (no soft line break does: they are text), and after a soft line
# break ended by an LF right after two such characters. A text of long lines joined by
# soft line breaks has no hard line break to cut at for megabytes: it was decoded whole
# (tests/unit/archive/test_quoted_printable_pieces.py checks the cuts change nothing).
_QP_CUT = re.compile(rb"[^= \t\r\n]{2}(?:=[ \t]*\n)?")


def decode_quoted_printable(data: bytes) -> bytes:
    """The bytes quoted-printable `data` stands for (RFC 2045 6.7): soft line breaks after
    any line ending joined, "=XX" decoded, anything else kept as it is. Decoded in pieces
    of about PIECE_BYTES (_QP_CUT: no soft line break nor "=XX" goes on past one), so that
    what is held at once is the decoded bytes and a piece, not the text without its soft
    line breaks as well. Never raises."""
    decoded = io.BytesIO()
    for piece in _pieces(data, _QP_CUT, after=True):
        decoded.write(_decoded_lines(piece))
    return decoded.getvalue()


def _decoded_lines(data: bytes | memoryview) -> bytes:
    """decode_quoted_printable of `data`, a piece of it that _QP_CUT ends (or the text's
    end)."""
    data = b"".join(_SOFT_LINE_BREAK.sub(b"", piece)
                    for piece in _pieces(data, _QP_PIECE_START, after=False))
    # Joining lines can put an "=" that was text ("==<LF><CR>...", "a=" then a soft line
    # break) right before a line break, which a2b_qp would take for a soft line break
    # again: after "=<CR>" it skips to the next LF (the rest of the line lost), after
    # "=<LF>" it joins two words. Every soft line break is gone by now: such an "=" is text.
    data = data.replace(b"=\r", b"=3D\r").replace(b"=\n", b"=3D\n")
    return binascii.a2b_qp(data)


def decode_base64(data: bytes | memoryview | str) -> bytes:
    """The bytes base64 `data` stands for (RFC 2045 6.8): characters outside the base64
    alphabet ignored (line breaks, blanks, junk), each run ended by padding decoded on its
    own (padding that ends no quad, after its first letter or after a whole quad, is
    skipped as a2b_base64 skips it), a run's missing padding supplied and a lone last
    character of a run dropped. `data` may be a str of ASCII characters only (a parsed
    part's payload), read as its bytes, or a view into a message's bytes (a held
    payload): well-formed base64 is decoded with no bytes copy of it (an attachment's
    payload is tens of MB).
    Never raises."""
    if _plain_base64(data):
        # a2b_base64 reads it as below when it reads it at all: it fails on a last quad of
        # one letter, or of two or three not padded to four characters, and reads one
        # padded so, or with more padding than it needs, as the run's bytes.
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            pass
    data = _ascii_bytes(data).translate(None, _NOT_BASE64)
    if b"=" not in data.rstrip(b"="):  # padding at the end only, if at all: one run
        return _decoded_run(data.rstrip(b"="))
    decoded, pending = [], b""
    for piece in _pieces(data, _PADDING, after=True):
        if not pending and not _IGNORED_PADDING.search(piece):  # every padding ends a run
            decoded.append(b"".join(map(_decoded_run, _PADDING.split(piece))))
            continue
        *padded, last = _PADDING.split(piece)
        runs = []  # of this piece, joined before the next: an object per run is memory
        for segment in padded:
            run = pending + segment
            pending = b""
            if len(run) & 3 == 1:  # padding after a quad's first letter: ignored, the
                pending = run[-1:]  # quad goes on (as a2b_base64 and mail clients read it)
                run = run[:-1]
            runs.append(_decoded_run(run))
        decoded.append(b"".join(runs))
        pending += last  # b"" but at the end of data
    decoded.append(_decoded_run(pending))
    return b"".join(decoded)


def _plain_base64(data: bytes | memoryview | str) -> bool:
    """Whether `data` is base64 letters, blanks and line breaks, padded ("=" or "==") at
    its end only (white space after it), told by deleting its letters and white space a
    piece at a time (a regular expression took 1 ns a byte, as much as decoding; a piece:
    no copy of megabytes): nothing may be left, or padding that is all in the last
    PADDED_TAIL bytes before the white space that ends `data`, which _PLAIN_BASE64_END
    then matches."""
    padding = 0
    for start in range(0, len(data), PIECE_BYTES):
        piece = _ascii_bytes(data[start:start + PIECE_BYTES])
        left = piece.translate(None, _LETTERS_AND_WHITE_SPACE)
        padding += len(left)
        if left.strip(b"=") or padding > 2:
            return False
    if not padding:
        return True
    end = _end_without_white_space(data)  # (before it: letters and white space, which
    tail = _ascii_bytes(data[max(0, end - PADDED_TAIL):end])  # match there)
    return tail.count(b"=") == padding and _PLAIN_BASE64_END.fullmatch(tail) is not None


def _end_without_white_space(data: bytes | memoryview | str) -> int:
    """Where `data` ends without the white space (blanks, line breaks) that ends it."""
    end = len(data)
    while end > 0:
        piece = _ascii_bytes(data[max(0, end - PIECE_BYTES):end])
        kept = len(piece.rstrip(_WHITE_SPACE))
        if kept:
            return end - len(piece) + kept
        end -= len(piece)
    return 0


def _ascii_bytes(data: bytes | memoryview | str) -> bytes:
    """`data`, a str of ASCII characters, as its bytes; a view's bytes (a copy); bytes as
    they are."""
    if isinstance(data, str):
        return data.encode("ascii")
    return bytes(data) if isinstance(data, memoryview) else data


def base64_pieces(part: Message, min_bytes: int) -> Iterator[bytes] | None:
    """The bytes of a base64 part (RFC 2045 6.8) whose payload the parser held (held_bytes)
    and is at least `min_bytes` long, decoded a piece at a time (about PIECE_BYTES each):
    their join is decoded_payload(part), which is never held whole. None for any other
    part, and for base64 that is not _plain_base64 (padding inside it, junk: decode_base64
    reads that whole). Each call gives a new iterator from the start. Never raises."""
    held = held_bytes(part)
    if held is None or len(held) < min_bytes or \
            encoding_of(part.get("content-transfer-encoding", "")) != "base64":
        return None
    return decode_base64_pieces(held)


def decode_base64_pieces(data: bytes | memoryview) -> Iterator[bytes] | None:
    """decode_base64(data) a piece at a time (about PIECE_BYTES each) when `data` is base64
    as an encoder writes it (_plain_base64: letters on lines, padded at its end only);
    None for any other (decode_base64 reads it whole). Never raises."""
    return _plain_base64_pieces(data) if _plain_base64(data) else None


def _plain_base64_pieces(data: bytes | memoryview) -> Iterator[bytes]:
    """The pieces of decode_base64_pieces: the letters of each piece of `data` up to a
    whole number of quads decoded, the rest carried to the next; the last run as
    decode_base64 reads it (its padding, or a quad cut short)."""
    for start, _, letters, whole in _plain_base64_walk(data):
        decoded = _walked_bytes(data, start, letters, whole)
        if decoded:
            yield decoded


def _plain_base64_walk(data: bytes | memoryview) -> Iterator[tuple[int, bytes, bytes, int]]:
    """(where in `data`, the letters carried into it, its letters, how many of them it
    decodes as whole quads) of each piece of `data`; last, when letters are left over, the
    last run: (len(data), them, them, 0)."""
    carried = b""
    for start in range(0, len(data), PIECE_BYTES):
        letters, whole = _plain_base64_letters(data, start, carried)
        yield start, carried, letters, whole
        carried = letters[whole:]
    if carried:
        yield len(data), carried, carried, 0


def _walked_bytes(data: bytes | memoryview, start: int, letters: bytes, whole: int) -> bytes:
    """The bytes a piece of _plain_base64_walk decodes to: its whole quads, or the last
    run (at len(data)) as decode_base64 reads it (its padding, or a quad cut short)."""
    if start >= len(data):
        return decode_base64(letters)
    return binascii.a2b_base64(letters[:whole]) if whole else b""


def _plain_base64_letters(data: bytes | memoryview, start: int, carried: bytes
                          ) -> tuple[bytes, int]:
    """(the letters of the piece of `data` at `start`, after those `carried`; how many of
    them it decodes: whole quads, unpadded, 3 bytes each, the rest carried on)."""
    letters = carried + bytes(data[start:start + PIECE_BYTES]).translate(None, _WHITE_SPACE)
    whole = len(letters) - len(letters) % 4
    if b"=" in letters[max(0, whole - 4):whole]:
        whole -= 4  # the padded last quad: read as decode_base64 reads a run's end
    return letters, whole


class Base64File(io.RawIOBase):
    """A seekable binary file (read-only) of the bytes base64 `data` stands for, decoded a
    piece (PIECE_BYTES of `data`) at a time as it is read, never held whole: zipfile reads
    a zip attachment of 70 MB out of the message's bytes so, where decoding it first held
    it beside them. `data` must be base64 as an encoder writes it (decode_base64_pieces is
    not None for it); its content is decode_base64(data)."""

    def __init__(self, data: bytes | memoryview):
        super().__init__()
        self._data = data
        # Where each piece starts: (offset in data, letters carried into it), and its
        # offset in the content (whole quads are 3 bytes each: they are not decoded here).
        self._starts, self._offsets, size = [], [], 0
        for start, carried, letters, whole in _plain_base64_walk(data):
            self._starts.append((start, carried))
            self._offsets.append(size)
            size += len(_walked_bytes(data, start, letters, whole)) if start >= len(data) \
                else whole // 4 * 3
        self._size, self._position = size, 0
        self._piece = (-1, b"")  # the last piece decoded: (its number, its bytes)

    def _decoded(self, number: int) -> bytes:
        if self._piece[0] != number:
            start, carried = self._starts[number]
            letters, whole = (carried, 0) if start >= len(self._data) else \
                _plain_base64_letters(self._data, start, carried)
            self._piece = (number, _walked_bytes(self._data, start, letters, whole))
        return self._piece[1]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """As io.BytesIO seeks, errors and their words included (zipfile's, python-docx's
        and openpyxl's readings of a damaged file are then those of the file read whole):
        a position before the start from the end or the current one is the start."""
        self._checkClosed()
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if whence == io.SEEK_SET and offset < 0:
            raise ValueError(f"negative seek value {offset}")
        if abs(offset) > sys.maxsize:
            raise OverflowError("Python int too large to convert to C ssize_t")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes from the position (all to the end when None or negative),
        fewer only at the end (b"" there), joined where they are written: zipfile reads a
        stored member of megabytes in one call, which RawIOBase's read would hold twice."""
        self._checkClosed()
        left = max(0, self._size - self._position)
        joined = io.BytesIO()
        for span in self._spans(left if size is None or size < 0 else min(size, left)):
            joined.write(span)
        return joined.getvalue()  # (the BytesIO's own bytes, not a copy)

    def readinto(self, buffer) -> int:
        """Up to len(buffer) bytes from the position, fewer only at the end (0 there)."""
        self._checkClosed()
        done = 0
        with memoryview(buffer).cast("B") as target:
            for span in self._spans(len(target)):
                target[done:done + len(span)] = span
                done += len(span)
        return done

    def _spans(self, count: int) -> Iterator[memoryview]:
        """The next `count` bytes (or those left) as views into the pieces they are in,
        the position moved past each as it is given."""
        while count > 0 and self._position < self._size:
            number = bisect.bisect_right(self._offsets, self._position) - 1
            at = self._position - self._offsets[number]
            span = memoryview(self._decoded(number))[at:at + count]
            if not span:  # (no piece the position is in: never, by how _starts is made)
                return
            self._position += len(span)
            count -= len(span)
            yield span


def _pieces(data: bytes, cut: re.Pattern, after: bool):
    """`data` in pieces of about PIECE_BYTES, each cut at the first match of `cut` past
    that many bytes (before it, or after it with `after`): where decoding a piece on its
    own changes nothing (no soft line break and no padded run goes on across it)."""
    start = 0
    while start < len(data):
        found = cut.search(data, start + PIECE_BYTES)
        end = (found.end() if after else found.start()) if found else len(data)
        yield data[start:end]
        start = end


def _decoded_run(run: bytes) -> bytes:
    if len(run) % 4 == 1:  # six bits: not a byte
        run = run[:-1]
    return binascii.a2b_base64(run + b"=" * (-len(run) % 4)) if run else b""


def encoding_of(value: object) -> str:
    """The transfer encoding a Content-Transfer-Encoding value names, as mail clients read
    it: its first token, lower-cased (blanks, a folded line, a comment or ";..." after it
    ignored). The email package compares the whole value, so "base64 " (a trailing blank),
    "base64 (comment)" or the value on a folded line left a part undecoded: its text, which
    Thunderbird shows, was indexed as the encoded letters."""
    text = str(value).strip()
    end = _TOKEN_END.search(text)
    return (text[:end.start()] if end else text).lower()


# The decoders of the transfer encodings a body's bytes stand for (RFC 2045 6.7, 6.8), by
# the name encoding_of gives; a part's decoding (_decoded) reads x-uuencode first, by
# uuencoded_payload.
DECODERS = {"quoted-printable": decode_quoted_printable, "base64": decode_base64}


def decoded_payload(part: Message) -> bytes:
    """What part.get_payload(decode=True) gives (bytes), with a quoted-printable, base64 or
    uuencoded part decoded as above (uuencode.decode: the first file, or the text as it is
    when no block in it decodes), and its encoding read as encoding_of reads it; b"" for a
    multipart or what cannot be decoded. Raises only MemoryError (a limit, not bad
    input)."""
    try:
        data = _decoded(part)
    except MemoryError:
        raise
    except Exception:  # the stdlib's accessors parse headers on the way
        return b""
    return data if isinstance(data, bytes) else b""


def uuencoded_file(part: Message) -> uuencode.File | None:
    """The file of a part whose transfer encoding is x-uuencode (or another of its names),
    with the name its begin line gives; None for another part, or when no block in it
    decodes. Never raises but MemoryError."""
    data = uuencoded_payload(part)
    return uuencode.first_file(data) if data is not None else None


def uuencoded_payload(part: Message) -> bytes | None:
    """The payload of a part whose transfer encoding is x-uuencode (or another of its
    names) as it came, undecoded; None for another part."""
    if encoding_of(part.get("content-transfer-encoding", "")) not in uuencode.ENCODINGS:
        return None
    held = held_bytes(part)
    if held is not None:
        return bytes(held)
    payload = part._payload  # (as _decoded reads it)
    if not isinstance(payload, str) or part.is_multipart():
        return None
    return payload_bytes(payload)


def decoded_pieces(part: Message) -> Iterator[bytes] | None:
    """decoded_payload(part) a piece at a time (of about PIECE_BYTES of the payload each),
    never held whole, for a payload the parser held (held_bytes): base64 as an encoder
    writes it (decode_base64_pieces), quoted-printable (in the pieces
    decode_quoted_printable decodes it in) or of no transfer encoding
    (7bit, 8bit, binary: the bytes as they are). None for any other part (x-uuencode,
    base64 with padding or junk inside, a payload held as a str): decoded_payload reads it
    whole. Each call gives a new iterator from the start. Never raises."""
    held = held_bytes(part)
    if held is None:
        return None
    encoding = encoding_of(part.get("content-transfer-encoding", ""))
    if encoding == "base64":
        return decode_base64_pieces(held)
    if encoding == "quoted-printable":
        return map(_decoded_lines, _pieces(held, _QP_CUT, after=True))
    if encoding in uuencode.ENCODINGS:
        return None
    return _held_pieces(held)


def uuencoded_pieces(part: Message) -> Iterator[bytes] | None:
    """uuencoded_payload(part) a piece (of PIECE_BYTES) at a time, never copied whole, for a
    payload the parser held (held_bytes); None for any other part. Each call gives a new
    iterator from the start."""
    held = held_bytes(part)
    if held is None or encoding_of(part.get("content-transfer-encoding", "")) \
            not in uuencode.ENCODINGS:
        return None
    return _held_pieces(held)


def _held_pieces(held: bytes | memoryview) -> Iterator[bytes]:
    return (bytes(held[at:at + PIECE_BYTES]) for at in range(0, len(held), PIECE_BYTES))


def held_bytes(part: Message) -> bytes | memoryview | None:
    """The bytes of a payload the parser held as bytes (services.archive.mimetree.
    HeldPayload: one with 8-bit bytes), as they came; None for any other."""
    return getattr(part, "payload_bytes", None)


def spilled_payload(part: Message) -> BinaryIO | None:
    """The held payload of `part` (held_bytes) moved into an unlinked temporary file, which
    the part then holds mapped read-only (mmap) in its place: every reader gets the same
    bytes, but the part no longer holds a view into the message's bytes (nor a copy), so
    that they are freed once nothing else holds them, and a page of the map is in memory
    only once it is read. A worker read a 70 MiB S/MIME object's content (70 MiB) while the
    100 MiB message was held for that view alone. Returns the file, to read the payload
    from (a FileBytes of it: the map's pages stay unread); None when the part holds no
    payload as bytes, or an empty one."""
    held = held_bytes(part)
    if held is None or len(held) == 0:
        return None
    spilled = tempfile.TemporaryFile(prefix="archiver-payload-")
    spilled.write(held)
    spilled.flush()
    del held
    part.hold_payload(memoryview(mmap.mmap(spilled.fileno(), 0, prot=mmap.PROT_READ)))
    spilled.seek(0)
    return spilled


def payload_view(part: Message) -> bytes | memoryview:
    """decoded_payload(part), but a payload held as a view into the message's bytes
    (held_bytes) that has no transfer encoding to decode is that view, not a copy: a
    body of 90 MB (services.archive.uuencode.split and charsets.decode_document_start
    read either)."""
    held = held_bytes(part)
    encoding = encoding_of(part.get("content-transfer-encoding", ""))
    if held is not None and encoding not in DECODERS and encoding not in uuencode.ENCODINGS:
        return held
    return decoded_payload(part)


def payload_bytes(payload: str) -> bytes:
    """A payload as the bytes it was read from: the bytes parser kept 8-bit bytes as
    surrogates, and they go back to what they were."""
    try:
        return payload.encode("ascii", "surrogateescape")
    except UnicodeError:  # a part made from text, as the email package falls back to
        return payload.encode("raw-unicode-escape")


def _decoded(part: Message) -> bytes | None:
    uuencoded = uuencoded_payload(part)
    if uuencoded is not None:
        return uuencode.decode(uuencoded)
    encoding = encoding_of(part.get("content-transfer-encoding", ""))
    decode = DECODERS.get(encoding)
    held = held_bytes(part)
    if held is not None:  # (7bit, 8bit, binary or none: as they are)
        if decode is decode_base64:  # (reads a view: no copy of a large attachment)
            return decode_base64(held)
        return decode(bytes(held)) if decode is not None else bytes(held)
    # What get_payload(decode=True) reads, which no public accessor gives undecoded: the
    # bytes parser kept 8-bit bytes as surrogates, and they go back to what they were.
    payload = part._payload
    if part.is_multipart() or not isinstance(payload, str):
        return part.get_payload(decode=True)
    if decode is None:  # 7bit, 8bit, binary or none: the bytes, as get_payload gives them,
        return payload_bytes(payload)  # without its trial UTF-8 copy (3 bytes a character)
    if decode is decode_base64 and payload.isascii():  # (told in constant time)
        return decode_base64(payload)  # no bytes copy of it
    return decode(payload_bytes(payload))
