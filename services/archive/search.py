"""Search: the query syntax of DESIGN.md on top of Xapian's QueryParser.

Words, "phrases", suffix wildcards, AND/OR/NOT and parentheses (any case), the prefixes of
services.archive.index, `date:A..B` and `size:MIN..MAX` ranges; newest first, with paging.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

import xapian

from firmware.errors import ArchiverError

from services.archive.index import BOOLEAN_PREFIXES, SLOT_DATE, SLOT_SIZE, TEXT_PREFIXES, term

FLAGS = (xapian.QueryParser.FLAG_BOOLEAN | xapian.QueryParser.FLAG_BOOLEAN_ANY_CASE
         | xapian.QueryParser.FLAG_PHRASE | xapian.QueryParser.FLAG_LOVEHATE
         | xapian.QueryParser.FLAG_WILDCARD | xapian.QueryParser.FLAG_PURE_NOT)
FIELD_NAMES = set(TEXT_PREFIXES) | set(BOOLEAN_PREFIXES) | {"date", "size"}
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
              "g": 1024**3, "gb": 1024**3}


class QuerySyntaxError(ArchiverError):
    pass


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
    total: int          # Xapian's estimate of all matches; exact for small result sets
    offset: int
    hits: list[Hit]


def search(index_dir: Path, text: str, limit: int = 50, offset: int = 0,
           oldest_first: bool = False, within: xapian.Query | None = None) -> Results:
    """Newest first; `within`, when given, is ANDed to the query as a filter (the web UI
    limits a user to their own mail with it)."""
    try:
        database = xapian.Database(str(index_dir))
    except xapian.DatabaseOpeningError:
        return Results(0, offset, [])  # nothing indexed yet
    enquire = xapian.Enquire(database)
    query = parse(text, database)
    if within is not None:
        query = xapian.Query(xapian.Query.OP_FILTER, query, within)
    enquire.set_query(query)
    enquire.set_sort_by_value_then_relevance(SLOT_DATE, not oldest_first)
    matches = enquire.get_mset(offset, limit, 1000)
    hits = [_hit(json.loads(match.document.get_data())) for match in matches]
    return Results(matches.get_matches_estimated(), offset, hits)


def parse(text: str, database: xapian.Database | None = None) -> xapian.Query:
    """A Xapian query for `text`; raise QuerySyntaxError with the reason on bad syntax."""
    if not text.strip():
        return xapian.Query.MatchAll
    parser = xapian.QueryParser()
    parser.set_default_op(xapian.Query.OP_AND)
    if database is not None:
        parser.set_database(database)  # wildcards expand against the index's terms
    for name, prefix in TEXT_PREFIXES.items():
        parser.add_prefix(name, prefix)
    processors = [_BooleanField(prefix) for prefix in BOOLEAN_PREFIXES.values()]
    processors += [_RangeField("date", SLOT_DATE, _date_bounds),
                   _RangeField("size", SLOT_SIZE, _size_bounds)]
    for name, processor in zip(list(BOOLEAN_PREFIXES) + ["date", "size"], processors):
        parser.add_boolean_prefix(name, processor)
    try:
        query = parser.parse_query(_lowercase_field_names(text), FLAGS)
    except xapian.QueryParserError as exc:
        raise QuerySyntaxError(f"cannot parse query {text!r}: {exc}") from None
    errors = [p.error for p in processors if p.error]
    if errors:
        raise QuerySyntaxError(f"cannot parse query {text!r}: {errors[0]}")
    return query


def _lowercase_field_names(text: str) -> str:
    """`Subject:Foo` means `subject:Foo`; quoted phrases are left alone."""
    parts = text.split('"')
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"\b([A-Za-z]+):",
                          lambda m: (m.group(1).lower() if m.group(1).lower() in FIELD_NAMES
                                     else m.group(1)) + ":", parts[i])
    return '"'.join(parts)


class _BooleanField(xapian.FieldProcessor):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix, self.error = prefix, None

    def __call__(self, value: bytes) -> xapian.Query:
        return xapian.Query(term(self.prefix, value.decode("utf-8", "replace").lower()))


class _RangeField(xapian.FieldProcessor):
    """`name:A..B`, `name:A..`, `name:..B` or `name:A` over a value slot."""

    def __init__(self, name: str, slot: int, bounds):
        super().__init__()
        self.name, self.slot, self.bounds, self.error = name, slot, bounds, None

    def __call__(self, value: bytes) -> xapian.Query:
        text = value.decode("utf-8", "replace")
        try:
            low, high = self.bounds(text)
        except ValueError as exc:
            self.error = f"{self.name}:{text}: {exc}"
            return xapian.Query.MatchNothing
        if low is None:
            return xapian.Query(xapian.Query.OP_VALUE_LE, self.slot, xapian.sortable_serialise(high))
        if high is None:
            return xapian.Query(xapian.Query.OP_VALUE_GE, self.slot, xapian.sortable_serialise(low))
        return xapian.Query(xapian.Query.OP_VALUE_RANGE, self.slot,
                            xapian.sortable_serialise(low), xapian.sortable_serialise(high))


def _split_range(text: str) -> tuple[str, str]:
    if ".." in text:
        low, high = text.split("..", 1)
    else:
        low = high = text
    if not low and not high:
        raise ValueError("give at least one end of the range")
    return low, high


def _date_bounds(text: str) -> tuple[float | None, float | None]:
    """Whole days (or months, or years), inclusive, in UTC."""
    low, high = _split_range(text)
    return (_period(low)[0] if low else None), (_period(high)[1] if high else None)


def _period(text: str) -> tuple[float, float]:
    for pattern, step in (("%Y-%m-%d", "day"), ("%Y-%m", "month"), ("%Y", "year")):
        try:
            start = dt.datetime.strptime(text, pattern).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
        if step == "day":
            end = start + dt.timedelta(days=1)
        elif step == "month":
            end = (start + dt.timedelta(days=32)).replace(day=1)
        else:
            end = start.replace(year=start.year + 1)
        return start.timestamp(), end.timestamp() - 0.001
    raise ValueError("expected dates as YYYY-MM-DD (or YYYY-MM, YYYY)")


def _size_bounds(text: str) -> tuple[float | None, float | None]:
    low, high = _split_range(text)
    return (_bytes(low) if low else None), (_bytes(high) if high else None)


def _bytes(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.lower())
    if not match or match.group(2) not in SIZE_UNITS:
        raise ValueError("expected sizes as a number of bytes, or with k, M or G")
    return float(match.group(1)) * SIZE_UNITS[match.group(2)]


def _hit(data: dict) -> Hit:
    return Hit(data["digest"], data["date"], data.get("from", ""), data.get("subject", ""),
               data.get("size", 0), data.get("attachments", 0), data.get("failed"))


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
