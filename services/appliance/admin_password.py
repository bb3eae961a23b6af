"""The appliance administrator's password, kept only as an scrypt hash in
DATA/admin.json (mode 0600): {"user": "admin", "scheme": "scrypt", "n", "r", "p",
"salt", "hash"} (hex). Written by `archiver firstboot`; the web UI checks logins with
verify()."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

ADMIN_FILE = "admin.json"
ADMIN_USER = "admin"
MIN_LENGTH = 8
# 16 MiB and ~50 ms per check: slow for guessing, quick enough for a login.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def generate() -> str:
    """A random password of 16 URL-safe characters (96 bits), easy to copy from a console."""
    return secrets.token_urlsafe(12)


def hashed(password: str) -> dict:
    salt = os.urandom(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return {"user": ADMIN_USER, "scheme": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R,
            "p": SCRYPT_P, "salt": salt.hex(), "hash": digest.hex()}


def verify(record: dict, password: str) -> bool:
    digest = _scrypt(password, bytes.fromhex(record["salt"]), record["n"], record["r"],
                     record["p"])
    return hmac.compare_digest(digest.hex(), record["hash"])


def load(data_dir: Path) -> dict | None:
    path = Path(data_dir) / ADMIN_FILE
    return json.loads(path.read_text()) if path.exists() else None


def save(data_dir: Path, record: dict) -> Path:
    """Write the record readable by its owner only (created 0600, never wider)."""
    path = Path(data_dir) / ADMIN_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as output:
        json.dump(record, output)
        output.flush()
        os.fsync(output.fileno())
    return path


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32,
                          maxmem=256 * n * r + 1024 * 1024)
