"""Two-factor codes for directory accounts, through the web app, against the real
directories of test_directory (slapd; Samba's AD DC, slow): a directory admin must set
codes up when two_factor.required_for names admin, then signs in with password and code;
the codes belong to the directory entry (its objectGUID or entryUUID), so an account that
later takes a removed one's name neither inherits them nor is locked out by them, and
`archiver user two-factor-off NAME` switches them off by the name they signed in with."""
from __future__ import annotations

import dataclasses
import subprocess

import pyotp
import pytest
import yaml

from services.appliance import totp, users
from services.common.config import DirectoryConfig, TwoFactorConfig
from services.policy import audit
from tests.conftest import ARCHIVER
from tests.integration.processes import free_port
from tests.integration.web.fixtures import Client, ThreadedServer, build_archive, web_config
from tests.integration.web.test_directory import (FakeClock, add_person, directory,  # noqa: F401
                                                  remove_person)
from tests.integration.web.test_two_factor import (account_form, clock,  # noqa: F401
                                                   enrol, form_login, post_code, shown_secret)

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def site(directory, tmp_path_factory):  # noqa: F811 (the imported fixture)
    folder = tmp_path_factory.mktemp("web")
    data = folder / "data"
    archive, _ = build_archive(data)
    users.remove(archive, "alice")  # the directory's alice, not the local one
    config = dataclasses.replace(web_config(data, free_port()),
                                 directory=DirectoryConfig(**directory.settings()),
                                 two_factor=TwoFactorConfig(required_for=["admin"]))
    server = ThreadedServer(config, archive).start()
    server.clock = FakeClock()
    server.app["auth"].sign_in.clock = server.clock
    server.archive, server.config, server.data = archive, config, data
    # what `archiver` on the appliance reads: the same data and directory
    server.config_file = folder / "archiver.yaml"
    server.config_file.write_text(yaml.safe_dump({
        "data_dir": str(data), "model": 450, "directory": directory.settings(),
        "two_factor": {"required_for": ["admin"]}}))
    yield server
    server.stop()
    archive.close()


def signed_in(site, name: str, password: str):
    client, reply = form_login(site, name, password)
    assert reply.status == 303, reply.body
    return client


def codes_kept_for(site, account: str) -> list[str]:
    """The NAMEs (totp's settings "two_factor:NAME") of the codes set up, or begun, by
    accounts that signed in as `account` when they did."""
    found = site.archive.store.settings_with_prefix(totp.SETTING_PREFIX)
    return [key.removeprefix(totp.SETTING_PREFIX) for key, record in found.items()
            if record and record.get("account") == account]


def test_a_directory_admin_must_set_codes_up_then_signs_in_with_one(site, directory, clock):
    password = directory.passwords["carol"]  # an admin through nested groups
    client = signed_in(site, "carol", password)
    blocked = client.get("/search")
    assert blocked.status == 303 and blocked.headers["Location"] == "/account"
    assert client.get("/api/search?q=").status == 403
    page = client.get("/account").body.decode()
    assert "required for admins here" in page and "Set up two-factor sign-in" in page

    secret, recovery = enrol(site, clock, client)
    assert len(recovery) == totp.RECOVERY_CODES
    [kept_as] = codes_kept_for(site, "carol")
    assert kept_as.startswith("directory:") and "carol" not in kept_as  # the entry's id
    assert client.get("/api/search?q=").status == 200

    again, step = form_login(site, "carol", password)
    assert step.status == 200 and b'action="/login/code"' in step.body
    assert post_code(again, step.body, "000000").status == 401
    without = Client(site.url).log_in("carol", password)
    assert without.status == 401 and "two-factor code" in without.json()["error"]
    api = Client(site.url).request("POST", "/api/session", {
        "name": "carol", "password": password, "code": pyotp.TOTP(secret).at(clock.now)})
    assert api.status == 200 and api.json()["role"] == "admin", api.body
    login = [e for e in audit.entries(site.archive.store)
             if e["action"] == "login" and e["who"] == "carol"][-1]
    assert login["details"]["second_factor"] == "totp"

    off = subprocess.run([ARCHIVER, "user", "two-factor-off", "carol", "--data",
                          str(site.data), "--config", str(site.config_file)],
                         capture_output=True, text=True, timeout=60)
    assert off.returncode == 0 and "are off" in off.stdout, off.stderr
    assert codes_kept_for(site, "carol") == []
    assert signed_in(site, "carol", password).get("/search").headers["Location"] == "/account"


def test_a_directory_user_may_set_codes_up_and_switch_them_off(site, directory, clock):
    password = directory.passwords["alice"]
    client = signed_in(site, "alice", password)
    assert client.get("/search").status == 200  # not required for users
    secret, _ = enrol(site, clock, client)
    client, step = form_login(site, "alice", password)
    assert b'action="/login/code"' in step.body
    clock.step()
    assert post_code(client, step.body, pyotp.TOTP(secret).at(clock.now)).status == 303
    clock.step()
    off = account_form(client, "/account/two-factor/off", code=pyotp.TOTP(secret).at(clock.now))
    assert off.status == 303 and codes_kept_for(site, "alice") == []
    assert signed_in(site, "alice", password).get("/search").status == 200


def test_setting_codes_up_is_the_session_s_and_ends_the_account_s_other_sessions(
        site, directory, clock):
    """A directory account's enrolment is its session's alone, and switching codes on ends
    the account's sessions that signed in with the password alone (form and API)."""
    dn = add_person(directory, "otto", "Otto-Sessions-1")
    try:
        enrolling, other = (signed_in(site, "otto", "Otto-Sessions-1") for _ in range(2))
        api = Client(site.url)
        assert api.log_in("otto", "Otto-Sessions-1").status == 200
        assert account_form(enrolling, "/account/two-factor/begin").status == 303
        assert shown_secret(enrolling) and shown_secret(other) is None
        enrol(site, clock, enrolling)
        assert other.get("/search").status == 303 and api.get("/api/session").status == 401
        assert enrolling.get("/api/session").json()["name"] == "otto"
    finally:
        for key in codes_kept_for(site, "otto"):
            totp.remove(site.archive, key)
        remove_person(directory, dn)


def test_a_new_account_of_a_removed_ones_name_neither_inherits_nor_is_locked_out(
        site, directory, clock):
    """The codes of a removed account stay with its entry: a later account that the
    directory gives the same name signs in with its own password alone (users need no
    codes here), and is not asked for the removed one's."""
    dn = add_person(directory, "oswin", "First-Oswin-1")
    enrol(site, clock, signed_in(site, "oswin", "First-Oswin-1"))
    [first] = codes_kept_for(site, "oswin")
    remove_person(directory, dn)
    add_person(directory, "oswin", "Second-Oswin-2")
    site.clock.now += site.config.directory.refresh_seconds + 1
    client, reply = form_login(site, "oswin", "Second-Oswin-2")
    assert reply.status == 303, reply.body  # no code step
    assert client.get("/api/session").json()["name"] == "oswin"
    assert totp.enrolled(site.archive, first)  # the removed entry's, left alone
    assert client.get("/account").body.decode().count("Set up two-factor sign-in") == 1
