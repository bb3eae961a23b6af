"""Search: a query (services.archive.query) run against the index, newest first, with
exact counts up to COUNT_LIMIT matches.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import xapian

from services.archive import dates
from services.archive.index import SCHEMA_VERSION, SLOT_DATE, schema_version
from services.archive.query import (Context, PatternTooBroad, QuerySyntaxError, explanation,
                                    parse as parse_tree)

__all__ = ["COUNT_LIMIT", "Hit", "PatternTooBroad", "QuerySyntaxError", "Results", "explain",
           "parse", "search"]
MAX_OFFSET = 2**31 - 1  # Xapian's offsets are 32-bit: a larger one simply finds nothing
COUNT_LIMIT = 10000  # matches counted exactly; above it a result says "more than 10,000"


@dataclass(frozen=True)
class Hit:
    digest: str
    date: float
    sender: str
    subject: str
    size: int
    attachments: int
    failed: str | None

    def as_json(self) -> dict:
        return {"digest": self.digest, "date": _iso(self.date), "from": self.sender,
                "subject": self.subject, "size": self.size, "attachments": self.attachments,
                "extraction_failed": self.failed}


@dataclass(frozen=True)
class Results:
    total: int          # matches, exact; COUNT_LIMIT when `more`
    offset: int
    hits: list[Hit]
    more: bool = False  # more than COUNT_LIMIT matches
    notice: str | None = None  # what makes the answer incomplete (an index being rebuilt)

    def total_text(self) -> str:
        """"1,234" or "more than 10,000"."""
        return f"more than {self.total:,}" if self.more else f"{self.total:,}"


def search(index_dir: Path, text: str, limit: int = 50, offset: int = 0,
           oldest_first: bool = False, within: xapian.Query | None = None,
           timezone: str = "UTC", now: float | None = None,
           count_limit: int = COUNT_LIMIT) -> Results:
    """Newest first; `within`, when given, is ANDed to the query as a filter (the web UI
    limits a user to their own mail with it). Dates are days in `timezone` (IANA name).
    Raises QuerySyntaxError for a query the syntax does not know, PatternTooBroad for a
    wildcard that stands for more than query.EXPANSION_LIMIT words."""
    tz, now = dates.zone(timezone), time.time() if now is None else now
    tree = parse_tree(text, tz, now)
    try:
        database = xapian.Database(str(index_dir))
    except xapian.DatabaseOpeningError:
        return Results(0, offset, [])  # nothing indexed yet
    legacy = (schema_version(database) or SCHEMA_VERSION) < SCHEMA_VERSION
    query = tree.query(Context(database, tz, now, legacy))
    if within is not None:
        query = xapian.Query(xapian.Query.OP_FILTER, query, within)
    enquire = xapian.Enquire(database)
    enquire.set_query(query)
    enquire.set_weighting_scheme(xapian.BoolWeight())  # the order is by date anyway
    enquire.set_sort_by_value_then_relevance(SLOT_DATE, not oldest_first)
    try:
        matches = enquire.get_mset(min(offset, MAX_OFFSET), limit, count_limit + 1)
    except xapian.WildcardError as exc:
        raise PatternTooBroad(f"a wildcard stands for too many words ({exc.get_msg()}); "
                              "make its beginning longer") from None
    more = matches.get_matches_lower_bound() > count_limit
    total = count_limit if more else matches.get_matches_estimated()
    hits = [_hit(json.loads(match.document.get_data())) for match in matches]
    return Results(total, offset, hits, more, _notice(database) if legacy else None)


def parse(text: str, database: xapian.Database | None = None, timezone: str = "UTC",
          now: float | None = None) -> xapian.Query:
    """The Xapian query of `text`; raises QuerySyntaxError saying what and where. Without
    `database`, patterns are not expanded (enough to check the syntax)."""
    tz, now = dates.zone(timezone), time.time() if now is None else now
    return parse_tree(text, tz, now).query(Context(database, tz, now))


def explain(index_dir: Path | None, text: str, timezone: str = "UTC",
            now: float | None = None) -> dict:
    """How `text` is understood: {"query", "timezone", "explanation": [lines], "xapian"}.
    Without `index_dir`, patterns (filename:*2024*, to:*@example.org) are not expanded into
    the terms they match: those would show addresses and names of mail one may not read."""
    tz, now = dates.zone(timezone), time.time() if now is None else now
    tree = parse_tree(text, tz, now)
    database = None
    if index_dir is not None:
        try:
            database = xapian.Database(str(index_dir))
        except xapian.DatabaseOpeningError:
            pass
    context = Context(database, tz, now)
    return {"query": text, "timezone": getattr(tz, "key", str(tz)),
            "explanation": explanation(tree, context),
            "xapian": str(tree.query(context))}


def _notice(database: xapian.Database) -> str:
    return ("the index is being rebuilt for a newer version of search; until it is done, "
            "some mail may not be found (archiver status shows the progress)")


def _hit(data: dict) -> Hit:
    return Hit(data["digest"], data["date"], data.get("from", ""), data.get("subject", ""),
               data.get("size", 0), data.get("attachments", 0), data.get("failed"))


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
