"""What an image build produces, and how its signature is checked before it is flashed.

build/images/<model>-<version>/ holds:

    disk.qcow2          the system disk: one ext4 file system, no partition table
    vmlinuz, initrd.img the kernel and initrd for direct kernel boot
    cmdline             the kernel command line the image boots with
    manifest.json(.sig) the firmware manifest baked into the image (/usr/share/archiver)
    firmware.pub        the public key baked into the image (for reference; never trusted)
    (the command line carries the key the boot check trusts: archiver.firmware_key=)
    image.json(.sig)    the image manifest: the SHA-256 of each file above, signed
    build.json          how the build went (times, sizes, base tree); not signed
    build.log           everything the build did

The image manifest is a firmware.manifest.Manifest whose payload is the files of the image
folder, so one Ed25519 key signs both and one verifier checks both. "The signature fails"
when either signature does not verify with the trusted key, when a file's digest differs from
the signed one (the disk image included), when the two manifests disagree on model or
version, or when the command line does not carry the trusted key. Nothing in this tree skips
the check.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
    """An image whose two manifests verified against the trusted key. `files` are the
    signed digests of the image folder's files: the only digests anything is checked
    against from then on."""
    directory: Path
    model: int
    version: str
    build_time: str
    disk_sha256: str
    firmware_files: int
    files: dict = field(default_factory=dict)
    public_key: Ed25519PublicKey | None = None

    def path(self, name: str) -> Path:
        return self.directory / name


def boot_cmdline(public_key: Ed25519PublicKey) -> str:
    """The kernel command line of an image signed by the key of `public_key`: it carries
    that key to the boot check (firmware.system.trusted_key)."""
    return f"{BOOT_CMDLINE} {keys.cmdline_parameter(public_key)}"


def open_image(directory: Path, public_key_path: Path) -> VerifiedImage:
    """Read and check an image folder's signed manifests, each file once: image.json
    against the trusted key, manifest.json (.sig) against the digests image.json signs and
    against the trusted key. The disk, kernel, initrd and command line are not read here:
    whoever copies them checks what it copies against `files`. Raises ImageError."""
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
                                (directory / IMAGE_SIGNATURE).read_bytes(), public_key, None)
    except ManifestError as exc:
        raise ImageError([f"image manifest: {p}" for p in exc.problems]) from None
    unsigned = [name for name in SIGNED_FILES if name not in image.files]
    if unsigned:
        raise ImageError([f"image manifest does not cover {', '.join(unsigned)}"])
    firmware = _firmware_manifest(directory, image, public_key)
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
                         firmware_files=len(firmware.files), files=dict(image.files),
                         public_key=public_key)


def _firmware_manifest(directory: Path, image: Manifest, public_key) -> Manifest:
    """manifest.json and its signature, read once, checked against image.json's digests
    and then against the trusted key."""
    read = {name: (directory / name).read_bytes() if (directory / name).is_file() else None
            for name in (FIRMWARE_MANIFEST, FIRMWARE_SIGNATURE)}
    problems = [changed(name, data, image.files[name]) for name, data in read.items()
                if data is None or hashlib.sha256(data).hexdigest() != image.files[name]]
    if problems:
        raise ImageError([f"image manifest: {p}" for p in problems])
    try:
        return manifest.verify(read[FIRMWARE_MANIFEST], read[FIRMWARE_SIGNATURE], public_key,
                               None)
    except ManifestError as exc:
        raise ImageError([f"firmware manifest: {p}" for p in exc.problems]) from None


def changed(name: str, data: bytes | None, want: str) -> str:
    """Words for a file of the image that is not what image.json signs."""
    if data is None:
        return f"payload file {name} is missing"
    have = hashlib.sha256(data).hexdigest()
    return f"payload file {name} was changed (sha256 {have[:16]}..., manifest says {want[:16]}...)"


def check_cmdline(cmdline: str, public_key: Ed25519PublicKey) -> None:
    """The signed command line must carry the trusted key to the boot check."""
    try:
        carried = keys.from_cmdline(cmdline)
    except keys.SigningKeyError as exc:
        raise ImageError([f"the image's kernel command line: {exc}"]) from None
    if carried is None:
        raise ImageError([f"the image's kernel command line names no "
                          f"{keys.CMDLINE_PARAMETER}: its boot check would have no key it "
                          "can trust (rebuild the image)"])
    if keys.key_id(carried) != keys.key_id(public_key):
        raise ImageError([f"the image's kernel command line names the firmware key "
                          f"{keys.key_id(carried)}, but the trusted key is "
                          f"{keys.key_id(public_key)}"])


def verify_image(directory: Path, public_key_path: Path) -> VerifiedImage:
    """Check an image folder against the trusted public key, every file of it; raise
    ImageError saying why not."""
    image = open_image(directory, public_key_path)
    problems = []
    for name in (DISK, KERNEL, INITRD):
        path = image.path(name)
        have = manifest.sha256_file(path) if path.is_file() else None
        if have != image.files[name]:
            problems.append("image manifest: " + (
                f"payload file {name} was changed (sha256 {have[:16]}..., manifest says "
                f"{image.files[name][:16]}...)" if have else f"payload file {name} is missing"))
    path = image.path(CMDLINE)
    cmdline = path.read_bytes() if path.is_file() else None
    if cmdline is None or hashlib.sha256(cmdline).hexdigest() != image.files[CMDLINE]:
        problems.append("image manifest: " + changed(CMDLINE, cmdline, image.files[CMDLINE]))
    if problems:
        raise ImageError(problems)
    check_cmdline(cmdline.decode(errors="replace"), image.public_key)
    return image
