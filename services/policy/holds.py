"""Litigation holds: a saved search held indefinitely or until a date. A held message is
never deleted, whatever retention says; only an admin removes a hold.

A hold covers, at least, what its search matched when it was placed: the digests matched
then are recorded in the hold (a replicated setting, so peers keep them too), and the
holds on a saved search also take in what it matches just before it is changed. So an
edit of the search can widen a hold, never shrink it.

A hold is a replicated setting "hold:ID" = {"saved", "until", "by", "name", "reason",
"created", "held"}: the matter's name, the reason for the hold and the recorded digests
were added later, so a hold written before may lack them; all_holds() gives every hold
the keys of FIELDS, None where a hold lacks one.
"""
from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

from firmware.errors import ArchiverError

from services.policy.audit import Actor, PermissionDenied
from services.policy.replicated import Replicated
from services.policy.saved_searches import matching, query_of

PREFIX = "hold:"
HELD = "held"  # the digests a hold keeps whatever its search matches now, sorted
FIELDS = ("saved", "until", "by", "name", "reason", "created")
NAME_LIMIT, REASON_LIMIT = 200, 2000  # characters


class UnknownHold(ArchiverError):
    pass


def add(replicated: Replicated, index_dir: Path, saved: str, until: dt.date | None,
        actor: Actor, name: str | None = None, reason: str | None = None,
        timezone: str = "UTC") -> str:
    """Hold what saved search `saved` matches, now (recorded) and from now on, through
    `until` (None: indefinitely), for the matter `name` and the `reason` given; returns
    the hold's id. The search's days are days in `timezone` (the appliance's, as
    retention reads them). What it matches now is read in spans (saved_searches.matching), up to
    the newest document; what is indexed after is held by the search. Raises
    UnknownSavedSearch, ArchiverError for a name or reason too long,
    xapian.DatabaseModifiedError when the indexer overtook one span's read for
    index_reader.PATIENCE_SECONDS."""
    query = query_of(replicated, saved)  # the saved search must exist
    name, reason = (name or "").strip() or None, (reason or "").strip() or None
    if name is not None and len(name) > NAME_LIMIT:
        raise ArchiverError(f"the matter's name is longer than {NAME_LIMIT} characters")
    if reason is not None and len(reason) > REASON_LIMIT:
        raise ArchiverError(f"the reason is longer than {REASON_LIMIT} characters")
    held = matching(index_dir, query, timezone)
    hold_id = uuid.uuid4().hex[:8]
    replicated.put(PREFIX + hold_id, {"saved": saved, "until": until.isoformat() if until else None,
                                      "by": actor.name, "name": name, "reason": reason,
                                      "created": time.time(), HELD: sorted(held)})
    return hold_id


def all_holds(replicated: Replicated) -> dict[str, dict]:
    """Each hold by id, as shown: every key of FIELDS (None where an older hold has none)
    and `held_at_placement` (how many messages it recorded, placement and edits of its
    search included)."""
    return {hold_id: {**dict.fromkeys(FIELDS), **{k: v for k, v in hold.items() if k != HELD},
                      "held_at_placement": len(hold.get(HELD, []))}
            for hold_id, hold in _entries(replicated).items()}


def recorded(replicated: Replicated, hold_id: str) -> list[str]:
    """The digests hold `hold_id` recorded (placement and edits of its search); [] for a
    hold without a record or none by that id."""
    return list(_entries(replicated).get(hold_id, {}).get(HELD, []))


def in_force(hold: dict, today: dt.date) -> bool:
    """Whether `hold` holds on `today` (an until-date holds through that day)."""
    return hold["until"] is None or dt.date.fromisoformat(hold["until"]) >= today


def _entries(replicated: Replicated) -> dict[str, dict]:
    return {key[len(PREFIX):]: value for key, value in replicated.items(PREFIX).items()}


def remove(replicated: Replicated, hold_id: str, actor: Actor) -> None:
    if actor.role != "admin":
        raise PermissionDenied(f"only an admin removes a litigation hold ({actor.name} is "
                               f"{actor.role})")
    if hold_id not in _entries(replicated):
        raise UnknownHold(f"no hold with id {hold_id!r}")
    replicated.delete(PREFIX + hold_id)


def keep_current_matches(replicated: Replicated, index_dir: Path, saved: str,
                         timezone: str = "UTC") -> int:
    """Before saved search `saved` changes: each hold on it records what it matches now
    (saved_searches.matching: read in spans, up to the newest document; days in
    `timezone`). Returns how many digests were added to the holds' records."""
    holding = {hold_id: hold for hold_id, hold in _entries(replicated).items()
               if hold["saved"] == saved}
    matched = matching(index_dir, query_of(replicated, saved), timezone) if holding else set()
    added = 0
    for hold_id, hold in holding.items():
        before = set(hold.get(HELD, []))
        if not matched <= before:
            replicated.put(PREFIX + hold_id, {**hold, HELD: sorted(before | matched)})
            added += len(matched - before)
    return added


def active(replicated: Replicated, today: dt.date) -> list[tuple[str, list[str]]]:
    """(query, recorded digests) of each hold in force today (an until-date holds through
    that day)."""
    found = []
    for hold in _entries(replicated).values():
        if in_force(hold, today):
            try:
                query = query_of(replicated, hold["saved"])
            except ArchiverError:
                query = ""  # its saved search is gone: hold everything, to be safe
            found.append((query, hold.get(HELD, [])))
    return found
