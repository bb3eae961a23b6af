"""Text from elsewhere (a mirror peer's node id and reasons, a message's subject and
names) printed on a terminal."""
from __future__ import annotations

import re
import unicodedata

# Unicode's bidirectional controls (UAX #9: marks, embeddings, overrides, isolates).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")
# Categories that end or break a line: controls (C0, DEL, C1), line and paragraph separators.
LINE_BREAKING = ("Cc", "Zl", "Zp")
# Those characters, for a regular expression (a page's every subject and header is written
# through it): Cc is C0, DEL and C1, a set Unicode's stability policy fixes; Zl and Zp are
# U+2028 and U+2029 alone (tests/unit/common/test_terminal_line_breaks checks them all).
_LINE_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Categories of characters no glyph shows as what they are: those above, format characters
# (Cf: zero-width spaces and joiners, the bidi controls, the soft hyphen, U+180E, the tag
# characters U+E0000-E007F), lone surrogates, private use (a glyph only some font draws,
# or none: what it is cannot be read), and unassigned code points (as this Python's Unicode
# knows them: a newer terminal may take one for a format character of a later version).
UNSEEN_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
# Unicode's default ignorable code points (DerivedCoreProperties.txt) of other categories:
# drawn as nothing, though letters or marks -- the Hangul fillers, the combining grapheme
# joiner, the Khmer inherent vowels, the variation selectors.
IGNORABLE_NOT_FORMAT = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10))) + "".join(map(chr, range(0xE0100, 0xE01F0))))


def terminal_safe(text) -> str:
    """`text` with what is no printable character (a terminal's controls: escape, carriage
    return, newline ...) written as Python escapes. A mirror peer's node id is whatever its
    certificate says, and its reasons whatever it answers: printed raw, their controls
    could erase the lines above and print "intact" on an auditor's screen."""
    return "".join(c if c.isprintable() else escaped(c) for c in str(text))


def unseen(char: str) -> bool:
    """Whether one character shows as no glyph of its own (UNSEEN_CATEGORIES,
    IGNORABLE_NOT_FORMAT): "in\u200bvoice.pdf" reads as "invoice.pdf"."""
    return unicodedata.category(char) in UNSEEN_CATEGORIES or char in IGNORABLE_NOT_FORMAT


def escaped(char: str) -> str:
    """One character as its Python escape: "\\n", "\\x7f", "\\u200b", "\\U000e0041" (a
    default ignorable Python prints, such as U+034F, as "\\u034f" too)."""
    written = repr(char)[1:-1]
    if written != char:
        return written
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


def name_safe(text, keep: frozenset = frozenset()) -> str:
    r"""A stranger's name (a file's) to print, so that two names that differ never read the
    same: a backslash written twice, so that no escape below reads as one typed in the
    name; each white space character as its escape but a space (U+0020) after a character
    that is not one ("a\tb", "a\u2028b", "a\xa0b", "a \u0020b" are not "a b": review r10
    F7; a screen and HTML show them alike, and a page folds a run of spaces); and each
    character that shows as no glyph of its own (`unseen`) as its Python escape; those in
    `keep` as they are (the page's bidi controls, which it marks). Stricter than line_safe
    (joiners too): a name is read to tell files apart. `show` and the page write names so."""
    text = str(text)
    return "".join(_name_char(char, text[at - 1:at], keep) for at, char in enumerate(text))


def _name_char(char: str, before: str, keep: frozenset) -> str:
    """One character of a name as name_safe writes it; `before`: the one before it ("")."""
    if char == "\\":
        return "\\\\"
    if char in keep:
        return char
    if unseen(char) or char.isspace() and (char != " " or before == " "):
        return escaped(char)
    return char


def breaks_escaped(text: str) -> str:
    """`text` with each character that ends or breaks a line (LINE_BREAKING: the controls,
    NEL U+0085 among them, and the line and paragraph separators) written as its Python
    escape ("\\u2028"), every other character as it is."""
    return _LINE_BREAKS.sub(lambda found: escaped(found.group()), text)


def line_safe(text) -> str:
    """`text` to print as one line among others, with the controls, the line and paragraph
    separators and the bidirectional controls written as Python escapes ("\\u202e");
    every other character, no-break spaces and joiners included, as it is. A sender's
    subject holding U+202E printed raw turns the rest of the line around on screen, and
    a line break in it forges a line of results."""
    return "".join(escaped(c) if c in BIDI_CONTROLS or unicodedata.category(c)
                   in LINE_BREAKING else c for c in str(text))
