"""Search: a query (services.archive.query) run against the index, newest first, with
exact counts up to COUNT_LIMIT matches.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import xapian

from services.archive import dates
from services.archive.index import (CURSOR_KEY, RECIPIENTS_APART_SCHEMA, SCHEMA_VERSION,
                                    SLOT_DATE, SLOT_FROM, SLOT_SIZE, SLOT_SUBJECT, WORDS_SCHEMA,
                                    schema_version)
from services.archive.index_reader import read_index
from services.archive.query import (Context, PatternTooBroad, QuerySyntaxError, Reader,
                                    explanation, parse as parse_tree)

__all__ = ["COUNT_LIMIT", "Hit", "PatternTooBroad", "QuerySyntaxError", "Results", "explain",
           "matches_of", "parse", "query_in", "readable", "search", "unranked"]
MAX_OFFSET = 2**31 - 1  # Xapian's offsets are 32-bit: a larger one simply finds nothing
COUNT_LIMIT = 10000  # matches counted exactly; above it a result says "more than 10,000"
# What results may be sorted by: (value slot, newest/largest first by default).
SORTS = {"date": (SLOT_DATE, True), "size": (SLOT_SIZE, True), "from": (SLOT_FROM, False),
         "subject": (SLOT_SUBJECT, False)}
SORT_SCHEMA = 3  # indexes before it have no sender and subject sort keys


@dataclass(frozen=True)
class Hit:
    digest: str
    date: float
    sender: str
    subject: str
    size: int
    attachments: int
    failed: str | None
    to: tuple[str, ...] | None = None  # the first recipients; None: an older index's hit
    recipients: int = 0                # how many in all

    def as_json(self) -> dict:
        return {"digest": self.digest, "date": _iso(self.date), "from": self.sender,
                "to": list(self.to) if self.to is not None else None,
                "recipients": self.recipients,
                "subject": self.subject, "size": self.size, "attachments": self.attachments,
                "extraction_failed": self.failed}


@dataclass(frozen=True)
class Results:
    total: int          # matches, exact; COUNT_LIMIT when `more`
    offset: int
    hits: list[Hit]
    more: bool = False  # more than COUNT_LIMIT matches
    notice: str | None = None  # what makes the answer incomplete (an index being rebuilt)
    not_indexed: int = 0  # arrivals and deletions the index has still to take in
    position: int = 0  # the arrival-log position of the index read

    def total_text(self) -> str:
        """"1,234" or "more than 10,000"."""
        return f"more than {self.total:,}" if self.more else f"{self.total:,}"


def search(index_dir: Path, text: str, limit: int = 50, offset: int = 0,
           oldest_first: bool = False, within: xapian.Query | None = None,
           timezone: str = "UTC", now: float | None = None,
           count_limit: int = COUNT_LIMIT, sort: str = "date",
           descending: bool | None = None, log_end: int | None = None,
           count_backlog: bool = True, reader: Reader | None = None) -> Results:
    """Newest first; `within`, when given, is ANDed to the query as a filter (the web UI
    limits a user to their own mail with it), and `reader` limits which recipients the
    query may match (query.Reader: a user finds no mail by its hidden recipients). Dates are days in `timezone` (IANA name).
    `log_end`: the store's arrival-log end (Store.log_end("arrival")), read before the
    search: the entries between the index's position and it (messages stored or deleted
    that the index has not taken in yet: they may match and are not found, or are found
    and gone) are the answer's `not_indexed`, and its notice says so, so that a zero
    while the indexer is behind is not taken for "nothing matches". With count_backlog
    False (a user who reads only their own mail: the archive's traffic is not theirs to
    count) `not_indexed` is 1 for any backlog and the notice gives no number.
    `sort`: a key of SORTS (date, size: largest first; from, subject: A to Z), reversed
    by `descending` False/True; `oldest_first` is sort by date, oldest first. Ties are in
    date order, newest first. Raises QuerySyntaxError for a query the syntax does not
    know, PatternTooBroad for a wildcard that stands for more than query.EXPANSION_LIMIT
    words, ValueError for an unknown `sort`."""
    if sort not in SORTS:
        raise ValueError(f"sort: expected one of {', '.join(SORTS)}, got {sort!r}")
    tz, now = dates.zone(timezone), time.time() if now is None else now
    tree = parse_tree(text, tz, now)
    results = read_index(index_dir, lambda database: _results(
        database, tree, tz, now, limit, offset, oldest_first, within, count_limit, sort,
        descending, reader), absent=Results(0, offset, []))
    return results if log_end is None else _with_backlog(results, log_end, count_backlog)


# Who indexes what is stored: on an appliance its indexer service, always running; where
# none runs (an `archiver import` interrupted on a workstation), nothing does until then.
CATCHING_UP = "the indexer service (archiver run) or the next archiver import indexes it"


def _with_backlog(results: Results, log_end: int, counted: bool) -> Results:
    """`results` with the log entries after the position of the index it read."""
    behind = max(0, log_end - results.position)
    if not behind:
        return results
    if not counted:
        behind = 1
        notice = ("some mail stored or deleted just now is not indexed yet: this answer "
                  f"may miss it or still show it ({CATCHING_UP})")
    else:
        them = "them" if behind != 1 else "it"
        notice = (f"{behind:,} change{'s' if behind != 1 else ''} to the archive (mail stored "
                  f"or deleted) not indexed yet: this answer may miss {them} or still show "
                  f"{them} ({CATCHING_UP}; archiver status shows the backlog)")
    return replace(results, not_indexed=behind,
                   notice=f"{results.notice}; {notice}" if results.notice else notice)


def _results(database, tree, tz, now, limit, offset, oldest_first, within, count_limit, sort,
             descending, reader) -> Results:
    version = schema_version(database) or SCHEMA_VERSION
    enquire = unranked(database, query_in(database, tree, tz, now, within, reader))
    if oldest_first and sort == "date" and descending is None:
        descending = False
    # By the key alone: ties in document id order (as when every match weighed the same),
    # not by the weights unranked computes.
    enquire.set_sort_by_key(_sorter(sort, descending), False)
    matches = matches_of(enquire, min(offset, MAX_OFFSET), limit, count_limit + 1)
    more = matches.get_matches_lower_bound() > count_limit
    total = count_limit if more else matches.get_matches_estimated()
    hits = [_hit(json.loads(match.document.get_data()), reader) for match in matches]
    notice = _notice(database) if version < SCHEMA_VERSION else None
    if notice and sort in ("from", "subject") and version < SORT_SCHEMA:
        notice += f"; sorting by {sort} works once it is done (meanwhile mail is in date order)"
    return Results(total, offset, hits, more, notice,
                   position=int(database.get_metadata(CURSOR_KEY) or 0))


def query_in(database: xapian.Database, tree, tz, now: float,
             within: xapian.Query | None = None, reader: Reader | None = None
             ) -> xapian.Query:
    """The Xapian query of `tree` (a parsed search, query.parse) for `database`'s schema,
    patterns expanded in it, dates as days in `tz` and relative ones as of `now`; ANDed
    with `within` as a filter when given; matching only the recipients `reader` may see
    when given (query.Reader)."""
    version = schema_version(database) or SCHEMA_VERSION
    query = tree.query(Context(database, tz, now, version < WORDS_SCHEMA, reader,
                               version >= RECIPIENTS_APART_SCHEMA))
    if within is not None:
        query = xapian.Query(xapian.Query.OP_FILTER, query, within)
    return readable(query)


def readable(query: xapian.Query) -> xapian.Query:
    """`query`, matching the same documents, with no AND_NOT where Xapian reads it
    unweighted (what an AND_NOT excludes, the filter side of a FILTER). There, a term
    every document of a shard has is read as that shard's all-documents list, which
    Xapian 1.4.22 cannot walk on with next() once the shard has gaps (see unranked), and
    an AND_NOT walks its left side on with next(): "bob -(report -from:x)" failed after
    a retention run whatever the weighting. So x AND_NOT E, where E holds an AND_NOT, is
    read as x AND (not E), `not E` written out by De Morgan's laws down to MatchAll
    AND_NOT what holds no negation (_complement); a FILTER as an AND, so that its filter
    is read weighted too (the weights are not used: results are sorted by values). The
    rewritten query is at most a few times the size of `query`: x is never repeated (a
    chain of n such exclusions written as unions repeating x grew as 2^n). A query with
    neither AND_NOT nor FILTER is returned as it is."""
    kind, parts = query.get_type(), _parts(query)
    if not parts or not _rewritten(query):
        return query
    if kind == xapian.Query.OP_AND_NOT:
        kept = [readable(parts[0])]
        for excluded in parts[1:]:
            if _negates(excluded):
                kept.append(_complement(excluded))
            else:
                kept = [xapian.Query(xapian.Query.OP_AND_NOT, _all_of(kept), readable(excluded))]
        return _all_of(kept)
    if kind in (xapian.Query.OP_AND, xapian.Query.OP_OR, xapian.Query.OP_FILTER):
        kind = xapian.Query.OP_AND if kind == xapian.Query.OP_FILTER else kind
        return xapian.Query(kind, [readable(part) for part in parts])
    return query  # phrases, wildcards, value ranges: the query builder puts none in


def _complement(query: xapian.Query) -> xapian.Query:
    """The documents `query` does not match, with no AND_NOT inside what an AND_NOT
    excludes: not (P AND_NOT N) = (not P) OR N; not (A AND B) = (not A) OR (not B);
    not (A OR B) = (not A) AND (not B); not Q, Q without negation = MatchAll AND_NOT Q
    (MatchAll is the all-documents list under its own name, which Xapian walks right)."""
    kind, parts = query.get_type(), _parts(query)
    if not _negates(query):
        return xapian.Query(xapian.Query.OP_AND_NOT, xapian.Query.MatchAll, readable(query))
    if kind == xapian.Query.OP_AND_NOT:
        return xapian.Query(xapian.Query.OP_OR,
                            [_complement(parts[0])] + [readable(part) for part in parts[1:]])
    if kind in (xapian.Query.OP_AND, xapian.Query.OP_FILTER):
        return xapian.Query(xapian.Query.OP_OR, [_complement(part) for part in parts])
    if kind == xapian.Query.OP_OR:
        return xapian.Query(xapian.Query.OP_AND, [_complement(part) for part in parts])
    return xapian.Query(xapian.Query.OP_AND_NOT, xapian.Query.MatchAll, query)


def _all_of(queries: list[xapian.Query]) -> xapian.Query:
    return queries[0] if len(queries) == 1 else xapian.Query(xapian.Query.OP_AND, queries)


def _parts(query: xapian.Query) -> list[xapian.Query]:
    return [query.get_subquery(i) for i in range(query.get_num_subqueries())]


def _rewritten(query: xapian.Query) -> bool:
    """Whether `query` holds an AND_NOT or a FILTER (what readable rewrites)."""
    return query.get_type() in (xapian.Query.OP_AND_NOT, xapian.Query.OP_FILTER) or any(
        _rewritten(part) for part in _parts(query))


def _negates(query: xapian.Query) -> bool:
    """Whether `query` holds an AND_NOT."""
    return query.get_type() == xapian.Query.OP_AND_NOT or any(
        _negates(part) for part in _parts(query))


def unranked(database: xapian.Database, query: xapian.Query) -> xapian.Enquire:
    """An Enquire of `query` whose order is not the weights' (results are ordered by
    values, or not at all: a caller sorts with set_sort_by_key, never by relevance).

    Not xapian.BoolWeight, nor any scheme whose weights need no wdf: Xapian 1.4 (1.4.22,
    Debian 12's) then replaces a term that indexes every document of a shard by that
    shard's all-documents posting list, named after the term; once a deletion leaves a
    gap in the shard's document ids that list is read from the document-length chunks
    with the term's name, and moving past the first chunk raises DatabaseCorruptError
    "Unexpected end of posting list for 'TERM'" (a term in every message, on an index of
    2 shards of a few thousand documents each after a retention run). The default
    weighting (BM25) needs the wdf of the query's terms, so they are read as themselves;
    the weights are computed and not used (the cost is within the noise)."""
    enquire = xapian.Enquire(database)
    enquire.set_query(query)
    return enquire


def matches_of(enquire: xapian.Enquire, first: int, limit: int, check_at_least: int = 0
               ) -> xapian.MSet:
    """enquire.get_mset(first, limit, check_at_least); raises PatternTooBroad for a
    wildcard that stands for more than query.EXPANSION_LIMIT words."""
    try:
        return enquire.get_mset(first, limit, check_at_least)
    except xapian.WildcardError as exc:
        raise PatternTooBroad(f"a wildcard stands for too many words ({exc.get_msg()}); "
                              "make its beginning longer") from None


def _sorter(sort: str, descending: bool | None) -> xapian.MultiValueKeyMaker:
    """The sort key: the chosen slot, then the date (newest first) for ties."""
    slot, default_descending = SORTS[sort]
    maker = xapian.MultiValueKeyMaker()
    maker.add_value(slot, bool(default_descending if descending is None else descending))
    if slot != SLOT_DATE:
        maker.add_value(SLOT_DATE, True)
    return maker


def parse(text: str, database: xapian.Database | None = None, timezone: str = "UTC",
          now: float | None = None) -> xapian.Query:
    """The Xapian query of `text`; raises QuerySyntaxError saying what and where. Without
    `database`, patterns are not expanded (enough to check the syntax)."""
    tz, now = dates.zone(timezone), time.time() if now is None else now
    return readable(parse_tree(text, tz, now).query(Context(database, tz, now)))


def explain(index_dir: Path | None, text: str, timezone: str = "UTC",
            now: float | None = None) -> dict:
    """How `text` is understood: {"query", "timezone", "explanation": [lines], "xapian"}.
    Without `index_dir`, patterns (filename:*2024*, to:*@example.org) are not expanded into
    the terms they match: those would show addresses and names of mail one may not read."""
    tz, now = dates.zone(timezone), time.time() if now is None else now
    tree = parse_tree(text, tz, now)

    def explained(database: xapian.Database | None) -> dict:
        context = Context(database, tz, now)
        return {"query": text, "timezone": getattr(tz, "key", str(tz)),
                "explanation": explanation(tree, context),
                "xapian": str(tree.query(context))}
    found = read_index(index_dir, explained, None) if index_dir is not None else None
    return explained(None) if found is None else found


def _notice(database: xapian.Database) -> str:
    return ("the index is being rebuilt for a newer version of search; until it is done, "
            "some mail may not be found (archiver status shows the progress)")


def _hit(data: dict, reader: Reader | None) -> Hit:
    """The hit of a document's summary; for a `reader`, with only the recipients To and Cc
    show (an older index's summary does not say which: None, as if it had none)."""
    to, count = data.get("to"), data.get("recipients", 0)
    if reader is not None:
        shown = data.get("shown")
        to, count = (to[:shown], shown) if to is not None and shown is not None else (None, 0)
    return Hit(data["digest"], data["date"], data.get("from", ""), data.get("subject", ""),
               data.get("size", 0), data.get("attachments", 0), data.get("failed"),
               tuple(to) if to is not None else None, count)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
