"""The web UI in headless Chromium (Debian's chromium, driven by Playwright): log in,
search, open a message, export, read the status page, as `archiver serve web` serves
them. Screenshots are kept in build/test-output/screenshots/."""
from __future__ import annotations

import zipfile

import pytest
import yaml

from tests.conftest import TREE
from tests.integration.processes import ArchiverService, wait_for_port
from tests.integration.web.fixtures import ALICE_MAIL, MAILS, PASSWORD, build_archive

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = TREE / "build" / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    directory = tmp_path_factory.mktemp("browser")
    started = ArchiverService(directory, {"model": 450}, command=("serve", "web"))
    archive, _ = build_archive(started.data)
    archive.close()
    started.config["web"]["plain_http"] = True
    started.config_path.write_text(yaml.safe_dump(started.config))
    started.start()
    wait_for_port("127.0.0.1", started.web_port)
    started.url = f"http://127.0.0.1:{started.web_port}"
    yield started
    assert started.stop() == 0


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                   accept_downloads=True)
    yield context.new_page()
    context.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page, service, name: str, screenshot: str | None = None) -> None:
    page.goto(service.url + "/search")
    assert "/login" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    if screenshot:
        shot(page, screenshot)
    page.click("button:has-text('Log in')")
    page.wait_for_url("**/search")


def search(page, query: str) -> list[str]:
    page.fill("input[name=q]", query)
    page.click("form.search button")
    page.wait_for_selector("p.summary")
    return page.locator("table.hits tbody td:nth-child(3)").all_inner_texts()


def test_log_in_search_open_a_message_and_export(page, service, tmp_path):
    log_in(page, service, "audrey", screenshot="01-login")
    subjects = search(page, "from:carol")
    assert sorted(subjects) == ["Board minutes", "Lunch plans", "Merger draft", "Not for alice"]
    assert page.inner_text("p.summary") == "1–4 of 4"
    shot(page, "02-search")

    page.click("a:has-text('Merger draft')")
    page.wait_for_selector("h1:has-text('Merger draft')")
    assert "alice@example.com" in page.inner_text("table.envelope")  # envelope recipient
    assert "Draft of the merger" in page.inner_text("pre.body")
    shot(page, "03-message")

    page.go_back()
    page.select_option("select[name=format]", "zip")
    with page.expect_download() as started:
        page.click("button:has-text('Export')")
    saved = tmp_path / "export.zip"
    started.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert len(archive.namelist()) == 4
    shot(page, "04-export")


def test_message_with_an_attachment_downloads_it(page, service, tmp_path):
    log_in(page, service, "alice")
    search(page, "report")
    page.click("a:has-text('Quarterly report')")
    page.wait_for_selector("ul.attachments")
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
    storage = page.inner_text("section.card:has(h2:has-text('Storage'))")
    assert f"{len(MAILS)} messages" in storage
    queues = page.inner_text("section.card:has(h2:has-text('Queues'))")
    assert f"{len(MAILS)} of {len(MAILS)} indexed" in queues
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
    page.fill("input[name=name]", "carol-mail")
    page.click("button:has-text('Save')")
    page.wait_for_url("**/saved")
    assert "carol-mail" in page.inner_text("table")
    page.goto(service.url + "/holds")
    page.select_option("select[name=saved]", "carol-mail")
    page.click("button:has-text('Hold')")
    page.wait_for_selector("p.flash")
    assert "is held" in page.inner_text("p.flash")
    assert "carol-mail" in page.inner_text("table")
    assert page.locator("button:has-text('Remove')").count() == 0  # auditors cannot
    shot(page, "09-holds")
