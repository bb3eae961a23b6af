"""Signed firmware manifests: what an image is (model, version, build) and what it holds.

The manifest is canonical JSON listing the SHA-256 of every payload file, the target of
every symbolic link in the payload, and the payload folders: folders that hold exactly what
the manifest lists, so that a file added there (a .pth file in dist-packages runs in every
Python process) fails the check as a changed one does. Guarded folders are shared folders
(/etc/systemd/system, the stdlib's) in which only entries with certain names must be listed
(`archiver-*`, `*.service.d`, `sitecustomize.py`...): a unit, drop-in or start-up module
added there under such a name fails the check too, while the rest of the folder may change
(systemd writes its own links there). Its signature is Ed25519 over those
exact bytes, stored beside it as JSON with the signing key's id so that a wrong key is told
apart from an altered manifest (as RAUC tells its checks apart).
"""
from __future__ import annotations

import base64
import datetime as dt
import errno
import fnmatch
import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ArchiverError
from .keys import key_id
from .version import FirmwareVersion, VersionError

FORMAT = 1
HASHING_THREADS = 4  # the boot check's most, whatever the cores


class ManifestError(ArchiverError):
    """A manifest that does not verify; the message says why in words."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Manifest:
    model: int
    version: str
    build_time: str
    files: dict[str, str]
    format: int = FORMAT
    folders: list[str] = field(default_factory=list)   # hold only what is listed
    links: dict[str, str] = field(default_factory=dict)  # symbolic link -> its target
    # folder -> name patterns (fnmatch): its entries of those names hold only what is listed
    guarded: dict[str, list[str]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), sort_keys=True, indent=1) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Manifest":
        try:
            doc = json.loads(data)
            manifest = cls(model=doc["model"], version=doc["version"],
                           build_time=doc["build_time"], files=dict(doc["files"]),
                           format=doc["format"], folders=list(doc.get("folders", [])),
                           links=dict(doc.get("links", {})),
                           guarded={folder: list(patterns) for folder, patterns
                                    in doc.get("guarded", {}).items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError([f"manifest is not a valid manifest document ({exc})"]) from None
        if manifest.format != FORMAT:
            raise ManifestError([f"manifest format {manifest.format} is not {FORMAT}"])
        try:
            FirmwareVersion.parse(manifest.version)
        except VersionError as exc:
            raise ManifestError([f"manifest version: {exc}"]) from None
        return manifest


def sha256_file(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return _sha256(fd)
    finally:
        os.close(fd)


def _sha256(fd: int) -> str:
    # Plain os.read: hashlib.file_digest zeroes a fresh 256 KiB buffer for every file, and
    # over the 3,254 files of an image that cost the boot check 0.5 s under TCG.
    digest = hashlib.sha256()
    while block := os.read(fd, 1 << 20):
        digest.update(block)
    return digest.hexdigest()


def build_time_now() -> str:
    """Build time in UTC; SOURCE_DATE_EPOCH makes it reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch
              else dt.datetime.now(dt.timezone.utc))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Payload:
    files: list[str]          # regular files, relative to the root
    links: dict[str, str]     # symbolic links (never followed) -> their targets
    folders: list[str]        # the folders named: they hold exactly files and links


def collect_payload(root: Path, paths: list[str]) -> Payload:
    """The payload of `paths` under `root`: each named file or link, and everything below
    each named folder (which becomes a payload folder). Raises ManifestError for a name
    that does not exist, or a folder holding something that is no file, link or folder."""
    files, links, folders, problems = set(), {}, [], []
    for name in paths:
        path = root / name
        if path.is_symlink():
            links[_relative(root, path)] = os.readlink(path)
        elif path.is_dir():
            folders.append(_relative(root, path))
            _walk(root, path, files, links, problems)
        elif path.is_file():
            files.add(_relative(root, path))
        else:
            problems.append(f"payload file {name} does not exist under {root}")
    if problems:
        raise ManifestError(problems)
    return Payload(sorted(files), dict(sorted(links.items())), sorted(set(folders)))


def _walk(root: Path, folder: Path, files: set, links: dict, problems: list) -> None:
    """Add what `folder` holds to files, links and problems; a folder that does not exist
    (or is no folder) holds nothing, as with os.walk, but one that cannot be read raises
    (os.walk skipped it, unlisted files and all). Plain strings and os.scandir, whose
    entries know their kind without a stat each: pathlib per entry cost seconds under TCG."""
    pending = [(os.fspath(folder), _relative(root, folder))]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                rel = f"{prefix}/{entry.name}"
                if entry.is_symlink():
                    links[rel] = os.readlink(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, rel))
                elif entry.is_file(follow_symlinks=False):
                    files.add(rel)
                else:
                    problems.append(f"{rel} is neither a file, a folder nor a link")


def _relative(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def payload_files(root: Path, paths: list[str]) -> list[str]:
    """Relative paths of the payload's regular files (see collect_payload)."""
    return collect_payload(root, paths).files


def guarded_entries(root: Path, guarded: dict[str, list[str]]) -> list[str]:
    """The entries (files, links, folders; relative to `root`) of each guarded folder whose
    names match its patterns: what a manifest with these guarded folders must list. A
    guarded folder that does not exist has none."""
    found = []
    for folder, patterns in sorted(guarded.items()):
        try:
            names = sorted(os.listdir(root / folder))
        except FileNotFoundError:
            continue
        found += [f"{folder}/{name}" for name in names
                  if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]
    return found


def create(root: Path, paths: list[str], model: int, version: FirmwareVersion,
           guarded: dict[str, list[str]] | None = None) -> Manifest:
    """The manifest of `paths` under `root` (see collect_payload), and of what `guarded`
    ({folder: [name pattern, ...]}) folders hold under those names (which must then be
    listed: a matching folder is a payload folder). Raises ManifestError."""
    guarded = {folder: sorted(patterns) for folder, patterns in sorted((guarded or {}).items())}
    payload = collect_payload(root, sorted({*paths, *guarded_entries(root, guarded)}))
    files = {rel: sha256_file(root / rel) for rel in payload.files}
    return Manifest(model=model, version=str(version), build_time=build_time_now(), files=files,
                    folders=payload.folders, links=payload.links, guarded=guarded)


def sign(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    signature = private_key.sign(manifest_bytes)
    doc = {"algorithm": "ed25519", "key_id": key_id(private_key.public_key()),
           "signature": base64.b64encode(signature).decode()}
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


def verify(manifest_bytes: bytes, signature_doc: bytes, public_key: Ed25519PublicKey,
           root: Path | None) -> Manifest:
    """Check signature then payload; return the manifest or raise with every problem found."""
    _check_signature(manifest_bytes, signature_doc, public_key)
    manifest = Manifest.from_bytes(manifest_bytes)
    if root is not None:
        problems = [p for p in _check_files(root, sorted(manifest.files.items())) if p]
        problems += [p for rel, target in sorted(manifest.links.items())
                     if (p := _check_link(root, rel, target))]
        problems += unlisted(root, manifest)
        if problems:
            raise ManifestError(problems)
    return manifest


def unlisted(root: Path, manifest: Manifest) -> list[str]:
    """What the payload folders hold that the manifest does not list, in words."""
    listed = set(manifest.files) | set(manifest.links)
    problems, named = [], set()
    for folder in manifest.folders:     # sorted: an outer folder comes before its inner ones
        if _leaves_root(folder):
            problems.append(f"payload folder {folder} leaves the payload root")
            continue
        found, links, odd = set(), {}, []
        _walk(root, root / folder, found, links, odd)
        extra = sorted((found | set(links)) - listed - named)
        named.update(extra)
        problems += [f"{rel} is not in the manifest (an unlisted file in the payload folder "
                     f"{folder})" for rel in extra]
        problems += [p for p in odd if p not in problems]
    return problems + _unlisted_guarded(root, manifest, listed)


def _unlisted_guarded(root: Path, manifest: Manifest, listed: set[str]) -> list[str]:
    """Entries of the guarded folders, named as their patterns say, that the manifest does
    not list: a file or link it lacks, or a folder that is no payload folder."""
    problems = []
    for rel in guarded_entries(root, manifest.guarded):
        folder = rel.rpartition("/")[0]
        if _leaves_root(rel):
            problems.append(f"guarded folder {folder} leaves the payload root")
        elif rel not in listed and rel not in manifest.folders:
            patterns = " ".join(manifest.guarded[folder])
            problems.append(f"{rel} is not in the manifest (a name the guarded folder "
                            f"{folder} holds only as listed: {patterns})")
    return problems


def _check_signature(manifest_bytes: bytes, signature_doc: bytes, public_key) -> None:
    try:
        doc = json.loads(signature_doc)
        signature = base64.b64decode(doc["signature"], validate=True)
        signer = doc["key_id"]
    except (ValueError, KeyError, TypeError):
        raise ManifestError(["signature file is not a valid signature document"]) from None
    trusted = key_id(public_key)
    if signer != trusted:
        raise ManifestError([f"manifest was signed with key {signer}, "
                             f"but the trusted key is {trusted}"])
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise ManifestError(["signature does not match the manifest: "
                             "the manifest was changed after it was signed"]) from None


def _leaves_root(rel: str) -> bool:
    return rel.startswith("/") or ".." in rel.split("/")


def _check_link(root: Path, rel: str, target: str) -> str | None:
    if _leaves_root(rel):
        return f"payload path {rel} leaves the payload root"
    path = root / rel
    if not path.is_symlink():
        return f"payload link {rel} is missing or no longer a link"
    if os.readlink(path) != target:
        return f"payload link {rel} was changed (it points to {os.readlink(path)}, the " \
               f"manifest says {target})"
    return None


def _check_files(root: Path, files: list[tuple[str, str]]) -> list[str | None]:
    """_check_file of each (rel, sha256) in `files`, in their order, on a thread per core:
    hashlib and os.read let go of the GIL, so the boot check hashes on every core (under
    TCG it is some 20 s of each boot, and a VM that boots beside an idle one has two).
    Each thread takes every n-th file (big and small ones spread evenly) as one task: a
    task and its future per file cost the main thread 2 s of the check's 6 under TCG."""
    usable = len(os.sched_getaffinity(0))  # the CPUs this process may run on, not all there are
    threads = max(1, min(HASHING_THREADS, usable, len(files)))
    shares = [files[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = list(pool.map(lambda share: [_check_file(root, *item) for item in share],
                             shares))
    results: list[str | None] = [None] * len(files)
    for i, share in enumerate(done):
        results[i::threads] = share
    return results


def _check_file(root: Path, rel: str, want: str) -> str | None:
    if _leaves_root(rel):
        return f"payload path {rel} leaves the payload root"
    # One open that refuses a link (O_NOFOLLOW) and never waits on a FIFO (O_NONBLOCK),
    # then fstat of what was opened: what is hashed is what was checked to be a file.
    try:
        fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return f"payload file {rel} is missing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"payload file {rel} was replaced by a link"
        if exc.errno == errno.ENOTDIR:
            return f"payload file {rel} is missing"
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return f"payload file {rel} is missing"
        have = _sha256(fd)
    finally:
        os.close(fd)
    if have != want:
        return f"payload file {rel} was changed (sha256 {have[:16]}..., manifest says {want[:16]}...)"
    return None
