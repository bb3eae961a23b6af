import json
import os
from pathlib import Path

import pytest

from firmware import keys, manifest
from firmware.manifest import ManifestError
from firmware.version import FirmwareVersion

VERSION = FirmwareVersion.parse("1.0.0.001")


@pytest.fixture
def signed(tmp_path):
    """A payload of two files and a nested one, its manifest and signature, and the keys."""
    root = tmp_path / "payload"
    (root / "etc").mkdir(parents=True)
    (root / "app.whl").write_bytes(b"wheel bytes")
    (root / "etc" / "archiver.yaml").write_text("model: 450\n")
    (root / "etc" / "units.txt").write_text("archiver-smtp.service\n")
    private_path, public_path = keys.generate(tmp_path / "keys")
    found = manifest.create(root, ["app.whl", "etc"], 450, VERSION)
    data = found.to_bytes()
    signature = manifest.sign(data, keys.load_private(private_path))
    return root, data, signature, keys.load_public(public_path), tmp_path


def test_a_signed_manifest_verifies_and_lists_every_payload_file(signed):
    root, data, signature, public, _ = signed
    found = manifest.verify(data, signature, public, root)
    assert found.model == 450 and found.version == "1.0.0.001"
    assert sorted(found.files) == ["app.whl", "etc/archiver.yaml", "etc/units.txt"]


def problems(data, signature, public, root):
    with pytest.raises(ManifestError) as caught:
        manifest.verify(data, signature, public, root)
    return caught.value.problems


def test_any_change_to_the_manifest_fails_the_signature(signed):
    root, data, signature, public, _ = signed
    for changed in (data.replace(b'"model": 450', b'"model": 650'),
                    data.replace(b"1.0.0.001", b"1.0.0.002"),
                    data + b" ", data[:-2]):
        assert problems(changed, signature, public, root) == [
            "signature does not match the manifest: the manifest was changed after it was signed"]


def test_a_changed_payload_file_is_named(signed):
    root, data, signature, public, _ = signed
    (root / "etc" / "archiver.yaml").write_text("model: 650\n")
    (found,) = problems(data, signature, public, root)
    assert found.startswith("payload file etc/archiver.yaml was changed")


@pytest.mark.parametrize("kind", ["fifo", "folder", "file in place of its folder"])
def test_a_listed_file_that_is_no_longer_a_file_is_named_without_waiting(signed, kind):
    """The check opens each listed file once (no link followed, no FIFO waited on) and
    hashes it only if what it opened is a regular file."""
    root, data, signature, public, _ = signed
    (root / "app.whl").unlink()
    if kind == "fifo":
        os.mkfifo(root / "app.whl")   # opened for reading without O_NONBLOCK, this blocks
    elif kind == "folder":
        (root / "app.whl").mkdir()
    else:
        (root / "app.whl").write_bytes(b"wheel bytes")
        for name in ("archiver.yaml", "units.txt"):
            (root / "etc" / name).unlink()
        (root / "etc").rmdir()
        (root / "etc").write_text("not a folder\n")
    found = problems(data, signature, public, root)
    if kind == "file in place of its folder":
        assert found == ["payload file etc/archiver.yaml is missing",
                         "payload file etc/units.txt is missing"]
    else:
        assert found == ["payload file app.whl is missing"]


def test_every_missing_file_is_named(signed):
    root, data, signature, public, _ = signed
    (root / "app.whl").unlink()
    (root / "etc" / "units.txt").unlink()
    assert problems(data, signature, public, root) == [
        "payload file app.whl is missing", "payload file etc/units.txt is missing"]


def signed_library(tmp_path, count: int, step: int):
    """A payload of `count` files lib/NNN.py (file n: n * step bytes) and its signed
    manifest: (root, manifest bytes, signature, public key)."""
    root = tmp_path / "payload"
    (root / "lib").mkdir(parents=True)
    for n in range(count):
        (root / "lib" / f"{n:03}.py").write_bytes(b"x" * (n * step))
    private_path, public_path = keys.generate(tmp_path / "keys")
    data = manifest.create(root, ["lib"], 450, VERSION).to_bytes()
    signature = manifest.sign(data, keys.load_private(private_path))
    return root, data, signature, keys.load_public(public_path)


def test_problems_of_many_files_hashed_at_once_come_in_the_manifests_order(tmp_path):
    """The files are hashed on several threads (manifest.HASHING_THREADS); what is wrong
    is still said file by file in sorted order, as one thread would."""
    root, data, signature, public = signed_library(tmp_path, 300, 997)
    changed = [n for n in range(300) if n % 7 == 3]
    for n in changed:
        (root / "lib" / f"{n:03}.py").write_bytes(b"changed")
    (root / "lib" / "151.py").unlink()
    found = problems(data, signature, public, root)
    assert [line.split()[2] for line in found] == sorted(
        [f"lib/{n:03}.py" for n in changed] + ["lib/151.py"])
    assert "payload file lib/151.py is missing" in found


def test_a_check_pinned_to_one_cpu_hashes_on_one_thread(tmp_path, monkeypatch):
    """The pool is sized by the CPUs this process may run on (its affinity: a cgroup's
    cpuset, taskset), not by the CPUs the machine has: more threads than those only wait."""
    root, data, signature, public = signed_library(tmp_path, 40, 4099)
    sizes = []

    class RecordingPool(manifest.ThreadPoolExecutor):
        def __init__(self, max_workers):
            sizes.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(manifest, "ThreadPoolExecutor", RecordingPool)
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        manifest.verify(data, signature, public, root)
    finally:
        os.sched_setaffinity(0, allowed)
    assert sizes == [1]


def test_a_wrong_key_is_told_apart_from_a_changed_manifest(signed):
    root, data, signature, _, tmp_path = signed
    _, other_public = keys.generate(tmp_path / "other")
    (found,) = problems(data, signature, keys.load_public(other_public), root)
    assert found.startswith("manifest was signed with key ") and "but the trusted key is" in found


def test_a_signature_made_by_another_key_under_the_trusted_id_fails(signed):
    root, data, signature, public, tmp_path = signed
    other_private, _ = keys.generate(tmp_path / "other")
    forged = json.loads(manifest.sign(data, keys.load_private(other_private)))
    forged["key_id"] = keys.key_id(public)
    assert "signature does not match" in problems(data, json.dumps(forged).encode(), public, root)[0]


@pytest.mark.parametrize("bad", [b"", b"{}", b"not json", b'{"key_id": "x", "signature": "%%%"}'])
def test_a_malformed_signature_file_is_refused(signed, bad):
    root, data, _, public, _ = signed
    assert problems(data, bad, public, root) == ["signature file is not a valid signature document"]


def test_a_path_leaving_the_payload_root_is_refused(signed):
    root, _, _, public, tmp_path = signed
    (tmp_path / "secret").write_text("x")
    evil = manifest.Manifest(450, "1.0.0.001", "2026-01-01T00:00:00Z",
                             {"../secret": manifest.sha256_file(tmp_path / "secret")})
    data = evil.to_bytes()
    signature = manifest.sign(data, keys.load_private(tmp_path / "keys" / keys.PRIVATE_NAME))
    assert problems(data, signature, public, root) == ["payload path ../secret leaves the payload root"]


def test_source_date_epoch_makes_the_manifest_reproducible(signed, monkeypatch):
    root = signed[0]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = manifest.create(root, ["app.whl", "etc"], 450, VERSION).to_bytes()
    second = manifest.create(root, ["etc", "app.whl"], 450, VERSION).to_bytes()
    assert first == second and b"2023-11-14T22:13:20Z" in first


def test_keygen_never_overwrites_and_keeps_the_private_key_private(tmp_path):
    private_path, _ = keys.generate(tmp_path / "k")
    assert private_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(keys.SigningKeyError, match="exists already"):
        keys.generate(tmp_path / "k")


def test_keygen_refuses_a_folder_git_would_track(tmp_path):
    import subprocess
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    (tmp_path / "repo" / ".gitignore").write_text("/ignored/\n")
    with pytest.raises(keys.SigningKeyError, match="keys must never be committed"):
        keys.generate(tmp_path / "repo" / "keys")
    assert keys.generate(tmp_path / "repo" / "ignored")[0].exists()


def test_the_default_key_folder_is_ignored_by_this_tree():
    import subprocess
    done = subprocess.run(["git", "-C", str(keys.DEFAULT_DIR.parent.parent), "check-ignore", "-q",
                           str(keys.DEFAULT_DIR / keys.PRIVATE_NAME)])
    assert done.returncode == 0


# -- payload folders: nothing unlisted --------------------------------------------------

@pytest.fixture
def site(tmp_path):
    """A payload like an image's: a site-packages folder (with a link, as Debian's has), a
    folder of scripts, and a file named on its own; signed."""
    root = tmp_path / "root"
    packages = root / "usr" / "lib" / "python3" / "dist-packages"
    (packages / "services" / "__pycache__").mkdir(parents=True)
    (packages / "services" / "__init__.py").write_text("")
    (packages / "services" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    (packages / "babel").mkdir()
    (root / "usr" / "share" / "babel").mkdir(parents=True)
    (packages / "babel" / "locale-data").symlink_to("../../../../share/babel")
    (root / "usr" / "lib" / "archiver").mkdir()
    (root / "usr" / "lib" / "archiver" / "verify-firmware").write_text("#!/bin/sh\n")
    (root / "usr" / "bin").mkdir()
    (root / "usr" / "bin" / "archiver").write_text("#!/usr/bin/python3\n")
    private_path, public_path = keys.generate(tmp_path / "keys")
    found = manifest.create(root, ["usr/lib/python3/dist-packages", "usr/lib/archiver",
                                   "usr/bin/archiver"], 450, VERSION)
    data = found.to_bytes()
    signature = manifest.sign(data, keys.load_private(private_path))
    return root, data, signature, keys.load_public(public_path), found


def test_named_folders_are_payload_folders_and_links_are_kept_as_links(site):
    root, data, signature, public, found = site
    assert found.folders == ["usr/lib/archiver", "usr/lib/python3/dist-packages"]
    assert found.links == {"usr/lib/python3/dist-packages/babel/locale-data":
                           "../../../../share/babel"}
    assert "usr/bin/archiver" in found.files
    assert manifest.verify(data, signature, public, root) == manifest.Manifest.from_bytes(data)


PACKAGES = "usr/lib/python3/dist-packages"
UNLISTED = [
    f"{PACKAGES}/evil.pth",                                   # runs in every Python process
    f"{PACKAGES}/sitecustomize.py",
    f"{PACKAGES}/services/intake/backdoor.py",
    f"{PACKAGES}/services/__pycache__/backdoor.cpython-311.pyc",
    f"{PACKAGES}/.hidden.pth",
    f"{PACKAGES}/zz name with spaces é.pth",
    "usr/lib/archiver/verify-firmware.orig",
]


@pytest.mark.parametrize("added", UNLISTED)
def test_a_file_added_to_a_payload_folder_fails_the_check(site, added):
    root, data, signature, public, _ = site
    path = root / added
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("import os; os.system('id')\n")
    folder = PACKAGES if added.startswith(PACKAGES) else "usr/lib/archiver"
    assert problems(data, signature, public, root) == [
        f"{added} is not in the manifest (an unlisted file in the payload folder {folder})"]


@pytest.mark.parametrize("kind", ["link to a file", "link to a folder", "fifo"])
def test_other_things_added_to_a_payload_folder_fail_the_check_too(site, kind):
    root, data, signature, public, _ = site
    added = root / PACKAGES / "added"
    if kind == "link to a file":
        added.symlink_to("/etc/passwd")
    elif kind == "link to a folder":
        added.symlink_to("/tmp")
    else:
        os.mkfifo(added)
    (found,) = problems(data, signature, public, root)
    assert found.startswith(f"{PACKAGES}/added is ")


def test_a_listed_file_turned_into_a_link_or_a_retargeted_link_fails(site):
    root, data, signature, public, _ = site
    module = root / PACKAGES / "services" / "__init__.py"
    copy = root / "elsewhere.py"
    copy.write_bytes(module.read_bytes())
    module.unlink()
    module.symlink_to(copy)
    link = root / PACKAGES / "babel" / "locale-data"
    link.unlink()
    link.symlink_to("/tmp")
    assert problems(data, signature, public, root) == [
        f"payload file {PACKAGES}/services/__init__.py was replaced by a link",
        f"payload link {PACKAGES}/babel/locale-data was changed (it points to /tmp, the "
        "manifest says ../../../../share/babel)"]


def test_files_beside_a_file_named_on_its_own_are_not_payload(site):
    root, data, signature, public, _ = site
    (root / "usr" / "bin" / "other-tool").write_text("not the firmware's\n")
    assert manifest.verify(data, signature, public, root).model == 450


def test_a_missing_payload_folder_holds_nothing_unlisted(tmp_path):
    (tmp_path / "empty").mkdir()
    found = manifest.create(tmp_path, ["empty"], 450, VERSION)
    (tmp_path / "empty").rmdir()
    assert manifest.unlisted(tmp_path, found) == []


def test_a_manifest_without_folders_or_links_still_reads():
    old = {"build_time": "2026-01-01T00:00:00Z", "files": {"a": "00"}, "format": 1,
           "model": 450, "version": "1.0.0.001"}
    found = manifest.Manifest.from_bytes(json.dumps(old).encode())
    assert (found.folders, found.links) == ([], {})


def test_a_file_in_nested_payload_folders_is_named_once(site):
    root, _, _, public, _ = site
    found = manifest.create(root, [PACKAGES, f"{PACKAGES}/services"], 450, VERSION)
    (root / PACKAGES / "services" / "extra.py").write_text("")
    assert manifest.unlisted(root, found) == [
        f"{PACKAGES}/services/extra.py is not in the manifest (an unlisted file in the payload "
        f"folder {PACKAGES})"]


# -- guarded folders: the names that run before or around the services -------------------

GUARDED = {"etc/systemd/system": ["archiver-*", "*.service.d"],
           "usr/lib/python3.11": ["sitecustomize*", "usercustomize*", "*.pth"]}


@pytest.fixture
def guarded_site(tmp_path):
    """A root like an image's /etc/systemd/system (systemd's own links, an archiver unit's
    enablement) and stdlib folder (sitecustomize.py a link into /etc/python3.11), signed
    with those folders guarded."""
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    (units / "multi-user.target.wants").mkdir(parents=True)
    (units / "multi-user.target.wants" / "archiver.service").symlink_to(
        "/usr/lib/systemd/system/archiver.service")
    (units / "archiver-data.service.d").mkdir()
    (units / "archiver-data.service.d" / "10-disk.conf").write_text("[Unit]\n")
    stdlib = root / "usr" / "lib" / "python3.11"
    stdlib.mkdir(parents=True)
    (stdlib / "os.py").write_text("")
    (stdlib / "sitecustomize.py").symlink_to("/etc/python3.11/sitecustomize.py")
    (root / "etc" / "python3.11").mkdir()
    (root / "etc" / "python3.11" / "sitecustomize.py").write_text("# Debian's\n")
    private_path, public_path = keys.generate(tmp_path / "keys")
    found = manifest.create(root, ["etc/python3.11"], 450, VERSION, guarded=GUARDED)
    data = found.to_bytes()
    signature = manifest.sign(data, keys.load_private(private_path))
    return root, data, signature, keys.load_public(public_path), found


def test_guarded_names_are_listed_and_the_rest_of_the_folder_is_not(guarded_site):
    root, data, signature, public, found = guarded_site
    assert found.guarded == {folder: sorted(names) for folder, names in GUARDED.items()}
    assert "etc/systemd/system/archiver-data.service.d" in found.folders
    assert found.links == {"usr/lib/python3.11/sitecustomize.py":
                           "/etc/python3.11/sitecustomize.py"}
    assert "usr/lib/python3.11/os.py" not in found.files
    (root / "etc" / "systemd" / "system" / "timers.target.wants").mkdir()  # systemd's own
    (root / "usr" / "lib" / "python3.11" / "new_module.py").write_text("")
    assert manifest.verify(data, signature, public, root) == manifest.Manifest.from_bytes(data)


GUARDED_ADDED = {
    "etc/systemd/system/archiver-verify.service": "etc/systemd/system",  # overrides the unit
    "etc/systemd/system/archiver-verify.service.d/override.conf": "etc/systemd/system",
    "etc/systemd/system/systemd-journald.service.d/evil.conf": "etc/systemd/system",
    "etc/systemd/system/archiver-data.service.d/20-evil.conf": None,  # a payload folder
    "usr/lib/python3.11/usercustomize.py": "usr/lib/python3.11",
    "usr/lib/python3.11/zz.pth": "usr/lib/python3.11",
    "etc/python3.11/extra.py": None,
}


@pytest.mark.parametrize("added", GUARDED_ADDED)
def test_a_unit_drop_in_or_start_up_module_added_fails_the_check(guarded_site, added):
    root, data, signature, public, _ = guarded_site
    path = root / added
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[Service]\nExecStart=\nExecStart=/bin/true\n")
    found = problems(data, signature, public, root)
    folder = GUARDED_ADDED[added]
    if folder is None:
        assert found == [f"{added} is not in the manifest (an unlisted file in the payload "
                         f"folder {Path(added).parent})"]
    else:
        entry = "/".join(Path(added).parts[:len(Path(folder).parts) + 1])
        assert found == [f"{entry} is not in the manifest (a name the guarded folder {folder} "
                         f"holds only as listed: {' '.join(sorted(GUARDED[folder]))})"]


def test_sitecustomize_pointed_elsewhere_fails_the_check(guarded_site):
    root, data, signature, public, _ = guarded_site
    link = root / "usr" / "lib" / "python3.11" / "sitecustomize.py"
    link.unlink()
    link.symlink_to("/tmp/evil.py")
    assert problems(data, signature, public, root) == [
        "payload link usr/lib/python3.11/sitecustomize.py was changed (it points to "
        "/tmp/evil.py, the manifest says /etc/python3.11/sitecustomize.py)"]
