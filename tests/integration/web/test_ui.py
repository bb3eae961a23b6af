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


def logged_in(site, name: str, password: str = PASSWORD) -> Client:
    browser = Client(site.url)
    form = browser.get("/login")
    reply = browser.request("POST", "/login", form={
        "login_token": csrf_token(form.body, "login_token"), "name": name,
        "password": password, "next": "/search"})
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


def form_login(site, name: str, password: str) -> Client | None:
    """Logged in with the login form, or None when the form refused."""
    browser = Client(site.url)
    token = csrf_token(browser.get("/login").body, "login_token")
    reply = browser.request("POST", "/login", form={
        "login_token": token, "name": name, "password": password, "next": "/search"})
    return browser if reply.status == 303 else None


def test_a_password_set_on_the_account_page_is_kept_as_typed(site):
    """The account page stripped its password fields: "  spaced secret  " was stored as
    "spaced secret", and what was typed no longer logged in (the form and the API take a
    password as typed); a password ending in a space (set by the API or the CLI) could never
    be changed there, the stripped current password being "wrong"."""
    from services.appliance import users
    spaced = "  spaced secret  "
    browser = logged_in(site, "bob")
    reply = browser.request("POST", "/account/password", form={
        "csrf_token": csrf_token(browser.get("/account").body), "current_password": PASSWORD,
        "new_password": spaced, "repeat_password": spaced})
    assert reply.status == 303 and b"Password changed" in browser.get("/account").body
    assert form_login(site, "bob", spaced) is not None
    assert Client(site.url).log_in("bob", spaced).status == 200
    assert form_login(site, "bob", spaced.strip()) is None
    users.set_password(site.archive, "bob", "trailing space ")
    browser = form_login(site, "bob", "trailing space ")
    reply = browser.request("POST", "/account/password", form={
        "csrf_token": csrf_token(browser.get("/account").body),
        "current_password": "trailing space ", "new_password": PASSWORD,
        "repeat_password": PASSWORD})
    assert reply.status == 303 and b"Password changed" in browser.get("/account").body
    assert Client(site.url).log_in("bob", PASSWORD).status == 200
    users.set_password(site.archive, "bob", PASSWORD)


def test_the_admins_password_forms_keep_a_password_as_typed(site):
    from services.appliance import users
    admin = logged_in(site, "admin")
    token = csrf_token(admin.get("/users").body)
    added = admin.request("POST", "/users", form={
        "csrf_token": token, "name": "spacey", "role": "user", "emails": "spacey@example.com",
        "password": " added with spaces "})
    page = admin.get("/users").body
    assert added.status == 303 and b"User &#39;spacey&#39; added." in page, \
        re.search(rb'class="flash[^>]*>([^<]*)', page)
    assert Client(site.url).log_in("spacey", " added with spaces ").status == 200
    assert Client(site.url).log_in("spacey", "added with spaces").status == 401
    reset = admin.request("POST", "/users/password", form={
        "csrf_token": token, "name": "spacey", "password": "reset with a space "})
    assert reset.status == 303 and b"is reset" in admin.get("/users").body
    assert form_login(site, "spacey", "reset with a space ") is not None
    assert users.authenticate(site.archive, "spacey", "reset with a space") is None


def test_error_messages_on_pages_keep_their_quotes(site):
    """Pages stripped quote marks from both ends of an error message: "there is already a
    user named 'audrey" (a form's flash), "got '2020-13-45" and "02938eab7e54' is not a message
    digest" (error pages)."""
    admin = logged_in(site, "admin")
    taken = admin.request("POST", "/users", form={
        "csrf_token": csrf_token(admin.get("/users").body), "name": "audrey",
        "role": "user", "emails": "audrey@example.com", "password": PASSWORD})
    assert taken.status == 303
    assert b"there is already a user named &#39;audrey&#39;</p>" in admin.get("/users").body
    page = admin.get("/audit?since=2020-13-45")
    assert page.status == 400 and b"got &#39;2020-13-45&#39;</p>" in page.body
    page = admin.get("/message/02938eab7e54")
    assert page.status == 404
    assert b">&#39;02938eab7e54&#39; is not a message digest" in page.body


def test_the_mirror_form_keeps_the_secret_as_typed(site):
    """The peers share the secret: one joined with the API (which takes it as typed) and
    one with this form must hold the same."""
    from services.mirror.state import SECRET_KEY
    admin = logged_in(site, "admin")
    secret = " tulip-gravel-mosaic-ninja-orbit-fjord "
    joined = admin.request("POST", "/mirror/join", form={
        "csrf_token": csrf_token(admin.get("/mirror").body), "peer": "10.0.0.7:8443",
        "secret": secret})
    assert joined.status == 303 and b"Joined" in admin.get("/mirror").body
    assert site.archive.store.setting(SECRET_KEY) == secret
