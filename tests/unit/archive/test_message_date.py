"""A message's date from its own evidence: Date, then the topmost Received, then the mbox
From_ line, then arrival; and the metadata that records which."""
import calendar
import time

import pytest

from services.archive.metadata import READING, changes, header_metadata, is_current

ARRIVAL = 1_900_000_000.0  # 2030: never one of the dates under test
FROM_LINE_DATE = calendar.timegm((2024, 3, 5, 6, 0, 0))
RECEIVED_DATE = calendar.timegm((2024, 3, 5, 6, 31, 9))  # 07:31:09 +0100
DATE_DATE = calendar.timegm((2024, 3, 4, 22, 0, 0))

TOPMOST_RECEIVED = ("Received: from relay.example.net (relay.example.net [192.0.2.10])\n"
                    "\tby mx.example.com (Postfix) with ESMTPS id 4AB12C0D\n"
                    "\tfor <ops@example.com>; Tue, 05 Mar 2024 07:31:09 +0100 (CET)\n")
OLDER_RECEIVED = ("Received: from laptop.example.net by relay.example.net;\n"
                  " Mon, 04 Mar 2024 09:00:00 +0000\n")

# Date headers that say nothing true about when a message was written.
BAD_DATES = ["garbage", "", "Tue, 30 Feb 2024 10:00:00 +0000", "Tue, 05 Mar 2024 25:61:00 +0000",
             "Thu, 01 Jan 1970 00:00:00 +0000", "Mon, 1 Jan 10000 00:00:00 +0000",
             "Tue, 05 Mar 2024 10:00:00 +9999", "2024-03-05T10:00:00Z", "=?utf-8?q?garbage?=",
             "x" * 100_000]


def raw(*headers: str, body: str = "Your code is 314159.\n") -> bytes:
    return ("".join(headers) + "From: a@example.com\nSubject: s\n\n" + body).encode()


def dated(data: bytes, from_line_date=None) -> tuple[float, str]:
    meta = header_metadata(data, from_line_date, ARRIVAL)
    return meta["sent_date"], meta["date_source"]


def test_the_date_header_comes_first():
    data = raw(TOPMOST_RECEIVED, "Date: Mon, 04 Mar 2024 23:00:00 +0100\n")
    assert dated(data, FROM_LINE_DATE) == (DATE_DATE, "date-header")


@pytest.mark.parametrize("bad", BAD_DATES, ids=lambda bad: bad[:30] or "empty")
def test_a_missing_or_bad_date_header_falls_back_to_the_topmost_received(bad):
    data = raw(TOPMOST_RECEIVED, OLDER_RECEIVED, f"Date: {bad}\n" if bad else "")
    assert dated(data, FROM_LINE_DATE) == (RECEIVED_DATE, "received-header")


@pytest.mark.parametrize("topmost", [
    "Received: from x by y with SMTP id 1\n",            # no date at all
    "Received: from x by y; yesterday\n",                # no readable date
    "Received: from x by y; Fri, 30 Feb 2024 10:00:00 +0000\n",
])
def test_a_received_field_without_a_readable_date_gives_way_to_the_next(topmost):
    data = raw(topmost, TOPMOST_RECEIVED, OLDER_RECEIVED)
    assert dated(data) == (RECEIVED_DATE, "received-header")


@pytest.mark.parametrize("headers", [(), ("Date: garbage\n",), ("Received: from x by y\n",),
                                     ("Date: \n", "Received: by y; never\n")])
def test_without_header_evidence_the_from_line_date_decides(headers):
    assert dated(raw(*headers), FROM_LINE_DATE) == (FROM_LINE_DATE, "mbox-from-line")


@pytest.mark.parametrize("from_line_date", [None, 0.0, -5.0, 1e12])
def test_without_any_evidence_the_arrival_time_is_the_date(from_line_date):
    assert dated(raw("Date: garbage\n"), from_line_date) == (ARRIVAL, "arrival")


def test_a_date_without_a_zone_is_utc_and_obsolete_forms_are_read():
    assert dated(raw("Date: 5 Mar 24 06:31:09\n")) == (RECEIVED_DATE, "date-header")
    assert dated(raw("Date: Tue, 05 Mar 2024 06:31:09 -0000\n")) == (RECEIVED_DATE, "date-header")
    assert dated(raw("Date: Tue, 5 Mar 2024 01:31:09 EST\n")) == (RECEIVED_DATE, "date-header")


def test_header_metadata_reads_the_header_block_only():
    meta = header_metadata(raw("Message-ID: <m1@example.com>\n",
                               body="Date: Mon, 04 Mar 2024 23:00:00 +0100\n"), None, ARRIVAL)
    assert meta == {"message_id": "m1@example.com", "sent_date": ARRIVAL, "date_source": "arrival",
                    "from": "a@example.com", "subject": "s", "reading": READING}


def test_changes_names_only_what_the_current_reading_makes_different():
    data = raw(TOPMOST_RECEIVED)
    current = {**header_metadata(data, None, ARRIVAL), "received": ARRIVAL}
    assert changes(current, data) == {}
    # What code before date_source stored for a message without a Date header.
    old = {**current, "sent_date": None, "subject": "old reading"}
    del old["date_source"], old["reading"]
    assert not is_current(old) and is_current(current)
    assert changes(old, data) == {"sent_date": RECEIVED_DATE, "date_source": "received-header",
                                  "subject": "s", "reading": READING}
    kept_evidence = {**current, "from_line_date": FROM_LINE_DATE}
    assert changes(kept_evidence, raw()) == {"sent_date": FROM_LINE_DATE,
                                              "date_source": "mbox-from-line"}


# The forms a date-time's year is read in: RFC 5322's, its obsolete ones (no day name, no
# seconds, a named zone, "-0000") and the asctime order some mailers still write.
DATE_FORMS = ["{dow}, {day} Mar {year} 10:00:00 +0000", "{day} Mar {year} 10:00 -0000",
              "{dow}, {day} Mar {year} 05:00:00 EST", "{dow}, {day:02d} Mar {year} 10:00:00 GMT",
              "{dow} Mar {day} 10:00:00 {year}"]


def dates_in_every_form(year: str) -> list[str]:
    return [form.format(dow="Tue", day=day, year=year) for form in DATE_FORMS
            for day in (5, 24)]


@pytest.mark.parametrize("year", ["0000", "0001", "0024", "0070", "0099", "000", "024", "070",
                                  "50", "55", "68"])
def test_a_year_before_1971_as_rfc_5322_reads_it_is_implausible(year):
    """email.utils reads every year below 100 by the POSIX two-digit rule: 0000 as 2000,
    0070 as 1970, 55 as 2055. RFC 5322 4.3 reads 4 digits as written, 3 digits and 50-99
    plus 1900: all of these are before 1971, so the next evidence decides."""
    for date in dates_in_every_form(year):
        data = raw(TOPMOST_RECEIVED, f"Date: {date}\n")
        assert dated(data) == (RECEIVED_DATE, "received-header"), date
        assert dated(raw(f"Received: by y; {date}\n", TOPMOST_RECEIVED)) == (
            RECEIVED_DATE, "received-header"), date


@pytest.mark.parametrize("year, full_year", [("24", 2024), ("00", 2000), ("49", 2049),
                                             ("71", 1971), ("99", 1999), ("099", 1999),
                                             ("2024", 2024), ("1999", 1999), ("2055", 2055)])
def test_a_plausible_year_is_read_as_rfc_5322_says(year, full_year):
    for date in dates_in_every_form(year):
        sent, source = dated(raw(TOPMOST_RECEIVED, f"Date: {date}\n"))
        assert (source, time.gmtime(sent).tm_year) == ("date-header", full_year), date


@pytest.mark.parametrize("date", ["01-Jan-0000 00:00:00 GMT",           # RFC 850's form
                                  "Sat, 01 Jan 00000 00:00:00 +0000",   # five digits
                                  "Sat, 01 Jan 0000 00:00:00 +0000 (Year 2000)",
                                  "Sat, 01 Jan 0000 00:00:00 +2000"])
def test_a_year_written_0000_is_implausible_whatever_surrounds_it(date):
    """The year's digits are the ones email.utils reads as the year, not any 2000 nearby."""
    assert dated(raw(TOPMOST_RECEIVED, f"Date: {date}\n")) == (RECEIVED_DATE, "received-header")


def test_a_comment_or_zone_of_the_same_value_does_not_move_a_real_year():
    for date in ("Sat, 01 Jan 2000 00:00:00 +0000 (2000)", "Sat, 01 Jan 00 00:00:00 +0000",
                 "01-Jan-00 00:00:00 GMT"):
        sent, source = dated(raw(TOPMOST_RECEIVED, f"Date: {date}\n"))
        assert (source, time.gmtime(sent)[:3]) == ("date-header", (2000, 1, 1)), date


def test_a_date_of_many_year_like_numbers_costs_a_few_parses_not_one_each(monkeypatch):
    """Each run of digits equal to the year's was asked about: a hostile Date of a hundred
    "0 " cost a hundred parses (ten thousand for a message of 150 Received fields)."""
    import email.utils
    from services.archive import message_date
    calls = []

    def counted(text):
        calls.append(text)
        return parsedate_tz(text)

    parsedate_tz = email.utils.parsedate_tz
    monkeypatch.setattr(message_date.email.utils, "parsedate_tz", counted)
    assert message_date.parse_date("Jan 0 UT 0.0 -0000 " + "0 " * 95) is None
    assert len(calls) <= 1 + message_date.PROBES
