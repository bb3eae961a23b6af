"""Two-factor sign-in for local and directory accounts: time-based one-time passwords
(TOTP, RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, through Debian's python3-pyotp) and
one-time recovery codes.

Enrolment: begin() makes a secret and shows it as an otpauth:// URI, a QR code
(python3-qrcode, inline SVG) and text; nothing is kept until confirm() with a code from
the app switches it on and hands out RECOVERY_CODES recovery codes, shown once. Until then
the Enrolment is its caller's alone (the web session that began it: no other session of
the account sees the secret or switches codes on with it). A code is accepted one step
early or late (clock drift, RFC 6238 section 5.2), and each step only once, never a step
before one already used (a code seen over a shoulder or in a proxy's log is spent). A
recovery code works once in place of a code.

Which codes state an account is in (in_use) has an id that never repeats: codes switched on
get a new random one, and switching them off (remove) leaves a record of its own with
another (a tombstone, {"confirmed": false, "state": id, "off": epoch}) instead of no record.
So web sessions, which note the state they signed in (or proved codes) under, end at any
change (codes on, off, on again, removed by the CLI, the account removed and made again),
however long they made no request; NO_CODES is the state of an account that never had any.

Kept node-local (never replicated, like passwords) in the store's setting
"two_factor:NAME" = {"secret": base32, "confirmed": true (false: an enrolment an older
tree kept while it waited for its code, which counts for nothing), "last_step": int,
"recovery": {"salt": hex, "hashes": [hex, ...]}, "enrolled": epoch, "account": the name the
account signs in with, "state": the id above}; a tombstone counts as no codes. NAME is
what sign_in.two_factor_name gives: a local account's name, or a directory entry's id for
life. The TOTP secret must stay readable to check codes (RFC 6238 is a shared secret);
recovery codes are kept only as salted SHA-256 hashes: they are random (60 bits), so a
slow hash buys nothing.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import pyotp
import qrcode
import qrcode.image.svg

from firmware.errors import ArchiverError

from services.archive.archive import Archive
from services.archive.store import UNCHANGED

SETTING_PREFIX = "two_factor:"
STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
RECOVERY_GROUPS, RECOVERY_GROUP_LENGTH = 3, 4
NO_CODES = "none"  # the state of an account that never had codes (no record at all)
clock = time.time  # what "now" is for codes (tests move it on by steps)


class TwoFactorError(ArchiverError):
    pass


@dataclass(frozen=True)
class Enrolment:
    name: str  # what the codes are to be kept under (NAME above)
    account: str  # the name the account signs in with: the app's label
    secret: str  # base32, for typing into an app by hand
    uri: str  # otpauth://totp/ISSUER:NAME?secret=...&issuer=ISSUER
    qr_svg: str  # the URI as a QR code, an <svg> element to put in a page
    state: str = ""  # the id of the codes state confirming it brings about (in_use)


def enrolled(archive: Archive, name: str) -> bool:
    record = _record(archive, name)
    return bool(record and record.get("confirmed"))


def in_use(archive: Archive, name: str) -> str:
    """The id of the codes state `name` is in (see above): it changes whenever codes go on
    or off, and never comes back."""
    return state_of(_record(archive, name))


def current(archive: Archive, name: str) -> tuple[str, bool]:
    """(in_use, enrolled) of one reading of the record."""
    record = _record(archive, name)
    return state_of(record), bool(record and record.get("confirmed"))


def state_of(record: dict | None) -> str:
    """in_use for a record as read (None: there is none)."""
    if not record:
        return NO_CODES
    if record.get("state"):
        return record["state"]
    # an older tree's records: its codes (by their secret), or an enrolment it kept
    # unconfirmed, which counts for nothing: as no codes
    return codes_id(record["secret"]) if record.get("confirmed") else NO_CODES


def new_state() -> str:
    """A fresh codes state id, never given before."""
    return secrets.token_urlsafe(24)


def codes_id(secret: str) -> str:
    """Which codes a secret makes, telling nothing of it: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def status(archive: Archive, name: str) -> dict:
    """{"enrolled": bool, "recovery_codes_left": int}."""
    record = _record(archive, name) or {}
    return {"enrolled": bool(record.get("confirmed")),
            "recovery_codes_left": len(record.get("recovery", {}).get("hashes", []))}


def begin(archive: Archive, name: str, issuer: str, account: str | None = None) -> Enrolment:
    """A new secret for `name`'s codes, kept nowhere: the caller holds the Enrolment until
    confirm(). `account`: the name the account signs in with, for the app's label (default
    `name`). TwoFactorError if the account already uses codes (removing them takes a code)."""
    if enrolled(archive, name):
        raise TwoFactorError("two-factor sign-in is already on for this account")
    secret, label = pyotp.random_base32(), account or name
    uri = pyotp.TOTP(secret).provisioning_uri(name=label, issuer_name=issuer)
    return Enrolment(name, label, secret, uri, qr_svg(uri), new_state())


def confirm(archive: Archive, enrolment: Enrolment, code: str,
            now: float | None = None) -> list[str]:
    """Switch `enrolment`'s codes on with a first `code` from the app; the recovery codes,
    to show once. TwoFactorError if the account uses codes already (another enrolment was
    confirmed first) or the code is wrong."""
    def switch_on(found: dict | None) -> tuple[dict, list[str]]:
        if found and found.get("confirmed"):
            raise TwoFactorError("two-factor sign-in is already on for this account")
        record = {"secret": enrolment.secret, "last_step": -1, "account": enrolment.account}
        step = _matching_step(record, code, now)
        if step is None:
            raise TwoFactorError("that code is not the app's current one: check the app's "
                                 "account and the clock, and try the next code")
        codes, record["recovery"] = _recovery_codes()
        record.update(confirmed=True, last_step=step, enrolled=time.time(),
                      state=enrolment.state or new_state())
        return record, codes
    return _update(archive, enrolment.name, switch_on)


def verify(archive: Archive, name: str, code: str, now: float | None = None) -> str | None:
    """How `code` signs `name` in: "totp" (a current code, now spent), "recovery" (a
    recovery code, now spent), or None (wrong, already used, or no codes enrolled)."""
    def spend(record: dict | None) -> tuple[object, str | None]:
        method = _spent(record, code, now)
        return (record if method else UNCHANGED), method
    return _update(archive, name, spend)


def new_recovery_codes(archive: Archive, name: str) -> list[str]:
    """Replace the recovery codes (the old ones stop working); the new ones, to show once."""
    def renew(record: dict | None) -> tuple[dict, list[str]]:
        if not record or not record.get("confirmed"):
            raise TwoFactorError("two-factor sign-in is not on for this account")
        codes, record["recovery"] = _recovery_codes()
        return record, codes
    return _update(archive, name, renew)


def remove(archive: Archive, name: str, state: str | None = None) -> str:
    """Switch codes off (whether or not any are on): a tombstone with a new state id
    (`state`, else a fresh one) takes the record's place; that id."""
    state = state or new_state()
    _update(archive, name, lambda _: (_tombstone(state), None))
    return state


def switch_off(archive: Archive, name: str, code: str, state: str | None = None,
               now: float | None = None) -> str:
    """Switch codes off with `code` (a current or recovery code) as proof, the check and the
    change in one write (two requests at once switch them off once): "off" (the state is
    now `state`, else a fresh one), "wrong" (a wrong or used code: they stay on) or "none"
    (none were on)."""
    def check_then_off(record: dict | None) -> tuple[object, str]:
        if not record or not record.get("confirmed"):
            return UNCHANGED, "none"
        if _spent(record, code, now) is None:
            return UNCHANGED, "wrong"
        return _tombstone(state or new_state()), "off"
    return _update(archive, name, check_then_off)


def _spent(record: dict | None, code: str, now: float | None) -> str | None:
    """Spend `code` in `record` (changed in place): "totp", "recovery" or None."""
    if not record or not record.get("confirmed"):
        return None
    step = _matching_step(record, code, now)
    if step is not None:
        record["last_step"] = step
        return "totp"
    return "recovery" if _spend_recovery_code(record, code) else None


def _tombstone(state: str) -> dict:
    return {"confirmed": False, "state": state, "off": time.time()}


def _update(archive: Archive, name: str, change):
    """Store.update_setting of the account's record: read and written in one transaction,
    so that a code is spent once and an off from another process (the CLI) is never
    written over by a read made before it."""
    return archive.store.update_setting(SETTING_PREFIX + name, change)


def qr_svg(text: str) -> str:
    """`text` as a QR code: an <svg> element (no XML declaration, no style attributes,
    so it can stand in a page whose Content-Security-Policy forbids inline styles)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    svg = image.to_string(encoding="unicode")
    return svg[svg.index("<svg"):]


def current_step(now: float | None = None) -> int:
    return int((clock() if now is None else now) // STEP_SECONDS)


def _matching_step(record: dict, code: str, now: float | None) -> int | None:
    """The step whose code `code` is, within the drift allowed and after the last used."""
    digits = "".join(code.split())
    if len(digits) != 6 or not (digits.isascii() and digits.isdigit()):  # not "１２３４５６"
        return None
    totp = pyotp.TOTP(record["secret"], interval=STEP_SECONDS)
    middle = current_step(now)
    for step in range(middle - DRIFT_STEPS, middle + DRIFT_STEPS + 1):
        if step > record.get("last_step", -1) and hmac.compare_digest(
                totp.generate_otp(step), digits):
            return step
    return None


def _recovery_codes() -> tuple[list[str], dict]:
    salt = secrets.token_bytes(16)
    codes = ["-".join("".join(secrets.choice(RECOVERY_ALPHABET)
                              for _ in range(RECOVERY_GROUP_LENGTH))
                      for _ in range(RECOVERY_GROUPS)) for _ in range(RECOVERY_CODES)]
    return codes, {"salt": salt.hex(), "hashes": [_hashed(salt, code) for code in codes]}


def _spend_recovery_code(record: dict, code: str) -> bool:
    recovery = record.get("recovery") or {}
    salt = bytes.fromhex(recovery.get("salt", ""))
    given = _hashed(salt, code)
    for stored in recovery.get("hashes", []):
        if hmac.compare_digest(stored, given):
            recovery["hashes"].remove(stored)
            return True
    return False


def _hashed(salt: bytes, code: str) -> str:
    normalized = "".join(c for c in code.lower() if c.isalnum())  # as typed: any case, dashes
    return hashlib.sha256(salt + normalized.encode()).hexdigest()


def _record(archive: Archive, name: str) -> dict | None:
    return archive.store.setting(SETTING_PREFIX + name)
