"""The firstboot admin's password file (services.appliance.admin_password): replaced whole
while the web service reads it on every admin request and sign-in, and keeping the owner
and mode it had."""
import os
import pwd
import stat
import threading
import time

from services.appliance import admin_password

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
