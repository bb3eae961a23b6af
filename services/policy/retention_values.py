"""Retention settings: their keys among the replicated settings and the shapes of their
values, checked where an admin sets them (services.policy.retention) and where a mirror
peer's are merged (services.policy.replicated.Replicated.refusal).

A value of another shape stored before these checks is read fail-safe (readable_*): it
turns nothing on and makes nothing expire sooner. Retention deletes mail, so a peer's
setting that no reader here can take (a policy of 0 days would expire every message
at once; "30" as text would stop every run with a TypeError) is refused, not merged.
"""
from __future__ import annotations

PREFIX = "retention:"
ENABLED, GLOBAL, SAVED_PREFIX = PREFIX + "enabled", PREFIX + "global", PREFIX + "saved:"


def days_problem(days) -> str | None:
    """Why `days` is not a retention period (a whole number of days, at least 1), in
    words; None when it is. JSON's true and false are not numbers here."""
    if type(days) is not int or days < 1:
        return f"expected a whole number of days, at least 1, got {days!r:.40}"
    return None


def problem(key: str, value) -> str | None:
    """Why `value` cannot be the value of retention setting `key` (one starting with
    PREFIX), in words; None when it can: true or false for ENABLED, days (days_problem)
    for GLOBAL and for SAVED_PREFIX + a saved search's name."""
    if key == ENABLED:
        return None if isinstance(value, bool) else "enabled: expected true or false"
    if key == GLOBAL or (key.startswith(SAVED_PREFIX) and len(key) > len(SAVED_PREFIX)):
        return days_problem(value)
    return (f"not a retention setting (expected {ENABLED}, {GLOBAL} or "
            f"{SAVED_PREFIX}<saved search>)")


def readable_enabled(value) -> bool:
    """Whether a stored ENABLED value turns retention on: only true does."""
    return value is True


def readable_days(value) -> int | None:
    """A stored policy's days, or None when it is no period (days_problem)."""
    return value if days_problem(value) is None else None
