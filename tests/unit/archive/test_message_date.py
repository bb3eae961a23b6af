"""A message's date from its own evidence: Date, then the topmost Received, then the mbox
From_ line, then arrival; and the metadata that records which."""
import calendar

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
