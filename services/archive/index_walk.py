"""Reading the whole index, or a whole search's matches, in bounded reads: SPAN document ids
(or SPAN digests) at a time, each on one revision (services.archive.index_reader), so that
no read grows with the archive and one the indexer overtakes is all that is read again.

A message's document id is its number in the store (Store.put numbers each new message;
the indexer adds its document under that number), so ids only grow and are never reused:
a span once read is never changed by mail stored later, and a walk that goes up to the
highest id of the newest revision (`follow`) reads the mail indexed while it went on too.

Xapian 1.4 has no query for a set of document ids; `within` filters a query to one with a
posting source (DocumentIds) on an index of one database, and on an index of several shards
(services.archive.shards), where Xapian's Python bindings cannot run a posting source,
with the terms the indexer gives each document for its id (index.number_terms).
"""
from __future__ import annotations

import bisect
import itertools
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import xapian

from services.archive.index import ID_BLOCK, id_term, number_terms
from services.archive.index_reader import open_index, read_consistently, reopen

__all__ = ["SPAN", "DocumentIds", "chunks_of", "document_ids", "read_chunks", "read_spans",
           "spans_of", "within"]
T, X = TypeVar("T"), TypeVar("X")
# Document ids (or digests) read on one revision. The indexer commits every 0.5 s under
# steady intake and a revision is discarded two commits on; a span of a search that
# matches all of it reads in about 7 ms (ids only) to 25 ms (each match's digest) on
# 2 shared cores, one of no matches in well under 1 ms.
SPAN = 1000


class DocumentIds(xapian.PostingSource):
    """The document ids in `ids` (ascending ints: a range, a sorted list) as Xapian postings.
    Ids of no document are given too: combine it (AND, FILTER) with a query that only
    matches documents, as `within` does."""

    def __init__(self, ids: Sequence[int]):
        super().__init__()
        self.ids, self.at = ids, -1

    def init(self, database: xapian.Database) -> None:
        self.at = -1  # before the first

    def get_termfreq_min(self) -> int:
        return 0

    def get_termfreq_est(self) -> int:
        return len(self.ids)

    def get_termfreq_max(self) -> int:
        return len(self.ids)

    def __next__(self, minimum_weight: float) -> None:  # Python 3's name for next()
        self.at += 1

    def skip_to(self, docid: int, minimum_weight: float) -> None:
        self.at = max(self.at, bisect.bisect_left(self.ids, docid))

    def at_end(self) -> bool:
        return self.at >= len(self.ids)

    def get_docid(self) -> int:
        return self.ids[self.at]


def within(database: xapian.Database, query: xapian.Query, ids: Sequence[int]
           ) -> xapian.Query:
    """`query` matching only documents of `database` whose id is in `ids` (ascending ints).
    `query` must itself match only documents (any parsed search does; xapian.Query.MatchAll
    for every document of `ids` that exists)."""
    if b":" not in database.get_uuid():  # one database (its uuid; shards' are joined by ":")
        return xapian.Query(xapian.Query.OP_FILTER, query, xapian.Query(DocumentIds(ids)))
    return xapian.Query(xapian.Query.OP_FILTER, query, _ids_by_terms(ids))


def _ids_by_terms(ids: Sequence[int]) -> xapian.Query:
    """A query of the documents whose id is in `ids` (ascending) by their terms: a whole
    block of ids by its block's term (a span of read_spans), the others by their own terms,
    each block's filtered by its block's term. One flat OR of every id's term costs time
    in the square of their count in Xapian 1.4 (5,000 scattered ids 0.6 s, 20,000 8.8 s,
    50,000 90 s on 2 shared cores); an OR of blocks, each bounded, grows with the count."""
    wanted = []
    for block, members in itertools.groupby(ids, lambda docid: (docid - 1) // ID_BLOCK):
        members = sorted(set(members))
        block_term = xapian.Query(number_terms(members[0])[1])
        if len(members) == ID_BLOCK:
            wanted.append(block_term)
        else:
            wanted.append(xapian.Query(xapian.Query.OP_FILTER, xapian.Query(
                xapian.Query.OP_OR, [number_terms(docid)[0] for docid in members]), block_term))
    return xapian.Query(xapian.Query.OP_OR, wanted) if wanted else xapian.Query.MatchNothing


def document_ids(database: xapian.Database, digests: Iterable[str]) -> dict[int, str]:
    """document id -> digest for each of `digests` indexed in `database` (by its id term,
    no document read); digests not indexed are left out."""
    return {posting.docid: digest for digest in digests
            for posting in database.postlist(id_term(digest))}


def read_spans(index_dir: Path, read: Callable[[xapian.Database, range], T],
               follow: bool = False, through: int | None = None) -> Iterator[T]:
    """read(database, ids) for each SPAN document ids in turn (`ids`: a range), from 1
    through the highest id in the index when the walk begins; with `follow`, through the
    highest of the revision the last span was read on (mail indexed meanwhile read too);
    with `through`, through that id at most (the highest when a snapshot was taken).
    Each span is read on the newest revision when it begins, all of it on that one
    (read_consistently: `read` must have no effect beside its result). Nothing when
    nothing is indexed. Raises xapian.DatabaseModifiedError when the indexer overtook one
    span's read for index_reader.PATIENCE_SECONDS."""
    database = open_index(index_dir)
    if database is None:
        return
    try:
        yield from spans_of(database, read, follow, through)
    finally:
        database.close()


def spans_of(database: xapian.Database, read: Callable[[xapian.Database, range], T],
             follow: bool = False, through: int | None = None) -> Iterator[T]:
    """read_spans on `database`, an index opened for reading (left open): for a caller
    that reads it more than once, and must read the same index each time."""
    first, last = 1, database.get_lastdocid()
    if through is not None:
        last = min(last, through)
    while first <= last:
        ids = range(first, min(first + SPAN, last + 1))
        reopen(database)  # the newest revision: the indexer discards it two commits on
        result, newest = read_consistently(database, lambda database: (
            read(database, ids), database.get_lastdocid()))
        yield result
        first, last = ids.stop, max(last, newest) if follow else last


def read_chunks(index_dir: Path, items: Iterable[X],
                read: Callable[[xapian.Database, list[X]], T], size: int | None = None
                ) -> Iterator[T]:
    """read(database, chunk) for each `size` (default SPAN) of `items` in turn (taken from
    `items` between reads, never during one), each chunk on the newest revision when it
    begins, as read_spans reads a span. Nothing when nothing is indexed. Raises
    xapian.DatabaseModifiedError as read_spans does."""
    database = open_index(index_dir)
    if database is None:
        return
    try:
        yield from chunks_of(database, items, read, size)
    finally:
        database.close()


def chunks_of(database: xapian.Database, items: Iterable[X],
              read: Callable[[xapian.Database, list[X]], T], size: int | None = None
              ) -> Iterator[T]:
    """read_chunks on `database`, an index opened for reading (left open), as spans_of."""
    items = iter(items)
    while chunk := list(itertools.islice(items, size or SPAN)):
        reopen(database)
        yield read_consistently(database, lambda database: read(database, chunk))
