"""archiver-data.service's mount-data: the data disk is found by its label and mounted on
/var/lib/archiver; two disks of that label are refused, not guessed between.

Real ext4 file systems on loop devices, the script run in a mount namespace of its own
(unshare(1), needs root) with a tmpfs on /var/lib, so nothing is mounted for the host. The
script is run with a label of the test's own: a disk of the host's own is never counted."""
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).resolve().parents[3] / "image/rootfs/usr/lib/archiver/mount-data"


@pytest.fixture
def label():
    return f"t-{uuid.uuid4().hex[:10]}"  # ext4 labels are at most 16 bytes


@pytest.fixture
def disks(tmp_path):
    """make(label) -> a loop device holding a fresh ext4 of that label."""
    attached = []

    def make(label: str) -> str:
        image = tmp_path / f"disk{len(attached)}.img"
        with open(image, "wb") as file:
            file.truncate(16 * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(image)], check=True)
        device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                                capture_output=True, text=True).stdout.strip()
        attached.append(device)
        return device

    yield make
    for device in attached:
        subprocess.run(["losetup", "--detach", device], check=False)


def mount_data(tmp_path: Path, label: str, before: str = "true"
               ) -> tuple[subprocess.CompletedProcess, str]:
    """Run mount-data (for `label`) in a private mount namespace, after the shell command
    `before` there; (its run, what is mounted on /var/lib/archiver there afterwards: a
    device, or "")."""
    script = tmp_path / "mount-data"
    script.write_text(SCRIPT.read_text().replace("label=archiver-data", f"label={label}", 1))
    inside = (f"mount -t tmpfs tmpfs /var/lib && {before} && sh {script}; status=$?; "
              "echo MOUNTED=$(findmnt -n -o SOURCE /var/lib/archiver); exit $status")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inside],
                          capture_output=True, text=True, timeout=60)
    mounted = done.stdout.rsplit("MOUNTED=", 1)[1].strip()
    return done, mounted


def test_the_one_disk_of_the_label_is_mounted(tmp_path, label, disks):
    device = disks(label)
    disks("other-label")
    done, mounted = mount_data(tmp_path, label)
    assert done.returncode == 0, done.stdout + done.stderr
    assert mounted == device
    assert f"data disk {device} mounted on /var/lib/archiver" in done.stdout


def test_two_disks_of_the_label_are_refused_and_neither_is_mounted(tmp_path, label, disks):
    first, second = disks(label), disks(label)
    done, mounted = mount_data(tmp_path, label)
    assert done.returncode == 1
    assert mounted == ""
    assert f"more than one disk is labelled {label}" in done.stdout
    assert first in done.stdout and second in done.stdout


def test_without_a_disk_of_the_label_the_archive_stays_on_the_system_disk(tmp_path, label):
    done, mounted = mount_data(tmp_path, label)
    assert done.returncode == 0 and mounted == ""
    assert f"no data disk (LABEL={label})" in done.stdout


def test_a_data_disk_mounted_elsewhere_is_named_not_called_damaged(tmp_path, label, disks):
    """fsck refuses a mounted file system (exit 8): that read as "errors fsck could not
    repair" on a healthy disk. The place it is mounted is named, and nothing mounted."""
    device = disks(label)
    elsewhere = tmp_path / "mnt"
    elsewhere.mkdir()
    done, mounted = mount_data(tmp_path, label, before=f"mount {device} {elsewhere}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "could not repair" not in done.stdout
    assert f"data disk {device} is mounted on {elsewhere}" in done.stdout
    assert mounted == ""
