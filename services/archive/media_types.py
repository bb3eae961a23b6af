"""The media type of a Content-Type field's value, as the archive reads it everywhere.

The stdlib's Message.get_content_type takes the value up to its first ';', lower-cased, as
the type whenever it holds one '/': a field padded with folded lines past the parser's 16 KB
(mime.PARAMETER_HEADER_LIMIT) gave a "type" of 16,384 characters holding CR LF, and that
string was an attachment's recorded type, an index term and a line of the web's listing.
Here the type is RFC 2045 5.1's `type "/" subtype`, read as a structured field (RFC 822
3.1.4): folds, white space and comments may stand before the type and around the '/',
never inside a token. Each name is an RFC 2045 token (RFC 6838 4.2's 127 characters at
most), lower-cased; the subtype is the longest token the value holds after the '/', as
mailers write "image/jpeg name=photo.jpg" (no ';') and the part is still a JPEG. A value
of no such type and subtype is an invalid Content-Type, read as text/plain (RFC 2045 5.2),
except where its type is a valid one and only the subtype is missing, empty or no token
("application/", "image", "multipart/; boundary=x"; review 181 F2): that is read as RFC
2046 reads an unrecognised subtype of the type (_SUBTYPE_UNUSABLE), so a PDF typed
"application/" stays an attachment, never body text. A value quoted as a whole
('"application/pdf"; name=a.pdf') is read as the value its quoted string holds.

The value is read in one pass, left to right, each character at most once, and only up to
the subtype's token: a hostile field of 16 KB (or a value of a million characters) costs
that one pass (a quoted value: its quoted string's text one more, by a reader of its
own), never a pass per nesting level or per start position (review 175 F1: a
regex substitution over `( \\( \\( ...` took seconds a 16 KB field). At most
COMMENT_LIMIT comments are read (review 181 F1: 8,150 sibling "()" before the type took
that many steps of the reader, 10 ms a field, 4 s of extract() for 300 such parts).
"""
from __future__ import annotations

import re

# RFC 2045 5.2: the type of a part whose Content-Type is invalid (the stdlib's too).
INVALID_TYPE = "text/plain"
# RFC 6838 4.2: a type's or a subtype's name holds 127 characters at most.
NAME_LIMIT = 127
# Comments nested deeper than this leave the type invalid: real ones do not nest at all.
COMMENT_DEPTH = 4
# A value holding more comments than this (each parenthesis opened, nested ones too) is
# invalid: real ones hold one or two, and each costs a step of the reader.
COMMENT_LIMIT = 16
# What a valid main type whose subtype is missing, empty or no token reads as (review 181
# F2), as RFC 2046 reads an unrecognised subtype: multipart/mixed (5.1.3, its parts still
# parts); text/plain (4.1.4: the part is still text, body text to index and show, as the
# stdlib's parser reads any invalid type); application/octet-stream for every other type
# (4.2, 4.3, 4.4, 4.5.3, 5.2.4: image, audio, video, application and message ones; the
# same for model, font and the rest): bytes an attachment holds, never body text. The
# valid main types are the top-level types registered (RFC 2046, RFC 6838 4.2.5-4.2.7 and
# later) and x-tokens (RFC 2045 5.1); any other leaves the value invalid, text/plain.
_SUBTYPE_UNUSABLE = {"multipart": "multipart/mixed", "text": "text/plain"}
_MAIN_TYPES = frozenset({"application", "audio", "example", "font", "haptics", "image",
                         "message", "model", "multipart", "text", "video"})
# Each pattern matches a run of characters at one position, possessively (it never gives
# characters back, so matching costs the run's length): RFC 2045's token (any ASCII
# character but controls, space and tspecials), white space and folds (CR LF or LF left
# by the parser, then a blank), and a comment's text between its parentheses and quoted
# pairs (RFC 822 3.4.3; a backslash at the very end quotes nothing and is left).
_RUNS = {
    "token": re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]*+"),
    "blanks": re.compile(r"[ \t\r\n]*+"),
    "comment text": re.compile(r"(?:[^()\\]++|\\.)*+", re.DOTALL),
    "quoted text": re.compile(r'(?:[^"\\]++|\\.)*+', re.DOTALL),
}
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def media_type(value: str) -> str:
    """The `type/subtype` of a Content-Type value, lower-cased, or INVALID_TYPE:
    "Text/HTML (x); charset=y" and "text/html charset=y" give "text/html"; each name
    matches `[a-z0-9!#$%&'*+.^_`{|}~-]{1,127}`. The parameters start at the first ';', as
    for the stdlib's parser and header_blocks' walk (a ';' inside a comment or a quoted
    string ends the type too)."""
    reader = _Reader(value.split(";", 1)[0])
    if not reader.past_blanks_and_comments():
        return INVALID_TYPE
    if reader.text.startswith('"', reader.at):
        reader = _Reader(reader.quoted_text())
    return reader.media_type()


class _Reader:
    """One value read left to right: `at` only ever moves forward, over a run of _RUNS
    or one parenthesis at a time, so no character is read twice."""

    def __init__(self, text: str):
        self.text = text
        self.at = 0
        self.comments = 0

    def media_type(self) -> str:
        """The value's type, read from here (see media_type)."""
        main = self.name()
        if main is None:
            return INVALID_TYPE
        main = main.lower()
        if not self.past_blanks_and_comments():
            return INVALID_TYPE
        if self.text.startswith("/", self.at):
            self.at += 1
            if not self.past_blanks_and_comments():
                return INVALID_TYPE
            sub = self.name()
            if sub is not None:
                return f"{main}/{sub.lower()}"
        if main in _MAIN_TYPES or main.startswith("x-"):
            return _SUBTYPE_UNUSABLE.get(main, "application/octet-stream")
        return INVALID_TYPE

    def name(self) -> str | None:
        """The token after any blanks and comments; None where there is none of
        NAME_LIMIT characters at most, or the comments are invalid."""
        name = self._run("token") if self.past_blanks_and_comments() else ""
        return name if 0 < len(name) <= NAME_LIMIT else None

    def quoted_text(self) -> str:
        """The text of the quoted string here, its quoted pairs undone, read past up to
        its closing quote or the end (the value is cut at its first ';', one inside the
        quotes too)."""
        self.at += 1
        text = _QUOTED_PAIR.sub(r"\1", self._run("quoted text"))
        self.at += self.text.startswith('"', self.at)
        return text

    def past_blanks_and_comments(self) -> bool:
        """Past the blanks and comments here; False if a comment is never closed, is
        nested more than COMMENT_DEPTH deep, ends in a lone backslash, or is one past
        COMMENT_LIMIT."""
        while True:
            self._run("blanks")
            if not self.text.startswith("(", self.at):
                return True
            if not self._past_comment():
                return False

    def _past_comment(self) -> bool:
        """Past the comment opening here, nested ones and quoted pairs inside it."""
        depth = 0
        while True:
            char = self.text[self.at:self.at + 1]
            self.at += 1
            if char == "(":
                depth += 1
                self.comments += 1
                if self.comments > COMMENT_LIMIT:
                    return False
            elif char == ")":
                depth -= 1
            else:  # the end, or a backslash quoting nothing
                return False
            if depth == 0:
                return True
            if depth > COMMENT_DEPTH:
                return False
            self._run("comment text")

    def _run(self, kind: str) -> str:
        """The run of `kind` (a key of _RUNS) here, read past."""
        start = self.at
        self.at = _RUNS[kind].match(self.text, start).end()
        return self.text[start:self.at]
