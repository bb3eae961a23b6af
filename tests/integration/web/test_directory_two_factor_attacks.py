"""Attacks on two-factor codes for directory accounts (test_directory_two_factor), against
the real slapd of test_directory (the AD variant is slow: Samba): signing in as a
directory admin without a code (form, API, HTTP Basic, the login form's second step, a
session from before a promotion), taking or spoiling another account's codes (renamed and
moved entries, a name taken over, a name that looks like a key), and making
`archiver user two-factor-off` switch off the wrong account's codes."""
from __future__ import annotations

import os
import re
import subprocess

import ldap3
import pyotp
import pytest

from services.appliance import totp
from tests.conftest import ARCHIVER
from tests.integration import slapd
from tests.integration.web.fixtures import Client
from tests.integration.web.test_directory import (add_person, directory,  # noqa: F401
                                                  remove_person)
from tests.integration.web.test_directory_two_factor import (  # noqa: F401
    codes_kept_for as kept_as, signed_in, site)
from tests.integration.web.test_two_factor import (account_form, clock,  # noqa: F401
                                                   enrol, form_login, form_token, post_code)

# the attacks change entries the OpenLDAP way (modrdn, entryUUID)
pytestmark = [pytest.mark.integration, pytest.mark.only_directory("openldap")]


def refresh(site) -> None:
    """Let every signed-in directory user's entry be read again."""
    site.clock.now += site.config.directory.refresh_seconds + 1


def signed_in_with_code(site, clock, name: str, password: str, secret: str) -> Client:
    client, step = form_login(site, name, password)
    assert b'action="/login/code"' in step.body, step.body
    clock.step()
    reply = post_code(client, step.body, pyotp.TOTP(secret).at(clock.now))
    assert reply.status == 303, reply.body
    return client


def asks_for_code(site, name: str, password: str) -> bool:
    _, step = form_login(site, name, password)
    assert step.status in (200, 303), step.body
    return step.status == 200 and b'action="/login/code"' in step.body


def two_factor_off(site, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([ARCHIVER, "user", "two-factor-off", name, "--data", str(site.data)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ARCHIVER_CONFIG": str(site.config_file)})


def entry_uuid(directory, dn: str) -> str:
    connection = directory.admin()
    connection.search(dn, "(objectClass=*)", search_scope=ldap3.BASE,
                      attributes=["entryUUID"])
    value = connection.response[0]["raw_attributes"]["entryUUID"][0].decode()
    connection.unbind()
    return value


def set_groups(directory, dn: str, group: str, add: bool) -> None:
    connection = directory.admin()
    connection.modify(f"cn={group},ou=groups,{slapd.BASE}",
                      {"member": [(ldap3.MODIFY_ADD if add else ldap3.MODIFY_DELETE, [dn])]})
    connection.unbind()


# -- signing in as a directory admin without a code ------------------------------------

def test_http_basic_gives_a_directory_admin_who_must_enrol_nothing(site, directory):
    dn = add_person(directory, "basil", "Basil-Admin-1")
    set_groups(directory, dn, "IT", add=True)  # IT is in Archive Admins
    try:
        basic = Client(site.url, basic=("basil", "Basil-Admin-1"))
        assert basic.get("/api/session").json()["role"] == "admin"
        for path in ("/api/search?q=", "/api/audit", "/api/holds", "/api/status"):
            assert basic.get(path).status == 403, path
        reply = basic.request("POST", "/api/holds", {"name": "sneaky", "query": "x"})
        assert reply.status == 403, reply.body
        assert basic.request("PUT", "/api/session/password", {
            "current_password": "Basil-Admin-1", "new_password": "Basil-Admin-2"}).status == 403
    finally:
        remove_person(directory, dn)


def test_http_basic_never_passes_for_a_directory_account_with_codes(site, directory, clock):
    dn = add_person(directory, "bea", "Bea-Codes-12")
    try:
        secret, _ = enrol(site, clock, signed_in(site, "bea", "Bea-Codes-12"))
        basic = Client(site.url, basic=("bea", "Bea-Codes-12"))
        reply = basic.get("/api/search?q=")
        assert reply.status == 401, reply.body
        assert basic.get("/api/session").status == 401
        # nor with the code glued to the password, as some clients do
        glued = Client(site.url, basic=("bea", "Bea-Codes-12" + pyotp.TOTP(secret).at(clock.now)))
        assert glued.get("/api/search?q=").status == 401
    finally:
        remove_person(directory, dn)


def test_the_api_and_form_never_sign_in_a_directory_admin_with_codes_without_one(
        site, directory, clock):
    password = directory.passwords["carol"]
    secret, recovery = enrol(site, clock, signed_in(site, "carol", password))
    try:
        for name in ("carol", "CAROL", "Carol", " carol"):
            reply = Client(site.url).log_in(name, password)
            assert reply.status == 401, (name, reply.body)
            site.app["auth"].throttle.clear()
            for code in ("", "000000", None):
                body = {"name": name, "password": password}
                if code is not None:
                    body["code"] = code
                reply = Client(site.url).request("POST", "/api/session", body)
                assert reply.status == 401, (name, code, reply.body)
                site.app["auth"].throttle.clear()
        for name in ("carol", "CAROL"):
            client, step = form_login(site, name, password)
            if step.status == 200 and b"/login/code" in step.body:
                assert post_code(client, step.body, "").status == 401
                assert client.get("/search").status == 303
            else:  # a name the directory does not answer to
                assert step.status == 401
            site.app["auth"].throttle.clear()
    finally:
        totp.remove(site.archive, kept_as(site, "carol")[0])


def test_the_second_step_of_someone_elses_login_gives_nothing(site, directory, clock):
    """Mallet (a user with codes of his own) holds the second-step page of carol's login
    (an admin with codes, whose password he knows): his own code never finishes it, and his
    own second step, with carol's token, is still his."""
    carol_password = directory.passwords["carol"]
    carol_secret, _ = enrol(site, clock, signed_in(site, "carol", carol_password))
    dn = add_person(directory, "mallet", "Mallet-Pass-1")
    try:
        mallet_secret, _ = enrol(site, clock, signed_in(site, "mallet", "Mallet-Pass-1"))
        carol_client, carol_step = form_login(site, "carol", carol_password)
        mallet_client, mallet_step = form_login(site, "mallet", "Mallet-Pass-1")
        clock.step()
        # carol's token with mallet's code, from mallet's browser (his login cookie)
        forged = mallet_client.request("POST", "/login/code", form={
            "login_token": form_token(mallet_step.body, "login_token"),
            "pending": form_token(carol_step.body, "pending"),
            "code": pyotp.TOTP(mallet_secret).at(clock.now), "next": "/search"})
        assert forged.status == 401, forged.body
        assert mallet_client.get("/api/session").status == 401
        # with carol's code, the token is carol's: only her code finishes her login
        clock.step()
        reply = post_code(carol_client, carol_step.body, pyotp.TOTP(carol_secret).at(clock.now))
        assert reply.status == 303
        assert carol_client.get("/api/session").json()["name"] == "carol"
    finally:
        for name in ("carol", "mallet"):
            for key in kept_as(site, name):
                totp.remove(site.archive, key)
        remove_person(directory, dn)


def test_a_session_from_before_a_promotion_to_admin_must_enrol_then(site, directory):
    dn = add_person(directory, "percy", "Percy-Promo-1")
    try:
        client = signed_in(site, "percy", "Percy-Promo-1")
        assert client.get("/search").status == 200
        set_groups(directory, dn, "IT", add=True)
        refresh(site)
        blocked = client.get("/search")
        assert blocked.status == 303 and blocked.headers["Location"] == "/account"
        api = Client(site.url)
        assert api.log_in("percy", "Percy-Promo-1").status == 200
        assert api.get("/api/search?q=").status == 403
    finally:
        remove_person(directory, dn)


# -- other accounts' codes ---------------------------------------------------------------

def qr_text(svg: str, folder) -> str:
    """What a QR code (an <svg> element) says, as an app scanning it reads it (zbarimg)."""
    image = folder / "qr.svg"
    image.write_text(svg)
    read = subprocess.run(["zbarimg", "--quiet", "--raw", image], capture_output=True,
                          text=True, timeout=60)
    return read.stdout.strip()


def test_the_enrolment_page_shows_each_account_its_own_secret(site, directory, tmp_path):
    """Two accounts begin enrolment at once: each page shows its own secret and its own
    name, and neither's confirm takes the other's code."""
    dns = [add_person(directory, name, f"{name.title()}-Pass-1") for name in ("ivy", "ike")]
    try:
        clients = {name: signed_in(site, name, f"{name.title()}-Pass-1") for name in ("ivy", "ike")}
        for client in clients.values():
            assert account_form(client, "/account/two-factor/begin").status == 303
        secrets_shown = {}
        for name, client in clients.items():
            page = client.get("/account").body.decode()
            secrets_shown[name] = re.search(r'class="totp-secret">([A-Z2-7]+)<', page).group(1)
            uri = qr_text(re.search(r"<svg.*?</svg>", page, re.S).group(0), tmp_path)
            assert f":{name}?" in uri and secrets_shown[name] in uri
        assert secrets_shown["ivy"] != secrets_shown["ike"]
        wrong = account_form(clients["ivy"], "/account/two-factor/confirm",
                             code=pyotp.TOTP(secrets_shown["ike"]).at(totp.clock()))
        assert wrong.status == 303  # back to the account page, not on
        assert kept_as(site, "ivy") == []  # nothing on, nothing kept
    finally:
        for name in ("ivy", "ike"):
            for key in kept_as(site, name):
                totp.remove(site.archive, key)
        for dn in dns:
            remove_person(directory, dn)


def test_a_name_that_looks_like_a_key_gets_its_own_codes(site, directory, clock):
    """An entry whose uid is "directory:" and another entry's id signs in (or not) as
    itself: the codes it sets up are its own entry's, never the other's."""
    dn = add_person(directory, "vic", "Vic-Victim-1")
    victim_id = entry_uuid(directory, dn)
    connection = directory.admin()
    lookalike = f"uid=directory:{victim_id},ou=contractors,{slapd.BASE}"
    connection.add(lookalike, ["inetOrgPerson"], {
        "uid": f"directory:{victim_id}", "cn": "x", "sn": "x", "userPassword": "Look-Alike-1"})
    connection.unbind()
    try:
        reply = Client(site.url).log_in(f"directory:{victim_id}", "Look-Alike-1")
        if reply.status == 200:
            client = signed_in(site, f"directory:{victim_id}", "Look-Alike-1")
            enrol(site, clock, client)
        assert not totp.status(site.archive, f"directory:{victim_id}")["enrolled"]
        assert not asks_for_code(site, "vic", "Vic-Victim-1")
    finally:
        for key in kept_as(site, f"directory:{victim_id}"):
            totp.remove(site.archive, key)
        remove_person(directory, lookalike)
        remove_person(directory, dn)


def test_a_renamed_or_moved_entry_keeps_its_codes(site, directory, clock):
    dn = add_person(directory, "rita", "Rita-Rename-1")
    secret, _ = enrol(site, clock, signed_in(site, "rita", "Rita-Rename-1"))
    connection = directory.admin()
    connection.modify_dn(dn, "uid=ritah", delete_old_dn=True)
    renamed = f"uid=ritah,ou=contractors,{slapd.BASE}"
    try:
        assert asks_for_code(site, "ritah", "Rita-Rename-1")
        signed_in_with_code(site, clock, "ritah", "Rita-Rename-1", secret)
        connection.modify_dn(renamed, "uid=ritah", new_superior=f"ou=people,{slapd.BASE}")
        renamed = f"uid=ritah,ou=people,{slapd.BASE}"
        assert asks_for_code(site, "ritah", "Rita-Rename-1")
    finally:
        connection.unbind()
        for key in kept_as(site, "rita"):
            totp.remove(site.archive, key)
        remove_person(directory, renamed)


def test_a_new_entry_of_a_removed_ones_dn_does_not_take_over_its_sessions(site, directory,
                                                                          clock):
    """Oscar (codes on) is removed and a new oscar gets his uid, and so his DN. The old
    oscar's browser, idle meanwhile, must not come back as the new oscar: it was the other
    person's session, and it skipped the new one's password (and code)."""
    dn = add_person(directory, "oscar", "Old-Oscar-1")
    secret, _ = enrol(site, clock, signed_in(site, "oscar", "Old-Oscar-1"))
    old = signed_in_with_code(site, clock, "oscar", "Old-Oscar-1", secret)
    remove_person(directory, dn)
    add_person(directory, "oscar", "New-Oscar-2")
    try:
        refresh(site)
        assert old.get("/api/session").status == 401
    finally:
        for key in kept_as(site, "oscar"):
            totp.remove(site.archive, key)
        remove_person(directory, dn)


# -- archiver user two-factor-off -------------------------------------------------------

def test_two_factor_off_finds_a_renamed_account_by_the_name_it_signs_in_with(site, directory,
                                                                            clock):
    """A lost phone after a rename: the account signs in as "rosa" now, so that is the
    name the administrator gives."""
    dn = add_person(directory, "rose", "Rose-Rename-1")
    enrol(site, clock, signed_in(site, "rose", "Rose-Rename-1"))
    connection = directory.admin()
    connection.modify_dn(dn, "uid=rosa", delete_old_dn=True)
    connection.unbind()
    renamed = f"uid=rosa,ou=contractors,{slapd.BASE}"
    try:
        assert asks_for_code(site, "rosa", "Rose-Rename-1")
        off = two_factor_off(site, "rosa")
        assert off.returncode == 0, off.stderr
        assert not asks_for_code(site, "rosa", "Rose-Rename-1")
    finally:
        for key in kept_as(site, "rose") + kept_as(site, "rosa"):
            totp.remove(site.archive, key)
        remove_person(directory, renamed)


def test_two_factor_off_for_a_new_holder_of_a_name_leaves_the_renamed_ones_codes(
        site, directory, clock):
    """Nora (codes on) is renamed "norah"; a new employee gets "nora" and sets codes up,
    then loses her phone. `two-factor-off nora` must switch off the new nora's codes only:
    norah still signs in with her code."""
    dn = add_person(directory, "nora", "Old-Nora-1")
    secret, _ = enrol(site, clock, signed_in(site, "nora", "Old-Nora-1"))
    connection = directory.admin()
    connection.modify_dn(dn, "uid=norah", delete_old_dn=True)
    connection.unbind()
    renamed = f"uid=norah,ou=contractors,{slapd.BASE}"
    new = add_person(directory, "nora", "New-Nora-2")
    try:
        enrol(site, clock, signed_in(site, "nora", "New-Nora-2"))
        off = two_factor_off(site, "nora")
        assert off.returncode == 0, off.stderr
        assert not asks_for_code(site, "nora", "New-Nora-2")
        assert asks_for_code(site, "norah", "Old-Nora-1")  # untouched
    finally:
        for key in kept_as(site, "nora") + kept_as(site, "norah"):
            totp.remove(site.archive, key)
        remove_person(directory, renamed)
        remove_person(directory, new)


def test_two_factor_off_of_a_name_no_one_signs_in_with_is_refused(site, clock):
    """Neither a local account nor a directory entry answers to these names (the second
    is what a directory account's codes are kept under): refused."""
    assert two_factor_off(site, "nobody-at-all").returncode != 0
    assert two_factor_off(site, "directory:00000000-0000-0000-0000-000000000000").returncode != 0


def test_two_factor_off_takes_the_name_as_the_directory_matches_it(site, directory, clock):
    """The directory answers to "CAROL" as to "carol" (she may sign in so): the
    administrator's spelling finds her codes, and only hers."""
    password = directory.passwords["carol"]
    enrol(site, clock, signed_in(site, "carol", password))
    dn = add_person(directory, "dora", "Dora-Keeps-1")
    try:
        enrol(site, clock, signed_in(site, "dora", "Dora-Keeps-1"))
        off = two_factor_off(site, "CAROL")
        assert off.returncode == 0, off.stderr
        assert kept_as(site, "carol") == []
        assert asks_for_code(site, "dora", "Dora-Keeps-1")
        assert two_factor_off(site, "carol").returncode != 0  # none left: says so
    finally:
        for name in ("carol", "dora"):
            for key in kept_as(site, name):
                totp.remove(site.archive, key)
        remove_person(directory, dn)
