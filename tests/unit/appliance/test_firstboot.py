"""First boot: node id, mirror key folder, TLS certificate, admin password; once."""
import json
import os
import pwd
import subprocess

import pytest
from cryptography import x509

from services.appliance import admin_password
from services.archive.archive import Archive
from services.appliance.firstboot import FirstbootError, Places, first_boot
from tests.conftest import ARCHIVER


@pytest.fixture
def root(tmp_path):
    """A temporary root: DATA, /etc/archiver, a console and a credentials folder."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "credentials").mkdir()
    return tmp_path


def places(root, **changes) -> Places:
    return Places(**{"tls_cert": root / "etc" / "tls.crt", "tls_key": root / "etc" / "tls.key",
                     "console": root / "console", "credentials": root / "credentials",
                     "user": None, **changes})


def boot(root, **changes):
    archive = Archive(root / "data", 450)
    try:
        return first_boot(archive, places(root, **changes)), archive.store.node_id
    finally:
        archive.close()


def test_a_generated_password_is_shown_and_only_its_hash_kept(root, capsys):
    outcome, node = boot(root)
    assert outcome.node_id == node and outcome.admin_password == "generated"
    password = outcome.password
    assert password in (root / "console").read_text() and password in capsys.readouterr().out
    record = admin_password.load(root / "data")
    assert password not in json.dumps(record) and admin_password.verify(record, password)
    assert not admin_password.verify(record, password + "x")
    assert oct((root / "data" / "admin.json").stat().st_mode & 0o777) == "0o600"
    assert (root / "data" / "mirror").is_dir() and (root / "data" / "firstboot.done").exists()


def test_the_password_credential_is_used_and_shown_nowhere(root, capsys):
    (root / "credentials" / "admin-password").write_text("from the harness\n")
    outcome, _ = boot(root)
    assert outcome.admin_password == "from credential" and outcome.shown_on == []
    assert admin_password.verify(admin_password.load(root / "data"), "from the harness")
    assert not (root / "console").exists() and "harness" not in capsys.readouterr().out


def test_a_too_short_credential_is_refused(root):
    (root / "credentials" / "admin-password").write_text("short")
    with pytest.raises(FirstbootError, match="too short"):
        boot(root)
    assert not (root / "data" / "firstboot.done").exists()


def test_the_tls_certificate_is_self_signed_for_the_hostname_and_its_key_private(root):
    boot(root)
    certificate = x509.load_pem_x509_certificate((root / "etc" / "tls.crt").read_bytes())
    assert certificate.issuer == certificate.subject
    assert oct((root / "etc" / "tls.key").stat().st_mode & 0o777) == "0o640"


def test_a_second_run_changes_nothing(root):
    boot(root)
    before = {path: path.read_bytes() for path in root.rglob("*")
              if path.is_file() and "store" not in path.parts}
    outcome, _ = boot(root)
    assert outcome.already_done
    after = {path: path.read_bytes() for path in root.rglob("*")
             if path.is_file() and "store" not in path.parts}
    assert after == before


def test_a_run_cut_short_keeps_the_password_and_certificate_it_made(root):
    first, _ = boot(root)
    (root / "data" / "firstboot.done").unlink()   # as if power went before the marker
    again, _ = boot(root)
    assert (again.admin_password, again.tls_certificate) == ("kept", "kept")
    assert admin_password.verify(admin_password.load(root / "data"), first.password)


def test_after_new_firmware_only_the_tls_certificate_is_made_again(root):
    first, node = boot(root)
    (root / "etc" / "tls.crt").unlink()                # a new system disk: /etc is new
    (root / "etc" / "tls.key").unlink()
    again, same_node = boot(root)
    assert not again.already_done and again.tls_certificate == "created"
    assert again.admin_password == "kept" and same_node == node
    assert admin_password.verify(admin_password.load(root / "data"), first.password)


def test_the_data_folder_goes_to_the_service_user_and_the_key_to_its_group(root):
    nobody = pwd.getpwnam("nobody")
    boot(root, user="nobody")
    for path in [root / "data", *(root / "data").rglob("*")]:
        if path.name != "firstboot.done":
            assert path.lstat().st_uid == nobody.pw_uid, path
    key = (root / "etc" / "tls.key").stat()
    assert (key.st_uid, key.st_gid) == (0, nobody.pw_gid)


def test_an_unknown_service_user_is_an_error_that_says_so(root):
    with pytest.raises(FirstbootError, match="no user 'no-such-user'"):
        boot(root, user="no-such-user")


def test_the_command_reads_the_credential_from_credentials_directory(root):
    (root / "credentials" / "admin-password").write_text("credential password")
    command = [str(ARCHIVER), "firstboot", "--data", root / "data", "--tls-cert",
               root / "etc" / "tls.crt", "--tls-key", root / "etc" / "tls.key",
               "--console", root / "console", "--keep-owners", "--json"]
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(root / "credentials"),
           "ARCHIVER_MODEL": "450"}
    done = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["admin_password"] == "from credential"
    again = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env)
    assert json.loads(again.stdout)["already_done"] is True


def test_key_certificate_and_marker_are_replaced_whole_never_rewritten_in_place(root):
    """Each is written beside its name, synced and renamed over it (atomic_output): what was
    there stays whole until the new file is complete and durable, so a power cut during
    first boot leaves no empty key or certificate that later boots would keep. Seen from a
    reader that opened the old files: they keep their content (rewritten in place, they
    would not), and the names point at new files. The key, written last, is root's and of
    the service user's group from the start."""
    nobody = pwd.getpwnam("nobody")
    boot(root, user="nobody")
    key = root / "etc" / "tls.key"
    paths = [root / "etc" / "tls.crt", root / "data" / "firstboot.done"]
    old = {path: (path.read_bytes(), open(path, "rb")) for path in paths}
    try:
        key.unlink()                          # a certificate and its key are made again
        outcome, _ = boot(root, user="nobody")
        assert outcome.tls_certificate == "created"
        for path, (content, reader) in old.items():
            assert reader.read() == content, path   # the old file, untouched
            assert os.fstat(reader.fileno()).st_ino != path.stat().st_ino, path
            assert path.read_bytes() not in (b"", content), path
    finally:
        for _, reader in old.values():
            reader.close()
    made = key.stat()
    assert (made.st_uid, made.st_gid, oct(made.st_mode & 0o777)) == (0, nobody.pw_gid, "0o640")
    assert oct((root / "etc" / "tls.crt").stat().st_mode & 0o777) == "0o644"
    assert not [p for p in (root / "etc").iterdir() if p.name.startswith(".")]  # no temporary
