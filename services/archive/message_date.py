"""A message's date, from its own evidence first (DESIGN.md, "Reading mail").

In order, the first that gives a plausible date wins:

  date-header      the RFC 5322 Date header (the first one)
  received-header  the topmost (last added) RFC 5321 Received trace field whose date, the
                   part after its last ";", can be read: when the nearest server got it
  mbox-from-line   the date on the mbox From_ line the message was filed under
  arrival          when this appliance stored it

"Plausible" is a real calendar date between 1971 (the first e-mail) and 2200: a Date of
1 Jan 1970 or 10000 is a broken clock or a zero, not a date, so the next evidence decides.
A year is read as RFC 5322 4.3 says: as written in four digits (0000 is the year 0, not
2000), 00-49 in two digits as 2000-2049 and 50-99 as 1950-1999, three digits plus 1900.
The source used is recorded in the metadata as `date_source`.
"""
from __future__ import annotations

import calendar
import datetime as dt
import email.utils
import re
from email.message import Message

from services.archive import mime

DATE_HEADER, RECEIVED_HEADER, FROM_LINE, ARRIVAL = (
    "date-header", "received-header", "mbox-from-line", "arrival")
EARLIEST = calendar.timegm((1971, 1, 1, 0, 0, 0))
LATEST = calendar.timegm((2200, 1, 1, 0, 0, 0))
DATE_TEXT_LIMIT = 200  # a date-time is under 50 characters; the rest is not read
RECEIVED_FIELDS_READ = 100  # a message with more trace fields than this is a loop, not mail
# A number of 2 to 4 digits standing alone: not part of a time (":", "."), a zone ("+", "-")
# or a word. The year email.utils read is one of these.


def message_date(message: Message, from_line_date: float | None,
                 arrival: float) -> tuple[float, str]:
    """(epoch seconds UTC, date source) of a parsed message (headers suffice).

    `from_line_date`: the date of the mbox From_ line it was filed under, if any (epoch
    seconds UTC); `arrival`: when it was stored. Never raises on bad input.
    """
    for source, date in ((DATE_HEADER, lambda: parse_date(mime.header(message, "date"))),
                         (RECEIVED_HEADER, lambda: received_date(message)),
                         (FROM_LINE, lambda: plausible(from_line_date))):
        found = date()
        if found is not None:
            return found, source
    return arrival, ARRIVAL


def received_date(message: Message) -> float | None:
    """The date of the topmost Received field that has a readable one (RFC 5321 4.4:
    "; date-time" ends the field), or None."""
    fields = mime.safely(lambda: message.get_all("received"), None) or []
    for value in fields[:RECEIVED_FIELDS_READ]:
        if isinstance(value, str) and ";" in value:
            found = parse_date(value.rpartition(";")[2])
            if found is not None:
                return found
    return None


def parse_date(text: str) -> float | None:
    """An RFC 5322 date-time (obsolete forms included) as epoch seconds UTC, or None when
    it is missing, unreadable, not a real calendar date or implausible. A date without a
    zone ("-0000" or none) is taken as UTC."""
    text = mime.decode_header_text(text)[:DATE_TEXT_LIMIT] if isinstance(text, str) else ""
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_tz(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not parsed:
        return None
    year = rfc5322_year(text, parsed[0])
    return epoch_of(year, *parsed[1:6], offset=parsed[9] or 0)


def rfc5322_year(text: str, read_year: int) -> int:
    """The year of date-time `text` as RFC 5322 4.3 reads it, given `read_year`, the year
    email.utils.parsedate_tz read from it. That one reads every year below 100 by the POSIX
    two-digit rule (0-68 as 2000-2068, 69-99 as 1969-1999), however many digits it was
    written in: "0000" is 2000 and "0070" 1970 to it, plausible dates a sender could
    choose. RFC 5322 reads four digits (or more) as written, three plus 1900, and two:
    below 50 plus 2000, else plus 1900. Which run of digits is the year is asked of
    parsedate_tz itself, not guessed: a run is the year if writing another year in its
    place changes the year it reads (RFC 850's "01-Jan-0000", a comment "(2000)" and a
    day of the same value then read as they should)."""
    if not 1969 <= read_year <= 2068:
        return read_year  # written as it was read, in four digits
    written = read_year % 100
    # parsedate_tz reads the year from the first five words (day, month, year, time, zone
    # in some order), so only the first runs can be it: a hostile Date of a hundred "0 "
    # would otherwise cost a hundred parses.
    candidates = [match for match in _DIGITS.finditer(text) if int(match[0]) == written
                  or match[0] == str(read_year)][:PROBES]
    if [match[0] for match in candidates] == [str(read_year)]:
        return read_year  # one run, the year in four digits: no second parse
    for match in candidates:
        if _reads_as_year(text, match):
            return _year_as_written(match[0])
    return read_year


_DIGITS = re.compile(r"\d+")
PROBES = 6  # runs asked about at most: the five words parsedate_tz reads, and one spare
_PROBE_YEAR = 1234  # read as written by every rule: only the year's place makes it a year


def _reads_as_year(text: str, run: re.Match) -> bool:
    probe = f"{text[:run.start()]}{_PROBE_YEAR}{text[run.end():]}"
    try:
        parsed = email.utils.parsedate_tz(probe)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return bool(parsed) and parsed[0] == _PROBE_YEAR


def _year_as_written(digits: str) -> int:
    value = int(digits)
    if len(digits) >= 4:
        return value
    if len(digits) == 3 or value >= 50:
        return 1900 + value
    return 2000 + value


def epoch_of(year: int, month: int, day: int, hour: int, minute: int, second: int,
             offset: int = 0) -> float | None:
    """Epoch seconds UTC of a local time `offset` seconds east of UTC, or None if it is not
    a real calendar time (30 February, 25:61) or not plausible."""
    try:
        local = dt.datetime(year, month, day, hour, minute, min(second, 59),
                            tzinfo=dt.timezone(dt.timedelta(seconds=offset)))
    except (ValueError, OverflowError, TypeError):
        return None
    return plausible(local.timestamp())


def plausible(epoch: float | None) -> float | None:
    """`epoch` if it lies between 1971 and 2200, else None."""
    if epoch is None or not EARLIEST <= epoch < LATEST:
        return None
    return float(epoch)
