"""`archiver firstboot` (archiver-firstboot.service): what an appliance needs once, on its
first boot.

- the node id (the store makes it when it is first opened),
- the mirror key directory DATA/mirror (the mirror service makes the node's key there),
- a self-signed TLS key and certificate for STARTTLS and the web UI
  (/etc/archiver/tls.key and tls.crt),
- the admin password: from the systemd credential "admin-password", else generated and
  shown on the console; only its scrypt hash is kept (services.appliance.admin_password).

Then DATA is handed to the service user and DATA/firstboot.done written; a run after
that changes nothing. Each step also keeps what it finds, so a run cut short by a power
cut is simply run again, and so is one after new firmware was flashed (the system disk's
/etc is new then, the data disk is not): it makes only a new TLS certificate.
"""
from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import Future, ThreadPoolExecutor
import os
import pwd
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from firmware.errors import ArchiverError

from services.appliance import admin_password
from services.common.atomic_file import atomic_output

if TYPE_CHECKING:  # the CLI imports the archive only once the TLS key is being made
    from services.archive.archive import Archive

MARKER = "firstboot.done"
CREDENTIAL = "admin-password"
SERVICE_USER = "archiver"
DEFAULT_TLS_CERT = Path("/etc/archiver/tls.crt")
DEFAULT_TLS_KEY = Path("/etc/archiver/tls.key")
DEFAULT_CONSOLE = Path("/dev/console")
TLS_VALIDITY = dt.timedelta(days=10 * 365)


class FirstbootError(ArchiverError):
    pass


@dataclass
class Places:
    tls_cert: Path = DEFAULT_TLS_CERT
    tls_key: Path = DEFAULT_TLS_KEY
    console: Path = DEFAULT_CONSOLE
    credentials: Path | None = None  # $CREDENTIALS_DIRECTORY
    user: str | None = SERVICE_USER  # who the services run as (None: leave owners alone)
    stdout: bool = True              # show a generated password there too (see _show)


@dataclass
class Outcome:
    already_done: bool = False
    node_id: str | None = None
    mirror_dir: str | None = None
    tls_certificate: str = "kept"      # created or kept
    admin_password: str = "kept"       # from credential, generated or kept
    shown_on: list[str] = field(default_factory=list)
    password: str | None = None        # a generated one, for a caller that shows it itself


def first_boot(archive: Archive, places: Places, tls_key: Future | None = None) -> Outcome:
    """`tls_key`: the TLS key being made by start_tls_key (made here when None)."""
    marker = archive.data_dir / MARKER
    # The marker lives with the archive (the data disk) and /etc on the system disk, which
    # new firmware replaces: after a reflash only the certificate is made again.
    if marker.exists() and _has_tls_files(places):
        return Outcome(already_done=True)
    owner = _service_user(places.user)
    outcome = Outcome(node_id=archive.store.node_id)
    mirror_dir = archive.data_dir / "mirror"
    mirror_dir.mkdir(mode=0o700, exist_ok=True)
    outcome.mirror_dir = str(mirror_dir)
    if admin_password.load(archive.data_dir) is None:
        _set_admin_password(archive.data_dir, places, outcome)
    # The key must stay root's, yet the services must read it: root's, of their group.
    key_owner = (0, owner.pw_gid) if owner is not None else None
    if not _has_tls_files(places):
        key = tls_key.result() if tls_key is not None else None
        make_tls_certificate(places.tls_cert, places.tls_key, socket.gethostname(), key_owner,
                             key=key)
        outcome.tls_certificate = "created"
    elif key_owner is not None:
        os.chown(places.tls_key, *key_owner)
    if owner is not None:
        _hand_over(archive.data_dir, owner)
    _write_marker(marker, outcome)
    return outcome


def _has_tls_files(places: Places) -> bool:
    return places.tls_key.exists() and places.tls_cert.exists()


def start_tls_key(places: Places) -> Future | None:
    """Start making the TLS key in a thread when first boot will need one (None if not).
    The RSA key is first boot's slowest step (a third of a second of CPU here, many
    seconds on a guest under TCG) and OpenSSL makes it without holding Python's lock, so
    the rest of first boot (importing and opening the archive, hashing the admin password)
    runs beside it. An error in making it is raised by Future.result()."""
    if _has_tls_files(places):
        return None
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tls-key")
    key = executor.submit(new_tls_key)
    executor.shutdown(wait=False)  # its thread ends once the key is made
    return key


def new_tls_key() -> rsa.RSAPrivateKey:
    """RSA 2048, not EC: some older mail servers that journal to the appliance offer no
    EC cipher suites for STARTTLS."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _service_user(name: str | None) -> pwd.struct_passwd | None:
    if name is None:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise FirstbootError(f"there is no user {name!r} to run the services as (the image "
                             "creates it; --user NAME names another)") from None


def make_tls_certificate(cert_path: Path, key_path: Path, hostname: str,
                         key_owner: tuple[int, int] | None = None,
                         key: rsa.RSAPrivateKey | None = None) -> None:
    """A self-signed certificate for `hostname`, of `key` (a new_tls_key() when None).
    `key_owner` (uid, gid): the key's, set before it takes its name. The certificate is
    written first and the key last, each whole: the boot's unit runs first boot again
    while the key is missing, so a power cut between the two leaves no key without its
    certificate, nor one the services cannot read. Raises OSError."""
    key = key or new_tls_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + TLS_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    key_path.parent.mkdir(parents=True, exist_ok=True)
    _write_whole(cert_path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    _write_whole(key_path, key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()),
                 mode=0o640, owner=key_owner)


def _set_admin_password(data_dir: Path, places: Places, outcome: Outcome) -> None:
    given = _credential(places.credentials)
    if given is not None:
        if len(given) < admin_password.MIN_LENGTH:
            raise FirstbootError(f"the {CREDENTIAL} credential is too short: at least "
                                 f"{admin_password.MIN_LENGTH} characters, not {len(given)}")
        password, outcome.admin_password = given, "from credential"
    else:
        password, outcome.admin_password = admin_password.generate(), "generated"
    admin_password.save(data_dir, admin_password.hashed(password))
    if outcome.admin_password == "generated":  # shown only once saved: it then works
        outcome.password = password
        outcome.shown_on = _show(password, places.console, places.stdout)


def _credential(directory: Path | None) -> str | None:
    if directory is None:
        return None
    path = directory / CREDENTIAL
    return path.read_text().rstrip("\r\n") if path.exists() else None


def _show(password: str, console: Path, stdout: bool) -> list[str]:
    """Show the generated password on the console and on stdout, where an operator sees
    it; not on stdout when that is the journal, which would keep it for good."""
    text = (f"\narchiver: the web UI's user is '{admin_password.ADMIN_USER}', its password "
            f"is: {password}\n(shown once; change it after logging in)\n\n")
    shown = []
    try:
        with open(console, "w") as terminal:
            terminal.write(text)
        shown.append(str(console))
    except OSError:
        pass
    if stdout and (not _stdout_is_journal() or not shown):
        sys.stdout.write(text)
        sys.stdout.flush()
        shown.append("stdout")
    return shown


def _stdout_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM to the device:inode of the stream it connects."""
    try:
        stat = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{stat.st_dev}:{stat.st_ino}"


def _hand_over(data_dir: Path, owner: pwd.struct_passwd) -> None:
    """The services run as `owner`: everything in DATA (the store this process opened as
    root included) becomes theirs."""
    for directory, subdirs, files in os.walk(data_dir):
        for name in [directory, *(os.path.join(directory, n) for n in subdirs + files)]:
            os.chown(name, owner.pw_uid, owner.pw_gid, follow_symlinks=False)


def _write_whole(path: Path, data: bytes, mode: int,
                 owner: tuple[int, int] | None = None) -> None:
    """`data` at `path` with `mode` (and `owner`), replacing what was there whole and
    durably: a power cut during first boot must not leave an empty key or certificate that
    later boots keep (they only ask whether the files exist), nor a marker before them.
    Raises OSError."""
    with atomic_output(path, mode=mode, owner=owner) as output:
        output.write(data)


def _write_marker(marker: Path, outcome: Outcome) -> None:
    _write_whole(marker, (json.dumps({"done": dt.datetime.now(dt.timezone.utc).isoformat(),
                                      "node_id": outcome.node_id}) + "\n").encode(), 0o644)
