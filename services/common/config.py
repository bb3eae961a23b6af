"""The appliance configuration: /etc/archiver/archiver.yaml (or --config FILE), strictly
validated: every error names the file, the key and what was expected.

    data_dir: /var/lib/archiver
    model: 450
    smtp:
      listen: 0.0.0.0:25
      trusted_servers: [10.0.0.5/32]       # IPs or CIDRs
      local_domains: [example.com]
      forwarding: false
      journal_recipient: journal@archive.example.com
      tls: {cert: /etc/archiver/tls.crt, key: /etc/archiver/tls.key}   # optional: STARTTLS
    journal_accounts:
      - {name: exchange, protocol: imap, host: mail.example.com, port: 993, tls: tls,
         user: journal, password: "...", keep_on_server: false, poll_seconds: 60,
         folder: INBOX, ca_file: null}      # ca_file: trust this CA instead of the system's
    web:
      listen: 0.0.0.0:8000                  # web UI, HTTP API (/api/) and /metrics
      tls: {cert: /etc/archiver/tls.crt, key: /etc/archiver/tls.key}   # optional: the
                                            # default is these files when both exist
      plain_http: false                     # true: HTTP even when a certificate exists
      transfers: 16                         # downloads and exports at once, in all,
      transfers_per_user: 6                 # and per user; one whose client takes no data
      transfer_idle_seconds: 60             # for this long is cut
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

from firmware.models import load_models
from firmware.strict import ConfigError, build, field, load_yaml, positive

DEFAULT_CONFIG = Path("/etc/archiver/archiver.yaml")


def _listen_address(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _networks(values: list[str]) -> bool:
    try:
        for value in values:
            ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _port(value: int) -> bool:
    return 0 < value < 65536


@dataclass(frozen=True)
class TlsFiles:
    cert: str = field("PEM certificate (chain) offered with STARTTLS")
    key: str = field("PEM private key of the certificate")


@dataclass(frozen=True)
class SmtpConfig:
    listen: str = field("address and port SMTP listens on", check=_listen_address,
                        expected="HOST:PORT, e.g. 0.0.0.0:25", default="0.0.0.0:25")
    trusted_servers: list[str] = field(
        "mail servers that may hand in mail for any domain", check=_networks,
        expected="a list of IP addresses or CIDR networks, e.g. [10.0.0.5/32]",
        default_factory=list)
    local_domains: list[str] = field("domains other senders may hand in mail for",
                                     default_factory=list)
    forwarding: bool = field("true: only trusted servers may hand in mail at all", default=False)
    journal_recipient: str | None = field("address of Bcc journaling; mail to it is archived "
                                          "with its envelope", default=None)
    tls: TlsFiles | None = field("certificate and key for STARTTLS", default=None)


@dataclass(frozen=True)
class JournalAccount:
    name: str = field("a name for the account, unique in the file")
    protocol: str = field("imap or pop3", check=lambda v: v in ("imap", "pop3"),
                          expected="imap or pop3")
    host: str = field("the mail server")
    port: int = field("the server's port", check=_port, expected="a port number (1-65535)")
    tls: str = field("tls (implicit), starttls or none",
                     check=lambda v: v in ("tls", "starttls", "none"),
                     expected="tls, starttls or none")
    user: str = field("login name")
    password: str = field("login password", secret=True)
    keep_on_server: bool = field("leave messages on the server (remembering what was taken)",
                                 default=False)
    poll_seconds: int = field("seconds between polls", check=positive,
                              expected="a positive integer", default=60)
    folder: str = field("IMAP folder to take mail from", default="INBOX")
    ca_file: str | None = field("PEM file of the CAs to trust for the server's certificate, "
                                "instead of the system's (e.g. a private CA)", default=None)


@dataclass(frozen=True)
class WebConfig:
    listen: str = field("address and port of the web UI and HTTP API", check=_listen_address,
                        expected="HOST:PORT, e.g. 0.0.0.0:8000", default="0.0.0.0:8000")
    tls: TlsFiles | None = field("certificate and key for HTTPS (default: firstboot's "
                                 "/etc/archiver/tls.crt and tls.key when both exist)",
                                 default=None)
    plain_http: bool = field("true: serve plain HTTP even when a certificate exists (tests; "
                             "session cookies then lack the Secure flag)", default=False)
    transfers: int = field("downloads and exports that may run at once (each holds a thread "
                           "and a 256 KiB chunk)", check=positive,
                           expected="a positive integer", default=16)
    transfers_per_user: int = field("downloads and exports one user may run at once",
                                    check=positive, expected="a positive integer", default=6)
    transfer_idle_seconds: float = field("a download or export whose client takes no data for "
                                         "this long is cut", check=positive,
                                         expected="a positive number of seconds", default=60.0)


MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class MirrorConfig:
    listen: str = field("address and port the mirror server listens on", check=_listen_address,
                        expected="HOST:PORT, e.g. 0.0.0.0:8443", default="0.0.0.0:8443")
    secret: str | None = field("the secret all mirrored systems share",
                               check=lambda v: len(v) >= MIN_SECRET_LENGTH,
                               expected=f"a string of at least {MIN_SECRET_LENGTH} characters",
                               secret=True, default=None)
    peers: list[str] = field("peers to copy to, HOST:PORT", default_factory=list,
                             check=lambda peers: all(_listen_address(p) for p in peers),
                             expected="a list of HOST:PORT")


@dataclass(frozen=True)
class Config:
    data_dir: str = field("where the archive lives", default="/var/lib/archiver")
    model: int | None = field("the model the archive is sized for (default: this system's)",
                              default=None)
    smtp: SmtpConfig = field("SMTP intake", default_factory=SmtpConfig)
    journal_accounts: list[JournalAccount] = field("journal mailboxes to poll",
                                                   default_factory=list)
    mirror: MirrorConfig | None = field("mirroring with peers (450 and up)", default=None)
    web: WebConfig = field("web UI and HTTP API", default_factory=WebConfig)
    source: ClassVar[str] = "<defaults>"  # the file it came from (set by load_config)


def config_path(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get("ARCHIVER_CONFIG") or DEFAULT_CONFIG)


def load_config(explicit: str | Path | None = None) -> Config:
    """The configuration; without a file at the default place, the defaults."""
    path = config_path(explicit)
    if not path.exists() and explicit is None and "ARCHIVER_CONFIG" not in os.environ:
        return Config()
    data = load_yaml(path)
    config = build(Config, data if data is not None else {}, file=path)
    _check_model(config, path)
    _check_unique_names(config, path)
    object.__setattr__(config, "source", str(path))
    return config


def _check_model(config: Config, path: Path) -> None:
    catalog = load_models()
    if config.model is not None and config.model not in catalog:
        known = ", ".join(str(p.model) for p in catalog)
        raise ConfigError(path, "model", f"one of the models {known}", got=config.model)


def _check_unique_names(config: Config, path: Path) -> None:
    seen = set()
    for position, account in enumerate(config.journal_accounts):
        if account.name in seen:
            raise ConfigError(path, f"journal_accounts[{position}].name",
                              "a name no other account has", got=account.name)
        seen.add(account.name)
