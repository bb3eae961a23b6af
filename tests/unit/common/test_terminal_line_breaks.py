"""terminal.breaks_escaped escapes exactly the characters of terminal.LINE_BREAKING (its
regular expression names them by code point: checked against every code point here)."""
from __future__ import annotations

import sys
import unicodedata

from services.common import terminal


def test_breaks_escaped_escapes_every_line_breaking_character_and_no_other():
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        breaking = unicodedata.category(char) in terminal.LINE_BREAKING
        written = terminal.breaks_escaped(f"a{char}b")
        assert written == (f"a{terminal.escaped(char)}b" if breaking else f"a{char}b"), hex(code)


def test_breaks_escaped_writes_them_as_line_safe_does():
    breaking = [chr(code) for code in range(0x3000)
                if unicodedata.category(chr(code)) in terminal.LINE_BREAKING]
    text = "x".join(breaking)
    assert terminal.breaks_escaped(text) == terminal.line_safe(text)
    assert not any(char in terminal.breaks_escaped(text) for char in breaking)
