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

A moved hold that clashes again at its moved key moves on to the next key of its own
sequence: the id before the first "-" (its base), "-", and eight hex digits of a hash of
the key it leaves and its incarnation; so a moved id is never longer than the base and
nine characters (and the base is cut to BASE_LIMIT), however long a chain of clashes a
peer sends (hold_records.HOLD_ID_LIMIT). Each hold's sequence of keys is fixed by its
base and incarnation, and a clash is always settled the same way (the later created
stays), so peers still agree whatever order they meet in. The first step is the same as
an older release's, which appended a hash at every step; they differ only from a second
clash of one hold on. services.policy.replicated follows a chain for at most MOVES steps
per merged entry, and refuses the entry past that.
"""
from __future__ import annotations

import hashlib
import math

from services.policy import hold_records

MOVED_DIGITS = 8  # hex digits of the incarnation's hash in a moved hold's id
BASE_LIMIT = hold_records.HOLD_ID_LIMIT - 1 - MOVED_DIGITS  # of a moved id's base
MOVES = 16  # clashes one merged entry may settle; only a crafted chain takes more


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
    """Where clashing `entry` (of a known incarnation) goes from `key` ("hold:ID"): from an
    id without "-", "hold:ID-" and MOVED_DIGITS hex digits of the SHA-256 of its
    incarnation (repr); from a moved id "hold:BASE-...", "hold:BASE-" and MOVED_DIGITS hex
    digits of the SHA-256 of that id, a newline and the incarnation (repr). BASE is cut to
    BASE_LIMIT characters: the result is a hold id of at most 100."""
    prefix, _, hold_id = key.partition(":")
    seed = repr(incarnation(entry))
    if "-" in hold_id:
        seed = f"{hold_id}\n{seed}"
    mark = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:MOVED_DIGITS]
    return f"{prefix}:{base(hold_id)}-{mark}"


def base(hold_id: str) -> str:
    """The id `hold_id` was moved from, if moved (the part before the first "-"), cut to
    BASE_LIMIT characters as moved_key cuts it: holds of one base are the ones that
    clashed, and a release that names none of them by its incarnation must tell them
    apart (services.policy.holds.remove)."""
    return hold_id.partition("-")[0][:BASE_LIMIT]
