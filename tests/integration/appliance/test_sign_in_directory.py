"""Who a directory sign-in becomes (services.appliance.sign_in) against a real slapd of the
test's own: names that are a local account's but for case or width never sign in, and a
second entry appearing for a signed-in user's name ends their session. Through the web
app: tests/integration/web/test_directory.py."""
from __future__ import annotations

import logging
import re

import pytest

from services.appliance import users
from services.appliance.directory import DirectoryError
from services.appliance.sign_in import LocalNameTaken, SignIn
from services.archive.archive import Archive
from services.common.config import DirectoryConfig
from tests.integration import slapd
from tests.integration.slapd import server  # noqa: F401  (a fixture: one slapd per module)

pytestmark = [pytest.mark.integration]

PASSWORD = "Directory-Pass-123"


@pytest.fixture
def archive(tmp_path):
    opened = Archive(tmp_path / "data", 450)
    users.add(opened, "auditor1", "auditor", [], "Local-Pass-456")
    yield opened
    opened.close()


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def contractor(server, uid: str) -> str:
    """A directory person `uid` (in ou=contractors) with PASSWORD; their DN."""
    dn = f"uid={uid},ou=contractors,{slapd.BASE}"
    server.admin().add(dn, ["inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid,
                                               "userPassword": PASSWORD})
    return dn


# "admin" is the firstboot admin's, "auditor1" a local account of the test's
FOLDED_NAMES = ["Admin", "ADMIN", "aDmIn", "\uff21\uff24\uff2d\uff29\uff2e",  # fullwidth ADMIN
                "\uff41dmin", "AUDITOR1", "Auditor1", "auditor\uff11", "AUDITOR\u2081"]


@pytest.mark.parametrize("name", FOLDED_NAMES, ids=ascii)
def test_a_directory_name_that_folds_to_a_local_accounts_never_signs_in(server, archive,
                                                                         name):
    dn = contractor(server, name)
    try:
        sign_in = SignIn(archive, DirectoryConfig(**server.settings()))
        with pytest.raises(LocalNameTaken, match="has the name of a local account"):
            sign_in.authenticate(name, PASSWORD)
        assert sign_in.authenticate("alice", slapd.PASSWORDS["alice"]).name == "alice"
    finally:
        server.admin().delete(dn)


def test_a_second_entry_for_a_signed_in_users_name_ends_their_session(server, archive,
                                                                      caplog):
    clock = Clock()
    sign_in = SignIn(archive, DirectoryConfig(**server.settings(refresh_seconds=1)),
                     clock=clock)
    erin = sign_in.authenticate("erin", slapd.PASSWORDS["erin"])
    assert sign_in.current("erin", erin.credential_stamp).name == "erin"
    dn = contractor(server, "erin")
    try:
        clock.now = 5.0
        with caplog.at_level(logging.WARNING, logger="services.appliance.sign_in"):
            assert sign_in.current("erin", erin.credential_stamp) is None
        assert "2 directory entries answer to 'erin'" in caplog.text
        assert "their sessions end" in caplog.text
    finally:
        server.admin().delete(dn)
    clock.now = 10.0  # the duplicate gone, erin signs in again
    assert sign_in.authenticate("erin", slapd.PASSWORDS["erin"]).name == "erin"


def test_with_the_ca_file_gone_since_the_config_was_loaded_sign_in_fails_saying_so(
        server, archive, tmp_path):
    """An admin removed directory.ca_file while the appliance runs: a directory sign-in
    fails naming the file, a directory user's session is not honoured once it is due to be
    read again, local accounts sign in as ever (ldap3's LDAPSSLConfigurationError used to
    escape from each, an HTTP 500)."""
    config, ca_file = server.loaded_config(tmp_path, refresh_seconds=1)
    clock = Clock()
    sign_in = SignIn(archive, config.directory, clock=clock)
    alice = sign_in.authenticate("alice", slapd.PASSWORDS["alice"])
    ca_file.unlink()
    gone = re.escape(f"directory.ca_file {ca_file}: cannot be read (No such file or directory)")
    with pytest.raises(DirectoryError, match=gone):
        sign_in.authenticate("bob", slapd.PASSWORDS["bob"])
    assert sign_in.authenticate("auditor1", "Local-Pass-456").name == "auditor1"
    clock.now = 5.0
    assert sign_in.current("alice", alice.credential_stamp) is None
