"""A small archive with mail of several people, accounts of every role, and the web app
serving it on loopback (in a thread of the test process, or as `archiver serve web`)."""
from __future__ import annotations

import asyncio
import base64
import functools
import http.client
import http.cookiejar
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiohttp import web

from services.appliance import users
from services.archive.archive import Archive
from services.common.config import Config, JournalAccount, WebConfig
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.store import Envelope
from services.web.connections import GuardedRunner
from services.web.app import create_app

PASSWORD = "correct horse battery"
ACCOUNTS = {  # name -> (role, addresses)
    "admin": ("admin", []),
    "audrey": ("auditor", []),
    "alice": ("user", ["alice@example.com"]),
    "bob": ("user", ["bob@example.com"]),
}


def mail(sender, to, subject, body="hello", cc=None, bcc=None, attachment=None, date=None):
    return message(sender, to, subject, body, cc, bcc, attachment, date).as_bytes()


def message(sender, to, subject, body="hello", cc=None, bcc=None, attachment=None,
            date=None) -> EmailMessage:
    """mail()'s message, before it is made bytes (a test adds parts to it)."""
    built = EmailMessage()
    built["From"], built["To"], built["Subject"] = sender, to, subject
    built["Date"] = date or "Fri, 15 Mar 2024 09:00:00 +0000"
    built["Message-ID"] = f"<{re.sub(r'[^A-Za-z0-9]', '.', subject)}@example.com>"
    if cc:
        built["Cc"] = cc
    if bcc:
        built["Bcc"] = bcc
    built.set_content(body)
    if attachment:
        name, data = attachment
        built.add_attachment(data, maintype="application", subtype="octet-stream",
                            filename=name)
    return built


# name -> (raw, envelope); which of them alice may read is in ALICE_MAIL.
MAILS = {
    "alice-sent": (mail("Alice Liddell <alice@example.com>", "bob@example.com",
                        "Quarterly report", "The numbers are attached.",
                        attachment=("report.bin", b"\x00\x01secret numbers\xff"),
                        date="Mon, 01 Jan 2024 10:00:00 +0000"), None),
    "alice-cc": (mail("carol@example.com", "dave@example.com", "Lunch plans",
                      "Noon at the usual place", cc="ALICE@example.com",
                      date="Tue, 02 Jan 2024 10:00:00 +0000"), None),
    "alice-bcc-header": (mail("carol@example.com", "dave@example.com", "Board minutes",
                              "Minutes of the board", bcc="alice@example.com",
                              date="Wed, 03 Jan 2024 10:00:00 +0000"), None),
    "alice-envelope": (mail("carol@example.com", "dave@example.com", "Merger draft",
                            "Draft of the merger", date="Thu, 04 Jan 2024 10:00:00 +0000"),
                       Envelope("carol@example.com", ["alice@example.com"])),
    "lookalike": (mail("carol@example.com", "bob.alice@example.com", "Not for alice",
                       "Mentions alice@example.com in the body only",
                       date="Fri, 05 Jan 2024 10:00:00 +0000"), None),
    "lookalike-domain": (mail("alice@example.com.evil.org", "x-alice@example.com",
                              "Also not for alice", "secret merger numbers",
                              date="Sat, 06 Jan 2024 10:00:00 +0000"), None),
    "bob-only": (mail("dave@example.com", "bob@example.com", "Salary review",
                      "Confidential salary numbers", date="Sun, 07 Jan 2024 10:00:00 +0000"),
                 None),
}
ALICE_MAIL = {"alice-sent", "alice-cc", "alice-bcc-header", "alice-envelope"}
BOB_MAIL = {"alice-sent", "bob-only"}


def build_archive(data_dir: Path, extra_mails: dict | None = None) -> tuple[Archive, dict[str, str]]:
    """The archive of MAILS and `extra_mails` ({name: (raw, Envelope)}), indexed, with every
    account; returns it and digest by mail name."""
    archive = Archive(data_dir, 450)
    digests = {name: archive.store.put(raw, envelope, "smtp")
               for name, (raw, envelope) in {**MAILS, **(extra_mails or {})}.items()}
    with ExtractionPool(archive.profile.attachment_text_bytes, workers=1) as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool)
        indexer.catch_up()
        indexer.close()
    for name, (role, addresses) in ACCOUNTS.items():
        if name == "admin":
            users.set_password(archive, name, PASSWORD)
        else:
            users.add(archive, name, role, addresses, PASSWORD)
    return archive, digests


def web_config(data_dir: Path, port: int) -> Config:
    account = JournalAccount(name="exchange", protocol="imap", host="mail.example.com",
                             port=993, tls="tls", user="journal", password="hunter2-secret")
    return Config(data_dir=str(data_dir), model=450, journal_accounts=[account],
                  web=WebConfig(listen=f"127.0.0.1:{port}", plain_http=True))


class ThreadedServer:
    """The web app on loopback, served by an event loop in a thread of the test process,
    so tests can reach into the app (e.g. to reset the login throttle)."""

    def __init__(self, config: Config, archive: Archive, tls: bool = False):
        self.port = int(config.web.listen.rpartition(":")[2])
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(config, archive, tls=tls)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    def start(self) -> "ThreadedServer":
        self.thread.start()
        self.runner = GuardedRunner(self.app, access_log=None)  # as start_web's
        self._call(self.runner.setup())
        self._call(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        return self

    def stop(self) -> None:
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)


@dataclass
class Reply:
    status: int
    headers: object
    body: bytes

    def json(self):
        return json.loads(self.body)

    def cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class _FromAddress(urllib.request.HTTPHandler):
    """Connects from a given local address (any of 127.0.0.0/8 on loopback)."""

    def __init__(self, source: str):
        super().__init__()
        self.source = source

    def http_open(self, request):
        return self.do_open(functools.partial(http.client.HTTPConnection,
                                              source_address=(self.source, 0)), request)


class Client:
    """A plain HTTP client with a cookie jar; never follows redirects, never raises on an
    HTTP status. `source`: the local address to connect from (default: the system's)."""

    def __init__(self, base: str, basic: tuple[str, str] | None = None,
                 source: str | None = None):
        self.base, self.basic, self.csrf = base, basic, None
        self.jar = http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.jar), _NoRedirects()]
        self.opener = urllib.request.build_opener(
            *handlers, *([_FromAddress(source)] if source else []))

    def request(self, method: str, path: str, json_body=None, form=None, headers=None,
                raw: bytes | None = None) -> Reply:
        """`raw`: the body as it is, sent as JSON (what json_body cannot make)."""
        headers = dict(headers or {})
        data = None
        if raw is not None:
            data = raw
            headers.setdefault("Content-Type", "application/json")
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if self.basic:  # the API wants JSON from Basic clients for every change
            if method != "GET":
                headers.setdefault("Content-Type", "application/json")
            token = base64.b64encode(":".join(self.basic).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if self.csrf and method != "GET":
            headers.setdefault("X-CSRF-Token", self.csrf)
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
        try:
            with self.opener.open(request, timeout=60) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read())

    def get(self, path: str, **options) -> Reply:
        return self.request("GET", path, **options)

    def log_in(self, name: str, password: str = PASSWORD) -> Reply:
        reply = self.request("POST", "/api/session", {"name": name, "password": password})
        if reply.status == 200:
            self.csrf = reply.json()["csrf_token"]
        return reply


def user_clients(site, accounts: dict[str, str], browser: str | None = None
                 ) -> dict[str, Client]:
    """A local user account for each name -> address of `accounts` (PASSWORD), and a client
    of each signing in with HTTP Basic; "auditor": audrey's, who reads all mail; and
    "BROWSER-browser": a client with a session of account `browser`, as a browser has."""
    for name, address in accounts.items():
        users.add(site.archive, name, "user", [address], PASSWORD)
    found = {name: Client(site.url, basic=(name, PASSWORD)) for name in accounts}
    found["auditor"] = Client(site.url, basic=("audrey", PASSWORD))
    if browser is not None:
        found[f"{browser}-browser"] = Client(site.url)
        assert found[f"{browser}-browser"].log_in(browser).status == 200
    return found
