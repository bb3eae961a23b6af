"""What litigation holds cover, as the index answers it: how many messages a hold keeps,
and which holds keep one message. A hold keeps what its saved search matches, asked as
retention asks it (services.policy.retention: in the appliance's time zone), and the
digests it recorded at placement and at each edit of its search (services.policy.holds),
so what is shown held is what retention leaves alone. A hold whose saved search is gone
holds everything (as retention treats it)."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import xapian

from firmware.errors import ArchiverError

from services.archive import dates
from services.archive.index import id_term
from services.archive.index_reader import read_index
from services.policy import holds
from services.policy.replicated import Replicated
from services.policy.saved_searches import matching_in, query_of


def hold_query(replicated: Replicated, hold: dict) -> str:
    """The query a hold keeps: its saved search's; "" (everything) once that is gone."""
    try:
        return query_of(replicated, hold["saved"])
    except ArchiverError:
        return ""


def covered(replicated: Replicated, index_dir: Path, hold_id: str, hold: dict,
            timezone: str = "UTC", now: float | None = None) -> int:
    """How many indexed messages hold `hold_id` (`hold`, as holds.all_holds gives it)
    covers: its search's matches and its recorded digests; counted whether or not the
    hold is in force today. 0 when nothing is indexed. Raises QuerySyntaxError for a
    saved query the syntax no longer takes."""
    query, recorded = hold_query(replicated, hold), holds.recorded(replicated, hold_id)

    def count(database: xapian.Database) -> int:
        found = matching_in(database, query, timezone, now)
        found |= {digest for digest in recorded if database.term_exists(id_term(digest))}
        return len(found)
    return read_index(index_dir, count, absent=0)


def covering(replicated: Replicated, index_dir: Path, digest: str, timezone: str = "UTC",
             now: float | None = None) -> list[dict]:
    """The holds in force today that cover the message `digest`: each {"id", **hold}."""
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now, dates.zone(timezone)).date()
    in_force = [(hold_id, hold) for hold_id, hold in sorted(holds.all_holds(replicated).items())
                if holds.in_force(hold, today)]
    searched = [(hold_id, hold) for hold_id, hold in in_force
                if digest not in holds.recorded(replicated, hold_id)]

    def matched(database: xapian.Database) -> set[str]:
        return {hold_id for hold_id, hold in searched
                if matching_in(database, hold_query(replicated, hold), timezone, now,
                               among=[digest])}
    found = read_index(index_dir, matched, absent=set())
    return [{"id": hold_id, **hold} for hold_id, hold in in_force
            if hold_id in found or digest in holds.recorded(replicated, hold_id)]

