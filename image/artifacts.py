"""What an image build produces, and how its signature is checked before it is flashed.

build/images/<model>-<version>/ holds:

    disk.qcow2          the system disk: one ext4 file system, no partition table
    vmlinuz, initrd.img the kernel and initrd for direct kernel boot
    cmdline             the kernel command line the image boots with
    manifest.json(.sig) the firmware manifest baked into the image (/usr/share/archiver)
    firmware.pub        the public key baked into the image (for reference; never trusted)
    image.json(.sig)    the image manifest: the SHA-256 of each file above, signed
    build.json          how the build went (times, sizes, base tree); not signed
    build.log           everything the build did

The image manifest is a firmware.manifest.Manifest whose payload is the files of the image
folder, so one Ed25519 key signs both and one verifier checks both. "The signature fails"
when either signature does not verify with the trusted key, when a file's digest differs from
the signed one (the disk image included), or when the two manifests disagree on model or
version. Nothing in this tree skips the check.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from firmware import keys, manifest
from firmware.manifest import Manifest, ManifestError
from firmware.version import FirmwareVersion

DISK = "disk.qcow2"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
CMDLINE = "cmdline"
FIRMWARE_MANIFEST = "manifest.json"
FIRMWARE_SIGNATURE = "manifest.json.sig"
FIRMWARE_PUBLIC_KEY = "firmware.pub"
IMAGE_MANIFEST = "image.json"
IMAGE_SIGNATURE = "image.json.sig"
SIGNED_FILES = (DISK, KERNEL, INITRD, CMDLINE, FIRMWARE_MANIFEST, FIRMWARE_SIGNATURE)
# net.ifnames=0: interfaces are eth0, eth1, ... as /etc/archiver/network.yaml names them.
BOOT_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0"


class ImageError(Exception):
    """An image that must not be flashed; problems says why, in words."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def image_dir_name(model: int, version: FirmwareVersion | str) -> str:
    return f"{model}-{version}"


def sign_image(directory: Path, model: int, version: FirmwareVersion, private_key) -> Manifest:
    """Write image.json and image.json.sig over the image folder's files."""
    found = manifest.create(directory, list(SIGNED_FILES), model, version)
    data = found.to_bytes()
    (directory / IMAGE_MANIFEST).write_bytes(data)
    (directory / IMAGE_SIGNATURE).write_bytes(manifest.sign(data, private_key))
    return found


@dataclass(frozen=True)
class VerifiedImage:
    directory: Path
    model: int
    version: str
    build_time: str
    disk_sha256: str
    firmware_files: int

    def path(self, name: str) -> Path:
        return self.directory / name


def verify_image(directory: Path, public_key_path: Path) -> VerifiedImage:
    """Check an image folder against the trusted public key; raise ImageError saying why not."""
    directory = Path(directory)
    try:
        public_key = keys.load_public(public_key_path)
    except keys.SigningKeyError as exc:
        raise ImageError([f"no trusted key: {exc}"]) from None
    missing = [name for name in (IMAGE_MANIFEST, IMAGE_SIGNATURE) if not (directory / name).is_file()]
    if missing:
        raise ImageError([f"{directory} is not a signed image: {', '.join(missing)} missing"])
    try:
        image = manifest.verify((directory / IMAGE_MANIFEST).read_bytes(),
                                (directory / IMAGE_SIGNATURE).read_bytes(), public_key, directory)
    except ManifestError as exc:
        raise ImageError([f"image manifest: {p}" for p in exc.problems]) from None
    unsigned = [name for name in SIGNED_FILES if name not in image.files]
    if unsigned:
        raise ImageError([f"image manifest does not cover {', '.join(unsigned)}"])
    try:
        firmware = manifest.verify((directory / FIRMWARE_MANIFEST).read_bytes(),
                                   (directory / FIRMWARE_SIGNATURE).read_bytes(), public_key, None)
    except ManifestError as exc:
        raise ImageError([f"firmware manifest: {p}" for p in exc.problems]) from None
    problems = []
    if firmware.model != image.model:
        problems.append(f"firmware manifest is for model {firmware.model}, "
                        f"the image manifest for model {image.model}")
    if firmware.version != image.version:
        problems.append(f"firmware manifest is for firmware {firmware.version}, "
                        f"the image manifest for {image.version}")
    if problems:
        raise ImageError(problems)
    return VerifiedImage(directory=directory, model=image.model, version=image.version,
                         build_time=image.build_time, disk_sha256=image.files[DISK],
                         firmware_files=len(firmware.files))
