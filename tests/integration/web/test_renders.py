"""PDF render bombs (nested form XObjects: a 2 KB PDF whose pages take poppler minutes)
cost their own user's render slots, never another user's page views, downloads or
logins; a page that failed is answered from memory the next time, poppler not run again."""
from __future__ import annotations

import threading

import psutil
import pytest

from services.web import pdf_pages
from tests.integration.web.review_mails import attachment_mail, pdf, xobject_bomb
from tests.integration.web.test_ui import logged_in
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

BOMB_PAGES = 6
LIMIT_SECONDS = 8  # poppler's time limit here: far longer than the other user's requests


@pytest.fixture(scope="module")
def extra_mails():
    return {
        "bomb": (attachment_mail("Render bomb", "alice@example.com", "bomb.pdf",
                                 xobject_bomb(6, BOMB_PAGES), "application", "pdf"), None),
        "report": (attachment_mail("Ordinary report", "bob@example.com", "report.pdf",
                                   pdf(["Page one", "Page two"]), "application", "pdf"), None)}


def _poppler_running() -> int:
    return sum(1 for child in psutil.Process().children(recursive=True)
               if child.name() == "pdftoppm")


def test_a_render_bomb_holds_its_users_slots_not_the_others_views(site, monkeypatch):
    monkeypatch.setattr(pdf_pages, "TIMEOUT_SECONDS", LIMIT_SECONDS)  # each bomb page hits it
    renders = site.app.get("renders")
    if renders is not None:  # 2 running and 1 queued for alice: the rest are refused
        monkeypatch.setattr(renders, "waiting", 1)
    alice, audrey = logged_in(site, "alice"), logged_in(site, "audrey")
    bomb, report = site.digests["bomb"], site.digests["report"]
    answered: list[int] = []  # alice's statuses, in the order they came
    failed_pages: list[int] = []
    lock = threading.Lock()

    def ask(number: int) -> None:
        status = alice.get(f"/message/{bomb}/part/2/page/{number}").status
        with lock:
            answered.append(status)
            if status == 404:
                failed_pages.append(number)

    askers = [threading.Thread(target=ask, args=(n,)) for n in range(1, BOMB_PAGES + 1)]
    for asker in askers:
        asker.start()
    wait_until(_poppler_running, 30, "poppler rendering the bomb's pages")
    view = audrey.get(f"/message/{report}").body.decode()
    page = audrey.get(f"/message/{report}/part/2/page/2")
    download = audrey.get(f"/message/{report}/part/2")
    bob = logged_in(site, "bob")
    with lock:
        rendered_meanwhile = [status for status in answered if status != 429]
    assert "<h1><bdi>Ordinary report</bdi></h1>" in view and 'alt="page 2 of 2"' in view
    assert page.status == 200 and page.body.startswith(b"\x89PNG")
    assert download.body.startswith(b"%PDF") and bob.get("/search?q=").status == 200
    assert rendered_meanwhile == [], "another user waited for the bomb's renders"
    for asker in askers:
        asker.join(120)
    assert sorted(set(answered)) == [404, 429]  # timed out, or over alice's slots
    started, remembered = renders.started, renders.remembered
    again = alice.get(f"/message/{bomb}/part/2/page/{failed_pages[0]}")
    assert again.status == 404 and f"longer than {LIMIT_SECONDS} s".encode() in again.body
    assert renders.started == started and renders.remembered == remembered + 1
    assert _poppler_running() == 0


def test_page_numbers_past_any_pdf_are_not_found(site):
    alice = logged_in(site, "alice")
    bobs = logged_in(site, "bob")
    report = site.digests["report"]
    for number in ("99999999999999999999", "4294967297", "1000001", "0", "%C2%B2", "1" * 5000):
        assert bobs.get(f"/message/{report}/part/2/page/{number}").status == 404, number
    assert alice.get(f"/message/{report}/part/2/page/1").status == 404  # not alice's
