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
import stat
from pathlib import Path

from services.common.atomic_file import atomic_output

ADMIN_FILE = "admin.json"
ADMIN_USER = "admin"
MIN_LENGTH = 8
# 16 MiB and ~50 ms per check: slow for guessing, quick enough for a login.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
DIGEST_BYTES = 32


def generate() -> str:
    """A random password of 16 URL-safe characters (96 bits), easy to copy from a console."""
    return secrets.token_urlsafe(12)


def hashed(password: str) -> dict:
    salt = os.urandom(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return {"user": ADMIN_USER, "scheme": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R,
            "p": SCRYPT_P, "salt": salt.hex(), "hash": digest.hex()}


def decoy() -> dict:
    """A record no password matches (a random salt and hash), that costs verify() what a
    real one does: checked when a name is unknown, so a login takes as long either way.
    Made without hashing anything (a hash per process start cost 50 ms, seconds under
    emulation)."""
    return {"user": None, "scheme": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
            "salt": os.urandom(16).hex(), "hash": os.urandom(DIGEST_BYTES).hex()}


def verify(record: dict, password: str) -> bool:
    digest = _scrypt(password, bytes.fromhex(record["salt"]), record["n"], record["r"],
                     record["p"])
    return hmac.compare_digest(digest.hex(), record["hash"])


def load(data_dir: Path) -> dict | None:
    path = Path(data_dir) / ADMIN_FILE
    return json.loads(path.read_text()) if path.exists() else None


def save(data_dir: Path, record: dict, owner: tuple[int, int] | None = None) -> Path:
    """Replace the record whole: written beside it and renamed over it, so the web service,
    which loads it on every admin request and sign-in, and a power cut, find the old record
    or the new one, never an empty file. `owner` (uid, gid): whose the file is (root on the
    console writes it for the service user), else the owner of the file there before, else
    the writer. A new file is readable by its owner only (0600); one there before keeps its
    permission bits. Both are set on the new file before it takes the name: nothing is
    changed through the name afterwards, so a symlink put there (the data folder is the
    service user's) is replaced, never followed. Raises OSError."""
    path = Path(data_dir) / ADMIN_FILE
    before = _regular_file_status(path)
    mode = stat.S_IMODE(before.st_mode) & 0o777 if before else 0o600
    owner = owner or ((before.st_uid, before.st_gid) if before else None)
    with atomic_output(path, mode=mode, owner=owner) as output:
        output.write(json.dumps(record).encode())
    return path


def _regular_file_status(path: Path) -> os.stat_result | None:
    """lstat() of `path` if it is a regular file; None for nothing or anything else."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        return None
    return status if stat.S_ISREG(status.st_mode) else None


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=DIGEST_BYTES,
                          maxmem=256 * n * r + 1024 * 1024)
