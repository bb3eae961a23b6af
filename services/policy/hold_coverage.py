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

from firmware.errors import ArchiverError

from services.archive import dates
from services.archive.index import CURSOR_KEY
from services.archive.index_reader import open_index, read_index
from services.archive.index_walk import chunks_of, document_ids, spans_of
from services.archive.search import parse
from services.policy import holds
from services.policy.replicated import Replicated
from services.policy.saved_searches import count_without, matching_in


LOG_PAGE = 10_000  # arrival-log entries read at a time


def hold_query(replicated: Replicated, hold: dict) -> str:
    """The query a hold keeps: its saved search's; "" (everything) once that is gone, or
    when the hold is unreadable (holds.held_query)."""
    return holds.held_query(replicated, hold)


def hold_queries(replicated: Replicated, hold_id: str, hold: dict) -> list[str]:
    """The queries hold `hold_id` keeps by, as retention reads them: hold_query's and the
    queries its saved search had before it changed, not yet recorded here
    (holds.superseded_queries); "" (everything) for one this release cannot parse."""
    queries = [hold_query(replicated, hold)]
    for query in holds.superseded_queries(replicated, [hold_id]):
        try:
            parse(query)
            queries.append(query)
        except ArchiverError:  # retention keeps every message for it
            queries.append("")
    return list(dict.fromkeys(queries))


def covered(replicated: Replicated, index_dir: Path, hold_id: str, hold: dict,
            timezone: str = "UTC", now: float | None = None) -> int:
    """How many indexed messages still stored hold `hold_id` (`hold`, as holds.all_holds
    gives it) covers: its search's matches (hold_queries: the queries its search had
    before an edit not yet recorded here too) and its recorded digests, of the mail in
    the store (an index behind on deletions still has documents of mail deleted since,
    which no hold keeps); counted whether or not the hold is in force today. Read index_walk.SPAN document ids at a time, each span on one
    revision, up to the highest id when the count begins: each message counted once, if
    it is indexed when its span is read. 0 when nothing is indexed. `index_dir`: the index
    link, or an index directory. The index is opened once for all of it, and held against
    removal until the count ends (index_reader.open_index): an index switched from
    meanwhile is read on to the end, never taken for one that holds nothing. Raises
    QuerySyntaxError for a saved query the syntax no longer takes,
    xapian.DatabaseModifiedError when the indexer overtook one span's read for
    index_reader.PATIENCE_SECONDS."""
    queries = hold_queries(replicated, hold_id, hold)
    now = time.time() if now is None else now
    database = open_index(index_dir)
    if database is None:
        return 0
    try:
        named = _recorded_ids(database, holds.recorded(replicated, hold_id))
        gone = _deleted_ids(database, replicated.store)
        return sum(spans_of(database, lambda database, ids: count_without(
            database, queries, ids, _slice(named, ids), _slice(gone, ids), timezone, now)))
    finally:
        database.close()


def _recorded_ids(database: xapian.Database, recorded: Iterable[str]) -> list[int]:
    """The document ids of the `recorded` digests that are indexed, ascending; looked up
    index_walk.SPAN digests at a time, as they are read (holds.recorded reads them in
    chunks): only the ids are kept. A document keeps its id (its store number), so ids
    found on one revision name the same documents on the next."""
    return sorted(itertools.chain.from_iterable(chunks_of(
        database, recorded, lambda database, digests: list(document_ids(database, digests)))))


def _deleted_ids(database: xapian.Database, store) -> list[int]:
    """The document ids, ascending, of mail deleted from the store whose deletion the
    index (`database`) has not taken in yet: the digests of the arrival log past the
    index's position that the store no longer holds (as many as the index is behind)."""
    position = int(database.get_metadata(CURSOR_KEY) or 0)
    gone: set[str] = set()
    while entries := store.log_after("arrival", position, LOG_PAGE):
        gone.update(digest for _, digest in entries if digest not in store)
        position = entries[-1][0]
    return sorted(itertools.chain.from_iterable(chunks_of(
        database, sorted(gone), lambda database, digests: list(document_ids(database,
                                                                            digests)))))


def _slice(ids: list[int], span: range) -> list[int]:
    """Those of `ids` (ascending) within `span`."""
    return ids[bisect.bisect_left(ids, span.start):bisect.bisect_left(ids, span.stop)]


def covering(replicated: Replicated, index_dir: Path, digest: str, timezone: str = "UTC",
             now: float | None = None) -> list[dict]:
    """The holds in force today that cover the message `digest`: each {"id", **hold}; by
    record, or by a query retention keeps by (hold_queries)."""
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now, dates.zone(timezone)).date()
    in_force = [(hold_id, hold) for hold_id, hold in sorted(holds.all_holds(replicated).items())
                if holds.in_force(hold, today)]
    recorded = {hold_id for hold_id, _ in in_force
                if holds.is_recorded(replicated, hold_id, digest)}
    searched = [(hold_id, hold) for hold_id, hold in in_force if hold_id not in recorded]

    def matched(database: xapian.Database) -> set[str]:
        return {hold_id for hold_id, hold in searched
                if any(matching_in(database, query, timezone, now, among=[digest])
                       for query in hold_queries(replicated, hold_id, hold))}
    found = read_index(index_dir, matched, absent=set())
    return [{"id": hold_id, **hold} for hold_id, hold in in_force
            if hold_id in found or hold_id in recorded]

