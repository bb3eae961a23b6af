"""A hold placed from search results holds what the search page showed: its days are the
appliance's time zone's (archiver.yaml `timezone`), as the page reads them, not UTC's."""
from __future__ import annotations

import datetime as dt

import pytest
from firmware.errors import ArchiverError

from services.appliance import users
from services.archive.extract import ExtractionPool
from services.web import actions, admin_actions
from tests.integration.web.fixtures import build_archive, mail

pytestmark = pytest.mark.integration

TOKYO = "Asia/Tokyo"  # UTC+9: 23:30 UTC on 5 January is 08:30 on the 6th there


@pytest.fixture
def archive(tmp_path):
    late = mail("carol@example.com", "dave@example.com", "Late call", "Call me",
                date="Fri, 05 Jan 2024 23:30:00 +0000")
    archive, digests = build_archive(tmp_path / "data", {"late": (late, None)})
    archive.digests = digests
    yield archive
    archive.close()


def test_chosen_results_are_held_by_the_appliances_days(archive):
    auditor = users.get(archive, "audrey")
    shown = actions.search(archive, auditor, "date:2024-01-06", 50, 0, False, TOKYO)
    shown_digests = {hit.digest for hit in shown.hits}
    assert archive.digests["late"] in shown_digests  # the 6th in Tokyo
    _, hold_id = admin_actions.hold_chosen(archive, auditor, "Tokyo matter", "", None,
                                           "date:2024-01-06", None, TOKYO)
    hold = {h["id"]: h for h in actions.all_holds(archive)}[hold_id]
    assert hold["held_at_placement"] == len(shown_digests) == 2


def test_a_hold_through_yesterday_in_the_appliances_zone_is_refused_before_saving(archive):
    auditor = users.get(archive, "audrey")
    zone = "Pacific/Kiritimati"  # UTC+14: its today is often UTC's tomorrow
    yesterday = dt.datetime.now(dt.timezone(dt.timedelta(hours=14))).date() \
        - dt.timedelta(days=1)
    saved_before = actions.saved(archive)
    with pytest.raises(ArchiverError, match="the day is past"):
        admin_actions.hold_chosen(archive, auditor, "Late matter", "", yesterday.isoformat(),
                                  "from:carol", None, zone)
    assert actions.saved(archive) == saved_before and actions.all_holds(archive) == []


def test_a_held_search_replaced_from_the_results_page_keeps_what_it_held(archive):
    """Saving chosen results under a held search's name records what the old query matched
    first: in the appliance's days, as the hold reads them (it was UTC's)."""
    auditor = users.get(archive, "audrey")
    admin = users.User("admin", "admin", (), {})
    _, hold_id = admin_actions.hold_chosen(archive, auditor, "Tokyo matter", "", None,
                                           "date:2024-01-06", None, TOKYO)
    name = {h["id"]: h for h in actions.all_holds(archive)}[hold_id]["saved"]
    # Arrived after the hold was placed: held by its search alone, until the search changes.
    later = archive.store.put(mail("carol@example.com", "dave@example.com", "Later call",
                                   "Call me again", date="Fri, 05 Jan 2024 23:45:00 +0000"))
    with ExtractionPool(1024 * 1024, workers=1) as pool:
        indexer = archive.indexer(pool)
        indexer.catch_up()
        indexer.close()
    admin_actions.save_chosen(archive, admin, name, "subject:nothing-matches", None, TOKYO)
    covering = admin_actions.holds_covering(archive, admin, later, TOKYO)
    assert [hold["id"] for hold in covering] == [hold_id]  # the 6th in Tokyo: still held
