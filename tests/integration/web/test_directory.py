"""Signing in with the company directory, through the web app, against real directories
the tests start: OpenLDAP's slapd on loopback (ldaps:// with the test's CA), and a Samba
Active Directory DC provisioned into a network namespace of its own (slow: provisioning
takes ~30 s; the numbers go to build/test-output/samba_dc.json).

Every test runs against both, with the same expectations; the local accounts of
fixtures.ACCOUNTS stay, but for alice, so "alice" is the directory's, and "bob" is both a
local account and a directory user (the local one shadows the other)."""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import threading

import ldap3
import pytest
import yaml

from services.appliance import users
from services.appliance.directory import Directory
from services.common.config import DirectoryConfig
from services.policy import audit
from tests.conftest import ARCHIVER, TREE
from tests.integration import samba_dc, slapd
from tests.integration.certificates import TestCA
from tests.integration.processes import free_port
from tests.integration.web.fixtures import (ALICE_MAIL, PASSWORD, Client, ThreadedServer,
                                            build_archive, mail, web_config)

pytestmark = [pytest.mark.integration]

# name -> (raw, envelope), and which directory's alice may read it
EXTRA_MAILS = {
    "to-alias": (mail("carol@example.com", "A.Liddell@example.com", "Sent to an alias",
                      date="Mon, 08 Jan 2024 10:00:00 +0000"), None),
    "from-proxy-alias": (mail("alice.l@example.org", "dave@example.com", "From an AD alias",
                              date="Tue, 09 Jan 2024 10:00:00 +0000"), None),
    "to-sip-address": (mail("carol@example.com", "alice.voice@example.com",
                            "To the SIP address, which is no mailbox",
                            date="Wed, 10 Jan 2024 10:00:00 +0000"), None),
    "carol-only": (mail("dave@example.com", "carol@example.com", "For carol only",
                        date="Thu, 11 Jan 2024 10:00:00 +0000"), None),
}
ALICE_READS = {"openldap": ALICE_MAIL | {"to-alias"},
               "ad": ALICE_MAIL | {"to-alias", "from-proxy-alias"}}
OUTPUT = TREE / "build" / "test-output"


class FakeClock:
    """The web app's SignIn clock, moved on by hand: refreshes happen when a test says."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module", params=["openldap", pytest.param("ad", marks=pytest.mark.slow)])
def directory(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"directory-{request.param}")
    server = slapd.Slapd(tmp) if request.param == "openldap" else samba_dc.SambaDC(tmp)
    try:
        server.start()
        if request.param == "ad":
            OUTPUT.mkdir(parents=True, exist_ok=True)
            (OUTPUT / "samba_dc.json").write_text(json.dumps(server.timings, indent=2))
        server.kind = request.param
        server.passwords = (slapd if request.param == "openldap" else samba_dc).PASSWORDS
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def site(directory, tmp_path_factory):
    data = tmp_path_factory.mktemp("web") / "data"
    archive, digests = build_archive(data, EXTRA_MAILS)
    users.remove(archive, "alice")
    config = dataclasses.replace(web_config(data, free_port()),
                                 directory=DirectoryConfig(**directory.settings()))
    server = ThreadedServer(config, archive).start()
    server.clock = FakeClock()
    server.app["auth"].sign_in.clock = server.clock
    server.archive, server.config, server.data = archive, config, data
    server.names = {digest: name for name, digest in digests.items()}
    yield server
    server.stop()
    archive.close()


@pytest.fixture(autouse=True)
def fresh_throttle(site):
    site.app["auth"].throttle.clear()


def log_in(site, directory, name: str, password: str | None = None) -> Client:
    client = Client(site.url)
    reply = client.log_in(name, password or directory.passwords[name])
    assert reply.status == 200, reply.body
    return client


def readable(site, client: Client) -> set[str]:
    reply = client.get("/api/search?q=&limit=500")
    assert reply.status == 200, reply.body
    return {site.names[hit["digest"]] for hit in reply.json()["hits"]}


def set_disabled(directory, name: str, disabled: bool) -> None:
    """Disable (or enable again) an account the way each directory does it."""
    connection = directory.admin()
    if directory.kind == "ad":
        control = samba_dc.NORMAL_ACCOUNT | (samba_dc.ACCOUNTDISABLE if disabled else 0)
        connection.modify(f"CN={name},{samba_dc.USERS}",
                          {"userAccountControl": [(ldap3.MODIFY_REPLACE, [control])]})
    else:
        change = ([(ldap3.MODIFY_ADD, ["000001010000Z"])] if disabled
                  else [(ldap3.MODIFY_DELETE, [])])
        connection.modify(slapd.people_dn(name), {"pwdAccountLockedTime": change})
    connection.unbind()


# -- signing in ----------------------------------------------------------------------------

def test_a_directory_user_signs_in_with_the_directory_password(site, directory):
    client = log_in(site, directory, "alice")
    session = client.get("/api/session").json()
    assert session["name"] == "alice" and session["role"] == "user"
    assert Client(site.url).log_in("alice", "not the password").status == 401
    assert Client(site.url).log_in("nobody-at-all", "not the password").status == 401
    entries = audit.entries(site.archive.store)
    login = [e for e in entries if e["action"] == "login" and e["who"] == "alice"][-1]
    assert login["details"]["directory"].lower().startswith(("uid=alice,", "cn=alice,"))


def test_the_login_form_signs_directory_users_in(site, directory):
    client = Client(site.url)
    form = client.get("/login").body.decode()
    token = re.search(r'name="login_token" value="([^"]+)"', form).group(1)
    reply = client.request("POST", "/login", form={
        "login_token": token, "name": "alice", "password": directory.passwords["alice"],
        "next": "/account"})
    assert reply.status == 303 and reply.headers["Location"] == "/account"
    page = client.get("/account").body.decode()
    assert "from the company directory" in page and "a.liddell@example.com" in page
    assert "Change password" not in page and "Set up two-factor sign-in" in page


def test_a_user_signs_in_with_each_of_their_login_names(site, directory):
    """uid (OpenLDAP); sAMAccountName and userPrincipalName (AD): one account either way."""
    names = ["alice"] + (["alice@corp.example.test", "ALICE"] if directory.kind == "ad" else [])
    for name in names:
        client = log_in(site, directory, name, directory.passwords["alice"])
        assert client.get("/api/session").json()["name"] == "alice"


def test_an_empty_password_never_signs_a_directory_user_in(site, directory):
    """An LDAP simple bind with a DN and no password is an anonymous bind that succeeds
    (RFC 4513 5.1.2): it must never count as a login."""
    client = Client(site.url)
    form = client.get("/login").body.decode()
    token = re.search(r'name="login_token" value="([^"]+)"', form).group(1)
    reply = client.request("POST", "/login", form={"login_token": token, "name": "alice",
                                                    "password": ""})
    assert reply.status == 401
    assert client.get("/api/session").status == 401


def test_a_local_account_shadows_the_directory_user_of_the_same_name(site, directory):
    assert Client(site.url).log_in("bob", directory.passwords["bob"]).status == 401
    local = log_in(site, directory, "bob", PASSWORD)
    assert local.get("/api/session").json()["name"] == "bob"


@pytest.mark.parametrize("name", ["\ud800", "al\udfffice", "\udc80admin", "bob\udbff"],
                         ids=ascii)
def test_a_name_that_is_no_text_is_a_clear_400(site, directory, name):
    """JSON can carry a lone surrogate, which UTF-8 cannot: a clear message, not Python's."""
    reply = Client(site.url).log_in(name, "Some-Password-1")
    assert reply.status == 400 and "not valid text" in reply.json()["error"]
    assert "codec" not in reply.json()["error"]


@pytest.mark.parametrize("name", ["alice", "bob"])
def test_a_password_that_is_no_text_is_a_wrong_password(site, directory, name):
    reply = Client(site.url).log_in(name, "Wonder\ud800land")
    assert reply.status == 401 and "wrong name or password" in reply.json()["error"]


def add_person(directory, name: str, password: str) -> str:
    """A directory user `name` the test adds (each directory its way); their DN."""
    connection = directory.admin()
    if directory.kind == "ad":
        samba_dc.SambaDC._user(connection, name, password, {})
        dn = f"CN={name},{samba_dc.USERS}"
    else:
        dn = f"uid={name},ou=contractors,{slapd.BASE}"
        connection.add(dn, ["inetOrgPerson"], {"uid": name, "cn": name, "sn": name,
                                               "userPassword": password})
    connection.unbind()
    return dn


def test_a_directory_name_a_local_accounts_but_for_case_is_refused_saying_why(site, directory):
    """Local "audrey" and a directory "Audrey": only the local one ever signs in, and the
    directory one is told why (its password was right)."""
    dn = add_person(directory, "Audrey", "Directory-Pass-123")
    try:
        reply = Client(site.url).log_in("Audrey", "Directory-Pass-123")
        assert reply.status == 401
        assert "has the name of a local account" in reply.json()["error"]
        assert log_in(site, directory, "audrey", PASSWORD).get(
            "/api/session").json()["role"] == "auditor"
    finally:
        connection = directory.admin()
        connection.delete(dn)
        connection.unbind()


# -- their mail and their role -----------------------------------------------------------

def test_a_user_reads_the_mail_of_every_address_the_directory_knows_and_no_one_elses(
        site, directory):
    client = log_in(site, directory, "alice")
    assert readable(site, client) == ALICE_READS[directory.kind]
    emails = client.get("/api/session").json()["emails"]
    assert emails[0] == "alice@example.com" and "a.liddell@example.com" in emails
    assert not any("voice" in e or "x500" in e.lower() for e in emails)
    for name in ("carol-only", "to-sip-address", "bob-only"):
        digest = next(d for d, n in site.names.items() if n == name)
        assert client.get(f"/api/messages/{digest}").status == 404


@pytest.mark.parametrize("name, role", [("carol", "admin"), ("dave", "auditor"),
                                        ("alice", "user")])
def test_the_role_comes_from_group_membership_nested_groups_included(site, directory,
                                                                     name, role):
    client = log_in(site, directory, name)
    assert client.get("/api/session").json()["role"] == role
    assert client.get("/api/mirror").status == (200 if role == "admin" else 403)
    everything = readable(site, client)
    if role != "user":
        assert everything == set(site.names.values())


def test_only_the_configured_group_dns_make_admins(site, directory):
    """A group of the admin group's name in another OU gives nothing; in AD, a distribution
    group (no security group) gives nothing even when its DN is configured."""
    connection = directory.admin()
    if directory.kind == "ad":
        alice, ou = f"CN=alice,{samba_dc.USERS}", f"OU=Sales,{samba_dc.BASE}"
        connection.add(ou, ["top", "organizationalUnit"])
        elsewhere, listed = f"CN=Archive Admins,{ou}", f"CN=Sales List,{ou}"
        connection.add(elsewhere, ["top", "group"], {"sAMAccountName": "sales-archive-admins",
                                                     "member": [alice]})
        connection.add(listed, ["top", "group"], {"sAMAccountName": "sales-list",
                                                  "groupType": 2,  # global distribution
                                                  "member": [alice]})
        made = [listed, elsewhere, ou]
    else:
        alice = slapd.people_dn("alice")
        elsewhere = f"cn=Archive Admins,ou=contractors,{slapd.BASE}"
        connection.add(elsewhere, ["groupOfNames"], {"cn": "Archive Admins", "member": [alice]})
        made, listed = [elsewhere], None
    try:
        assert log_in(site, directory, "alice").get("/api/session").json()["role"] == "user"
        if listed is not None:
            configured = Directory(DirectoryConfig(**directory.settings(admin_groups=[listed])))
            account = configured.find("alice")
            assert account.role == "user" and listed not in account.groups
            assert elsewhere in account.groups  # a security group is counted
    finally:
        for dn in made:
            connection.delete(dn)
        connection.unbind()


@pytest.mark.only_directory("openldap")
def test_a_group_whose_rdn_spells_the_admin_groups_dn_makes_no_admin(site, directory):
    """OpenLDAP: whoever may add groups above the admin group (cn=Archive Admins,ou=groups)
    adds "cn=Archive Admins+ou=groups" (one RDN of two values: groupOfNames may have an
    ou) at the base: another entry, though its attribute types and values, read one
    after the other, are the admin group's."""
    forged = f"cn=Archive Admins+ou=groups,{slapd.BASE}"
    connection = directory.admin()
    connection.add(forged, ["groupOfNames"], {"cn": "Archive Admins", "ou": "groups",
                                              "member": [slapd.people_dn("alice")]})
    try:
        client = log_in(site, directory, "alice")
        assert client.get("/api/session").json()["role"] == "user"
        assert client.get("/api/mirror").status == 403
    finally:
        connection.delete(forged)
        connection.unbind()

@pytest.mark.only_directory("ad")
def test_a_distribution_list_nested_in_the_admin_group_makes_no_admin(site, directory):
    """AD: Windows gives no one membership of a security group through a distribution list
    nested in it, and a list's members are often managed by its owner or join it
    themselves: LDAP_MATCHING_RULE_IN_CHAIN follows it all the same, so nesting is
    followed group by group, through security groups only."""
    listed, admins = f"CN=Everyone List,{samba_dc.USERS}", f"CN=Archive Admins,{samba_dc.USERS}"
    connection = directory.admin()
    connection.add(listed, ["top", "group"], {"sAMAccountName": "everyone-list",
                                              "groupType": 2,  # global distribution
                                              "member": [f"CN=alice,{samba_dc.USERS}"]})
    connection.modify(admins, {"member": [(ldap3.MODIFY_ADD, [listed])]})
    try:
        client = log_in(site, directory, "alice")
        assert client.get("/api/session").json()["role"] == "user"
        assert client.get("/api/mirror").status == 403
        assert Directory(DirectoryConfig(**directory.settings(
            nested_groups="in_chain"))).find("alice").role == "user"
        assert log_in(site, directory, "carol").get("/api/session").json()["role"] == "admin"
    finally:
        connection.modify(admins, {"member": [(ldap3.MODIFY_DELETE, [listed])]})
        connection.delete(listed)
        connection.unbind()

def test_a_disabled_user_is_refused(site, directory):
    reply = Client(site.url).log_in("mallory", directory.passwords["mallory"])
    assert reply.status == 401 and "wrong name or password" in reply.json()["error"]


def test_wrong_directory_passwords_are_throttled_like_local_ones(site, directory):
    client = Client(site.url)
    statuses = [client.log_in("dave", f"guess {n}").status for n in range(8)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    assert client.log_in("dave", directory.passwords["dave"]).status == 429


# -- changes in the directory ------------------------------------------------------------

def test_a_user_disabled_in_the_directory_loses_access_at_the_next_refresh(site, directory):
    client = log_in(site, directory, "dave")
    set_disabled(directory, "dave", True)
    try:
        assert client.get("/api/session").status == 200  # what the directory said still holds
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert client.get("/api/session").status == 401
        assert client.get("/api/search?q=").status == 401
        assert Client(site.url).log_in("dave", directory.passwords["dave"]).status == 401
    finally:
        set_disabled(directory, "dave", False)
    assert log_in(site, directory, "dave").get("/api/session").status == 200


def test_sessions_refused_while_disabled_stay_ended_when_the_account_is_enabled_again(
        site, directory):
    """The refresh that finds the account disabled ends every session opened before it,
    the one that asked and those not used meanwhile (a second browser, a stolen cookie):
    enabling the account again (its DN and password unchanged, so its sessions' credential
    stamp too) gives none of them back; the user signs in afresh."""
    used, unused = log_in(site, directory, "dave"), log_in(site, directory, "dave")
    set_disabled(directory, "dave", True)
    try:
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert used.get("/api/session").status == 401
    finally:
        set_disabled(directory, "dave", False)
    site.clock.now += site.config.directory.refresh_seconds + 1
    assert unused.get("/api/session").status == 401
    assert unused.get("/api/search?q=").status == 401
    assert used.get("/api/session").status == 401
    fresh = log_in(site, directory, "dave")
    site.clock.now += site.config.directory.refresh_seconds + 1
    assert fresh.get("/api/session").status == 200


def test_a_user_removed_from_the_directory_loses_access_at_the_next_refresh(site, directory):
    client = log_in(site, directory, "erin")
    connection = directory.admin()
    dn = (f"CN=erin,{samba_dc.USERS}" if directory.kind == "ad" else slapd.people_dn("erin"))
    connection.delete(dn)
    connection.unbind()
    assert client.get("/api/session").status == 200
    site.clock.now += site.config.directory.refresh_seconds + 1
    assert client.get("/api/session").status == 401


def test_a_new_group_membership_changes_the_role_at_the_next_refresh(site, directory):
    client = log_in(site, directory, "alice")
    group = (f"CN=Legal,{samba_dc.USERS}" if directory.kind == "ad"
             else f"cn=Legal,ou=groups,{slapd.BASE}")
    alice = (f"CN=alice,{samba_dc.USERS}" if directory.kind == "ad" else slapd.people_dn("alice"))
    connection = directory.admin()
    connection.modify(group, {"member": [(ldap3.MODIFY_ADD, [alice])]})
    try:
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert client.get("/api/session").json()["role"] == "auditor"
    finally:
        connection.modify(group, {"member": [(ldap3.MODIFY_DELETE, [alice])]})
        connection.unbind()
    site.clock.now += site.config.directory.refresh_seconds + 1
    assert client.get("/api/session").json()["role"] == "user"



def remove_person(directory, dn: str) -> None:
    connection = directory.admin()
    connection.delete(dn)
    connection.unbind()


def reset_password(directory, dn: str, password: str) -> None:
    """What an administrator does for a stolen password (each directory its way)."""
    connection = directory.admin()
    if directory.kind == "ad":
        connection.extend.microsoft.modify_password(dn, password)
    else:  # RFC 3062; the ppolicy overlay writes pwdChangedTime
        connection.extend.standard.modify_password(dn, None, password)
    assert connection.result["result"] == 0, connection.result
    connection.unbind()


def test_a_password_reset_in_the_directory_ends_the_sessions_opened_before_it(site, directory):
    """A stolen directory password reset by an administrator: the thief's session ends at
    the next refresh, as a local account's does at a password change; the user signs in
    again with the new password and stays in."""
    dn = add_person(directory, "frank", "Frank-First-123")
    try:
        stolen = log_in(site, directory, "frank", "Frank-First-123")
        reset_password(directory, dn, "Frank-Second-456")
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert stolen.get("/api/session").status == 401
        if directory.kind == "openldap":  # Samba takes an old password for an hour more
            assert Client(site.url).log_in("frank", "Frank-First-123").status == 401
        again = log_in(site, directory, "frank", "Frank-Second-456")
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert again.get("/api/session").status == 200
    finally:
        remove_person(directory, dn)



@pytest.mark.only_directory("openldap")
def test_a_password_an_openldap_administrator_set_must_be_changed_before_signing_in(
        site, directory):
    """ppolicy's pwdReset (pwdMustChange): the bind with the password an administrator set
    succeeds, and only a password change may follow; it must not open the archive, nor
    keep a session open (as AD's pwdLastSet 0 does not)."""
    dn = add_person(directory, "heidi", "Heidi-Helpdesk-123")
    connection = directory.admin()
    try:
        client = log_in(site, directory, "heidi", "Heidi-Helpdesk-123")
        connection.modify(dn, {"pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])]})
        assert Client(site.url).log_in("heidi", "Heidi-Helpdesk-123").status == 401
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert client.get("/api/session").status == 401
    finally:
        connection.delete(dn)
        connection.unbind()

FILETIME_1970 = "116444736000000000"  # an accountExpires long past


@pytest.mark.only_directory("ad")
@pytest.mark.parametrize("change", ["expired", "must change password", "locked out"])
def test_an_ad_account_expired_locked_or_to_change_its_password_loses_access(site, directory,
                                                                            change):
    """AD refuses such an account's bind by itself, but a signed-in user never binds again:
    the entry read at the refresh must say it (accountExpires, pwdLastSet 0 and
    msDS-User-Account-Control-Computed)."""
    dn = add_person(directory, "grace", "Grace-Hopper-123")
    connection = directory.admin()
    try:
        client = log_in(site, directory, "grace", "Grace-Hopper-123")
        if change == "expired":
            connection.modify(dn, {"accountExpires": [(ldap3.MODIFY_REPLACE, [FILETIME_1970])]})
        elif change == "must change password":
            connection.modify(dn, {"pwdLastSet": [(ldap3.MODIFY_REPLACE, ["0"])]})
        else:
            lock_out(connection, dn)
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert client.get("/api/session").status == 401
        assert client.get("/api/search?q=").status == 401
    finally:
        connection.modify(samba_dc.BASE, {"lockoutThreshold": [(ldap3.MODIFY_REPLACE, ["0"])]})
        connection.delete(dn)
        connection.unbind()


NEVER_EXPIRES = "9223372036854775807"


@pytest.mark.only_directory("ad")
@pytest.mark.parametrize("change", ["disabled", "expired", "locked out"])
def test_an_ad_account_disabled_and_enabled_again_between_two_refreshes_loses_its_sessions(
        site, directory, change):
    """No refresh sees the account disabled (expired, locked out), yet the sessions opened
    before end: AD's replication metadata counts each write of userAccountControl,
    accountExpires and lockoutTime, which the sessions' credential stamp holds. Other
    writes to the entry, and a wrong password, end none."""
    dn = add_person(directory, "hank", "Hank-Hopper-123")
    connection = directory.admin()
    try:
        client = log_in(site, directory, "hank", "Hank-Hopper-123")
        connection.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, ["moved desks"])]})
        assert Client(site.url).log_in("hank", "Not-His-Password-1").status == 401
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert client.get("/api/session").status == 200
        if change == "disabled":
            set_disabled(directory, "hank", True)
            set_disabled(directory, "hank", False)
        elif change == "expired":
            connection.modify(dn, {"accountExpires": [(ldap3.MODIFY_REPLACE, [FILETIME_1970])]})
            connection.modify(dn, {"accountExpires": [(ldap3.MODIFY_REPLACE, [NEVER_EXPIRES])]})
        else:
            lock_out(connection, dn)
            connection.modify(dn, {"lockoutTime": [(ldap3.MODIFY_REPLACE, ["0"])]})
        assert Client(site.url).log_in("hank", "Hank-Hopper-123").status == 200  # enabled
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert client.get("/api/session").status == 401
        assert client.get("/api/search?q=").status == 401
        fresh = log_in(site, directory, "hank", "Hank-Hopper-123")
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert fresh.get("/api/session").status == 200
    finally:
        connection.modify(samba_dc.BASE, {"lockoutThreshold": [(ldap3.MODIFY_REPLACE, ["0"])]})
        connection.delete(dn)
        connection.unbind()


def lock_out(connection, dn: str) -> None:
    """Three wrong passwords against a domain that locks out at three."""
    connection.modify(samba_dc.BASE, {"lockoutThreshold": [(ldap3.MODIFY_REPLACE, ["3"])]})
    for _ in range(3):
        guess = ldap3.Connection(connection.server, dn, "Not-Her-Password-1")
        assert not guess.bind()


# -- the directory down --------------------------------------------------------------------

def test_with_the_directory_down_local_accounts_still_sign_in(site, directory):
    signed_in = log_in(site, directory, "carol")
    directory.stop()
    try:
        reply = Client(site.url).log_in("alice", directory.passwords["alice"])
        assert reply.status == 503
        assert "directory cannot be reached" in reply.json()["error"]
        form_client = Client(site.url)
        token = re.search(r'name="login_token" value="([^"]+)"',
                          form_client.get("/login").body.decode()).group(1)
        page = form_client.request("POST", "/login", form={
            "login_token": token, "name": "alice", "password": directory.passwords["alice"]})
        assert page.status == 503 and b"directory cannot be reached" in page.body
        admin = log_in(site, directory, "admin", PASSWORD)
        status = admin.get("/api/status").json()["directory"]
        assert status["state"] == "unreachable" and status["error"]
        assert b"unreachable" in admin.get("/status").body
        # a directory user's session is not honoured while it cannot be read again
        site.clock.now += site.config.directory.refresh_seconds + 1
        assert signed_in.get("/api/session").status == 401
    finally:
        directory.run()
    assert log_in(site, directory, "admin", PASSWORD).get("/api/status").json()[
        "directory"]["state"] == "ok"
    assert log_in(site, directory, "alice").get("/api/session").status == 200


def test_status_shows_the_directory(site, directory, tmp_path):
    config = tmp_path / "archiver.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(site.config.data_dir), "model": 450,
                                      "directory": directory.settings()}))
    done = subprocess.run([ARCHIVER, "status", "--json", "--config", config],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)["directory"]
    assert state["state"] == "ok" and state["uri"] == directory.settings()["uri"]
    done = subprocess.run([ARCHIVER, "status", "--config", config], capture_output=True,
                          text=True, timeout=120)
    assert f"directory {directory.settings()['uri']}: ok" in done.stdout
    assert "warning" not in done.stdout  # ldaps://


def test_metrics_fetched_without_end_never_keep_directory_users_from_signing_in(site,
                                                                              directory):
    """/metrics needs no login and shows whether the directory answers: an outsider
    fetching it from several connections at once, without end, must not fill the
    directory.concurrency places sign-ins wait in (each fetch asked the directory: 19 of 20
    sign-ins were refused "directory busy")."""
    stop = threading.Event()

    def fetch_metrics(number: int) -> None:
        outsider = Client(site.url, source=f"127.0.70.{number + 1}")
        while not stop.is_set():
            assert outsider.get("/metrics").status == 200

    fetchers = [threading.Thread(target=fetch_metrics, args=(n,), daemon=True)
                for n in range(4)]
    for fetcher in fetchers:
        fetcher.start()
    try:
        statuses = [Client(site.url, source=f"127.0.71.{n + 1}").log_in(
            "alice", directory.passwords["alice"]).status for n in range(10)]
    finally:
        stop.set()
        for fetcher in fetchers:
            fetcher.join(timeout=60)
    assert statuses == [200] * 10


# -- TLS -------------------------------------------------------------------------------------

def test_the_directory_is_trusted_only_through_the_configured_ca(site, directory, tmp_path):
    stranger = TestCA(tmp_path / "other-ca", name="some other CA")
    refused = Directory(DirectoryConfig(**directory.settings(ca_file=str(stranger.cert_path))))
    state = refused.probe()
    assert state["state"] == "unreachable" and "TLS failed" in state["error"]
    system_cas = Directory(DirectoryConfig(**directory.settings(ca_file=None)))
    assert system_cas.probe()["state"] == "unreachable"
    assert Directory(DirectoryConfig(**directory.settings())).probe()["state"] == "ok"
