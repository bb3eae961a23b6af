"""Template filters of the review pages: counts, ages, durations and sizes in words."""
from __future__ import annotations

import time

from services.archive.space import size_in_words


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


# Sizes read as the model profile counts them (the messages about space use the same words).
FILTERS = {"count": count, "ago": ago, "duration": duration, "plural": plural,
           "size": size_in_words}
