"""The image build's logic without building an image: package lists, the base tree's cache
key, the host's sources, installing a wheel, signing and checking an image folder, and
what flashing refuses (tests/integration/image/test_image.py builds and boots real images)."""
from __future__ import annotations

import builtins
import collections
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from firmware import keys
from firmware.version import FirmwareVersion
from image import artifacts, base, flash, wheel

TREE = Path(__file__).resolve().parents[3]
VERSION = FirmwareVersion.parse("1.0.0.001")


def test_package_lists_are_shared_with_the_makefile():
    runtime = base.read_package_list(base.RUNTIME_PACKAGES)
    assert "python3-xapian" in runtime and all(" " not in p for p in runtime)
    make = subprocess.run(["make", "-s", "-p", "-n", "help"], cwd=TREE, capture_output=True,
                          text=True).stdout
    line = next(l for l in make.splitlines() if l.startswith("DEBIAN_RUNTIME :="))
    assert line.split(":=", 1)[1].split() == runtime
    assert {"linux-image-cloud-amd64", "systemd-sysv", "openssh-server"} <= set(base.packages())


def recipe(**changes):
    fields = dict(suite="bookworm", architecture="amd64", packages=("python3", "systemd"),
                  sources=(("debian.sources", "Types: deb\nSuites: bookworm\n"),),
                  apt_options=())
    fields.update(changes)
    return base.BaseRecipe(**fields)


def test_base_cache_key_follows_packages_and_sources_only():
    key = recipe().digest()
    assert recipe().digest() == key
    assert recipe(packages=("python3", "systemd", "udev")).digest() != key
    assert recipe(sources=(("debian.sources", "Types: deb\nSuites: trixie\n"),)).digest() != key
    assert recipe(apt_options=('Acquire::http::Proxy "x";',)).digest() == key
    command = recipe().mmdebstrap_command(Path("/out.tar"), [Path("/etc/apt/x.sources")])
    assert command[-3:] == ["bookworm", "/out.tar", "/etc/apt/x.sources"]
    assert not any("http" in part for part in command)   # no mirror named


def test_host_sources_are_the_files_naming_the_suite(tmp_path, monkeypatch):
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    (folder / "debian.sources").write_text("Types: deb\nURIs: http://m/debian\n"
                                           "Suites: bookworm bookworm-updates\n")
    (folder / "old.list").write_text("# deb http://m/debian bookworm main\n")
    (folder / "other.list").write_text("deb http://m/other trixie main\n")
    (folder / "x.list.disabled").write_text("deb http://m/x bookworm main\n")
    monkeypatch.setattr(base, "HOST_SOURCES", [tmp_path / "sources.list", folder])
    assert base.host_sources() == [folder / "debian.sources"]
    (folder / "debian.sources").unlink()
    with pytest.raises(base.BaseError, match="no apt sources for bookworm"):
        base.host_sources()


def test_wheel_installs_into_dist_packages_with_its_console_script(tmp_path):
    made = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(made, "w") as archive:
        archive.writestr("demo/__init__.py", "")
        archive.writestr("demo/cli.py", "def main():\n    return 0\n")
        archive.writestr("demo-1.0.dist-info/METADATA", "Name: demo\n")
        archive.writestr("demo-1.0.dist-info/entry_points.txt",
                         "[console_scripts]\ndemo = demo.cli:main\n")
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    installed = wheel.install_wheel(made, root)
    assert "usr/lib/python3/dist-packages/demo/cli.py" in installed
    script = root / "usr" / "bin" / "demo"
    assert "usr/bin/demo" in installed and script.stat().st_mode & 0o111
    assert script.read_text().startswith("#!/usr/bin/python3\n")
    assert "from demo.cli import main" in script.read_text()


def make_image(tmp_path, key, version=VERSION, cmdline: str | None = None):
    """A small stand-in for an image folder of `version`, signed like a real one."""
    folder = tmp_path / f"450-{version}"
    folder.mkdir(parents=True)
    for name in (artifacts.DISK, artifacts.KERNEL, artifacts.INITRD):
        (folder / name).write_bytes(f"{name} of {version} ".encode() * 100)
    if cmdline is None:
        cmdline = artifacts.boot_cmdline(key.public_key())
    (folder / artifacts.CMDLINE).write_text(cmdline + "\n")
    from firmware import manifest
    payload = tmp_path / f"payload-{version}"
    (payload / "usr").mkdir(parents=True)
    (payload / "usr" / "model").write_text("450\n")
    firmware = manifest.create(payload, ["usr/model"], 450, version).to_bytes()
    (folder / artifacts.FIRMWARE_MANIFEST).write_bytes(firmware)
    (folder / artifacts.FIRMWARE_SIGNATURE).write_bytes(manifest.sign(firmware, key))
    artifacts.sign_image(folder, 450, version, key)
    return folder


@pytest.fixture
def signed_image(tmp_path):
    private, public = keys.generate(tmp_path / "keys")
    key = keys.load_private(private)
    return make_image(tmp_path, key), public, key


def test_a_signed_image_verifies(signed_image):
    folder, public, _ = signed_image
    verified = artifacts.verify_image(folder, public)
    assert (verified.model, verified.version, verified.firmware_files) == (450, "1.0.0.001", 1)


def test_every_file_of_the_image_is_signed(signed_image):
    folder, public, _ = signed_image
    for name in artifacts.SIGNED_FILES:
        path = folder / name
        original = path.read_bytes()
        path.write_bytes(original + b" ")
        with pytest.raises(artifacts.ImageError, match=f"payload file {name} was changed"):
            artifacts.verify_image(folder, public)
        path.write_bytes(original)


def test_manifests_of_two_models_in_one_image_are_refused(signed_image):
    folder, public, key = signed_image
    from firmware import manifest
    other = json.loads((folder / artifacts.FIRMWARE_MANIFEST).read_text())
    other["model"] = 650
    data = (json.dumps(other, sort_keys=True, indent=1) + "\n").encode()
    (folder / artifacts.FIRMWARE_MANIFEST).write_bytes(data)
    (folder / artifacts.FIRMWARE_SIGNATURE).write_bytes(manifest.sign(data, key))
    artifacts.sign_image(folder, 450, VERSION, key)
    with pytest.raises(artifacts.ImageError, match="firmware manifest is for model 650"):
        artifacts.verify_image(folder, public)


def test_flash_refuses_before_writing_anything(signed_image, tmp_path):
    folder, public, _ = signed_image
    other_public = keys.generate(tmp_path / "other")[1]
    with pytest.raises(flash.FlashRefused, match="signature fails: image manifest: manifest "
                                                 "was signed with key"):
        flash.flash(folder, "a", vms_dir=tmp_path / "vms", public_key=other_public)
    vm_dir = tmp_path / "vms" / "b"
    vm_dir.mkdir(parents=True)
    (vm_dir / "vm.json").write_text(json.dumps({"name": "b", "model": 650}))
    with pytest.raises(flash.FlashRefused, match="VM b is a model 650 appliance"):
        flash.flash(folder, "b", vms_dir=tmp_path / "vms", public_key=public)
    with pytest.raises(flash.FlashRefused, match="an image for model 450, not 650"):
        flash.flash(folder, "c", vms_dir=tmp_path / "vms", public_key=public, model=650)
    assert not list((tmp_path / "vms").rglob("*.qcow2"))


# -- flashing reads each file once, and only the verified manifest's digests count --------

class OpenedFiles:
    """Records every open() of a file in `folder` (builtins and io, which pathlib uses), and
    runs `before(n)` before the n-th such open."""

    def __init__(self, monkeypatch, folder: Path, before=lambda n: None):
        self.folder, self.before, self.names = folder.resolve(), before, []
        real = io.open

        def opening(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and \
                    Path(file).resolve().parent == self.folder:
                self.names.append(Path(file).name)
                self.before(len(self.names))
            return real(file, *args, **kwargs)
        monkeypatch.setattr(io, "open", opening)
        monkeypatch.setattr(builtins, "open", opening)


def test_flash_reads_each_image_file_once(signed_image, tmp_path, monkeypatch):
    folder, public, _ = signed_image
    opened = OpenedFiles(monkeypatch, folder)
    flash.flash(folder, "a", vms_dir=tmp_path / "vms", public_key=public)
    assert collections.Counter(opened.names) == collections.Counter(
        [*artifacts.SIGNED_FILES, artifacts.IMAGE_MANIFEST, artifacts.IMAGE_SIGNATURE])


def swap_in_evil_kernel(folder: Path) -> bytes:
    """What an attacker with write access to the image folder does between two reads: a
    new kernel, and image.json saying its digest (the signature cannot follow)."""
    evil = b"evil kernel " * 100
    (folder / artifacts.KERNEL).write_bytes(evil)
    doc = json.loads((folder / artifacts.IMAGE_MANIFEST).read_bytes())
    doc["files"][artifacts.KERNEL] = hashlib.sha256(evil).hexdigest()
    (folder / artifacts.IMAGE_MANIFEST).write_text(json.dumps(doc, sort_keys=True, indent=1))
    return evil


@pytest.mark.parametrize("moment", range(1, 17))
def test_a_file_swapped_at_any_moment_of_a_flash_is_never_flashed(signed_image, tmp_path,
                                                                   monkeypatch, moment):
    folder, public, _ = signed_image
    signed_kernel = (folder / artifacts.KERNEL).read_bytes()
    swapped = []

    def before(n):
        if n == moment:
            swapped.append(swap_in_evil_kernel(folder))
    OpenedFiles(monkeypatch, folder, before)
    vm_dir = tmp_path / "vms" / "a"
    try:
        flash.flash(folder, "a", vms_dir=tmp_path / "vms", public_key=public)
    except flash.FlashRefused as refused:
        assert "image manifest: payload file vmlinuz was changed" in str(refused) or \
            "signature does not match the manifest" in str(refused), refused
        assert not (vm_dir / "vmlinuz").exists() and not (vm_dir / "disk.qcow2").exists()
        assert not list(vm_dir.glob("*.partial"))
    else:
        assert (vm_dir / "vmlinuz").read_bytes() == signed_kernel
    if moment <= 6:     # the flash opens 6 files; a swap after the last changes nothing
        assert swapped


def later_image(tmp_path, key, version: str, **options) -> Path:
    return make_image(tmp_path, key, FirmwareVersion.parse(version), **options)


def test_older_firmware_than_the_vm_holds_is_refused_unless_allowed(signed_image, tmp_path):
    older, public, key = signed_image
    newer = later_image(tmp_path, key, "1.0.0.002")
    vms = tmp_path / "vms"
    assert flash.flash(older, "a", vms_dir=vms, public_key=public)["firmware"]["version"] \
        == "1.0.0.001"
    assert flash.flash(newer, "a", vms_dir=vms, public_key=public)["firmware"]["version"] \
        == "1.0.0.002"                                                        # an upgrade
    assert flash.flash(newer, "a", vms_dir=vms, public_key=public)["firmware"]["version"] \
        == "1.0.0.002"                                                        # the same again
    disk = (vms / "a" / "disk.qcow2").read_bytes()
    with pytest.raises(flash.FlashRefused) as refused:
        flash.flash(older, "a", vms_dir=vms, public_key=public)
    assert str(refused.value) == ("VM a holds firmware 1.0.0.002, newer than this image's "
                                  "1.0.0.001: a downgrade is refused unless --allow-downgrade "
                                  "is given")
    assert (vms / "a" / "disk.qcow2").read_bytes() == disk
    assert flash.load_vm(vms / "a")["firmware"]["version"] == "1.0.0.002"
    vm = flash.flash(older, "a", vms_dir=vms, public_key=public, allow_downgrade=True)
    assert vm["firmware"]["version"] == "1.0.0.001"
    assert (vms / "a" / "disk.qcow2").read_bytes() == (older / artifacts.DISK).read_bytes()


@pytest.mark.parametrize("version", ["1.0.0.001", "0.9.9.999", "0.0.0.000"])
def test_the_flash_command_refuses_a_downgrade_and_says_how_to_force_it(signed_image,
                                                                        tmp_path, version):
    current, public, key = signed_image
    older = current if version == "1.0.0.001" else later_image(tmp_path, key, version)
    newer = later_image(tmp_path, key, "1.0.1.000")
    vms = tmp_path / "vms"
    command = [sys.executable, "-m", "image.flash", "--vm", "a", "--vms-dir", str(vms),
               "--pubkey", str(public)]
    assert subprocess.run([*command, str(newer)], cwd=TREE).returncode == 0
    refused = subprocess.run([*command, str(older)], cwd=TREE, capture_output=True, text=True)
    assert refused.returncode == 1
    assert f"holds firmware 1.0.1.000, newer than this image's {version}" in refused.stderr
    assert "--allow-downgrade" in refused.stderr
    forced = subprocess.run([*command, "--allow-downgrade", str(older)], cwd=TREE,
                            capture_output=True, text=True)
    assert forced.returncode == 0, forced.stderr
    assert f"firmware {version}" in forced.stdout


def test_an_image_whose_command_line_carries_no_or_another_key_is_refused(tmp_path):
    private, public = keys.generate(tmp_path / "keys")
    key = keys.load_private(private)
    other = keys.load_private(keys.generate(tmp_path / "other")[0])
    cases = {"no-key": (artifacts.BOOT_CMDLINE, "names no archiver.firmware_key"),
             "other-key": (artifacts.boot_cmdline(other.public_key()),
                           f"names the firmware key {keys.key_id(other.public_key())}")}
    for name, (cmdline, words) in cases.items():
        folder = make_image(tmp_path / name, key, cmdline=cmdline)
        with pytest.raises(artifacts.ImageError, match=words):
            artifacts.verify_image(folder, public)
        with pytest.raises(flash.FlashRefused, match=words):
            flash.flash(folder, name, vms_dir=tmp_path / "vms", public_key=public)
        assert not list((tmp_path / "vms" / name).iterdir()) or \
            sorted(p.name for p in (tmp_path / "vms" / name).iterdir()) == [".lock"]
