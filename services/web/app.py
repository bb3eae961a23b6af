"""The web application: routes (api, ui, /metrics), the middleware every request passes
(who is asking, errors in words), the headers every response gets, and starting it on
web.listen, with TLS when a certificate is there."""
from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from aiohttp import web

from firmware.errors import ArchiverError

from services.archive.archive import Archive
from services.policy.audit import PermissionDenied
from services.policy.holds import HoldChanged
from services.common.config import Config, WebConfig
from services.archive.store import NotFound, OutOfSpace
from services.appliance.sign_in import SignIn
from services.web.connections import GuardedRunner
from services.web import api, metrics, ui
# The page modules register their routes with ui.page when imported.
from services.web import admin_pages, message_page, search_page, status_page  # noqa: F401
from services.web.auth import Auth, LoginFailed, Throttled
from services.web.renders import Renders
from services.web.transfers import AppStopping, Transfers, TransfersBusy

log = logging.getLogger(__name__)

DEFAULT_TLS = (Path("/etc/archiver/tls.crt"), Path("/etc/archiver/tls.key"))
STATIC_DIR = Path(__file__).parent / "static"
# No script at all, no framing, forms only to ourselves: mail is from strangers, and
# whatever of it slips into a page must not be able to act. Frames only of our own pages
# (a message's sanitized HTML, under its own stricter policy: services.web.sanitize).
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                           "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                           "base-uri 'none'")


def create_app(config: Config, archive: Archive, tls: bool) -> web.Application:
    """`tls`: whether the server speaks HTTPS (session cookies are then Secure)."""
    app = web.Application(middlewares=[_errors, _identify])
    app["config"], app["archive"], app["tls"] = config, archive, tls
    app["auth"] = Auth(archive, secure_cookies=tls, sign_in=SignIn(archive, config.directory),
                       two_factor_roles=tuple(config.two_factor.required_for))
    app["transfers"] = Transfers(config.web.transfers, config.web.transfers_per_user,
                                 config.web.transfer_idle_seconds)
    app["renders"] = Renders()  # PDF pages: never on the threads pages and logins use
    # On shutdown, before aiohttp waits for running handlers: a transfer to a client that
    # reads nothing would otherwise hold the stop for the idle write timeout.
    app.on_shutdown.append(_close_transfers)
    api.add_routes(app)
    ui.add_routes(app)
    app.router.add_get("/metrics", metrics.handle)
    app.router.add_get("/healthz", _healthz)
    app.router.add_static("/static", STATIC_DIR)
    app.on_response_prepare.append(_security_headers)
    return app


async def start_web(config: Config, archive: Archive) -> web.AppRunner:
    """Listen on web.listen; the caller cleans the returned runner up when stopping."""
    context = tls_context(config.web)
    runner = GuardedRunner(create_app(config, archive, tls=context is not None),
                           access_log=None)  # the audit log says who read what
    await runner.setup()
    host, port = split_listen(config.web.listen)
    try:
        await web.TCPSite(runner, host, port, ssl_context=context).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("web: listening on %s (%s)", config.web.listen, "https" if context else "http")
    return runner


def tls_context(settings: WebConfig) -> ssl.SSLContext | None:
    """HTTPS with web.tls, else with firstboot's certificate when both files are there."""
    if settings.plain_http:
        return None
    if settings.tls is not None:
        cert, key = Path(settings.tls.cert), Path(settings.tls.key)
    elif all(path.exists() for path in DEFAULT_TLS):
        cert, key = DEFAULT_TLS
    else:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def _close_transfers(app: web.Application) -> None:
    """Cut transfers and drop queued renders, then wait until their threads have ended:
    they read and write the archive (a cut export still writes its audit entry), which
    the caller closes once the app is down, and LMDB used after its close crashes the
    process."""
    for pool in (app["transfers"], app["renders"]):
        pool.close()
    for pool in (app["transfers"], app["renders"]):
        await asyncio.to_thread(pool.join)


async def _healthz(request: web.Request) -> web.Response:
    """For a load balancer in front: the web service answers. No login, no data."""
    return web.Response(text="ok\n")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")  # queries are in our URLs
    if not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")  # mail must not stay in caches
    if request.app["tls"]:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")


@web.middleware
async def _identify(request: web.Request, handler) -> web.StreamResponse:
    try:
        request["identity"] = await request.app["auth"].identify(request)
    except LoginFailed as failure:
        raise api.json_error(web.HTTPUnauthorized, str(failure),
                             headers={"WWW-Authenticate": 'Basic realm="archiver"'}) from None
    return await handler(request)


# What an error a user can act on becomes: its status, its message in words.
_STATUS_OF = ((NotFound, web.HTTPNotFound), (PermissionDenied, web.HTTPForbidden),
              (HoldChanged, web.HTTPConflict),  # a release of a hold that changed meanwhile
              (OutOfSpace, web.HTTPServiceUnavailable),  # e.g. the audit log cannot grow
              (AppStopping, web.HTTPServiceUnavailable),  # a transfer asked for as it stops
              (ArchiverError, web.HTTPBadRequest), (ValueError, web.HTTPBadRequest))


@web.middleware
async def _errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if request.path.startswith("/api/") or exc.status < 400:
            raise
        return await ui.error_page(request, exc.status, exc.reason)
    except (Throttled, TransfersBusy) as throttled:
        wait = {"Retry-After": str(throttled.retry_after)}
        if request.path.startswith("/api/"):
            raise api.json_error(web.HTTPTooManyRequests, str(throttled), headers=wait) from None
        page = await ui.error_page(request, 429, str(throttled))
        page.headers.update(wait)
        return page
    except tuple(kind for kind, _ in _STATUS_OF) as exc:
        status = next(http for kind, http in _STATUS_OF if isinstance(exc, kind))
        message = ui.message_of(exc) or type(exc).__name__
        if request.path.startswith("/api/"):
            raise api.json_error(status, message) from None
        return await ui.error_page(request, status.status_code, message)
