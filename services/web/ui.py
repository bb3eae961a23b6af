"""The web UI: pages rendered on the server with jinja2 (templates/), no script, one CSS
file. Reading pages are GET; everything that changes something is a POST form carrying
the session's CSRF token, answered with a redirect and a one-time message."""
from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from firmware.errors import ArchiverError

from services.policy import audit
from services.archive import dates
from services.appliance import totp
from services.appliance.sign_in import is_directory_user
from services.web.auth import DirectoryDown, SecondFactorNeeded, client_address
from services.appliance.users import User
from services.web import actions, formatting
from services.web.api import ADMIN, EVERYONE, STAFF, download_attachment, download_raw
from services.web.auth import LOGIN_COOKIE, LoginFailed, tokens_match

SAFE_NEXT = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*")
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
# The menu: (path, label, roles that see it).
NAVIGATION = (("/search", "Search", EVERYONE), ("/status", "Status", STAFF),
              ("/mirror", "Mirroring", ADMIN), ("/sources", "Mail sources", ADMIN),
              ("/saved", "Saved searches", STAFF), ("/retention", "Retention", STAFF),
              ("/holds", "Holds", STAFF), ("/audit", "Audit log", STAFF),
              ("/users", "Users", ADMIN), ("/account", "Account", EVERYONE))
PAGES: list[tuple[str, str, tuple[str, ...], object]] = []
# What an account that must set up two-factor sign-in first may still reach.
ENROLMENT_PATHS = ("/account", "/logout")


def page(method: str, path: str, roles=EVERYONE):
    def register(handler):
        PAGES.append((method, path, roles, handler))
        return handler
    return register


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", _home)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", log_in)
    app.router.add_post("/login/code", log_in_code)
    for method, path, roles, handler in PAGES:
        app.router.add_route(method, path, _guarded(handler, roles))


def _guarded(handler, roles):
    async def handle(request: web.Request) -> web.StreamResponse:
        identity = request["identity"]
        if identity.user is None or identity.via != "session":
            target = request.path_qs if request.method == "GET" else "/search"
            raise web.HTTPSeeOther("/login?" + urlencode({"next": target}))
        if identity.user.role not in roles:
            raise web.HTTPForbidden(reason=f"{identity.user.role}s may not see this page")
        if (not request.path.startswith(ENROLMENT_PATHS)
                and request.app["auth"].must_enrol(identity.user)):
            identity.session.flash = ("error", "Set up two-factor sign-in first: it is "
                                               f"required for {identity.user.role}s here.")
            raise web.HTTPSeeOther("/account")
        if request.method == "POST":
            form = await request.post()
            if not tokens_match(form.get("csrf_token"), identity.session.csrf):
                raise web.HTTPForbidden(reason="the form is out of date (no valid CSRF "
                                               "token): reload the page and try again")
            request["form"] = form
        return await handler(request, identity.user)
    return handle


# -- rendering ---------------------------------------------------------------------------

def render(request: web.Request, template: str, status: int = 200, **values
           ) -> web.Response:
    identity = request.get("identity")
    user = identity.user if identity is not None and identity.via == "session" else None
    session = identity.session if user is not None else None
    html = TEMPLATES.get_template(template).render(
        user=user, csrf_token=session.csrf if session else "",
        flash=session.take_flash() if session else None,
        navigation=[(path, label) for path, label, roles in NAVIGATION
                    if user is not None and user.role in roles],
        current=request.path, **values)
    # "replace": text an older release read from a malformed header may hold lone
    # surrogates, which UTF-8 cannot carry; one such message must not fail every page
    return web.Response(body=html.encode("utf-8", "replace"), content_type="text/html",
                        charset="utf-8", status=status)


async def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", status=status, status_code=status, message=message)


async def _home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/search")


async def _act(request: web.Request, back: str, done: str, function, *args):
    """Do a form's action; come back to `back` saying what happened."""
    session = request["identity"].session
    try:
        await _blocking(function, *args)
        session.flash = ("done", done)
    except (ArchiverError, ValueError) as exc:
        session.flash = ("error", message_of(exc))
    raise web.HTTPSeeOther(back)


def message_of(exc: BaseException) -> str:
    """An error's message as its words: str(exc), except that a KeyError's own str() quotes
    its message (repr), and those quotes go. Quotes the message has (e.g. "got '2020-13-45'")
    stay: the message's ends were once stripped of every quote mark, and lost one of them."""
    if isinstance(exc, KeyError) and type(exc).__str__ is KeyError.__str__ \
            and len(exc.args) == 1:
        return str(exc.args[0])
    return str(exc)


async def _blocking(function, *args):
    """`function(*args)` in a worker thread; or awaited, when it is a coroutine function
    (an action wrapped by _proof)."""
    if asyncio.iscoroutinefunction(function):
        return await function(*args)
    return await asyncio.to_thread(function, *args)


def _proof(request: web.Request, action):
    """`action` (which asks the signed-in user for a code or their password) run through
    Auth.proof: throttled and audited like a login."""
    user = request["identity"].user

    async def checked(*args):
        return await request.app["auth"].proof(request, user, action, *args)
    checked.__name__ = action.__name__
    return checked


def _field(request: web.Request, name: str) -> str:
    return str(request["form"].get(name, "")).strip()


def _secret(request: web.Request, name: str) -> str:
    """A password or other secret, exactly as typed: spaces at its ends are part of it
    (logging in, the API and the CLI take it so; stripped here, it would not match)."""
    return str(request["form"].get(name, ""))


def _chosen(request: web.Request, name: str) -> str:
    """A field that names what exists (a hold's id, a saved search's name), as the page
    gave it: such a name may begin or end with spaces (one from the API or a mirror peer),
    so it is never stripped as typed text is."""
    return str(request["form"].get(name, ""))


def _context(request: web.Request):
    return request.app["config"], request.app["archive"]


# The helpers above, for the page modules (search_page, message_page, admin_pages, ...).
act, form_field, chosen_field, secret_field, app_context = \
    _act, _field, _chosen, _secret, _context


# -- logging in and out ------------------------------------------------------------------

async def login_form(request: web.Request, error: str | None = None,
                     status: int = 200) -> web.Response:
    auth = request.app["auth"]
    token = auth.login_form_token(request)
    response = render(request, "login.html", status=status, error=error,
                      next=_safe_next(request.query.get("next")), login_token=token)
    auth.set_login_cookie(response, token)
    return response


async def log_in(request: web.Request) -> web.Response:
    form = await request.post()
    if not tokens_match(form.get("login_token"), request.cookies.get(LOGIN_COOKIE)):
        return await login_form(request, "The login form was out of date; try again.", 403)
    auth = request.app["auth"]
    try:
        user, codes = await auth.login(request, str(form.get("name", "")),
                                       str(form.get("password", "")), "form")
    except SecondFactorNeeded as needed:
        return await code_form(request, auth.pending.open(needed.user), form.get("next"))
    except DirectoryDown as down:
        return await login_form(request, _sentence(str(down)), 503)
    except LoginFailed:
        return await login_form(request, "Wrong name or password.", 401)
    response = web.HTTPSeeOther(_safe_next(form.get("next")))
    auth.start_session(response, user, codes)
    raise response


async def code_form(request: web.Request, pending: str, next_path, error: str | None = None,
                    status: int = 200) -> web.Response:
    """The login's second step: the two-factor code (or a recovery code)."""
    auth = request.app["auth"]
    token = auth.login_form_token(request)
    response = render(request, "login_code.html", status=status, error=error, pending=pending,
                      next=_safe_next(next_path), login_token=token)
    auth.set_login_cookie(response, token)
    return response


async def log_in_code(request: web.Request) -> web.Response:
    form = await request.post()
    if not tokens_match(form.get("login_token"), request.cookies.get(LOGIN_COOKIE)):
        return await login_form(request, "The login form was out of date; try again.", 403)
    auth, pending = request.app["auth"], str(form.get("pending", ""))
    try:
        user, codes = await auth.finish_login(request, pending, str(form.get("code", "")))
    except LoginFailed:
        if auth.pending.peek(pending) is None:  # expired or out of tries: start again
            return await login_form(request, "That sign-in has ended (too late, or too many "
                                    "wrong codes): give your name and password again.", 401)
        return await code_form(request, pending, form.get("next"),
                               "Wrong or already used code.", 401)
    response = web.HTTPSeeOther(_safe_next(form.get("next")))
    auth.start_session(response, user, codes)
    raise response


@page("POST", "/logout")
async def log_out(request: web.Request, user: User) -> web.Response:
    response = web.HTTPSeeOther("/login")
    request.app["auth"].end_session(response, request["identity"])
    await asyncio.to_thread(audit.record, request.app["archive"].store, user.actor, "logout")
    raise response


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + "."


def _safe_next(target) -> str:
    """Only a path of this site, never another site (an open redirect): browsers read
    "//host", "/\\host" and "/<TAB>/host" as other sites, so only plain URL characters."""
    target = str(target or "")
    if SAFE_NEXT.fullmatch(target) and not target.startswith("//"):
        return target
    return "/search"


# -- mail --------------------------------------------------------------------------------

@page("GET", "/message/{digest}/raw")
async def message_raw(request: web.Request, user: User) -> web.StreamResponse:
    return await download_raw(request, user)


@page("GET", "/message/{digest}/attachment/{number}")
async def message_attachment(request: web.Request, user: User) -> web.StreamResponse:
    number = request.match_info["number"]
    if not number.isdigit():
        raise web.HTTPNotFound(reason="attachments are numbered from 1")
    return await download_attachment(request, user, int(number))


# -- the system --------------------------------------------------------------------------

@page("GET", "/mirror", ADMIN)
async def mirror_page(request: web.Request, user: User) -> web.Response:
    overview = await asyncio.to_thread(actions.mirror_overview, *_context(request))
    return render(request, "mirror.html", mirror=overview)


@page("POST", "/mirror/join", ADMIN)
async def mirror_join(request: web.Request, user: User):
    config, archive = _context(request)
    peer = _field(request, "peer")
    await _act(request, "/mirror", f"Joined {peer}: mail archived from now on is copied.",
               actions.mirror_join, config, archive, user, peer,
               _secret(request, "secret") or None)


@page("POST", "/mirror/leave", ADMIN)
async def mirror_leave(request: web.Request, user: User):
    _, archive = _context(request)
    peer = _field(request, "peer")
    await _act(request, "/mirror", f"Left {peer}.", actions.mirror_leave, archive, user, peer)


@page("POST", "/mirror/backfill", ADMIN)
async def mirror_backfill(request: web.Request, user: User):
    config, archive = _context(request)
    peer = _field(request, "peer")
    await _act(request, "/mirror", f"Everything archived here is queued for {peer}.",
               actions.mirror_backfill, config, archive, user, peer)


@page("GET", "/sources", ADMIN)
async def sources_page(request: web.Request, user: User) -> web.Response:
    sources = await asyncio.to_thread(actions.mail_sources, *_context(request))
    return render(request, "sources.html", sources=sources)


# -- saved searches, retention, holds ----------------------------------------------------

@page("GET", "/saved", STAFF)
async def saved_page(request: web.Request, user: User) -> web.Response:
    _, archive = _context(request)
    saved = await asyncio.to_thread(actions.saved, archive)
    return render(request, "saved.html", saved=saved, query=request.query.get("q", ""))


@page("POST", "/saved", STAFF)
async def save_search(request: web.Request, user: User):
    config, archive = _context(request)
    name = _field(request, "name")
    await _act(request, "/saved", f"Saved search {name!r} saved.", actions.save_search,
               archive, user, name, _field(request, "query"), config.timezone)


@page("POST", "/saved/delete", STAFF)
async def delete_saved(request: web.Request, user: User):
    _, archive = _context(request)
    name = _chosen(request, "name")
    await _act(request, "/saved", f"Saved search {name!r} deleted.", actions.delete_saved,
               archive, user, name)


# -- one's own account -------------------------------------------------------------------

@page("GET", "/account")
async def account_page(request: web.Request, user: User) -> web.Response:
    two_factor = await asyncio.to_thread(actions.two_factor_view, *_context(request), user,
                                         request["identity"].session.enrolment)
    return render(request, "account.html", two_factor=two_factor,
                  directory_account=is_directory_user(user))


@page("POST", "/account/two-factor/begin")
async def begin_two_factor(request: web.Request, user: User):
    """The enrolment is this session's alone (Session.enrolment): no other session of the
    account sees its secret or confirms it."""
    session = request["identity"].session

    def begin(*args):
        session.enrolment = actions.begin_two_factor(*args)
    await _act(request, "/account", "Scan the code with your app, then give the code it shows.",
               begin, *_context(request), user)


@page("POST", "/account/two-factor/confirm")
async def confirm_two_factor(request: web.Request, user: User) -> web.Response:
    """Codes on: this session takes their state (Session.next_codes while they go on, so that
    none of its requests meanwhile is ended; Session.codes once they are), the account's
    other sessions end."""
    session, client = request["identity"].session, client_address(request)

    def confirm(archive, user: User, code: str) -> list[str]:
        enrolment = session.enrolment
        session.next_codes = enrolment.state if enrolment is not None else None
        try:
            codes = actions.confirm_two_factor(archive, user, enrolment, code, client)
            session.codes = enrolment.state
        finally:
            session.next_codes = None
        session.enrolment = None
        return codes
    return await _recovery_codes(request, user, confirm, first=True)


@page("POST", "/account/two-factor/recovery")
async def renew_recovery_codes(request: web.Request, user: User) -> web.Response:
    renew, client = _proof(request, actions.renew_recovery_codes), client_address(request)

    async def renew_from_client(archive, user: User, code: str) -> list[str]:
        return await renew(archive, user, code, client)
    return await _recovery_codes(request, user, renew_from_client, first=False)


async def _recovery_codes(request: web.Request, user: User, action, first: bool
                          ) -> web.Response:
    """Run `action` (archive, user, code) -> recovery codes and show them once; a wrong code
    goes back to the account page with the reason."""
    _, archive = _context(request)
    try:
        codes = await _blocking(action, archive, user, _field(request, "code"))
    except ArchiverError as exc:
        request["identity"].session.flash = ("error", str(exc))
        raise web.HTTPSeeOther("/account") from None
    return render(request, "recovery_codes.html", codes=codes, first=first)


@page("POST", "/account/two-factor/off")
async def end_two_factor(request: web.Request, user: User):
    """Codes off: this session takes the new state (as confirm_two_factor), the account's
    other sessions end. Also "Cancel" for an enrolment begun: nothing was on, nothing
    changes but that."""
    session = request["identity"].session
    session.enrolment = None
    _, archive = _context(request)
    state = totp.new_state()
    session.next_codes = state
    try:
        switched = await _proof(request, actions.end_two_factor)(
            request.app["config"], archive, user, _field(request, "code"), state,
            client_address(request))
        if switched:
            session.codes = state
        session.flash = ("done", "Two-factor sign-in is off." if switched
                         else "Setting up two-factor sign-in was cancelled.")
    except (ArchiverError, ValueError) as exc:
        session.flash = ("error", message_of(exc))
    finally:
        session.next_codes = None
    raise web.HTTPSeeOther("/account")


@page("POST", "/account/password")
async def change_password(request: web.Request, user: User):
    _, archive = _context(request)
    session = request["identity"].session
    if _secret(request, "new_password") != _secret(request, "repeat_password"):
        session.flash = ("error", "The new passwords differ.")
        raise web.HTTPSeeOther("/account")
    try:
        changed = await _proof(request, actions.change_password)(
            archive, user, _secret(request, "current_password"), _secret(request, "new_password"))
    except (ArchiverError, ValueError) as exc:
        session.flash = ("error", str(exc))
        raise web.HTTPSeeOther("/account") from None
    # The new password ended every session of the user, this one too: open a new one.
    response = web.HTTPSeeOther("/account")
    renewed = request.app["auth"].start_session(response, changed, session.codes)
    renewed.flash = ("done", "Password changed; other sessions of yours are logged out.")
    raise response


# -- template filters --------------------------------------------------------------------

def _when(epoch, timezone: str = "UTC") -> str:
    if not epoch:
        return "-"
    zone = dt.timezone.utc if timezone == "UTC" else dates.zone(timezone)
    try:
        return dt.datetime.fromtimestamp(float(epoch), zone).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError, OSError):  # a peer's odd time: shown, not a crash
        return str(epoch)


TEMPLATES.filters.update(when=_when, **formatting.FILTERS)
