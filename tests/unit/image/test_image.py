"""The image build's logic without building an image: package lists, the base tree's cache
key, the host's sources, installing a wheel, signing and checking an image folder, and
what flashing refuses (tests/integration/image/test_image.py builds and boots real images)."""
from __future__ import annotations

import json
import subprocess
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


@pytest.fixture
def signed_image(tmp_path):
    """A small stand-in for an image folder, signed like a real one."""
    private, public = keys.generate(tmp_path / "keys")
    key = keys.load_private(private)
    folder = tmp_path / "450-1.0.0.001"
    folder.mkdir()
    for name in (artifacts.DISK, artifacts.KERNEL, artifacts.INITRD):
        (folder / name).write_bytes(name.encode() * 100)
    (folder / artifacts.CMDLINE).write_text(artifacts.BOOT_CMDLINE + "\n")
    from firmware import manifest
    payload = tmp_path / "payload"
    (payload / "usr").mkdir(parents=True)
    (payload / "usr" / "model").write_text("450\n")
    firmware = manifest.create(payload, ["usr/model"], 450, VERSION).to_bytes()
    (folder / artifacts.FIRMWARE_MANIFEST).write_bytes(firmware)
    (folder / artifacts.FIRMWARE_SIGNATURE).write_bytes(manifest.sign(firmware, key))
    artifacts.sign_image(folder, 450, VERSION, key)
    return folder, public, key


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
