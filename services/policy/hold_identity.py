"""Which litigation hold a replicated entry "hold:ID" is, apart from its id: two holds
placed apart (on two mirror peers at once, or one over an id an older release drew again)
may share an id, and their entries must not then overwrite each other by their stamps
alone, or one hold, and the records it keeps, would be silently gone.

A hold's incarnation is its "created" time (seconds since the epoch, a float), set once
when it is placed and kept by every later write of its entry (an older release rewrote
the entry, "held" list and all, with the same "created"). A tombstone written by this
release keeps the "created" of the hold it removes ({"created": ...} as its value), so it
removes that hold only. An entry without one (a hold placed before "created" existed, or
a tombstone from an older release) has no known incarnation: it is merged by its stamp,
as before.

When two entries under one id are different holds (a clash), the one created later keeps
the id and the other moves, with its records, to moved_key(): the id, "-", and eight hex
digits of a hash of its incarnation. Every peer derives the same key from the entry alone,
and the moved entry keeps its stamp, so peers that meet the clash in any order agree
without a new write. Ids drawn by services.policy.holds are hex only, so a moved key never
equals a drawn one.
"""
from __future__ import annotations

import hashlib
import math

MOVED_DIGITS = 8  # hex digits of the incarnation's hash in a moved hold's id


def incarnation(entry: dict) -> float | None:
    """The "created" time of the hold `entry` ({"value", "deleted", "stamp"}) is, or
    removed if a tombstone; None when unknown (no such field, or not a finite number)."""
    value = entry.get("value")
    created = value.get("created") if isinstance(value, dict) else None
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        return None
    try:
        created = float(created)  # an int of any size (JSON allows 10**400)
    except OverflowError:
        return None
    return created if math.isfinite(created) else None


def tombstone_value(entry: dict | None) -> dict | None:
    """The value of the tombstone that removes the hold `entry` (None: no entry): which
    incarnation it removes, or None when unknown."""
    created = incarnation(entry) if entry is not None else None
    return None if created is None else {"created": created}


def clash(ours: dict, theirs: dict) -> bool:
    """Whether two entries under one hold id are different holds (both incarnations known
    and different)."""
    mine, other = incarnation(ours), incarnation(theirs)
    return mine is not None and other is not None and mine != other


def keeps_id(ours: dict, theirs: dict) -> bool:
    """Of two clashing entries, whether `ours` keeps the id: the later created does."""
    return incarnation(ours) > incarnation(theirs)


def moved_key(key: str, entry: dict) -> str:
    """Where clashing `entry` (of a known incarnation) goes from `key` ("hold:ID"):
    "hold:ID-" and MOVED_DIGITS hex digits of the SHA-256 of its incarnation (repr)."""
    mark = hashlib.sha256(repr(incarnation(entry)).encode()).hexdigest()[:MOVED_DIGITS]
    return f"{key}-{mark}"
