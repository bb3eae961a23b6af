"""Accounts: scrypt hashes with a random salt, roles, the firstboot admin in admin.json."""
import pytest

from services.appliance import admin_password, users
from services.archive.archive import Archive
from services.appliance.users import UserError


@pytest.fixture
def archive(tmp_path):
    opened = Archive(tmp_path / "data", 450)
    yield opened
    opened.close()


def test_an_account_keeps_only_a_salted_scrypt_hash(archive):
    users.add(archive, "alice", "user", ["Alice@Example.com"], "a good password")
    users.add(archive, "carol", "auditor", [], "a good password")
    stored = archive.store.setting("user:alice")
    assert stored["role"] == "user" and stored["emails"] == ["alice@example.com"]
    assert "a good password" not in str(stored)
    assert stored["password"]["scheme"] == "scrypt" and len(stored["password"]["salt"]) == 32
    assert stored["password"]["salt"] != archive.store.setting("user:carol")["password"]["salt"]
    assert users.authenticate(archive, "alice", "a good password").role == "user"
    assert users.authenticate(archive, "alice", "a bad password") is None
    assert users.authenticate(archive, "nobody", "a good password") is None


def test_adding_refuses_what_would_not_work(archive):
    users.add(archive, "alice", "user", ["alice@example.com"], "a good password")
    for name, role, emails, password, reason in [
            ("alice", "user", ["a@example.com"], "a good password", "already"),
            ("bad name", "user", ["a@example.com"], "a good password", "user name"),
            ("dave", "root", [], "a good password", "role"),
            ("dave", "user", [], "a good password", "at least one"),
            ("dave", "user", ["not-an-address"], "a good password", "NAME@DOMAIN"),
            ("dave", "auditor", [], "short", "at least 8"),
            ("admin", "admin", [], "a good password", "firstboot")]:
        with pytest.raises(UserError, match=reason):
            users.add(archive, name, role, emails, password)


def test_the_firstboot_admin_logs_in_and_can_get_a_new_password(archive):
    archive.data_dir.mkdir(parents=True)
    admin_password.save(archive.data_dir, admin_password.hashed("from firstboot"))
    admin = users.authenticate(archive, "admin", "from firstboot")
    assert admin.role == "admin" and admin.actor.name == "admin"
    stamp = admin.credential_stamp
    written = users.set_password(archive, "admin", "a new admin password")
    assert written == users.authenticate(archive, "admin", "a new admin password")
    assert users.authenticate(archive, "admin", "from firstboot") is None
    assert users.get(archive, "admin").credential_stamp != stamp
    assert admin_password.load(archive.data_dir)["user"] == "admin"
    with pytest.raises(UserError, match="cannot be removed"):
        users.remove(archive, "admin")


def test_list_passwd_and_remove(archive):
    users.add(archive, "bob", "user", ["bob@example.com"], "a good password")
    users.add(archive, "alice", "auditor", [], "a good password")
    assert [user.name for user in users.all_users(archive)] == ["alice", "bob"]
    written = users.set_password(archive, "bob", "another password")
    assert written == users.authenticate(archive, "bob", "another password")  # as written
    users.remove(archive, "bob")
    assert users.get(archive, "bob") is None
    with pytest.raises(UserError, match="no user"):
        users.remove(archive, "bob")


def test_a_user_named_like_another_but_for_case_is_refused(archive):
    users.add(archive, "audrey", "auditor", [], "a good password")
    for name in ("Audrey", "AUDREY", "Admin"):
        with pytest.raises(UserError, match="the same but for case"):
            users.add(archive, name, "auditor", [], "a good password")
    assert [user.name for user in users.all_users(archive)] == ["audrey"]
