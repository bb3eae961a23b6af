"""Dates as days of the appliance's time zone, relative dates, before:/after:, and exact
counts up to 10,000 matches, against real Xapian indexes."""
import datetime as dt
import json
from email.message import EmailMessage

import pytest

from services.archive.search import COUNT_LIMIT, search
from tests.integration.archive.indexed import indexed_archive
from tests.integration.archive.crowded import fill

pytestmark = pytest.mark.integration
NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.timezone.utc).timestamp()


def mail(name, date):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", name
    message["Date"], message["Message-ID"] = date, f"<{name}@example.com>"
    message.set_content("dated mail")
    return message.as_bytes()


DATED = {  # NOW is Sunday 2024-03-10 12:00 UTC
    "today": "Sun, 10 Mar 2024 08:00:00 +0000",
    "yesterday": "Sat, 09 Mar 2024 12:00:00 +0000",
    "late": "Tue, 05 Mar 2024 23:30:00 +0000",    # Wednesday 00:30 in Berlin
    "leap": "Thu, 29 Feb 2024 10:00:00 +0000",
    "january": "Fri, 05 Jan 2024 10:00:00 +0000",
    "old": "Tue, 01 Mar 2022 10:00:00 +0000",
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    opened = indexed_archive(tmp_path_factory.mktemp("data"),
                             {name: mail(name, date) for name, date in DATED.items()})
    yield opened
    opened.close()


def found(archive, query, timezone="UTC", now=NOW):
    hits = search(archive.index_dir(), query, limit=100, timezone=timezone, now=now).hits
    return sorted(archive.names[hit.digest] for hit in hits)


@pytest.mark.parametrize("query, expected", [
    ("date:today", ["today"]),
    ("date:yesterday", ["yesterday"]),
    ("date:yesterday..today", ["today", "yesterday"]),
    ("date:7d", ["late", "today", "yesterday"]),          # the last seven days
    ("date:7d..", ["late", "today", "yesterday"]),
    ("date:..7d", ["january", "leap", "old"]),            # up to the day seven days ago
    ("date:2w", ["late", "leap", "today", "yesterday"]),
    ("date:3m", ["january", "late", "leap", "today", "yesterday"]),
    ("date:1y", ["january", "late", "leap", "today", "yesterday"]),
    ("date:..1y", ["old"]),
    ("date:30d..", ["late", "leap", "today", "yesterday"]),
    ("date:2024-03", ["late", "today", "yesterday"]),
    ("date:2024/03/05", ["late"]),
    ("date:2024-02-29", ["leap"]),
    ("date:2024-01-01..2024-02-29", ["january", "leap"]),
    ("date:2022", ["old"]),
    ("before:2024-03-05", ["january", "leap", "old"]),    # before that day began
    ("after:2024-03-05", ["late", "today", "yesterday"]),  # on or after that day
    ("after:2024", ["january", "late", "leap", "today", "yesterday"]),
    ("before:2024", ["old"]),
    ("after:yesterday", ["today", "yesterday"]),
    ("before:7d", ["january", "leap", "old"]),
])
def test_dates_in_utc(archive, query, expected):
    assert found(archive, query) == expected


@pytest.mark.parametrize("query, utc, berlin", [
    ("date:2024-03-05", ["late"], []),
    ("date:2024-03-06", [], ["late"]),
    ("before:2024-03-06", ["january", "late", "leap", "old"], ["january", "leap", "old"]),
])
def test_days_are_days_in_the_appliance_time_zone(archive, query, utc, berlin):
    assert found(archive, query) == utc
    assert found(archive, query, timezone="Europe/Berlin") == berlin


def test_today_is_today_where_the_appliance_is(archive):
    # 23:30 on Saturday in UTC is already Sunday in Tokyo
    saturday_night = dt.datetime(2024, 3, 9, 23, 30, tzinfo=dt.timezone.utc).timestamp()
    assert found(archive, "date:today", now=saturday_night) == ["yesterday"]
    assert found(archive, "date:today", "Asia/Tokyo", now=saturday_night) == ["today"]
    assert found(archive, "date:yesterday", "Asia/Tokyo", now=saturday_night) == ["yesterday"]


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("crowded") / "index"
    fill(index_dir)
    return index_dir


@pytest.mark.parametrize("query, total, more, text", [
    ("gamma", 1234, False, "1,234"),
    ("beta", COUNT_LIMIT, False, "10,000"),
    ("alpha", COUNT_LIMIT, True, "more than 10,000"),
    ("", COUNT_LIMIT, True, "more than 10,000"),
    ("beta AND NOT gamma", COUNT_LIMIT - 1234, False, "8,766"),
])
def test_counts_are_exact_up_to_ten_thousand(crowded, query, total, more, text):
    results = search(crowded, query, limit=10, offset=20)
    assert (results.total, results.more, results.total_text()) == (total, more, text)
    assert len(results.hits) == 10
    assert json.dumps(results.hits[0].as_json())  # real documents, newest first
    assert results.hits[0].date > results.hits[-1].date


# --- what a hostile query cannot do (found by review) ------------------------------------

def test_a_date_past_the_calendar_is_a_query_error_not_a_crash(archive):
    from services.archive.search import QuerySyntaxError
    for query in ("date:9999-12-31", "date:9999-12-31..", "after:9999-12-31"):
        with pytest.raises(QuerySyntaxError, match="is not a date"):
            found(archive, query)


def test_an_offset_past_xapians_range_finds_nothing(archive):
    results = search(archive.index_dir(), "", limit=10, offset=2**32, now=NOW)
    assert results.hits == [] and results.total == len(DATED)


def test_a_query_holds_a_bounded_number_of_wildcards(archive):
    """Each wildcard may stand for 10,000 words; an OR of many costs more than their sum."""
    from services.archive.query import PATTERN_LIMIT
    from services.archive.search import PatternTooBroad
    few = " OR ".join(["m*"] * PATTERN_LIMIT)
    assert found(archive, few) == found(archive, "m*")
    with pytest.raises(PatternTooBroad, match=f"at most {PATTERN_LIMIT} wildcards"):
        found(archive, " OR ".join(["m*"] * (PATTERN_LIMIT + 1)))
    with pytest.raises(PatternTooBroad):
        found(archive, " OR ".join(f"to:u{n}*" for n in range(PATTERN_LIMIT + 1)))
