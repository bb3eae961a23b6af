"""What litigation holds cover, as the index answers it: how many messages a hold keeps,
and which holds keep one message. A hold keeps what its saved search matches, asked as
retention asks it (services.policy.retention: in the appliance's time zone), and the
digests it recorded at placement and at each edit of its search (services.policy.holds),
so what is shown held is what retention leaves alone. A hold whose saved search is gone
holds everything (as retention treats it)."""
from __future__ import annotations

import bisect
import datetime as dt
import itertools
import time
from pathlib import Path
from typing import Iterable

import xapian

from services.archive import dates
from services.archive.index_reader import open_index, read_index
from services.archive.index_walk import chunks_of, document_ids, spans_of
from services.policy import holds
from services.policy.replicated import Replicated
from services.policy.saved_searches import count_in, matching_in


def hold_query(replicated: Replicated, hold: dict) -> str:
    """The query a hold keeps: its saved search's; "" (everything) once that is gone, or
    when the hold is unreadable (holds.held_query)."""
    return holds.held_query(replicated, hold)


def covered(replicated: Replicated, index_dir: Path, hold_id: str, hold: dict,
            timezone: str = "UTC", now: float | None = None) -> int:
    """How many indexed messages hold `hold_id` (`hold`, as holds.all_holds gives it)
    covers: its search's matches and its recorded digests; counted whether or not the
    hold is in force today. Read index_walk.SPAN document ids at a time, each span on one
    revision, up to the highest id when the count begins: each message counted once, if
    it is indexed when its span is read. 0 when nothing is indexed. `index_dir`: the index
    link, or an index directory. The index is opened once for all of it, and held against
    removal until the count ends (index_reader.open_index): an index switched from
    meanwhile is read on to the end, never taken for one that holds nothing. Raises
    QuerySyntaxError for a saved query the syntax no longer takes,
    xapian.DatabaseModifiedError when the indexer overtook one span's read for
    index_reader.PATIENCE_SECONDS."""
    query, now = hold_query(replicated, hold), time.time() if now is None else now
    database = open_index(index_dir)
    if database is None:
        return 0
    try:
        named = _recorded_ids(database, holds.recorded(replicated, hold_id))
        return sum(spans_of(database, lambda database, ids: count_in(
            database, query, ids, _slice(named, ids), timezone, now)))
    finally:
        database.close()


def _recorded_ids(database: xapian.Database, recorded: Iterable[str]) -> list[int]:
    """The document ids of the `recorded` digests that are indexed, ascending; looked up
    index_walk.SPAN digests at a time, as they are read (holds.recorded reads them in
    chunks): only the ids are kept. A document keeps its id (its store number), so ids
    found on one revision name the same documents on the next."""
    return sorted(itertools.chain.from_iterable(chunks_of(
        database, recorded, lambda database, digests: list(document_ids(database, digests)))))


def _slice(ids: list[int], span: range) -> list[int]:
    """Those of `ids` (ascending) within `span`."""
    return ids[bisect.bisect_left(ids, span.start):bisect.bisect_left(ids, span.stop)]


def covering(replicated: Replicated, index_dir: Path, digest: str, timezone: str = "UTC",
             now: float | None = None) -> list[dict]:
    """The holds in force today that cover the message `digest`: each {"id", **hold}."""
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now, dates.zone(timezone)).date()
    in_force = [(hold_id, hold) for hold_id, hold in sorted(holds.all_holds(replicated).items())
                if holds.in_force(hold, today)]
    recorded = {hold_id for hold_id, _ in in_force
                if holds.is_recorded(replicated, hold_id, digest)}
    searched = [(hold_id, hold) for hold_id, hold in in_force if hold_id not in recorded]

    def matched(database: xapian.Database) -> set[str]:
        return {hold_id for hold_id, hold in searched
                if matching_in(database, hold_query(replicated, hold), timezone, now,
                               among=[digest])}
    found = read_index(index_dir, matched, absent=set())
    return [{"id": hold_id, **hold} for hold_id, hold in in_force
            if hold_id in found or hold_id in recorded]

