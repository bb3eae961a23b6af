"""The media type of a Content-Type field's value, as the archive reads it everywhere.

The stdlib's Message.get_content_type takes the value up to its first ';', lower-cased, as
the type whenever it holds one '/': a field padded with folded lines past the parser's 16 KB
(mime.PARAMETER_HEADER_LIMIT) gave a "type" of 16,384 characters holding CR LF, and that
string was an attachment's recorded type, an index term and a line of the web's listing.
Here the type is RFC 2045 5.1's `type "/" subtype`, read as a structured field (RFC 822
3.1.4): folds, white space and comments may stand around its tokens, never inside one.
Each token must be an RFC 6838 4.2 restricted-name (at most 127 characters). Anything
else is an invalid Content-Type, read as text/plain (RFC 2045 5.2), as the stdlib reads a
value of no '/' or of two.
"""
from __future__ import annotations

import re

# RFC 2045 5.2: the type of a part whose Content-Type is invalid (the stdlib's too).
INVALID_TYPE = "text/plain"
# RFC 6838 4.2 restricted-name: a type's or a subtype's name, 127 characters at most.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
# White space and folds (a fold left in the value by the parser: CR LF or LF, then a blank).
_BLANKS = r"[ \t\r\n]*"
_TYPE = re.compile(rf"{_BLANKS}({_NAME}){_BLANKS}/{_BLANKS}({_NAME}){_BLANKS}")
# An innermost comment (RFC 822 3.4.3: quoted pairs inside, comments nest).
_COMMENT = re.compile(r"\((?:[^()\\]++|\\.)*+\)", re.DOTALL)
# Comments nested deeper than this leave the type invalid: real ones do not nest at all,
# and each level costs a pass over the value.
_COMMENT_DEPTH = 4


def media_type(value: str) -> str:
    """The `type/subtype` of a Content-Type value ("Text/HTML (x); charset=y" gives
    "text/html"), lower-cased and matching `^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/` with the
    same after it, or INVALID_TYPE. The parameters start at the first ';', as for the
    stdlib's parser and header_blocks' walk (a ';' inside a comment ends the type too)."""
    head = _without_comments(value.split(";", 1)[0])
    found = None if head is None else _TYPE.fullmatch(head)
    return f"{found[1]}/{found[2]}".lower() if found else INVALID_TYPE


def _without_comments(text: str) -> str | None:
    """`text` with each comment a space, innermost first; None if some are left after
    _COMMENT_DEPTH levels (deeper, or never closed)."""
    for _ in range(_COMMENT_DEPTH):
        if "(" not in text and ")" not in text:
            return text
        text = _COMMENT.sub(" ", text)
    return None if "(" in text or ")" in text else text
