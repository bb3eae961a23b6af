"""`archiver firmware ...` run as a user runs it, in its own process."""
import json
import shutil

import pytest

from firmware import keys
from tests.conftest import TREE

pytestmark = pytest.mark.integration


def test_models_lists_every_profile_as_json(archiver):
    done = archiver("firmware", "models", "--json", check=0)
    profiles = [json.loads(line) for line in done.stdout.splitlines()]
    assert [p["model"] for p in profiles] == [150, 350, 450, 650, 850, 950, 1050]
    assert profiles[2]["features"] == {"mirroring": True, "custom_branding": False}


def test_show_reports_a_development_tree(archiver):
    info = json.loads(archiver("firmware", "show", "--json", check=0).stdout)
    assert info == {"model": 450, "name": "Archiver 450",
                    "version": (TREE / "firmware" / "VERSION").read_text().strip(),
                    "manifest": "absent",
                    "manifest_detail": "no firmware manifest (a development tree, not an image)"}


@pytest.mark.parametrize("model, version, code, words", [
    (450, "1.0.0.001", 0, "same model 450 and firmware 1.0.0.001"),
    (450, "1.0.0.002", 1, "the peer runs firmware 1.0.0.002 but this system runs 1.0.0.001"),
    (650, "1.0.0.001", 1, "the peer is a model 650 but this system is a model 450"),
    (350, "1.0.0.001", 1, "the peer is a model 350, which cannot mirror"),
])
def test_check_peer_exits_with_the_verdict_and_prints_the_reason(archiver, model, version, code, words):
    done = archiver("firmware", "check-peer", "--model", model, "--version", version,
                    env={"ARCHIVER_FIRMWARE_VERSION": "1.0.0.001"}, check=code)
    assert words in done.stdout


def test_check_peer_refuses_a_malformed_version_clearly(archiver):
    done = archiver("firmware", "check-peer", "--model", 450, "--version", "1.0", check=2)
    assert "malformed firmware version '1.0'" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_models_file_is_reported_without_a_traceback(archiver, tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - model: 450\n")
    done = archiver("firmware", "models", env={"ARCHIVER_MODELS": str(bad)}, check=2)
    assert f"{bad}: model 450: key 'name': expected a string (the key is missing)" in done.stderr


@pytest.fixture
def image_root(archiver, tmp_path):
    """A fake image root: payload files plus the baked firmware folder, signed."""
    root = tmp_path / "root"
    firmware_dir = root / "usr" / "share" / "archiver"
    firmware_dir.mkdir(parents=True)
    (root / "opt").mkdir()
    (root / "opt" / "archiver.whl").write_bytes(b"payload")
    (firmware_dir / "model").write_text("450\n")
    archiver("firmware", "keygen", "--dir", tmp_path / "keys", check=0)
    archiver("firmware", "sign", "--key", tmp_path / "keys" / "firmware-signing.key",
             "--model", 450, "--root", root, "-o", firmware_dir / "manifest.json",
             "opt", "usr/share/archiver/model", check=0)
    shutil.copy(tmp_path / "keys" / "firmware-signing.pub", firmware_dir / "firmware.pub")
    # The kernel command line flash checked: it carries the key the boot check trusts.
    public = keys.load_public(tmp_path / "keys" / "firmware-signing.pub")
    (tmp_path / "cmdline").write_text(f"root=/dev/vda rw {keys.cmdline_parameter(public)}\n")
    return root, firmware_dir, tmp_path / "keys"


def test_sign_then_verify_then_tamper(archiver, image_root):
    root, firmware_dir, keydir = image_root
    manifest, pub = firmware_dir / "manifest.json", keydir / "firmware-signing.pub"
    done = archiver("firmware", "verify", manifest, "--pubkey", pub, "--root", root, check=0)
    assert "valid: model 450, firmware 1.0.0.001, 2 payload files checked" in done.stdout
    (root / "opt" / "archiver.whl").write_bytes(b"evil payload")
    done = archiver("firmware", "verify", manifest, "--pubkey", pub, "--root", root, "--json", check=1)
    report = json.loads(done.stdout)
    assert not report["valid"]
    assert report["problems"][0].startswith("payload file opt/archiver.whl was changed")


def test_show_verifies_the_baked_manifest_and_reports_tampering(archiver, image_root):
    root, firmware_dir, keydir = image_root
    env = {"ARCHIVER_FIRMWARE_DIR": str(firmware_dir),
           "ARCHIVER_KERNEL_CMDLINE": str(keydir.parent / "cmdline")}
    # ARCHIVER_ROOT stands in for "/", which the manifest's payload paths are relative to.
    done = archiver("firmware", "show", "--json", env={**env, "ARCHIVER_ROOT": str(root)}, check=0)
    assert json.loads(done.stdout)["manifest"] == "verified"
    (root / "opt" / "archiver.whl").unlink()
    done = archiver("firmware", "show", "--json", env={**env, "ARCHIVER_ROOT": str(root)}, check=1)
    info = json.loads(done.stdout)
    assert info["manifest"] == "invalid"
    assert info["manifest_detail"] == "payload file opt/archiver.whl is missing"


def test_show_fails_on_a_file_added_to_a_payload_folder(archiver, image_root):
    root, firmware_dir, keydir = image_root
    env = {"ARCHIVER_FIRMWARE_DIR": str(firmware_dir), "ARCHIVER_ROOT": str(root),
           "ARCHIVER_KERNEL_CMDLINE": str(keydir.parent / "cmdline")}
    (root / "opt" / "evil.pth").write_text("import os\n")
    done = archiver("firmware", "show", env=env, check=1)
    assert "manifest: invalid: opt/evil.pth is not in the manifest (an unlisted file in the " \
        "payload folder opt)" in done.stdout


def test_sign_refuses_an_unknown_model(archiver, tmp_path):
    (tmp_path / "f").write_text("x")
    archiver("firmware", "keygen", "--dir", tmp_path / "keys", check=0)
    done = archiver("firmware", "sign", "--key", tmp_path / "keys" / "firmware-signing.key",
                    "--model", 451, "--root", tmp_path, "-o", tmp_path / "m.json", "f", check=2)
    assert "unknown model 451" in done.stderr
