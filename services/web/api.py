"""The HTTP API under /api/. Each endpoint is declared once, with its roles, parameters
and schemas; the routes and the OpenAPI document (/api/openapi.json) are both made from
that table. Every endpoint but the document and login answers 401 without a login."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from services.policy import audit
from services.policy.holds import UnknownHold
from services.policy.saved_searches import UnknownSavedSearch
from services.web.auth import DirectoryDown
from services.appliance.users import User
from services.web import actions, export, mail_view, openapi
from services.web.auth import CSRF_HEADER, Identity, LoginFailed, client_address, tokens_match
from services.web.transfers import Transfers

EVERYONE = ("admin", "auditor", "user")
STAFF = ("admin", "auditor")
ADMIN = ("admin",)
JSON = "application/json"
CHANGING_METHODS = {"POST", "PUT", "DELETE", "PATCH"}
REST_OF_PATH = ".+"  # what a path parameter naming something someone chose matches

Handler = Callable[[web.Request, User], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    type: str = "string"
    required: bool = False
    default: Any = None
    enum: tuple = ()


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    roles: tuple[str, ...]
    handler: Handler
    params: tuple[Param, ...] = ()
    body: dict | None = None
    response: str | dict | None = None  # a schema name of openapi.SCHEMAS, or a schema
    produces: str = JSON
    public: bool = False
    # Whether the path's last parameter is a name someone chose (a hold id, a saved
    # search's name): any text, "/" included, so it takes the rest of the path.
    names_in_path: bool = False

    @property
    def route(self) -> str:
        """The path as the router matches it. aiohttp's {name} stops at a "/", and
        whether it takes a %2F has changed between aiohttp releases: a chosen name
        matches the rest of the path. Clients are told to send "/" as %2F (openapi):
        with "/" as it is they resolve "." and ".." segments first, which is why a saved
        search's name may not have them (saved_searches.check)."""
        if not self.names_in_path:
            return self.path
        head, _, last = self.path.rpartition("/")
        if not (last.startswith("{") and last.endswith("}")):
            raise ValueError(f"{self.path}: only a path's last parameter can be a name")
        return f"{head}/{last[:-1]}:{REST_OF_PATH}}}"


ENDPOINTS: list[Endpoint] = []


def endpoint(method: str, path: str, summary: str, roles=EVERYONE, **details):
    def register(handler: Handler) -> Handler:
        ENDPOINTS.append(Endpoint(method, path, summary, roles, handler, **details))
        return handler
    return register


def add_routes(app: web.Application) -> None:
    for declared in ENDPOINTS:
        app.router.add_route(declared.method, declared.route, _guarded(declared))


def _guarded(declared: Endpoint):
    async def handle(request: web.Request) -> web.StreamResponse:
        identity: Identity = request["identity"]
        if not declared.public:
            if identity.user is None:
                raise json_error(web.HTTPUnauthorized, "log in first (POST /api/session or "
                                 "HTTP Basic credentials)",
                                 headers={"WWW-Authenticate": 'Basic realm="archiver"'})
            if identity.user.role not in declared.roles:
                raise json_error(web.HTTPForbidden, f"{identity.user.role}s may not do this")
            if request.method in CHANGING_METHODS:
                _check_not_forged(request, identity)
            if declared.path != "/api/session" and request.app["auth"].must_enrol(identity.user):
                raise json_error(web.HTTPForbidden, "two-factor sign-in is required for "
                                 f"{identity.user.role}s here: set it up on the account page "
                                 "(/account) first")
        request["endpoint"] = declared  # json_body checks the body against its schema
        return await declared.handler(request, identity.user)
    handle.__name__ = declared.handler.__name__
    return handle


def _check_not_forged(request: web.Request, identity: Identity) -> None:
    """A session must send its CSRF token; Basic credentials, which a browser may send by
    itself, need a JSON body, which no cross-site form can send."""
    if identity.via == "session":
        if not tokens_match(request.headers.get(CSRF_HEADER), identity.session.csrf):
            raise json_error(web.HTTPForbidden, f"missing or wrong {CSRF_HEADER} header")
    elif request.content_type != JSON:
        raise json_error(web.HTTPForbidden, "send Content-Type: application/json")


def json_error(kind: type[web.HTTPException], message: str, **options) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type=JSON, **options)


def reply(data: Any) -> web.Response:
    return web.json_response(data, dumps=lambda value: json.dumps(value, default=str))


def blocking(function, *args):
    """Run a blocking action (LMDB, Xapian, scrypt) off the event loop."""
    return asyncio.to_thread(function, *args)


def context(request: web.Request):
    return request.app["config"], request.app["archive"]


async def json_body(request: web.Request) -> dict:
    """The request's JSON object; 400 when it is not one, or when it has a key the
    endpoint's declared body does not (a misspelt key must not be silently ignored: an
    export with {"selection": [...]} would export everything)."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object") from None
    except RecursionError:  # arrays or objects nested deeper than the parser goes
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object, not one "
                         "nested this deeply") from None
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    declared: Endpoint | None = request.get("endpoint")
    known = ((declared.body or {}).get("properties") or {}) if declared else None
    unknown = sorted(set(body) - set(known)) if known is not None else []
    if unknown:
        raise json_error(web.HTTPBadRequest, f"{unknown[0]}: unknown key (expected "
                         f"{', '.join(known) or 'none'})")
    return body


def int_param(request: web.Request, name: str, default: int) -> int:
    value = request.query.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise json_error(web.HTTPBadRequest, f"{name}: expected an integer") from None


def bool_param(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def _string(body: dict, name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise json_error(web.HTTPBadRequest, f"{name}: expected a string")
    return value


def _session_json(user: User, csrf: str | None) -> dict:
    return {**user.as_json(), "csrf_token": csrf}


# -- the document and the session ------------------------------------------------------

@endpoint("GET", "/api/openapi.json", "This document", public=True, response={"type": "object"})
async def get_openapi(request: web.Request, user: User | None) -> web.Response:
    return reply(openapi.document(ENDPOINTS))


@endpoint("POST", "/api/session", "Log in: sets the session cookie", public=True,
          body={"type": "object", "required": ["name", "password"],
                "properties": {"name": {"type": "string"}, "password": {"type": "string"},
                               "code": {"type": "string", "description":
                                        "two-factor code (or recovery code), for accounts "
                                        "that use them"}}},
          response="Session")
async def log_in(request: web.Request, user: User | None) -> web.Response:
    if request.content_type != JSON:  # a cross-site form cannot log a browser in
        raise json_error(web.HTTPForbidden, "send Content-Type: application/json")
    body = await json_body(request)
    auth = request.app["auth"]
    try:
        user, codes = await auth.login(request, _string(body, "name"),
                                       _string(body, "password"), "api",
                                       _string(body, "code", required=False))
    except DirectoryDown as down:
        raise json_error(web.HTTPServiceUnavailable, str(down)) from None
    except LoginFailed as failure:
        raise json_error(web.HTTPUnauthorized, str(failure)) from None
    session = auth.sessions.open(user, codes)
    response = reply(_session_json(user, session.csrf))
    auth.set_session_cookie(response, session)
    return response


@endpoint("GET", "/api/session", "Who is logged in, and the session's CSRF token",
          response="Session")
async def get_session(request: web.Request, user: User) -> web.Response:
    session = request["identity"].session
    return reply(_session_json(user, session.csrf if session else None))


@endpoint("DELETE", "/api/session", "Log out")
async def log_out(request: web.Request, user: User) -> web.Response:
    response = reply({"logged_out": user.name})
    request.app["auth"].end_session(response, request["identity"])
    await blocking(_audit_logout, request.app["archive"], user)
    return response


def _audit_logout(archive, user: User) -> None:
    audit.record(archive.store, user.actor, "logout")


@endpoint("PUT", "/api/session/password",
          "Change one's own password (ends other sessions; a session that asks stays logged "
          "in, as a new session: a new cookie, and the new csrf_token in the reply)",
          body={"type": "object", "required": ["current_password", "new_password"],
                "properties": {"current_password": {"type": "string"},
                               "new_password": {"type": "string", "minLength": 8}}},
          response={"type": "object", "properties": {
              "changed": {"type": "boolean"},
              "csrf_token": {"type": "string", "nullable": True, "description":
                             "the new session's (null for HTTP Basic credentials)"}}})
async def change_password(request: web.Request, user: User) -> web.Response:
    body = await json_body(request)
    _, archive = context(request)
    auth, identity = request.app["auth"], request["identity"]
    changed = await auth.proof(request, user, actions.change_password, archive, user,
                               _string(body, "current_password"), _string(body, "new_password"))
    if identity.session is None:  # HTTP Basic: the next request gives the new password
        return reply({"changed": True, "csrf_token": None})
    # The new password ended every session of the user, this one too: as the account page
    # does, the session that proved the current password goes on as a new one.
    auth.sessions.close(identity.session.token)
    renewed = auth.sessions.open(changed, identity.session.codes)
    response = reply({"changed": True, "csrf_token": renewed.csrf})
    auth.set_session_cookie(response, renewed)
    return response


# -- mail --------------------------------------------------------------------------------

QUERY = Param("q", "the query (README: words, \"phrases\", arch*, AND/OR/NOT, from: to: cc: "
                   "bcc: subject: body: attachment: filename: date:A..B (also today, "
                   "yesterday, 7d, 2w, 3m, 1y; days of the appliance's time zone) before: "
                   "after: size:A..B has: type: source:); empty finds everything; a query "
                   "the syntax does not know is a 400 saying what and at which column")


@endpoint("GET", "/api/search", "Search (newest first); a user finds only their own mail",
          params=(QUERY, Param("limit", "hits per page (1-500)", "integer", default=50),
                  Param("offset", "hits to skip", "integer", default=0),
                  Param("oldest_first", "true: oldest first", "boolean", default=False),
                  Param("sort", "date or size (largest first), from or subject (A to Z)",
                        default="date", enum=("date", "size", "from", "subject")),
                  Param("order", "asc or desc: the other way than the sort's own",
                        enum=("asc", "desc")),
                  Param("explain", "true: how the query is understood (query, timezone, "
                                   "explanation lines, xapian) instead of hits", "boolean",
                        default=False)),
          response="SearchResults")
async def search(request: web.Request, user: User) -> web.Response:
    config, archive = context(request)
    query = request.query.get("q", "")
    if bool_param(request, "explain"):
        return reply(await blocking(actions.explain, archive, user, query, config.timezone))
    order = request.query.get("order")
    if order not in (None, "asc", "desc"):
        raise json_error(web.HTTPBadRequest, "order: expected asc or desc")
    results = await blocking(actions.search, archive, user, query,
                             int_param(request, "limit", 50), int_param(request, "offset", 0),
                             bool_param(request, "oldest_first"), config.timezone,
                             request.query.get("sort", "date"),
                             None if order is None else order == "desc")
    return reply({"query": query, "total": results.total, "total_exact": not results.more,
                  "total_text": results.total_text(), "notice": results.notice,
                  "not_indexed": results.not_indexed, "offset": results.offset, "hits": [hit.as_json() for hit in results.hits]})


@endpoint("GET", "/api/messages/{digest}", "A message's metadata, headers and attachments",
          response="Message")
async def get_message(request: web.Request, user: User) -> web.Response:
    _, archive = context(request)
    meta, view = await blocking(actions.message, archive, user, request.match_info["digest"])
    return reply(mail_view.message_json(meta, view.as_json()))


@endpoint("GET", "/api/messages/{digest}/raw", "The message byte-exact, as received",
          produces="message/rfc822")
async def get_raw(request: web.Request, user: User) -> web.StreamResponse:
    return await download_raw(request, user)


@endpoint("GET", "/api/messages/{digest}/attachments/{number}",
          "An attachment (numbered from 1 as the message lists them)",
          produces="application/octet-stream")
async def get_attachment(request: web.Request, user: User) -> web.StreamResponse:
    number = request.match_info["number"]
    if not number.isdigit():
        raise json_error(web.HTTPNotFound, "attachments are numbered from 1")
    return await download_attachment(request, user, int(number))


async def download_raw(request: web.Request, user: User) -> web.StreamResponse:
    """The raw message of the path's {digest}, fetched and sent on the transfer pool."""
    _, archive = context(request)
    digest = request.match_info["digest"]
    transfers: Transfers = request.app["transfers"]
    async with transfers.slot(user):
        raw = await transfers.run(actions.raw_message, archive, user, digest)
        return await transfers.send(request, raw, f"{digest}.eml", "message/rfc822")


async def download_attachment(request: web.Request, user: User, number: int
                              ) -> web.StreamResponse:
    """Attachment `number` of the path's {digest}, fetched and sent on the transfer pool."""
    _, archive = context(request)
    transfers: Transfers = request.app["transfers"]
    async with transfers.slot(user):
        found, data = await transfers.run(actions.attachment, archive, user,
                                          request.match_info["digest"], number)
        return await transfers.send(request, data, found.filename, "application/octet-stream")


@endpoint("GET", "/api/export", "Export what a search finds, streamed: one zip with the "
                                "messages (.eml files, or one mbox), manifest.csv, export.json "
                                "and SHA256SUMS; 400 when nothing matches",
          params=(QUERY, Param("format", "zip or mbox", required=True, enum=("zip", "mbox"))),
          produces="application/zip")
async def get_export(request: web.Request, user: User) -> web.StreamResponse:
    config, archive = context(request)
    query, fmt = request.query.get("q", ""), request.query.get("format", "")
    return await export.start(request, archive, user, fmt, config.timezone, query=query)


@endpoint("POST", "/api/exports", "Export chosen messages (or a query's matches), streamed "
                                  "as GET /api/export does",
          body={"type": "object", "required": ["format"], "properties": {
              "format": {"type": "string", "enum": ["zip", "mbox"]},
              "digests": {"type": "array", "items": {"type": "string"},
                          "description": "the messages, in this order; those one may not "
                                         "read are left out"},
              "query": {"type": "string", "description": "instead of digests; \"\" is all "
                                                         "the mail the caller may read"}}},
          produces="application/zip")
async def post_export(request: web.Request, user: User) -> web.StreamResponse:
    body = await json_body(request)
    config, archive = context(request)
    digests = body.get("digests")
    if digests is not None and (not isinstance(digests, list)
                                or not all(isinstance(d, str) for d in digests)):
        raise json_error(web.HTTPBadRequest, "digests: expected a list of strings")
    # Neither was an export of everything the caller may read: say so, never assume it.
    # A null is an absent field (clients generated from OpenAPI send unused ones so).
    if (digests is None) == (body.get("query") is None):
        raise json_error(web.HTTPBadRequest, 'give "digests" or "query" (one of them; '
                                             'query "" exports all the mail you may read)')
    return await export.start(request, archive, user, _string(body, "format"),
                              config.timezone, query=_string(body, "query", required=False),
                              digests=digests)


# -- the system --------------------------------------------------------------------------

@endpoint("GET", "/api/status", "Services, queues, counters, storage, peers, resources",
          roles=STAFF, response="Status")
async def get_status(request: web.Request, user: User) -> web.Response:
    return reply(await blocking(actions.status, *context(request)))


@endpoint("GET", "/api/mirror", "Mirroring settings (never the secret) and each peer's status",
          roles=ADMIN, response="Mirror")
async def get_mirror(request: web.Request, user: User) -> web.Response:
    return reply(await blocking(actions.mirror_overview, *context(request)))


@endpoint("POST", "/api/mirror/peers", "Join a peer: copy mail archived from now on to it",
          roles=ADMIN, body={"type": "object", "required": ["peer"], "properties": {
              "peer": {"type": "string", "description": "HOST:PORT"},
              "secret": {"type": "string", "description": "the shared secret (at least 20 "
                                                          "characters, hard to guess); "
                                                          "default: the one set"}}})
async def join_peer(request: web.Request, user: User) -> web.Response:
    body = await json_body(request)
    config, archive = context(request)
    await blocking(actions.mirror_join, config, archive, user, _string(body, "peer"),
                   _string(body, "secret", required=False))
    return reply({"joined": body["peer"]})


@endpoint("DELETE", "/api/mirror/peers/{peer}", "Stop copying to a joined peer", roles=ADMIN)
async def leave_peer(request: web.Request, user: User) -> web.Response:
    _, archive = context(request)
    await blocking(actions.mirror_leave, archive, user, request.match_info["peer"])
    return reply({"left": request.match_info["peer"]})


@endpoint("POST", "/api/mirror/peers/{peer}/backfill",
          "Queue everything archived here for a peer", roles=ADMIN)
async def backfill_peer(request: web.Request, user: User) -> web.Response:
    config, archive = context(request)
    queued = await blocking(actions.mirror_backfill, config, archive, user,
                            request.match_info["peer"])
    return reply({"queued": queued})


@endpoint("GET", "/api/journal/accounts", "Journal mailboxes (no passwords) and their status",
          roles=ADMIN)
async def get_journal_accounts(request: web.Request, user: User) -> web.Response:
    sources = await blocking(actions.mail_sources, *context(request))
    return reply({"accounts": sources["journal_accounts"]})


@endpoint("GET", "/api/sources", "Every mail source: SMTP intake and journal mailboxes",
          roles=ADMIN)
async def get_sources(request: web.Request, user: User) -> web.Response:
    return reply(await blocking(actions.mail_sources, *context(request)))


# -- saved searches, retention, holds ----------------------------------------------------

@endpoint("GET", "/api/saved-searches", "The saved searches", roles=STAFF,
          response={"type": "array", "items": {"$ref": "#/components/schemas/SavedSearch"}})
async def get_saved(request: web.Request, user: User) -> web.Response:
    _, archive = context(request)
    return reply(await blocking(actions.saved, archive))


@endpoint("PUT", "/api/saved-searches/{name}", "Save a search under a name", roles=STAFF,
          names_in_path=True,
          body={"type": "object", "required": ["query"],
                "properties": {"query": {"type": "string"}}})
async def put_saved(request: web.Request, user: User) -> web.Response:
    body = await json_body(request)
    config, archive = context(request)
    name, query = request.match_info["name"], body.get("query")
    if query is None:  # missing: not "" (which matches all mail), as the body declares
        raise json_error(web.HTTPBadRequest, 'query: required (a string; "" matches all '
                         "mail)")
    if not isinstance(query, str):
        raise json_error(web.HTTPBadRequest, "query: expected a string")
    await blocking(actions.save_search, archive, user, name, query, config.timezone)
    return reply({"name": name, "query": query})


@endpoint("DELETE", "/api/saved-searches/{name}",
          "Delete a saved search no hold or retention policy uses", roles=STAFF,
          names_in_path=True)
async def delete_saved(request: web.Request, user: User) -> web.Response:
    _, archive = context(request)
    await _on_named(actions.delete_saved, archive, user, request.match_info["name"])
    return reply({"deleted": request.match_info["name"]})


@endpoint("GET", "/api/retention", "The retention policies", roles=STAFF, response="Retention")
async def get_retention(request: web.Request, user: User) -> web.Response:
    _, archive = context(request)
    return reply(await blocking(actions.retention_policies, archive))


@endpoint("PUT", "/api/retention", "Turn retention on or off; set the global policy",
          roles=ADMIN, body={"type": "object", "properties": {
              "enabled": {"type": "boolean"},
              "global_days": {"type": "integer", "nullable": True, "minimum": 1,
                              "description": "null: keep forever"}}})
async def put_retention(request: web.Request, user: User) -> web.Response:
    body = await json_body(request)
    _, archive = context(request)
    await blocking(actions.set_retention, archive, user, body)
    return reply(await blocking(actions.retention_policies, archive))


@endpoint("PUT", "/api/retention/saved/{name}", "Set a saved search's retention", roles=ADMIN,
          names_in_path=True,
          body={"type": "object", "required": ["days"], "properties": {
              "days": {"type": "integer", "nullable": True, "minimum": 1,
                       "description": "null: remove the policy"}}})
async def put_saved_retention(request: web.Request, user: User) -> web.Response:
    body = await json_body(request)
    _, archive = context(request)
    await _on_named(actions.set_saved_retention, archive, user, request.match_info["name"],
                    body.get("days"))
    return reply(await blocking(actions.retention_policies, archive))


@endpoint("GET", "/api/holds", "The litigation holds", roles=STAFF,
          response={"type": "array", "items": {"$ref": "#/components/schemas/Hold"}})
async def get_holds(request: web.Request, user: User) -> web.Response:
    _, archive = context(request)
    return reply(await blocking(actions.all_holds, archive))


@endpoint("POST", "/api/holds", "Hold the mail a saved search matches", roles=STAFF,
          body={"type": "object", "required": ["saved"], "properties": {
              "saved": {"type": "string", "description": "a saved search's name"},
              "until": {"type": "string", "format": "date", "nullable": True,
                        "description": "through this day; default: indefinitely"},
              "name": {"type": "string", "nullable": True,
                       "description": "the matter's name"},
              "reason": {"type": "string", "nullable": True}}},
          response="Hold")
async def post_hold(request: web.Request, user: User) -> web.Response:
    body = await json_body(request)
    config, archive = context(request)
    notice = await blocking(actions.hold_notice, archive)
    hold_id = await blocking(actions.add_hold, archive, user, _string(body, "saved"),
                             _string(body, "until", required=False),
                             _string(body, "name", required=False),
                             _string(body, "reason", required=False), config.timezone)
    held = {hold["id"]: hold for hold in await blocking(actions.all_holds, archive)}
    return reply({**held[hold_id], **({"notice": notice} if notice else {})})


@endpoint("DELETE", "/api/holds/{id}", "Remove a hold: the one created at `created`, if "
          "given (409 when another hold has the id now); without it, only while no other "
          "hold shares the id (409 names them)", roles=ADMIN, names_in_path=True,
          params=(Param("created", "the hold's created time as GET /api/holds gives it "
                         "(seconds since the epoch), or none for a hold without one"),))
async def delete_hold(request: web.Request, user: User) -> web.Response:
    _, archive = context(request)
    await _on_named(actions.remove_hold, archive, user, request.match_info["id"],
                    request.query.get("created"))
    return reply({"removed": request.match_info["id"]})


async def _on_named(call: Callable, *args) -> Any:
    """blocking(call, *args) for an endpoint whose path names a saved search or a hold:
    when the one it names does not exist, 404 (as the OpenAPI document says), not the 400
    of an error in the request's content (a saved search a hold's body names)."""
    try:
        return await blocking(call, *args)
    except (UnknownSavedSearch, UnknownHold) as unknown:
        raise json_error(web.HTTPNotFound, str(unknown)) from None


# -- the audit log -----------------------------------------------------------------------

@endpoint("GET", "/api/audit", "The newest audit log entries, oldest first", roles=STAFF,
          params=(Param("limit", "how many (1-10000)", "integer", default=100),),
          response={"type": "object", "properties": {"entries": {
              "type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}}}})
async def get_audit(request: web.Request, user: User) -> web.Response:
    _, archive = context(request)
    return reply(await blocking(actions.audit_log, archive, int_param(request, "limit", 100)))


@endpoint("GET", "/api/audit/verify", "Check the audit log's hash chain", roles=STAFF,
          response={"type": "object", "properties": {
              "entries": {"type": "integer"}, "intact": {"type": "boolean"},
              "problems": {"type": "array", "items": {"type": "string"}}}})
async def get_audit_verify(request: web.Request, user: User) -> web.Response:
    _, archive = context(request)
    return reply(await blocking(actions.audit_verify, archive))
