"""The review pages over plain HTTP, role by role: results (recipients, snippets, sorting,
page sizes, date pickers, errors), actions on chosen messages (evidence export, hold, save),
the message view (frame, parts, attached messages, PDF pages, headers, facts, holds), and
the administration pages (users, audit log, retention preview, holds, status). A user sees
only their own mail in every one of them. (test_review_browser.py drives them in Chromium.)"""
from __future__ import annotations

import csv
import html
import io
import re
import time
import zipfile
from urllib.parse import quote, unquote, unquote_plus, urlencode

import pytest

from services.mirror import state as mirror_state
from services.policy import audit, retention
from tests.integration.web.fixtures import PASSWORD, Client
from tests.integration.web.review_mails import review_mails
from tests.integration.web.test_ui import csrf_token, logged_in
from tests.module_clock import ModuleClock

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

ORIGIN = "http://198.51.100.7:8"


@pytest.fixture(scope="module")
def extra_mails():
    return review_mails(ORIGIN)


def post(browser: Client, path: str, page: str, **form) -> object:
    token = csrf_token(browser.get(page).body)
    return browser.request("POST", path, form={"csrf_token": token, **form})


def rows(html: str) -> list[str]:
    return re.findall(r'<td class="subject"><a href="/message/([0-9a-f]{64})', html)


# -- results -----------------------------------------------------------------------------

def test_results_name_recipients_mark_the_words_and_link_the_query(site):
    page = logged_in(site, "audrey").get("/search?q=merger").body.decode()
    # The newsletter says "merger" only in its HTML alternative, which is indexed too.
    assert [site.names[d] for d in rows(page)] == ["forwarded", "newsletter",
                                                   "lookalike-domain", "alice-envelope"]
    assert '<td class="to"><bdi>dave@example.com</bdi>, <bdi>alice@example.com</bdi></td>' in page
    assert "Draft of the <mark>merger</mark>" in page
    assert "The words are not in the body" in page  # found in the forwarded PDF's text
    assert f'href="/message/{site.digests["alice-envelope"]}?q=merger"' in page
    for column in ("date", "from", "subject", "size"):
        assert f'/search?q=merger&amp;sort={column}' in page or column == "date"


def test_first_recipients_then_how_many_more(site):
    from tests.integration.web.fixtures import mail
    digest = site.archive.store.put(mail("x@example.com", "A <a@example.com>, b@example.com, "
                                         "c@example.com", "Many recipients", cc="d@example.com"))
    from services.archive.extract import ExtractionPool
    from services.archive.indexer import Indexer
    with ExtractionPool(1024 * 1024) as pool:
        Indexer(site.archive.store, site.archive.index_dir(), pool).catch_up()
    page = logged_in(site, "audrey").get("/search?q=subject:many").body.decode()
    assert '<td class="to"><bdi>A</bdi>, <bdi>b@example.com</bdi> ' \
           '<span class="more">+2</span></td>' in page
    assert digest in page


@pytest.mark.parametrize("sort, order, expected", [
    ("subject", "", ["Board minutes", "Lunch plans", "Merger draft", "Not for alice"]),
    ("subject", "desc", ["Not for alice", "Merger draft", "Lunch plans", "Board minutes"]),
    ("date", "asc", ["Lunch plans", "Board minutes", "Merger draft", "Not for alice"]),
])
def test_sorted_by_a_column_either_way(site, sort, order, expected):
    page = logged_in(site, "audrey").get(f"/search?q=from:carol&sort={sort}&order={order}")
    subjects = re.findall(r'<td class="subject"><a [^>]+><bdi>([^<]+)</bdi></a>',
                          page.body.decode())
    assert subjects == expected


def test_page_sizes_and_pages(site):
    browser = logged_in(site, "audrey")
    page = browser.get("/search?q=&size=25").body.decode()
    assert '<option selected>25</option>' in page and len(rows(page)) <= 25
    odd = browser.get("/search?q=&size=7").body.decode()  # not offered: the default
    assert '<option selected>50</option>' in odd


def test_the_date_pickers_write_date_into_the_query(site):
    browser = logged_in(site, "audrey")
    reply = browser.get("/search?q=from%3Acarol&since=2024-01-02&until=2024-01-04")
    assert reply.status == 303
    assert unquote(reply.headers["Location"]) == "/search?q=from:carol+date:2024-01-02..2024-01-04"
    page = browser.get(reply.headers["Location"]).body.decode()
    assert len(rows(page)) == 3
    one_day = browser.get("/search?q=&since=2024-01-03&until=2024-01-03")
    assert unquote(one_day.headers["Location"]) == "/search?q=date:2024-01-03"
    open_end = browser.get("/search?q=&since=2024-01-05")
    assert unquote(open_end.headers["Location"]) == "/search?q=date:2024-01-05.."
    assert browser.get("/search?q=&since=yesterday-ish").status == 400
    for query, kept in [("from:carol date:2023", "from:carol"),  # picked again: replaced
                        ("date:2023..2024 AND from:carol", "from:carol"),
                        ("from:carol AND date:7d", "from:carol"),
                        ('"date:2023 words" DATE:1y', '"date:2023 words"')]:
        again = browser.get("/search?" + urlencode({"q": query, "since": "2024-01-03",
                                                    "until": "2024-01-03"}))
        assert unquote_plus(again.headers["Location"]) == f"/search?q={kept} date:2024-01-03"


def test_one_result_is_one_result(site):
    page = logged_in(site, "audrey").get("/search?q=subject:salary").body.decode()
    assert "all 1 result</label>" in page and "1 results" not in page


def test_a_query_error_is_shown_beside_the_query(site):
    page = html.unescape(logged_in(site, "alice").get("/search?q=" + quote("lunch foo:bar"))
                         .body.decode())
    assert 'aria-invalid="true" aria-describedby="query-error"' in page
    assert 'unknown field "foo:"' in page and "(column 7)" in page
    assert "<table class=\"hits\">" not in page


def test_saved_searches_are_one_click_away_for_staff(site):
    auditor = logged_in(site, "audrey")
    post(auditor, "/saved", "/saved", name="carol's mail", query="from:carol")
    page = auditor.get("/search").body.decode()
    assert '<a href="/search?q=from%3Acarol" title="from:carol">carol&#39;s mail</a>' in page
    assert "saved-searches" not in logged_in(site, "alice").get("/search").body.decode()


# -- chosen messages -----------------------------------------------------------------------

def test_ticked_messages_export_with_their_manifest(site):
    auditor = logged_in(site, "audrey")
    chosen = [site.digests["alice-cc"], site.digests["bob-only"]]
    reply = auditor.request("POST", "/selection", form=[
        ("csrf_token", csrf_token(auditor.get("/search?q=").body)), ("q", ""),
        ("scope", "selected"), ("action", "export-zip"), *[("digest", d) for d in chosen]])
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(reply.body)) as exported:
        names = sorted(exported.namelist())
        manifest = list(csv.DictReader(io.StringIO(exported.read("manifest.csv").decode())))
        info = exported.read("export.json").decode()
    assert names == sorted(["SHA256SUMS", "export.json", "manifest.csv",
                            *[f"messages/{d}.eml" for d in chosen]])
    assert [row["digest"] for row in manifest] == chosen
    assert '"exported_by": "audrey"' in info and chosen[0] in info
    recorded = [e for e in audit.entries(site.archive.store, 30) if e["action"] == "export"]
    assert recorded[-1]["details"]["selection"] == chosen


def test_nothing_ticked_or_nothing_found_is_said_not_downloaded(site):
    auditor = logged_in(site, "audrey")
    page = "/search?q=lunch"
    none = post(auditor, "/selection", page, q="lunch", scope="selected", action="export-zip")
    assert none.status == 303 and b"no message chosen" in auditor.get(page).body
    empty = post(auditor, "/selection", page, q="subject:nosuchthing", scope="all",
                 action="export-mbox")
    assert empty.status == 303 and b"matches no message" in auditor.get(page).body


def test_a_user_exports_only_their_own_mail_whatever_is_ticked(site):
    alice = logged_in(site, "alice")
    chosen = [site.digests["bob-only"], site.digests["alice-cc"], "../../etc/passwd"]
    reply = alice.request("POST", "/selection", form=[
        ("csrf_token", csrf_token(alice.get("/search?q=").body)), ("q", ""),
        ("scope", "selected"), ("action", "export-mbox"), *[("digest", d) for d in chosen]])
    with zipfile.ZipFile(io.BytesIO(reply.body)) as exported:
        manifest = exported.read("manifest.csv").decode()
    assert site.digests["alice-cc"] in manifest and site.digests["bob-only"] not in manifest
    everything = post(alice, "/selection", "/search?q=", q="", scope="all", action="export-zip")
    with zipfile.ZipFile(io.BytesIO(everything.body)) as exported:
        names = {n for n in exported.namelist() if n.startswith("messages/")}
    assert site.digests["bob-only"] not in "".join(names)
    assert f"messages/{site.digests['hostile']}.eml" in names


def test_a_user_may_not_hold_or_save(site):
    alice = logged_in(site, "alice")
    for action in ("hold", "save"):
        reply = post(alice, "/selection", "/search?q=", q="", scope="all", action=action,
                     matter="m", name="n")
        assert reply.status == 403
    assert alice.get("/holds").status == 403


def test_ticked_messages_and_whole_results_are_held_for_a_matter(site):
    auditor = logged_in(site, "audrey")
    chosen = [site.digests["alice-sent"], site.digests["lookalike"]]
    reply = auditor.request("POST", "/selection", form=[
        ("csrf_token", csrf_token(auditor.get("/search?q=").body)), ("q", ""),
        ("scope", "selected"), ("action", "hold"), ("matter", "Smith v. Example"),
        ("reason", "preservation letter of 2024-03-01"), ("until", "2031-12-31"),
        *[("digest", d) for d in chosen]])
    assert reply.status == 303 and reply.headers["Location"] == "/holds"
    whole = post(auditor, "/selection", "/search?q=from:carol", q="from:carol", scope="all",
                 action="hold", matter="Carol audit", reason="")
    assert whole.status == 303
    holds = auditor.get("/holds").body.decode()
    smith = re.search(r'<tr id="hold-(\w+)" class="hold">(.*?)</tr>',
                      holds[holds.index("Smith v. Example") - 200:], re.S).group(2)
    assert "preservation letter of 2024-03-01" in smith and "2 messages" in smith
    assert "2031-12-31" in smith and "audrey" in smith
    assert re.search(r"Carol audit.*?4 messages", holds, re.S)
    message = auditor.get(f"/message/{site.digests['lookalike']}").body.decode()
    held_by = re.search(r'<td class="holds">(.*?)</td>', message, re.S).group(1)
    assert "Smith v. Example" in held_by and "Carol audit" in held_by
    alone = auditor.get(f"/message/{site.digests['bob-only']}").body.decode()
    assert re.search(r'<td class="holds">none</td>', alone)


def test_ticked_messages_held_are_as_many_as_a_query_can_name(site):
    from services.web.admin_actions import MAX_CHOSEN, chosen_query
    from services.archive.search import parse
    parse(chosen_query(None, [f"{n:064x}" for n in range(MAX_CHOSEN)]))  # fits
    auditor = logged_in(site, "audrey")
    reply = auditor.request("POST", "/selection", form=[
        ("csrf_token", csrf_token(auditor.get("/search?q=").body)), ("q", ""),
        ("scope", "selected"), ("action", "hold"), ("matter", "too many"),
        *[("digest", f"{n:064x}") for n in range(MAX_CHOSEN + 1)]])
    assert reply.status == 303
    assert f"takes at most {MAX_CHOSEN}" in html.unescape(auditor.get("/search?q=").body.decode())



CHANGES = ("saved-search", "saved-search-delete", "hold-add")


def _holds_and_saved(site) -> tuple[list, dict, list]:
    from services.policy import holds, saved_searches
    from services.policy.replicated import Replicated
    replicated = Replicated(site.archive.store)
    return (sorted(holds.all_holds(replicated)), saved_searches.all_saved(replicated),
            [e for e in audit.entries(site.archive.store) if e["action"] in CHANGES])


@pytest.mark.parametrize("refused, why", [
    ({"until": "not-a-date"}, "until: expected a date"),
    ({"until": "2031-02-30"}, "until: expected a date"),
    ({"matter": "m" * 201}, "matter's name is longer than 200"),
    ({"reason": "r" * 2001}, "reason is longer than 2000")])
def test_a_hold_refused_from_the_results_leaves_no_saved_search_behind(site, refused, why):
    auditor = logged_in(site, "audrey")
    before = _holds_and_saved(site)
    form = {"q": "salary", "scope": "all", "action": "hold", "matter": "Acme",
            "reason": "", **refused}
    reply = post(auditor, "/selection", "/search?q=salary", **form)
    assert reply.status == 303 and reply.headers["Location"] == "/search?q=salary"
    assert why in html.unescape(auditor.get("/search?q=salary").body.decode())
    assert _holds_and_saved(site) == before


def test_a_hold_failing_after_its_search_was_saved_deletes_that_search(site, monkeypatch):
    from services.policy import holds
    from firmware.errors import ArchiverError

    def overtaken(*args, **kwargs):
        raise ArchiverError("the index changed while the hold was being placed")
    monkeypatch.setattr(holds, "add", overtaken)
    auditor = logged_in(site, "audrey")
    held, saved, _ = _holds_and_saved(site)
    seq = audit.entries(site.archive.store, 1)[-1]["seq"]
    reply = post(auditor, "/selection", "/search?q=salary", q="salary", scope="all",
                 action="hold", matter="Acme", reason="", until="")
    assert reply.status == 303 and reply.headers["Location"] == "/search?q=salary"
    assert "the index changed" in auditor.get("/search?q=salary").body.decode()
    assert _holds_and_saved(site)[:2] == (held, saved)
    after = [(e["action"], e["details"].get("name")) for e in audit.entries(site.archive.store)
             if e["seq"] > seq and e["action"] in CHANGES]
    assert after == [("saved-search", "hold Acme"), ("saved-search-delete", "hold Acme")]

def test_old_holds_without_matter_or_reason_stay_readable(site):
    from services.policy.replicated import Replicated
    replicated = Replicated(site.archive.store)
    replicated.put("saved:legacy", {"query": "subject:lunch"})
    replicated.put("hold:0ld0ld00", {"saved": "legacy", "until": None, "by": "someone"})
    page = logged_in(site, "audrey").get("/holds").body.decode()
    row = re.search(r'<tr id="hold-0ld0ld00" class="hold">(.*?)</tr>', page, re.S).group(1)
    assert "legacy" in row and "1 message" in row and "indefinitely" in row
    api = Client(site.url, basic=("audrey", PASSWORD)).get("/api/holds").json()
    legacy = next(hold for hold in api if hold["id"] == "0ld0ld00")
    assert legacy["name"] is None and legacy["reason"] is None and legacy["created"] is None


# -- the message view ----------------------------------------------------------------------

def test_html_is_framed_sanitized_under_its_own_policy(site):
    alice = logged_in(site, "alice")
    digest = site.digests["newsletter"]
    page = alice.get(f"/message/{digest}?q=merger").body.decode()
    frame = re.search(r'<iframe class="mail-body"[^>]*>', page).group(0)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame
    assert f'src="/message/{digest}/frame?q=merger&amp;"' in frame
    assert "1 remote image blocked" in page
    shown = alice.get(f"/message/{digest}/frame?q=merger")
    policy = shown.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; img-src data:;") and "sandbox" in policy
    assert shown.headers["X-Frame-Options"] == "SAMEORIGIN"
    body = shown.body.decode()
    assert '<mark class="hit">merger</mark>' in body and 'src="data:image/png;base64,' in body
    assert f'src="{ORIGIN}' not in body
    remote = alice.get(f"/message/{digest}/frame?remote=1")
    assert "img-src data: http: https:" in remote.headers["Content-Security-Policy"]
    assert f'src="{ORIGIN}/newsletter-tracker.png"' in remote.body.decode()
    views = [e["details"] for e in audit.entries(site.archive.store, 10) if e["who"] == "alice"]
    assert {"digest": digest, "remote_images": True} in views


def test_the_plain_text_and_all_headers_on_request(site):
    alice = logged_in(site, "alice")
    digest = site.digests["newsletter"]
    text = alice.get(f"/message/{digest}?view=text").body.decode()
    assert '<pre class="body" id="body">The plain-text alternative' in text
    assert "<iframe" not in text
    assert "X-Mailer" not in alice.get(f"/message/{digest}").body.decode()
    every = alice.get(f"/message/{digest}?headers=all").body.decode()
    assert "<th><bdi>X-Mailer</bdi></th><td><bdi>Review test mailer</bdi></td>" in every
    assert "<th><bdi>MIME-Version</bdi></th>" in every


def test_a_forwarded_message_opens_as_a_message_with_its_attachments(site):
    alice = logged_in(site, "alice")
    digest = site.digests["forwarded"]
    outer = alice.get(f"/message/{digest}").body.decode()
    # (listed as `show` lists it, number 1, its subject beside: review r9 F6)
    assert f'href="/message/{digest}?part=2"><bdi>(no name, saved as attachment-1)</bdi></a>' \
        in outer and "; subject <bdi>Signed contract</bdi>" in outer
    assert "contract.pdf" in outer and "Attachments shown" not in outer  # its own page has them
    assert "<th>Envelope recipients</th><td><bdi>alice@example.com</bdi></td>" in outer
    assert "<th>Date from</th><td>the Date header</td>" in outer
    assert f"<code class=\"digest\">{digest}</code>" in outer
    inner = alice.get(f"/message/{digest}?part=2&q=merger").body.decode()
    assert "<h1><bdi>Signed contract</bdi></h1>" in inner
    assert "Please find the signed contract" in inner
    assert f'<img class="pdf-page" src="/message/{digest}/part/2.1.2/page/1"' in inner
    assert f'src="/message/{digest}/part/2.1.3/inline"' in inner
    assert "the parties agree on the <mark>merger</mark> terms" in inner
    assert "text read" in inner and "no text: found by its name and type" in inner
    page = alice.get(f"/message/{digest}/part/2.1.2/page/2")
    assert page.status == 200 and page.headers["Content-Type"] == "image/png"
    assert page.body.startswith(b"\x89PNG")
    pdf = alice.get(f"/message/{digest}/part/2.1.2")
    assert pdf.body.startswith(b"%PDF-1.4")
    assert pdf.headers["Content-Disposition"] == 'attachment; filename="contract.pdf"'
    image = alice.get(f"/message/{digest}/part/2.1.3/inline")
    assert image.headers["Content-Type"] == "image/png" and image.body.startswith(b"\x89PNG")
    attached = alice.get(f"/message/{digest}/part/2")
    assert b"Subject: Signed contract" in attached.body
    assert alice.get(f"/message/{digest}/part/2.1.2/page/9").status == 404
    assert alice.get(f"/message/{digest}/part/7").status == 404
    assert alice.get(f"/message/{digest}?part=1").status == 404  # a text part is no message


def test_a_user_reads_no_one_elses_message_part_frame_or_page(site):
    alice = logged_in(site, "alice")
    bobs = site.digests["bob-only"]
    for path in (f"/message/{bobs}", f"/message/{bobs}/frame", f"/message/{bobs}/part/1",
                 f"/message/{bobs}/part/1/inline", f"/message/{bobs}/part/1/page/1",
                 f"/message/{bobs}?part=1", f"/message/{bobs}/raw"):
        reply = alice.get(path)
        assert reply.status == 404 and b"Salary" not in reply.body, path
    mine = alice.get(f"/message/{site.digests['alice-cc']}").body.decode()
    assert "<th>Holds</th>" not in mine  # holds are staff's business


# -- administration ------------------------------------------------------------------------

def test_users_are_added_changed_reset_and_disabled_by_admins(site):
    admin = logged_in(site, "admin")
    added = post(admin, "/users", "/users", name="carl", role="user",
                 emails="carl@example.com, CARL@example.org", password=PASSWORD)
    assert added.status == 303 and b"User &#39;carl&#39; added." in admin.get("/users").body
    carl = logged_in(site, "carl")
    assert carl.get("/status").status == 403
    post(admin, "/users/role", "/users", name="carl", role="auditor")
    assert carl.get("/status").status == 200  # the new role holds at once
    post(admin, "/users/password", "/users", name="carl", password="a new password 1")
    assert carl.get("/search").status == 303  # the reset ended carl's session
    carl = logged_in(site, "carl", "a new password 1")
    assert carl.get("/search").status == 200
    post(admin, "/users/disabled", "/users", name="carl", disabled="yes")
    refused = Client(site.url, basic=("carl", "a new password 1")).get("/api/session")
    assert refused.status == 401
    assert "disabled" in admin.get("/users").body.decode().split('id="user-carl"')[1][:600]
    post(admin, "/users/disabled", "/users", name="carl", disabled="no")
    assert Client(site.url, basic=("carl", "a new password 1")).get("/api/session").status == 200
    # The session carl had before he was disabled, unused meanwhile, stays ended: a session
    # stolen before the account was disabled must not come back with it.
    assert carl.get("/search").status == 303
    myself = post(admin, "/users/disabled", "/users", name="admin", disabled="yes")
    assert b"firstboot" in admin.get("/users").body and myself.status == 303
    actions = [e["action"] for e in audit.entries(site.archive.store, 40) if e["who"] == "admin"]
    for action in ("user-add", "user-role", "user-passwd", "user-disable", "user-enable"):
        assert action in actions
    assert logged_in(site, "audrey").get("/users").status == 403


def test_the_audit_log_is_filtered_paged_exported_and_verified(site):
    store = site.archive.store
    for number in range(230):
        audit.record(store, audit.Actor("robot", "auditor"), "search", query=f"q{number}")
    auditor = logged_in(site, "audrey")
    page = auditor.get("/audit?who=robot&action=search").body.decode()
    assert "1–100 of 230 entries" in page and page.count("<td>search</td>") == 100
    assert "query=q229" in page and "query=q129" not in page  # newest first
    second = auditor.get("/audit?who=robot&action=search&offset=100").body.decode()
    assert "101–200 of 230" in second and "query=q129" in second
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert "of 230 entries" in auditor.get(f"/audit?who=robot&since={today}&until={today}").body.decode()
    assert "No entries match" in auditor.get("/audit?who=robot&until=2000-01-01").body.decode()
    exported = auditor.get("/audit.csv?who=robot&action=search")
    assert exported.headers["Content-Type"] == "text/csv; charset=utf-8"
    lines = list(csv.reader(io.StringIO(exported.body.decode())))
    assert lines[0] == ["seq", "time", "who", "role", "action", "details", "hash"]
    assert len(lines) == 231 and lines[1][5] == '{"query": "q229"}'
    verified = auditor.get("/audit?verify=1").body.decode()
    assert "The chain is intact" in verified
    assert [e["action"] for e in audit.entries(store, 3)][-2:] in (
        ["audit-export", "audit-verify"], ["audit-verify", "login"])


def test_retention_changes_are_previewed_then_confirmed(site, monkeypatch):
    # The site's mail arrived by SMTP today and counts from then (retention_clock): the
    # preview is asked two days on, when a policy of one day would delete all of it.
    monkeypatch.setattr(retention, "time", ModuleClock(time.time() + 2 * 86400))
    admin = logged_in(site, "admin")
    unconfirmed = post(admin, "/retention", "/retention", enabled="on", global_days="1")
    assert unconfirmed.status == 303 and b"Preview the change first" in admin.get("/retention").body
    preview = post(admin, "/retention/preview", "/retention", kind="global", enabled="on",
                   global_days="1").body.decode()
    stored = site.archive.store.counters()["messages"]
    held = int(re.search(r"(\d+) more messages? would be, but", preview).group(1)) \
        if "would be, but" in preview else 0
    assert f"{stored - held} messages would be deleted at the next run" in preview
    assert preview.count("<tr><td class=\"nowrap\">") == min(stored - held, 20)
    assert 'name="confirmed" value="yes"' in preview
    confirmed = admin.request("POST", "/retention", form={
        "csrf_token": csrf_token(preview.encode()), "confirmed": "yes", "enabled": "on",
        "global_days": "3650"})
    assert confirmed.status == 303
    assert b"Retention is <strong>on</strong>" in admin.get("/retention").body
    post(admin, "/retention", "/retention", confirmed="yes", global_days="")  # off again
    previewed = [e for e in audit.entries(site.archive.store, 20)
                 if e["action"] == "retention-preview"]
    assert previewed and previewed[-1]["details"]["would_delete"] == stored - held
    assert logged_in(site, "audrey").request("POST", "/retention/preview",
                                              form={"kind": "global"}).status == 403


def test_status_charts_index_capacity_disk_and_peers_in_words(site):
    store = site.archive.store
    mirror_state.join(store, "a long enough shared secret 123", "10.0.0.2:8443")
    mirror_state.join(store, "a long enough shared secret 123", "10.0.0.3:8443")
    now = time.time()
    mirror_state.save_status(store, "10.0.0.2:8443", mirror_state.PeerStatus(
        state="offline", reason="unreachable: no answer in time", last_error="unreachable: "
        "no answer in time", last_error_time=now - 120, last_success=now - 7200, copied=5))
    mirror_state.save_status(store, "10.0.0.3:8443", mirror_state.PeerStatus(
        state="connected", reason="", connected_since=now - 3 * 3600, last_success=now - 30,
        last_error="an old error", last_error_time=now - 86400, copied=9))
    page = logged_in(site, "admin").get("/status").body.decode()
    stored = store.counters()["messages"]
    assert f"{stored} of {stored} indexed" in page
    assert "<h2>Model capacity</h2>" in page and "<h2>Data disk</h2>" in page
    assert page.count('<svg class="chart"') == 2
    bars = re.search(r'aria-label="messages archived a day.*?</svg>', page, re.S).group(0)
    assert bars.count('<rect class="bar"') == 90 and f": {stored}</title>" in bars
    offline = page[page.index("<strong>10.0.0.2:8443</strong>"):][:900]
    assert "Not connected (offline): unreachable: no answer in time." in offline
    assert "Last copied 2 hours ago" in offline and "Last error (2 minutes ago)" in offline
    connected = page[page.index("<strong>10.0.0.3:8443</strong>"):][:900]
    assert "Connected for 3 hours." in connected and "Last copied just now" in connected
    assert "an old error" not in connected  # not current: not shown
    for peer in ("10.0.0.2:8443", "10.0.0.3:8443"):
        mirror_state.leave(store, peer)


def test_the_api_exports_chosen_messages(site):
    auditor = Client(site.url, basic=("audrey", PASSWORD))
    chosen = [site.digests["lookalike"], site.digests["alice-cc"]]
    reply = auditor.request("POST", "/api/exports", {"format": "zip", "digests": chosen})
    assert reply.status == 200
    with zipfile.ZipFile(io.BytesIO(reply.body)) as exported:
        manifest = list(csv.DictReader(io.StringIO(exported.read("manifest.csv").decode())))
    assert [row["digest"] for row in manifest] == chosen
    assert auditor.request("POST", "/api/exports", {"format": "zip", "digests": []}).status == 400
    assert auditor.request("POST", "/api/exports", {"format": "zip", "digests": "x"}).status == 400


def test_an_api_export_names_what_it_exports_never_all_by_default(site):
    """{"format": "zip"} alone exported all the mail the caller may read."""
    auditor = Client(site.url, basic=("audrey", PASSWORD))
    for body in ({"format": "zip"}, {"format": "zip", "query": "", "digests": ["x"]},
                 {"format": "zip", "query": None}, {"format": "zip", "digests": None}):
        refused = auditor.request("POST", "/api/exports", body)
        assert refused.status == 400 and 'give "digests" or "query"' in refused.json()["error"]
    chosen = auditor.request("POST", "/api/exports", {"format": "zip", "query": None,
                                                      "digests": [site.digests["lookalike"]]})
    assert chosen.status == 200  # a null field is an absent one
    everything = auditor.request("POST", "/api/exports", {"format": "zip", "query": ""})
    assert everything.status == 200
    with zipfile.ZipFile(io.BytesIO(everything.body)) as exported:
        rows = list(csv.DictReader(io.StringIO(exported.read("manifest.csv").decode())))
    total = auditor.get("/api/search?q=&limit=1").json()["total"]
    assert len(rows) == total >= len(site.digests)  # an auditor reads all of it


@pytest.mark.parametrize("method, path, body, key", [
    ("POST", "/api/exports", {"format": "zip", "selection": ["x"]}, "selection"),
    ("POST", "/api/session", {"name": "audrey", "password": PASSWORD, "otp": "1"}, "otp"),
    ("PUT", "/api/saved-searches/typo", {"querry": "from:carol"}, "querry"),
    ("POST", "/api/holds", {"saved": "x", "untill": "2030-01-01"}, "untill"),
    ("PUT", "/api/retention", {"enable": True}, "enable"),
])
def test_a_json_body_with_an_unknown_key_is_refused_naming_it(site, method, path, body, key):
    reply = Client(site.url, basic=("admin", PASSWORD)).request(method, path, body)
    assert reply.status == 400 and reply.json()["error"].startswith(f"{key}: unknown key")
