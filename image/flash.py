"""Flash an image onto a virtual appliance: `python -m image.flash --model 450 --vm a`
(`make flash MODEL=450 VM=a`).

A virtual appliance is a folder build/vms/<vm>/:

    vm.json             name, the model it was created as (it keeps it), its size from
                        models.yaml, the boot files and what firmware it carries
    disk.qcow2          the system disk: a copy of the image's disk, replaced by every flash
    vmlinuz, initrd.img, cmdline   the image's boot files (they must match the system disk)
    data.qcow2          the data disk (ext4 labelled archiver-data, models.yaml vm.disk_gb,
                        sparse); made when missing, kept across flashes like a real box's
                        disks (--reset-data makes it anew)

Before anything is written the image's manifests must verify against the trusted key
(image.json and manifest.json signatures; image/artifacts.py), and the image must be for the
VM's model and no older than the firmware the VM holds (unless --allow-downgrade). Each file
is then read once: copied beside its destination while it is hashed, and put in place only
when every copy matches the digest image.json signs (the verified manifest is the only
source of digests: nothing is read again, so a file swapped meanwhile is never flashed). The
command line must carry the trusted key, for the boot check. There is no option to skip a
check. Exit status: 0 flashed, 1 refused, 2 no such image.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from firmware import keys
from firmware.errors import ArchiverError
from firmware.models import load_models
from firmware.version import FirmwareVersion, current_version

from . import artifacts

TREE = Path(__file__).resolve().parent.parent
BUILD = TREE / "build"
VM_FILE = "vm.json"
SYSTEM_DISK = "disk.qcow2"
DATA_DISK = "data.qcow2"
DATA_LABEL = "archiver-data"
BOOT_FILES = (artifacts.KERNEL, artifacts.INITRD, artifacts.CMDLINE)


class FlashRefused(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def default_public_key() -> Path:
    return keys.DEFAULT_DIR / keys.PUBLIC_NAME


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_vm(vm_dir: Path) -> dict | None:
    path = vm_dir / VM_FILE
    if not path.exists():
        return None
    try:
        vm = json.loads(path.read_text())
        int(vm["model"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FlashRefused([f"{path} is not a VM description ({exc})"]) from None
    return vm


def make_data_disk(path: Path, size_gb: int) -> None:
    """An empty ext4 labelled archiver-data of size_gb GiB, as a sparse qcow2."""
    with tempfile.TemporaryDirectory(prefix="archiver-data-", dir=path.parent) as scratch:
        raw = Path(scratch) / "data.raw"
        with open(raw, "wb") as f:
            f.truncate(size_gb << 30)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", DATA_LABEL, "-E", "root_owner=0:0",
                        str(raw)], check=True, capture_output=True)
        partial = path.with_name(path.name + ".partial")
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                        str(partial)], check=True, capture_output=True)
        os.replace(partial, path)


def copy_hashing(source: Path, target: Path) -> str:
    """Copy `source` to `target` (made anew, synced), reading it once; returns the SHA-256
    of exactly the bytes written."""
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(target, "wb") as writer:
        for block in iter(lambda: reader.read(1 << 20), b""):
            digest.update(block)
            writer.write(block)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest()


def copy_signed(image: artifacts.VerifiedImage, copies: dict[str, str], vm_dir: Path) -> dict:
    """Copy each image file (name -> name in the VM folder) beside its destination as
    .partial, checking what was copied against the signed digest; returns name -> partial
    path. Removes what it wrote and raises FlashRefused when any copy differs."""
    partials, problems = {}, []
    try:
        for name, target in copies.items():
            partial = vm_dir / (target + ".partial")
            partials[name] = partial
            have = copy_hashing(image.path(name), partial)
            want = image.files[name]
            if have != want:
                problems.append(f"the image's signature fails: image manifest: payload file "
                                f"{name} was changed (sha256 {have[:16]}..., signed "
                                f"{want[:16]}...)")
        if problems:
            raise FlashRefused(problems)
    except BaseException:
        for partial in partials.values():
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        raise
    return partials


def check_downgrade(vm: dict | None, image: artifacts.VerifiedImage, vm_name: str,
                    allow_downgrade: bool) -> None:
    """Refuse firmware older than the VM holds, unless allowed."""
    held = ((vm or {}).get("firmware") or {}).get("version")
    if held is None or allow_downgrade:
        return
    if FirmwareVersion.parse(image.version) < FirmwareVersion.parse(held):
        raise FlashRefused([f"VM {vm_name} holds firmware {held}, newer than this image's "
                            f"{image.version}: a downgrade is refused unless "
                            "--allow-downgrade is given"])


def flash(image_dir: Path, vm_name: str, *, vms_dir: Path = BUILD / "vms",
          public_key: Path | None = None, model: int | None = None,
          reset_data: bool = False, allow_downgrade: bool = False) -> dict:
    """Verify the image, check the VM's model and firmware version, write the system disk
    and boot files; returns the VM's description (vm.json). Raises FlashRefused."""
    image_dir = Path(image_dir)
    public_key = public_key or default_public_key()
    try:
        image = artifacts.open_image(image_dir, public_key)
    except artifacts.ImageError as exc:
        raise FlashRefused([f"the image's signature fails: {p}" for p in exc.problems]) from None
    if model is not None and image.model != model:
        raise FlashRefused([f"{image_dir} is an image for model {image.model}, not {model}"])
    if not vm_name or "/" in vm_name or vm_name.startswith("."):
        raise FlashRefused([f"{vm_name!r} is not a VM name"])
    vm_dir = vms_dir / vm_name
    vm_dir.mkdir(parents=True, exist_ok=True)
    with open(vm_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        vm = load_vm(vm_dir)
        if vm is not None and int(vm["model"]) != image.model:
            raise FlashRefused([f"VM {vm_name} is a model {vm['model']} appliance (it keeps the "
                                f"model it was created with); this image is for model "
                                f"{image.model}"])
        check_downgrade(vm, image, vm_name, allow_downgrade)
        profile = load_models().get(image.model)
        if vm is None:
            vm = {"name": vm_name, "model": image.model, "created": now(),
                  "vcpus": profile.vm.vcpus, "memory_mb": profile.vm.memory_mb,
                  "disk_gb": profile.vm.disk_gb}
        copies = {artifacts.DISK: SYSTEM_DISK, **{name: name for name in BOOT_FILES}}
        partials = copy_signed(image, copies, vm_dir)
        try:
            # Our own copy, checked: the command line the VM boots with.
            cmdline = partials[artifacts.CMDLINE].read_text().strip()
            artifacts.check_cmdline(cmdline, image.public_key)
        except artifacts.ImageError as exc:
            for partial in partials.values():
                partial.unlink()
            raise FlashRefused(exc.problems) from None
        for name, partial in partials.items():
            os.replace(partial, vm_dir / copies[name])
        data_disk = vm_dir / DATA_DISK
        if reset_data or not data_disk.exists():
            make_data_disk(data_disk, int(vm["disk_gb"]))
            vm["data_created"] = now()
        vm.update({
            "system_disk": SYSTEM_DISK, "data_disk": DATA_DISK,
            "kernel": artifacts.KERNEL, "initrd": artifacts.INITRD, "cmdline": cmdline,
            "firmware": {"model": image.model, "version": image.version,
                         "build_time": image.build_time, "disk_sha256": image.disk_sha256,
                         "image": str(image_dir.resolve()), "flashed": now()},
        })
        partial = vm_dir / (VM_FILE + ".partial")
        partial.write_text(json.dumps(vm, indent=1) + "\n")
        os.replace(partial, vm_dir / VM_FILE)
    return vm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image.flash",
                                     description="flash a signed image onto a virtual appliance")
    parser.add_argument("image", nargs="?", type=Path,
                        help="image folder (default: build/images/MODEL-VERSION)")
    parser.add_argument("--model", type=int, help="the model of the image (default 450 when "
                        "no image folder is given); refused if the image is another model's")
    parser.add_argument("--vm", default="a", help="the virtual appliance (default a)")
    parser.add_argument("--vms-dir", type=Path, default=BUILD / "vms")
    parser.add_argument("--images-dir", type=Path, default=BUILD / "images")
    parser.add_argument("--pubkey", type=Path, default=None,
                        help="the trusted public key (default build/keys/firmware-signing.pub)")
    parser.add_argument("--reset-data", action="store_true",
                        help="make the VM's data disk anew (the archive is lost)")
    parser.add_argument("--allow-downgrade", action="store_true",
                        help="flash firmware older than the VM holds (refused otherwise)")
    parser.add_argument("--json", action="store_true", help="print vm.json when done")
    args = parser.parse_args(argv)
    image_dir = args.image
    if image_dir is None:
        model = args.model or 450
        image_dir = args.images_dir / artifacts.image_dir_name(model, current_version())
    if not image_dir.is_dir():
        print(f"flash: no image at {image_dir} (make image MODEL={args.model or 450})",
              file=sys.stderr)
        return 2
    try:
        vm = flash(image_dir, args.vm, vms_dir=args.vms_dir, public_key=args.pubkey,
                   model=args.model, reset_data=args.reset_data,
                   allow_downgrade=args.allow_downgrade)
    except FlashRefused as exc:
        if args.json:
            print(json.dumps({"flashed": False, "problems": exc.problems}))
        print("flash refused: " + "\n  ".join(exc.problems), file=sys.stderr)
        return 1
    except (ArchiverError, OSError, subprocess.CalledProcessError) as exc:
        print(f"flash failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"flashed": True, "vm": vm}))
    else:
        firmware = vm["firmware"]
        print(f"flashed model {firmware['model']} firmware {firmware['version']} onto VM "
              f"{vm['name']} ({args.vms_dir / vm['name'] / SYSTEM_DISK})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
