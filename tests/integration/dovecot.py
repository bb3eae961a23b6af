"""A private Dovecot (IMAP and POP3, each plain, STARTTLS and implicit TLS) for journal tests.

Everything lives in a directory of its own: configuration, sockets, state, a self-signed
certificate for 127.0.0.1/localhost, one user's Maildir. /etc/dovecot and any system Dovecot
are never touched. Runtime files go to a short directory under /tmp because Unix socket
paths are limited to 108 bytes and pytest's tmp_path is long (and not traversable by
Dovecot's unprivileged helpers); the log goes to tmp_path so a failing test keeps it.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.integration.processes import free_port, wait_for_port

HOST = "127.0.0.1"
USER, PASSWORD = "journal", "journal-secret"
MAIL_OWNER = pwd.getpwnam("nobody")  # Dovecot refuses mail access as root

CONFIG = """\
base_dir = {run}
state_dir = {state}
instance_name = archiver-test-{port_imap}
log_path = {log}
listen = {host}
protocols = imap pop3
default_internal_user = dovecot
default_login_user = dovenull
disable_plaintext_auth = no
auth_failure_delay = 0
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
mail_location = maildir:{mail}/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service auth {{
  user = root
}}
service imap-login {{
  inet_listener imap {{
    port = {port_imap}
  }}
  inet_listener imaps {{
    port = {port_imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port_pop3}
  }}
  inet_listener pop3s {{
    port = {port_pop3s}
    ssl = yes
  }}
}}
"""


class Dovecot:
    """One Dovecot master (`dovecot -F`) and its children, in a process group of their own."""

    def __init__(self, tmp_path: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.dir.chmod(0o755)  # Dovecot's own unprivileged processes reach their sockets here
        self.log = Path(tmp_path) / "dovecot.log"
        self.ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
        self.cert = self.dir / "cert.pem"
        self.maildir = self.dir / "mail" / USER / "Maildir"
        self.process: subprocess.Popen | None = None
        self._delivered = 0
        self._make_certificate()
        self._make_maildir()
        self.config = self.dir / "dovecot.conf"
        self.config.write_text(self._config_text())

    def port(self, protocol: str, tls: str) -> int:
        """The port for protocol imap|pop3 with tls tls|starttls|none."""
        return self.ports[protocol + ("s" if tls == "tls" else "")]

    def account_settings(self, protocol: str, tls: str, **changes) -> dict:
        """A journal_accounts entry (services.common.config.JournalAccount) for this server."""
        return {"name": f"{protocol}-{tls}", "protocol": protocol, "host": HOST,
                "port": self.port(protocol, tls), "tls": tls, "user": USER,
                "password": PASSWORD, "ca_file": str(self.cert), **changes}

    # -- the process ---------------------------------------------------------------------

    def start(self) -> "Dovecot":
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.log, "ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                ["dovecot", "-F", "-c", str(self.config)], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        try:
            for port in self.ports.values():
                wait_for_port(HOST, port, timeout=20)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"dovecot did not start; see {self.log}:\n{self._log_tail()}")
        return self

    def stop(self, graceful: bool = False) -> None:
        """Stop the master and every process it started; connected clients are cut off.

        By default all at once with SIGKILL, as a crash or power cut would (and in no time:
        a SIGTERM shutdown takes Dovecot's master a second or more)."""
        if self.process is None or self.process.poll() is not None:
            return
        if graceful:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group: the master's children too
        except ProcessLookupError:
            pass
        self.process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- the mailbox ---------------------------------------------------------------------

    def deliver(self, raw: bytes) -> None:
        """Put a message into the user's INBOX as a local delivery agent would (tmp, then
        rename into new/, so Dovecot never sees half a file)."""
        self._delivered += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self._delivered}.{socket.gethostname()}"
        temporary = self.maildir / "tmp" / name
        temporary.write_bytes(raw)
        os.chown(temporary, MAIL_OWNER.pw_uid, MAIL_OWNER.pw_gid)
        os.rename(temporary, self.maildir / "new" / name)

    def count(self) -> int:
        """Messages left in the INBOX (read or not, flagged deleted but not expunged or not)."""
        return sum(1 for folder in ("new", "cur") for _ in (self.maildir / folder).iterdir())

    # -- setup ---------------------------------------------------------------------------

    def _make_certificate(self) -> None:
        key = self.dir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(self.cert), "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True, timeout=30)

    def _make_maildir(self) -> None:
        home = self.dir / "mail" / USER
        for folder in ("cur", "new", "tmp"):
            (self.maildir / folder).mkdir(parents=True)
        for path in (home.parent, home, self.maildir, *self.maildir.iterdir()):
            os.chown(path, MAIL_OWNER.pw_uid, MAIL_OWNER.pw_gid)
        (self.dir / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{MAIL_OWNER.pw_uid}:{MAIL_OWNER.pw_gid}::{home}::\n")

    def _config_text(self) -> str:
        return CONFIG.format(
            run=self.dir / "run", state=self.dir / "state", log=self.log, host=HOST,
            cert=self.cert, key=self.dir / "key.pem", mail=self.dir / "mail",
            passwd=self.dir / "passwd", **{f"port_{name}": port for name, port in self.ports.items()})

    def _log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:]) \
            if self.log.exists() else "(no log)"
