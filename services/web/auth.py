"""Who is asking: logins (rate limited), sessions, and CSRF tokens.

A browser logs in once and then carries a session cookie (HttpOnly, SameSite=Strict, and
Secure whenever the server speaks TLS); every form it posts carries the session's CSRF
token. An API client logs in the same way (POST /api/session) and sends the token as
X-CSRF-Token, or sends HTTP Basic credentials with each request.

Sessions live in this process's memory: a restart of the web service logs everyone out,
and a password change ends the sessions opened before it. A session notes the state of
its account's two-factor codes it signed in under (totp.in_use: an id that never repeats;
with codes on, the session signed in with one) and is honoured only in that state, or in
the one it brings about itself (switching codes on or off). So any change of the codes
(on, off, on again; by the web or `archiver user two-factor-off` in another process; the
account removed and made again) ends the account's other sessions for good.

Who a name and password are is services.appliance.sign_in's to say (local accounts, then
the company directory). An account with two-factor codes (services.appliance.totp), local
or the directory's, needs its code too: given with the password (API), or in a second step
(the login form: PendingLogins). The throttle counts that attempt as failed until the code is right.
Proofs asked for on the account page (a code to renew recovery codes or switch codes off,
the current password to change it) are guesses too: Auth.proof throttles and audits them
as logins are.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from aiohttp import web

from firmware.errors import ArchiverError

from services.policy import audit
from services.appliance import totp
from services.appliance.directory import DirectoryBusy, DirectoryError
from services.appliance.sign_in import LocalNameTaken, SignIn, folded_name, two_factor_name
from services.archive.archive import Archive
from services.appliance.users import User
from services.web.pending_logins import PendingLogins

SESSION_COOKIE = "archiver_session"
LOGIN_COOKIE = "archiver_login"  # the CSRF token of the login form, before any session
CSRF_HEADER = "X-CSRF-Token"
SESSION_IDLE_SECONDS = 30 * 60
SESSION_LIFETIME_SECONDS = 12 * 3600


class LoginFailed(Exception):
    pass


class DirectoryDown(LoginFailed):
    """Only the company directory could say who this is, and it cannot answer now."""


class WrongProof(ArchiverError):
    """A wrong code or password given as proof for a change to one's own account."""


class SecondFactorNeeded(LoginFailed):
    """The password is right; the account also needs a two-factor code."""

    def __init__(self, user: User):
        super().__init__("this account signs in with a two-factor code too: give it "
                         "(\"code\" with the password; HTTP Basic cannot carry one)")
        self.user = user


class Throttled(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins: try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginThrottle:
    """Slows password guessing, and never refuses the right password from an address that
    has not been guessing: fewer than `guessing` failures (3) in the last `forget_after`
    seconds, and within its free failures per name and per address below.

    Failures are counted per (name, address), per address, and overall. After `free_per_pair`
    failures of one name from one address, or `free_per_address` from one address for any
    names (more, since many people share one NAT), each further attempt from that address
    must wait 2**(failures - free) seconds (at most `longest`) since its last failure;
    earlier ones are answered 429 without looking at the password. While more than
    `free_overall` failures happened in the last `forget_after` seconds (guessing spread over
    many addresses), an address that is itself guessing (`guessing` failures or more) waits
    `overall_wait` * 2**(its failures - guessing) seconds (at most `longest`); one typo, a
    NAT neighbour's included, is never refused for it. A (name, address) and an address
    are forgotten `forget_after` seconds after their last failure, or at a success of
    that name from that address: the right password clears both.

    An attempt counts as a failure from its start and is taken back on success, so that
    a burst of parallel guesses cannot all slip in before the first one has failed.
    Thread-safe: the web handlers call it from the event loop and from worker threads."""

    def __init__(self, free_per_pair: int = 5, free_per_address: int = 20,
                 free_overall: int = 100, overall_wait: float = 60.0, longest: float = 900.0,
                 forget_after: float = 3600.0, max_keys: int = 100_000, guessing: int = 3,
                 clock=time.monotonic):
        self.free = {"pair": free_per_pair, "address": free_per_address}
        self.free_overall, self.overall_wait, self.guessing = free_overall, overall_wait, guessing
        self.longest, self.forget_after, self.max_keys = longest, forget_after, max_keys
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        # When each failure of the last forget_after seconds happened, anywhere (oldest first).
        self._recent: deque[float] = deque(maxlen=max_keys)
        self._lock = threading.Lock()

    def begin(self, name: str, address: str) -> None:
        """Raise Throttled if this address must still wait; else count the attempt."""
        with self._lock:
            now = self.clock()
            self._trim(now)
            pair, per_address = self._keys(name, address)
            wait = max(self._wait(pair, now, self.free["pair"]),
                       self._wait(per_address, now, self.free["address"]))
            if self._under_attack(now):
                wait = max(wait, self._wait(per_address, now, self.guessing, self.overall_wait))
            if wait > 0:
                raise Throttled(int(wait) + 1)
            for key in (pair, per_address):
                failures = self._failures.pop(key, None) or _Failures()
                failures.count, failures.last = failures.count + 1, now
                self._failures[key] = failures  # most recent last, for trimming
            self._recent.append(now)

    def succeeded(self, name: str, address: str) -> None:
        """The right password (and code) for `name` from `address`: forget both their
        failures, and take back the attempt begin() counted overall."""
        with self._lock:
            for key in self._keys(name, address):
                self._failures.pop(key, None)
            if self._recent:
                self._recent.pop()

    def unchecked(self, name: str, address: str) -> None:
        """The attempt begin() counted was never checked (the directory could not answer):
        take it back, and it alone; the failures before it stay counted. Nothing is learnt
        of a password that was not checked, so a guesser gains nothing by it, and a user
        who tried while the directory was busy is not held up once it answers."""
        with self._lock:
            for key in self._keys(name, address):
                failures = self._failures.get(key)
                if failures is not None:
                    failures.count -= 1
                    if failures.count <= 0:
                        del self._failures[key]
            if self._recent:
                self._recent.pop()

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._recent.clear()

    @staticmethod
    def _keys(name: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        network = _guessing_network(address)
        # one name whatever its case and width, as the directory's matching rules take it
        # (caseIgnoreMatch prepares strings with NFKC, RFC 4518): "ＡＬＩＣＥ" is alice
        return ("pair", f"{folded_name(name)}\n{network}"), ("address", network)

    def _under_attack(self, now: float) -> bool:
        """More than free_overall failures in the last forget_after seconds, anywhere."""
        while self._recent and now - self._recent[0] >= self.forget_after:
            self._recent.popleft()
        return len(self._recent) > self.free_overall

    def _wait(self, key: tuple[str, str], now: float, free: int, step: float = 1.0) -> float:
        failures = self._failures.get(key)
        if failures is None or failures.count < free:
            return 0.0
        delay = min(step * 2.0 ** (failures.count - free), self.longest)
        return max(failures.last + delay - now, 0.0)

    def _trim(self, now: float) -> None:
        while self._failures:
            key, oldest = next(iter(self._failures.items()))
            if now - oldest.last < self.forget_after and len(self._failures) <= self.max_keys:
                break
            del self._failures[key]


def _guessing_network(address: str) -> str:
    """Who is one guesser: an IPv4 address, or an IPv6 /64 (one site's, RFC 6177): fresh
    IPv6 addresses are free within it, and must not each bring fresh guesses."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


@dataclass
class Session:
    token: str
    user: str
    stamp: str  # the user's credential stamp when it was opened
    # totp.in_use: the state of the account's two-factor codes it signed in (with a code,
    # when on) or switched codes on or off under; the only state it is honoured in
    codes: str | None = None
    # the state it is bringing about itself (switching codes on or off), honoured too
    # until that is done
    next_codes: str | None = None
    enrolment: totp.Enrolment | None = None  # codes it began to set up, not yet on
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    flash: tuple[str, str] | None = None  # (kind, text) for the next page: what a form did

    def take_flash(self) -> tuple[str, str] | None:
        message, self.flash = self.flash, None
        return message


class Sessions:
    def __init__(self, idle: float = SESSION_IDLE_SECONDS,
                 lifetime: float = SESSION_LIFETIME_SECONDS):
        self.idle, self.lifetime = idle, lifetime
        self._by_token: dict[str, Session] = {}

    def open(self, user: User, codes: str | None = None) -> Session:
        """A new session for `user`; `codes`: see Session.codes."""
        self._drop_expired(time.time())
        session = Session(secrets.token_urlsafe(32), user.name, user.credential_stamp, codes)
        self._by_token[session.token] = session
        return session

    def find(self, token: str) -> Session | None:
        session = self._by_token.get(token)
        now = time.time()
        if session is None or self._expired(session, now):
            self._by_token.pop(token, None)
            return None
        session.last_seen = now
        return session

    def close(self, token: str) -> None:
        self._by_token.pop(token, None)

    def close_opened_before(self, name: str, moment: float) -> int:
        """End every session of user `name` opened at or before `moment` (epoch seconds);
        how many were open."""
        ended = [token for token, session in self._by_token.items()
                 if session.user == name and session.created <= moment]
        for token in ended:
            del self._by_token[token]
        return len(ended)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle or now - session.created > self.lifetime

    def _drop_expired(self, now: float) -> None:
        for token in [t for t, s in self._by_token.items() if self._expired(s, now)]:
            del self._by_token[token]


@dataclass
class Identity:
    user: User | None = None
    session: Session | None = None
    via: str | None = None  # "session" or "basic"


class Auth:
    """Logins, sessions and the cookies that carry them, for one web app."""

    def __init__(self, archive: Archive, secure_cookies: bool,
                 throttle: LoginThrottle | None = None, sign_in: SignIn | None = None,
                 two_factor_roles: tuple[str, ...] = ()):
        self.archive, self.secure_cookies = archive, secure_cookies
        self.sessions = Sessions()
        self.throttle = throttle or LoginThrottle()
        self.sign_in = sign_in or SignIn(archive, None)
        self.two_factor_roles = tuple(two_factor_roles)  # their accounts must enrol
        self.pending = PendingLogins()
        self.failed_logins = 0  # for /metrics

    async def login(self, request: web.Request, name: str, password: str, via: str,
                    code: str | None = None) -> tuple[User, str]:
        """(the user, the state of its codes it signed in under: Session.codes), or
        LoginFailed (DirectoryDown; SecondFactorNeeded when the account needs a `code` and
        none was given) / Throttled; every outcome but Throttled is audited: over the API
        (no "code", or HTTP Basic) the right password without a code is a failed login
        ("no two-factor code"), counted as a wrong one is; on the form, whose code step
        follows, it is "login-code-asked", so that a password known to someone who never
        gives a code still shows in the log."""
        address = client_address(request)
        self.throttle.begin(name, address)
        try:
            user = await asyncio.to_thread(self.sign_in.authenticate, name, password)
        except DirectoryError as error:
            self.throttle.unchecked(name, address)
            await self._failed(name, address, via, reason=f"directory: {error}")
            raise directory_down(error) from None
        except LocalNameTaken as error:
            await self._failed(name, address, via, reason=str(error))
            raise LoginFailed(str(error)) from None
        if user is None:
            await self._failed(name, address, via)
            raise LoginFailed("wrong name or password")
        # read before it is decided: codes changed since end the session (Auth._honoured)
        codes, on = await asyncio.to_thread(totp.current, self.archive, two_factor_name(user))
        if on:
            if code is None:  # the attempt stays counted as failed in the throttle
                if via == "form":  # the form asks for the code next; the API cannot
                    await self._audit(user.actor, "login-code-asked", address, via)
                else:
                    await self._failed(name, address, via, reason="no two-factor code")
                raise SecondFactorNeeded(user)
            second_factor, codes = await self._check_code(user, code, address, via)
        else:
            second_factor = None
        self.throttle.succeeded(name, address)
        if via != "basic":  # Basic credentials come with every request: not a login each
            await self._audit(user.actor, "login", address, via, second_factor=second_factor,
                              directory=user.password.get("dn"))
        return user, codes

    async def finish_login(self, request: web.Request, token: str, code: str
                           ) -> tuple[User, str]:
        """The second step of a form login: `code` for the login PendingLogins holds as
        `token`; (the user, the codes it proved: Session.codes). LoginFailed (also when the
        step came too late or failed too often) or Throttled."""
        expired = LoginFailed("the sign-in has expired: give your name and password again")
        waiting = self.pending.peek(token)
        if waiting is None:
            raise expired
        address = client_address(request)
        self.throttle.begin(waiting.name, address)
        pending = self.pending.take(token)  # one request at a time tries a code for it
        if pending is None:
            raise expired
        user = await asyncio.to_thread(self.sign_in.current, pending.name, pending.stamp)
        if user is None:
            await self._failed(pending.name, address, "form")
            raise LoginFailed("wrong name or password")
        try:
            second_factor, codes = await self._check_code(user, code, address, "form")
        except LoginFailed:
            self.pending.put_back(token, pending)
            raise
        # Two attempts were counted for this login, the password's and the code's: take back
        # both, or every login with a code would leave one failure behind on the address.
        for _ in range(2):
            self.throttle.succeeded(pending.name, address)
        await self._audit(user.actor, "login", address, "form", second_factor=second_factor)
        return user, codes

    def must_enrol(self, user: User) -> bool:
        """Whether `user` must set up two-factor codes before anything else (blocks)."""
        return (user.role in self.two_factor_roles
                and not totp.enrolled(self.archive, two_factor_name(user)))

    async def _check_code(self, user: User, code: str, address: str, via: str
                          ) -> tuple[str, str]:
        """(how `code` signed in: totp.verify, the state of the codes it proved, read before:
        Session.codes), or LoginFailed."""
        name = two_factor_name(user)
        codes = await asyncio.to_thread(totp.in_use, self.archive, name)
        method = await asyncio.to_thread(totp.verify, self.archive, name, code)
        if method is None:
            await self._failed(user.name, address, via, reason="wrong two-factor code")
            raise LoginFailed("wrong or already used two-factor code")
        return method, codes

    async def proof(self, request: web.Request, user: User, check, *args):
        """`check(*args)`, a blocking function that asks `user` for a proof (a two-factor or
        recovery code, their current password) and raises WrongProof when it is wrong, run
        as a login attempt is: Throttled first when this address must wait, each wrong
        proof audited ("proof-failed"). What `check` returns."""
        address = client_address(request)
        self.throttle.begin(user.name, address)
        try:
            result = await asyncio.to_thread(check, *args)
        except WrongProof as error:
            await self._audit(user.actor, "proof-failed", address, "account",
                              reason=str(error), proof_for=getattr(check, "__name__", None))
            raise
        self.throttle.succeeded(user.name, address)
        return result

    async def _failed(self, name: str, address: str, via: str, **details) -> None:
        self.failed_logins += 1
        await self._audit(audit.Actor(name[:64], "unknown"), "login-failed", address, via,
                          **details)

    async def _audit(self, actor: audit.Actor, action: str, address: str, via: str,
                     **details) -> None:
        details = {key: value for key, value in details.items() if value is not None}
        await asyncio.to_thread(audit.record, self.archive.store, actor, action,
                                client=address, via=via, **details)

    async def identify(self, request: web.Request) -> Identity:
        """Who sent `request`: its session cookie, else (API only) its Basic credentials."""
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            identity = await self._from_session(token)
            if identity.user is not None:
                return identity
        header = request.headers.get("Authorization", "")
        if request.path.startswith("/api/") and header[:6].lower() == "basic ":
            name, password = _basic_credentials(header[6:])
            user, _ = await self.login(request, name, password, "basic")
            return Identity(user, via="basic")
        return Identity()

    async def _from_session(self, token: str) -> Identity:
        session = self.sessions.find(token)
        if session is None:
            return Identity()
        try:
            user = await asyncio.to_thread(self._honoured, session)
        except DirectoryBusy as busy:  # neither honoured nor ended: ask again soon
            raise web.HTTPServiceUnavailable(reason=str(busy)[:200],
                                             headers={"Retry-After": "5"}) from None
        if user is None:
            self.sessions.close(token)
            self._end_refused_sessions(session.user)
            return Identity()
        return Identity(user, session, "session")

    def _honoured(self, session: Session) -> User | None:
        """The user `session` is, None when it may no longer be honoured: removed, given a
        new password, no longer allowed by the directory (sign_in.current), or its
        two-factor codes changed (on, off, on again) since it signed in, other than by
        itself (Session.codes, Session.next_codes). Raises DirectoryBusy."""
        user = self.sign_in.current(session.user, session.stamp)
        if user is None:
            return None
        codes = totp.in_use(self.archive, two_factor_name(user))
        return user if codes in (session.codes, session.next_codes) else None

    def _end_refused_sessions(self, name: str) -> None:
        """The directory refused `name` (removed, disabled, expired, locked out): every
        session opened before that ends now, so that none comes back when the account is
        enabled again (its credential stamp is unchanged then)."""
        refused = self.sign_in.refused_at(name)
        if refused is not None:
            self.sessions.close_opened_before(name, refused)

    # -- cookies -----------------------------------------------------------------------

    def start_session(self, response: web.StreamResponse, user: User,
                      codes: str | None = None) -> Session:
        """A new session for `user` (`codes`: Session.codes), its cookie set on `response`."""
        session = self.sessions.open(user, codes)
        self.set_session_cookie(response, session)
        return session

    def set_session_cookie(self, response: web.StreamResponse, session: Session) -> None:
        self._set_cookie(response, SESSION_COOKIE, session.token)
        response.del_cookie(LOGIN_COOKIE, path="/")

    def end_session(self, response: web.StreamResponse, identity: Identity) -> None:
        if identity.session is not None:
            self.sessions.close(identity.session.token)
        response.del_cookie(SESSION_COOKIE, path="/")

    def login_form_token(self, request: web.Request) -> str:
        """The login form's CSRF token (double submit: the same value in a cookie)."""
        return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)

    def set_login_cookie(self, response: web.StreamResponse, token: str) -> None:
        self._set_cookie(response, LOGIN_COOKIE, token)

    def _set_cookie(self, response: web.StreamResponse, name: str, value: str) -> None:
        response.set_cookie(name, value, path="/", httponly=True, samesite="Strict",
                            secure=self.secure_cookies)


def directory_down(error: DirectoryError) -> DirectoryDown:
    """What a directory user is told when the directory cannot check their password now:
    busy (too many sign-ins already waiting for it) or unreachable."""
    if isinstance(error, DirectoryBusy):
        return DirectoryDown("directory busy: too many sign-ins are waiting for the company "
                             "directory's answer; try again in a moment (local accounts "
                             "still sign in)")
    return DirectoryDown("the company directory cannot be reached now, so directory "
                         "accounts cannot sign in; try again later (local accounts "
                         "still can)")


def tokens_match(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


def client_address(request: web.Request) -> str:
    # The peer itself: X-Forwarded-For is whatever the client wants it to be.
    return request.remote or "unknown"


def _basic_credentials(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise LoginFailed("unreadable Basic credentials") from None
    name, separator, password = decoded.partition(":")
    if not separator:
        raise LoginFailed("unreadable Basic credentials")
    return name, password
