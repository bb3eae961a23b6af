"""The administration pages: users (admins), the audit log (filtered, paged, as CSV, its
chain verified), retention (a change is previewed: how many messages would go now and a
sample, then confirmed) and litigation holds (matter, reason, creator, end date, how many
messages each covers)."""
from __future__ import annotations

import asyncio
import itertools
from urllib.parse import urlencode

from aiohttp import web

from services.appliance.users import ROLES, User
from services.policy import audit, audit_search
from services.web import actions, admin_actions
from services.web.api import ADMIN, STAFF
from services.web.ui import (act, app_context, chosen_field, form_field, message_of, page,
                             render, secret_field)


# -- users -------------------------------------------------------------------------------

@page("GET", "/users", ADMIN)
async def users_page(request: web.Request, user: User) -> web.Response:
    _, archive = app_context(request)
    accounts = await asyncio.to_thread(admin_actions.all_users, archive)
    return render(request, "users.html", accounts=accounts, roles=ROLES)


@page("POST", "/users", ADMIN)
async def add_user(request: web.Request, user: User):
    _, archive = app_context(request)
    name = form_field(request, "name")
    emails = [email for email in form_field(request, "emails").replace(",", " ").split()]
    await act(request, "/users", f"User {name!r} added.", admin_actions.add_user, archive,
              user, name, form_field(request, "role"), emails, secret_field(request, "password"))


@page("POST", "/users/role", ADMIN)
async def change_role(request: web.Request, user: User):
    _, archive = app_context(request)
    name, role = form_field(request, "name"), form_field(request, "role")
    await act(request, "/users", f"{name!r} is now {role}.", admin_actions.set_role, archive,
              user, name, role)


@page("POST", "/users/password", ADMIN)
async def reset_password(request: web.Request, user: User):
    _, archive = app_context(request)
    name = form_field(request, "name")
    await act(request, "/users", f"The password of {name!r} is reset; their sessions ended.",
              admin_actions.reset_password, archive, user, name,
              secret_field(request, "password"))


@page("POST", "/users/disabled", ADMIN)
async def disable_user(request: web.Request, user: User):
    _, archive = app_context(request)
    name, disabled = form_field(request, "name"), form_field(request, "disabled") == "yes"
    await act(request, "/users", f"{name!r} is {'disabled' if disabled else 'enabled'}.",
              admin_actions.set_disabled, archive, user, name, disabled)


# -- the audit log -----------------------------------------------------------------------

AUDIT_FILTERS = ("action", "who", "since", "until")


@page("GET", "/audit", STAFF)
async def audit_page(request: web.Request, user: User) -> web.Response:
    config, archive = app_context(request)
    chosen = {name: request.query.get(name, "").strip() for name in AUDIT_FILTERS}
    offset = int(request.query["offset"]) if request.query.get("offset", "").isdigit() else 0
    verified = None
    if request.query.get("verify") == "1":
        verified = await asyncio.to_thread(admin_actions.verify_audit, archive, user)
    found = await asyncio.to_thread(_audit_entries, archive, chosen, offset, config.timezone)
    choices = await asyncio.to_thread(admin_actions.audit_choices, archive)
    link = lambda **changes: "/audit?" + urlencode(  # noqa: E731 (a template helper)
        {key: value for key, value in {**chosen, "offset": offset, **changes}.items() if value})
    return render(request, "audit.html", found=found, chosen=chosen, actions=choices[0],
                  actors=choices[1], verified=verified, link=link,
                  filters=urlencode({key: value for key, value in chosen.items() if value}),
                  page_size=admin_actions.AUDIT_PAGE, timezone=config.timezone)


def _audit_entries(archive, chosen: dict, offset: int, timezone: str):
    audit_filter = admin_actions.audit_filter(**chosen, timezone=timezone)
    return admin_actions.audit_page(archive, audit_filter, offset)


@page("GET", "/audit.csv", STAFF)
async def audit_csv(request: web.Request, user: User) -> web.StreamResponse:
    """The entries the filter matches, as CSV, streamed (the log may be large)."""
    config, archive = app_context(request)
    chosen = {name: request.query.get(name, "").strip() for name in AUDIT_FILTERS}
    audit_filter = admin_actions.audit_filter(**chosen, timezone=config.timezone)
    await asyncio.to_thread(audit.record, archive.store, user.actor, "audit-export",
                            filters={key: value for key, value in chosen.items() if value})
    lines = audit_search.csv_lines(archive.store, audit_filter)
    response = web.StreamResponse(headers={
        "Content-Disposition": 'attachment; filename="audit-log.csv"'})
    response.content_type, response.charset = "text/csv", "utf-8"
    await response.prepare(request)
    while batch := await asyncio.to_thread(lambda: "".join(itertools.islice(lines, 1000))):
        await response.write(batch.encode("utf-8"))
    await response.write_eof()
    return response


# -- retention ---------------------------------------------------------------------------

@page("GET", "/retention", STAFF)
async def retention_page(request: web.Request, user: User) -> web.Response:
    _, archive = app_context(request)
    policies = await asyncio.to_thread(actions.retention_policies, archive)
    saved = await asyncio.to_thread(actions.saved, archive)
    return render(request, "retention.html", policies=policies, saved=saved,
                  may_change=user.role in ADMIN)


@page("POST", "/retention/preview", ADMIN)
async def retention_preview(request: web.Request, user: User) -> web.Response:
    """A change's dry run: what would be deleted now, and a form to confirm it."""
    config, archive = app_context(request)
    current = await asyncio.to_thread(actions.retention_policies, archive)
    change, proposed = _proposed(request, current)
    try:
        preview = await asyncio.to_thread(admin_actions.retention_preview, archive, user,
                                          proposed, config.timezone)
    except ValueError as exc:
        request["identity"].session.flash = ("error", message_of(exc))
        raise web.HTTPSeeOther("/retention") from None
    return render(request, "retention_preview.html", preview=preview, change=change,
                  proposed=proposed, timezone=config.timezone)


def _proposed(request: web.Request, current: dict) -> tuple[dict, dict]:
    """(the change as the form gives it, the policies it would make)."""
    if form_field(request, "kind") == "saved":
        name, days = chosen_field(request, "name"), form_field(request, "days")
        saved = dict(current["saved"])
        if days:
            saved[name] = _days(days)
        else:
            saved.pop(name, None)
        return ({"kind": "saved", "name": name, "days": days},
                {**current, "saved": saved})
    enabled = form_field(request, "enabled") == "on"
    days = form_field(request, "global_days")
    return ({"kind": "global", "enabled": enabled, "global_days": days},
            {**current, "enabled": enabled, "global_days": _days(days) if days else None})


def _days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise web.HTTPBadRequest(reason=f"days: expected a number of days (1 or more), got "
                                        f"{text[:20]!r}")
    return int(text)


@page("POST", "/retention", ADMIN)
async def set_retention(request: web.Request, user: User):
    _, archive = app_context(request)
    _require_confirmation(request)
    changes = {"enabled": form_field(request, "enabled") == "on",
               "global_days": form_field(request, "global_days") or None}
    await act(request, "/retention", "Retention settings saved.", actions.set_retention,
              archive, user, changes)


@page("POST", "/retention/saved", ADMIN)
async def set_saved_retention(request: web.Request, user: User):
    _, archive = app_context(request)
    _require_confirmation(request)
    name = chosen_field(request, "name")
    await act(request, "/retention", f"Retention of {name!r} saved.",
              actions.set_saved_retention, archive, user, name,
              form_field(request, "days") or None)


def _require_confirmation(request: web.Request) -> None:
    """A change is made only from the preview's confirmation, never in one step."""
    if form_field(request, "confirmed") != "yes":
        request["identity"].session.flash = (
            "error", "Preview the change first: it shows what would be deleted now.")
        raise web.HTTPSeeOther("/retention")


# -- holds -------------------------------------------------------------------------------

@page("GET", "/holds", STAFF)
async def holds_page(request: web.Request, user: User) -> web.Response:
    config, archive = app_context(request)
    held = await asyncio.to_thread(admin_actions.holds_with_coverage, archive, config.timezone)
    saved = await asyncio.to_thread(actions.saved, archive)
    return render(request, "holds.html", holds=held, saved=saved,
                  may_remove=user.role in ADMIN)


@page("POST", "/holds", STAFF)
async def add_hold(request: web.Request, user: User):
    config, archive = app_context(request)
    saved = chosen_field(request, "saved")
    notice = await asyncio.to_thread(actions.hold_notice, archive)
    await act(request, "/holds", f"The mail of {saved!r} is held."
              + (f" Note: {notice}." if notice else ""), actions.add_hold,
              archive, user, saved, form_field(request, "until") or None,
              form_field(request, "matter") or None, form_field(request, "reason") or None,
              config.timezone)


@page("POST", "/holds/remove", ADMIN)
async def remove_hold(request: web.Request, user: User):
    _, archive = app_context(request)
    hold_id = chosen_field(request, "id")
    await act(request, "/holds", f"Hold {hold_id} removed.", actions.remove_hold, archive,
              user, hold_id, form_field(request, "created"))  # "" (no field): refused

