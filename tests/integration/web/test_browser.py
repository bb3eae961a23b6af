"""The web UI in headless Chromium (Debian's chromium, driven by Playwright): log in,
search, open a message, export, read the status page, as `archiver serve web` serves
them. Screenshots are kept in build/screenshots/."""
from __future__ import annotations

import zipfile

import pytest

from tests.integration.web import browser
from tests.integration.web.browser import shot
from tests.integration.web.fixtures import ALICE_MAIL, MAILS

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    started = browser.web_service(tmp_path_factory.mktemp("browser"))
    yield started
    assert started.stop() == 0


def log_in(page, service, name: str, screenshot: str | None = None) -> None:
    browser.log_in(page, service.url, name, screenshot)


def search(page, query: str) -> list[str]:
    page.fill("input[name=q]", query)
    page.click("form.search button")
    page.wait_for_selector("p.summary")
    return page.locator("table.hits tbody td.subject a").all_inner_texts()


def test_log_in_search_open_a_message_and_export(page, service, tmp_path):
    log_in(page, service, "audrey", screenshot="01-login")
    subjects = search(page, "from:carol")
    assert sorted(subjects) == ["Board minutes", "Lunch plans", "Merger draft", "Not for alice"]
    assert page.inner_text("p.summary") == "1–4 of 4"
    shot(page, "02-search")

    page.click("a:has-text('Merger draft')")
    page.wait_for_selector("h1:has-text('Merger draft')")
    assert "alice@example.com" in page.inner_text("table.envelope")  # envelope recipient
    assert "Draft of the merger" in page.inner_text("pre.body")  # a text mail: as text
    shot(page, "03-message")

    page.go_back()
    page.check("input[name=scope][value=all]")
    with page.expect_download() as started:
        page.click("button:has-text('Export (.eml files)')")
    saved = tmp_path / "export.zip"
    started.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert len([n for n in archive.namelist() if n.startswith("messages/")]) == 4
        assert "manifest.csv" in archive.namelist()
    shot(page, "04-export")


def test_message_with_an_attachment_downloads_it(page, service, tmp_path):
    log_in(page, service, "alice")
    search(page, "report")
    page.click("a:has-text('Quarterly report')")
    page.wait_for_selector("ul.tree")
    shot(page, "05-attachment")
    with page.expect_download() as started:
        page.click("a:has-text('report.bin')")
    saved = tmp_path / "report.bin"
    started.value.save_as(saved)
    assert saved.read_bytes() == b"\x00\x01secret numbers\xff"


def test_a_user_sees_only_their_own_mail(page, service):
    log_in(page, service, "alice")
    subjects = search(page, "")
    assert sorted(subjects) == sorted(MAILS[name][0].split(b"Subject: ")[1].split(b"\n")[0]
                                      .decode() for name in ALICE_MAIL)
    assert page.locator("header nav a").all_inner_texts() == ["Search", "Account"]
    shot(page, "06-user-search")


def test_status_page(page, service):
    log_in(page, service, "admin")
    page.click("header nav a:has-text('Status')")
    page.wait_for_selector("h1:has-text('Status')")
    storage = page.inner_text("section.card:has(h2:has-text('Model capacity'))")
    assert f"{len(MAILS)} messages" in storage
    index = page.inner_text("section.card:has(h2:has-text('Index'))")
    assert f"{len(MAILS)} of {len(MAILS)} indexed" in index
    web_row = page.inner_text("table.services tr:has(td:text-is('web'))")
    assert "running" in web_row
    shot(page, "07-status")


@pytest.mark.parametrize("path, heading", [
    ("/mirror", "Mirroring"), ("/sources", "Mail sources"), ("/saved", "Saved searches"),
    ("/retention", "Retention"), ("/holds", "Litigation holds"), ("/audit", "Audit log")])
def test_admin_pages(page, service, path, heading):
    log_in(page, service, "admin")
    page.goto(service.url + path)
    assert page.inner_text("h1") == heading
    shot(page, f"08-{path.strip('/')}")


def test_saving_a_search_and_holding_it(page, service):
    log_in(page, service, "audrey")
    search(page, "from:carol")
    page.check("input[name=scope][value=all]")
    page.click("summary:has-text('Save as a search')")
    page.fill("input[name=name]", "carol-mail")
    page.click("button:has-text('Save')")
    page.wait_for_url("**/saved")
    assert "carol-mail" in page.inner_text("table")
    page.goto(service.url + "/holds")
    page.select_option("select[name=saved]", "carol-mail")
    page.fill("input[name=matter]", "Carol's matter")
    page.click("button:has-text('Hold')")
    page.wait_for_selector("p.flash")
    assert "is held" in page.inner_text("p.flash")
    assert "carol-mail" in page.inner_text("table")
    assert page.locator("button:has-text('Remove')").count() == 0  # auditors cannot
    shot(page, "09-holds")
