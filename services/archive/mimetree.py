"""The Message tree of a raw RFC 5322 message exactly as the stdlib's email.feedparser
builds it, found with bytes.find on the RFC 2046 delimiter lines instead of line by line.

The feedparser walks every line of every body part in Python (each base64 attachment line
is a method call and a regular expression match against every enclosing boundary); here a
body part's end is found by searching for "--" + boundary and checking that the match
starts a line and is a delimiter (RFC 2046 section 5.1.1: "--" boundary, then "--" for the
close delimiter, transport padding, line end). Header blocks are still read line by line,
with the feedparser's own header pattern and the policy's header_source_parse, so header
values (8-bit bytes as surrogate escapes included) are the feedparser's.

The tree is the feedparser's: same parts, headers, unixfrom, payload strings (the line
break before a delimiter belongs to the delimiter), preamble, epilogue and defects --
those of malformed mail too, as the feedparser reads it: a header block ended by a line
that is no field (MissingHeaderBodySeparatorDefect: that line starts the body), a first
line that is a continuation, a field without a name, a misplaced "From " line (each
skipped, with its defect), a multipart without a boundary (its body one text), without
its first delimiter (its body one text, up to its close delimiter or its end), without
its close delimiter (the message cut short: its last part runs to the end), an invalid
transfer encoding on a multipart. What this parser does not reproduce it refuses:
parse() returns None and the caller runs the feedparser. It refuses a "From " line ending
a header block before its blank line (the feedparser makes it the first line of the body,
the blank line dropped), a boundary holding a line break, and nesting deeper than
MAX_DEPTH. A message/delivery-status body is read as the feedparser reads it: blocks, each
a part, in which a blank line is the end of the input (a line that is no field starts a
block's payload, text up to that blank line).
tests/unit/archive/test_mimetree.py compares the two parsers' trees.

parse() can also say where each message/* part's content lies in the text (`spans`): from
after its header block to the line that ended it, less the line end before a delimiter
(RFC 2046 5.1.1: it is the delimiter's; or before a close delimiter that never came) --
the text the parser read its inner message from (of a message/delivery-status part, its
status blocks: the file the views serve).
"""
from __future__ import annotations

import re
from email import errors
from email.feedparser import headerRE
from email.message import Message

# Parts within parts (multipart or message/*): deeper trees go to the feedparser, which
# then fails (RecursionError) or not exactly as it always did.
MAX_DEPTH = 48
VALID_MULTIPART_ENCODINGS = ("7bit", "8bit", "binary")
LINE_ENDS = (b"", b"\r\n", b"\r", b"\n")
LINE_END = re.compile(rb"\r\n|\r|\n")  # a line's end, as the feedparser splits lines
# Bytes copied at once to tell whether a payload is ASCII (_Parser._ascii).
ASCII_CHECK_BYTES = 1 << 20
# An ASCII payload of at least this many bytes that is most of the message (a large base64
# attachment) is held too, as a view: its str is the message's size again in the worker.
HELD_ASCII_BYTES = 1 << 20
# When the payloads together are most of the message, each of at least this many bytes is
# held as a view, whatever its size (_Parser._viewed): the message is kept for the views
# anyway, and a str of each was the message again (20,000 text parts of 4 KiB: 84 MiB of
# str beside the 84 MiB message in a worker, #20). Below it a memoryview (184 bytes) costs
# more than the copy it saves.
HELD_SMALL_BYTES = 256
# A line end followed by a line that may end a delivery-status block's text: a blank line
# or one starting "--" (a delimiter?); the match ends where that line starts.
_BLOCK_TEXT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?=[\r\n]|--)")


class _Refused(Exception):
    """The input takes a path of the feedparser this parser does not reproduce."""


def parse(raw: bytes, policy, spans: list | None = None, held: bool = False
          ) -> Message | None:
    """The feedparser's Message tree of `raw` (what BytesParser(policy=policy).parsebytes
    returns), or None where this parser does not reproduce it: then the caller must run the
    feedparser. `spans`, if a list, gets (part, start, end) for each message/* part of the
    tree: raw[start:end] is its content as stored (module docstring: a message's text; of
    message/delivery-status, RFC 3464, its status blocks'); nothing when None is returned.
    `held`: a leaf part's payload that holds 8-bit bytes, or that is most of a large
    message, is held as those bytes (HeldPayload; the policy's message_factory must be
    one). Raises MemoryError only; any
    other failure is a None."""
    try:
        parser = _Parser(raw, policy, held)
        message = parser.root()
    except MemoryError:
        raise
    except Exception:  # _Refused, or a case this parser got wrong: the feedparser decides
        return None
    if spans is not None:
        spans.extend(parser.spans)
    return message


def delimiter(line: bytes, separator: bytes) -> bool | None:
    """Whether `line` (with its line end) is a close delimiter (True) or a delimiter
    (False) of `separator` (b"--" + boundary), or None if it is neither; as the feedparser's
    pattern ("--boundary", optional "--", spaces and tabs, optional line end) reads it."""
    if not line.startswith(separator):
        return None
    rest = line[len(separator):]
    if rest.startswith(b"--") and rest[2:].lstrip(b" \t") in LINE_ENDS:
        return True
    return False if rest.lstrip(b" \t") in LINE_ENDS else None


def _end_without_line_end(raw: bytes, start: int, end: int) -> int:
    """Where raw[start:end] ends without its one trailing CRLF, CR or LF."""
    if end - start >= 2 and raw.startswith(b"\r\n", end - 2):  # (no copy of it)
        return end - 2
    return end - 1 if end > start and raw[end - 1] in b"\r\n" else end


def _without_line_end(text: str) -> str:
    """text without its one trailing CRLF, CR or LF (the feedparser's NLCRE_eol)."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\r", "\n")) else text


class _Span:
    """A leaf part's payload while the parse runs: raw[start:end], made a str once the
    parse is done (the line end before a delimiter dropped by moving `end`)."""
    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end


def _held_text(name: str) -> property:
    """A multipart's `name` (preamble or epilogue) that may be held as its bytes
    (`name`_bytes, as HeldPayload holds a payload): the feedparser's str made at each read;
    set, it is the value set."""
    held, value = name + "_bytes", "_" + name + "_value"

    def get(self):
        data = getattr(self, held)
        return getattr(self, value) if data is None else str(data, "ascii", "surrogateescape")

    def set(self, text) -> None:
        setattr(self, held, None)
        setattr(self, value, text)

    return property(get, set)


class HeldPayload:
    """A Message class's mixin: a leaf part's payload can be held as its bytes
    (`payload_bytes`: bytes, or a memoryview into the message's), and be the feedparser's
    str (ASCII, surrogate escapes) only while it is read as `_payload`. That str takes 2
    bytes a character once one is 8-bit: a worker held a 90 MB 8-bit body as 180 MB of str
    and a 90 MB bytes copy of it to decode; and an ASCII one is the payload again, beside
    the message (services.archive.transfer_encoding reads payload_bytes as they are).
    Every other reader gets the same str as before, made again at each read. A
    multipart's preamble or epilogue (`preamble_bytes`, `epilogue_bytes`) likewise: text
    no reader of the worker's reads, which cost the parse 3 to 4 times its size as a str
    once 8-bit."""

    payload_bytes: bytes | memoryview | None = None
    _value = None  # the payload when no bytes are held
    preamble_bytes: bytes | memoryview | None = None
    epilogue_bytes: bytes | memoryview | None = None
    _preamble_value = _epilogue_value = None  # each when no bytes are held
    preamble = _held_text("preamble")
    epilogue = _held_text("epilogue")

    @property
    def _payload(self):
        held = self.payload_bytes
        return self._value if held is None else str(held, "ascii", "surrogateescape")

    @_payload.setter
    def _payload(self, value) -> None:
        self.payload_bytes, self._value = None, value

    def hold_payload(self, data: bytes | memoryview) -> None:
        """Hold `data`, the payload's bytes as the message has them, as the payload."""
        self._payload = None
        self.payload_bytes = data

    def hold_text(self, name: str, data: bytes | memoryview) -> None:
        """Hold `data` as the preamble or epilogue (`name`), its bytes as the message has
        them."""
        setattr(self, name, None)
        setattr(self, name + "_bytes", data)

    def is_multipart(self) -> bool:
        return self.payload_bytes is None and isinstance(self._value, list)

    def __getstate__(self) -> dict:
        """What copy.copy and copy.deepcopy (and pickle) take of the part: a payload,
        preamble or epilogue held as a view as its bytes (a memoryview cannot be copied so,
        and the stdlib's Generator deep-copies a part of 8-bit text with a charset to
        flatten it: as_string())."""
        state = dict(self.__dict__)
        for name in ("payload_bytes", "preamble_bytes", "epilogue_bytes"):
            if isinstance(state.get(name), memoryview):
                state[name] = bytes(state[name])
        return state


class _Parser:
    """One parse of one message's bytes: positions into them stand for the feedparser's
    lines (a line ends after CRLF, CR or LF), "at EOF" for its readline() returning ''.
    The feedparser reads the message decoded as ASCII with surrogate escapes, a character
    a byte; here the bytes are searched and each header line, preamble, epilogue and
    payload decoded alone (the same str), so the parse holds no str of the whole message
    (2 bytes a character once one byte is 8-bit) and no second copy of a payload."""

    def __init__(self, raw: bytes, policy, held: bool = False):
        self.raw, self.size, self.policy, self.held = raw, len(raw), policy, held
        self.view = memoryview(raw)
        self.factory = policy.message_factory or Message
        # Only CRLF and LF line ends (the usual case): a line ends at the next LF.
        self.bare_cr = raw.count(b"\r") != raw.count(b"\r\n")
        self.separators: list[bytes] = []  # b"--" + boundary of each enclosing multipart
        self.last: Message | None = None  # the feedparser's _last
        self.spans: list[tuple[Message, int, int]] = []  # parse()'s `spans`
        self.blank_ends = False  # in a delivery-status block: a blank line is an end
        self.payloads: list[Message] = []  # the leaf parts, each holding a _Span
        self.epilogues: list[Message] = []  # the multiparts whose epilogue is a _Span
        # The payloads of HELD_ASCII_BYTES or more are most of raw together; all of them
        # (of HELD_SMALL_BYTES or more) are (root() tells both)
        self.large_payloads_most = self.payloads_most = False

    def root(self) -> Message:
        message, end = self._message(0, None, 0)
        if end != self.size:
            raise _Refused("text left over")
        if message.get_content_maintype() == "multipart" and not message.is_multipart():
            self.policy.handle_defect(message, errors.MultipartInvariantViolationDefect())
        self.large_payloads_most = self._most_of_raw(HELD_ASCII_BYTES)
        self.payloads_most = self._most_of_raw(HELD_SMALL_BYTES)
        for part in self.payloads:
            self._set_payload(part, part._payload)
        for part in self.epilogues:
            span = part.epilogue
            if isinstance(span, _Span):  # (not dropped, when empty, as a nested one's)
                self._set_text(part, "epilogue", span.start, span.end)
        return message

    def _most_of_raw(self, least: int) -> bool:
        """Whether the payloads of `least` bytes or more are most of raw together."""
        return 2 * sum(length for length in (span.end - span.start for span in
                                             (part._payload for part in self.payloads))
                       if length >= least) >= self.size

    def _set_payload(self, part: Message, span: _Span) -> None:
        """A leaf's payload: its str; or, when `held`, its bytes if it holds an 8-bit byte,
        and a view into the message if it is ASCII but large and most of the message (a
        base64 attachment of 73 MiB was a 100 MB str beside the message's 100 MB) or one of
        payloads that together are (_viewed_small)."""
        if self.held and (self._held_whole(span.start, span.end)
                          or self._viewed_small(span.start, span.end)
                          or not self._ascii(span.start, span.end)):
            part.hold_payload(self._held(span.start, span.end))
        else:
            part.set_payload(self._str(span.start, span.end))

    def _held_whole(self, start: int, end: int) -> bool:
        """Whether raw[start:end] is held as a view whatever its bytes (_held): it is large
        (HELD_ASCII_BYTES) and _viewed."""
        return end - start >= HELD_ASCII_BYTES and self._viewed(start, end)

    def _viewed_small(self, start: int, end: int) -> bool:
        """Whether raw[start:end], a payload, is held as a view because the payloads of
        HELD_SMALL_BYTES or more are most of raw together, and it is one of them."""
        return self.payloads_most and end - start >= HELD_SMALL_BYTES

    def _viewed(self, start: int, end: int) -> bool:
        """Whether raw[start:end] is held as a view into raw: it is most of raw, or it is
        large and the large payloads are most of raw together (two files of 36 MiB in a
        100 MiB message: raw is kept for their views anyway, where a copy of each would be
        the message again), or of HELD_SMALL_BYTES or more when such payloads are
        (_viewed_small). Else a copy: a view keeps all of raw."""
        length = end - start
        return 2 * length >= self.size or (length >= HELD_ASCII_BYTES
                                           and self.large_payloads_most) \
            or self._viewed_small(start, end)

    def _set_text(self, part: Message, name: str, start: int, end: int) -> None:
        """raw[start:end] as the preamble or epilogue (`name`) of `part`: its str; or, when
        `held`, its bytes if it holds an 8-bit byte (a str of it cost the parse 3 to 4
        times its size: it takes 2 bytes a character) or is _held_whole."""
        if self.held and (self._held_whole(start, end) or not self._ascii(start, end)):
            part.hold_text(name, self._held(start, end))
        else:
            setattr(part, name, self._str(start, end))

    def _held(self, start: int, end: int) -> bytes | memoryview:
        """raw[start:end] to hold: a view into raw when _viewed (a copy would be the
        message twice, at the peak of a worker's memory), else a copy."""
        return self.view[start:end] if self._viewed(start, end) else self.raw[start:end]

    def _ascii(self, start: int, end: int) -> bool:
        """Whether raw[start:end] is ASCII, told a copy of ASCII_CHECK_BYTES at a time (a
        regular expression's search for an 8-bit byte took 3 times as long as decoding;
        a failed ASCII decoding's error holds a copy of all it was given)."""
        return all(self.raw[at:min(at + ASCII_CHECK_BYTES, end)].isascii()
                   for at in range(start, end, ASCII_CHECK_BYTES))

    def _str(self, start: int, end: int) -> str:
        """raw[start:end] as the feedparser reads it (ASCII, surrogate escapes), decoded
        from the bytes in place."""
        return str(self.view[start:end], "ascii", "surrogateescape")

    def _line_end(self, start: int) -> int:
        """Where the line starting at `start` ends (after its CRLF, CR or LF)."""
        if self.bare_cr:  # one search: finding the next LF first could scan to the end
            found = LINE_END.search(self.raw, start)  # every line, a quadratic walk
            return found.end() if found else self.size
        newline = self.raw.find(b"\n", start)
        return newline + 1 if newline >= 0 else self.size

    def _is_eof(self, line: bytes, separators: list[bytes]) -> bool:
        """Whether the feedparser's readline() would answer EOF at `line`."""
        if self.blank_ends and line[:1] in (b"\r", b"\n"):
            return True
        return line.startswith(b"--") and any(
            delimiter(line, separator) is not None for separator in separators)

    def _next_eof(self, start: int, separators: list[bytes]) -> int:
        """The start of the first line at or after `start` (a line start) that is a
        delimiter of one of `separators` (or, in a delivery-status block, a blank line),
        or the end of the text."""
        if self.blank_ends:
            return self._next_eof_in_block(start, separators)
        raw, best = self.raw, self.size
        for separator in reversed(separators):  # innermost first: usually the nearest
            found = raw.find(separator, start, best)
            while found >= 0:
                if (found == start or raw[found - 1] in b"\r\n") and delimiter(
                        raw[found:self._line_end(found)], separator) is not None:
                    best = found
                    break
                found = raw.find(separator, found + 1, best)
        return best

    def _next_eof_in_block(self, start: int, separators: list[bytes]) -> int:
        """_next_eof in a delivery-status block: the first blank line or delimiter, each
        line looked at once (searching for each alone would scan past the other: to the
        end of the text for each block of a status that a delimiter ends)."""
        if start >= self.size or self._is_eof(self._line_at(start), separators):
            return start
        for found in _BLOCK_TEXT_END.finditer(self.raw, start):
            if self._is_eof(self._line_at(found.end()), separators):
                return found.end()
        return self.size

    def _message(self, start: int, parent: Message | None, depth: int) -> tuple[Message, int]:
        """A message or part whose header block starts at `start`: (it, where the line
        that ended it starts)."""
        if depth > MAX_DEPTH:
            raise _Refused("nested too deeply")
        message = self._new_message(parent)
        return message, self._content(message, self._headers(message, start), depth)

    def _content(self, message: Message, start: int, depth: int) -> int:
        """The content of `message` (a part of `depth`), which starts at `start`, read
        into it; where the line that ended it starts."""
        if message.get_content_type() == "message/delivery-status":
            end = self._delivery_status(message, start, depth)
            self.spans.append((message, start, self._content_end(start, end)))
            return end
        maintype = message.get_content_maintype()
        if maintype == "message":
            end = self._message(start, message, depth + 1)[1]
            self.spans.append((message, start, self._content_end(start, end)))
            return end
        if maintype == "multipart":
            return self._multipart(message, start, depth)
        end = self._next_eof(start, self.separators)
        self._leaf_payload(message, start, end)
        return end

    def _leaf_payload(self, message: Message, start: int, end: int) -> None:
        """raw[start:end] is the payload of `message`, a part with no parts (a multipart
        without a delimiter too: its body is its text): made a str, or held, by root()."""
        message.set_payload(_Span(start, end))
        self.payloads.append(message)

    def _new_message(self, parent: Message | None) -> Message:
        message = self.factory(policy=self.policy)
        if parent and parent.get_content_type() == "multipart/digest":
            message.set_default_type("message/rfc822")
        if parent is not None:
            parent.attach(message)
        self.last = message
        return message

    def _content_end(self, start: int, end: int) -> int:
        """Where the content of a part that starts at `start` and was ended by the line at
        `end` ends: before the line end that starts a delimiter (RFC 2046 5.1.1); at the
        end of the text, in a multipart (its close delimiter missing, the message cut
        short), before its last line end too, which the parser drops as it drops the one
        before a delimiter; else with it."""
        if end >= self.size and not self.separators:
            return end
        return _end_without_line_end(self.raw, start, end)

    def _delivery_status(self, message: Message, start: int, depth: int) -> int:
        """The header blocks of a message/delivery-status body (RFC 3464) whose first
        starts at `start`, each a part; where the line that ended the last starts. As in
        the feedparser, a blank line is the end of the input within a block: it ends the
        block's fields, and its content (an MTA's free text after a line that is no
        field, MissingHeaderBodySeparatorDefect; what a Content-Type field in it names)."""
        position, outer = start, self.blank_ends
        while True:
            block = self._new_message(message)
            self.blank_ends = True
            try:
                position = self._content(block, self._headers(block, position), depth + 1)
            finally:
                self.blank_ends = outer
            if not self._at_eof(position):
                position = self._line_end(position)  # the blank line after the block
            if self._at_eof(position):
                return position

    def _at_eof(self, position: int) -> bool:
        """Whether the feedparser's readline() answers EOF at the line at `position`."""
        return position >= self.size or self._is_eof(self._line_at(position), self.separators)

    def _headers(self, message: Message, start: int) -> int:
        """Reads the header block at `start` into `message`; where its body starts. In a
        delivery-status block (blank_ends) the blank line after it is left unread."""
        lines, position, blank = [], start, False
        while position < self.size:
            end = self._line_end(position)
            line_bytes = self.raw[position:end]
            if self._is_eof(line_bytes, self.separators):
                break
            line = line_bytes.decode("ascii", "surrogateescape")
            if not headerRE.match(line):
                blank = line[0] in "\r\n"
                if blank:
                    position = end  # the blank line ending the block is dropped
                else:  # the line is the body's first
                    self.policy.handle_defect(message, errors.MissingHeaderBodySeparatorDefect())
                break
            lines.append(line)
            position = end
        if self._set_headers(message, lines):  # a "From " line last: the body's first line
            if blank:  # (the feedparser drops the blank line after it; a status block's
                raise _Refused("From line ending the header block")  # is left unread)
            position -= len(lines[-1])
        return position

    def _set_headers(self, message: Message, lines: list[str]) -> bool:
        """The header lines into `message`, as the feedparser's _parse_headers reads them;
        whether the last line is a "From " line it gives back to the body (not read)."""
        name, value = "", []
        for number, line in enumerate(lines):
            if line[0] in " \t":
                if not name:  # (after a "From " line or a nameless field too)
                    self.policy.handle_defect(
                        message, errors.FirstHeaderLineIsContinuationDefect(line))
                    continue
                value.append(line)
                continue
            if name:
                message.set_raw(*self.policy.header_source_parse(value))
                name, value = "", []
            if line.startswith("From "):
                if number == 0:
                    message.set_unixfrom(_without_line_end(line))
                elif number == len(lines) - 1:
                    return True
                else:
                    message.defects.append(errors.MisplacedEnvelopeHeaderDefect(line))
                continue
            colon = line.find(":")
            if colon == 0:
                message.defects.append(errors.InvalidHeaderDefect("Missing header name."))
                continue
            name, value = line[:colon], [line]
        if name:
            message.set_raw(*self.policy.header_source_parse(value))
        return False

    def _multipart(self, message: Message, start: int, depth: int) -> int:
        """The parts of a multipart whose body starts at `start`; where the line that
        ended it (its epilogue, or its last part where no close delimiter came) starts."""
        boundary = message.get_boundary()
        if boundary is None:  # all its body is one text
            self.policy.handle_defect(message, errors.NoBoundaryInMultipartDefect())
            end = self._next_eof(start, self.separators)
            self._leaf_payload(message, start, end)
            return end
        if "\r" in boundary or "\n" in boundary:
            raise _Refused("a boundary holding a line break")
        try:  # (a character no byte decodes to, RFC 2231's, is in no line of the text)
            separator = ("--" + boundary).encode("ascii", "surrogateescape")
        except UnicodeEncodeError:
            raise _Refused("a boundary no bytes spell") from None
        if str(message.get("content-transfer-encoding", "8bit")).lower() \
                not in VALID_MULTIPART_ENCODINGS:
            self.policy.handle_defect(message, errors.InvalidMultipartContentTransferEncodingDefect())
        outer = self.separators
        line_start = self._next_eof(start, [*outer, separator])
        if self._delimiter_at(line_start, separator) is not False:
            return self._without_start_delimiter(message, start, line_start)
        if line_start > start:  # (without its last line end: it is the delimiter's)
            self._set_text(message, "preamble", start,
                           _end_without_line_end(self.raw, start, line_start))
        close = False
        while not close:
            part_start = self._line_end(line_start)
            while not self._at_eof(part_start) and \
                    delimiter(self._line_at(part_start), separator) is not None:
                part_start = self._line_end(part_start)  # more delimiters: no part between
            self.separators = [*outer, separator]
            try:  # (at the end already: an empty part, as the feedparser reads one)
                _, line_start = self._message(part_start, message, depth + 1)
            finally:
                self.separators = outer
            self._drop_line_end_before_delimiter()
            self.last = message
            close = self._delimiter_at(line_start, separator)
            if close is None:  # the end came first: the message cut short
                self.policy.handle_defect(message, errors.CloseBoundaryNotFoundDefect())
                return line_start
        epilogue_start = self._line_end(line_start)
        end = self._next_eof(epilogue_start, outer)
        message.epilogue = _Span(epilogue_start, end)  # made text, or held, by root()
        self.epilogues.append(message)
        return end

    def _without_start_delimiter(self, message: Message, start: int, line_start: int) -> int:
        """A multipart whose body starting at `start` has no delimiter before the line at
        `line_start` (its close delimiter, or its end): as the feedparser reads it, its
        payload is the text before that line, its epilogue empty, and what follows a close
        delimiter up to the end is read by none. Where the line that ended it starts."""
        self.policy.handle_defect(message, errors.StartBoundaryNotFoundDefect())
        self._leaf_payload(message, start, line_start)
        message.epilogue = ""
        if self._at_eof(line_start):
            return line_start
        return self._next_eof(self._line_end(line_start), self.separators)

    def _line_at(self, start: int) -> bytes:
        return self.raw[start:self._line_end(start)] if start < self.size else b""

    def _delimiter_at(self, start: int, separator: bytes) -> bool | None:
        """delimiter() of the line at `start`, None also at the end of the text or where an
        enclosing multipart's delimiter is (the feedparser's readline() says EOF there)."""
        line = self._line_at(start)
        if not line or self._is_eof(line, self.separators):
            return None
        return delimiter(line, separator)

    def _drop_line_end_before_delimiter(self) -> None:
        """RFC 2046: the line end before a delimiter is the delimiter's, not the payload's
        (or, after a nested multipart, its epilogue's); done where the feedparser does."""
        last = self.last
        if last.get_content_maintype() == "multipart":
            epilogue = last.epilogue  # "" (no start delimiter), a _Span or None
            if epilogue == "" or isinstance(epilogue, _Span) and epilogue.start == epilogue.end:
                last.epilogue = None
            elif isinstance(epilogue, _Span):
                epilogue.end = _end_without_line_end(self.raw, epilogue.start, epilogue.end)
        elif isinstance(last._payload, _Span):
            span = last._payload
            span.end = _end_without_line_end(self.raw, span.start, span.end)
