"""The Message tree of a raw RFC 5322 message exactly as the stdlib's email.feedparser
builds it, found with str.find on the RFC 2046 delimiter lines instead of line by line.

The feedparser walks every line of every body part in Python (each base64 attachment line
is a method call and a regular expression match against every enclosing boundary); here a
body part's end is found by searching for "--" + boundary and checking that the match
starts a line and is a delimiter (RFC 2046 section 5.1.1: "--" boundary, then "--" for the
close delimiter, transport padding, line end). Header blocks are still read line by line,
with the feedparser's own header pattern and the policy's header_source_parse, so header
values (8-bit bytes as surrogate escapes included) are the feedparser's.

The tree is the feedparser's: same parts, headers, unixfrom, payload strings (the line
break before a delimiter belongs to the delimiter), preamble, epilogue and defects. What
this parser does not reproduce it refuses: parse() returns None and the caller runs the
feedparser. It refuses every input on which the feedparser would record a defect other
than InvalidMultipartContentTransferEncodingDefect (missing start or close delimiter,
a multipart without boundary, a header block without separator, a misplaced "From "
line, a continuation line first...), a "From " line ending a header block (the feedparser
makes it the first line of the body, without the blank line after it), a boundary holding a line
break, a message/delivery-status block that is not headers alone, and nesting deeper than
MAX_DEPTH. tests/unit/archive/test_mimetree.py compares the two parsers' trees.
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
LINE_ENDS = ("", "\r\n", "\r", "\n")
LINE_END = re.compile(r"\r\n|\r|\n")  # a line's end, as the feedparser splits lines


class _Refused(Exception):
    """The input takes a path of the feedparser this parser does not reproduce."""


def parse(raw: bytes, policy) -> Message | None:
    """The feedparser's Message tree of `raw` (what BytesParser(policy=policy).parsebytes
    returns), or None where this parser does not reproduce it: then the caller must run the
    feedparser. Raises MemoryError only; any other failure is a None."""
    text = raw.decode("ascii", "surrogateescape")  # what BytesParser does
    try:
        return _Parser(text, policy).root()
    except MemoryError:
        raise
    except Exception:  # _Refused, or a case this parser got wrong: the feedparser decides
        return None


def delimiter(line: str, separator: str) -> bool | None:
    """Whether `line` (with its line end) is a close delimiter (True) or a delimiter
    (False) of `separator` ("--" + boundary), or None if it is neither; as the feedparser's
    pattern ("--boundary", optional "--", spaces and tabs, optional line end) reads it."""
    if not line.startswith(separator):
        return None
    rest = line[len(separator):]
    if rest.startswith("--") and rest[2:].lstrip(" \t") in LINE_ENDS:
        return True
    return False if rest.lstrip(" \t") in LINE_ENDS else None


def _without_line_end(text: str) -> str:
    """text without its one trailing CRLF, CR or LF (the feedparser's NLCRE_eol)."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\r", "\n")) else text


class _Parser:
    """One parse of one message's text: positions into it stand for the feedparser's lines
    (a line ends after CRLF, CR or LF), "at EOF" for its readline() returning ''."""

    def __init__(self, text: str, policy):
        self.text, self.size, self.policy = text, len(text), policy
        self.factory = policy.message_factory or Message
        # Only CRLF and LF line ends (the usual case): a line ends at the next LF.
        self.bare_cr = text.count("\r") != text.count("\r\n")
        self.separators: list[str] = []  # "--" + boundary of each enclosing multipart
        self.last: Message | None = None  # the feedparser's _last

    def root(self) -> Message:
        message, end = self._message(0, None, 0)
        if end != self.size:
            raise _Refused("text left over")
        if message.get_content_maintype() == "multipart" and not message.is_multipart():
            self.policy.handle_defect(message, errors.MultipartInvariantViolationDefect())
        return message

    def _line_end(self, start: int) -> int:
        """Where the line starting at `start` ends (after its CRLF, CR or LF)."""
        if self.bare_cr:  # one search: finding the next LF first could scan to the end
            found = LINE_END.search(self.text, start)  # every line, a quadratic walk
            return found.end() if found else self.size
        newline = self.text.find("\n", start)
        return newline + 1 if newline >= 0 else self.size

    def _is_eof(self, line: str, separators: list[str]) -> bool:
        """Whether the feedparser's readline() would answer EOF at `line`."""
        return line.startswith("--") and any(
            delimiter(line, separator) is not None for separator in separators)

    def _next_eof(self, start: int, separators: list[str]) -> int:
        """The start of the first line at or after `start` (a line start) that is a
        delimiter of one of `separators`, or the end of the text."""
        text, best = self.text, self.size
        for separator in reversed(separators):  # innermost first: usually the nearest
            found = text.find(separator, start, best)
            while found >= 0:
                if (found == start or text[found - 1] in "\r\n") and delimiter(
                        text[found:self._line_end(found)], separator) is not None:
                    best = found
                    break
                found = text.find(separator, found + 1, best)
        return best

    def _message(self, start: int, parent: Message | None, depth: int) -> tuple[Message, int]:
        """A message or part whose header block starts at `start`: (it, where the line
        that ended it starts)."""
        if depth > MAX_DEPTH:
            raise _Refused("nested too deeply")
        message = self._new_message(parent)
        start = self._headers(message, start)
        if message.get_content_type() == "message/delivery-status":
            return message, self._delivery_status(message, start)
        maintype = message.get_content_maintype()
        if maintype == "message":
            return message, self._message(start, message, depth + 1)[1]
        if maintype == "multipart":
            return message, self._multipart(message, start, depth)
        end = self._next_eof(start, self.separators)
        message.set_payload(self.text[start:end])
        return message, end

    def _new_message(self, parent: Message | None) -> Message:
        message = self.factory(policy=self.policy)
        if parent and parent.get_content_type() == "multipart/digest":
            message.set_default_type("message/rfc822")
        if parent is not None:
            parent.attach(message)
        self.last = message
        return message

    def _delivery_status(self, message: Message, start: int) -> int:
        """The header blocks of a message/delivery-status body (RFC 3464) whose first
        starts at `start`, each a part with an empty payload; where the line that ended the
        last starts. A blank line ends a block, as in the feedparser."""
        position = start
        while True:
            block = self._new_message(message)
            position = self._headers(block, position, blank_ends=True)
            if block.get_content_maintype() in ("message", "multipart"):
                raise _Refused("a delivery-status block with a body")
            block.set_payload("")
            if not self._at_eof(position):
                position = self._line_end(position)  # the blank line after the block
            if self._at_eof(position):
                return position

    def _at_eof(self, position: int) -> bool:
        """Whether the feedparser's readline() answers EOF at the line at `position`."""
        return position >= self.size or self._is_eof(self._line_at(position), self.separators)

    def _headers(self, message: Message, start: int, blank_ends: bool = False) -> int:
        """Reads the header block at `start` into `message`; where its body starts. With
        blank_ends, the blank line after the block is left unread."""
        lines, position = [], start
        while position < self.size:
            end = self._line_end(position)
            line = self.text[position:end]
            if self._is_eof(line, self.separators) or (blank_ends and line[0] in "\r\n"):
                break
            if not headerRE.match(line):
                if line[0] not in "\r\n":
                    raise _Refused("MissingHeaderBodySeparatorDefect")
                position = end  # the blank line ending the block is dropped
                break
            lines.append(line)
            position = end
        self._set_headers(message, lines)
        return position

    def _set_headers(self, message: Message, lines: list[str]) -> None:
        name, value = "", []
        for number, line in enumerate(lines):
            if line[0] in " \t":
                if not name:
                    raise _Refused("FirstHeaderLineIsContinuationDefect")
                value.append(line)
                continue
            if name:
                message.set_raw(*self.policy.header_source_parse(value))
                name, value = "", []
            if line.startswith("From "):
                if number != 0:  # body's first line, or MisplacedEnvelopeHeaderDefect
                    raise _Refused("From line after the first header line")
                message.set_unixfrom(_without_line_end(line))
                continue
            colon = line.find(":")
            if colon <= 0:
                raise _Refused("InvalidHeaderDefect")
            name, value = line[:colon], [line]
        if name:
            message.set_raw(*self.policy.header_source_parse(value))

    def _multipart(self, message: Message, start: int, depth: int) -> int:
        """The parts of a multipart whose body starts at `start`; where the line that
        ended its epilogue starts."""
        boundary = message.get_boundary()
        if boundary is None or "\r" in boundary or "\n" in boundary:
            raise _Refused("no usable boundary")
        if str(message.get("content-transfer-encoding", "8bit")).lower() \
                not in VALID_MULTIPART_ENCODINGS:
            self.policy.handle_defect(message, errors.InvalidMultipartContentTransferEncodingDefect())
        separator, outer = "--" + boundary, self.separators
        line_start = self._next_eof(start, [*outer, separator])
        if self._delimiter_at(line_start, separator) is not False:
            raise _Refused("StartBoundaryNotFoundDefect")
        if line_start > start:
            message.preamble = _without_line_end(self.text[start:line_start])
        close = False
        while not close:
            part_start = self._line_end(line_start)
            while not self._at_eof(part_start) and \
                    delimiter(self._line_at(part_start), separator) is not None:
                part_start = self._line_end(part_start)  # more delimiters: no part between
            if self._at_eof(part_start):
                raise _Refused("no part after the last delimiter")
            self.separators = [*outer, separator]
            try:
                _, line_start = self._message(part_start, message, depth + 1)
            finally:
                self.separators = outer
            self._drop_line_end_before_delimiter()
            self.last = message
            close = self._delimiter_at(line_start, separator)
            if close is None:
                raise _Refused("CloseBoundaryNotFoundDefect")
        epilogue_start = self._line_end(line_start)
        end = self._next_eof(epilogue_start, outer)
        message.epilogue = self.text[epilogue_start:end]
        return end

    def _line_at(self, start: int) -> str:
        return self.text[start:self._line_end(start)] if start < self.size else ""

    def _delimiter_at(self, start: int, separator: str) -> bool | None:
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
            if last.epilogue == "":
                last.epilogue = None
            elif last.epilogue is not None:
                last.epilogue = _without_line_end(last.epilogue)
        elif isinstance(last._payload, str):
            last._payload = _without_line_end(last._payload)
