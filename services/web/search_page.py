"""The results page (/search) and what it does with chosen messages (/selection): export
them, place them on hold, save them as a search, for the ticked rows or all results."""
from __future__ import annotations

import asyncio
import datetime as dt
import re

from aiohttp import web

from firmware.errors import ArchiverError

from services.appliance.users import User
from services.archive.evidence import EmptyExport
from services.archive.highlight import Highlighter
from services.archive.search import PatternTooBroad, QuerySyntaxError
from services.web import actions, admin_actions, export, results
from services.web.api import STAFF
from services.web.ui import app_context, form_field, message_of, page, render

DATE_FIELDS = ("since", "until")


@page("GET", "/search")
async def search_page(request: web.Request, user: User) -> web.Response:
    config, archive = app_context(request)
    asked = results.Asked.of(request.query)
    if any(request.query.get(name) for name in DATE_FIELDS):
        _write_dates(request, asked)
    found, rows, error, understood = None, [], None, None
    if asked.query is not None:
        try:
            found = await asyncio.to_thread(
                actions.search, archive, user, asked.query, asked.size, asked.offset, False,
                config.timezone, asked.sort, asked.descending)
            understood = await asyncio.to_thread(actions.explain, archive, user, asked.query,
                                                 config.timezone)
            rows = await asyncio.to_thread(results.rows, archive, user, found.hits,
                                           Highlighter.of_query(asked.query))
        except (QuerySyntaxError, PatternTooBroad) as exc:
            error = exc
    saved = await asyncio.to_thread(actions.saved, archive) if user.role in STAFF else []
    return render(request, "search.html", asked=asked, query=asked.query or "",
                  results=found, rows=rows, error=error, understood=understood,
                  timezone=config.timezone, saved=saved, staff=user.role in STAFF,
                  page_sizes=results.PAGE_SIZES)


def _write_dates(request: web.Request, asked: results.Asked) -> None:
    """The date pickers' days written into the query as `date:A..B`, then the search
    again with that query, so the query box shows what was searched."""
    days = []
    for name in DATE_FIELDS:
        value = request.query.get(name, "")
        try:
            days.append(dt.date.fromisoformat(value).isoformat() if value else "")
        except ValueError:
            raise web.HTTPBadRequest(reason=f"{name}: expected a day YYYY-MM-DD, got "
                                            f"{value[:40]!r}") from None
    since, until = days
    written = f"date:{since}" if since == until else f"date:{since}..{until}"
    query = f"{without_dates(asked.query or '')} {written}".strip()
    raise web.HTTPSeeOther(asked.url(query=query, offset=0))


# A date: term (and the AND joining it), or a quoted phrase, which is left as it is.
_DATE_TERM = re.compile(r'"[^"]*"?|(?:(?<!\S)AND\s+)?(?<!\S)date:\S*', re.IGNORECASE)


def without_dates(query: str) -> str:
    """The query less its date: terms (and an AND before one), which the pickers replace;
    words in quotes are left as they are."""
    kept = _DATE_TERM.sub(lambda found: found.group(0) if found.group(0).startswith('"')
                          else "", query)
    return re.sub(r"\s+(?:AND\s*)?$|^\s*AND\s+", "", re.sub(r"[ \t]{2,}", " ", kept)).strip()


@page("POST", "/selection")
async def act_on_selection(request: web.Request, user: User) -> web.StreamResponse:
    """One form for the chosen rows or all results: `scope` (selected or all), `action`
    (export-zip, export-mbox, hold, save) and the fields of that action."""
    config, archive = app_context(request)
    form = request["form"]
    query = form_field(request, "q")
    back = results.Asked.of({key: str(form.get(key, "")) for key in
                             ("q", "sort", "order", "size", "offset")}).url()
    digests = None if form_field(request, "scope") == "all" else \
        [str(value) for value in form.getall("digest", [])]
    action = form_field(request, "action")
    session = request["identity"].session
    try:
        if action in ("export-zip", "export-mbox"):
            return await export.start(request, archive, user, action.split("-")[1],
                                      config.timezone, query=query, digests=digests)
        if user.role not in STAFF:
            raise web.HTTPForbidden(reason=f"{user.role}s may export their mail, not hold "
                                           "or save it")
        if action == "hold":
            notice = await asyncio.to_thread(actions.hold_notice, archive)
            name, hold_id = await asyncio.to_thread(
                admin_actions.hold_chosen, archive, user, form_field(request, "matter"),
                form_field(request, "reason"), form_field(request, "until") or None, query,
                digests, config.timezone)
            session.flash = ("done", f"Placed on hold {hold_id} for "
                                     f"{form_field(request, 'matter')!r} (saved search "
                                     f"{name!r})." + (f" Note: {notice}." if notice
                                                        else ""))
            raise web.HTTPSeeOther("/holds")
        if action == "save":
            name = form_field(request, "name")
            await asyncio.to_thread(admin_actions.save_chosen, archive, user, name, query,
                                    digests, config.timezone)
            session.flash = ("done", f"Saved search {name!r} saved.")
            raise web.HTTPSeeOther("/saved")
        raise web.HTTPBadRequest(reason=f"unknown action {action[:40]!r}")
    except (EmptyExport, export.BadExport, QuerySyntaxError, ArchiverError) as exc:
        session.flash = ("error", message_of(exc))
        raise web.HTTPSeeOther(back) from None
