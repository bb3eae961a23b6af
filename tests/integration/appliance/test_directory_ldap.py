"""The directory client (services.appliance.directory) and `archiver directory test`
against a real OpenLDAP slapd of the test's own: TLS (LDAPS and StartTLS, the test's CA,
the server's name), hostile login names, ambiguous names, group loops, a refused service
account. Sign-in through the web app, against slapd and Samba AD, is in
tests/integration/web/test_directory.py."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from services.appliance.directory import Directory, DirectoryError
from services.appliance.health import directory_state
from services.common.config import DirectoryConfig
from tests.conftest import ARCHIVER
from tests.integration import slapd
from tests.integration.slapd import server  # noqa: F401  (a fixture: one slapd per module)
from tests.integration.black_hole import BlackHole
from tests.integration.certificates import TestCA
from tests.integration.processes import refusing_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration]


def directory(server, **changes) -> Directory:
    return Directory(DirectoryConfig(**server.settings(**changes)))


# -- TLS ---------------------------------------------------------------------------------

def test_start_tls_upgrades_ldap_with_the_configured_ca(server, tmp_path):
    upgraded = directory(server, uri=server.ldap_uri, start_tls=True)
    assert upgraded.probe()["state"] == "ok"
    assert upgraded.check_password("alice", slapd.PASSWORDS["alice"]).name == "alice"
    stranger = TestCA(tmp_path, name="another CA")
    refused = directory(server, uri=server.ldap_uri, start_tls=True,
                        ca_file=str(stranger.cert_path))
    state = refused.probe()
    assert state["state"] == "unreachable" and "TLS failed" in state["error"]
    with pytest.raises(DirectoryError, match="TLS failed"):
        refused.check_password("alice", slapd.PASSWORDS["alice"])


def test_a_certificate_for_another_name_is_refused(tmp_path):
    """The CA is right, but the certificate names only "localhost": 127.0.0.1 is refused."""
    named = slapd.Slapd(tmp_path, dns_names=["localhost"], ip_addresses=[])
    try:
        named.start()
        by_name = directory(named, uri=f"ldaps://localhost:{named.ldaps_port}")
        assert by_name.probe()["state"] == "ok"
        by_address = directory(named, uri=named.ldaps_uri).probe()
        assert by_address["state"] == "unreachable" and "TLS failed" in by_address["error"]
    finally:
        named.cleanup()


def remove(path) -> str:
    path.unlink()
    return "cannot be read (No such file or directory)"


def put_a_folder_there(path) -> str:
    path.unlink()
    path.mkdir()
    return "cannot be read (Is a directory)"


def spoil(path) -> str:
    path.write_text("not a certificate\n")
    return "holds no CA certificate in PEM"


@pytest.mark.parametrize("breaking", [remove, put_a_folder_there, spoil],
                         ids=lambda breaking: breaking.__name__)
def test_a_ca_file_gone_or_spoiled_since_the_config_was_loaded_is_named(server, tmp_path,
                                                                        breaking):
    """The file is checked when the config is loaded; an admin may replace or remove it
    while the appliance runs. The status (the web service's /status and /metrics) shows
    the directory unreachable and why, and a sign-in fails saying so. Before, a missing
    file raised ldap3's LDAPSSLConfigurationError from both (an HTTP 500), and the other
    two failed naming no file."""
    config, ca_file = server.loaded_config(tmp_path)
    assert directory_state(config)["state"] == "ok"
    problem = breaking(ca_file)
    state = directory_state(config)
    assert state["state"] == "unreachable"
    assert f"directory.ca_file {ca_file}: {problem}" in state["error"]
    with pytest.raises(DirectoryError, match=re.escape(f"directory.ca_file {ca_file}")):
        Directory(config.directory).check_password("alice", slapd.PASSWORDS["alice"])
    if ca_file.is_dir():
        ca_file.rmdir()
    shutil.copyfile(server.ca.cert_path, ca_file)  # put back: read at each connection
    assert directory_state(config)["state"] == "ok"


# -- who a name is -------------------------------------------------------------------------

HOSTILE_NAMES = ["*", "a*", "*)(uid=*", "alice)(|(uid=*", "alice)", "(alice", "alice\\",
                 "alice\x00", "alice ", " alice", "al\u0301ice", "", "x" * 300,
                 "uid=alice,ou=people,dc=example,dc=com", "alice\nbob"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_a_login_name_is_only_ever_a_value_never_part_of_the_filter(server, name):
    assert directory(server).check_password(name, slapd.PASSWORDS["alice"]) is None


def test_a_name_two_entries_answer_to_signs_in_as_no_one(server, caplog):
    assert directory(server).check_password("sam", slapd.PASSWORDS["sam"]) is None
    assert "2 directory entries answer to 'sam'" in caplog.text


def test_a_loop_of_groups_ends_and_counts_each_group_once(server):
    account = directory(server).find("bob")
    names = sorted(dn.split(",")[0] for dn in account.groups)
    assert names == ["cn=Loop A", "cn=Loop B", "cn=Staff"]


def test_addresses_are_lower_cased_once_each_primary_first(server):
    assert directory(server).find("alice").emails == ("alice@example.com",
                                                      "a.liddell@example.com")


def test_a_refused_service_account_is_a_failing_directory_with_the_reason(server):
    wrong = directory(server, bind_password="not the service password")
    state = wrong.probe()
    assert state["state"] == "failing" and "service account" in state["error"]
    with pytest.raises(DirectoryError, match="service account"):
        wrong.check_password("alice", slapd.PASSWORDS["alice"])


def test_the_service_password_can_come_from_a_file(server, tmp_path):
    secret = tmp_path / "directory.secret"
    secret.write_text(slapd.SERVICE_PASSWORD + "\n")
    from_file = directory(server, bind_password=None, bind_password_file=str(secret))
    assert from_file.check_password("dave", slapd.PASSWORDS["dave"]).role == "auditor"
    missing = directory(server, bind_password=None, bind_password_file=str(tmp_path / "gone"))
    assert "cannot be read" in missing.probe()["error"]


# -- archiver directory test -------------------------------------------------------------

def run_cli(tmp_path, settings: dict | None, *args, **keys) -> subprocess.CompletedProcess:
    """`archiver directory test ARGS` with an archiver.yaml of `settings` (its directory:)
    and `keys` (other top-level keys)."""
    config = tmp_path / "archiver.yaml"
    document = {"data_dir": str(tmp_path / "data"), **keys}
    if settings is not None:
        document["directory"] = settings
    config.write_text(yaml.safe_dump(document))
    return subprocess.run([ARCHIVER, "directory", "test", "--config", config, *args],
                          capture_output=True, text=True, timeout=120)


def test_directory_test_shows_what_a_user_would_get(server, tmp_path):
    done = run_cli(tmp_path, server.settings(), "--user", "carol", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["directory"]["state"] == "ok"
    account = report["user"]["account"]
    assert account["role"] == "admin" and account["emails"] == ["carol@example.com"]
    assert len(account["groups"]) == 2 and account["disabled"] is None
    text = run_cli(tmp_path, server.settings(), "--user", "alice").stdout
    assert "addresses  alice@example.com, a.liddell@example.com" in text
    assert "role       user" in text and "signs in   yes" in text
    locked = run_cli(tmp_path, server.settings(), "--user", "mallory").stdout
    assert "signs in   no: locked in the directory" in locked


def test_directory_test_fails_for_an_unknown_user_or_an_unreachable_directory(server, tmp_path):
    unknown = run_cli(tmp_path, server.settings(), "--user", "nobody", "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["user"]["account"] is None
    down = run_cli(tmp_path, server.settings(uri="ldaps://127.0.0.1:1"), "--json")
    assert down.returncode == 1
    state = json.loads(down.stdout)["directory"]
    assert state["state"] == "unreachable" and "Connection refused" in state["error"]
    plain = run_cli(tmp_path, server.settings(uri="ldaps://127.0.0.1:1"))
    assert "unreachable" in plain.stdout and plain.returncode == 1


def test_directory_test_without_a_directory_section_says_so(tmp_path):
    done = run_cli(tmp_path, None)
    assert done.returncode == 2 and "no directory: section" in done.stderr


# -- settings that work as documented ------------------------------------------------------

@pytest.mark.parametrize("timeout", [10, 10.0, 2.5, 0.4])
def test_an_explicit_timeout_keeps_the_directory_working(server, timeout):
    """timeout_seconds is a number of seconds (config.py); ldap3 wants whole ones."""
    configured = directory(server, timeout_seconds=timeout)
    assert configured.probe()["state"] == "ok"
    assert configured.check_password("alice", slapd.PASSWORDS["alice"]).name == "alice"


def test_directory_test_with_an_explicit_timeout_key(server, tmp_path):
    done = run_cli(tmp_path, server.settings(timeout_seconds=10), "--user", "alice", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["directory"]["state"] == "ok"


# -- passwords no bind can carry -------------------------------------------------------------

UNSENDABLE_PASSWORDS = ["\x00", "Wonderland-42\x00", "a\x07b", "\x1b[2J", "Wonder\x7fland",
                        "\ud800", "Wonderland-42\udfff", "\u00ad", "\u200b\u00ad",
                        "\ufff9x", "\U000e0001"]


@pytest.mark.parametrize("password", UNSENDABLE_PASSWORDS, ids=ascii)
def test_a_password_no_simple_bind_can_carry_is_a_wrong_password(server, password):
    """SASLprep (RFC 4013) refuses control characters, maps soft hyphens and zero-width
    spaces to nothing (an empty password: an unauthenticated bind, RFC 4513 5.1.2); UTF-8
    cannot carry a lone surrogate. Each is a wrong password, never 'unreachable'."""
    assert directory(server).check_password("alice", password) is None


# -- what a failed sign-in costs ------------------------------------------------------------

def log_operations(server, since: int, kind: str) -> list[str]:
    """slapd's "stats" log lines of operation `kind` (BIND, SRCH) after offset `since`."""
    text = server.log.read_bytes()[since:].decode("utf-8", "replace")
    return [line for line in text.splitlines() if f" {kind} " in line]


def user_binds(server, since: int) -> list[str]:
    return [line for line in log_operations(server, since, "BIND")
            if slapd.SERVICE_DN not in line]


@pytest.mark.parametrize("name", ["nosuch-person", "sam", "mallory", "carol"])
def test_a_failed_sign_in_costs_one_user_bind_and_no_group_search(server, name):
    """Unknown (nosuch-person), ambiguous (sam), locked (mallory) and a wrong password
    (carol) do the same work: the user search, then one bind as a user (a DN no entry has
    when there is no one entry), and never the group searches, which only a right password
    earns: how long a failure takes does not tell which names exist."""
    since = server.log.stat().st_size
    assert directory(server).check_password(name, "Not-The-Password-1") is None
    wait_until(lambda: "UNBIND" in server.log.read_bytes()[since:].decode(errors="replace")
               and len(user_binds(server, since)) >= 1, timeout=10, what="slapd's log")
    binds = user_binds(server, since)
    assert len(binds) == 1, binds
    assert not [line for line in log_operations(server, since, "SRCH") if "member=" in line]


def test_groups_are_read_once_the_password_is_right(server):
    since = server.log.stat().st_size
    assert directory(server).check_password("carol", slapd.PASSWORDS["carol"]).role == "admin"
    wait_until(lambda: [line for line in log_operations(server, since, "SRCH")
                        if "member=" in line], timeout=10, what="the group searches")


# -- groups are DNs ---------------------------------------------------------------------------

def test_a_group_of_the_admin_groups_name_elsewhere_makes_no_admin(server):
    """admin_groups names cn=Archive Admins,ou=groups: a group of that name in another OU
    (anyone allowed to make groups there) gives nothing."""
    admin = server.admin()
    elsewhere = f"cn=Archive Admins,ou=contractors,{slapd.BASE}"
    admin.add(elsewhere, ["groupOfNames"], {"cn": "Archive Admins",
                                            "member": [slapd.people_dn("erin")]})
    try:
        account = directory(server).find("erin")
        assert account.role == "user" and elsewhere in account.groups
        assert directory(server).find("carol").role == "admin"  # the configured one counts
    finally:
        admin.delete(elsewhere)


# -- why the directory cannot be reached ---------------------------------------------------

@pytest.mark.parametrize("scheme", ["ldaps", "ldap"])
def test_a_connection_closed_at_once_is_reported_as_closed_not_as_a_certificate(scheme):
    with BlackHole("close") as hole:
        state = Directory(DirectoryConfig(uri=f"{scheme}://127.0.0.1:{hole.port}",
                                          base_dn=slapd.BASE, timeout_seconds=5)).probe()
    assert state["state"] == "unreachable"
    assert "closed the connection" in state["error"] and "ca_file" not in state["error"]


@pytest.mark.parametrize("scheme", ["ldaps", "ldap"])
def test_a_directory_that_never_answers_is_reported_as_silent(scheme):
    with BlackHole("silent") as hole:
        state = Directory(DirectoryConfig(uri=f"{scheme}://127.0.0.1:{hole.port}",
                                          base_dn=slapd.BASE, timeout_seconds=1)).probe()
    assert state["state"] == "unreachable"
    assert "no answer within 1 s" in state["error"] and "ca_file" not in state["error"]


def test_a_refused_connection_is_reported_as_refused():
    with refusing_port() as port:
        state = Directory(DirectoryConfig(uri=f"ldaps://127.0.0.1:{port}",
                                          base_dn=slapd.BASE)).probe()
    assert "connection refused" in state["error"] and "ca_file" not in state["error"]


# -- passwords in clear ------------------------------------------------------------------------

def test_plain_ldap_without_start_tls_is_warned_about(server, tmp_path):
    plain = run_cli(tmp_path, server.settings(uri=server.ldap_uri), "--json")
    assert plain.returncode == 0, plain.stderr
    assert "passwords cross the network in clear" in json.loads(plain.stdout)["directory"][
        "warning"]
    text = run_cli(tmp_path, server.settings(uri=server.ldap_uri)).stdout
    assert "warning: passwords cross the network in clear" in text
    for safe in (server.settings(), server.settings(uri=server.ldap_uri, start_tls=True)):
        done = run_cli(tmp_path, safe, "--json")
        assert json.loads(done.stdout)["directory"]["warning"] is None
        assert "warning" not in run_cli(tmp_path, safe).stdout


def test_two_factor_required_for_a_role_the_directory_gives_is_no_warning(server, tmp_path):
    """Directory accounts of a role two_factor.required_for names set codes up as local
    ones do (tests/integration/web/test_directory_two_factor.py): nothing to warn of but
    what is unsafe in the connection."""
    codes = {"required_for": ["admin", "user"]}
    done = run_cli(tmp_path, server.settings(), "--json", two_factor=codes)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["directory"]["warning"] is None
    plain = run_cli(tmp_path, server.settings(uri=server.ldap_uri), "--json", two_factor=codes)
    assert "required_for" not in json.loads(plain.stdout)["directory"]["warning"]