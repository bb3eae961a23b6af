"""Saved searches: a name and a query, replicated to mirror peers. Retention policies and
litigation holds are defined on them, so permissions follow effects: a saved search that a
hold or a retention policy is built on is changed only by whoever may change that hold or
policy (an admin), never by an auditor who may only add holds."""
from __future__ import annotations

import json
import time
import unicodedata
from pathlib import Path
from typing import Collection, Iterator, Sequence

import xapian

from firmware.errors import ArchiverError

from services.policy import hold_values
from services.policy.audit import Actor, PermissionDenied
from services.policy.replicated import Replicated
from services.archive.index import id_term
from services.archive.index_walk import document_ids, read_spans, within
from services.archive.search import parse, unranked

PREFIX = "saved:"
DOT_SEGMENTS = {".", ".."}
# Who may change what holds and retention policies are built on: who may change those.
GOVERNING_ROLE = "admin"


class UnknownSavedSearch(ArchiverError):
    pass


def save(replicated: Replicated, name: str, query: str, actor: Actor, also=None
         ) -> str | None:
    """Save `query` under `name`; returns the query it had before (None: a new one).
    Raises ArchiverError for a bad name or query, PermissionDenied when a hold or retention
    policy is built on the search and `actor` is not an admin. The caller audits, in the
    change's transaction if it gives `also(txn, old query or None)`."""
    before = replicated.get(PREFIX + name)
    check(name, query, stored=before is not None)
    check_may_change(replicated, name, actor)
    old = before["query"] if before else None
    replicated.put(PREFIX + name, {"query": query},
                   also=None if also is None else lambda txn: also(txn, old))
    return old


JOINERS = "\u200c\u200d"  # zero-width non-joiner (Persian...), zero-width joiner (emoji)


def check(name: str, query: str, stored: bool = False) -> None:
    """ArchiverError, with the reason, for a bad name or a query that does not parse.
    `stored`: a saved search of that name exists (saved before the rules on look-alike
    names: it keeps its name, and its query may still be changed)."""
    if not name.strip() or ":" in name:
        raise ArchiverError(f"saved search name {name!r}: expected a non-empty name without ':'")
    if not stored and _looks_like_another(name):
        # Invisible characters (zero-width space, a right-to-left override) and decomposed
        # accents make a name that looks like another's: an admin could pick the wrong one
        # to hold or to set retention on.
        raise ArchiverError(f"saved search name {name!r}: expected no control or invisible "
                            "characters, accents composed (Unicode NFC)")
    if DOT_SEGMENTS & set(name.split("/")):
        # A name is the last part of its API paths (/api/saved-searches/NAME); HTTP
        # clients resolve "." and ".." there before sending (RFC 3986 5.2.4), so such a
        # name could steer a request for it to another path (another endpoint).
        raise ArchiverError(f"saved search name {name!r}: expected no '.' or '..' between "
                            "slashes")
    parse(query)


def _looks_like_another(name: str) -> bool:
    """Whether `name` holds control or invisible characters, or accents not composed
    (Unicode NFC). The joiners some scripts and emoji need (ZWNJ U+200C, ZWJ U+200D) are
    no reason."""
    return unicodedata.normalize("NFC", name) != name or any(
        unicodedata.category(c) in ("Cc", "Cf") and c not in JOINERS for c in name)


def dependents(replicated: Replicated, name: str) -> list[str]:
    """What is built on saved search `name`, in words: "hold ID", "retention policy"."""
    found = [f"hold {key.split(':', 1)[1]}" for key, hold in replicated.items("hold:").items()
             if hold_values.shown(hold)["saved"] == name]
    if replicated.get(f"retention:saved:{name}") is not None:
        found.append("retention policy")
    return found


def check_may_change(replicated: Replicated, name: str, actor: Actor) -> None:
    """PermissionDenied unless `actor` may change saved search `name`: anyone with the role
    to save searches, unless a hold or retention policy is built on it (then an admin)."""
    built_on = dependents(replicated, name)
    if built_on and actor.role != GOVERNING_ROLE:
        raise PermissionDenied(
            f"saved search {name!r} is what {', '.join(built_on)} is built on: only an "
            f"{GOVERNING_ROLE} may change it ({actor.name} is {actor.role})")


def all_saved(replicated: Replicated) -> dict[str, str]:
    return {key[len(PREFIX):]: value["query"] for key, value in replicated.items(PREFIX).items()}


def query_of(replicated: Replicated, name: str) -> str:
    saved = replicated.get(PREFIX + name)
    if saved is None:
        raise UnknownSavedSearch(f"no saved search named {name!r}")
    if not isinstance(saved, dict) or not isinstance(saved.get("query"), str):
        # stored before a peer's saved searches were checked (Replicated.refusal)
        raise ArchiverError(f'saved search {name!r} is unreadable: expected {{"query": text}}')
    return saved["query"]


def delete(replicated: Replicated, name: str, also=None) -> None:
    """Delete a saved search no hold and no retention policy is defined on; `also(txn)`,
    if given, writes more in its transaction (its audit entry)."""
    query_of(replicated, name)
    holding = [key for key, hold in replicated.items("hold:").items()
               if hold_values.shown(hold)["saved"] == name]
    if holding:
        raise ArchiverError(f"saved search {name!r} is held by {', '.join(holding)}; "
                            "remove the hold first")
    if replicated.get(f"retention:saved:{name}") is not None:
        raise ArchiverError(f"saved search {name!r} has a retention policy; remove it first "
                            "(archiver retention set --saved NAME --days none)")
    replicated.delete(PREFIX + name, also=also)


def matching(index_dir: Path, query: str, timezone: str = "UTC", now: float | None = None
             ) -> set[str]:
    """The digests of every indexed message `query` matches (none when nothing is indexed),
    read index_walk.SPAN document ids at a time, each span on one revision, up to the
    newest document when the walk ends: mail indexed while it goes on is in it too. Dates
    as matching_in takes them, relative ones as of `now` for every span. Raises
    QuerySyntaxError, xapian.DatabaseModifiedError when the indexer overtook one span's
    read for index_reader.PATIENCE_SECONDS."""
    found: set[str] = set()
    for digests in matching_spans(index_dir, query, timezone, now):
        found |= digests
    return found


def matching_spans(index_dir: Path, query: str, timezone: str = "UTC",
                   now: float | None = None) -> Iterator[set[str]]:
    """matching(), a span at a time: the digests `query` matches among each
    index_walk.SPAN document ids in turn (each match in one span only), so that a caller
    that writes them as it goes holds one span, not every match. Raises as matching()."""
    now = time.time() if now is None else now
    yield from read_spans(index_dir, lambda database, ids: matching_in(
        database, query, timezone, now, documents=ids), follow=True)


def matching_in(database: xapian.Database, query: str, timezone: str = "UTC",
                now: float | None = None, among: Collection[str] | None = None,
                documents: Sequence[int] | None = None) -> set[str]:
    """The digests `query` matches in `database`, dates as days in `timezone` and relative
    ones as of `now` (epoch seconds; None: now); with `among` (digests), only those of
    them it matches: a read as short as `among` is small, whatever the query matches in
    all; with `documents` (ascending document ids, index_walk), only those documents.
    Raises QuerySyntaxError."""
    parsed = parse(query, database, timezone, now)
    if documents is not None:
        parsed = within(database, parsed, documents)
    if among is not None:
        return _matching_among(database, parsed, among)
    at_most = len(documents) if documents is not None else database.get_doccount()
    return {json.loads(match.document.get_data())["digest"]
            for match in _matches(database, parsed, at_most)}


def count_in(database: xapian.Database, query: str, documents: Sequence[int],
             named: Sequence[int] = (), timezone: str = "UTC", now: float | None = None
             ) -> int:
    """How many of the documents `documents` (ascending ids) in `database` `query` matches
    (dates as matching_in takes them) or `named` (ascending ids) names: each document once,
    no document read. Raises QuerySyntaxError."""
    either = xapian.Query(xapian.Query.OP_OR, parse(query, database, timezone, now),
                          within(database, xapian.Query.MatchAll, named))
    return _matches(database, within(database, either, documents), len(documents)).size()


def count_without(database: xapian.Database, queries: Sequence[str],
                  documents: Sequence[int], named: Sequence[int], excluded: Sequence[int],
                  timezone: str = "UTC", now: float | None = None) -> int:
    """As count_in, with any of `queries` matching, and none of the documents `excluded`
    (ascending ids: of mail deleted since, an index behind on deletions still has them)
    counted. No document read. Raises QuerySyntaxError."""
    either = xapian.Query(xapian.Query.OP_OR, [
        *(parse(query, database, timezone, now) for query in queries),
        within(database, xapian.Query.MatchAll, named)])
    if excluded:
        either = xapian.Query(xapian.Query.OP_AND_NOT, either,
                              within(database, xapian.Query.MatchAll, excluded))
    return _matches(database, within(database, either, documents), len(documents)).size()


def _matches(database: xapian.Database, parsed: xapian.Query, at_most: int) -> xapian.MSet:
    """Up to `at_most` documents `parsed` matches, in no order that means anything
    (search.unranked: not BoolWeight, which a term in every document of a shard with
    deletions makes fail)."""
    return unranked(database, parsed).get_mset(0, max(at_most, 1))


def _matching_among(database: xapian.Database, parsed: xapian.Query, among: Collection[str]
                    ) -> set[str]:
    """Which of `among` (digests) `parsed` matches, told by document id (no document read);
    digests not indexed match nothing."""
    ids = document_ids(database, among)
    if not ids:
        return set()
    parsed = xapian.Query(xapian.Query.OP_FILTER, parsed, xapian.Query(
        xapian.Query.OP_OR, [xapian.Query(id_term(digest)) for digest in ids.values()]))
    return {ids[match.docid] for match in _matches(database, parsed, len(ids))}
