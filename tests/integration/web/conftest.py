"""The web tests' shared site: the archive of fixtures.MAILS (and a module's `extra_mails`)
served on loopback by the web app in the test process, one per test module."""
from __future__ import annotations

import pytest

from services.appliance import admin_password
from tests.integration.processes import free_port
from tests.integration.web.fixtures import ThreadedServer, build_archive, web_config

# scrypt's cost N for the passwords of the accounts these tests make (in this process).
QUICK_SCRYPT_N = 2**8


@pytest.fixture(scope="package", autouse=True)
def quick_password_hashes():
    """Accounts made here hash their passwords at N = QUICK_SCRYPT_N, not the appliance's
    2**14 (admin_password.SCRYPT_N, ~40 ms a check). A password is checked with the N its
    record holds, and a client with HTTP Basic credentials has it checked on every
    request: some thousand requests of these tests took a minute of CPU in scrypt. The
    same code checks them (admin_password.verify, the same scrypt, salt and comparison);
    what the cost is stays with tests/unit/appliance and the CLI (`archiver user add`
    runs in a process of its own, at the appliance's N)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(admin_password, "SCRYPT_N", QUICK_SCRYPT_N)
        yield


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    """Mail a test module adds to its site: {name: (raw bytes, Envelope)}; override it."""
    return {}


@pytest.fixture(scope="module")
def site(tmp_path_factory, extra_mails):
    data = tmp_path_factory.mktemp("web") / "data"
    archive, digests = build_archive(data, extra_mails)
    server = ThreadedServer(web_config(data, free_port()), archive).start()
    server.digests, server.archive = digests, archive
    server.names = {digest: name for name, digest in digests.items()}
    yield server
    server.stop()
    archive.close()


@pytest.fixture
def fresh_throttle(site):
    """Each test starts with no failed logins counted."""
    site.app["auth"].throttle.clear()


@pytest.fixture(scope="package")
def chromium():
    """Debian's Chromium, headless, driven by Playwright (tests marked `browser`): one for
    the web tests (a launch costs about 1.7 s; each test has a browser context, so cookies
    and pages of its own)."""
    from playwright.sync_api import sync_playwright
    from tests.integration.web.browser import CHROMIUM, CHROMIUM_ARGS
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


def pytest_collection_modifyitems(config, items):
    """A test marked only_directory(KIND) runs with that kind of directory only (the
    `directory` fixture's parameter): the other is deselected, not skipped, since it has
    nothing of the kind to test."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("only_directory")
        params = getattr(getattr(item, "callspec", None), "params", {})
        wrong = marker is not None and params.get("directory") not in (None, *marker.args)
        (dropped if wrong else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
