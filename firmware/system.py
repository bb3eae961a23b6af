"""This system's firmware identity: its model, its version and the state of its manifest.

An image bakes its firmware into /usr/share/archiver (ARCHIVER_FIRMWARE_DIR elsewhere):
model (the model number), manifest.json, manifest.json.sig and firmware.pub. A development
tree has none of them and is model 450 unless ARCHIVER_MODEL says otherwise.

The manifest is checked against the key on the kernel command line (archiver.firmware_key=,
/proc/cmdline; ARCHIVER_KERNEL_CMDLINE names another file), never against firmware.pub:
whoever could change the disk could change a key kept on it. The command line is signed
with the image, checked when it is flashed, and kept off the system disk.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import keys, manifest
from .compat import SystemIdentity
from .version import FirmwareVersion, current_version

DEFAULT_MODEL = 450


def firmware_dir() -> Path:
    return Path(os.environ.get("ARCHIVER_FIRMWARE_DIR", "/usr/share/archiver"))


def this_model() -> int:
    """ARCHIVER_MODEL, else the model baked into the image, else 450."""
    if os.environ.get("ARCHIVER_MODEL"):
        return int(os.environ["ARCHIVER_MODEL"])
    baked = firmware_dir() / "model"
    return int(baked.read_text().strip()) if baked.exists() else DEFAULT_MODEL


def this_version() -> FirmwareVersion:
    """ARCHIVER_FIRMWARE_VERSION (tests stand in another release with it), else the tree's."""
    override = os.environ.get("ARCHIVER_FIRMWARE_VERSION")
    return FirmwareVersion.parse(override) if override else current_version()


def this_identity() -> SystemIdentity:
    return SystemIdentity(model=this_model(), version=this_version())


@dataclass(frozen=True)
class ManifestState:
    state: str          # verified, absent or invalid
    detail: str
    model: int | None = None


def system_root() -> Path:
    """The root the manifest's payload paths are relative to ("/" on an appliance)."""
    return Path(os.environ.get("ARCHIVER_ROOT", "/"))


def kernel_cmdline() -> Path:
    return Path(os.environ.get("ARCHIVER_KERNEL_CMDLINE", "/proc/cmdline"))


def trusted_key() -> keys.Ed25519PublicKey:
    """The key the kernel command line carries; raises SigningKeyError saying why not."""
    path = kernel_cmdline()
    try:
        key = keys.from_cmdline(path.read_text())
    except OSError as exc:
        raise keys.SigningKeyError(f"cannot read the kernel command line {path}: "
                                   f"{exc.strerror}") from None
    if key is None:
        raise keys.SigningKeyError(
            f"the kernel command line ({path}) names no {keys.CMDLINE_PARAMETER}: the key "
            "on the disk being checked is not trusted")
    return key


def manifest_state() -> ManifestState:
    """Verify the baked-in manifest against the key on the kernel command line."""
    base, root = firmware_dir(), system_root()
    paths = [base / n for n in ("manifest.json", "manifest.json.sig")]
    if not any(p.exists() for p in [*paths, base / "firmware.pub"]):
        return ManifestState("absent", "no firmware manifest (a development tree, not an image)")
    try:
        public_key = trusted_key()
        found = manifest.verify(paths[0].read_bytes(), paths[1].read_bytes(), public_key, root)
    except OSError as exc:
        return ManifestState("invalid", f"cannot read {exc.filename}: {exc.strerror}")
    except (keys.SigningKeyError, manifest.ManifestError) as exc:
        return ManifestState("invalid", str(exc))
    if found.model != this_model():
        return ManifestState("invalid", f"manifest is for model {found.model}, "
                             f"this system is a model {this_model()}", found.model)
    return ManifestState("verified", f"{len(found.files)} files verified", found.model)


def boot_check() -> int:
    """The boot check (image/rootfs/usr/lib/archiver/verify-firmware, in a Python started
    with -I -S): the manifest verified, then what this system is; exit 0 verified (or
    absent), 1 invalid. Unlike `archiver firmware show` it neither parses models.yaml nor
    imports argparse and YAML (0.3 s of every boot under TCG) to name the model."""
    state = manifest_state()
    print(f"model {this_model()}, firmware {this_version()}")
    print(f"manifest: {state.state}: {state.detail}")
    return 0 if state.state != "invalid" else 1
