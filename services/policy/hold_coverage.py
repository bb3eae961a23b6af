"""What litigation holds cover, as the index answers it: how many messages a hold keeps,
and which holds keep one message. Each asks the same saved-search query retention asks
(services.policy.retention), in the appliance's time zone, so what is shown held is what
retention leaves alone. A hold whose saved search is gone holds everything (as retention
treats it)."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import xapian

from firmware.errors import ArchiverError

from services.archive import dates
from services.archive.index import id_term
from services.archive.search import search
from services.policy import holds
from services.policy.replicated import Replicated
from services.policy.saved_searches import query_of

EXACT_COUNT = 2**31  # holds are counted exactly, whatever their size


def hold_query(replicated: Replicated, hold: dict) -> str:
    """The query a hold keeps: its saved search's; "" (everything) once that is gone."""
    try:
        return query_of(replicated, hold["saved"])
    except ArchiverError:
        return ""


def covered(replicated: Replicated, index_dir: Path, hold: dict, timezone: str = "UTC",
            now: float | None = None, within: xapian.Query | None = None) -> int:
    """How many indexed messages `hold` covers (of those `within` lets through); counted
    whether or not the hold is in force today."""
    return search(index_dir, hold_query(replicated, hold), 0, within=within,
                  timezone=timezone, now=now, count_limit=EXACT_COUNT).total


def covering(replicated: Replicated, index_dir: Path, digest: str, timezone: str = "UTC",
             now: float | None = None) -> list[dict]:
    """The holds in force today that cover the message `digest`: each {"id", **hold}."""
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now, dates.zone(timezone)).date()
    only_it = xapian.Query(id_term(digest))
    found = []
    for hold_id, hold in sorted(holds.all_holds(replicated).items()):
        if holds.in_force(hold, today) and covered(replicated, index_dir, hold, timezone,
                                                   now, within=only_it):
            found.append({"id": hold_id, **hold})
    return found
