"""The review and eDiscovery pages in real Chromium (Debian's, via Playwright) against
`archiver serve web`, for an admin, an auditor and a user: results, selections, exports,
holds, the message view (hostile HTML, a newsletter, a forwarded message with attachments),
users, the audit log, retention and status. Screenshots go to build/screenshots/.

A hostile HTML mail whose every trick would reach a local listener (another origin) is
opened: the test fails if the listener hears anything, if Chromium sends any request to an
origin other than the app's, or if any script of the mail set its marker."""
from __future__ import annotations

import csv
import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus

import pytest

from services.mirror import state as mirror_state
from services.web.formatting import ago
from services.archive import store as store_module
from services.archive.store import Store
from tests.integration.processes import free_port
from tests.integration.web.browser import log_in, shot, web_service
from tests.integration.web.fixtures import ALICE_MAIL, MAILS, build_archive
from tests.integration.web.review_mails import MARKER, png, review_mails
from tests.module_clock import ModuleClock

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PIXEL = png(1, 1)
ARRIVED_DAYS_AGO = 45 * 86400  # the review mail arrived this long before the tests (seconds)


class Listener:
    """An HTTP server on loopback that answers anything and remembers every request."""

    def __init__(self):
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                hits.append(self.path)
                body = PIXEL if self.path.endswith(".png") else b""
                self.send_response(200)
                self.send_header("Content-Type", "image/png" if body else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Listener":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def listener():
    with Listener() as running:
        yield running


@pytest.fixture(scope="module")
def service(tmp_path_factory, listener):
    def prepare(data) -> dict:
        # The mail arrived 45 days ago: retention counts live mail from its arrival
        # (services.policy.retention_clock), and the preview of 30 days must show some.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(store_module, "time", ModuleClock(time.time() - ARRIVED_DAYS_AGO))
            archive, digests = build_archive(data, review_mails(listener.origin))
        _a_peer_of_each_kind(archive.store)
        archive.close()
        return digests

    started = web_service(tmp_path_factory.mktemp("review"), prepare)
    started.digests = started.prepared
    yield started
    assert started.stop() == 0


OFFLINE_PEERS_ERROR = {}  # "at": when the offline peer's last error was (epoch seconds)


def _a_peer_of_each_kind(store: Store) -> None:
    now = time.time()
    OFFLINE_PEERS_ERROR["at"] = now - 600
    for peer, status in (
            ("10.0.0.2:8443", mirror_state.PeerStatus(
                state="connected", reason="", connected_since=now - 5 * 3600,
                last_success=now - 20, copied=42, node="peer-node-2", model=450,
                version="1.0.0.001", last_error="an old error", last_error_time=now - 86400)),
            ("10.0.0.3:8443", mirror_state.PeerStatus(
                state="offline", reason="unreachable: no answer in time",
                last_error="unreachable: no answer in time",
                last_error_time=OFFLINE_PEERS_ERROR["at"],
                last_success=now - 2 * 86400, copied=7))):
        mirror_state.join(store, "a shared secret long enough 42", peer)
        mirror_state.save_status(store, peer, status)


@pytest.fixture
def outside(page, service):
    """Every request the page sends to an origin other than the app's."""
    sent = []
    page.context.on("request", lambda request: None if request.url.startswith(
        (service.url, "data:", "about:")) else sent.append(request.url))
    return sent


def search(page, query: str) -> list[str]:
    page.fill("form.search input[name=q]", query)
    page.click("form.search button")
    page.wait_for_selector("p.summary")
    return page.locator("table.hits tbody td.subject a").all_inner_texts()


def tick(page, *subjects: str) -> None:
    for subject in subjects:
        page.locator(f"table.hits tbody tr:has(td.subject a bdi:text-is('{subject}')) "
                     "input[name=digest]").check()


def frame_of(page, selector: str = "iframe.mail-body"):
    handle = page.wait_for_selector(selector)
    frame = handle.content_frame()
    frame.wait_for_load_state("load")
    return frame


# -- results ---------------------------------------------------------------------------------

def test_results_for_an_auditor(page, service, outside):
    log_in(page, service.url, "audrey")
    subjects = search(page, "merger")
    # The newsletter says "merger" only in its HTML alternative: found, and its snippet
    # marks the word there (the body text is the index's: plain text and HTML-only words).
    assert subjects == ["Fwd: Signed contract", "March newsletter", "Also not for alice",
                        "Merger draft"]
    newsletter = page.locator(
        "table.hits tbody tr:has(td.subject a bdi:text-is('March newsletter'))")
    assert newsletter.locator(".snippet mark").all_inner_texts() == ["merger"]
    headings = page.locator("table.hits thead th").all_inner_texts()
    assert [h.split(" ")[0].strip("▼▲") for h in headings[1:]] == ["Date", "From", "To",
                                                                   "Subject", "Size", "Att."]
    row = page.locator("table.hits tbody tr:has(td.subject a bdi:text-is('Merger draft'))")
    assert row.locator("td.to").inner_text() == "dave@example.com, alice@example.com"
    assert row.locator(".snippet mark").all_inner_texts() == ["merger"]
    page.click("table.hits thead a:has-text('Subject')")
    page.wait_for_url("**sort=subject**")
    assert page.locator("table.hits tbody td.subject a").all_inner_texts() == [
        "Also not for alice", "March newsletter", "Merger draft",
        "Fwd: Signed contract"]  # Fwd: is no word
    page.click("table.hits thead a:has-text('Subject')")  # again: the other way
    page.wait_for_url("**order=desc**")
    assert page.locator("table.hits tbody td.subject a").first.inner_text() == \
        "Fwd: Signed contract"
    page.select_option("form.page-size select[name=size]", "25")
    page.click("form.page-size button")
    page.wait_for_url("**size=25**")
    assert page.locator("form.page-size select").input_value() == "25"
    shot(page, "results")
    assert outside == []


def test_date_pickers_write_date_and_errors_stand_by_the_query(page, service):
    log_in(page, service.url, "audrey")
    search(page, "from:carol")
    page.fill("form.dates input[name=since]", "2024-01-02")
    page.fill("form.dates input[name=until]", "2024-01-04")
    page.click("form.dates button")
    page.wait_for_selector("p.summary")
    assert page.input_value("form.search input[name=q]") == \
        "from:carol date:2024-01-02..2024-01-04"
    assert page.inner_text("p.summary") == "1–3 of 3"
    page.fill("form.dates input[name=since]", "2024-01-03")  # picked again: replaced
    page.fill("form.dates input[name=until]", "2024-01-03")
    page.click("form.dates button")
    page.wait_for_url(lambda url: unquote_plus(url).endswith("q=from:carol date:2024-01-03"))
    assert page.input_value("form.search input[name=q]") == "from:carol date:2024-01-03"
    assert page.inner_text("p.summary") == "1–1 of 1"
    search_box = page.locator("form.search input[name=q]")
    search_box.fill("lunch after:2024-13-01")
    page.click("form.search button")
    error = page.wait_for_selector("#query-error")
    assert "column" in error.inner_text() and search_box.get_attribute("aria-invalid") == "true"
    below = error.bounding_box()["y"] - search_box.bounding_box()["y"]
    assert 0 < below < 80  # right under the query, not somewhere down the page
    shot(page, "query-error")


def test_ticked_rows_are_exported_held_and_saved(page, service, tmp_path):
    log_in(page, service.url, "audrey")
    search(page, "from:carol")
    tick(page, "Lunch plans", "Board minutes")
    with page.expect_download() as started:
        page.click("button:has-text('Export (.eml files)')")
    started.value.save_as(tmp_path / "ticked.zip")
    with zipfile.ZipFile(tmp_path / "ticked.zip") as exported:
        rows = list(csv.DictReader(io.StringIO(exported.read("manifest.csv").decode())))
        sums = exported.read("SHA256SUMS").decode()
    assert sorted(row["subject"] for row in rows) == ["Board minutes", "Lunch plans"]
    assert all(f"{row['digest']}  messages/{row['digest']}.eml" in sums for row in rows)
    page.check("input[name=scope][value=all]")
    with page.expect_download() as started:
        page.click("button:has-text('Export (mbox)')")
    started.value.save_as(tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as exported:
        assert exported.read("messages.mbox").count(b"\nFrom ") + 1 == 4
        assert json.loads(exported.read("export.json"))["query"] == "from:carol"

    search(page, "from:carol")
    tick(page, "Merger draft", "Not for alice")
    page.click("summary:has-text('Place on hold')")
    page.fill("input[name=matter]", "Jones v. Example Ltd")
    page.fill("input[name=reason]", "litigation hold notice 2024-02")
    page.fill("details.hold-form input[name=until]", "2030-06-30")
    page.click("button[value=hold]")
    page.wait_for_url("**/holds")
    row = page.locator("tr.hold:has-text('Jones v. Example Ltd')")
    assert "litigation hold notice 2024-02" in row.inner_text()
    assert row.locator("td.covers").inner_text() == "2 messages"
    assert "2030-06-30" in row.inner_text() and "audrey" in row.inner_text()
    assert page.locator("button:has-text('Remove')").count() == 0  # auditors cannot
    shot(page, "holds")

    page.goto(service.url + "/search?q=subject:lunch")
    page.check("input[name=scope][value=all]")
    page.click("summary:has-text('Save as a search')")
    page.fill("details.save-form input[name=name]", "lunches")
    page.click("button[value=save]")
    page.wait_for_url("**/saved")
    page.goto(service.url + "/search")
    page.click("nav.saved-searches a:text-is('lunches')")  # one click away
    page.wait_for_selector("p.summary")
    assert page.locator("table.hits tbody td.subject a").all_inner_texts() == ["Lunch plans"]


# -- the message view --------------------------------------------------------------------------

def test_a_hostile_html_mail_runs_nothing_and_loads_nothing(page, service, listener, outside):
    log_in(page, service.url, "alice")
    before = len(listener.hits)
    page.goto(f"{service.url}/message/{service.digests['hostile']}?q=muller")
    frame = frame_of(page)
    frame.wait_for_selector("text=The end of the hostile mail.")
    for event in ("mouseover", "click", "focus", "load", "error"):  # what handlers hear
        for selector in ("p.lead", "body", "img"):
            frame.dispatch_event(selector, event)
    page.wait_for_timeout(1500)  # time for anything delayed (refresh, lazy loads)
    assert listener.hits[before:] == [] and outside == []
    markers = frame.evaluate(f"""() => [document.documentElement.dataset.{MARKER} || null,
                                        document.body.dataset.{MARKER} || null]""")
    assert markers == [None, None]
    assert page.evaluate(f"() => document.documentElement.dataset.{MARKER} || null") is None
    assert frame.url.startswith(f"{service.url}/message/")  # no refresh, no navigation
    assert frame.locator("mark.hit").all_inner_texts() == ["Müller"]
    shot(page, "message-hostile")

    page.click("a.show-remote")  # the reader asks: images load, and nothing else does
    frame = frame_of(page)
    frame.wait_for_selector("text=The end of the hostile mail.")
    page.wait_for_timeout(1500)
    loaded = set(listener.hits[before:])
    assert "/remote-image.png" in loaded
    assert loaded <= {"/remote-image.png", "/picture.png"}, loaded
    assert all(url.endswith(".png") for url in outside)


def test_an_html_newsletter_with_an_inline_image(page, service, listener, outside):
    log_in(page, service.url, "alice")
    page.goto(f"{service.url}/message/{service.digests['newsletter']}?q=merger")
    frame = frame_of(page)
    logo = frame.wait_for_selector("img[alt=logo]")
    assert frame.evaluate("(image) => image.naturalWidth", logo) == 120  # the cid: part
    assert frame.locator("mark.hit").all_inner_texts() == ["merger"]
    assert frame.locator("h1").inner_text() == "March news"
    assert "1 remote image blocked" in page.inner_text("p.body-toggle")
    assert outside == []
    shot(page, "message-html")
    page.click("p.body-toggle a:has-text('Plain text')")
    assert page.inner_text("pre.body").startswith("The plain-text alternative")
    page.click("a:has-text('All headers')")
    assert "Review test mailer" in page.inner_text("table.headers")


def test_a_forwarded_message_opens_as_a_message_with_its_attachments(page, service, tmp_path,
                                                                      outside):
    log_in(page, service.url, "alice")
    page.goto(f"{service.url}/message/{service.digests['forwarded']}")
    facts = page.inner_text("table.envelope")
    assert "dave@example.com" in facts and service.digests["forwarded"] in facts
    assert "the Date header" in facts and "smtp" in facts
    page.click("a.open-message:has-text('(no name, saved as attachment-1)')")
    page.wait_for_selector("h1 bdi:text-is('Signed contract')")
    assert "Please find the signed contract" in page.inner_text("pre.body")
    pages = page.locator("img.pdf-page")
    assert pages.count() == 2
    for number in range(2):
        pages.nth(number).scroll_into_view_if_needed()
        page.wait_for_function("(image) => image.complete && image.naturalWidth > 0",
                               arg=pages.nth(number).element_handle())
    signature = page.locator("figure.preview-image img")
    signature.scroll_into_view_if_needed()
    page.wait_for_function("(image) => image.complete && image.naturalWidth == 200",
                           arg=signature.element_handle())
    assert "merger terms" in page.inner_text("figure.preview-text pre")
    tree = page.inner_text("ul.tree")
    assert "contract.pdf" in tree and "text read" in tree and "no text" in tree
    shot(page, "message-nested")
    with page.expect_download() as started:
        page.click("ul.tree a bdi:text-is('contract.pdf')")
    started.value.save_as(tmp_path / "contract.pdf")
    assert (tmp_path / "contract.pdf").read_bytes().startswith(b"%PDF-1.4")
    assert outside == []


def test_a_user_sees_only_their_own_mail(page, service):
    log_in(page, service.url, "alice")
    subjects = search(page, "")
    mine = {MAILS[name][0].split(b"Subject: ")[1].split(b"\n")[0].decode() for name in ALICE_MAIL}
    assert set(subjects) == mine | {"March newsletter", "Hostile newsletter",
                                    "Fwd: Signed contract"}
    assert page.locator("header nav a").all_inner_texts() == ["Search", "Account"]
    assert page.locator("details.hold-form").count() == 0  # users export, never hold
    bobs = service.digests["bob-only"]
    for path in (f"/message/{bobs}", f"/message/{bobs}/frame", f"/message/{bobs}/part/1",
                 f"/message/{bobs}/raw"):
        response = page.goto(service.url + path)
        assert response.status == 404 and "Salary" not in page.content()
    assert page.goto(service.url + "/holds").status == 403
    shot(page, "user-results-denied")


# -- administration --------------------------------------------------------------------------

def test_an_admin_manages_users(page, service, chromium):
    log_in(page, service.url, "admin")
    page.goto(service.url + "/users")
    page.fill("form[action='/users'] input[name=name]", "erin")
    page.select_option("form[action='/users'] select[name=role]", "user")
    page.fill("form[action='/users'] input[name=emails]", "erin@example.com")
    page.fill("form[action='/users'] input[name=password]", "erin's first password")
    page.click("form[action='/users'] button:has-text('Add')")
    row = page.locator("tr#user-erin")
    assert "erin@example.com" in row.inner_text() and "active" in row.inner_text()
    row.locator("select[name=role]").select_option("auditor")
    row.locator("button:has-text('Set role')").click()
    assert "auditor" in page.locator("tr#user-erin td").nth(1).inner_text()
    page.locator("tr#user-erin input[name=password]").fill("erin's second password")
    page.locator("tr#user-erin button:has-text('Reset password')").click()
    assert "password of 'erin' is reset" in page.inner_text("p.flash")
    page.locator("tr#user-erin button:has-text('Disable')").click()
    assert "disabled" in page.locator("tr#user-erin").inner_text()
    shot(page, "users")
    other = chromium.new_context().new_page()
    other.goto(service.url + "/login")
    other.fill("input[name=name]", "erin")
    other.fill("input[name=password]", "erin's second password")
    other.click("button:has-text('Log in')")
    assert "Wrong name or password" in other.inner_text("p.flash")
    other.context.close()


def test_the_audit_log_filters_pages_exports_and_verifies(page, service, tmp_path):
    log_in(page, service.url, "audrey")
    page.goto(service.url + "/audit")
    page.select_option("select[name=action]", "login")
    page.click("form.audit-filter button")
    actions = page.locator("table.audit tbody tr td:nth-child(4)").all_inner_texts()
    assert actions and set(actions) == {"login"}
    with page.expect_download() as started:
        page.click("a:has-text('Download as CSV')")
    started.value.save_as(tmp_path / "audit.csv")
    lines = list(csv.reader((tmp_path / "audit.csv").open()))
    assert lines[0][:5] == ["seq", "time", "who", "role", "action"]
    assert {line[4] for line in lines[1:]} == {"login"} and len(lines) - 1 >= len(actions)
    page.click("a:has-text('Verify the chain')")
    assert "The chain is intact" in page.inner_text(".verify-result")
    shot(page, "audit")


def test_retention_is_previewed_then_confirmed(page, service):
    log_in(page, service.url, "admin")
    page.goto(service.url + "/retention")
    page.check("form input[name=enabled]")
    page.fill("form input[name=global_days]", "30")
    page.click("form:has(input[value=global]) button:has-text('Preview')")
    page.wait_for_selector("h1:has-text('Confirm the retention change')")
    count = page.inner_text("p.preview-count")
    assert "would be deleted at the next run" in count
    assert page.locator("table.preview-sample tbody tr").count() > 0
    shot(page, "retention-preview")
    page.click("button:has-text('Confirm the change')")
    page.wait_for_url("**/retention")
    assert "Retention is on" in page.inner_text("main")
    page.uncheck("form input[name=enabled]")  # and off again, the same way
    page.click("form:has(input[value=global]) button:has-text('Preview')")
    page.click("button:has-text('Confirm the change')")
    assert "Retention is off" in page.inner_text("main")


def test_status_in_charts_and_words(page, service):
    log_in(page, service.url, "admin")
    page.click("header nav a:has-text('Status')")
    page.wait_for_selector("h1:has-text('Status')")
    stored = len(MAILS) + 3
    assert f"{stored} of {stored} indexed" in page.inner_text("section.card:has(h2:text-is('Index'))")
    assert "free" in page.inner_text("section.card:has(h2:text-is('Data disk'))")
    assert "of 3.9 TiB" in page.inner_text("section.card:has(h2:text-is('Model capacity'))")
    assert page.locator("svg.chart").count() == 2
    assert page.locator("svg.chart rect.bar").count() == 90
    assert page.locator("svg.chart circle.point").count() >= 1
    connected = page.inner_text("li.peer:has-text('10.0.0.2:8443')")
    assert "Connected for 5 hours." in connected and "an old error" not in connected
    # "10 minutes ago" when the fixture wrote it; a minute more if the tests before took one
    said_before = f"Last error ({ago(OFFLINE_PEERS_ERROR['at'])})"
    offline = page.inner_text("li.peer:has-text('10.0.0.3:8443')")
    said_after = f"Last error ({ago(OFFLINE_PEERS_ERROR['at'])})"
    assert "Not connected (offline): unreachable: no answer in time." in offline
    assert "Last copied 2 days ago" in offline
    assert said_before in offline or said_after in offline, offline
    assert "minutes ago" in said_before
    shot(page, "status")


def test_an_auditor_reviews_but_does_not_administer(page, service):
    log_in(page, service.url, "audrey")
    assert page.locator("header nav a").all_inner_texts() == [
        "Search", "Status", "Saved searches", "Retention", "Holds", "Audit log", "Account"]
    for path in ("/users", "/mirror", "/sources"):
        assert page.goto(service.url + path).status == 403
    page.goto(service.url + "/retention")
    assert page.locator("button:has-text('Preview')").count() == 0
