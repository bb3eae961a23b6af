"""Template filters of the review pages: counts, ages, durations and sizes in words; a
stranger's text (subjects, names) shown as what it is."""
from __future__ import annotations

import re
import time
import unicodedata

from markupsafe import Markup, escape

from services.archive.space import size_in_words
from services.common.terminal import BIDI_CONTROLS, breaks_escaped, line_safe, name_safe


def count(value) -> str:
    """12345 -> "12,345"."""
    return f"{int(value or 0):,}"


def ago(epoch, now: float | None = None) -> str:
    """How long ago `epoch` was, in words: "just now", "5 minutes ago", "3 days ago"."""
    if not epoch:
        return "never"
    seconds = (time.time() if now is None else now) - float(epoch)
    return "just now" if seconds < 45 else f"{duration(seconds)} ago"


def duration(seconds: float) -> str:
    """A length of time in the largest unit that fits: "1 minute", "2 hours", "3 days"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            amount = int(seconds // size)
            return f"{amount} {unit}{'s' if amount != 1 else ''}"
    amount = max(int(seconds), 0)
    return f"{amount} second{'s' if amount != 1 else ''}"


def plural(amount, word: str, many: str | None = None) -> str:
    """1, "message" -> "1 message"; 3 -> "3 messages"."""
    return f"{count(amount)} {word if int(amount or 0) == 1 else many or word + 's'}"


def visible(text: str, keep: frozenset = frozenset()) -> str:
    """A stranger's name on a page as `archiver show` writes it (terminal.name_safe): each
    character that shows as no glyph of its own (the controls, the format characters --
    bidi overrides and isolates that make "invoice\u202egpj.exe" read "invoiceexe.jpg",
    zero-width and tag characters -- private use, unassigned, the default ignorables) and
    white space but a lone space (HTML folds a run of spaces) as its escape (\u202e,
    \U000e0041, \t), a backslash twice, so a name reads as what it is; those in `keep` as
    they are (the bidi controls, for `isolated` to mark)."""
    return name_safe(text, keep)


def named(text) -> Markup:
    """A text naming a stranger's file (an extraction failure: "NAME: why") as one field
    of a page: `visible`, its bidi controls marked by `isolated`."""
    return isolated(visible(str(text), keep=BIDI_CONTROLS))


_BIDI_CONTROL = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def _marker(found: re.Match) -> str:
    char = found.group()
    code = f"U+{ord(char):04X}"
    return (f'<span class="bidi-control" title="{code} {unicodedata.name(char, "")}: a '
            f'bidirectional control in the mail, shown here, not applied">{code}</span>')


def isolated(text) -> Markup:
    """A stranger's text (a subject, a sender's name, a file name) as one field of a page:
    HTML-escaped, each bidirectional control (UAX #9: U+202E ...) shown as a marked
    "U+202E", never applied, and the whole isolated in a <bdi> (its direction its own,
    from its first strong character), so nothing turns "invoice\u202efdp.exe" into
    "invoice exe.pdf" or runs on into the next field; each character that ends or breaks
    a line (the controls, C1's NEL U+0085 and CSI U+009B among them, U+2028, U+2029) as
    its escape "\\u2028", as `archiver show` writes it (terminal.line_safe, review r11
    F7). Every other character, right-to-left scripts, no-break spaces, joiners,
    variation selectors and tag characters included, as it is. (In an attribute or the
    page's title, where no HTML is, `line_safe` writes the escapes "\\u202e" instead.)"""
    written = breaks_escaped(str(escape("" if text is None else text)))
    shown = _BIDI_CONTROL.sub(_marker, written)
    return Markup(f"<bdi>{shown}</bdi>")


# Sizes read as the model profile counts them (the messages about space use the same words).
FILTERS = {"count": count, "ago": ago, "duration": duration, "plural": plural, "visible": visible,
           "size": size_in_words, "isolated": isolated, "named": named, "line_safe": line_safe}
