"""Text from elsewhere (a mirror peer's node id and reasons) printed on a terminal."""
from __future__ import annotations


def terminal_safe(text) -> str:
    """`text` with what is no printable character (a terminal's controls: escape, carriage
    return, newline ...) written as Python escapes. A mirror peer's node id is whatever its
    certificate says, and its reasons whatever it answers: printed raw, their controls
    could erase the lines above and print "intact" on an auditor's screen."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
