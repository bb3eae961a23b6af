"""Who a name and password sign in as: a local account (services.appliance.users) when one
has the name, else the company directory (services.appliance.directory) when one is
configured. A local name shadows the directory's, so the firstboot admin and every local
account sign in whatever the directory does; a directory account whose name equals a local
account's once case and width are set aside (NFKC case folding, Unicode's identifier
matching: "ADMIN", "Admin" and fullwidth "ＡＤＭＩＮ" are all "admin") never signs in, so
no two accounts' names (nor their audit entries) differ only so.

A directory user becomes a users.User with the directory's addresses and role, whose
credential stamp is made from their DN, when their password was last set (AD's
pwdLastSet, ppolicy's pwdChangedTime), their entry's id for life (objectGUID,
entryUUID) and, in AD, the writes that last changed whether it may sign in
(directory.access_writes): it never equals a local account's, nor a removed entry's whose
DN a later one was given, so a session
opened for one can never pass for the other, and a password reset in the directory ends
the sessions opened before it (at the next refresh), as a local password change does; so
does an AD account disabled (expired, locked out) and enabled again between two refreshes.
What the directory said is kept for directory.refresh_seconds; a session that outlives
it reads the entry again, and a user since removed, disabled (expired, locked out, ...:
directory.disabled_reason), given a new password or moved out of user_filter loses
access then, and every session opened before that refusal ends for good (refused_at;
services.web.auth deletes them): enabled again, the user signs in afresh, as after a
password reset. While the
directory cannot be read, directory users' sessions are not honoured (closed, not
open): only the directory can say they still may. A name two entries answer to (one was
added) ends the sessions as a removed user does.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
import unicodedata
from dataclasses import dataclass

from firmware.errors import ArchiverError

from services.appliance import users
from services.appliance.admin_password import ADMIN_USER
from services.appliance.directory import (AmbiguousName, Directory, DirectoryAccount,
                                          DirectoryBusy, DirectoryError, is_utf8)
from services.appliance.users import User
from services.archive.archive import Archive
from services.common.config import DirectoryConfig

log = logging.getLogger(__name__)

DIRECTORY_SCHEME = "directory"  # User.password["scheme"] of a directory user


class InvalidName(ArchiverError):
    """A name that is no text: a lone surrogate, which UTF-8 (RFC 3629) cannot carry."""


class LocalNameTaken(ArchiverError):
    """The directory account's name is a local account's (but for case or width)."""


@dataclass
class _Known:
    user: User
    read: float  # clock() when the directory last said so


class SignIn:
    """Password checks and session look-ups for the web service (thread-safe)."""

    def __init__(self, archive: Archive, directory: DirectoryConfig | None,
                 clock=time.monotonic):
        self.archive, self.clock = archive, clock
        self.directory = Directory(directory) if directory is not None else None
        self.refresh_seconds = directory.refresh_seconds if directory is not None else 0.0
        self._known: dict[str, _Known] = {}
        # name -> when (time.time(), the clock of web sessions' "created") the directory
        # last refused it: removed, disabled, or two entries answer to it
        self._refused: dict[str, float] = {}
        self._lock = threading.Lock()

    def authenticate(self, name: str, password: str) -> User | None:
        """The user `name` and `password` sign in as, None if they sign in as no one.
        Raises DirectoryError (DirectoryBusy) when only the directory could tell and it
        cannot answer now; LocalNameTaken when the password is a directory account's whose
        name is a local account's but for case or width; InvalidName for a name that is no
        text (a password that is none is a wrong one)."""
        if not is_utf8(name):
            raise InvalidName("the name is not valid text (it holds a lone surrogate, which "
                              "UTF-8 cannot carry): give the name as you type it")
        if not is_utf8(password):
            return None
        if self.directory is None or users.get(self.archive, name) is not None:
            return users.authenticate(self.archive, name, password)
        account = self.directory.check_password(name, password)
        if account is None:
            return None
        user = self._remember(account)
        if user is None:
            raise LocalNameTaken(f"the directory account {account.name} has the name of a "
                                 "local account of this appliance (but for case or width): "
                                 "only the local account signs in")
        return user

    def current(self, name: str, stamp: str) -> User | None:
        """The user a session opened for (`name`, credential `stamp`) is now, or None when
        it may no longer be honoured (removed, new password, disabled in the directory, or
        the directory unreadable when its entry was due to be read again)."""
        local = users.get(self.archive, name)
        if local is not None or not is_directory_stamp(stamp) or self.directory is None:
            return local if local is not None and local.credential_stamp == stamp else None
        with self._lock:
            known = self._known.get(name)
        if known is not None and self.clock() - known.read < self.refresh_seconds:
            user = known.user
        else:
            user = self._refresh(name)
        return user if user is not None and user.credential_stamp == stamp else None

    def refused_at(self, name: str) -> float | None:
        """When (epoch seconds) a refresh last found the directory user `name` removed,
        disabled (directory.disabled_reason: expired, locked out, ...) or ambiguous; None if
        never. The sessions opened before then must end, not come back when it is enabled
        again."""
        with self._lock:
            return self._refused.get(name)

    def _refresh(self, name: str) -> User | None:
        """Raises DirectoryBusy: the session is neither honoured nor ended then."""
        try:
            account = self.directory.account(name)
        except AmbiguousName as error:
            log.warning("directory: %s: their sessions end", error)
            account = None
        except DirectoryBusy:
            raise
        except DirectoryError as error:
            log.warning("directory: cannot read %s again: %s", name, error)
            return None
        if account is None or account.disabled:
            log.info("directory: %s %s: their sessions end", name,
                     account.disabled if account else "is no longer in the directory")
            with self._lock:
                self._known.pop(name, None)
                self._refused[name] = time.time()
            return None
        return self._remember(account)

    def _remember(self, account: DirectoryAccount) -> User | None:
        if self._local_name(account.name):
            log.warning("directory: %s (%s) has the name of a local account; only the local "
                        "account signs in", account.name, account.dn)
            return None
        user = directory_user(account)
        with self._lock:
            self._known[account.name] = _Known(user, self.clock())
        return user


    def _local_name(self, name: str) -> bool:
        """Whether `name` is the firstboot admin's or a local account's, but for case and
        width (NFKC case folding)."""
        folded = folded_name(name)
        return folded == folded_name(ADMIN_USER) or any(
            folded_name(user.name) == folded for user in users.all_users(self.archive))


def folded_name(name: str) -> str:
    """`name` as Unicode compares identifiers (NFKC_Casefold, UAX #31 / UTS #39 style):
    NFKC, case folding, NFKC again."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def directory_user(account: DirectoryAccount) -> User:
    """The archiver's view of a directory account; its "password" record holds no secret,
    only what makes its credential stamp: the DN, when the password was last set, the
    entry's id for life (directory.ID_ATTRIBUTES) and AD's last writes of whether it may
    sign in (directory.access_writes), so that a password reset in the directory, or an AD
    account disabled and enabled again, ends the sessions opened before it, and a session
    (or a login waiting for its code) of a removed entry never passes for a later entry
    given the same DN (a
    directory without a password-set attribute, or the same second, would give the same
    stamp otherwise)."""
    stamped = "\n".join([account.dn.lower(), account.password_set or "",
                         account.entry_id or "", account.access_writes or ""])
    digest = hashlib.sha256(stamped.encode()).hexdigest()
    return User(account.name, account.role, account.emails,
                {"scheme": DIRECTORY_SCHEME, "dn": account.dn, "entry_id": account.entry_id,
                 "hash": f"{DIRECTORY_SCHEME}:{digest}"})


def two_factor_name(user: User) -> str:
    """The name `user`'s two-factor codes are kept under (services.appliance.totp): a local
    account's own name; for a directory account "directory:" and its entry's id for life
    (directory.ID_ATTRIBUTES), so an account that later takes a removed one's name neither
    inherits its codes nor is locked out by them, and a renamed one keeps them. A directory
    that gives no such id keys them by DN ("directory-dn:"). Local names hold no ":"
    (users.NAME_PATTERN), so the two never meet."""
    if not is_directory_user(user):
        return user.name
    entry_id = user.password.get("entry_id")
    if entry_id:
        return f"directory:{entry_id}"
    return f"directory-dn:{user.password['dn'].lower()}"


def is_directory_stamp(stamp: str) -> bool:
    return stamp.startswith(f"{DIRECTORY_SCHEME}:")


def is_directory_user(user: User) -> bool:
    return user.password.get("scheme") == DIRECTORY_SCHEME
