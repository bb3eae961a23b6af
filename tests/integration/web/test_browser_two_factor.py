"""Two-factor sign-in in headless Chromium, as `archiver serve web` serves it with
two_factor.required_for [admin]: the admin is sent to the account page, scans the QR code
(the screenshot is read back with zbarimg), turns codes on with the app's code, and signs
in again with name, password and then a code, on the real clock."""
from __future__ import annotations

import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from tests.integration.web.fixtures import PASSWORD
from tests.integration.web.browser import shot, web_service

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    started = web_service(tmp_path_factory.mktemp("browser-2fa"),
                          two_factor={"required_for": ["admin"], "issuer": "Archiver test"})
    yield started
    assert started.stop() == 0


def read_qr_code(page, tmp_path) -> str:
    """What the QR code on the page says, read from a screenshot as a phone would."""
    image = tmp_path / "qr.png"
    page.locator("figure.qr").screenshot(path=str(image))
    done = subprocess.run(["zbarimg", "--quiet", "--raw", str(image)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_admin_enrols_and_signs_in_with_a_code(page, service, tmp_path):
    page.goto(service.url + "/search")
    page.fill("input[name=name]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url("**/account")  # required for admins: nothing else before it
    assert "Set up two-factor sign-in first" in page.inner_text("p.flash")
    page.click("button:has-text('Set up two-factor sign-in')")
    page.wait_for_selector("figure.qr svg")
    shot(page, "10-two-factor-enrol")
    uri = read_qr_code(page, tmp_path)
    assert uri.startswith("otpauth://totp/Archiver%20test:admin?")
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    assert secret == page.inner_text("code.totp-secret")
    app = pyotp.TOTP(secret)
    page.fill("input[name=code]", app.now())
    page.click("button:has-text('Turn on')")
    page.wait_for_selector("ul.recovery-codes")
    assert page.locator("ul.recovery-codes li").count() == 10
    shot(page, "11-two-factor-recovery-codes")
    page.click("a:has-text('Done')")
    page.click("button:has-text('Log out')")
    page.wait_for_url("**/login")

    page.goto(service.url + "/status")
    page.fill("input[name=name]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_selector("form[action='/login/code']")
    shot(page, "12-two-factor-code")
    # the code of the enrolment is spent: the app's next one (one step of drift allowed)
    page.fill("input[name=code]", app.at(time.time() + app.interval))
    page.click("button:has-text('Log in')")
    page.wait_for_url("**/status")
    assert page.inner_text("h1") == "Status"
    assert "admin (admin)" in page.inner_text("header .who")
