"""Reading the audit log as an auditor does: filtered by action, by who, and by time,
newest first, a page at a time, and as CSV.

The log is read from its newest entry backwards with one LMDB cursor, so the first pages
cost what they show; a filter that matches little reads the whole log (its entries are
small: some 200 bytes each, a million read in a few seconds)."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Iterator

from services.archive.evidence import iso_utc, spreadsheet_safe
from services.archive.store import Store
from services.policy.audit import HEAD_KEY

CSV_COLUMNS = ("seq", "time", "who", "role", "action", "details", "hash")


@dataclass(frozen=True)
class AuditFilter:
    """Entries whose action is `action` (exactly), whose actor is `who` (exactly), and
    whose time is in [since, until) (epoch seconds); None: any."""
    action: str | None = None
    who: str | None = None
    since: float | None = None
    until: float | None = None

    def matches(self, entry: dict) -> bool:
        return ((self.action is None or entry.get("action") == self.action)
                and (self.who is None or entry.get("who") == self.who)
                and (self.since is None or entry.get("time", 0) >= self.since)
                and (self.until is None or entry.get("time", 0) < self.until))


@dataclass(frozen=True)
class AuditPage:
    entries: list[dict]  # newest first
    total: int           # entries the filter matches
    offset: int


def newest_first(store: Store, batch: int = 1000) -> Iterator[dict]:
    """Every entry, newest first. Read `batch` entries per read transaction, none of which
    stays open while the caller has an entry: the generator may be resumed from any
    thread (an LMDB transaction belongs to its thread)."""
    before, exhausted = None, False
    while not exhausted:
        chunk = []
        with store.env.begin() as txn, txn.cursor(db=store.db["audit"]) as cursor:
            found = cursor.set_key(before) and cursor.prev() if before else cursor.last()
            while found and len(chunk) < batch:
                if cursor.key() != HEAD_KEY:
                    chunk.append((cursor.key(), cursor.value()))
                found = cursor.prev()
            exhausted = not found
        if chunk:
            before = chunk[-1][0]
        yield from (json.loads(value) for _, value in chunk)


def page(store: Store, chosen: AuditFilter, offset: int, limit: int) -> AuditPage:
    """`limit` entries the filter matches, newest first, after skipping `offset` of them;
    with the count of all it matches."""
    entries, total = [], 0
    for entry in newest_first(store):
        if chosen.matches(entry):
            if offset <= total < offset + limit:
                entries.append(entry)
            total += 1
    return AuditPage(entries, total, offset)


def actions_and_actors(store: Store) -> tuple[list[str], list[str]]:
    """The actions and the actors the log holds, sorted (for the filter's choices)."""
    actions, actors = set(), set()
    for entry in newest_first(store):
        actions.add(entry.get("action", ""))
        actors.add(entry.get("who", ""))
    return sorted(actions - {""}), sorted(actors - {""})


def csv_lines(store: Store, chosen: AuditFilter) -> Iterator[str]:
    """The entries the filter matches as CSV lines (RFC 4180, header first), newest
    first as the page shows them. Times are ISO 8601 UTC, details JSON; cells a
    spreadsheet would take for a formula get a leading '."""
    yield _csv_row(CSV_COLUMNS)
    for entry in newest_first(store):
        if chosen.matches(entry):
            yield _csv_row([entry.get("seq"), iso_utc(entry.get("time")), entry.get("who"),
                            entry.get("role"), entry.get("action"),
                            json.dumps(entry.get("details", {}), sort_keys=True,
                                       ensure_ascii=False), entry.get("hash")])


def _csv_row(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([spreadsheet_safe(v) for v in values])
    return buffer.getvalue()
