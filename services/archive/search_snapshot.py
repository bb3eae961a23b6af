"""What a search matches as of one moment, each message once, newest first: what an export
of a search lists (services.policy.exports, the web UI's and `archiver export`'s).

Paging through a search by offset reads each page on a newer revision of the index: mail
indexed or deleted between two pages shifts the later ones, so a message would be listed
twice or not at all, and a page deep in a result costs time in proportion to its offset.
A snapshot instead reads the matching document ids once, index_walk.SPAN ids at a time
(each span on one revision), from 1 through the highest id in the index when it begins:
ids only grow (a document's id is its store number), so mail indexed later is not in it.
Each match is kept as its date and id in arrays (12 bytes a match: 12 MB for a million),
each span's matches sorted into a run; the runs are merged, newest first, as the messages
are read, and each message is looked up (digest, then the store) only when its turn comes,
so one deleted meanwhile (retention) is left out.

The snapshot keeps the index open, and held against removal (index_reader.open_index),
from the moment it is taken until its messages have been read: a compaction or a rebuild
may switch to another index meanwhile, and the old one is removed (services.archive.
retired_index) only once the snapshot has let it go, however long the export takes. Read
again after that, it raises IndexGone rather than list nothing.
"""
from __future__ import annotations

import heapq
import json
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import xapian

from firmware.errors import ArchiverError
from services.archive import dates, shards
from services.archive.index import SLOT_DATE
from services.archive.index_reader import HeldDatabase, open_index, read_consistently
from services.archive.index_walk import chunks_of, spans_of, within
from services.archive.query import Reader, parse as parse_tree
from services.archive.search import matches_of, query_in, unranked
from services.archive.store import NotFound, Store

__all__ = ["AsOf", "IndexGone", "Snapshot", "stored_messages", "take"]


class IndexGone(ArchiverError):
    """The index a snapshot was taken of is gone (switched from, then removed) when its
    matches are read again: they cannot be listed."""


@dataclass(frozen=True)
class AsOf:
    """The index a snapshot was taken of: its revision, and its highest document id (every
    document above it was indexed after)."""
    revision: int
    last_document: int

    def as_json(self) -> dict:
        return {"index_revision": self.revision, "last_document": self.last_document}


class Snapshot:
    """The matches of a search as `take` read them: len() of them, their document ids
    newest first (`document_ids`), their digests (`digests`) and messages (`messages`).
    `database`: the index at `index_dir` (a directory, resolved) as take opened it, held,
    kept for the first walk of the digests, which closes it (if none walks them, it is
    closed with the snapshot); None: each walk opens the index by its path."""

    def __init__(self, index_dir: Path, as_of: AsOf, database: HeldDatabase | None = None):
        self.index_dir, self.as_of = Path(index_dir), as_of
        self._database = database
        # Match i is (dates[i], ids[i]); runs[k] is where run k begins (each run sorted).
        self.dates, self.ids, self.runs = array("d"), array("I"), array("Q")

    def __len__(self) -> int:
        return len(self.ids)

    def add_run(self, matches: list[tuple[float, int]]) -> None:
        """Add one span's matches ((date, document id) pairs, any order)."""
        if matches:
            self.runs.append(len(self.ids))
            for date, docid in sorted(matches, key=_newest_first):
                self.dates.append(date)
                self.ids.append(docid)

    def nbytes(self) -> int:
        """The bytes the matches are kept in."""
        return sum(part.itemsize * len(part) for part in (self.dates, self.ids, self.runs))

    def document_ids(self) -> Iterator[int]:
        """Every match's document id, newest (sent date) first, ties in id order: the order
        search.search gives."""
        bounds = [*self.runs, len(self.ids)]
        merged = heapq.merge(*(self._run(start, stop) for start, stop
                               in zip(bounds, bounds[1:])))
        return (docid for _, docid in merged)

    def _run(self, start: int, stop: int) -> Iterator[tuple[float, int]]:
        dates, ids = self.dates, self.ids
        return ((-dates[i], ids[i]) for i in range(start, stop))

    def digests(self) -> Iterator[str]:
        """The digest of every match still indexed, in document_ids' order; read
        index_walk.SPAN at a time, each on one revision. A document deleted since the
        snapshot (retention) is left out. Raises IndexGone when the index was removed
        before a walk other than the first began."""
        database, self._database = self._database, None  # the first walk reads the one held
        if database is None:
            database = self._opened_again()
        if database is None:
            return
        try:
            for found in chunks_of(database, self.document_ids(), _digests_of):
                yield from found
        finally:
            database.close()

    def _opened_again(self) -> xapian.Database | None:
        """The index opened (held) by its path; None when there is none and nothing
        matched."""
        database = open_index(self.index_dir)
        if database is None and len(self):
            raise IndexGone(f"the index the search was read from, {self.index_dir}, is gone "
                            "(a compaction or a rebuild replaced it): search again")
        return database

    def messages(self, store: Store, readable: Callable[[bytes, dict], bool] | None = None
                 ) -> Iterator[tuple[str, bytes, dict]]:
        """(digest, raw, metadata) of every match still stored, newest first, each once
        (stored_messages)."""
        return stored_messages(store, self.digests(), readable)


def take(index_dir: Path, text: str, timezone: str = "UTC", now: float | None = None,
         within_query: xapian.Query | None = None, reader: Reader | None = None
         ) -> Snapshot:
    """The messages search `text` matches now (search.search's query: dates as days in
    `timezone`, relative ones as of `now`, epoch seconds; ANDed with `within_query`, e.g.
    a user's services.web.access.mail_filter; matching only the recipients `reader` may
    see, query.Reader) in the index `index_dir` names (the index
    link, or an index directory): read in spans of document ids up to the highest one in
    the index now. An empty snapshot (AsOf(0, 0)) when nothing is indexed. The snapshot
    holds the index open, and held against removal, until its first walk ends (Snapshot).
    Raises QuerySyntaxError,
    PatternTooBroad, xapian.DatabaseModifiedError when the indexer overtook one span's
    read for index_reader.PATIENCE_SECONDS."""
    tz, now = dates.zone(timezone), time.time() if now is None else now
    tree = parse_tree(text, tz, now)  # a bad query fails before the index is read
    database = open_index(index_dir)
    if database is None:
        return Snapshot(index_dir, AsOf(0, 0))

    def span(database: xapian.Database, ids: range) -> list[tuple[float, int]]:
        query = within(database, query_in(database, tree, tz, now, within_query, reader), ids)
        return [(xapian.sortable_unserialise(match.document.get_value(SLOT_DATE)),
                 match.docid) for match in matches_of(unranked(database, query), 0, len(ids))]
    held_dir = database.index_dir  # what the link named when it was held: read that one
    try:
        as_of = read_consistently(database, lambda database: AsOf(
            shards.revision(held_dir), database.get_lastdocid()))
        snapshot = Snapshot(held_dir, as_of, database)
        for matches in spans_of(database, span, through=as_of.last_document):
            snapshot.add_run(matches)
    except BaseException:
        database.close()
        raise
    return snapshot


def stored_messages(store: Store, digests: Iterable[str],
                    readable: Callable[[bytes, dict], bool] | None = None
                    ) -> Iterator[tuple[str, bytes, dict]]:
    """(digest, raw, metadata) of each of `digests` that is stored (and `readable(raw,
    metadata)`, when given), in the order given; the others are left out: deleted since
    they were found (retention), or not the reader's."""
    for digest in digests:
        try:
            meta, raw = store.meta(digest), store.get(digest)
        except NotFound:
            continue
        if readable is None or readable(raw, meta):
            yield digest, raw, meta


def _newest_first(match: tuple[float, int]) -> tuple[float, int]:
    return -match[0], match[1]


def _digests_of(database: xapian.Database, ids: list[int]) -> list[str]:
    """The digests of the documents `ids` in `database`, in that order; ids of no document
    (deleted) left out."""
    found = []
    for docid in ids:
        try:
            found.append(json.loads(database.get_document(docid).get_data())["digest"])
        except xapian.DocNotFoundError:
            continue
    return found
