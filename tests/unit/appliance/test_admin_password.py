"""The firstboot admin's password file (services.appliance.admin_password): replaced whole
while the web service reads it on every admin request and sign-in, and keeping the owner
and mode it had."""
import os
import pwd
import stat
import threading
import time

import pytest

from services.appliance import admin_password, users
from services.archive.archive import Archive

SECONDS = 2


def test_a_reader_never_sees_the_file_half_written(tmp_path):
    """`archiver user passwd admin` saves while the web service loads: each load finds a
    whole record, the one before or the new one (it used to find an empty file between
    the truncation and the write, and raised JSONDecodeError)."""
    records = [admin_password.hashed(f"password number {n}") for n in range(2)]
    admin_password.save(tmp_path, records[0])
    stop = threading.Event()
    saves = 0

    def save_again_and_again():
        nonlocal saves
        while not stop.is_set():
            admin_password.save(tmp_path, records[saves % 2])
            saves += 1

    writer = threading.Thread(target=save_again_and_again, daemon=True)
    writer.start()
    loads = 0
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            assert admin_password.load(tmp_path) in records
            loads += 1
    finally:
        stop.set()
        writer.join(timeout=30)
    assert saves > 10 and loads > 10  # the two did overlap, many times
    assert os.listdir(tmp_path) == [admin_password.ADMIN_FILE]  # no temporary file left


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_new_file_is_its_owners_only_and_a_saved_again_one_keeps_owner_and_mode(tmp_path):
    """As root on the console (`archiver user passwd admin`) the file must stay the
    service user's, or the web service could no longer read it."""
    path = admin_password.save(tmp_path, admin_password.hashed("the first one"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.geteuid()
    nobody = pwd.getpwnam("nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    path.chmod(0o640)
    new = admin_password.hashed("the second one")
    assert admin_password.save(tmp_path, new) == path
    kept = path.stat()
    assert (kept.st_uid, kept.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(kept.st_mode) == 0o640
    assert admin_password.load(tmp_path) == new


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_root_setting_the_password_gives_the_service_user_the_file_never_a_symlinks_target(
        tmp_path):
    """The data folder is the service user's: whoever runs as it may put a symlink named
    admin.json there, to /etc/shadow say, and wait for root on the console to set the admin
    password. Root must replace the link with a file of the service user's, and leave the
    link's target as it was (its owner, mode and content)."""
    nobody = pwd.getpwnam("nobody")
    data = tmp_path / "data"
    data.mkdir()
    archive = Archive(data, 450)
    try:
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        target = tmp_path / "shadow"
        target.write_text("root:secret\n")
        target.chmod(0o640)
        (data / admin_password.ADMIN_FILE).symlink_to(target)
        users.set_password(archive, admin_password.ADMIN_USER, "a long new password")
    finally:
        archive.close()
    kept = target.stat()
    assert (kept.st_uid, kept.st_gid, stat.S_IMODE(kept.st_mode)) == (0, 0, 0o640)
    assert target.read_text() == "root:secret\n"
    written = (data / admin_password.ADMIN_FILE).lstat()
    assert stat.S_ISREG(written.st_mode) and stat.S_IMODE(written.st_mode) == 0o600
    assert (written.st_uid, written.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert admin_password.verify(admin_password.load(data), "a long new password")


def test_the_decoy_costs_what_a_real_record_costs_and_matches_no_password(monkeypatch):
    """An unknown name is checked against the decoy, so its check must run scrypt with a
    real record's cost and digest length, and no password may match it; making it must
    hash nothing (it is made at every start of the web service and the CLI)."""
    real = admin_password.hashed("a password")
    calls = []
    real_scrypt = admin_password.hashlib.scrypt
    monkeypatch.setattr(admin_password.hashlib, "scrypt",
                        lambda *a, **k: calls.append(k) or real_scrypt(*a, **k))
    decoy = admin_password.decoy()
    assert calls == []
    assert {key: decoy[key] for key in ("scheme", "n", "r", "p")} == \
        {key: real[key] for key in ("scheme", "n", "r", "p")}
    assert len(bytes.fromhex(decoy["hash"])) == len(bytes.fromhex(real["hash"]))
    assert len(bytes.fromhex(decoy["salt"])) == len(bytes.fromhex(real["salt"]))
    assert not admin_password.verify(decoy, "a password")
    assert calls and calls[0]["n"] == admin_password.SCRYPT_N  # the check itself does hash
    assert admin_password.decoy()["salt"] != decoy["salt"]
