"""Litigation holds: a saved search held indefinitely or until a date. A held message is
never deleted, whatever retention says; only an admin removes a hold.

A hold is a replicated setting "hold:ID" = {"saved", "until", "by", "name", "reason",
"created"}: the matter's name and the reason for the hold were added later, so a hold
written before has neither (nor "created"); all_holds() gives every hold all the keys,
None where a hold lacks one."""
from __future__ import annotations

import datetime as dt
import time
import uuid

from firmware.errors import ArchiverError

from services.policy.audit import Actor, PermissionDenied
from services.policy.replicated import Replicated
from services.policy.saved_searches import query_of

PREFIX = "hold:"


class UnknownHold(ArchiverError):
    pass


FIELDS = ("saved", "until", "by", "name", "reason", "created")
NAME_LIMIT, REASON_LIMIT = 200, 2000  # characters


def add(replicated: Replicated, saved: str, until: dt.date | None, actor: Actor,
        name: str | None = None, reason: str | None = None) -> str:
    """Hold the mail of the saved search `saved` through `until` (None: indefinitely),
    for the matter `name` and the `reason` given; returns the hold's id. Raises
    UnknownSavedSearch, ArchiverError for a name or reason too long."""
    query_of(replicated, saved)  # the saved search must exist
    name, reason = (name or "").strip() or None, (reason or "").strip() or None
    if name is not None and len(name) > NAME_LIMIT:
        raise ArchiverError(f"the matter's name is longer than {NAME_LIMIT} characters")
    if reason is not None and len(reason) > REASON_LIMIT:
        raise ArchiverError(f"the reason is longer than {REASON_LIMIT} characters")
    hold_id = uuid.uuid4().hex[:8]
    replicated.put(PREFIX + hold_id, {"saved": saved, "until": until.isoformat() if until else None,
                                      "by": actor.name, "name": name, "reason": reason,
                                      "created": time.time()})
    return hold_id


def all_holds(replicated: Replicated) -> dict[str, dict]:
    """id -> the hold, with every key of FIELDS (None where an older hold has none)."""
    return {key[len(PREFIX):]: {**dict.fromkeys(FIELDS), **value}
            for key, value in replicated.items(PREFIX).items()}


def in_force(hold: dict, today: dt.date) -> bool:
    """Whether `hold` holds on `today` (an until-date holds through that day)."""
    return hold["until"] is None or dt.date.fromisoformat(hold["until"]) >= today


def remove(replicated: Replicated, hold_id: str, actor: Actor) -> None:
    if actor.role != "admin":
        raise PermissionDenied(f"only an admin removes a litigation hold ({actor.name} is "
                               f"{actor.role})")
    if hold_id not in all_holds(replicated):
        raise UnknownHold(f"no hold with id {hold_id!r}")
    replicated.delete(PREFIX + hold_id)


def active_queries(replicated: Replicated, today: dt.date) -> list[str]:
    """The queries of holds in force today (an until-date holds through that day)."""
    queries = []
    for hold in all_holds(replicated).values():
        if in_force(hold, today):
            try:
                queries.append(query_of(replicated, hold["saved"]))
            except ArchiverError:
                queries.append("")  # its saved search is gone: hold everything, to be safe
    return queries
