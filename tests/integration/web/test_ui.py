"""The web UI over plain HTTP: logging in with the form, CSRF tokens on every form, who
sees which page, and mail shown as text. (test_browser.py drives it in Chromium.)"""
from __future__ import annotations

import io
import re
import zipfile

import pytest

from services.policy import audit
from services.archive.store import Envelope
from tests.integration.web.fixtures import PASSWORD, Client, mail

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

XSS_SUBJECT = '<script>alert("x")</script> hello'
STAFF_PAGES = ["/status", "/saved", "/retention", "/holds", "/audit"]
ADMIN_PAGES = ["/mirror", "/sources", "/users"]


@pytest.fixture(scope="module")
def extra_mails():
    return {"xss": (mail("mallory@example.com", "alice@example.com", XSS_SUBJECT,
                         '<img src=x onerror=alert(1)> body'), Envelope(None, []))}


def csrf_token(html: bytes, name: str = "csrf_token") -> str:
    return re.search(rf'name="{name}" value="([^"]+)"', html.decode()).group(1)


def logged_in(site, name: str) -> Client:
    browser = Client(site.url)
    form = browser.get("/login")
    reply = browser.request("POST", "/login", form={
        "login_token": csrf_token(form.body, "login_token"), "name": name,
        "password": PASSWORD, "next": "/search"})
    assert reply.status == 303 and reply.headers["Location"] == "/search"
    return browser


def test_pages_want_a_login(site):
    reply = Client(site.url).get("/search?q=x")
    assert reply.status == 303
    assert reply.headers["Location"].startswith("/login?next=")


def test_the_login_form_needs_its_token_and_never_redirects_off_site(site):
    browser = Client(site.url)
    refused = browser.request("POST", "/login", form={"name": "admin", "password": PASSWORD})
    assert refused.status == 403
    token = csrf_token(browser.get("/login").body, "login_token")
    wrong = browser.request("POST", "/login", form={"login_token": token, "name": "admin",
                                                    "password": "nope"})
    assert wrong.status == 401 and b"Wrong name or password" in wrong.body
    reply = browser.request("POST", "/login", form={
        "login_token": token, "name": "admin", "password": PASSWORD,
        "next": "//evil.example.com/"})
    assert reply.status == 303 and reply.headers["Location"] == "/search"
    logins = [e for e in audit.entries(site.archive.store, 10) if e["action"] == "login"]
    assert logins and logins[-1]["details"]["via"] == "form"


def test_every_form_posts_only_with_the_sessions_csrf_token(site):
    browser = logged_in(site, "audrey")
    page = browser.get("/saved")
    assert browser.request("POST", "/saved", form={"name": "x", "query": "a"}).status == 403
    assert browser.request("POST", "/saved", form={"name": "x", "query": "a",
                                                   "csrf_token": "forged"}).status == 403
    done = browser.request("POST", "/saved", form={"name": "x", "query": "a",
                                                   "csrf_token": csrf_token(page.body)})
    assert done.status == 303
    assert b"Saved search &#39;x&#39; saved." in browser.get("/saved").body
    forms = re.findall(rb'<form method="post".*?</form>', browser.get("/saved").body, re.S)
    assert forms and all(b'name="csrf_token"' in form for form in forms)
    browser.request("POST", "/saved/delete", form={"name": "x",
                                                   "csrf_token": csrf_token(page.body)})


@pytest.mark.parametrize("name, allowed", [
    ("admin", STAFF_PAGES + ADMIN_PAGES), ("audrey", STAFF_PAGES), ("alice", [])])
def test_each_role_sees_its_pages_only(site, name, allowed):
    browser = logged_in(site, name)
    for path in STAFF_PAGES + ADMIN_PAGES:
        reply = browser.get(path)
        assert reply.status == (200 if path in allowed else 403), (path, reply.status)
    for path in ("/search", "/search?q=", "/account"):
        assert browser.get(path).status == 200
    menu = browser.get("/account").body
    assert (b'href="/status"' in menu) == ("/status" in allowed)


def test_a_user_sees_their_mail_and_no_one_elses(site):
    browser = logged_in(site, "alice")
    results = browser.get("/search?q=").body.decode()
    assert "Quarterly report" in results and "Salary review" not in results
    assert "Not for alice" not in results
    assert browser.get(f"/message/{site.digests['bob-only']}").status == 404
    assert browser.get(f"/message/{site.digests['bob-only']}/raw").status == 404
    page = browser.get(f"/message/{site.digests['alice-envelope']}").body.decode()
    assert "Merger draft" in page and "alice@example.com" in page  # envelope recipient


def test_mail_is_shown_as_text_never_as_markup(site):
    browser = logged_in(site, "alice")
    page = browser.get(f"/message/{site.digests['xss']}")
    assert b"<script>" not in page.body and b"<img src=x" not in page.body
    assert b"&lt;script&gt;" in page.body
    assert "script-src" not in page.headers["Content-Security-Policy"]  # none: default-src
    assert page.headers["X-Frame-Options"] == "DENY"
    results = browser.get("/search?q=hello").body
    assert b"<script>alert" not in results


def test_export_form_downloads_the_search(site):
    browser = logged_in(site, "alice")
    page = browser.get("/search?q=lunch")
    reply = browser.request("POST", "/selection", form={
        "q": "lunch", "scope": "all", "action": "export-mbox",
        "csrf_token": csrf_token(page.body)})
    assert reply.status == 200
    with zipfile.ZipFile(io.BytesIO(reply.body)) as exported:
        mbox = exported.read("messages.mbox")
    assert mbox.count(b"\nFrom ") + 1 == 1 and b"Lunch plans" in mbox


def test_changing_ones_password_keeps_one_logged_in(site):
    browser = logged_in(site, "bob")
    token = csrf_token(browser.get("/account").body)
    reply = browser.request("POST", "/account/password", form={
        "csrf_token": token, "current_password": PASSWORD,
        "new_password": "another password", "repeat_password": "another password"})
    assert reply.status == 303
    assert b"Password changed" in browser.get("/account").body
    from services.appliance import users
    users.set_password(site.archive, "bob", PASSWORD)
