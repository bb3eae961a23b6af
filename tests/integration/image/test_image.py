"""The image build and flashing, for real: mmdebstrap base (cached in build/cache and shared
with `make image`), images of two models, flashing onto virtual appliances, signatures that
fail, a VM of another model, what the image holds. Boots are the system tier's
(tests/system/test_pair.py boots a pair of these images; its power-off test's boot is also
the boot check's, of a changed and an unlisted payload file: no archiver service starts).

These run as root (the image build needs it) and take minutes: one base tree (about
100 s when build/cache does not have it yet) and two image builds of about 12 s each.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware import keys, manifest
from image import artifacts, disk
from image.wheel import SITE_PACKAGES

pytestmark = [pytest.mark.image, pytest.mark.integration, pytest.mark.slow]

TREE = Path(__file__).resolve().parents[3]
MODELS = (450, 650)
EPOCH = "1700000000"

if os.geteuid() != 0 or not shutil.which("mmdebstrap"):
    pytest.skip("image builds need root and mmdebstrap (make setup)", allow_module_level=True)


def run(*args, check=None, env=None, timeout=900):
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=TREE, env={**os.environ, **(env or {})}, timeout=timeout)
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


@pytest.fixture(scope="module")
def keyring(tmp_path_factory):
    """A signing key and an SSH key of the tests' own (build/keys and build/ssh stay as they are)."""
    folder = tmp_path_factory.mktemp("keys")
    private, public = keys.generate(folder / "signing")
    ssh = folder / "ssh" / "id_ed25519"
    ssh.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh)], check=True)
    return {"private": private, "public": public, "ssh": ssh}


@pytest.fixture(scope="module")
def images(tmp_path_factory, keyring):
    """Images of two models, built with SOURCE_DATE_EPOCH set, sharing the cached base."""
    images_dir = tmp_path_factory.mktemp("images")
    built = {}
    for model in MODELS:
        started = time.monotonic()
        done = run("-m", "image.build", "--model", model, "--images-dir", images_dir,
                   "--key", keyring["private"], "--ssh-key", keyring["ssh"], "--json",
                   env={"SOURCE_DATE_EPOCH": EPOCH})
        assert done.returncode == 0, done.stderr[-4000:]
        info = json.loads(done.stdout)
        info["wall_seconds"] = time.monotonic() - started
        built[model] = (images_dir / artifacts.image_dir_name(model, info["version"]), info)
    return built


@pytest.fixture(scope="module")
def raw_450(images, tmp_path_factory):
    """The 450 image's system disk as a raw ext4 file, for debugfs."""
    return disk.to_raw(images[450][0] / artifacts.DISK,
                       tmp_path_factory.mktemp("raw") / "disk.raw")


def flash(image_dir, vm, vms_dir, keyring, *extra, check=None):
    return run("-m", "image.flash", image_dir, "--vm", vm, "--vms-dir", vms_dir,
               "--pubkey", keyring["public"], *extra, check=check)


# --- build ----------------------------------------------------------------------------------

def test_two_models_build_and_verify(images, keyring):
    for model, (folder, info) in images.items():
        assert info["model"] == model
        verified = artifacts.verify_image(folder, keyring["public"])
        assert (verified.model, verified.version) == (model, info["version"])
        assert verified.build_time == "2023-11-14T22:13:20Z"   # SOURCE_DATE_EPOCH
        for name in (*artifacts.SIGNED_FILES, artifacts.IMAGE_MANIFEST, "build.log", "build.json"):
            assert (folder / name).is_file(), name
        assert "manifest:" in (folder / "build.log").read_text()


def test_warm_build_is_fast(images):
    """The second build reuses the cached base: well under a minute."""
    info = images[MODELS[-1]][1]
    assert info["base_cached"]
    assert info["wall_seconds"] < 60, info


def test_payload_digests_are_reproducible(images):
    """Two builds with SOURCE_DATE_EPOCH (here of two models) sign the same digests for the
    wheel, the installed code, the units and the configuration; only the model differs."""
    first, second = (json.loads((images[m][0] / artifacts.FIRMWARE_MANIFEST).read_text())
                     for m in MODELS)
    assert first["files"].keys() == second["files"].keys()
    differing = {p for p in first["files"] if first["files"][p] != second["files"][p]}
    assert differing == {"usr/share/archiver/model"}
    kinds = {
        "wheel": [p for p in first["files"] if p.endswith(".whl")],
        "code": [p for p in first["files"] if p.startswith(f"{SITE_PACKAGES}/services/")],
        "units": [p for p in first["files"] if p.startswith("usr/lib/systemd/system/archiver-")],
        "config": ["usr/share/archiver/defaults/archiver.yaml", "usr/share/archiver/models.yaml"],
    }
    for kind, paths in kinds.items():
        assert paths and all(p in first["files"] for p in paths), kind


def test_image_size(images):
    for folder, info in images.values():
        qcow2 = (folder / artifacts.DISK).stat().st_size
        assert qcow2 == info["disk_bytes"]
        assert qcow2 < 1024 << 20, f"system disk {qcow2 >> 20} MiB"
        virtual = json.loads(subprocess.run(
            ["qemu-img", "info", "--output=json", str(folder / artifacts.DISK)],
            capture_output=True, text=True, check=True).stdout)["virtual-size"]
        assert virtual == info["root_bytes"]
        assert info["tree_bytes"] < 0.85 * virtual


# --- what the image holds --------------------------------------------------------------------

def test_units_are_installed_and_enabled(raw_450):
    units = sorted(p.name for p in (TREE / "services" / "units").iterdir())
    installed = disk.listdir(raw_450, "/usr/lib/systemd/system")
    assert set(units) <= set(installed)
    wanted = disk.listdir(raw_450, "/etc/systemd/system/multi-user.target.wants")
    for unit in units:
        text = (TREE / "services" / "units" / unit).read_text()
        if "WantedBy=multi-user.target" in text:
            assert unit in wanted, unit
        if unit.endswith(".service"):
            drop_in = disk.read_file(raw_450, f"/usr/lib/systemd/system/{unit}.d/"
                                     "50-archiver-image.conf").decode()
            assert "Requires=archiver-verify.service" in drop_in
    assert "archiver-verify.service" in wanted
    # the QEMU harness's credentials (qemu/lab.py) are applied by these two
    assert {"archiver-vmsettings.service", "archiver-vmjoin.service"} <= set(wanted)
    assert "archiver-retention.timer" in disk.listdir(raw_450,
                                                      "/etc/systemd/system/timers.target.wants")
    assert "archiver-data.service" in disk.listdir(raw_450,
                                                   "/etc/systemd/system/local-fs.target.wants")
    masked = disk.listdir(raw_450, "/etc/systemd/system")
    assert {"serial-getty@.service", "e2scrub_reap.service", "systemd-binfmt.service",
            "proc-sys-fs-binfmt_misc.automount"} <= set(masked)


def test_runtime_model_and_config_are_baked_in(raw_450, images, keyring):
    assert disk.read_file(raw_450, "/usr/share/archiver/model") == b"450\n"
    assert disk.read_file(raw_450, "/usr/share/archiver/models.yaml") == \
        (TREE / "models.yaml").read_bytes()
    assert disk.read_file(raw_450, "/etc/archiver/archiver.yaml") == \
        disk.read_file(raw_450, "/usr/share/archiver/defaults/archiver.yaml")
    script = disk.read_file(raw_450, "/usr/bin/archiver").decode()
    assert script.startswith("#!/usr/bin/python3") and "services.cli.main" in script
    folder = images[450][0]
    for name in (artifacts.FIRMWARE_MANIFEST, artifacts.FIRMWARE_SIGNATURE):
        assert disk.read_file(raw_450, f"/usr/share/archiver/{name}") == (folder / name).read_bytes()
    assert disk.read_file(raw_450, "/usr/share/archiver/firmware.pub") == \
        keyring["public"].read_bytes()
    passwd = disk.read_file(raw_450, "/etc/passwd").decode()
    assert re.search(r"^archiver:x:\d+:\d+:[^:]*:/var/lib/archiver:/usr/sbin/nologin$", passwd,
                     re.M), passwd


def test_the_pdf_text_server_is_built_into_the_image_and_listed(raw_450, images):
    path = "/usr/libexec/archiver/pdf-text-server"
    program = disk.read_file(raw_450, path)
    assert program.startswith(b"\x7fELF")
    listed = json.loads((images[450][0] / artifacts.FIRMWARE_MANIFEST).read_bytes())
    assert path.lstrip("/") in listed["files"]
    assert "usr/libexec/archiver" in listed["folders"]


def test_root_logs_in_with_the_build_hosts_key_only(raw_450, keyring):
    assert disk.read_file(raw_450, "/root/.ssh/authorized_keys") == \
        keyring["ssh"].with_suffix(".pub").read_bytes()
    sshd = disk.read_file(raw_450, "/etc/ssh/sshd_config.d/archiver.conf").decode()
    assert "PermitRootLogin prohibit-password" in sshd and "PasswordAuthentication no" in sshd
    assert disk.read_file(raw_450, "/etc/shadow").decode().startswith("root:*:")
    assert not [n for n in disk.listdir(raw_450, "/etc/ssh") if n.startswith("ssh_host_")]
    assert disk.read_file(raw_450, "/etc/machine-id") == b""


def test_no_private_key_inside(raw_450, keyring, tmp_path):
    """Neither the firmware signing key (nor the default development key) nor the build
    host's SSH private key is anywhere in the file system."""
    tree = disk.dump_tree(raw_450, tmp_path / "tree")
    needles = [keyring["private"].read_bytes().splitlines()[1],
               keyring["ssh"].read_bytes().splitlines()[2]]
    development = TREE / "build" / "keys" / keys.PRIVATE_NAME
    if development.exists():
        needles.append(development.read_bytes().splitlines()[1])
    found = subprocess.run(["grep", "-rlF", *sum((["-e", n.decode()] for n in needles), []),
                            str(tree)], capture_output=True, text=True)
    assert found.returncode == 1, found.stdout
    names = subprocess.run(["find", str(tree), "-name", keys.PRIVATE_NAME, "-o", "-name", "id_*",
                            "-o", "-name", "ssh_host_*"], capture_output=True, text=True).stdout
    assert names.split() == [], names
    assert os.listdir(tree / "root" / ".ssh") == ["authorized_keys"]
    assert sorted(os.listdir(tree / "usr" / "share" / "archiver")) == sorted([
        "defaults", "firmware.pub", "manifest.json", "manifest.json.sig", "model", "models.yaml",
        next(p.name for p in (tree / "usr" / "share" / "archiver").glob("*.whl"))])


# --- flashing ---------------------------------------------------------------------------------

def test_flash_creates_the_vm_and_keeps_its_data_disk(images, keyring, tmp_path):
    folder = images[450][0]
    done = flash(folder, "a", tmp_path, keyring, "--json", check=0)
    vm = json.loads(done.stdout)["vm"]
    assert vm["model"] == 450 and vm["memory_mb"] == 1024
    vm_dir = tmp_path / "a"
    assert json.loads((vm_dir / "vm.json").read_text()) == vm
    assert manifest.sha256_file(vm_dir / "disk.qcow2") == \
        json.loads((folder / artifacts.IMAGE_MANIFEST).read_text())["files"]["disk.qcow2"]
    for name in ("vmlinuz", "initrd.img", "cmdline"):
        assert (vm_dir / name).read_bytes() == (folder / name).read_bytes()
    data = json.loads(subprocess.run(["qemu-img", "info", "--output=json",
                                      str(vm_dir / "data.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert data["virtual-size"] == 8 << 30
    data_inode = (vm_dir / "data.qcow2").stat().st_ino
    flash(folder, "a", tmp_path, keyring, check=0)       # flashing again keeps the data disk
    assert (vm_dir / "data.qcow2").stat().st_ino == data_inode


def test_flash_refuses_another_models_image(images, keyring, tmp_path):
    flash(images[450][0], "a", tmp_path, keyring, check=0)
    before = manifest.sha256_file(tmp_path / "a" / "disk.qcow2")
    vm_before = json.loads((tmp_path / "a" / "vm.json").read_text())
    done = flash(images[650][0], "a", tmp_path, keyring, check=1)
    assert "VM a is a model 450 appliance" in done.stderr
    assert "image is for model 650" in done.stderr
    assert manifest.sha256_file(tmp_path / "a" / "disk.qcow2") == before
    # the VM as it was: its model and the firmware it holds (version included)
    vm_after = json.loads((tmp_path / "a" / "vm.json").read_text())
    assert vm_after["model"] == 450 and vm_after == vm_before, (vm_before, vm_after)
    done = flash(images[650][0], "b", tmp_path, keyring, "--model", "450", check=1)
    assert "is an image for model 650, not 450" in done.stderr
    assert not (tmp_path / "b" / "disk.qcow2").exists()


def tampered_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("tamper, reason", [
    ("disk", "image manifest: payload file disk.qcow2 was changed"),
    ("kernel", "image manifest: payload file vmlinuz was changed"),
    ("firmware-manifest", "payload file manifest.json was changed"),
    ("image-manifest", "image manifest: signature does not match the manifest"),
    ("resigned", "image manifest: manifest was signed with key"),
    ("unsigned", "is not a signed image: image.json.sig missing"),
])
def test_flash_refuses_an_image_whose_signature_fails(images, keyring, tmp_path, tamper, reason):
    folder = tampered_copy(images[450][0], tmp_path / "image")
    if tamper == "disk":
        flip_byte(folder / artifacts.DISK, (folder / artifacts.DISK).stat().st_size // 2)
    elif tamper == "kernel":
        flip_byte(folder / artifacts.KERNEL, 4096)
    elif tamper == "firmware-manifest":
        path = folder / artifacts.FIRMWARE_MANIFEST
        path.write_text(path.read_text().replace('"model": 450', '"model": 650'))
    elif tamper == "image-manifest":
        path = folder / artifacts.IMAGE_MANIFEST
        doc = json.loads(path.read_text())
        flip_byte(folder / artifacts.DISK, 1 << 20)
        doc["files"]["disk.qcow2"] = manifest.sha256_file(folder / artifacts.DISK)
        path.write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
    elif tamper == "resigned":
        other, _ = keys.generate(tmp_path / "other")
        flip_byte(folder / artifacts.DISK, 1 << 20)
        artifacts.sign_image(folder, 450, json.loads((folder / "build.json").read_text())[
            "version"], keys.load_private(other))
    elif tamper == "unsigned":
        (folder / artifacts.IMAGE_SIGNATURE).unlink()
    done = flash(folder, "a", tmp_path / "vms", keyring, check=1)
    assert "flash refused: the image's signature fails" in done.stderr
    assert reason in done.stderr, done.stderr
    assert not (tmp_path / "vms" / "a" / "disk.qcow2").exists()


def test_flash_has_no_way_around_the_checks():
    usage = run("-m", "image.flash", "--help", check=0).stdout
    assert not re.search(r"--(force|skip|no-verify|insecure)", usage)
