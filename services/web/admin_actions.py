"""What the review and administration pages do besides reading mail: act on a chosen set
of messages (save as a search, place on hold), show holds with what they cover, preview
a retention change, manage accounts, read the audit log. Each change writes its audit
entry here, as services.web.actions does. Functions block; handlers run them in threads.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import time

from services.appliance import users
from services.appliance.users import User
from services.archive import dates
from services.archive.archive import Archive
from services.archive.query import QUERY_LIMIT
from services.archive.search import parse
from services.policy import (audit, audit_anchor, audit_search, hold_coverage, holds, retention,
                             saved_searches)
from services.policy.replicated import Replicated
from services.web.actions import BadRequest, add_hold, check_hold, delete_saved, save_search

DIGEST = re.compile(r"[0-9a-f]{64}")
# "digest:" + 64 hex digits + " OR ": so many fit in the longest query the syntax takes.
MAX_CHOSEN = (QUERY_LIMIT + len(" OR ")) // len("digest:" + "0" * 64 + " OR ")
PREVIEW_SAMPLE = 20
AUDIT_PAGE = 100
log = logging.getLogger(__name__)


# -- a chosen set of messages --------------------------------------------------------------

def chosen_query(query: str | None, digests: list[str] | None) -> str:
    """The query that finds exactly what was chosen: the digests ticked (digest:A OR
    digest:B ...), else the search's query. Raises BadRequest."""
    if digests is None:
        parse(query or "")  # QuerySyntaxError says what is wrong
        return query or ""
    if not digests:
        raise BadRequest("no message chosen: tick some, or choose all the results")
    bad = [digest for digest in digests if not DIGEST.fullmatch(digest)]
    if bad:
        raise BadRequest(f"not a message digest: {bad[0][:80]!r}")
    unique = list(dict.fromkeys(digests))
    if len(unique) > MAX_CHOSEN:  # the query of their digests must stay a query
        raise BadRequest(f"{len(unique)} messages ticked: a saved search or hold of ticked "
                         f"messages takes at most {MAX_CHOSEN}; choose all the results of a "
                         "narrower search instead")
    return " OR ".join(f"digest:{digest}" for digest in unique)


def save_chosen(archive: Archive, user: User, name: str, query: str | None,
                digests: list[str] | None, timezone: str) -> str:
    """Save what was chosen as a search named `name` (its days in `timezone`, the
    appliance's, as the search page showed them); returns its query."""
    chosen = chosen_query(query, digests)
    save_search(archive, user, name, chosen, timezone)
    return chosen


def hold_chosen(archive: Archive, user: User, matter: str, reason: str, until: str | None,
                query: str | None, digests: list[str] | None,
                timezone: str) -> tuple[str, str]:
    """Place what was chosen on hold for a matter: a saved search named after the matter
    (made unique) holds it, its days (and `until`) read in `timezone`, the appliance's, as
    the search page showed them. Returns (the saved search's name, the hold's id). A refused
    request leaves nothing behind: what add_hold would refuse is refused before the search
    is saved, and should the hold fail all the same (the index changing under it, a
    peer's hold taking its id), the saved search made for it is deleted (audited)."""
    matter = " ".join(matter.split())
    if not matter:
        raise BadRequest("give the matter's name: a hold says what it is for")
    chosen = chosen_query(query, digests)
    check_hold(until, matter, reason or None, timezone)
    name = _unused_name(archive, f"hold {matter.replace(':', ' ')}"[:80])
    save_search(archive, user, name, chosen, timezone)
    try:
        return name, add_hold(archive, user, name, until, matter, reason or None, timezone)
    except Exception:
        _forget_saved(archive, user, name)
        raise


def _forget_saved(archive: Archive, user: User, name: str) -> None:
    """Delete saved search `name`, made for a hold that failed; if it cannot be (a peer
    built on it meanwhile), it stays, logged, and the hold's own error is what is told."""
    try:
        delete_saved(archive, user, name)
    except Exception:
        log.warning("saved search %r, made for a hold that failed, could not be deleted",
                    name, exc_info=True)


def _unused_name(archive: Archive, wanted: str) -> str:
    taken = set(saved_searches.all_saved(Replicated(archive.store)))
    name, number = wanted, 1
    while name in taken:
        number += 1
        name = f"{wanted} ({number})"
    return name


# -- holds -----------------------------------------------------------------------------------

def holds_with_coverage(archive: Archive, timezone: str) -> list[dict]:
    """Every hold, newest first, with its saved search's query, how many messages it
    covers ("covers") and whether it is in force today."""
    replicated = Replicated(archive.store)
    today = dt.datetime.now(dates.zone(timezone)).date()
    found = []
    for hold_id, hold in sorted(holds.all_holds(replicated).items(),
                                key=lambda item: -(item[1]["created"] or 0)):
        found.append({"id": hold_id, **hold, "query": hold_coverage.hold_query(replicated, hold),
                      "covers": hold_coverage.covered(replicated, archive.live_index_link(),
                                                      hold_id, hold, timezone),
                      "in_force": holds.in_force(hold, today)})
    return found


def holds_covering(archive: Archive, user: User, digest: str, timezone: str) -> list[dict]:
    """The holds in force that cover a message; none for a user (holds are staff's)."""
    if user.role not in ("admin", "auditor"):
        return []
    return hold_coverage.covering(Replicated(archive.store), archive.index_dir(), digest,
                                  timezone)


# -- retention ---------------------------------------------------------------------------

def retention_preview(archive: Archive, user: User, proposed: dict, timezone: str) -> dict:
    """What the retention policies `proposed` ({"enabled", "global_days", "saved": {name:
    days}}, as retention.policies gives them) would delete if they ran now: {"count",
    "held", "examined", "not_indexed", "sample": [metadata of PREVIEW_SAMPLE of them],
    "unusable_policies": {saved search: why its policy cannot be applied},
    "kept_for_peers": {peer node id: expired copies kept for its holds, among "held"}}."""
    if not proposed.get("enabled"):
        return {"count": 0, "held": 0, "examined": 0, "not_indexed": 0, "sample": [],
                "off": True, "unusable_policies": {}, "kept_for_peers": {}}
    report = retention.run(archive.store, archive.index_dir(), Replicated(archive.store),
                           user.actor, dry_run=True, timezone=timezone, proposed=proposed)
    sample = []
    for digest in report.deleted_digests[:PREVIEW_SAMPLE]:
        try:
            sample.append(archive.store.meta(digest))
        except KeyError:
            continue
    audit.record(archive.store, user.actor, "retention-preview", proposed=proposed,
                 would_delete=report.deleted)
    return {"count": report.deleted, "held": report.held, "examined": report.examined,
            "not_indexed": report.not_indexed, "sample": sample, "off": False,
            "unusable_policies": report.unusable_policies,
            "kept_for_peers": report.kept_for_peers}


# -- accounts ----------------------------------------------------------------------------

def all_users(archive: Archive) -> list[User]:
    return users.all_users(archive)


def add_user(archive: Archive, admin: User, name: str, role: str, emails: list[str],
             password: str) -> None:
    users.add(archive, name, role, emails, password)
    audit.record(archive.store, admin.actor, "user-add", name=name, role=role, emails=emails)


def set_role(archive: Archive, admin: User, name: str, role: str) -> None:
    users.set_role(archive, name, role)
    audit.record(archive.store, admin.actor, "user-role", name=name, role=role)


def reset_password(archive: Archive, admin: User, name: str, password: str) -> None:
    """Set another account's password (its sessions end)."""
    if users.get(archive, name) is None:
        raise BadRequest(f"there is no user named {name!r}")
    users.set_password(archive, name, password)
    audit.record(archive.store, admin.actor, "user-passwd", name=name, by_admin=True)


def set_disabled(archive: Archive, admin: User, name: str, disabled: bool) -> None:
    if disabled and name == admin.name:
        raise BadRequest("you cannot disable your own account (you would be logged out "
                         "for good); another admin can")
    users.set_disabled(archive, name, disabled)
    audit.record(archive.store, admin.actor, "user-disable" if disabled else "user-enable",
                 name=name)


# -- the audit log -------------------------------------------------------------------------

def audit_filter(action: str, who: str, since: str, until: str, timezone: str
                 ) -> audit_search.AuditFilter:
    """The filter of the audit page's form: days (YYYY-MM-DD) in the appliance's time
    zone, `until` inclusive. Raises BadRequest for a malformed day."""
    zone = dates.zone(timezone)

    def day_start(text: str, days_after: int = 0) -> float | None:
        if not text:
            return None
        try:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=days_after)
        except ValueError:
            raise BadRequest(f"expected a day YYYY-MM-DD, got {text!r}") from None
        return dt.datetime.combine(day, dt.time(), zone).timestamp()

    return audit_search.AuditFilter(action or None, who or None, day_start(since),
                                     day_start(until, 1))


def audit_page(archive: Archive, chosen: audit_search.AuditFilter, offset: int
               ) -> audit_search.AuditPage:
    return audit_search.page(archive.store, chosen, max(offset, 0), AUDIT_PAGE)


def audit_choices(archive: Archive) -> tuple[list[str], list[str]]:
    return audit_search.actions_and_actors(archive.store)


def verify_audit(archive: Archive, user: User) -> dict:
    """The chain checked, with the mirror peers' logs anchored here (audit_anchor.verified,
    and "checked_at"); the check is audited too."""
    found = audit_anchor.verified(archive.store)
    audit.record(archive.store, user.actor, "audit-verify", intact=found["intact"],
                 problems=len(found["problems"]))
    return {**found, "checked_at": time.time()}
