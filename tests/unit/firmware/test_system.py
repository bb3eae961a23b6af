"""The boot check (`archiver firmware show`, firmware.system.manifest_state) on a stand-in
image root: the key comes from the kernel command line, never from the disk it checks, and
files the manifest does not list in the payload folders fail it."""
from __future__ import annotations

import pytest

from firmware import keys, manifest
from firmware.system import manifest_state
from firmware.version import FirmwareVersion

VERSION = FirmwareVersion.parse("1.0.0.001")
PACKAGES = "usr/lib/python3/dist-packages"


@pytest.fixture
def image(tmp_path, monkeypatch):
    """An image root signed with the vendor key, its firmware folder, and a kernel command
    line carrying the vendor key (what flash checked)."""
    root = tmp_path / "root"
    firmware_dir = root / "usr" / "share" / "archiver"
    firmware_dir.mkdir(parents=True)
    (root / PACKAGES / "services").mkdir(parents=True)
    (root / PACKAGES / "services" / "__init__.py").write_text("")
    (firmware_dir / "model").write_text("450\n")
    vendor_private, vendor_public = keys.generate(tmp_path / "vendor")
    sign(root, keys.load_private(vendor_private))
    (firmware_dir / "firmware.pub").write_bytes(vendor_public.read_bytes())
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=/dev/vda rw console=ttyS0 " + keys.cmdline_parameter(
        keys.load_public(vendor_public)) + "\n")
    monkeypatch.setenv("ARCHIVER_FIRMWARE_DIR", str(firmware_dir))
    monkeypatch.setenv("ARCHIVER_ROOT", str(root))
    monkeypatch.setenv("ARCHIVER_KERNEL_CMDLINE", str(cmdline))
    monkeypatch.delenv("ARCHIVER_MODEL", raising=False)
    return root, firmware_dir, cmdline, tmp_path


def sign(root, private_key) -> None:
    firmware_dir = root / "usr" / "share" / "archiver"
    found = manifest.create(root, [PACKAGES, "usr/share/archiver/model"], 450, VERSION)
    data = found.to_bytes()
    (firmware_dir / "manifest.json").write_bytes(data)
    (firmware_dir / "manifest.json.sig").write_bytes(manifest.sign(data, private_key))


def test_the_image_verifies_with_the_key_on_the_command_line(image):
    state = manifest_state()
    assert (state.state, state.detail) == ("verified", "2 files verified")


def test_a_disk_re_signed_with_another_key_beside_it_fails(image):
    """The attack on the old check: change the payload, sign a new manifest with one's own
    key and put that key on the disk as firmware.pub."""
    root, firmware_dir, _, tmp_path = image
    (root / PACKAGES / "services" / "__init__.py").write_text("import os; os.system('id')\n")
    attacker_private, attacker_public = keys.generate(tmp_path / "attacker")
    sign(root, keys.load_private(attacker_private))
    (firmware_dir / "firmware.pub").write_bytes(attacker_public.read_bytes())
    state = manifest_state()
    assert state.state == "invalid"
    assert state.detail.startswith("manifest was signed with key ")
    assert keys.key_id(keys.load_public(attacker_public)) in state.detail


@pytest.mark.parametrize("cmdline, words", [
    ("root=/dev/vda rw console=ttyS0\n", "names no archiver.firmware_key: the key on the disk "
                                         "being checked is not trusted"),
    ("archiver.firmware_key=not-a-key\n", "archiver.firmware_key is no Ed25519 public key"),
    ("archiver.firmware_key=AAAA\n", "archiver.firmware_key is no Ed25519 public key"),
    ("archiver.firmware_key= quiet\n", "archiver.firmware_key is no Ed25519 public key"),
])
def test_no_usable_key_on_the_command_line_fails(image, cmdline, words):
    image[2].write_text(cmdline)
    state = manifest_state()
    assert state.state == "invalid" and words in state.detail, state


def test_two_keys_on_the_command_line_fail(image):
    _, _, cmdline, tmp_path = image
    _, other = keys.generate(tmp_path / "other")
    cmdline.write_text(cmdline.read_text().strip() + " " +
                       keys.cmdline_parameter(keys.load_public(other)) + "\n")
    state = manifest_state()
    assert state.state == "invalid" and "names archiver.firmware_key 2 times" in state.detail


def test_an_unreadable_command_line_fails(image):
    image[2].unlink()
    state = manifest_state()
    assert state.state == "invalid" and "cannot read the kernel command line" in state.detail


@pytest.mark.parametrize("added", ["evil.pth", "services/extra.py", "__pycache__/x.pyc"])
def test_a_file_added_to_dist_packages_fails(image, added):
    root = image[0]
    path = root / PACKAGES / added
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("import os\n")
    state = manifest_state()
    assert state.state == "invalid"
    assert state.detail == (f"{PACKAGES}/{added} is not in the manifest (an unlisted file in "
                            f"the payload folder {PACKAGES})")
