"""Litigation holds: a saved search held indefinitely or until a date. A held message is
never deleted, whatever retention says; only an admin removes a hold."""
from __future__ import annotations

import datetime as dt
import uuid

from firmware.errors import ArchiverError

from services.policy.audit import Actor, PermissionDenied
from services.policy.replicated import Replicated
from services.policy.saved_searches import query_of

PREFIX = "hold:"


class UnknownHold(ArchiverError):
    pass


def add(replicated: Replicated, saved: str, until: dt.date | None, actor: Actor) -> str:
    query_of(replicated, saved)  # the saved search must exist
    hold_id = uuid.uuid4().hex[:8]
    replicated.put(PREFIX + hold_id, {"saved": saved, "until": until.isoformat() if until else None,
                                      "by": actor.name})
    return hold_id


def all_holds(replicated: Replicated) -> dict[str, dict]:
    return {key[len(PREFIX):]: value for key, value in replicated.items(PREFIX).items()}


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
        if hold["until"] is None or dt.date.fromisoformat(hold["until"]) >= today:
            try:
                queries.append(query_of(replicated, hold["saved"]))
            except ArchiverError:
                queries.append("")  # its saved search is gone: hold everything, to be safe
    return queries
