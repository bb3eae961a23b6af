"""Date expressions of the query syntax, as periods of time in the appliance's time zone.

    2024-03-05  2024/03/05     that day
    2024-03     2024           that month, that year
    today       yesterday      that day
    7d  2w  3m  1y             the day that many days, weeks, months or years before today
    A..B  A..  ..B             from the start of A to the end of B (open ends allowed)

A lone relative form (`date:7d`) means the last seven days up to now, as `date:7d..`.
Periods are half-open [start, end) in epoch seconds; days begin at midnight in the zone
given (an IANA name such as Europe/Berlin), daylight saving time included.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

RELATIVE = re.compile(r"(\d{1,5})([dwmy])")
UNITS = {"d": "day", "w": "week", "m": "month", "y": "year"}
FORMS = ("YYYY-MM-DD, YYYY-MM, YYYY, today, yesterday, or a number of days, weeks, months "
         "or years ago such as 7d, 2w, 3m, 1y")


@dataclass(frozen=True)
class Period:
    start: float         # epoch seconds, inclusive
    end: float           # epoch seconds, exclusive
    relative: bool       # written as 7d, 2w...: a lone one means "since then"


def zone(name: str) -> dt.tzinfo:
    """The time zone of an IANA name; ValueError naming the expected form otherwise. UTC
    needs no zone database (the image ships Debian's tzdata for the others)."""
    if name == "UTC":
        return dt.timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: expected an IANA time zone name "
                         "such as UTC or Europe/Berlin") from None


def period(text: str, tz: dt.tzinfo, now: float) -> Period:
    """The period a date expression (one end of a range) names; ValueError if none."""
    today = dt.datetime.fromtimestamp(now, tz).date()
    word = text.lower()
    if word in ("today", "yesterday"):
        day = today - dt.timedelta(days=0 if word == "today" else 1)
        return Period(_midnight(day, tz), _midnight(day + dt.timedelta(days=1), tz), False)
    relative = RELATIVE.fullmatch(word)
    if relative:
        day = _ago(today, int(relative.group(1)), relative.group(2))
        return Period(_midnight(day, tz), _midnight(day + dt.timedelta(days=1), tz), True)
    return _calendar_period(text, tz)


def bounds(text: str, tz: dt.tzinfo, now: float) -> tuple[float | None, float | None]:
    """[low, high) of `A..B`, `A..`, `..B` or `A` (see the module docstring); None for an
    open end. ValueError for a malformed or reversed range."""
    if ".." in text:
        low_text, high_text = text.split("..", 1)
        if not low_text and not high_text:
            raise ValueError("a range needs at least one end, as in 2024-01-01..")
        low = period(low_text, tz, now).start if low_text else None
        high = period(high_text, tz, now).end if high_text else None
        if low is not None and high is not None and low >= high:
            raise ValueError(f"the range is reversed: {low_text} comes after {high_text}")
        return low, high
    found = period(text, tz, now)
    return (found.start, None) if found.relative else (found.start, found.end)


def describe(epoch: float, tz: dt.tzinfo) -> str:
    moment = dt.datetime.fromtimestamp(epoch, tz)
    return moment.strftime("%Y-%m-%d %H:%M" if moment.second == 0 else "%Y-%m-%d %H:%M:%S")


def _calendar_period(text: str, tz: dt.tzinfo) -> Period:
    match = re.fullmatch(r"(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?", text)
    if not match:
        raise ValueError(f"{text!r} is not a date: expected {FORMS}")
    year, month, day = (int(part) if part else None for part in match.groups())
    try:
        if day is not None:
            first = dt.date(year, month, day)
            after = first + dt.timedelta(days=1)
        elif month is not None:
            first = dt.date(year, month, 1)
            after = _ago(first, -1, "m")
        else:
            first, after = dt.date(year, 1, 1), dt.date(year + 1, 1, 1) if year < 9999 else None
    except (ValueError, OverflowError) as exc:  # 30 Feb; the day after 9999-12-31
        raise ValueError(f"{text!r} is not a date: {exc}") from None
    end = _midnight(after, tz) if after else dt.datetime.max.replace(tzinfo=tz).timestamp()
    return Period(_midnight(first, tz), end, False)


def _ago(day: dt.date, count: int, unit: str) -> dt.date:
    """`day` moved back `count` units (forward when negative); month ends are clipped."""
    if unit in "dw":
        return day - dt.timedelta(days=count * (7 if unit == "w" else 1))
    months = day.year * 12 + day.month - 1 - count * (12 if unit == "y" else 1)
    year, month = divmod(months, 12)
    if year < 1:
        raise ValueError("that is before the year 1")
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _midnight(day: dt.date, tz: dt.tzinfo) -> float:
    """The first moment of `day` in `tz` (a day that begins in a DST gap begins after it)."""
    return dt.datetime.combine(day, dt.time(0), tz).timestamp()
