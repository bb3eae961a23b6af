"""Driving the web UI in Debian's Chromium with Playwright: how it is launched (headless,
no sandbox, no background networking, so that every request it makes is the page's),
screenshots kept in build/screenshots/, and logging in through the form."""
from __future__ import annotations

from tests.conftest import TREE
from tests.integration.web.fixtures import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                 "--no-default-browser-check", "--disable-default-apps"]
SCREENSHOTS = TREE / "build" / "screenshots"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page, url: str, name: str, screenshot: str | None = None) -> None:
    page.goto(url + "/search")
    assert "/login" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    if screenshot:
        shot(page, screenshot)
    page.click("button:has-text('Log in')")
    page.wait_for_url("**/search")
