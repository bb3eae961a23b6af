"""Text from elsewhere (a mirror peer's node id and reasons, a message's subject and
names) printed on a terminal."""
from __future__ import annotations

import unicodedata

# Unicode's bidirectional controls (UAX #9: marks, embeddings, overrides, isolates).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")
# Categories that end or break a line: controls (C0, DEL, C1), line and paragraph separators.
LINE_BREAKING = ("Cc", "Zl", "Zp")


def terminal_safe(text) -> str:
    """`text` with what is no printable character (a terminal's controls: escape, carriage
    return, newline ...) written as Python escapes. A mirror peer's node id is whatever its
    certificate says, and its reasons whatever it answers: printed raw, their controls
    could erase the lines above and print "intact" on an auditor's screen."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def line_safe(text) -> str:
    """`text` to print as one line among others, with the controls, the line and paragraph
    separators and the bidirectional controls written as Python escapes ("\\u202e");
    every other character, no-break spaces and joiners included, as it is. A sender's
    subject holding U+202E printed raw turns the rest of the line around on screen, and
    a line break in it forges a line of results."""
    return "".join(repr(c)[1:-1] if c in BIDI_CONTROLS or unicodedata.category(c)
                   in LINE_BREAKING else c for c in str(text))
