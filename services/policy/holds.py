"""Litigation holds: a saved search held indefinitely or until a date. A held message is
never deleted, whatever retention says; only an admin removes a hold.

A hold covers, at least, what its search matched when it was placed: the digests matched
then are recorded for the hold, and the holds on a saved search also record what it
matches just before it is changed. So an edit of the search can widen a hold, never
shrink it. What is stored but not yet indexed then (or not indexed on the mirror peer
whose edit is merged here) cannot be matched yet: the old query is kept and holds by
itself until this node's index has caught up and its matches are recorded
(superseded_queries, settle_superseded).

A hold is a replicated setting "hold:ID" = {"saved", "until", "by", "name", "reason",
"created"}, ID being 16 hex digits (new_id; 8 from an older release, or "ID-" and 8 more
for a hold that yielded its id to another placed apart: services.policy.hold_identity).
The matter's name and the reason for the hold were added later, so a hold written before
may lack them; all_holds() gives every hold the keys of FIELDS, None where
a hold lacks one. A stored value of another shape (services.policy.hold_values) is shown
as unreadable, and holds everything, always in force, until an admin removes it.

What a hold recorded is kept apart, as a grow-only set per hold
(services.policy.hold_records, mirrored by services.mirror.hold_sync), so that nothing
here costs more with how many it recorded; an older release kept it in the entry, as the
sorted list "held" (HELD), which services.policy.replicated moves into the records.

A release names the hold the admin saw by its id and its incarnation (its "created"), so
that a mirror merge which moved that hold to another id meanwhile, and put a peer's hold
under this one, never has the peer's hold released in its place (remove()).
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import secrets
import time
from pathlib import Path
from typing import Iterator

from firmware.errors import ArchiverError

from services.archive import dates
from services.archive.index import CURSOR_KEY
from services.archive.index_reader import read_index
from services.archive.search import parse
from services.policy import hold_identity, hold_records, hold_values
from services.policy.audit import Actor, PermissionDenied
from services.policy.replicated import Replicated
from services.policy.saved_searches import matching_spans, query_of

log = logging.getLogger(__name__)
PREFIX = "hold:"
HELD = "held"  # where an older release kept a hold's records, in its entry
FIELDS = hold_values.FIELDS
NAME_LIMIT, REASON_LIMIT = 200, 2000  # characters
# A hold id: ID_BYTES random bytes as hex. 8 (64 bits) make two ids drawn anywhere, on any
# peer, the same with odds of about n**2 / 2**65 for n holds ever placed: nil in practice,
# where the 8 hex digits (32 bits) of older releases were not. Those stay valid ids.
ID_BYTES = 8
ID_ATTEMPTS = 16  # ids drawn before giving up, each one this node knows


class UnknownHold(ArchiverError):
    pass


class HoldChanged(ArchiverError):
    """A release that does not name the hold now under its id: another hold took the id
    since it was shown (a mirror merge of an id clash), or the id clashed and the release
    did not say which of the holds it means. Nothing was removed."""


class _Unstated:
    def __repr__(self) -> str:
        return "UNSTATED"


UNSTATED = _Unstated()  # a release that does not say which incarnation it saw (remove())


def add(replicated: Replicated, index_dir: Path, saved: str, until: dt.date | None,
        actor: Actor, name: str | None = None, reason: str | None = None,
        timezone: str = "UTC", also=None) -> str:
    """Hold what saved search `saved` matches, now (recorded) and from now on, through
    `until` (None: indefinitely), for the matter `name` and the `reason` given; returns
    the hold's id. The search's days are days in `timezone` (the appliance's, as
    retention reads them). What it matches now is read in spans (saved_searches.
    matching_spans), up to the newest document, and recorded hold_records.CHUNK at a
    time, the last chunk with the hold's entry (so the hold is in force once all is
    recorded; a placement cut short leaves records no hold names, never used); what is
    indexed after is held by the search. Raises
    UnknownSavedSearch, ArchiverError for a name or reason too long or a past `until`,
    xapian.DatabaseModifiedError when the indexer overtook one span's read for
    index_reader.PATIENCE_SECONDS, replicated.KeyTaken if a peer's hold took the new id
    meanwhile (what was recorded then stays with that hold: more held, never less).
    `also(txn, hold_id)`, if given, writes more in the transaction of the hold's entry
    (its audit entry)."""
    query = query_of(replicated, saved)  # the saved search must exist
    name, reason = checked_words(name, reason)
    check_until(until, timezone)
    hold_id = new_id(replicated)
    pending, _ = _record_matches(replicated, index_dir, query, timezone, [hold_id])
    replicated.put(PREFIX + hold_id, {"saved": saved, "until": until.isoformat() if until else None,
                                      "by": actor.name, "name": name, "reason": reason,
                                      "created": time.time()},
                   also=lambda txn: (hold_records.add_in(replicated.store, txn, hold_id,
                                                         pending),
                                     also is not None and also(txn, hold_id)),
                   new=True)
    return hold_id


def check_until(until: dt.date | None, timezone: str) -> None:
    """Refuse (ArchiverError) a last day `until` already past in `timezone` (an IANA zone
    name): such a hold would hold nothing, and is a typo most likely. None (indefinitely)
    always passes."""
    today = dt.datetime.now(dates.zone(timezone)).date()
    if until is not None and until < today:
        raise ArchiverError(f"until {until.isoformat()}: the day is past (today is "
                            f"{today.isoformat()} in {timezone}): such a hold holds nothing")


def checked_words(name: str | None, reason: str | None) -> tuple[str | None, str | None]:
    """A hold's matter `name` and `reason` as add() stores them (stripped; None for
    nothing). Raises ArchiverError for one too long, as add() does."""
    name, reason = (name or "").strip() or None, (reason or "").strip() or None
    if name is not None and len(name) > NAME_LIMIT:
        raise ArchiverError(f"the matter's name is longer than {NAME_LIMIT} characters")
    if reason is not None and len(reason) > REASON_LIMIT:
        raise ArchiverError(f"the reason is longer than {REASON_LIMIT} characters")
    return name, reason


def new_id(replicated: Replicated) -> str:
    """A hold id (2 * ID_BYTES lowercase hex digits) this node knows nothing under: no
    live hold, no tombstone, no records (hold_records.is_known), so that a new hold never
    takes an old one's place or records. Raises ArchiverError after ID_ATTEMPTS known
    ones (a broken random source)."""
    with replicated.store.env.begin() as txn:
        for _ in range(ID_ATTEMPTS):
            hold_id = secrets.token_hex(ID_BYTES)
            if not hold_records.is_known(replicated.store, txn, hold_id):
                return hold_id
    raise ArchiverError(f"no unused hold id in {ID_ATTEMPTS} random draws")


def _record_matches(replicated: Replicated, index_dir: Path, query: str, timezone: str,
                    hold_ids: list[str]) -> tuple[list[str], int]:
    """Record what `query` matches now for each of `hold_ids`, read a span at a time
    (saved_searches.matching_spans) and written hold_records.CHUNK at a time, each chunk in
    one transaction (the store's writer lock is never held while the index is read);
    returns the last chunk, not yet written, for the caller to write with what completes
    it, and how many records were added before it. Only messages in the store are
    recorded: an index behind still has documents of mail deleted since, which no hold
    can keep (and would be counted as held)."""
    chunk: list[str] = []
    added = 0
    store = replicated.store
    for digests in matching_spans(index_dir, query, timezone):
        chunk.extend(digest for digest in digests if digest in store)
        if len(chunk) >= hold_records.CHUNK:
            added, chunk = added + _write_records(replicated, hold_ids, chunk), []
    return chunk, added


def _write_records(replicated: Replicated, hold_ids: list[str], digests: list[str]) -> int:
    """Record `digests` for each of `hold_ids` not removed meanwhile, in one transaction."""
    with replicated.store.writing() as txn:
        return sum(hold_records.add_in(replicated.store, txn, hold_id, digests)
                   for hold_id in hold_ids
                   if not hold_records.is_removed(replicated.store, txn, hold_id))


def all_holds(replicated: Replicated) -> dict[str, dict]:
    """Each hold by id, as shown: every key of FIELDS (None where an older hold has none,
    or has a value of another type), "unreadable" (None, or why its stored value is not a
    hold's: hold_values.shown), `held_at_placement` (how many messages it recorded,
    placement and edits of its search included: one lookup) and `holds_everything` (None,
    or why it keeps every message: holds_everything_because)."""
    superseded = unusable_superseded(replicated)
    return {hold_id: {**hold, "held_at_placement": hold_records.summary(replicated.store,
                                                                        hold_id).count,
                      "holds_everything": holds_everything_because(replicated, hold)
                      or superseded.get(hold_id)}
            for hold_id, hold in _shown(replicated).items()}


def unusable_superseded(replicated: Replicated) -> dict[str, str]:
    """{hold id: why it keeps every message} for the holds that a superseded query this
    release cannot parse holds by (Replicated._supersede): such a query cannot be matched,
    so is never settled, and retention keeps every message for it while the hold lives."""
    found: dict[str, str] = {}
    for entry in replicated.superseded():
        try:
            parse(entry["query"])
        except ArchiverError as why:
            for hold_id in entry["holds"]:
                found.setdefault(hold_id, (
                    f"the query {entry['query']!r} its saved search {entry['saved']!r} had "
                    f"before it changed cannot be used ({why}); it is kept until the hold "
                    "is removed"))
    return found


def recorded(replicated: Replicated, hold_id: str) -> Iterator[str]:
    """The digests hold `hold_id` recorded (placement and edits of its search), ascending,
    read hold_records.CHUNK at a time; none for a hold without a record or none by that
    id."""
    if hold_id not in _entries(replicated):
        return iter(())
    return hold_records.iterate(replicated.store, hold_id)


def is_recorded(replicated: Replicated, hold_id: str, digest: str) -> bool:
    """Whether hold `hold_id` recorded message `digest` (one lookup)."""
    return hold_records.contains(replicated.store, hold_id, digest)


def in_force(hold: dict, today: dt.date) -> bool:
    """Whether `hold` (as all_holds gives it) holds on `today` (an until-date holds
    through that day); an unreadable hold always does."""
    return bool(hold.get("unreadable")) or hold["until"] is None \
        or dt.date.fromisoformat(hold["until"]) >= today


def held_query(replicated: Replicated, hold: dict) -> str:
    """The query `hold` (as all_holds gives it) keeps: its saved search's; "" (everything)
    when holds_everything_because says why."""
    if holds_everything_because(replicated, hold) is not None:
        return ""
    return query_of(replicated, hold["saved"])


def holds_everything_because(replicated: Replicated, hold: dict) -> str | None:
    """Why `hold` (as _shown gives it) keeps every message, erring on the safe side; None
    when it keeps what its saved search matches. It does once its saved search is gone,
    when the hold is unreadable, or when its saved search is (not a saved search's value,
    or a query this release does not parse: a peer's, or one saved before a syntax change;
    its shape is checked at merge, not its syntax)."""
    if hold.get("unreadable"):
        return f"the hold cannot be read ({hold['unreadable']})"
    if hold["saved"] is None:
        return "it names no saved search"
    try:
        parse(query_of(replicated, hold["saved"]))  # as retention would meet it
    except ArchiverError as why:  # UnknownSavedSearch, QuerySyntaxError among them
        return f"its saved search {hold['saved']!r} cannot be used: {why}"
    return None


def _entries(replicated: Replicated, txn=None, prefix: str = PREFIX) -> dict:
    """Each live hold's stored value (any JSON value, as it is) by id: of every hold, or of
    those whose key starts with `prefix`; in `txn` or a read of its own."""
    return {key[len(PREFIX):]: value for key, value in replicated.items(prefix, txn).items()}


def _shown(replicated: Replicated) -> dict[str, dict]:
    """Each hold by id, as hold_values.shown reads it."""
    return {hold_id: hold_values.shown(value)
            for hold_id, value in _entries(replicated).items()}


def parse_created(text: str) -> float | None:
    """A hold's "created" as an admin gives it to name the hold they mean: seconds since
    the epoch as all_holds and `archiver hold list` show it, or "none" for a hold without
    one (placed by an older release). Raises ArchiverError otherwise."""
    if text.strip().lower() == "none":
        return None
    try:
        created = float(text)
    except ValueError:
        created = math.nan
    if not math.isfinite(created):
        raise ArchiverError(f"created {text!r}: expected the hold's created time in seconds "
                            "since the epoch, as the holds list shows it, or none")
    return created


def remove(replicated: Replicated, hold_id: str, actor: Actor, created=UNSTATED,
           also=None) -> None:
    """Remove (release) hold `hold_id`: a tombstone, which drops its records here and on
    every peer. `created` names which hold the admin saw under that id: its incarnation
    (its "created", seconds since the epoch, as all_holds gives it; None for a hold
    without one), checked in the transaction that writes the tombstone, since a mirror
    merge may meanwhile have moved that hold to another id and put a peer's under this
    one (services.policy.hold_identity). UNSTATED (an admin naming an id they read from
    `archiver hold list`, or an API client that does not say) is taken only while no
    other live hold shares the id's base: once ids clashed, an id alone no longer tells
    which hold is meant. Raises PermissionDenied unless `actor` is an admin; UnknownHold;
    HoldChanged (nothing removed) for another hold under the id, or a clash unstated.
    `also(txn)`, if given, writes more in the tombstone's transaction (its audit entry)."""
    if actor.role != "admin":
        raise PermissionDenied(f"only an admin removes a litigation hold ({actor.name} is "
                               f"{actor.role})")

    def still_the_one_seen(txn, ours: dict | None) -> None:
        kin = _kin(replicated, hold_id, txn)
        if ours is None or ours["deleted"]:
            raise UnknownHold(f"no hold with id {hold_id!r}{_now_at(kin, created)}")
        now = hold_identity.incarnation(ours)
        if created is UNSTATED and len(kin) > 1:
            raise HoldChanged(
                f"hold {hold_id} shares its id with other holds, placed apart on mirror "
                f"peers: {_listed(kin)}. Nothing was removed: say which one you mean by "
                "its created time")
        if created is not UNSTATED and now != created:
            raise HoldChanged(
                f"hold {hold_id} changed since it was shown: the hold under that id now is "
                f"the one {_created_words(now)}, not the one {_created_words(created)} (a "
                f"mirror peer's hold of the same id was merged meanwhile)"
                f"{_now_at(kin, created)}. Nothing was removed: look at the holds again "
                "and remove the one you mean")

    replicated.delete(PREFIX + hold_id, guard=still_the_one_seen, also=also)


def _kin(replicated: Replicated, hold_id: str, txn) -> dict[str, float | None]:
    """The live holds of `hold_id`'s base (hold_identity.base), itself included if live,
    with their incarnations, read in `txn`."""
    base = hold_identity.base(hold_id)
    return {kin_id: hold_identity.incarnation({"value": value})
            for kin_id, value in _entries(replicated, txn, PREFIX + base).items()
            if hold_identity.base(kin_id) == base}


def _now_at(kin: dict[str, float | None], created) -> str:
    """Where the hold of incarnation `created` is now, in words ("" when not found)."""
    found = [kin_id for kin_id, now in kin.items() if created is not UNSTATED and now == created]
    return f"; the one {_created_words(created)} is now hold {found[0]}" if found else ""


def _listed(kin: dict[str, float | None]) -> str:
    return ", ".join(f"{kin_id} ({_created_words(now)})" for kin_id, now in sorted(kin.items()))


def _created_words(created: float | None) -> str:
    """`created` as an admin reads it and gives it back: "created 2024-06-10 12:00:00 UTC
    (1718020800.0)"."""
    if created is None:
        return "without a created time (none)"
    try:
        when = dt.datetime.fromtimestamp(created, dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC ")
    except (OverflowError, ValueError, OSError):
        when = ""
    return f"created {when}({created!r})"


def keep_current_matches(replicated: Replicated, index_dir: Path, saved: str,
                         timezone: str = "UTC") -> int:
    """Before saved search `saved` changes: each hold on it records what it matches now
    (saved_searches.matching_spans: read in spans, up to the newest document; days in
    `timezone`), hold_records.CHUNK at a time. Returns how many records were added to the
    holds (a digest new to two holds counts twice). A query that does not parse here
    records nothing and does not refuse the edit (an admin fixing it): superseded, it
    holds every message while its holds live (Replicated._supersede, all_holds)."""
    holding = [hold_id for hold_id, hold in _shown(replicated).items()
               if hold["saved"] == saved]
    if not holding:
        return 0
    try:
        query = query_of(replicated, saved)
        parse(query)
    except ArchiverError:  # gone, or a query this release cannot read (a peer's): nothing
        return 0           # to record; once superseded it holds every message (all_holds)
    pending, added = _record_matches(replicated, index_dir, query, timezone, holding)
    return added + (_write_records(replicated, holding, pending) if pending else 0)


def superseded_queries(replicated: Replicated, hold_ids: list[str]) -> list[str]:
    """The queries that holds among `hold_ids` held before their saved search changed
    (here or on a peer) and that this node has not yet recorded the matches of
    (Replicated._supersede): held by query meanwhile, as the hold's own."""
    return [entry["query"] for entry in replicated.superseded()
            if set(entry["holds"]).intersection(hold_ids)]


def index_position(index_dir: Path) -> int:
    """How far along the arrival log the index has taken in changes (0: nothing)."""
    return read_index(index_dir, lambda database: int(
        database.get_metadata(CURSOR_KEY) or 0), absent=0)


def index_behind(store, index_dir: Path) -> int:
    """How many changes to the archive (mail stored or deleted) the index has still to
    take in: the arrival log's end less the index's position (0: caught up)."""
    log_end = store.log_end("arrival")  # first: the index only moves on meanwhile
    return max(0, log_end - index_position(index_dir))


def index_notice(store, index_dir: Path) -> str | None:
    """What to tell whoever places a hold while the index is behind (as a search says it):
    the hold records what the index shows now, of the mail in the store; None when the
    index has caught up."""
    behind = index_behind(store, index_dir)
    if not behind:
        return None
    return (f"{behind:,} change{'s' if behind != 1 else ''} to the archive (mail stored or "
            "deleted) not indexed yet: the hold recorded what its search matches among the "
            "indexed mail still stored; mail not indexed yet is held by its search once "
            "indexed (retention never deletes mail before it is indexed; archiver status "
            "shows the backlog)")


def settle_superseded(replicated: Replicated, index_dir: Path, timezone: str = "UTC"
                      ) -> int:
    """Each superseded query (see superseded_queries) the index has caught up with (its
    position has reached the arrival log's end when the query was superseded, its "at":
    what was stored before the change is all indexed, whatever came after) has its
    holds record what it matches, and is then no longer held by query (in the
    transaction of its last records). Nothing it matched before is let go (mail that
    came after and matches the old query is recorded too: more held, never less). A
    query this release cannot parse stays held by query (all its holds' candidates
    kept) while its holds live. Returns how many records were added."""
    if not replicated.superseded():
        return 0
    position, added = index_position(index_dir), 0
    with replicated.store.env.begin() as txn:  # one read: a merge between two renames holds
        live, pending = set(_entries(replicated, txn)), replicated.superseded(txn)
    for entry in pending:
        if not live.intersection(entry["holds"]) and _drop_unheld(replicated, entry):
            continue
        if position < entry.get("at", replicated.store.log_end("arrival")):
            continue  # mail stored before the change is not all indexed yet
        try:
            pending, written = _record_matches(replicated, index_dir, entry["query"],
                                               timezone, entry["holds"])
        except ArchiverError as why:
            log.warning("the query %r saved search %r had before it changed cannot be "
                        "read (%s): its holds keep holding by it", entry["query"],
                        entry["saved"], why)
            continue
        with replicated.store.writing() as txn:
            written += sum(hold_records.add_in(replicated.store, txn, hold_id, pending)
                           for hold_id in entry["holds"]
                           if not hold_records.is_removed(replicated.store, txn, hold_id))
            replicated.settle_superseded(txn, entry)
        added += written
    return added


def _drop_unheld(replicated: Replicated, entry: dict) -> bool:
    """Drop superseded query `entry` unrecorded if none of its holds is live, as checked
    in the write that drops it (a merge since the caller read may have made one live, and
    settle_superseded leaves an entry renamed meanwhile); whether none was."""
    with replicated.store.writing() as txn:
        if set(_entries(replicated, txn)).intersection(entry["holds"]):
            return False
        replicated.settle_superseded(txn, entry)
        return True


def active(replicated: Replicated, today: dt.date) -> list[tuple[str, str]]:
    """(hold id, query) of each hold in force today (an until-date holds through that
    day); what each recorded is asked by lookup (recorded_among)."""
    return [(hold_id, held_query(replicated, hold))
            for hold_id, hold in _shown(replicated).items() if in_force(hold, today)]


def recorded_among(replicated: Replicated, hold_ids: list[str], digests: list[str]
                   ) -> set[str]:
    """Those of `digests` that any of `hold_ids` recorded (a lookup per pair), and any
    still listed in an entry of an older release's format (not migrated while the store
    was full: see services.policy.replicated)."""
    found = hold_records.recorded_among(replicated.store, hold_ids, digests)
    for hold_id, hold in _entries(replicated).items():
        if hold_id in hold_ids and isinstance(hold, dict) and isinstance(hold.get(HELD), list):
            found |= set(digests).intersection(hold[HELD])
    return found
