"""The directory client (services.appliance.directory) and `archiver directory test`
against a real OpenLDAP slapd of the test's own: TLS (LDAPS and StartTLS, the test's CA,
the server's name), hostile login names, ambiguous names, group loops, a refused service
account. Sign-in through the web app, against slapd and Samba AD, is in
tests/integration/web/test_directory.py."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from services.appliance.directory import Directory, DirectoryError
from services.common.config import DirectoryConfig
from tests.conftest import ARCHIVER
from tests.integration import slapd
from tests.integration.certificates import TestCA

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = slapd.Slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield started.start()
    finally:
        started.cleanup()


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

def run_cli(tmp_path, settings: dict | None, *args) -> subprocess.CompletedProcess:
    config = tmp_path / "archiver.yaml"
    document = {"data_dir": str(tmp_path / "data")}
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
