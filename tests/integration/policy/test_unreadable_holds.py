"""A hold whose stored value is no hold's (services.policy.hold_values: merged from a peer
before merges checked them) fails safe against a real store and index: retention keeps
everything while it is there, what it covers is everything, and once an admin removes it
retention goes on as before (found by a reviewer: such a value crashed holds.active, and
so every retention run)."""
import pytest

from services.policy import hold_coverage, holds, retention
from tests.integration.policy.test_retention import (  # noqa: F401 (archive: a fixture)
    ADMIN, DAY, NOW, archive, message, put_and_index, remaining, run)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("value", [
    "not a dict", 42, {"created": 3000.0},
    {"saved": "gone", "until": "yesterday", "by": "t"},
    {"saved": "case", "until": "2001-01-01", "by": 5, "created": 1000.0}], ids=repr)
def test_an_unreadable_hold_keeps_everything_until_it_is_removed(archive, value):
    digests = put_and_index(archive, {"old": message(1, "a@x.com", "old", 400 * DAY),
                                      "older": message(2, "b@x.com", "older", 900 * DAY)})
    archive.replicated.put("hold:0dd0dd0d", value)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    report = run(archive)
    assert (report.deleted, report.held) == (0, 2)
    assert remaining(archive, digests) == ["old", "older"]
    [(hold_id, hold)] = holds.all_holds(archive.replicated).items()
    assert hold["unreadable"]
    assert hold_coverage.covered(archive.replicated, archive.index_dir(), hold_id, hold,
                                 now=NOW) == 2
    assert [held["id"] for held in hold_coverage.covering(
        archive.replicated, archive.index_dir(), digests["old"], now=NOW)] == [hold_id]
    created = hold["created"]
    holds.remove(archive.replicated, hold_id, ADMIN, None if created is None else float(created))
    assert run(archive).deleted == 2 and remaining(archive, digests) == []
