"""Accounts of the web UI and HTTP API: a name, a role, email addresses and a password
kept only as an scrypt hash (random salt).

Roles: admin (everything), auditor (search and export all mail, saved searches, holds; no
system settings), user (only mail sent from or to one of the account's addresses).

Where they live (node-local, never replicated, like every password):
  - the firstboot admin: DATA/admin.json (services.appliance.admin_password), role admin;
  - every other account: the store's node-local setting "user:NAME" =
    {"role", "emails": [...], "password": {"scheme": "scrypt", "n", "r", "p", "salt",
    "hash"}, "created": epoch, "disabled": bool (absent: false)}.

A disabled account keeps its record (its audit trail names it) but logs in no more, and
its sessions end (its credential stamp changes).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import ArchiverError

from services.appliance import admin_password, totp
from services.archive.addresses import lowercase_ascii
from services.archive.archive import Archive
from services.policy.audit import Actor

ROLES = ("admin", "auditor", "user")
SETTING_PREFIX = "user:"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
EMAIL_PATTERN = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")
MIN_PASSWORD_LENGTH = admin_password.MIN_LENGTH
# Checked against when the name is unknown, so a login takes as long either way and does
# not tell which names exist.
_DECOY = admin_password.decoy()


class UserError(ArchiverError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    role: str
    emails: tuple[str, ...]
    password: dict  # the scrypt record
    disabled: bool = False
    created: float | None = None
    disablings: int = 0  # times the account was disabled: each ends its sessions for good

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role)

    @property
    def credential_stamp(self) -> str:
        """Changes whenever the password does, and when the account is disabled: sessions
        opened before end, and stay ended once it is enabled again (a session stolen
        before it was disabled must not come back). (A new role needs no new session: each
        request reads it.)"""
        stamp = self.password.get("hash", "")[:16]
        if self.disablings:
            stamp = f"{stamp}:{self.disablings}"
        return f"{stamp}:disabled" if self.disabled else stamp

    def as_json(self) -> dict:
        return {"name": self.name, "role": self.role, "emails": list(self.emails)}


def get(archive: Archive, name: str) -> User | None:
    if name == admin_password.ADMIN_USER:
        return _firstboot_admin(archive)
    record = archive.store.setting(SETTING_PREFIX + name)
    return _user(name, record) if record else None


def all_users(archive: Archive) -> list[User]:
    admin = _firstboot_admin(archive)
    stored = [_user(key[len(SETTING_PREFIX):], record)
              for key, record in archive.store.settings_with_prefix(SETTING_PREFIX).items()]
    return ([admin] if admin else []) + sorted(stored, key=lambda user: user.name)


def authenticate(archive: Archive, name: str, password: str) -> User | None:
    """The user if `password` is theirs, else None (in about the same time either way)."""
    user = get(archive, name)
    matches = admin_password.verify(user.password if user else _DECOY, password)
    return user if user is not None and matches and not user.disabled else None


def add(archive: Archive, name: str, role: str, emails: list[str], password: str) -> User:
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"user name {name!r}: expected 1-64 letters, digits, '.', '_', '@' "
                        "or '-', starting with a letter or digit")
    if name == admin_password.ADMIN_USER:
        raise UserError(f"{name!r} is the appliance's administrator from firstboot "
                        "(archiver user passwd sets its password)")
    if get(archive, name) is not None:
        raise UserError(f"there is already a user named {name!r}")
    alike = [user.name for user in all_users(archive) if user.name.casefold() == name.casefold()]
    if alike or name.casefold() == admin_password.ADMIN_USER:
        # Told apart by case only, two accounts would be mistaken for each other (in the
        # users list, the audit log, the login throttle, which counts names caseless).
        raise UserError(f"user name {name!r}: there is already a user named "
                        f"{(alike or [admin_password.ADMIN_USER])[0]!r}, the same but for case")
    if role not in ROLES:
        raise UserError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    addresses = _check_emails(emails)
    if role == "user" and not addresses:
        raise UserError("a user sees only mail from or to their addresses: give at least "
                        "one --email")
    record = {"role": role, "emails": addresses, "password": hash_password(password),
              "created": time.time()}
    archive.store.set_setting(SETTING_PREFIX + name, record)
    return _user(name, record)


def set_password(archive: Archive, name: str, password: str) -> User:
    """The account as written with its new password (a session opened after the change
    is of this one, not of whatever another writer stored since)."""
    if name == admin_password.ADMIN_USER:  # also makes it, if firstboot never ran here
        _check_length(password)
        archive.data_dir.mkdir(parents=True, exist_ok=True)
        admin_password.save(archive.data_dir, admin_password.hashed(password),
                            owner=_data_owner(archive.data_dir))
        return _firstboot_admin(archive)
    record = _stored_record(archive, name)
    record["password"] = hash_password(password)
    archive.store.set_setting(SETTING_PREFIX + name, record)
    return _user(name, record)


def set_role(archive: Archive, name: str, role: str) -> None:
    """Give a stored account another role (UserError for the firstboot admin, an unknown
    name or role, or a user without addresses)."""
    if role not in ROLES:
        raise UserError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    record = _stored_record(archive, _not_firstboot(name, "keeps the admin role"))
    if role == "user" and not record.get("emails"):
        raise UserError(f"{name!r} has no email address: a user sees only mail from or to "
                        "their addresses")
    record["role"] = role
    archive.store.set_setting(SETTING_PREFIX + name, record)


def set_disabled(archive: Archive, name: str, disabled: bool) -> None:
    """Disable an account (no more logins, its sessions end) or enable it again."""
    record = _stored_record(archive, _not_firstboot(name, "cannot be disabled"))
    if disabled and not record.get("disabled"):
        record["disablings"] = record.get("disablings", 0) + 1
    record["disabled"] = bool(disabled)
    archive.store.set_setting(SETTING_PREFIX + name, record)


def _not_firstboot(name: str, what: str) -> str:
    if name == admin_password.ADMIN_USER:
        raise UserError(f"{name!r} is the appliance's administrator from firstboot: it {what}")
    return name


def remove(archive: Archive, name: str) -> None:
    if name == admin_password.ADMIN_USER:
        raise UserError(f"{name!r} is the appliance's administrator from firstboot; it "
                        "cannot be removed (change its password instead)")
    _stored_record(archive, name)
    archive.store.set_setting(SETTING_PREFIX + name, None)
    totp.remove(archive, name)  # a new account of the name starts without the old codes


def hash_password(password: str) -> dict:
    _check_length(password)
    return {key: value for key, value in admin_password.hashed(password).items()
            if key != "user"}


def _check_length(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def _check_emails(emails: list[str]) -> list[str]:
    addresses = []
    for email in emails:
        address = lowercase_ascii(email.strip())
        if not EMAIL_PATTERN.fullmatch(address):
            raise UserError(f"email address {email!r}: expected NAME@DOMAIN")
        if address not in addresses:
            addresses.append(address)
    return addresses


def _stored_record(archive: Archive, name: str) -> dict:
    record = archive.store.setting(SETTING_PREFIX + name)
    if record is None:
        raise UserError(f"there is no user named {name!r}")
    return record


def _user(name: str, record: dict) -> User:
    return User(name, record["role"], tuple(record.get("emails", [])), record["password"],
                bool(record.get("disabled")), record.get("created"),
                int(record.get("disablings", 0)))


def _data_owner(data_dir: Path) -> tuple[int, int] | None:
    """(uid, gid) of the data folder when root writes there (on the console), so the web
    service, the data's owner, reads what root wrote; None for anyone else."""
    if os.geteuid() != 0:
        return None
    owner = Path(data_dir).stat()
    return owner.st_uid, owner.st_gid


def _firstboot_admin(archive: Archive) -> User | None:
    record = admin_password.load(archive.data_dir)
    if record is None:
        return None
    return User(admin_password.ADMIN_USER, "admin", (), record)
