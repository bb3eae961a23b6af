"""Ed25519 signing keys for firmware manifests.

Development keys are generated into an ignored folder (build/keys by default) and
keygen refuses a folder that git would track, so no private key ever lands in git.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ArchiverError

PRIVATE_NAME = "firmware-signing.key"
# The kernel command line parameter that carries the trusted key to the boot check: the
# command line is signed with the image and checked by flash, and lives outside the disk
# the boot check checks.
CMDLINE_PARAMETER = "archiver.firmware_key"
PUBLIC_NAME = "firmware-signing.pub"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "build" / "keys"


class SigningKeyError(ArchiverError):
    pass


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate(directory: Path) -> tuple[Path, Path]:
    """Write a new key pair into `directory`; never overwrite, never into a tracked folder."""
    directory = Path(directory)
    _refuse_tracked(directory)
    private_path, public_path = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    if private_path.exists():
        raise SigningKeyError(f"{private_path} exists already; remove it to make a new key")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path


def cmdline_parameter(public_key: Ed25519PublicKey) -> str:
    """`archiver.firmware_key=<the raw public key, base64url without padding>`."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{CMDLINE_PARAMETER}={base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


def from_cmdline(cmdline: str) -> Ed25519PublicKey | None:
    """The key a kernel command line carries (see cmdline_parameter), or None when it
    carries none. Raises SigningKeyError for a malformed one, or for two."""
    values = [word.partition("=")[2] for word in cmdline.split()
              if word.partition("=")[0] == CMDLINE_PARAMETER]
    if not values:
        return None
    if len(values) > 1:
        raise SigningKeyError(f"the kernel command line names {CMDLINE_PARAMETER} "
                              f"{len(values)} times")
    try:
        raw = base64.urlsafe_b64decode(values[0] + "=" * (-len(values[0]) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error):
        raise SigningKeyError(f"the kernel command line's {CMDLINE_PARAMETER} is no Ed25519 "
                              "public key") from None


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(path: Path) -> Ed25519PrivateKey:
    key = _load(path, serialization.load_pem_private_key, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    key = _load(path, serialization.load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return key


def _load(path: Path, loader, **kwargs):
    try:
        return loader(Path(path).read_bytes(), **kwargs)
    except OSError as exc:
        raise SigningKeyError(f"cannot read key {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not a PEM key ({exc})") from None


def _refuse_tracked(directory: Path) -> None:
    """Refuse a folder inside a git work tree unless git ignores it."""
    import subprocess  # here: the boot check imports this module and runs no command
    probe = directory.resolve()
    while not probe.exists():
        probe = probe.parent
    inside = subprocess.run(["git", "-C", str(probe), "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return
    ignored = subprocess.run(["git", "-C", str(probe), "check-ignore", "-q",
                              str(directory.resolve() / PRIVATE_NAME)])
    if ignored.returncode != 0:
        raise SigningKeyError(f"{directory} is inside a git work tree and not ignored: "
                        "keys must never be committed; use build/keys or add it to .gitignore")
