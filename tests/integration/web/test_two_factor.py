"""Two-factor sign-in (TOTP) for local accounts through the web app: enrolment from the
account page, the login form's second step, the API's "code", codes spent once, recovery
codes, guessing throttled, and admins made to enrol when two_factor.required_for says so.
The codes' clock (services.appliance.totp.clock) is moved on by the tests, step by step;
the browser's sign-in with a real clock is in test_browser_two_factor.py."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess

import pyotp
import pytest

from services.appliance import totp, users
from services.common.config import TwoFactorConfig
from services.policy import audit
from tests.conftest import ARCHIVER
from tests.integration.processes import free_port
from tests.integration.web.fixtures import (PASSWORD, Client, ThreadedServer, build_archive,
                                            web_config)

pytestmark = [pytest.mark.integration]


class StepClock:
    """totp.clock for the tests: a step on whenever a test asks."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def step(self) -> None:
        self.now += totp.STEP_SECONDS


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    data = tmp_path_factory.mktemp("web") / "data"
    archive, _ = build_archive(data)
    config = dataclasses.replace(web_config(data, free_port()),
                                 two_factor=TwoFactorConfig(required_for=["admin"]))
    server = ThreadedServer(config, archive).start()
    server.archive, server.data = archive, data
    yield server
    server.stop()
    archive.close()


@pytest.fixture(autouse=True)
def clock(site, monkeypatch):
    site.app["auth"].throttle.clear()
    stepped = StepClock(1_800_000_000.0)
    monkeypatch.setattr(totp, "clock", stepped)
    return stepped


@pytest.fixture
def account(site):
    """A fresh local auditor of this test's own (codes are spent per account)."""
    name = f"tester{len(users.all_users(site.archive))}"
    users.add(site.archive, name, "auditor", [], PASSWORD)
    return name


def form_token(page: bytes, field: str) -> str:
    return re.search(rf'name="{field}" value="([^"]+)"', page.decode()).group(1)


def form_login(site, name: str, password: str = PASSWORD):
    """The login form's first step: (client, reply)."""
    client = Client(site.url)
    token = form_token(client.get("/login").body, "login_token")
    return client, client.request("POST", "/login", form={
        "login_token": token, "name": name, "password": password, "next": "/search"})


def post_code(client: Client, step_page: bytes, code: str):
    return client.request("POST", "/login/code", form={
        "login_token": form_token(step_page, "login_token"),
        "pending": form_token(step_page, "pending"), "code": code, "next": "/search"})


def account_form(client: Client, path: str, **fields):
    csrf = form_token(client.get("/account").body, "csrf_token")
    return client.request("POST", path, form={"csrf_token": csrf, **fields})


def shown_secret(client: Client) -> str | None:
    """The key the account page shows this client for an enrolment, None if it shows none."""
    found = re.search(r'class="totp-secret">([A-Z2-7]+)<', client.get("/account").body.decode())
    return found.group(1) if found else None


def enrol(site, clock, client: Client) -> tuple[str, list[str]]:
    """Enrol the client's account from the account page: (secret, recovery codes)."""
    assert account_form(client, "/account/two-factor/begin").status == 303
    page = client.get("/account").body.decode()
    secret = re.search(r'class="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert "<svg" in page
    reply = account_form(client, "/account/two-factor/confirm",
                         code=pyotp.TOTP(secret).at(clock.now))
    assert reply.status == 200, reply.body
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", reply.body.decode())
    clock.step()
    return secret, codes


def signed_in(site, name: str) -> Client:
    client, reply = form_login(site, name)
    assert reply.status == 303, reply.body
    return client


# -- enrolment -----------------------------------------------------------------------------

def test_enrolment_from_the_account_page(site, clock, account):
    client = signed_in(site, account)
    page = client.get("/account").body.decode()
    assert "Set up two-factor sign-in" in page
    assert account_form(client, "/account/two-factor/begin").status == 303
    page = client.get("/account").body.decode()
    secret = re.search(r'class="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert '<figure class="qr"><svg' in page
    wrong = account_form(client, "/account/two-factor/confirm", code="000000")
    assert wrong.status == 303 and not totp.enrolled(site.archive, account)
    assert "not the app&#39;s current one" in client.get("/account").body.decode()
    right = account_form(client, "/account/two-factor/confirm",
                         code=pyotp.TOTP(secret).at(clock.now))
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", right.body.decode())
    assert right.status == 200 and len(codes) == totp.RECOVERY_CODES
    assert totp.enrolled(site.archive, account)
    assert "On: signing in takes a code" in client.get("/account").body.decode()
    assert any(e["action"] == "two-factor-on" and e["who"] == account
               for e in audit.entries(site.archive.store))


def test_an_enrolment_is_the_session_s_that_began_it(site, clock, account):
    """Someone with the password but not the codes (another session of the account) never
    sees the secret an enrolment shows, nor switches codes on with it; setting up codes of
    its own gives it another secret, and the first session's stays as it was."""
    mine, other = signed_in(site, account), signed_in(site, account)
    assert account_form(mine, "/account/two-factor/begin").status == 303
    secret = shown_secret(mine)
    page = other.get("/account").body.decode()
    assert secret not in page and "<svg" not in page and "Set up two-factor sign-in" in page
    taken = account_form(other, "/account/two-factor/confirm",
                         code=pyotp.TOTP(secret).at(clock.now))
    assert taken.status == 303 and not totp.enrolled(site.archive, account)
    assert "waiting for a code" in other.get("/account").body.decode()
    assert account_form(other, "/account/two-factor/begin").status == 303
    assert shown_secret(other) not in (None, secret) and shown_secret(mine) == secret
    right = account_form(mine, "/account/two-factor/confirm",
                         code=pyotp.TOTP(secret).at(clock.now))
    assert right.status == 200 and totp.enrolled(site.archive, account)
    assert totp.verify(site.archive, account, pyotp.TOTP(secret).at(clock.now + 30)) == "totp"


def test_switching_codes_on_ends_the_account_s_other_sessions(site, clock, account):
    """Sessions that signed in with the password alone end when codes are switched on (the
    form's, the API's); the session that switched them on goes on."""
    enrolling, form = signed_in(site, account), signed_in(site, account)
    api = Client(site.url)
    assert api.log_in(account).status == 200 and form.get("/search").status == 200
    secret, _ = enrol(site, clock, enrolling)
    ended = form.get("/search")
    assert ended.status == 303 and ended.headers["Location"].startswith("/login")
    assert api.get("/api/session").status == 401
    assert enrolling.get("/search").status == 200
    assert enrolling.get("/api/session").json()["name"] == account


def test_codes_switched_off_and_on_again_end_the_sessions_of_the_old_codes(site, clock,
                                                                           account):
    """A session that signed in with codes since switched off is no session of the new ones:
    switching them off (in another session) ends it, and it stays ended."""
    old_secret, _ = enrol(site, clock, signed_in(site, account))
    with_old = signed_in_with(site, account, pyotp.TOTP(old_secret).at(clock.now))
    clock.step()
    renewing = signed_in_with(site, account, pyotp.TOTP(old_secret).at(clock.now))
    clock.step()
    off = account_form(renewing, "/account/two-factor/off",
                       code=pyotp.TOTP(old_secret).at(clock.now))
    assert off.status == 303 and not totp.enrolled(site.archive, account)
    assert "Two-factor sign-in is off." in renewing.get("/account").body.decode()
    assert with_old.get("/search").status == 303  # codes off ends the other sessions
    enrol(site, clock, renewing)
    assert with_old.get("/search").status == 303 and renewing.get("/search").status == 200


def idle_session(site, name: str) -> Client:
    """A session that signed in with the password alone and now makes no request: its
    cookie, as a thief who took it (or a browser left signed in elsewhere) keeps it."""
    client = signed_in(site, name)
    assert client.get("/search").status == 200
    return client


def test_a_session_from_before_codes_never_comes_back(site, clock, account):
    """A password-only session that made no request while codes were on is not honoured
    again when they go off (nor when codes go on again), so it cannot set up codes of its
    own and lock the owner out; the session that switched them off goes on."""
    dormant = idle_session(site, account)
    owner = signed_in(site, account)
    secret, _ = enrol(site, clock, owner)
    off = account_form(owner, "/account/two-factor/off", code=pyotp.TOTP(secret).at(clock.now))
    assert off.status == 303 and not totp.enrolled(site.archive, account)
    assert owner.get("/search").status == 200
    refused = dormant.get("/account")
    assert refused.status == 303 and refused.headers["Location"].startswith("/login")
    assert dormant.request("POST", "/account/two-factor/begin", form={}).status in (303, 403)
    assert not totp.enrolled(site.archive, account)
    enrol(site, clock, owner)
    assert dormant.get("/search").status == 303 and owner.get("/search").status == 200


def test_a_session_refused_once_is_never_honoured_again(site, clock, account):
    """Refused while codes are on (it signed in without one), a session stays ended after
    they go off: the refusal is not undone by the codes state it was refused in ending."""
    dormant = idle_session(site, account)
    api = Client(site.url)
    assert api.log_in(account).status == 200
    owner = signed_in(site, account)
    secret, _ = enrol(site, clock, owner)
    assert dormant.get("/search").status == 303 and api.get("/api/session").status == 401
    account_form(owner, "/account/two-factor/off", code=pyotp.TOTP(secret).at(clock.now))
    assert dormant.get("/search").status == 303 and api.get("/api/session").status == 401
    assert owner.get("/api/session").json()["name"] == account


def test_switching_codes_off_ends_the_account_s_other_sessions(site, clock, account):
    """Sessions that signed in with a code end when codes go off (in another session):
    what a code proved is no longer what the account asks for."""
    secret, _ = enrol(site, clock, signed_in(site, account))
    with_code = signed_in_with(site, account, pyotp.TOTP(secret).at(clock.now))
    clock.step()
    api = Client(site.url)
    assert api.request("POST", "/api/session", {"name": account, "password": PASSWORD,
                       "code": pyotp.TOTP(secret).at(clock.now)}).status == 200
    clock.step()
    switching = signed_in_with(site, account, pyotp.TOTP(secret).at(clock.now))
    clock.step()
    account_form(switching, "/account/two-factor/off", code=pyotp.TOTP(secret).at(clock.now))
    assert with_code.get("/search").status == 303 and api.get("/api/session").status == 401
    assert switching.get("/search").status == 200
    assert signed_in(site, account).get("/search").status == 200  # password alone again


def test_cancelling_an_enrolment_switches_nothing_off_and_records_nothing(site, clock,
                                                                        account):
    """"Cancel" while codes are being set up posts to .../off: nothing was on, so nothing is
    recorded, and no session ends (none changed state)."""
    other = idle_session(site, account)
    client = signed_in(site, account)
    assert account_form(client, "/account/two-factor/begin").status == 303
    before = len(audit.entries(site.archive.store))
    assert account_form(client, "/account/two-factor/off").status == 303
    assert [e["action"] for e in audit.entries(site.archive.store)[before:]
            if e["who"] == account] == []
    assert "cancelled" in client.get("/account").body.decode()
    assert shown_secret(client) is None and not totp.enrolled(site.archive, account)
    assert other.get("/search").status == 200 and client.get("/search").status == 200


def test_switching_codes_on_and_off_is_recorded_with_the_client_address(site, clock, account):
    client = signed_in(site, account)
    secret, _ = enrol(site, clock, client)
    account_form(client, "/account/two-factor/off", code=pyotp.TOTP(secret).at(clock.now))
    recorded = [e for e in audit.entries(site.archive.store) if e["who"] == account
                and e["action"] in ("two-factor-on", "two-factor-off")]
    assert [e["action"] for e in recorded] == ["two-factor-on", "two-factor-off"]
    login = [e for e in audit.entries(site.archive.store)
             if e["who"] == account and e["action"] == "login"][-1]
    assert login["details"]["client"] == "127.0.0.1"
    assert all(e["details"]["client"] == "127.0.0.1" for e in recorded), recorded


def test_renewed_recovery_codes_are_recorded_with_the_client_address(site, clock, account):
    client = signed_in(site, account)
    secret, first = enrol(site, clock, client)
    clock.step()
    reply = account_form(client, "/account/two-factor/recovery",
                         code=pyotp.TOTP(secret).at(clock.now))
    assert reply.status == 200 and first[0].encode() not in reply.body
    renewed = [e for e in audit.entries(site.archive.store)
               if e["who"] == account and e["action"] == "two-factor-recovery-codes"]
    assert [e["details"].get("client") for e in renewed] == ["127.0.0.1"], renewed


# -- signing in with a code ----------------------------------------------------------------

def test_the_login_form_asks_for_the_code_after_the_password(site, clock, account):
    secret, _ = enrol(site, clock, signed_in(site, account))
    client, step = form_login(site, account)
    assert step.status == 200 and b'action="/login/code"' in step.body
    assert client.get("/api/session").status == 401  # no session yet
    wrong = post_code(client, step.body, "123456")
    assert wrong.status == 401 and b"Wrong or already used code" in wrong.body
    right = post_code(client, wrong.body, pyotp.TOTP(secret).at(clock.now))
    assert right.status == 303 and right.headers["Location"] == "/search"
    assert client.get("/api/session").json()["name"] == account
    login = [e for e in audit.entries(site.archive.store)
             if e["action"] == "login" and e["who"] == account][-1]
    assert login["details"]["second_factor"] == "totp"


def test_a_wrong_password_never_reaches_the_code_step(site, clock, account):
    enrol(site, clock, signed_in(site, account))
    _, reply = form_login(site, account, "not the password")
    assert reply.status == 401 and b'action="/login/code"' not in reply.body


def test_the_api_takes_the_code_with_the_password_and_each_code_once(site, clock, account):
    secret, _ = enrol(site, clock, signed_in(site, account))
    without = Client(site.url).log_in(account)
    assert without.status == 401 and "two-factor code" in without.json()["error"]
    code = pyotp.TOTP(secret).at(clock.now)
    client = Client(site.url)
    reply = client.request("POST", "/api/session",
                           {"name": account, "password": PASSWORD, "code": code})
    assert reply.status == 200, reply.body
    again = Client(site.url).request("POST", "/api/session",
                                     {"name": account, "password": PASSWORD, "code": code})
    assert again.status == 401 and "already used" in again.json()["error"]
    basic = Client(site.url, basic=(account, PASSWORD)).get("/api/session")
    assert basic.status == 401 and "HTTP Basic cannot carry one" in basic.json()["error"]


def test_the_right_password_without_a_code_is_recorded_as_a_failed_login(site, clock,
                                                                          account):
    """Over the API (no "code", or HTTP Basic) the right password of an account with codes
    is a failed login, recorded as a wrong password is: its owner sees it is known. The
    login form's first step is no failure (the code step follows), but it is recorded too:
    a password known to someone who never gives a code shows in the log."""
    enrol(site, clock, signed_in(site, account))
    before = len(audit.entries(site.archive.store))
    failed_before = site.app["auth"].failed_logins
    assert Client(site.url).log_in(account).status == 401
    assert Client(site.url, basic=(account, PASSWORD)).get("/api/session").status == 401
    _, step = form_login(site, account)
    assert b'action="/login/code"' in step.body
    recorded = [(e["action"], e["details"].get("via"), e["details"].get("reason"),
                 e["details"].get("client"))
                for e in audit.entries(site.archive.store)[before:] if e["who"] == account]
    assert recorded == [("login-failed", "api", "no two-factor code", "127.0.0.1"),
                        ("login-failed", "basic", "no two-factor code", "127.0.0.1"),
                        ("login-code-asked", "form", None, "127.0.0.1")]
    assert site.app["auth"].failed_logins == failed_before + 2


def test_a_recovery_code_signs_in_once(site, clock, account):
    _, codes = enrol(site, clock, signed_in(site, account))
    client = signed_in_with(site, account, codes[0].upper())  # as typed, in any case
    assert client.get("/api/session").json()["name"] == account
    client, step = form_login(site, account)
    assert post_code(client, step.body, codes[0]).status == 401
    page = signed_in_with(site, account, codes[1]).get("/account").body.decode()
    assert f"{totp.RECOVERY_CODES - 2} recovery codes left" in page


def signed_in_with(site, name: str, code: str) -> Client:
    client, step = form_login(site, name)
    reply = post_code(client, step.body, code)
    assert reply.status == 303, reply.body
    return client


def test_guessing_codes_is_throttled_and_a_pending_login_allows_few_guesses(site, clock,
                                                                            account):
    site.app["auth"].throttle.clock = lambda: 5000.0  # no time passes: waits stay waits
    secret, _ = enrol(site, clock, signed_in(site, account))
    client, step = form_login(site, account)
    page = step.body
    for _ in range(site.app["auth"].pending.attempts - 1):
        reply = post_code(client, page, "000000")
        assert reply.status == 401 and b'action="/login/code"' in reply.body
        page = reply.body
    last = post_code(client, page, "000001")  # the last try ends the pending login
    assert b'action="/login/code"' not in last.body and b"sign-in has ended" in last.body
    client, step = form_login(site, account)
    assert step.status == 200
    # every guess was counted: now even the right code must wait
    right = pyotp.TOTP(secret).at(clock.now)
    assert post_code(client, step.body, right).status == 429
    assert totp.verify(site.archive, account, right) == "totp"  # and was not spent


def test_signing_in_with_codes_again_and_again_is_never_throttled(site, clock, account):
    """Each login with a code counts two attempts (password, code) until it succeeds; both
    are taken back, so no failure is left behind on the address."""
    site.app["auth"].throttle.clock = lambda: 7000.0  # no time passes: a wait would show
    secret, _ = enrol(site, clock, signed_in(site, account))
    for _ in range(25):  # more than the failures an address is allowed
        signed_in_with(site, account, pyotp.TOTP(secret).at(clock.now))
        clock.step()


# -- proofs asked for on the account page ------------------------------------------------------

def proofs_failed(site, name: str) -> list[dict]:
    return [e for e in audit.entries(site.archive.store)
            if e["action"] == "proof-failed" and e["who"] == name]


@pytest.mark.parametrize("path", ["/account/two-factor/recovery", "/account/two-factor/off"])
def test_codes_asked_for_on_the_account_page_are_throttled_and_audited(site, clock, account,
                                                                       path):
    """A session cookie must not buy unlimited code guesses: each wrong code counts as a
    failed login does, and is audited."""
    site.app["auth"].throttle.clock = lambda: 11000.0  # no time passes: waits stay waits
    secret, codes = enrol(site, clock, signed_in(site, account))
    client = signed_in_with(site, account, pyotp.TOTP(secret).at(clock.now))
    clock.step()
    guesses = [account_form(client, path, code=f"{n:06d}").status for n in range(8)]
    assert guesses[:5] == [303] * 5 and guesses[5:] == [429] * 3
    assert account_form(client, path, code=codes[0]).status == 429  # even a right one waits
    assert totp.status(site.archive, account)["recovery_codes_left"] == totp.RECOVERY_CODES
    failed = proofs_failed(site, account)
    assert len(failed) == 5 and failed[0]["details"]["via"] == "account"
    assert "wrong or already used code" in failed[0]["details"]["reason"]


def test_the_current_password_asked_to_change_it_is_throttled_and_audited(site, clock,
                                                                          account):
    site.app["auth"].throttle.clock = lambda: 12000.0
    client = Client(site.url)
    assert client.log_in(account).status == 200
    change = {"current_password": "a guess", "new_password": "Another-Pass-789"}
    replies = [client.request("PUT", "/api/session/password", change) for _ in range(7)]
    assert [r.status for r in replies] == [400] * 5 + [429] * 2
    assert "current password is wrong" in replies[0].json()["error"]
    right = dict(change, current_password=PASSWORD)
    assert client.request("PUT", "/api/session/password", right).status == 429
    page = account_form(client, "/account/password", current_password=PASSWORD,
                        new_password="Another-Pass-789", repeat_password="Another-Pass-789")
    assert page.status == 429  # the account page's form is the same guess
    assert users.authenticate(site.archive, account, PASSWORD) is not None  # unchanged
    assert len(proofs_failed(site, account)) == 5


# -- turning it off, required for admins -----------------------------------------------------

def test_turning_codes_off_takes_a_code(site, clock, account):
    secret, _ = enrol(site, clock, signed_in(site, account))
    client = signed_in_with(site, account, pyotp.TOTP(secret).at(clock.now))
    clock.step()
    assert account_form(client, "/account/two-factor/off", code="000000").status == 303
    assert totp.enrolled(site.archive, account)
    account_form(client, "/account/two-factor/off", code=pyotp.TOTP(secret).at(clock.now))
    assert not totp.enrolled(site.archive, account)
    assert signed_in(site, account).get("/api/session").status == 200


def test_admins_must_enrol_before_anything_else_when_the_setting_says_so(site, clock):
    users.add(site.archive, "root2", "admin", [], PASSWORD)
    client = signed_in(site, "root2")
    for path in ("/search", "/status", "/mirror"):
        reply = client.get(path)
        assert reply.status == 303 and reply.headers["Location"] == "/account", path
    assert "required for admins" in client.get("/account").body.decode()
    api = Client(site.url)
    assert api.log_in("root2").status == 200
    refused = api.get("/api/status")
    assert refused.status == 403 and "two-factor sign-in is required" in refused.json()["error"]
    assert Client(site.url, basic=("root2", PASSWORD)).get("/api/status").status == 403
    secret, _ = enrol(site, clock, client)
    assert client.get("/status").status == 200
    off = account_form(client, "/account/two-factor/off", code=pyotp.TOTP(secret).at(clock.now))
    assert off.status == 303 and totp.enrolled(site.archive, "root2")  # required: stays on


def test_the_cli_switches_an_accounts_codes_off(site, clock, account):
    """From another process than the web service's, as a lost phone's remedy: the
    account's web sessions end, those that signed in with a code (the phone's thief) and
    those from before codes went on, and stay ended."""
    dormant = idle_session(site, account)
    secret, _ = enrol(site, clock, signed_in(site, account))
    thief = signed_in_with(site, account, pyotp.TOTP(secret).at(clock.now))
    assert thief.get("/search").status == 200
    site.archive.store.env.sync()
    done = subprocess.run([ARCHIVER, "user", "two-factor-off", account, "--data", site.data],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not totp.enrolled(site.archive, account)
    assert thief.get("/account").status == 303 and dormant.get("/account").status == 303
    assert account_form(signed_in(site, account), "/account/two-factor/begin").status == 303
    again = subprocess.run([ARCHIVER, "user", "two-factor-off", account, "--data", site.data],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "has no two-factor codes" in again.stderr


def test_the_cli_acts_on_the_archive_its_config_names(site, clock, account, tmp_path):
    """`two-factor-off NAME --config FILE` opens the config's data_dir (not $ARCHIVER_DATA
    or /var/lib/archiver, where it made an empty archive); --data still wins."""
    enrol(site, clock, signed_in(site, account))
    site.archive.store.env.sync()
    config_file = tmp_path / "archiver.yaml"
    config_file.write_text(f"data_dir: {site.data}\nmodel: 450\n")
    default = tmp_path / "default-data"
    default.mkdir()
    environment = {**os.environ, "ARCHIVER_DATA": str(default)}
    done = subprocess.run([ARCHIVER, "user", "two-factor-off", account, "--config",
                           str(config_file)], capture_output=True, text=True, timeout=120,
                          env=environment)
    assert done.returncode == 0, done.stderr
    assert not totp.enrolled(site.archive, account)
    assert list(default.iterdir()) == []
    wrong = tmp_path / "elsewhere"
    again = subprocess.run([ARCHIVER, "user", "two-factor-off", account, "--config",
                            str(config_file), "--data", str(wrong)], capture_output=True,
                           text=True, timeout=120, env=environment)
    # --data wins over the config, and names no archive: told so, none made there (review
    # 126: it made an empty one, and said "no user named" of it)
    assert again.returncode == 2 and f"no archive in {wrong}" in again.stderr
    assert not wrong.exists() and list(default.iterdir()) == []
