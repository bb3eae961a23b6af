"""Logins whose password was right and whose two-factor code is still to come: the login
form's second step (services.web.auth.Auth.finish_login) finds them by a random token."""
from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from services.appliance.users import User


@dataclass
class PendingLogin:
    name: str
    stamp: str
    expires: float
    attempts: int = 0


class PendingLogins:
    """Logins whose password was right and whose two-factor code is still to come (the
    login form's second step), by a random token; each lives `lifetime` seconds and
    allows `attempts` codes."""

    def __init__(self, lifetime: float = 300.0, attempts: int = 3, max_pending: int = 10_000,
                 clock=time.monotonic):
        self.lifetime, self.attempts, self.max_pending = lifetime, attempts, max_pending
        self.clock = clock
        self._by_token: OrderedDict[str, PendingLogin] = OrderedDict()

    def open(self, user: User) -> str:
        while len(self._by_token) >= self.max_pending:
            self._by_token.popitem(last=False)
        token = secrets.token_urlsafe(32)
        self._by_token[token] = PendingLogin(user.name, user.credential_stamp,
                                             self.clock() + self.lifetime)
        return token

    def take(self, token: str) -> PendingLogin | None:
        """The login, removed (so two requests cannot both use it), if it is still valid."""
        pending = self._by_token.pop(str(token), None)
        if pending is None or self.clock() > pending.expires:
            return None
        return pending

    def peek(self, token: str) -> PendingLogin | None:
        """The login, left in place, if it is still valid."""
        pending = self._by_token.get(str(token))
        return pending if pending is not None and self.clock() <= pending.expires else None

    def put_back(self, token: str, pending: PendingLogin) -> None:
        """After a wrong code: another try, unless that was the last allowed."""
        pending.attempts += 1
        if pending.attempts < self.attempts:
            self._by_token[token] = pending
