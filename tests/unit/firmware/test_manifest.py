import json

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


def test_every_missing_file_is_named(signed):
    root, data, signature, public, _ = signed
    (root / "app.whl").unlink()
    (root / "etc" / "units.txt").unlink()
    assert problems(data, signature, public, root) == [
        "payload file app.whl is missing", "payload file etc/units.txt is missing"]


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
