"""Signing in with the company directory: LDAP (RFC 4511, simple bind RFC 4513) against
OpenLDAP or Active Directory, through Debian's python3-ldap3.

A password is checked by binding as the user (the directory keeps and checks it; its
hashes are never read). Everything else is read with the configured service account
(directory.bind_dn), or anonymously without one:

  - the user: the one entry under base_dn matching user_filter whose login attribute
    (uid; sAMAccountName or userPrincipalName) is the name given;
  - their addresses: every value of mail_attributes; of AD's proxyAddresses only the
    "smtp:" entries (any case; "SMTP:" is the primary one), never X500:, SIP: and the like;
  - their groups, nested ones included, group by group: each level's groups must match
    group_filter, so nesting passes only through groups that count (AD's preset: security
    groups; a distribution list nested in an admin group makes none of its members
    admins, as Windows gives them no such membership). AD's LDAP_MATCHING_RULE_IN_CHAIN
    would follow every group, distribution lists included, and is not used;
  - their role: admin if one of those groups is in admin_groups, else auditor if one is in
    auditor_groups, else user (groups are compared by DN: a group of the same name
    elsewhere in the tree gives nothing; AD's presets count only security groups);
  - whether they may sign in at all: not when AD's userAccountControl has ACCOUNTDISABLE
    (bit 2), its accountExpires has passed, or its msDS-User-Account-Control-Computed says
    locked out (UF_LOCKOUT) or that the password expired or must be changed at the next
    logon (UF_PASSWORD_EXPIRED, pwdLastSet 0) ([MS-ADTS], [MS-SAMR]); nor when
    OpenLDAP's ppolicy has locked the entry (pwdAccountLockedTime) or wants the password
    an administrator set changed first (pwdReset TRUE, under pwdMustChange: the bind
    succeeds, only a password change may follow: draft-behera-ldap-password-policy).
    AD refuses such a user's bind by itself; these are read so that a signed-in user loses
    access too;
  - when their password was last set (AD's pwdLastSet, ppolicy's pwdChangedTime), part of
    their sessions' credential stamp: a password reset ends the sessions opened before it;
  - AD: how often, and by which write, userAccountControl, accountExpires and lockoutTime
    were last written (access_writes: the entry's replication metadata), part of the stamp
    too, so that an account disabled (expired, locked out) and enabled again between two
    refreshes loses the sessions opened before. OpenLDAP keeps no such thing per attribute
    (only entryCSN and modifyTimestamp, which every write to the entry changes, ppolicy's
    record of each failed bind and lastbind's of each successful one included).

A name the directory does not know costs the same work as a wrong password (a search,
then a bind, against a DN no entry has), and groups are read only once the password is
right: how long a failed sign-in takes does not tell which names exist.

At most directory.concurrency operations run at once per directory in a process (each can
hold a thread for up to timeout_seconds when the directory hangs); one more is refused at
once (DirectoryBusy), never queued behind them.

Errors: DirectoryError when the directory cannot answer (unreachable, TLS refused, the
service account refused, directory.ca_file gone or spoiled since the config was loaded); a
wrong password or an unknown name is not an error but None.
"""
from __future__ import annotations

import ast
import logging
import math
import secrets
import ssl
import struct
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.protocol.sasl.sasl import validate_simple_password
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from firmware.errors import ArchiverError

from services.archive.addresses import lowercase_ascii
from services.common.config import DirectoryConfig

log = logging.getLogger(__name__)

ACCOUNTDISABLE = 0x2  # userAccountControl bit of a disabled AD account
UF_LOCKOUT, UF_PASSWORD_EXPIRED = 0x10, 0x800000  # msDS-User-Account-Control-Computed bits
ACCOUNT_NEVER_EXPIRES = (0, 0x7FFFFFFFFFFFFFFF)  # accountExpires values that mean never
FILETIME_UNIX_EPOCH = 116444736000000000  # 1970-01-01 in 100 ns since 1601 (FILETIME)
PASSWORD_SET_ATTRIBUTES = ("pwdLastSet", "pwdChangedTime")  # AD; OpenLDAP ppolicy
STATE_ATTRIBUTES = ("userAccountControl", "accountExpires", "msDS-User-Account-Control-Computed",
                    "pwdAccountLockedTime", "pwdReset", *PASSWORD_SET_ATTRIBUTES)
# An entry's identity for life, kept through renames and moves and never given to another
# entry: AD's objectGUID (16 bytes, [MS-ADA3]), the entryUUID of RFC 4530 elsewhere. Only
# the one of the directory's kind is read: elsewhere an attribute of the other's name is
# no identity (a schema may define objectGUID as an ordinary attribute someone can write,
# and so make an entry's id another's).
ID_ATTRIBUTES = ("objectGUID", "entryUUID")
ID_ATTRIBUTE_OF_KIND = {"ad": "objectGUID", "openldap": "entryUUID"}
# AD's replication metadata of an entry (replPropertyMetaDataBlob, version 1: per
# attribute its version, raised by each originating write, the same on every DC, and which
# write that was; layout as Samba's drsblobs.idl). Of it, the attributes that say whether
# an account may sign in, by their ATTRTYP (the base schema's prefix 9,
# 1.2.840.113556.1.4, and the OID's last arc).
METADATA_ATTRIBUTE = "replPropertyMetaData"
ACCESS_ATTRIBUTE_TYPES = {0x00090008: "userAccountControl", 0x0009009F: "accountExpires",
                          0x00090296: "lockoutTime"}
_METADATA_HEADER, _METADATA_ENTRY = struct.Struct("<IIII"), struct.Struct("<IIQ16sqq")
INVALID_CREDENTIALS = 49  # RFC 4511 resultCode: wrong password, or AD's disabled/locked
SIZE_LIMIT_EXCEEDED = 4  # more entries than asked for: enough to know a name is ambiguous
FILTER_BATCH = 50  # member DNs per group search
MAX_NAME_LENGTH = 256
MAX_GROUP_DEPTH = 16  # nesting followed group by group; deeper is a loop or a mistake
MAX_GROUPS = 5000


class DirectoryError(ArchiverError):
    """The directory cannot answer now. `state`: "unreachable" (no connection, TLS failed)
    or "failing" (it answers, but refuses the service account, a search, ...)."""

    def __init__(self, message: str, state: str = "failing"):
        super().__init__(message)
        self.state = state


class DirectoryBusy(DirectoryError):
    """directory.concurrency operations are already waiting for the directory: this one is
    refused at once rather than queued (a hung directory must not hold every thread)."""

    def __init__(self, uri: str, concurrency: int):
        super().__init__(f"{uri}: directory busy: {concurrency} directory operations are "
                         "already waiting for its answers (directory.concurrency); try again "
                         "in a moment", "busy")


class AmbiguousName(ArchiverError):
    """More than one directory entry answers to a login name."""


PLAIN_TEXT_WARNING = ("passwords cross the network in clear (ldap:// without start_tls): "
                      "use ldaps:// or start_tls: true")

_gates: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


def _gate(config: DirectoryConfig) -> threading.BoundedSemaphore:
    """The process's one semaphore for this directory: its uri and concurrency."""
    key = (config.uri, config.concurrency)
    with _gates_lock:
        return _gates.setdefault(key, threading.BoundedSemaphore(config.concurrency))


@dataclass(frozen=True)
class DirectoryAccount:
    """What the directory says of one user."""
    name: str  # the value of name_attribute: the account's name in the archiver
    dn: str
    emails: tuple[str, ...]  # lower-cased, primary first, each once
    groups: tuple[str, ...]  # DNs of every group they are in, nested ones included
    role: str  # admin, auditor or user
    disabled: str | None  # why they may not sign in, or None
    password_set: str | None = None  # pwdLastSet or pwdChangedTime as the directory says
    entry_id: str | None = None  # ID_ATTRIBUTES as a UUID string; None if the entry has none
    access_writes: str | None = None  # AD: access_writes(); None elsewhere

    def as_json(self) -> dict:
        return {"name": self.name, "dn": self.dn, "emails": list(self.emails),
                "groups": list(self.groups), "role": self.role, "disabled": self.disabled}


class Directory:
    """One configured directory. Each call opens its own connection (the web service calls
    from several threads; sign-ins are rare enough that pooling buys nothing)."""

    def __init__(self, config: DirectoryConfig):
        self.config = config
        parsed = urlsplit(config.uri)
        self.host, self.use_ssl = parsed.hostname, parsed.scheme == "ldaps"
        self.port = parsed.port or (636 if self.use_ssl else 389)

    # -- what callers use -----------------------------------------------------------------

    def check_password(self, login: str, password: str) -> DirectoryAccount | None:
        """The account of `login` if `password` is theirs and they may sign in, else None
        (also for a password no LDAP simple bind can carry: RFC 4013 SASLprep refuses
        control characters). An unknown, ambiguous or disabled name costs one bind as a
        wrong password does. Raises DirectoryBusy, DirectoryError when the directory cannot
        answer."""
        if not password or not _plausible_name(login) or not bindable(password):
            return None  # an empty password binds anonymously (RFC 4513 5.1.2): never a login
        with self._slot(), self._service() as connection:
            try:
                entry = self._entry(connection, self.config.login_attributes, login)
            except AmbiguousName as error:
                log.warning("directory: %s", error)
                entry = None
            disabled = entry is not None and disabled_reason(entry["attributes"]) is not None
            dn = entry["dn"] if entry is not None else self._decoy_dn()
            if not self._binds_as(dn, password) or entry is None or disabled:
                return None
            return self._account(connection, entry)  # groups only for the right password

    def find(self, login: str) -> DirectoryAccount | None:
        """The account `login` names through any login attribute, None if none does.
        Raises AmbiguousName, DirectoryBusy, DirectoryError."""
        return self._find(self.config.login_attributes, login)

    def account(self, name: str) -> DirectoryAccount | None:
        """The account whose name_attribute is `name` (refreshing a signed-in user)."""
        return self._find([self.config.name_attribute], name)

    def probe(self) -> dict:
        """The directory's state for status: {"uri", "state": "ok", "unreachable",
        "failing" or "busy" (see DirectoryError), "error", "warning" (None, or what is
        unsafe in the settings though it works), "checked"} (checked: epoch seconds)."""
        state = {"uri": self.config.uri, "state": "ok", "error": None,
                 "warning": self.warning(), "checked": time.time()}
        try:
            with self._slot(), self._service() as connection:
                self._search(connection, self.config.base_dn, "(objectClass=*)", [],
                             scope=ldap3.BASE)
        except DirectoryError as error:
            state.update(state=error.state, error=str(error))
        return state

    def warning(self) -> str | None:
        """What is unsafe in the settings though it works: a plain ldap:// uri without
        start_tls sends every password (the users' and bind_dn's) in clear."""
        plain = not self.use_ssl and not self.config.start_tls
        return PLAIN_TEXT_WARNING if plain else None

    @contextmanager
    def _slot(self):
        """Hold one of directory.concurrency places; DirectoryBusy when none is free."""
        gate = _gate(self.config)
        if not gate.acquire(blocking=False):
            raise DirectoryBusy(self.config.uri, self.config.concurrency)
        try:
            yield
        finally:
            gate.release()

    # -- searching ------------------------------------------------------------------------

    def _find(self, attributes: list[str], value: str) -> DirectoryAccount | None:
        if not _plausible_name(value):
            return None
        with self._slot(), self._service() as connection:
            entry = self._entry(connection, attributes, value)
            return self._account(connection, entry) if entry is not None else None

    def _entry(self, connection: ldap3.Connection, attributes: list[str],
               value: str) -> dict | None:
        """The one user entry whose `attributes` include `value`; None if none does.
        Raises AmbiguousName."""
        wanted = escape_filter_chars(value)
        alternatives = "".join(f"({attribute}={wanted})" for attribute in attributes)
        query = f"(&{self.config.user_filter}(|{alternatives}))"
        entries = self._search(connection, self.config.base_dn, query,
                               self._user_attributes(), size_limit=2)
        if len(entries) > 1:
            raise AmbiguousName(f"{len(entries)} directory entries answer to {value!r} "
                                f"({entries[0]['dn']}, {entries[1]['dn']}); none signs in")
        return entries[0] if entries else None

    def _decoy_dn(self) -> str:
        """A DN no entry has, to bind against for a name the directory does not know (the
        directory answers invalidCredentials, as for a wrong password)."""
        return f"cn=archiver-no-such-user-{secrets.token_hex(8)},{self.config.base_dn}"

    def _user_attributes(self) -> list[str]:
        config = self.config
        return list(dict.fromkeys([config.name_attribute, *config.login_attributes,
                                   *config.mail_attributes, *STATE_ATTRIBUTES,
                                   *self._id_attributes(),
                                   *([METADATA_ATTRIBUTE] if config.kind == "ad" else [])]))

    def _id_attributes(self) -> tuple[str, ...]:
        kind = ID_ATTRIBUTE_OF_KIND.get(self.config.kind)
        return (kind,) if kind else ID_ATTRIBUTES

    def _account(self, connection: ldap3.Connection, entry: dict) -> DirectoryAccount:
        values = entry["attributes"]
        names = values.get(self.config.name_attribute.lower(), [])
        groups = self._groups(connection, entry["dn"])
        return DirectoryAccount(
            name=names[0] if names else entry["dn"], dn=entry["dn"],
            emails=tuple(addresses(values, self.config.mail_attributes)),
            groups=tuple(groups),
            role=role_of(groups, self.config.admin_groups, self.config.auditor_groups),
            disabled=disabled_reason(values), password_set=password_set(values),
            entry_id=entry["id"], access_writes=entry["access_writes"])

    def _groups(self, connection: ldap3.Connection, user_dn: str) -> list[str]:
        """The DN of every group matching group_filter that `user_dn` is in, directly or
        through other such groups (one search a level of nesting, MAX_GROUP_DEPTH at
        most)."""
        found: dict[str, str] = {}  # normalized DN -> DN
        members = [user_dn]
        for _ in range(MAX_GROUP_DEPTH):  # one level of nesting a round
            entries = [entry for start in range(0, len(members), FILTER_BATCH)
                       for entry in self._groups_with_member(connection,
                                                             members[start:start + FILTER_BATCH])]
            members = []
            for entry in entries:
                key = normalized_dn(entry["dn"])
                if key not in found and len(found) < MAX_GROUPS:  # a loop ends here
                    found[key] = entry["dn"]
                    members.append(entry["dn"])
            if not members:
                break
        return list(found.values())

    def _groups_with_member(self, connection: ldap3.Connection, dns: list[str]) -> list[dict]:
        members = _any_of(self.config.member_attributes, dns)
        return self._search(connection, self.config.base_dn,
                            f"(&{self.config.group_filter}{members})", [])

    def _search(self, connection: ldap3.Connection, base: str, query: str,
                attributes: list[str], scope=ldap3.SUBTREE, size_limit: int = 0) -> list[dict]:
        """The entries found (references to other servers left out), each {"dn",
        "attributes": {lower-cased name: [str, ...]}}."""
        try:
            connection.search(base, query, search_scope=scope, attributes=attributes or
                              [ldap3.NO_ATTRIBUTES], size_limit=size_limit)
        except ldap_errors.LDAPInvalidFilterError as error:
            raise DirectoryError(f"the directory's filter {query!r} is not valid LDAP "
                                 f"({error}): see directory.user_filter and group_filter") from None
        except Exception as error:  # noqa: BLE001 (as in _open)
            raise DirectoryError(f"{self.config.uri}: search failed: "
                                 f"{_reason(error, self.config)}",
                                 "unreachable") from None
        result = connection.result
        if result["result"] not in (0, SIZE_LIMIT_EXCEEDED):
            raise DirectoryError(f"{self.config.uri}: search under {base} refused: "
                                 f"{result['description']} {result.get('message') or ''}".strip())
        return [{"dn": entry["dn"], "attributes": _decoded(entry["raw_attributes"]),
                 "id": entry_id(entry["raw_attributes"], self.config.kind),
                 "access_writes": access_writes(entry["raw_attributes"], self.config.kind)}
                for entry in connection.response or [] if entry.get("type") == "searchResEntry"]

    # -- connections ----------------------------------------------------------------------

    @contextmanager
    def _service(self):
        """A connection bound as the service account (or anonymous)."""
        dn = self.config.bind_dn
        connection = self._open(dn, self._service_password() if dn else None)
        try:
            if dn is not None and not self._bind(connection):
                raise DirectoryError(f"{self.config.uri}: the service account {dn} was "
                                     "refused (directory.bind_dn and its password)")
            yield connection
        finally:
            _close(connection)

    def _binds_as(self, dn: str, password: str) -> bool:
        connection = self._open(dn, password)
        try:
            return self._bind(connection)
        finally:
            _close(connection)

    def _open(self, dn: str | None, password: str | None) -> ldap3.Connection:
        """A connection (TLS started when configured), not yet bound. Raises DirectoryError
        when the directory cannot be reached or directory.ca_file cannot be used."""
        tls = self._tls()
        # A Server of its own each time: ldap3's remembers an address that failed once as
        # unusable for a while, which would outlast the directory's own outage.
        # whole seconds: ldap3 packs receive_timeout into SO_RCVTIMEO as an integer
        timeout = max(math.ceil(self.config.timeout_seconds), 1)
        server = ldap3.Server(self.host, port=self.port, use_ssl=self.use_ssl, tls=tls,
                              get_info=ldap3.NONE, connect_timeout=timeout)
        connection = ldap3.Connection(
            server, user=dn, password=password,
            authentication=ldap3.SIMPLE if dn else ldap3.ANONYMOUS,
            receive_timeout=timeout, read_only=True,
            auto_referrals=False, raise_exceptions=False)
        try:
            connection.open()
            if self.config.start_tls:
                connection.start_tls()
        except Exception as error:  # noqa: BLE001 (ldap3 lets garbage answers raise anything)
            _close(connection)
            raise DirectoryError(f"{self.config.uri}: {_reason(error, self.config)}",
                                 "unreachable") from None
        return connection

    def _tls(self) -> ldap3.Tls:
        """ldap3's TLS settings. directory.ca_file is read here for each connection, not
        only when the config is loaded: an admin may replace or remove it while the
        appliance runs, and ldap3 would raise its own exception for a missing file, or
        fail the handshake naming no file for an unreadable or spoiled one. Raises
        DirectoryError ("unreachable") naming the file and what is wrong with it."""
        ca_file = self.config.ca_file
        if ca_file is None:
            return ldap3.Tls(validate=ssl.CERT_REQUIRED)
        try:  # read once, checked, and handed to ldap3 as data: it does not read it again
            pem = Path(ca_file).read_bytes().decode("ascii", "replace")
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem)
            return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_data=pem)
        except (OSError, ValueError, ldap_errors.LDAPSSLConfigurationError) as error:
            raise DirectoryError(f"directory.ca_file {ca_file}: {_ca_file_problem(error)}",
                                 "unreachable") from None

    def _bind(self, connection: ldap3.Connection) -> bool:
        """True if the directory accepts the connection's password, False if it refuses it
        (AD also refuses so a disabled, locked or expired account)."""
        try:
            if connection.bind():
                return True
        except Exception as error:  # noqa: BLE001 (as in _open)
            raise DirectoryError(f"{self.config.uri}: bind failed: "
                                 f"{_reason(error, self.config)}",
                                 "unreachable") from None
        result = connection.result
        if result["result"] == INVALID_CREDENTIALS:
            return False
        raise DirectoryError(f"{self.config.uri}: bind as {connection.user} refused: "
                             f"{result['description']}{_hint(result)}")

    def _service_password(self) -> str | None:
        config = self.config
        if config.bind_password_file is None:
            return config.bind_password
        try:
            text = Path(config.bind_password_file).read_text()
        except OSError as error:
            raise DirectoryError(f"directory.bind_password_file {config.bind_password_file}: "
                                 f"cannot be read ({error.strerror})") from None
        return text.splitlines()[0] if text else ""


# -- what an entry says ------------------------------------------------------------------

def addresses(values: dict[str, list[str]], attributes: list[str]) -> list[str]:
    """Every address in `attributes` of an entry, lower-cased, each once. A value with a
    type prefix (AD proxyAddresses: "SMTP:primary", "smtp:alias", "X500:...") counts only
    when the type is smtp; the primary one goes first."""
    found: list[str] = []
    for attribute in attributes:
        typed = sorted(values.get(attribute.lower(), []),
                       key=lambda value: not value.startswith("SMTP:"))
        for value in typed:
            kind, separator, rest = value.partition(":")
            if separator and "@" not in kind:
                if kind.lower() != "smtp":
                    continue
                value = rest
            address = lowercase_ascii(value.strip())
            if _is_address(address) and address not in found:
                found.append(address)
    return found


def role_of(groups: list[str], admin_groups: list[str], auditor_groups: list[str]) -> str:
    """admin, auditor or user from the DNs of a user's groups and the configured group DNs
    (compared as DNs: a group's name alone never matches, since any OU may have one)."""
    def member_of(configured: list[str]) -> bool:
        wanted = {normalized_dn(dn) for dn in configured}
        return any(normalized_dn(dn) in wanted for dn in groups)
    if member_of(admin_groups):
        return "admin"
    return "auditor" if member_of(auditor_groups) else "user"


def disabled_reason(values: dict[str, list[str]], now: float | None = None) -> str | None:
    """Why the entry whose attributes are `values` (lower-cased names) may not sign in, or
    None: AD's userAccountControl, accountExpires (FILETIME, 100 ns since 1601; `now`:
    epoch seconds, default the clock) and msDS-User-Account-Control-Computed, OpenLDAP
    ppolicy's pwdAccountLockedTime and pwdReset."""
    computed = _integer(values, "msds-user-account-control-computed") or 0
    if (_integer(values, "useraccountcontrol") or 0) & ACCOUNTDISABLE:
        return "disabled in Active Directory (userAccountControl)"
    if _expired(_integer(values, "accountexpires"), time.time() if now is None else now):
        return "expired in Active Directory (accountExpires)"
    if computed & UF_LOCKOUT:
        return "locked out in Active Directory (msDS-User-Account-Control-Computed)"
    if computed & UF_PASSWORD_EXPIRED:
        return ("password expired or to be changed at the next logon in Active Directory "
                "(msDS-User-Account-Control-Computed)")
    if values.get("pwdaccountlockedtime"):
        return "locked in the directory (pwdAccountLockedTime)"
    if [value.upper() for value in values.get("pwdreset", [])] == ["TRUE"]:
        return "to change the password an administrator set first (pwdReset)"
    return None


def password_set(values: dict[str, list[str]]) -> str | None:
    """When the entry's password was last set, as the directory writes it (AD pwdLastSet,
    ppolicy pwdChangedTime), or None when it says neither (or hides them)."""
    for attribute in PASSWORD_SET_ATTRIBUTES:
        found = values.get(attribute.lower())
        if found:
            return f"{attribute}={found[0]}"
    return None


def _integer(values: dict[str, list[str]], attribute: str) -> int | None:
    found = values.get(attribute, [])
    return int(found[0]) if found and found[0].lstrip("-").isdigit() else None


def _expired(account_expires: int | None, now: float) -> bool:
    """Whether an AD accountExpires (FILETIME) lies before `now` (epoch seconds)."""
    if account_expires is None or account_expires in ACCOUNT_NEVER_EXPIRES:
        return False
    return (account_expires - FILETIME_UNIX_EPOCH) / 10_000_000 <= now


def normalized_dn(dn: str) -> str:
    """A DN compared as LDAP does (RFC 4514): attribute names and values without case,
    spaces around separators dropped, each separator kept: "cn=A+ou=B,dc=x" (one RDN of
    two values) is another entry than "cn=A,ou=B,dc=x"."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except ldap_errors.LDAPInvalidDnError:
        return dn.strip().lower()
    return "".join(f"{kind.lower()}={value.lower()}{separator}"
                   for kind, value, separator in parts)


def _is_address(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(at and local and "." in domain and value.isprintable()
                and not any(c.isspace() or c in "<>,;:" for c in value))


def _plausible_name(name: str) -> bool:
    return (0 < len(name) <= MAX_NAME_LENGTH and name.isprintable() and name.strip() == name
            and is_utf8(name))


def bindable(password: str) -> bool:
    """Whether an LDAP simple bind can carry `password`: RFC 4013 (SASLprep, as ldap3
    applies it) refuses control characters and the like, and UTF-8 cannot carry a lone
    surrogate; one it maps to nothing (soft hyphens, zero-width spaces) would go out empty,
    an unauthenticated bind that succeeds (RFC 4513 5.1.2). A password that cannot be sent
    is no one's: a wrong password."""
    try:
        return bool(validate_simple_password(password))
    except (ldap_errors.LDAPException, UnicodeError, ValueError):
        return False


def is_utf8(text: str) -> bool:
    """Whether UTF-8 (RFC 3629) can carry `text`: not if it holds a lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeError:
        return False
    return True


def _any_of(attributes: list[str], dns: list[str]) -> str:
    terms = "".join(f"({attribute}={escape_filter_chars(dn)})"
                    for attribute in attributes for dn in dns)
    return f"(|{terms})"


def _close(connection: ldap3.Connection) -> None:
    """Unbind (RFC 4511 4.3) if the connection still works; it is closed either way."""
    try:
        connection.unbind()
    except Exception:  # noqa: BLE001 (a broken socket: nothing left to tell the server)
        try:
            connection.strategy.close()
        except Exception:  # noqa: BLE001
            pass


def entry_id(raw: dict, kind: str | None = None) -> str | None:
    """The entry's ID_ATTRIBUTES value as a lower-case UUID string (RFC 4122 text form):
    objectGUID's 16 bytes are a GUID in Microsoft's mixed-endian layout, entryUUID is
    already text (RFC 4530). Only the attribute of `kind` (ID_ATTRIBUTE_OF_KIND) when the
    directory's kind is given. None when the entry has neither (or a malformed one)."""
    wanted = ID_ATTRIBUTE_OF_KIND.get(kind)
    values = {name.lower(): value for name, value in raw.items()
              if wanted is None or name.lower() == wanted.lower()}
    guid = values.get("objectguid") or []
    if guid and len(guid[0]) == 16:
        return str(uuid.UUID(bytes_le=bytes(guid[0])))
    text = values.get("entryuuid") or []
    try:
        return str(uuid.UUID(text[0].decode("ascii"))) if text else None
    except (ValueError, UnicodeDecodeError):
        return None


def access_writes(raw: dict, kind: str | None) -> str | None:
    """AD: which writes last changed the entry's ACCESS_ATTRIBUTE_TYPES, from its
    replPropertyMetaData: "ATTRTYP:version:originating time:originating DC:its USN" for
    each, in order, the same on every DC (the local USN, which is not, left out). None for
    another kind of directory, or when the entry shows no (or no readable) metadata: a DC
    that hides it from the service account leaves the stamp as without it."""
    values = [value for name, value in raw.items() if name.lower() == METADATA_ATTRIBUTE.lower()]
    blob = bytes(values[0][0]) if kind == "ad" and values and values[0] else b""
    if len(blob) < _METADATA_HEADER.size:
        return None
    version, _, count, _ = _METADATA_HEADER.unpack_from(blob)
    if version != 1 or len(blob) < _METADATA_HEADER.size + count * _METADATA_ENTRY.size:
        return None
    writes = []
    for index in range(count):
        attribute, *write, _local_usn = _METADATA_ENTRY.unpack_from(
            blob, _METADATA_HEADER.size + index * _METADATA_ENTRY.size)
        if attribute in ACCESS_ATTRIBUTE_TYPES:
            changed, when, dc, usn = write
            writes.append(f"{attribute:x}:{changed}:{when}:{dc.hex()}:{usn}")
    return " ".join(sorted(writes))


def _decoded(raw: dict) -> dict[str, list[str]]:
    return {name.lower(): [value.decode("utf-8", "replace") if isinstance(value, bytes)
                           else str(value) for value in values]
            for name, values in raw.items()}


def _ca_file_problem(error: Exception) -> str:
    if isinstance(error, ssl.SSLError):  # read, but OpenSSL found no certificate
        return f"holds no CA certificate in PEM ({error.reason or error})"
    if isinstance(error, OSError):
        return f"cannot be read ({error.strerror})"
    return f"holds no CA certificate in PEM ({error})"  # empty: ValueError; ldap3's own


CERTIFICATE_WORDS = ("certificate", "hostname mismatch", "doesn't match", "ca_certs")
CLOSED_WORDS = ("eof", "connection reset", "closed", "broken pipe", "terminated")


def _reason(error: Exception, config: DirectoryConfig) -> str:
    """What went wrong in words, from ldap3's nested exception texts: a certificate
    refused (see ca_file), no answer in time, the connection refused or closed, or TLS
    failing otherwise; each as what it is."""
    text = _innermost(str(error)) or type(error).__name__
    lower = text.lower()
    if any(word in lower for word in CERTIFICATE_WORDS) or isinstance(
            error, ldap_errors.LDAPCertificateError):
        return f"TLS failed: the certificate was refused ({text}): see directory.ca_file"
    if "timed out" in lower or "timeout" in lower:
        return (f"no answer within {max(math.ceil(config.timeout_seconds), 1)} s ({text}): "
                "is the directory overloaded or the port wrong? (directory.timeout_seconds)")
    if "refused" in lower:
        return f"unreachable: connection refused ({text})"
    if any(word in lower for word in CLOSED_WORDS):
        return (f"the directory closed the connection ({text}): does it speak "
                f"{'TLS (ldaps://)' if 'ssl' in lower or config.uri.startswith('ldaps:') else 'LDAP'}"
                " on this port?")
    if "ssl" in lower or "tls" in lower or isinstance(
            error, (ldap_errors.LDAPStartTLSError, ldap_errors.LDAPSSLConfigurationError)):
        return f"TLS failed ({text})"
    if isinstance(error, (ldap_errors.LDAPSocketOpenError, ldap_errors.LDAPSocketSendError,
                          ldap_errors.LDAPSocketReceiveError, OSError)):
        return f"unreachable ({text})"
    if not isinstance(error, ldap_errors.LDAPException):
        return f"the answer is not LDAP ({type(error).__name__}: {text})"
    return text


def _innermost(text: str) -> str:
    """ldap3 wraps each address's error in tuples of reprs: keep the words."""
    for _ in range(4):
        try:
            value = ast.literal_eval(text[:2000])  # literals only: safe on any text
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            break
        if isinstance(value, tuple) and value:
            value = value[0]
        if not isinstance(value, str):
            break
        text = value
    return text


def _hint(result: dict) -> str:
    if result["result"] == 8:  # strongerAuthRequired: AD refuses simple binds in the clear
        return " (the directory wants TLS for binds: use ldaps:// or start_tls)"
    return f" ({result['message']})" if result.get("message") else ""
