"""`archiver retention ...`, `archiver hold ...`, `archiver audit ...`."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from firmware.errors import ArchiverError

from services.archive import dates
from services.common.progress import Progress
from services.policy import audit, audit_anchor, holds, retention
from services.cli.archive import add_archive_options, configured_timezone, open_archive
from services.common.terminal import terminal_safe
from services.cli.import_indexing import index_pending
from services.policy.audit import cli_actor
from services.policy.replicated import Replicated


def register(commands: argparse._SubParsersAction) -> None:
    _register_retention(commands)
    _register_holds(commands)
    _register_audit(commands)


def _sub(parent, name, handler, help_text, json_option=False):
    parser = parent.add_parser(name, help=help_text)
    add_archive_options(parser)
    if json_option:
        parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=handler)
    return parser


_NOT_GIVEN = object()  # --days absent: distinct from "none", which removes the policy


def _register_retention(commands) -> None:
    group = commands.add_parser("retention", help="retention policies (off by default)")
    sub = group.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    _sub(sub, "enable", lambda a: _set_enabled(a, True), "turn retention on")
    _sub(sub, "disable", lambda a: _set_enabled(a, False), "turn retention off")
    p = _sub(sub, "set", cmd_retention_set, "set the global or a saved search's policy")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--global-days", type=_days, metavar="N|none")
    which.add_argument("--saved", metavar="NAME")
    p.add_argument("--days", type=_days, default=_NOT_GIVEN, metavar="N|none",
                   help="with --saved (required there): keep its mail N days, or none")
    _sub(sub, "show", cmd_retention_show, "the policies", json_option=True)
    p = _sub(sub, "run", cmd_retention_run, "delete what has expired (never held mail)",
             json_option=True)
    p.add_argument("--dry-run", action="store_true", help="report only; delete nothing")


def _register_holds(commands) -> None:
    group = commands.add_parser("hold", help="litigation holds on saved searches")
    sub = group.add_subparsers(dest="hold_command", required=True, metavar="ACTION")
    p = _sub(sub, "add", cmd_hold_add, "hold the mail a saved search matches")
    p.add_argument("--saved", required=True, metavar="NAME")
    p.add_argument("--until", type=dt.date.fromisoformat, metavar="YYYY-MM-DD",
                   help="hold through this day (default: indefinitely)")
    _sub(sub, "list", cmd_hold_list, "the holds", json_option=True)
    p = _sub(sub, "remove", cmd_hold_remove, "remove a hold (admins only)")
    p.add_argument("hold_id", metavar="ID")
    p.add_argument("--created", type=_created, default=holds.UNSTATED, metavar="SECONDS|none",
                   help="the created time `hold list` shows for the hold you mean: removed "
                        "only if it is still the hold under ID (needed when holds placed "
                        "apart on mirror peers share the ID)")


def _register_audit(commands) -> None:
    group = commands.add_parser("audit", help="the hash-chained audit log")
    sub = group.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = _sub(sub, "show", cmd_audit_show, "the newest entries", json_option=True)
    p.add_argument("--limit", type=_count, default=50, metavar="N",
                   help="the newest N entries (1 or more; default 50)")
    _sub(sub, "verify", cmd_audit_verify, "check the chain, and the mirror peers' logs "
         "anchored here (exit 1 if broken)", json_option=True)
    p = _sub(sub, "accept-peer", cmd_audit_accept_peer,
             "anchor a mirror peer's audit log afresh, broken or not (admins only)")
    p.add_argument("node", metavar="NODE", help="the peer's node id (audit verify lists them)")


def _days(text: str) -> int | None:
    if text.lower() == "none":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of days (1 or more) or none, got {text!r}")
    return int(text)


def _count(text: str) -> int:
    """A count of entries to show, 1 or more (argparse type; ArgumentTypeError otherwise):
    audit.entries reads 0 as "all" and a negative count as a slice from the start, which
    showed everything for 0 and silently dropped the oldest entries for -N."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of entries (1 or more), got {text!r}")
    return int(text)


def _created(text: str) -> float | None:
    try:
        return holds.parse_created(text)
    except ArchiverError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _context(args, create: bool = False):
    """The archive, its replicated settings and the CLI's actor. The archive must be there
    already (NoArchive: a mistyped --data is told so, not given an empty new archive whose
    empty audit log `audit verify` would call intact), unless `create`: the commands that
    set a policy or a hold (retention set|enable|disable, hold add) may, as before, be the
    first on a fresh data folder."""
    archive = open_archive(args, create=create)
    return archive, Replicated(archive.store), cli_actor()


def _admin_context(args, doing: str, create: bool = False):
    """_context's, once the CLI's user is known to be an admin (PermissionDenied else)."""
    audit.require_admin(cli_actor(), doing)
    return _context(args, create)


def _audited(archive, actor, action: str, **details):
    """The `also(txn)` that writes a change's audit entry in the change's transaction."""
    return lambda txn: audit.record_in(archive.store, txn, actor, action, **details)


def _set_enabled(args, enabled: bool) -> int:
    archive, replicated, actor = _admin_context(args, "turns retention on or off", create=True)
    replicated.put(retention.ENABLED, enabled, also=_audited(archive, actor, "retention",
                                                           enabled=enabled))
    print(f"retention {'enabled' if enabled else 'disabled'}")
    return 0


def cmd_retention_set(args) -> int:
    if args.saved is not None and args.days is _NOT_GIVEN:
        raise ArchiverError(f"retention set --saved {args.saved} needs --days N (keep its mail "
                            "N days) or --days none (remove its policy)")
    if args.saved is None and args.days is not _NOT_GIVEN:
        raise ArchiverError("retention set: --days goes with --saved NAME; the global policy "
                            "is set with --global-days N|none")
    archive, replicated, actor = _admin_context(args, "sets retention policies", create=True)
    if args.saved is not None:
        retention.set_saved(replicated, args.saved, args.days, also=_audited(
            archive, actor, "retention", saved=args.saved, days=args.days))
    else:
        retention.set_global(replicated, args.global_days, also=_audited(
            archive, actor, "retention", global_days=args.global_days))
    print("retention policy set")
    return 0


def cmd_retention_show(args) -> int:
    _, replicated, _ = _context(args)
    shown = retention.policies(replicated)
    waiting = replicated.records_pending() > 0
    if args.json:
        print(json.dumps({**shown, "waiting_for_hold_records": waiting}))
        return 0
    print(f"retention {'enabled' if shown['enabled'] else 'disabled'}")
    if waiting:
        print("waiting: a mirror peer's holds or saved searches came before their hold "
              "records; nothing is deleted until the peers have exchanged them")
    print(f"global: {shown['global_days']} days" if shown["global_days"]
          else "global: keep forever")
    for name, days in sorted(shown["saved"].items()):
        print(f"saved search {name}: {days} days" if days is not None
              else f"saved search {name}: unreadable, the mail it matches is kept")
    for name, why in sorted(shown["unusable"].items()):
        print(f"retention deletes nothing: the policy on saved search {name} cannot be "
              f"applied ({why}); remove it (archiver retention set --saved {name} --days "
              "none) or save the search again")
    return 0


def cmd_retention_run(args) -> int:
    archive, replicated, actor = (_context(args) if args.dry_run else
                                  _admin_context(args, "runs retention (--dry-run shows what "
                                                       "it would delete)"))
    progress = Progress("examining", total=archive.store.counters()["messages"],
                        enabled=not args.json)
    report = retention.run(archive.store, archive.index_dir(), replicated, actor, args.dry_run,
                           timezone=configured_timezone(), progress=progress.advance)
    progress.finish()
    if not args.dry_run:
        archive.store.set_setting(retention.LAST_RUN_SETTING, time.time())
    if not args.dry_run:  # drop deleted documents now (also an interrupted run's), unless
        index_pending(archive, quiet=True)  # the indexer service is there to do it
    summary = {k: v for k, v in report.__dict__.items() if k != "deleted_digests"}
    if args.dry_run:  # nothing was deleted: say what would have been, under that name
        summary = {**summary, "dry_run": True, "deleted": 0, "would_delete": report.deleted}
    if args.json:
        print(json.dumps({**summary, "digests": report.deleted_digests}))
    elif not report.enabled and not args.dry_run:
        print("retention is disabled: nothing deleted (archiver retention enable)")
    elif report.unusable_policies:
        print("nothing deleted: " + retention.unusable_in_words(report.unusable_policies))
    elif report.waiting_for_hold_records:
        print("nothing deleted: a mirror peer's holds or saved searches came before their "
              "hold records; retention deletes once the peers have exchanged them")
    else:
        verb = "would delete" if args.dry_run else "deleted"
        print(f"examined {report.examined}, expired {report.expired}, held {report.held}, "
              f"not yet indexed {report.not_indexed}, {verb} {report.deleted}")
        if report.kept_for_peers:
            print("of those held: " + retention.kept_for_peers_in_words(report.kept_for_peers))
    return 0


def cmd_hold_add(args) -> int:
    archive, replicated, actor = _context(args, create=True)
    notice = holds.index_notice(archive.store, archive.index_dir())
    hold_id = holds.add(replicated, archive.index_dir(), args.saved, args.until, actor,
                        timezone=configured_timezone(),
                        also=lambda txn, hold_id: audit.record_in(
                            archive.store, txn, actor, "hold-add", hold=hold_id,
                            saved=args.saved,
                            until=args.until.isoformat() if args.until else None))
    print(hold_id)
    if notice:
        print(f"archiver: note: {notice}", file=sys.stderr)
    return 0


def cmd_hold_list(args) -> int:
    """Each hold, with the created time that names it to `hold remove --created`."""
    _, replicated, _ = _context(args)
    today = dt.datetime.now(dates.zone(configured_timezone())).date()
    for hold_id, hold in sorted(holds.all_holds(replicated).items()):
        created = "none" if hold["created"] is None else hold["created"]
        if args.json:
            print(json.dumps({"id": hold_id, **hold}))
        elif hold["unreadable"]:
            print(f"{terminal_safe(hold_id)}  UNREADABLE "
                  f"({terminal_safe(hold['unreadable'])}): holds everything until "
                  f"removed  created {created}  ({hold['held_at_placement']} messages "
                  "recorded)")
        else:
            print(f"{terminal_safe(hold_id)}  {terminal_safe(hold['saved'])}  until "
                  f"{hold['until'] or 'indefinitely'}  by {terminal_safe(hold['by'])}  "
                  f"created {created}  ({hold['held_at_placement']} messages recorded)")
            if hold["holds_everything"] and holds.in_force(hold, today):
                print(f"    holds every message: {terminal_safe(hold['holds_everything'])}")
    return 0


def cmd_hold_remove(args) -> int:
    """`archiver hold remove ID [--created SECONDS|none]`. --created is optional: an admin
    at a shell names the id `hold list` showed a moment ago, and scripts of earlier
    releases name only the id. Without it, the hold is removed only while no other hold
    shares its id (holds.remove: no clash between mirror peers, so the id names one hold
    and no merge can have swapped it); once one does, the command exits 2 naming each hold
    of the id and its created time, and removes nothing: the admin says which by
    --created. With --created, it exits 2 and removes nothing when the hold under ID now
    has another created time (it changed since it was listed)."""
    archive, replicated, actor = _context(args)
    holds.remove(replicated, args.hold_id, actor, args.created, also=_audited(
        archive, actor, "hold-remove", hold=args.hold_id,
        **({} if args.created is holds.UNSTATED else {"created": args.created})))
    print(f"removed hold {args.hold_id}")
    return 0


def cmd_audit_show(args) -> int:
    archive, _, _ = _context(args)
    for entry in audit.entries(archive.store, args.limit):
        if args.json:
            print(json.dumps(entry))
        else:
            when = dt.datetime.fromtimestamp(entry["time"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            details = terminal_safe(", ".join(f"{k}={v}" for k, v in
                                              entry["details"].items() if k != "digests"))
            # who (a login's name as typed), a search's query, a saved search's name: as
            # one line each, never a line of entries forged by a newline or turned around
            print(f"{entry['seq']:>6}  {when}  {terminal_safe(entry['who']):<12} "
                  f"{terminal_safe(entry['action']):<12} {details}")
    return 0


def cmd_audit_verify(args) -> int:
    archive, _, _ = _context(args)
    found = audit_anchor.verified(archive.store)
    if args.json:
        print(json.dumps(found))
        return 0 if found["intact"] else 1
    for problem in found["problems"]:
        print(f"BROKEN: {terminal_safe(problem)}")
    print(f"{found['entries']} entries, {'intact' if found['intact'] else 'the chain is broken'}")
    for warning in found["warnings"]:
        print(f"WARNING: {terminal_safe(warning)}")
    for node, anchor in sorted(found["peers"].items()):
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(anchor["at"])) \
            if anchor["at"] else "never"
        print(f"mirror peer {terminal_safe(node)}: {anchor['count']} entries anchored here "
              f"(last {when})" + (", BROKEN" if anchor["broken"] else ""))
    return 0 if found["intact"] else 1


def cmd_audit_accept_peer(args) -> int:
    actor = cli_actor()
    audit.require_admin(actor, "accepts a mirror peer's audit log afresh")
    archive, _, _ = _context(args)
    audit_anchor.accept(archive.store, args.node, actor)
    print(f"the audit log of {args.node} is anchored afresh from its next entries")
    return 0
