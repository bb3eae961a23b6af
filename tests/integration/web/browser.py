"""Driving the web UI in Debian's Chromium with Playwright: how it is launched (headless,
no sandbox, no background networking, so that every request it makes is the page's),
screenshots kept in build/screenshots/, `archiver serve web` started for it, and logging in
through the form."""
from __future__ import annotations

from typing import Callable

import yaml

from tests.conftest import TREE
from tests.integration.processes import ArchiverService, wait_for_port
from tests.integration.web.fixtures import PASSWORD, build_archive

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


def fixture_archive(data) -> None:
    """The archive of fixtures.MAILS in `data` (web_service's default)."""
    archive, _ = build_archive(data)
    archive.close()


def web_service(directory, prepare: Callable = fixture_archive, **config) -> ArchiverService:
    """`archiver serve web` (model 450) over plain HTTP on loopback, started and answering,
    with `config` sections added; `prepare(data_dir)` makes its archive first and returns
    what the service's `prepared` then holds. Stop it with its stop()."""
    started = ArchiverService(directory, {"model": 450}, command=("serve", "web"))
    started.prepared = prepare(started.data)
    started.config["web"]["plain_http"] = True
    started.config.update(config)
    started.config_path.write_text(yaml.safe_dump(started.config))
    started.start()
    wait_for_port("127.0.0.1", started.web_port)
    started.url = f"http://127.0.0.1:{started.web_port}"
    return started
