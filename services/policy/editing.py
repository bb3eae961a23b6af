"""Changing a saved search, and all that follows from it, in one place: whether the actor
may (saved_searches.check_may_change: an admin, when a hold or retention policy is built
on it), the holds on it recording what it matches before it changes (so an edit widens a
hold, never shrinks it), and the audit entry with the old and the new query, written in
the change's transaction (a crash never leaves the change without its entry). The API, the
web pages and the CLI all change saved searches through here."""
from __future__ import annotations

from pathlib import Path

from services.archive.store import Store
from services.policy import audit, holds, saved_searches
from services.policy.audit import Actor
from services.policy.replicated import Replicated


def save_search(store: Store, index_dir: Path, name: str, query: str, actor: Actor,
                timezone: str = "UTC") -> None:
    """Save `query` as `name`; holds on it first record what it matches now, its days
    being days in `timezone` (the appliance's). Raises ArchiverError for a bad name or
    query and PermissionDenied when `actor` may not change it (before anything is changed)."""
    replicated = Replicated(store)
    saved_searches.check(name, query, stored=replicated.get(saved_searches.PREFIX + name)
                         is not None)
    saved_searches.check_may_change(replicated, name, actor)
    built_on = saved_searches.dependents(replicated, name)
    recorded = holds.keep_current_matches(replicated, index_dir, name, timezone)
    saved_searches.save(replicated, name, query, actor, also=lambda txn, before: audit.record_in(
        store, txn, actor, "saved-search", name=name, query=query, old_query=before,
        built_on=built_on, newly_recorded_by_holds=recorded))
