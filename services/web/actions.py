"""What the API and the pages both do, in one place: each action does its work and writes
the audit entry, so that no way in skips either. Functions here block (LMDB, Xapian,
scrypt); the handlers run them in a worker thread."""
from __future__ import annotations

import dataclasses
import datetime as dt

from firmware.errors import ArchiverError

from services.policy import audit, audit_anchor, editing, holds, retention, saved_searches
from services.mirror import state as mirror_state
from services.appliance import totp, users
from services.appliance.sign_in import is_directory_user, two_factor_name
from services.archive.archive import Archive
from services.common import mirror_secret
from services.common.config import Config
from services.appliance.health import health
from services.intake.journal_mailbox import account_status
from services.policy.replicated import DELETE, Replicated
from services.archive.search import SORTS, Results, explain as run_explain, search as run_search
from services.appliance.users import User
from services.web import mail_view
from services.web.access import mail_filter, read_message, reader
from services.web.auth import WrongProof

MAX_PAGE = 500


class BadRequest(ArchiverError):
    pass


# -- mail ------------------------------------------------------------------------------

def search(archive: Archive, user: User, query: str, limit: int, offset: int,
           oldest_first: bool, timezone: str, sort: str = "date",
           descending: bool | None = None) -> Results:
    """The page of `query`'s matches `user` may see; recorded in the audit log ("search")
    only once it has run. Raises BadRequest, QuerySyntaxError (both 400s), PatternTooBroad."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise BadRequest(f"limit must be 1-{MAX_PAGE} and offset 0 or more")
    if sort not in SORTS:
        raise BadRequest(f"sort: expected one of {', '.join(SORTS)}, got {sort!r}")
    results = run_search(archive.index_dir(), query, limit, offset, oldest_first,
                         within=mail_filter(user), reader=reader(user), timezone=timezone,
                         sort=sort, descending=descending,
                         log_end=archive.store.log_end("arrival"),
                         count_backlog=user.role != "user")
    # Recorded once the search has run, before its results are returned: the log says who
    # saw which results; a refused query (a 400, a too broad pattern) read no mail.
    audit.record(archive.store, user.actor, "search", query=query, offset=offset, limit=limit)
    return results


def explain(archive: Archive, user: User, query: str, timezone: str) -> dict:
    """How `query` is understood; a user (who reads only their own mail) sees patterns
    unexpanded, never the addresses and names the whole archive holds."""
    return run_explain(archive.index_dir() if user.role != "user" else None, query, timezone)


def message(archive: Archive, user: User, digest: str) -> tuple[dict, mail_view.MessageView]:
    raw, meta = read_message(archive, user, digest)
    audit.record(archive.store, user.actor, "view", digest=digest)
    return meta, mail_view.view(raw)


def raw_message(archive: Archive, user: User, digest: str) -> bytes:
    raw, _ = read_message(archive, user, digest)
    audit.record(archive.store, user.actor, "view", digest=digest, raw=True)
    return raw


def attachment(archive: Archive, user: User, digest: str, number: int
               ) -> tuple[mail_view.Attachment, bytes]:
    raw, _ = read_message(archive, user, digest)
    found = mail_view.attachment(raw, number)
    audit.record(archive.store, user.actor, "view", digest=digest, attachment=number)
    return found


# -- saved searches, retention, holds --------------------------------------------------

def saved(archive: Archive) -> list[dict]:
    found = saved_searches.all_saved(Replicated(archive.store))
    return [{"name": name, "query": query} for name, query in sorted(found.items())]


def save_search(archive: Archive, user: User, name: str, query: str, timezone: str) -> None:
    """Save `query` as `name`, its days (and those of holds recording what it matches
    before the change) in `timezone`, the appliance's: the web always has one to give."""
    editing.save_search(archive.store, archive.index_dir(), name, query, user.actor, timezone)


def delete_saved(archive: Archive, user: User, name: str) -> None:
    saved_searches.delete(Replicated(archive.store), name, also=_audited(
        archive, user, "saved-search-delete", name=name))


def _audited(archive: Archive, user: User, action: str, **details):
    """The `also(txn)` that writes a change's audit entry in the change's transaction."""
    return lambda txn: audit.record_in(archive.store, txn, user.actor, action, **details)


def retention_policies(archive: Archive) -> dict:
    return retention.policies(Replicated(archive.store))


def set_retention(archive: Archive, user: User, changes: dict) -> None:
    """`changes`: any of enabled (bool), global_days (int or None)."""
    unknown = set(changes) - {"enabled", "global_days"}
    if unknown:
        raise BadRequest(f"unknown retention settings: {', '.join(sorted(unknown))} "
                         "(expected enabled, global_days)")
    # Every value is checked before any is written: a refused request changes nothing.
    days = _days(changes["global_days"]) if "global_days" in changes else None
    if "enabled" in changes and not isinstance(changes["enabled"], bool):
        raise BadRequest("enabled: expected true or false")
    written = {}
    if "global_days" in changes:
        retention.check_days(days)
        written[retention.GLOBAL] = days if days is not None else DELETE
    if "enabled" in changes:
        written[retention.ENABLED] = changes["enabled"]
    Replicated(archive.store).write_all(written, also=_audited(archive, user, "retention",
                                                               **changes))


def set_saved_retention(archive: Archive, user: User, name: str, days) -> None:
    retention.set_saved(Replicated(archive.store), name, _days(days),
                        also=_audited(archive, user, "retention", saved=name, days=days))


def all_holds(archive: Archive) -> list[dict]:
    found = holds.all_holds(Replicated(archive.store))
    return [{"id": hold_id, **hold} for hold_id, hold in sorted(found.items())]


def add_hold(archive: Archive, user: User, saved_name: str, until: str | None,
             name: str | None, reason: str | None, timezone: str) -> str:
    """Hold a saved search's mail (its days in `timezone`) for a matter (`name`) and a
    `reason`; the hold's id."""
    until_date = check_hold(until, name, reason, timezone)
    hold_id = holds.add(Replicated(archive.store), archive.index_dir(), saved_name, until_date,
                        user.actor, name, reason, timezone,
                        also=lambda txn, hold_id: audit.record_in(
                            archive.store, txn, user.actor, "hold-add", hold=hold_id,
                            saved=saved_name,
                            until=until_date.isoformat() if until_date else None, name=name,
                            reason=reason))
    return hold_id


def hold_notice(archive: Archive) -> str | None:
    """What a hold placed now is to be told of the index (behind: holds.index_notice)."""
    return holds.index_notice(archive.store, archive.index_dir())


def check_hold(until: str | None, name: str | None, reason: str | None,
               timezone: str) -> dt.date | None:
    """The last day of a hold through `until` (YYYY-MM-DD, a day in `timezone`; None:
    indefinitely). Raises BadRequest, ArchiverError for an `until` (malformed or past),
    matter `name` or `reason` add_hold would refuse: a caller that makes something for a
    hold first (a saved search) checks them before it does."""
    until_date = _date(until)
    holds.checked_words(name, reason)
    holds.check_until(until_date, timezone)
    return until_date


def remove_hold(archive: Archive, user: User, hold_id: str, created: str | None) -> None:
    """Release hold `hold_id` if it is still the hold the user saw: the one `created`
    (its created time as the holds list gave it, or "none"; holds.parse_created) names.
    None (an API client that does not say) is taken only while no other hold shares the
    id (holds.remove). Raises ArchiverError for a bad `created`, holds.HoldChanged,
    holds.UnknownHold, PermissionDenied."""
    seen = holds.UNSTATED if created is None else holds.parse_created(created)
    holds.remove(Replicated(archive.store), hold_id, user.actor, seen, also=_audited(
        archive, user, "hold-remove", hold=hold_id,
        **({} if seen is holds.UNSTATED else {"created": seen})))


# -- the system ------------------------------------------------------------------------

def status(config: Config, archive: Archive) -> dict:
    return health(config, archive)


def mirror_overview(config: Config, archive: Archive) -> dict:
    settings = mirror_state.settings(config, archive.store)
    return {"supported": archive.profile.features.mirroring, "listen": settings.listen,
            "secret_set": bool(settings.secret),
            "configured_peers": list(config.mirror.peers) if config.mirror else [],
            "joined_peers": mirror_state.joined_peers(archive.store),
            "peers": [mirror_state.report(archive.store, peer) for peer in settings.peers]}


def mirror_join(config: Config, archive: Archive, user: User, peer: str,
                secret: str | None) -> None:
    if not archive.profile.features.mirroring:
        raise BadRequest(f"a model {archive.profile.model} cannot mirror: mirroring needs "
                         "model 450 or higher")
    _check_peer(peer)
    secret = secret or mirror_state.settings(config, archive.store).secret
    if not secret:
        raise BadRequest(f"give the shared secret ({mirror_secret.RULE})")
    if (weak := mirror_secret.problem(secret)) is not None:
        raise BadRequest(weak)
    mirror_state.join(archive.store, secret, peer,
                      config.mirror.secret if config.mirror else None)
    audit.record(archive.store, user.actor, "mirror-join", peer=peer)


def mirror_leave(archive: Archive, user: User, peer: str) -> None:
    if not mirror_state.leave(archive.store, peer):
        raise BadRequest(f"{peer} is not a joined peer (peers from archiver.yaml stay)")
    audit.record(archive.store, user.actor, "mirror-leave", peer=peer)


def mirror_backfill(config: Config, archive: Archive, user: User, peer: str) -> int:
    if peer not in mirror_state.settings(config, archive.store).peers:
        raise BadRequest(f"{peer} is not a peer; join it first")
    queued = mirror_state.backfill(archive.store, peer)
    audit.record(archive.store, user.actor, "mirror-backfill", peer=peer, queued=queued)
    return queued


def mail_sources(config: Config, archive: Archive) -> dict:
    """SMTP intake and the journal mailboxes, with each mailbox's status; no passwords."""
    smtp = dataclasses.asdict(config.smtp)
    accounts = []
    for account in config.journal_accounts:
        shown = {k: v for k, v in dataclasses.asdict(account).items() if k != "password"}
        accounts.append({**shown, "status": account_status(archive.store, account.name)})
    return {"config_file": config.source, "smtp": smtp, "journal_accounts": accounts}


def audit_log(archive: Archive, limit: int) -> dict:
    if not 1 <= limit <= 10_000:
        raise BadRequest("limit must be 1-10000")
    return {"entries": audit.entries(archive.store, limit)}


def audit_verify(archive: Archive) -> dict:
    """audit_anchor.verified: the chain here, and the mirror peers' logs anchored here."""
    return audit_anchor.verified(archive.store)


def change_password(archive: Archive, user: User, current: str, new: str) -> User:
    """The account as written with its new password; WrongProof when `current` is not the
    password (callers throttle: Auth.proof)."""
    if is_directory_user(user):
        raise BadRequest("your password is the company directory's: change it there")
    if users.authenticate(archive, user.name, current) is None:
        raise WrongProof("the current password is wrong")
    changed = users.set_password(archive, user.name, new)
    audit.record(archive.store, user.actor, "user-passwd", name=user.name)
    return changed


def two_factor_view(config: Config, archive: Archive, user: User,
                    enrolment: totp.Enrolment | None) -> dict:
    """What the account page shows of two-factor sign-in: {"required", "enrolled",
    "pending": `enrolment` (the one the asking session began) while it waits for its code,
    else None, "recovery_codes_left"}."""
    status = totp.status(archive, two_factor_name(user))
    waiting = not status["enrolled"] and _own_enrolment(user, enrolment)
    return {**status, "required": user.role in config.two_factor.required_for,
            "pending": enrolment if waiting else None}


def begin_two_factor(config: Config, archive: Archive, user: User) -> totp.Enrolment:
    """A new enrolment, for the session that asked to keep (totp.begin)."""
    return totp.begin(archive, two_factor_name(user), config.two_factor.issuer,
                      account=user.name)


def confirm_two_factor(archive: Archive, user: User, enrolment: totp.Enrolment | None,
                       code: str, client: str | None = None) -> list[str]:
    """Switch on the codes of `enrolment` (the one the asking session began; the codes state
    it brings about: enrolment.state); the recovery codes, to show once. `client`: the
    address asking, for the audit log. TwoFactorError when it began none (or one for
    another account), the code is wrong, or codes are on already."""
    if not _own_enrolment(user, enrolment):
        raise totp.TwoFactorError("no two-factor enrolment is waiting for a code: start again")
    codes = totp.confirm(archive, enrolment, code)
    audit.record(archive.store, user.actor, "two-factor-on", name=user.name,
                 **_client(client))
    return codes


def _own_enrolment(user: User, enrolment: totp.Enrolment | None) -> bool:
    return enrolment is not None and enrolment.name == two_factor_name(user)


def end_two_factor(config: Config, archive: Archive, user: User, code: str,
                   state: str | None = None, client: str | None = None) -> bool:
    """Switch codes off, with a current code (or a recovery code) as proof; never for an
    account whose role requires them. `state`: the codes state it brings about (totp.remove);
    `client`: the address asking, for the audit log. Whether codes were on: with none on
    (an enrolment cancelled before it was confirmed) nothing changes and nothing is
    recorded. WrongProof for a wrong code (callers throttle: Auth.proof)."""
    name = two_factor_name(user)
    if not totp.enrolled(archive, name):
        return False
    if user.role in config.two_factor.required_for:
        raise BadRequest(f"two-factor sign-in is required for {user.role}s here")
    switched = totp.switch_off(archive, name, code, state)
    if switched == "wrong":
        raise WrongProof("wrong or already used code: two-factor sign-in stays on")
    if switched == "none":  # another request switched them off first
        return False
    audit.record(archive.store, user.actor, "two-factor-off", name=user.name,
                 **_client(client))
    return True


def _client(address: str | None) -> dict:
    return {} if address is None else {"client": address}


def renew_recovery_codes(archive: Archive, user: User, code: str,
                         client: str | None = None) -> list[str]:
    """New recovery codes, with a current code (or a recovery code) as proof; WrongProof
    when it is wrong (callers throttle: Auth.proof). `client`: the address asking, for the
    audit log."""
    name = two_factor_name(user)
    if totp.verify(archive, name, code) is None:
        raise WrongProof("wrong or already used code: the recovery codes stay as they were")
    codes = totp.new_recovery_codes(archive, name)
    audit.record(archive.store, user.actor, "two-factor-recovery-codes", name=user.name,
                 **_client(client))
    return codes


# -- checks ----------------------------------------------------------------------------

def _days(value) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        raise BadRequest(f"days: expected a number of days (1 or more) or nothing, got {value!r}")
    return int(value)


def _date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadRequest(f"until: expected a date YYYY-MM-DD, got {value!r}") from None


def _check_peer(peer: str) -> None:
    host, _, port = (peer or "").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadRequest(f"peer {peer!r}: expected HOST:PORT, e.g. 10.0.0.2:8443")
