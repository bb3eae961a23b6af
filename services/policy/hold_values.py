"""The shape of a litigation hold's value, the replicated setting "hold:ID": which fields,
of which types. A mirror peer's hold entry of another shape is refused where it is merged
(services.policy.replicated: ours is kept); and whatever is already stored is read
fail-safe (shown()): a hold whose value is unreadable is still a hold, in force and
holding everything, until an admin removes it. Retention must never take an odd value
for a released hold.

A hold's value is a JSON object:
  "saved"    the saved search's name: a non-empty string (required)
  "until"    null (indefinitely) or the last day held, "YYYY-MM-DD" (required)
  "by", "name", "reason"   a string or null (absent in holds of older releases)
  "created"  seconds since the epoch, a finite number; absent or null in holds placed
             before it was kept (services.policy.hold_identity)
Other keys are allowed (a later release may add fields); an older release's "held" list
is taken out before the check (services.policy.replicated).
"""
from __future__ import annotations

import datetime as dt

from services.policy import hold_identity

FIELDS = ("saved", "until", "by", "name", "reason", "created")
TEXTS = ("by", "name", "reason")  # optional strings


def problem(value) -> str | None:
    """Why `value` is not a hold's value, in words (naming the field and what was
    expected); None when it is one."""
    if not isinstance(value, dict):
        return f"expected an object of the hold's fields, got {type(value).__name__}"
    return next((found for found in (_field_problem(value, field) for field in FIELDS)
                 if found is not None), None)


def _field_problem(value: dict, field: str) -> str | None:
    found = value.get(field)
    if field == "saved" and not (isinstance(found, str) and found):
        return "saved: expected the name of a saved search"
    if field == "until" and ("until" not in value or not _is_date_or_none(found)):
        return "until: expected null (indefinitely) or a date YYYY-MM-DD"
    if field in TEXTS and not (found is None or isinstance(found, str)):
        return f"{field}: expected a string or null"
    if field == "created" and found is not None and _created(value) is None:
        return "created: expected seconds since the epoch (a finite number) or null"
    return None


def _is_date_or_none(until) -> bool:
    if until is None:
        return True
    try:
        return isinstance(until, str) and dt.date.fromisoformat(until).isoformat() == until
    except ValueError:
        return False


def _created(value: dict) -> float | None:
    return hold_identity.incarnation({"value": value})


def shown(value) -> dict:
    """A stored hold's value as readers take it: every key of FIELDS, each valid or None,
    and "unreadable": None, or the problem() of a value of another shape (then it is in
    force, and holds everything: holds.in_force, holds.active)."""
    fields = value if isinstance(value, dict) else {}
    readable = {field: fields.get(field) for field in FIELDS
                if _field_problem(fields, field) is None}
    return {**dict.fromkeys(FIELDS), **readable, "unreadable": problem(value)}


def tombstone_problem(value) -> str | None:
    """Why `value` is not a hold tombstone's value (null, or {"created": seconds}, the
    hold it removes: hold_identity.tombstone_value); None when it is one."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"a removal: expected null or an object, got {type(value).__name__}"
    if value.get("created") is not None and _created(value) is None:
        return "a removal's created: expected seconds since the epoch (a finite number)"
    return None
