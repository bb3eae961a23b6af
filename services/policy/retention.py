"""Retention: delete mail older than its policy allows, never mail under a litigation hold.

Policies (replicated): a global one in days, and per saved search in days, which overrides
the global one for the mail the search matches; where several saved searches match, the
longest wins. A message kept N days expires once N*24 hours have passed since its retention
started (services.policy.retention_clock): for mail received live (SMTP journaling, journal
mailboxes) its arrival, never its Date header, which the sender writes and could set to 1971
to have their mail deleted at the next run, or to 2199 to keep it forever; for imported mail
its message date, no later than its import; a mirror copy counts as its origin does.
Retention is off until enabled.

Deletion goes in batches. Each batch is checked against the holds, then deleted in a
transaction that first checks the holds did not change meanwhile (else it is re-checked),
so a hold added while a run is going still protects its mail, and so does an edit
widening the saved search a hold is built on (it moves the holds generation too). A change
of the retention settings moves it as well, and the re-check reads them anew: a batch is
deleted only if retention is still enabled and the batch still expired under them.
A mirror peer's copy is kept until the peer's holds are known to hold nothing of it that
is not recorded here (services.policy.peer_copies); a deletion also checks that no peer's
copy of a message in it arrived since the batch was checked (it would be such a copy).
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import xapian

from firmware.errors import ArchiverError

from services.policy import audit, holds, peer_copies, retention_values
from services.policy.audit import Actor
from services.archive import dates
from services.archive.index import id_term
from services.archive.index_reader import open_index, read_consistently, reopen
from services.archive.index_walk import chunks_of
from services.policy.replicated import Replicated
from services.policy.retention_clock import retention_start
from services.policy.saved_searches import matching_in, query_of
from services.archive.search import parse
from services.archive.space import is_out_of_space
from services.archive.store import DeletionConflict, Store

log = logging.getLogger(__name__)
ENABLED, GLOBAL, SAVED_PREFIX = (retention_values.ENABLED, retention_values.GLOBAL,
                                 retention_values.SAVED_PREFIX)
KEPT = math.inf  # the days of a saved search's policy that cannot be read: its mail is kept
BATCH = 500
# Stored messages whose expiry is read from the index on one revision. The indexer commits
# every FOLLOW_COMMIT_SECONDS (0.5 s) under steady intake, a backlog as fast as it writes
# (some 0.3 s per commit on 2 cores, services.archive.indexer), and a revision is discarded
# two commits on, so each read must be short: measured, about 10 ms per saved search with a
# policy for CHUNK messages (2 shared cores), so twenty such searches still read in 0.2 s,
# and an overtaken chunk is all that is read again.
CHUNK = 1000
DAY = 86400


@dataclass
class RunReport:
    enabled: bool
    dry_run: bool
    examined: int = 0
    expired: int = 0
    held: int = 0
    not_indexed: int = 0
    deleted: int = 0
    deleted_digests: list[str] = field(default_factory=list)
    # A peer's hold or saved search came before its records (Replicated._await_records):
    # nothing was deleted; the next run after the exchange of records deletes.
    waiting_for_hold_records: bool = False
    # Saved search -> why its policy cannot be applied (unusable_policies): nothing was
    # deleted, since its mail might be meant to outlive the global policy.
    unusable_policies: dict[str, str] = field(default_factory=dict)
    # Peer node id -> expired copies from it kept (among `held`) only because that peer's
    # holds are not known here yet (services.policy.peer_copies): kept until an exchange
    # of hold records with the peer ends with it holding no superseded query.
    kept_for_peers: dict[str, int] = field(default_factory=dict)


def policies(replicated: Replicated) -> dict:
    """{"enabled": bool, "global_days": int or None, "saved": {saved search: int or None},
    "unusable": {saved search: why its policy cannot be applied (unusable_policies)}}.

    A stored value of another shape (retention_values; only one stored before values were
    checked can be) reads fail-safe, with a warning: "enabled" only when it is true, no
    global policy, and None for a saved search's, whose mail a run then keeps (KEPT)."""
    enabled, global_days = replicated.get(ENABLED, False), replicated.get(GLOBAL)
    saved = replicated.items(SAVED_PREFIX)
    for key, value in [(ENABLED, enabled), (GLOBAL, global_days), *saved.items()]:
        problem = None if value is None else retention_values.problem(key, value)
        if problem is not None:
            log.warning("retention setting %s is unreadable (%s); read as %s", key, problem,
                        "off" if key == ENABLED else "no policy" if key == GLOBAL
                        else "keeping the mail its saved search matches")
    names = [key[len(SAVED_PREFIX):] for key in saved]
    return {"enabled": retention_values.readable_enabled(enabled),
            "global_days": retention_values.readable_days(global_days),
            "saved": {name: retention_values.readable_days(saved[SAVED_PREFIX + name])
                      for name in names},
            "unusable": _policy_queries(replicated, names)[1]}


def _policy_queries(replicated: Replicated, names) -> tuple[dict[str, str], dict[str, str]]:
    """({saved search: its query}, {saved search: why not}) for the saved searches named,
    which policies are built on. A policy cannot be applied when its saved search is gone
    (a peer deleted it while this one set a policy on it: both changes are merged), cannot
    be read, or its query does not parse here (a peer's)."""
    queries, unusable = {}, {}
    for name in names:
        try:
            queries[name] = query_of(replicated, name)
            parse(queries[name])
        except ArchiverError as why:  # UnknownSavedSearch, QuerySyntaxError among them
            queries.pop(name, None)
            unusable[name] = str(why)
    return queries, unusable


def unusable_in_words(unusable: dict[str, str]) -> str:
    """RunReport.unusable_policies as one sentence, for the log and the CLI."""
    return "; ".join(f"the policy on saved search {name!r} cannot be applied ({why})"
                     for name, why in sorted(unusable.items()))


def set_global(replicated: Replicated, days: int | None, also: Callable | None = None
               ) -> None:
    """The global policy of `days` (None: none); `also(txn)` writes more in its
    transaction (the change's audit entry)."""
    _check_days(days)
    replicated.put(GLOBAL, days, also=also) if days is not None \
        else replicated.delete(GLOBAL, also=also)


def set_saved(replicated: Replicated, name: str, days: int | None,
              also: Callable | None = None) -> None:
    """A policy of `days` on saved search `name`; None removes it, even when the saved
    search is gone (unusable_policies). `also(txn)` as set_global's."""
    _check_days(days)
    if days is not None:
        query_of(replicated, name)  # the saved search must exist
    key = SAVED_PREFIX + name
    replicated.put(key, days, also=also) if days is not None \
        else replicated.delete(key, also=also)


def check_days(days: int | None) -> None:
    """ValueError for days no policy can have (None, no policy, passes)."""
    _check_days(days)


def _check_days(days: int | None) -> None:
    problem = None if days is None else retention_values.days_problem(days)
    if problem is not None:
        raise ValueError(f"retention in days: {problem}")


def run(store: Store, index_dir: Path, replicated: Replicated, actor: Actor,
        dry_run: bool = False, now: float | None = None, timezone: str = "UTC",
        proposed: dict | None = None, progress: Callable[[int], None] | None = None
        ) -> RunReport:
    """`timezone`: the appliance's (IANA name); saved searches' days are its days, as in
    a search, so a hold covers exactly what its search shows. `proposed` (dry runs only):
    policies as policies() gives them, to be asked instead of the ones in force: what a
    change would delete before it is made. `progress(count)`: told of each chunk of
    stored messages examined (count messages). Raises xapian.DatabaseModifiedError when
    the indexer overtook one chunk's read for PATIENCE_SECONDS."""
    if proposed is not None and not dry_run:
        raise ValueError("proposed policies are only for a dry run")
    now = time.time() if now is None else now
    settings = proposed if proposed is not None else policies(replicated)
    report = RunReport(enabled=settings["enabled"], dry_run=dry_run)
    if not dry_run:  # even with retention off: what they hold is kept by records then
        _settle_superseded(replicated, index_dir, timezone)
    if not settings["enabled"] and not dry_run:
        return report
    if _waits_for_records(replicated, report):
        return report
    queries, report.unusable_policies = _policy_queries(replicated, settings["saved"])
    if report.unusable_policies:
        log.warning("retention deletes nothing: %s",
                    unusable_in_words(report.unusable_policies))
        return report
    # One index for the whole run, held (services.archive.index_hold): the scan and the
    # deletions' hold checks read the same one, though the run may last past a switch.
    database = open_index(index_dir)
    if database is None:  # nothing indexed: nothing can be judged
        return report
    try:
        expired = _expired(store, database, queries, settings, now, report, timezone,
                           progress)
        report.expired = len(expired)
        for start in range(0, len(expired), BATCH):
            _delete_batch(store, database, replicated, expired[start:start + BATCH], now,
                          report, actor, timezone)
            if report.waiting_for_hold_records:
                break
    finally:
        database.close()
    return report


def _settle_superseded(replicated: Replicated, index_dir: Path, timezone: str) -> None:
    """Record what held saved searches matched before they changed, once the index has
    caught up (holds.settle_superseded); until then they hold by query (_held)."""
    try:
        holds.settle_superseded(replicated, index_dir, timezone)
    except (ArchiverError, xapian.Error) as why:  # still held by query: nothing is lost
        log.warning("the queries held saved searches had before they changed are not "
                    "recorded yet (%s); they keep holding by query", why)


def _waits_for_records(replicated: Replicated, report: RunReport) -> bool:
    """Whether a run must delete nothing now: a peer's hold or saved search awaits its
    records (a dry run still says what it would delete)."""
    if report.dry_run or not replicated.records_pending():
        return False
    log.warning("retention waits: a mirror peer's holds or saved searches came before "
                "their hold records; nothing is deleted until the records are exchanged")
    report.waiting_for_hold_records = True
    return True


def _expired(store, database, queries, settings, now, report, timezone, progress
             ) -> list[str]:
    """Digests past their retention, in the store's order; unindexed mail is left alone
    (it cannot yet be told whether a longer policy or a hold covers it). Read CHUNK stored
    messages at a time from `database` (the run's, open), each chunk on one revision of
    the index (see _judged)."""
    saved_days = {name: KEPT if days is None else days
                  for name, days in settings["saved"].items()}
    expired = []
    for examined, indexed, applying in chunks_of(
            database, store.digests(), lambda database, chunk: (len(chunk), *_judged(
                database, chunk, queries, saved_days, timezone, now)), CHUNK):
        report.examined += examined
        report.not_indexed += examined - len(indexed)
        for digest in indexed:
            days = applying.get(digest, settings["global_days"])
            if days is not None and now - retention_start(store.meta(digest)) >= days * DAY:
                expired.append(digest)
        if progress is not None:
            progress(examined)
    return expired


def _judged(database, chunk, queries, saved_days, timezone, now
            ) -> tuple[list[str], dict[str, float]]:
    """Of `chunk` (digests), read on the one revision `database` is at: those indexed, and
    for those some saved search with a policy matches, the longest of its days. One
    revision for both, so mail indexed meanwhile is never judged indexed by one revision
    and unmatched by an older one (the global policy instead of its search's longer one)."""
    indexed = [digest for digest in chunk if database.term_exists(id_term(digest))]
    applying: dict[str, int] = {}
    for name, query in queries.items():
        for digest in matching_in(database, query, timezone, now, among=indexed):
            applying[digest] = max(applying.get(digest, 0), saved_days[name])
    return indexed, applying


def _held(database: xapian.Database, replicated: Replicated, batch: list[str], now: float,
          timezone: str) -> tuple[set[str], dict[str, set[str]]]:
    """Which of `batch` (digests) the holds in force keep: what their searches match, and
    what they recorded (looked up, digest by digest); and the mirror peers' copies whose
    peer may still hold them by a query not recorded yet (peer_copies.awaiting), all in
    the set; and apart, by peer node id, those kept only for that."""
    by_holds = _held_by_holds(database, replicated, batch, now, timezone)
    for_peers = peer_copies.awaiting_by_peer(
        replicated.store, [digest for digest in batch if digest not in by_holds])
    return by_holds.union(*for_peers.values()), for_peers


def _held_by_holds(database: xapian.Database, replicated: Replicated, batch: list[str],
                   now: float, timezone: str) -> set[str]:
    today = dt.datetime.fromtimestamp(now, dates.zone(timezone)).date()
    in_force = holds.active(replicated, today)
    hold_ids = [hold_id for hold_id, _ in in_force]
    held = holds.recorded_among(replicated, hold_ids, batch)
    for _, query_text in in_force:
        held |= matching_in(database, query_text, timezone, now, among=batch)
    for query_text in holds.superseded_queries(replicated, hold_ids):
        try:
            held |= matching_in(database, query_text, timezone, now, among=batch)
        except ArchiverError:  # an old query this release cannot read: keep them all
            held |= set(batch)
    return held


def _delete_batch(store, database, replicated, batch, now, report, actor, timezone) -> None:
    while True:
        if _waits_for_records(replicated, report):
            return
        reopen(database)  # see mail indexed since the run began
        generation = replicated.holds_generation()
        copied = peer_copies.copy_peers(store, batch)  # before the check that reads them
        held, for_peers = read_consistently(database, lambda database: _held(
            database, replicated, batch, now, timezone))
        doomed = [digest for digest in batch if digest not in held]
        if not report.dry_run:  # the settings now, read after the generation
            doomed = read_consistently(database, lambda database: _still_expired(
                store, database, replicated, doomed, now, timezone))
        if report.dry_run:
            _count_kept_for_peers(report, for_peers)
            report.held += len(batch) - len(doomed)
            report.deleted_digests += doomed
            report.deleted += len(doomed)
            return
        try:
            # ... and no peer's copy of a doomed message stored here came meanwhile
            deleted = store.delete(doomed, still_valid=lambda txn:
                                   replicated.holds_generation(txn) == generation
                                   and not replicated.records_pending(txn)
                                   and _no_new_copies(store, txn, doomed, copied),
                                   also=lambda txn, deleted: _audit_deletion(store, txn, actor,
                                                                             deleted))
        except DeletionConflict:
            continue  # a hold changed between the check and the deletion: check again
        _count_kept_for_peers(report, for_peers)
        report.held += len(batch) - len(doomed)
        report.deleted += len(deleted)
        report.deleted_digests += [meta["digest"] for meta in deleted]
        return


def _no_new_copies(store, txn, doomed: list[str], copied: dict[str, frozenset[str]]) -> bool:
    """Whether none of `doomed` became a copy from another peer in `txn` since `copied`
    (peer_copies.copy_peers) was read."""
    now = peer_copies.copy_peers(store, doomed, txn)
    return all(peers <= copied.get(digest, frozenset()) for digest, peers in now.items())


def _count_kept_for_peers(report: RunReport, for_peers: dict[str, set[str]]) -> None:
    for node, digests in for_peers.items():
        report.kept_for_peers[node] = report.kept_for_peers.get(node, 0) + len(digests)


def kept_for_peers_in_words(kept: dict[str, int]) -> str:
    """RunReport.kept_for_peers as one sentence, for the log and the CLI."""
    return "; ".join(
        f"{count} expired cop{'y' if count == 1 else 'ies'} from mirror peer {node} kept until "
        "an exchange of hold records with it ends with its holds holding no superseded query "
        "(a peer away, removed or not mirrored with keeps them)"
        for node, count in sorted(kept.items()))


def _still_expired(store, database, replicated, digests, now, timezone) -> list[str]:
    """Those of `digests` expired under the retention settings now (read anew: an admin
    may have disabled retention or lengthened a policy since the run judged them); none
    when retention is off or a policy cannot be applied."""
    settings = policies(replicated)
    if not settings["enabled"] or not digests:
        return []
    queries, unusable = _policy_queries(replicated, settings["saved"])
    if unusable:
        return []
    saved_days = {name: KEPT if days is None else days
                  for name, days in settings["saved"].items()}
    indexed, applying = _judged(database, digests, queries, saved_days, timezone, now)
    return [digest for digest in indexed if digest in store
            and (days := applying.get(digest, settings["global_days"])) is not None
            and now - retention_start(store.meta(digest)) >= days * DAY]


def _audit_deletion(store, txn, actor, deleted: list[dict]) -> None:
    """The audit entry of a deletion, in its transaction: a crash never leaves mail deleted
    without the entry that says so."""
    if deleted:
        audit.record_in(store, txn, actor, "delete", reason="retention", count=len(deleted),
                        digests=[meta["digest"] for meta in deleted])


LAST_RUN_SETTING = "retention.last_run"  # node-local: each appliance runs its own
WEEK = 7 * DAY
FULL_RETRY_SECONDS = 300  # a run that found its disk full tries again this much later
SCHEDULER = Actor("retention-schedule", "admin")


def run_if_due(store: Store, index_dir: Path, replicated: Replicated,
               now: float | None = None, timezone: str = "UTC") -> RunReport | None:
    """The weekly run of `archiver run` (the systemd timer does the same on an appliance):
    runs when a week has passed since the last run, by whichever means it ran."""
    now = time.time() if now is None else now
    if now - store.setting(LAST_RUN_SETTING, 0) < WEEK:
        return None
    report = run(store, index_dir, replicated, SCHEDULER, now=now, timezone=timezone)
    store.set_setting(LAST_RUN_SETTING, now)
    return report


def run_weekly(store: Store, index_dir_of, replicated: Replicated, stop, check_seconds=3600,
               timezone: str = "UTC"):
    """Until `stop` is set: every `check_seconds`, run retention if it is due. A run that
    finds no room to write (a full disk) is logged in one line and tried again within
    FULL_RETRY_SECONDS."""
    while True:
        wait = check_seconds
        try:
            run_if_due(store, index_dir_of(), replicated, timezone=timezone)
        except Exception as exc:  # a failed run is retried later, not fatal to intake
            if not is_out_of_space(exc, store.path):
                log.exception("the scheduled retention run failed")
            else:  # nothing to trace: it goes on once there is room
                log.warning("the scheduled retention run waits for room: %s", exc)
                wait = min(check_seconds, FULL_RETRY_SECONDS)
        if stop.wait(timeout=wait):
            return
