"""The boot check (image/rootfs/usr/lib/archiver/verify-firmware) on a signed payload like
an image's, without building one: the firmware package in a signed site folder, the key on
a stand-in kernel command line. Nothing of the disk's Python start-up may run before the
check: a .pth file in the payload folder that patches the checker ran inside it (the
verifier was /usr/bin/archiver, site enabled) and the check said "verified"."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from firmware import keys, manifest
from firmware.version import FirmwareVersion

TREE = Path(__file__).resolve().parents[3]
SCRIPT = TREE / "image" / "rootfs" / "usr" / "lib" / "archiver" / "verify-firmware"
SITE = "usr/lib/python3/dist-packages"
DEBIAN_LIBRARIES = "/usr/lib/python3/dist-packages"  # cryptography, yaml (as on the image)
PATCH_THE_CHECKER = ("import sys; sys.path.append({library!r}); import firmware.manifest as m; "
                     "m.unlisted = lambda root, manifest: []\n")


@pytest.fixture
def image(tmp_path):
    """(root, environment of the check): the firmware package in the signed site folder."""
    root = tmp_path / "root"
    shutil.copytree(TREE / "firmware", root / SITE / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__"))
    private, _ = keys.generate(tmp_path / "keys")
    key = keys.load_private(private)
    found = manifest.create(root, [SITE], 450, FirmwareVersion.parse("1.0.0.001"))
    firmware_dir = tmp_path / "firmware"
    firmware_dir.mkdir()
    (firmware_dir / "manifest.json").write_bytes(found.to_bytes())
    (firmware_dir / "manifest.json.sig").write_bytes(manifest.sign(found.to_bytes(), key))
    (firmware_dir / "model").write_text("450\n")
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(f"root=/dev/vda {keys.cmdline_parameter(key.public_key())}\n")
    environment = {"PATH": os.environ["PATH"], "ARCHIVER_FIRMWARE_DIR": str(firmware_dir),
                   "ARCHIVER_ROOT": str(root), "ARCHIVER_KERNEL_CMDLINE": str(cmdline),
                   "ARCHIVER_MODELS": str(TREE / "models.yaml"),
                   "ARCHIVER_FIRMWARE_LIBRARY": f"{root / SITE}:{DEBIAN_LIBRARIES}"}
    return root, environment


def check(environment: dict, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT)], env={**environment, **extra},
                          capture_output=True, text=True, timeout=120)


def with_site_enabled(root: Path, environment: dict) -> subprocess.CompletedProcess:
    """The check as /usr/bin/archiver ran it: a Python whose site start-up reads the site
    folder (.pth files included), as the image's dist-packages is read."""
    code = (f"import site, sys; site.addsitedir({str(root / SITE)!r}); "
            f"sys.path.append({DEBIAN_LIBRARIES!r}); "
            "from firmware.system import boot_check; sys.exit(boot_check())")
    return subprocess.run(["/usr/bin/python3", "-c", code], env=environment,
                          capture_output=True, text=True, timeout=120)


def assert_fails(environment: dict, reason: str) -> None:
    """The boot check fails, saying `reason` and that no archiver service will start."""
    done = check(environment)
    assert done.returncode == 1
    assert reason in done.stdout
    assert "FIRMWARE VERIFICATION FAILED" in done.stdout


def test_a_clean_payload_verifies(image):
    root, environment = image
    done = check(environment)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "manifest: verified" in done.stdout


def test_a_pth_file_that_patches_the_checker_fails_the_check(image):
    """The reviewer's attack (the issue's own example): an unlisted zz-evil.pth."""
    root, environment = image
    evil = root / SITE / "zz-evil.pth"
    evil.write_text(PATCH_THE_CHECKER.format(library=DEBIAN_LIBRARIES))
    assert "manifest: verified" in with_site_enabled(root, environment).stdout  # it works
    assert_fails(environment, f"{SITE}/zz-evil.pth is not in the manifest")


def test_a_changed_payload_file_fails_the_check(image):
    root, environment = image
    module = root / SITE / "firmware" / "compat.py"
    module.write_text(module.read_text() + "\n")
    assert_fails(environment, f"payload file {SITE}/firmware/compat.py was changed")


def test_a_manifest_changed_after_signing_fails_the_check(image):
    _, environment = image
    signed = Path(environment["ARCHIVER_FIRMWARE_DIR"]) / "manifest.json"
    signed.write_bytes(signed.read_bytes().replace(b'"model": 450', b'"model": 650'))
    assert_fails(environment, "signature does not match the manifest")


@pytest.mark.parametrize("variable", ["PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME"])
def test_python_variables_and_start_up_modules_do_not_reach_the_check(image, tmp_path,
                                                                      variable):
    """sitecustomize, usercustomize and PYTHON* variables are not read by the checker."""
    root, environment = image
    evil = tmp_path / "evil"
    evil.mkdir()
    for name in ("sitecustomize.py", "usercustomize.py", "startup.py"):
        (evil / name).write_text("print('EVIL RAN')\n")
    (root / SITE / "sitecustomize.py").write_text("print('EVIL RAN')\n")
    value = str(evil / "startup.py") if variable == "PYTHONSTARTUP" else str(evil)
    done = check(environment, **{variable: value})
    assert "EVIL RAN" not in done.stdout + done.stderr
    assert done.returncode == 1
    assert f"{SITE}/sitecustomize.py is not in the manifest" in done.stdout


def test_the_check_runs_isolated_without_site():
    """The script's Python is started -I -S: its flags, read from the script itself."""
    text = SCRIPT.read_text()
    assert "/usr/bin/python3 -I -S -B -c" in text and "/usr/bin/archiver firmware" not in text


def test_the_check_imports_nothing_it_does_not_need():
    """Under TCG every import costs the boot: YAML and models.yaml (for the model's name),
    argparse and subprocess took a third of a second of the check and checked nothing."""
    code = ("import sys; sys.path[:0] = sys.argv[1].split(':'); import firmware.system; "
            "print(sorted({'yaml', 'argparse', 'subprocess', 'firmware.models'} & "
            "set(sys.modules)))")
    done = subprocess.run(["/usr/bin/python3", "-I", "-S", "-B", "-c", code,
                           f"{TREE}:{DEBIAN_LIBRARIES}"], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
