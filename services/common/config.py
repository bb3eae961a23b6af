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
      first_command_seconds: 30             # a silent new session is closed (421) after it
      idle_seconds: 300                     # silence allowed between commands and in DATA
      stress_idle_seconds: 10               # the same for strangers while they hold 3/4 of
                                            # their sessions (a flood of slow clients)
    journal_accounts:
      - {name: exchange, protocol: imap, host: mail.example.com, port: 993, tls: tls,
         user: journal, password: "...", keep_on_server: false, poll_seconds: 60,
         folder: INBOX, ca_file: null}      # ca_file: trust this CA instead of the system's
    directory:                              # optional: sign in with the company directory
      kind: ad                              # ad (Active Directory, Samba) or openldap: the
                                            # defaults of the attribute and group keys below
      uri: ldaps://dc1.corp.example.com     # ldap://HOST[:PORT] or ldaps://HOST[:PORT]
      start_tls: false                      # ldap:// only: StartTLS before any password
      ca_file: /etc/archiver/directory-ca.pem   # trust this CA, not the system's
      bind_dn: CN=archiver,CN=Users,DC=corp,DC=example,DC=com   # searches (none: anonymous)
      bind_password_file: /etc/archiver/directory.secret       # or bind_password: "..."
      base_dn: DC=corp,DC=example,DC=com
      admin_groups: ["CN=Archive Admins,OU=Groups,DC=corp,DC=example,DC=com"]  # group DNs;
      auditor_groups: ["CN=Legal,OU=Groups,DC=corp,DC=example,DC=com"]  # nested ones count;
                                            # everyone else found is a user
      refresh_seconds: 300                  # a signed-in user's entry is read again after it
    two_factor:
      required_for: [admin]                 # local accounts of these roles must use TOTP
    web:
      listen: 0.0.0.0:8000                  # web UI, HTTP API (/api/) and /metrics
      tls: {cert: /etc/archiver/tls.crt, key: /etc/archiver/tls.key}   # optional: the
                                            # default is these files when both exist
      plain_http: false                     # true: HTTP even when a certificate exists
      transfers: 16                         # downloads and exports at once, in all,
      transfers_per_user: 6                 # and per user; one whose client takes no data
      transfer_idle_seconds: 60             # for this long is cut
    timezone: Europe/Berlin                 # days of searches (date:, before:, after:)
    mirror:
      listen: 0.0.0.0:8443
      peers: [192.168.1.20:8443]            # also added by `archiver mirror join`
      retry_first_seconds: 1                # an unreachable or refusing peer is retried
      retry_cap_seconds: 10                 # after 1, 2, 4, ... up to 10 s (a hello from
                                            # it cuts the wait short)
      rehello_seconds: 10                   # a connected peer is greeted again this often
      read_timeout_seconds: 30              # a peer that sends no reply for this long is
                                            # offline (a cut link)
"""
from __future__ import annotations

import ipaddress
import os
import re
import ssl
import zoneinfo
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit
from pathlib import Path

from firmware.models import load_models
from firmware.strict import ConfigError, build, field, load_yaml, positive

from services.common import mirror_secret

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


def _time_zone(value: str) -> bool:
    if value == "UTC":  # services.archive.dates.zone needs no zone database for it
        return True
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


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
    journal_recipient: str | None = field(
        "address of Bcc journaling; mail to it is archived with its envelope, and an Exchange "
        "journal report a trusted server sends to it alone is unwrapped", default=None)
    tls: TlsFiles | None = field("certificate and key for STARTTLS", default=None)
    first_command_seconds: float = field(
        "seconds a new session may stay silent before its first command (then 421)",
        check=positive, expected="a positive number of seconds", default=30)
    idle_seconds: float = field(
        "seconds a session may stay silent between commands or within DATA (RFC 5321 "
        "4.5.3.2.7: at least 5 minutes)", check=positive,
        expected="a positive number of seconds", default=300)
    stress_idle_seconds: float = field(
        "the first-command and idle timeouts of a session that is no trusted server's, while "
        "such sessions hold 3/4 of theirs or more (then in DATA only 1 KiB or more in it "
        "keeps the session)", check=positive, expected="a positive number of seconds",
        default=10)


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


# The defaults of a directory's attribute and group keys, by directory.kind.
DIRECTORY_PRESETS = {
    "openldap": {"user_filter": "(objectClass=inetOrgPerson)", "login_attributes": ["uid"],
                 "name_attribute": "uid", "mail_attributes": ["mail"],
                 "group_filter": "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                 "member_attributes": ["member", "uniqueMember"], "nested_groups": "recursive"},
    "ad": {"user_filter": "(&(objectCategory=person)(objectClass=user))",
           "login_attributes": ["sAMAccountName", "userPrincipalName"],
           "name_attribute": "sAMAccountName", "mail_attributes": ["mail", "proxyAddresses"],
           # security groups only (groupType bit 0x80000000): a distribution list is
           # no one's permission
           "group_filter": "(&(objectClass=group)"
                           "(groupType:1.2.840.113556.1.4.803:=2147483648))",
           "member_attributes": ["member"],
           "nested_groups": "recursive"},
}
NESTED_GROUPS = ("in_chain", "recursive")


def _ldap_uri(value: str) -> bool:
    try:
        parsed = urlsplit(value)
        parsed.port  # raises ValueError when it is not a port number
    except ValueError:
        return False
    return (parsed.scheme in ("ldap", "ldaps") and bool(parsed.hostname)
            and parsed.path in ("", "/") and not parsed.query and not parsed.username)


def _ldap_filter(value: str | None) -> bool:
    return value is None or (value.startswith("(") and value.endswith(")")
                             and value.count("(") == value.count(")"))


GROUP_DN_EXPECTED = "a list of group DNs like cn=Archive Admins,ou=Groups,dc=example,dc=com"


def _group_dns(values: list[str]) -> bool:
    """Each a DN of two or more RDNs (cn=...,ou=...,dc=...): a group's name alone would
    match a group of that name anywhere under base_dn."""
    return all(isinstance(value, str) and len(_dn_parts(value)) >= 2 for value in values)


def _dn_parts(value: str) -> list[tuple[str, str]]:
    """(attribute, value) of each RDN of an RFC 4514 DN, [] when it is not one."""
    # ldap3 only here, where a directory's DNs are checked: importing it costs every
    # `archiver` command ~25 ms, and most read no directory settings.
    from ldap3.core.exceptions import LDAPInvalidDnError
    from ldap3.utils.dn import parse_dn
    try:
        return [(kind.lower(), text.lower())
                for kind, text, _ in parse_dn(value, escape=False, strip=True)]
    except LDAPInvalidDnError:
        return []


def _attribute_names(values: list[str] | None) -> bool:
    return values is None or (bool(values) and all(_attribute_name(v) for v in values))


def _attribute_name(value: str | None) -> bool:
    return value is None or re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", value) is not None


@dataclass(frozen=True)
class DirectoryConfig:
    """Signing in with LDAP or Active Directory (services.appliance.directory). The keys
    left out (null) take the defaults of `kind` (DIRECTORY_PRESETS)."""
    uri: str = field("the directory server", check=_ldap_uri,
                     expected="ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
    base_dn: str = field("where users and groups are searched, e.g. DC=corp,DC=example,DC=com")
    kind: str = field("openldap or ad: the defaults of the attribute and group keys",
                      check=lambda v: v in DIRECTORY_PRESETS, expected="openldap or ad",
                      default="openldap")
    start_tls: bool = field("ldap:// only: upgrade to TLS (StartTLS) before any password is "
                            "sent", default=False)
    ca_file: str | None = field("PEM file of the CAs to trust for the server's certificate, "
                                "instead of the system's", default=None)
    bind_dn: str | None = field("the account that searches (null: anonymous searches)",
                                default=None)
    bind_password: str | None = field("bind_dn's password", secret=True, default=None)
    bind_password_file: str | None = field("a file holding bind_dn's password (first line)",
                                           default=None)
    user_filter: str | None = field("LDAP filter (RFC 4515) every user matches",
                                    check=_ldap_filter, expected="an LDAP filter in parentheses",
                                    default=None)
    login_attributes: list[str] | None = field(
        "attributes a user may sign in with (uid; sAMAccountName, userPrincipalName)",
        check=_attribute_names, expected="a non-empty list of attribute names", default=None)
    name_attribute: str | None = field("the attribute that names the account in the archiver",
                                       check=_attribute_name, expected="an attribute name",
                                       default=None)
    mail_attributes: list[str] | None = field(
        "attributes holding a user's addresses (AD proxyAddresses: its smtp: entries)",
        check=_attribute_names, expected="a non-empty list of attribute names", default=None)
    group_filter: str | None = field("LDAP filter every group matches", check=_ldap_filter,
                                     expected="an LDAP filter in parentheses", default=None)
    member_attributes: list[str] | None = field(
        "attributes of a group naming its members' DNs", check=_attribute_names,
        expected="a non-empty list of attribute names", default=None)
    nested_groups: str | None = field(
        "recursive: nested groups are followed group by group, through groups matching "
        "group_filter only; in_chain (AD's LDAP_MATCHING_RULE_IN_CHAIN, which follows "
        "distribution lists too, making the members of one nested in an admin group "
        "admins) is accepted and read as recursive",
        check=lambda v: v in NESTED_GROUPS, expected="in_chain or recursive", default=None)
    admin_groups: list[str] = field("DNs of the groups whose members are admins",
                                    check=_group_dns, expected=GROUP_DN_EXPECTED,
                                    default_factory=list)
    auditor_groups: list[str] = field("DNs of the groups whose members are auditors",
                                      check=_group_dns, expected=GROUP_DN_EXPECTED,
                                      default_factory=list)
    refresh_seconds: float = field("a signed-in user's entry is read again after this long",
                                   check=positive, expected="a positive number of seconds",
                                   default=300)
    timeout_seconds: float = field("to connect and for each answer of the directory",
                                   check=positive, expected="a positive number of seconds",
                                   default=10)
    concurrency: int = field("directory operations (sign-ins, refreshes, status) that may "
                             "wait for the directory at once; more are refused at once "
                             "('directory busy'), so a hung directory holds at most this "
                             "many of the web service's threads", check=lambda v: 1 <= v <= 4,
                             expected="a whole number 1-4", default=2)

    def __post_init__(self):
        for key, value in DIRECTORY_PRESETS.get(self.kind, {}).items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)


ROLE_NAMES = ("admin", "auditor", "user")  # services.appliance.users.ROLES


@dataclass(frozen=True)
class TwoFactorConfig:
    required_for: list[str] = field(
        "roles whose accounts, local or the directory's, must sign in with a TOTP code "
        "(they enrol at their next sign-in)",
        check=lambda roles: all(role in ROLE_NAMES for role in roles),
        expected="a list of roles (admin, auditor, user)", default_factory=list)
    issuer: str = field("the name authenticator apps show for the accounts",
                        default="Archiver")


MIN_SECRET_LENGTH = mirror_secret.MIN_LENGTH


@dataclass(frozen=True)
class MirrorConfig:
    listen: str = field("address and port the mirror server listens on", check=_listen_address,
                        expected="HOST:PORT, e.g. 0.0.0.0:8443", default="0.0.0.0:8443")
    secret: str | None = field("the secret all mirrored systems share; when set, the one in "
                               "use (`archiver mirror join` then takes no other)",
                               check=lambda v: mirror_secret.problem(v) is None,
                               expected=f"a secret of {mirror_secret.RULE}",
                               secret=True, default=None)
    peers: list[str] = field("peers to copy to, HOST:PORT", default_factory=list,
                             check=lambda peers: all(_listen_address(p) for p in peers),
                             expected="a list of HOST:PORT")
    retry_first_seconds: float = field(
        "seconds before the first retry of a peer that is unreachable, refuses or cannot "
        "store now; each retry waits twice as long, up to retry_cap_seconds (a hello from "
        "the peer cuts any wait short)", check=positive,
        expected="a positive number of seconds", default=1.0)
    # The cap bounds how long copying waits after a link cut heals (neither side says hello
    # until one of them retries): measured up to 26 s with 30 s, a tenth of a 20k catch-up.
    retry_cap_seconds: float = field(
        "the longest wait between retries of a peer: how long copying may wait after a cut "
        "link heals", check=positive, expected="a positive number of seconds", default=10.0)
    # A peer that joins back later shows as two-way within this time.
    rehello_seconds: float = field(
        "seconds between hellos to a connected peer (settings, holds and whether it copies "
        "back are exchanged again)", check=positive,
        expected="a positive number of seconds", default=10.0)
    # A cut link resets nothing: a request waits for its reply until this read timeout says
    # the peer is gone (a durable batch on a healthy peer takes well under a second; the
    # timer runs while a batch is sent too, so it must outlast sending 16 MiB on a slow link).
    read_timeout_seconds: float = field(
        "seconds a request to a peer waits for its reply (while it is sent too) before the "
        "peer counts as gone: how long a cut link takes to show as offline; it must outlast "
        "sending a 16 MiB batch over the link", check=positive,
        expected="a positive number of seconds", default=30.0)


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
    timezone: str = field("the time zone whose days searches mean (date:, before:, after:)",
                          check=_time_zone, default="UTC",
                          expected="an IANA time zone name, e.g. UTC or Europe/Berlin")
    directory: DirectoryConfig | None = field("signing in with LDAP or Active Directory",
                                              default=None)
    two_factor: TwoFactorConfig = field("two-factor (TOTP) codes for local and directory accounts",
                                        default_factory=TwoFactorConfig)
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
    _check_journal_accounts(config, path)
    _check_directory(config.directory, path)
    object.__setattr__(config, "source", str(path))
    return config


def _check_model(config: Config, path: Path) -> None:
    catalog = load_models()
    if config.model is not None and config.model not in catalog:
        known = ", ".join(str(p.model) for p in catalog)
        raise ConfigError(path, "model", f"one of the models {known}", got=config.model)


def _check_journal_accounts(config: Config, path: Path) -> None:
    seen = set()
    for position, account in enumerate(config.journal_accounts):
        if account.name in seen:
            raise ConfigError(path, f"journal_accounts[{position}].name",
                              "a name no other account has", got=account.name)
        seen.add(account.name)
        _check_ca_file(account.ca_file, f"journal_accounts[{position}].ca_file", path)


def _check_ca_file(ca_file: str | None, key: str, path: Path) -> None:
    """A CA file given must be a PEM file of certificates that TLS can load, found when the
    configuration is loaded rather than at the first connection."""
    if ca_file is None:
        return
    if not Path(ca_file).is_file():
        raise ConfigError(path, key, "a PEM file that exists", got=ca_file)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=ca_file)
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(path, key, f"a PEM file of CA certificates ({error})",
                          got=ca_file) from None


def _check_directory(directory: DirectoryConfig | None, path: Path) -> None:
    """What each key allows alone, the keys must also allow together."""
    if directory is None:
        return
    if directory.start_tls and directory.uri.startswith("ldaps:"):
        raise ConfigError(path, "directory.start_tls", "false with an ldaps:// uri (it is TLS "
                          "from the start)", got=True)
    if directory.bind_password is not None and directory.bind_password_file is not None:
        raise ConfigError(path, "directory.bind_password_file", "either bind_password or "
                          "bind_password_file, not both", got=directory.bind_password_file)
    given = directory.bind_password is not None or directory.bind_password_file is not None
    if given != (directory.bind_dn is not None):
        key = "directory.bind_dn" if given else "directory.bind_password"
        raise ConfigError(path, key, "bind_dn together with bind_password or "
                          "bind_password_file (or neither, for anonymous searches)")
    base = _dn_parts(directory.base_dn)
    for key in ("admin_groups", "auditor_groups"):
        for dn in getattr(directory, key):
            if _dn_parts(dn)[-len(base):] != base or not base:
                raise ConfigError(path, f"directory.{key}", "group DNs under base_dn "
                                  f"({directory.base_dn}): groups are searched there", got=dn)
    _check_ca_file(directory.ca_file, "directory.ca_file", path)
