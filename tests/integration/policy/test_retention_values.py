"""Retention settings of the wrong shape: a mirror peer's are refused at merge (ours kept),
and one stored before values were checked reads fail-safe, so that no setting can make
retention delete mail sooner than a policy says, or stop its runs. Before, a peer's
{"retention:global": 0} was merged and expired every message not held at the next run,
and "30" (text) stopped every run with a TypeError."""
import pytest

from services.policy import retention, saved_searches
from tests.integration.policy.test_retention import (  # noqa: F401 (archive: a fixture)
    ADMIN, DAY, archive, lawyers_case_past_retention, message, put_and_index, remaining, run)
from tests.unit.policy.test_hold_chains import peer_entry

pytestmark = pytest.mark.integration

NOT_DAYS = [0, -1, "30", 30.5, True, False, None, [30], {"days": 30}, 2.0]


@pytest.mark.parametrize("value", NOT_DAYS, ids=repr)
def test_a_peers_global_policy_that_is_no_period_is_refused_and_ours_kept(archive, value):
    retention.set_global(archive.replicated, 30)
    assert archive.replicated.merge({retention.GLOBAL: peer_entry(value)}) == 0
    assert retention.policies(archive.replicated)["global_days"] == 30


@pytest.mark.parametrize("value", NOT_DAYS, ids=repr)
def test_a_peers_saved_search_policy_that_is_no_period_is_refused(archive, value):
    saved_searches.save(archive.replicated, "old", "subject:old", ADMIN)
    retention.set_saved(archive.replicated, "old", 400)
    assert archive.replicated.merge({retention.SAVED_PREFIX + "old": peer_entry(value)}) == 0
    assert retention.policies(archive.replicated)["saved"] == {"old": 400}


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "true", [True]], ids=repr)
def test_a_peers_switch_that_is_not_true_or_false_is_refused(archive, value):
    archive.replicated.put(retention.ENABLED, False)
    assert archive.replicated.merge({retention.ENABLED: peer_entry(value)}) == 0
    assert retention.policies(archive.replicated)["enabled"] is False


@pytest.mark.parametrize("key", ["retention:", "retention:globals", "retention:saved:",
                                 "retention:Enabled"])
def test_a_peers_unknown_retention_setting_is_refused(archive, key):
    assert archive.replicated.merge({key: peer_entry(30)}) == 0
    assert archive.replicated.get(key) is None


def test_a_peers_settings_of_the_right_shape_and_its_tombstones_are_merged(archive):
    retention.set_global(archive.replicated, 30)
    saved_searches.save(archive.replicated, "old", "subject:old", ADMIN)
    assert archive.replicated.merge({
        retention.ENABLED: peer_entry(True), retention.GLOBAL: peer_entry(None, deleted=True),
        retention.SAVED_PREFIX + "old": peer_entry(3650)}) == 3
    assert retention.policies(archive.replicated) == {
        "enabled": True, "global_days": None, "saved": {"old": 3650}, "unusable": {}}


def test_one_refused_setting_does_not_keep_the_others_out(archive):
    assert archive.replicated.merge({retention.GLOBAL: peer_entry(0),
                                     retention.ENABLED: peer_entry(True)}) == 1
    assert retention.policies(archive.replicated) == {
        "enabled": True, "global_days": None, "saved": {}, "unusable": {}}


@pytest.mark.parametrize("value", [0, -5, "1", True, 0.5], ids=repr)
def test_a_stored_global_policy_that_is_no_period_deletes_nothing(archive, value):
    """As an older release may have merged it from a peer: read as no global policy."""
    digests = put_and_index(archive, {"old": message(1, "a@x.com", "old", 400 * DAY)})
    archive.replicated.put(retention.ENABLED, True)
    archive.replicated.put(retention.GLOBAL, value)
    assert retention.policies(archive.replicated)["global_days"] is None
    assert run(archive).deleted == 0
    assert remaining(archive, digests) == ["old"]


@pytest.mark.parametrize("value", [1, "yes", [True]], ids=repr)
def test_a_stored_switch_that_is_not_true_leaves_retention_off(archive, value):
    digests = put_and_index(archive, {"old": message(1, "a@x.com", "old", 400 * DAY)})
    retention.set_global(archive.replicated, 30)
    archive.replicated.put(retention.ENABLED, value)
    report = run(archive)
    assert report.enabled is False and report.deleted == 0
    assert remaining(archive, digests) == ["old"]


@pytest.mark.parametrize("value", [0, "3650", "forever", 1.5], ids=repr)
def test_a_stored_saved_search_policy_that_is_no_period_keeps_the_mail_it_matches(archive,
                                                                                  value):
    """Its mail is kept (it may have been a longer policy than the global one); the
    global policy still applies to the rest, and the run goes on."""
    digests = lawyers_case_past_retention(archive)
    archive.replicated.put(retention.SAVED_PREFIX + "case", value)
    assert retention.policies(archive.replicated)["saved"] == {"case": None}
    assert run(archive).deleted == 1
    assert remaining(archive, digests) == ["case"]


@pytest.mark.parametrize("days", [0, -1, True, 1.5, "30"], ids=repr)
def test_an_admin_cannot_set_a_policy_that_is_no_period(archive, days):
    saved_searches.save(archive.replicated, "old", "subject:old", ADMIN)
    with pytest.raises(ValueError, match="whole number of days"):
        retention.set_global(archive.replicated, days)
    with pytest.raises(ValueError, match="whole number of days"):
        retention.set_saved(archive.replicated, "old", days)


# -- a policy on a saved search that cannot be applied ---------------------------------------

def _case_kept_ten_years(archive) -> dict[str, str]:
    digests = lawyers_case_past_retention(archive)
    retention.set_saved(archive.replicated, "case", 3650)
    return digests


def test_a_policy_whose_saved_search_a_peer_deleted_deletes_nothing_until_removed(archive):
    """A peer deleted the saved search while this appliance set a policy on it: both
    changes are merged. Its mail cannot be told apart, so nothing is deleted (it may be
    meant to outlive the global policy), and the run says why; removing the policy,
    without the search, lets retention go on."""
    digests = _case_kept_ten_years(archive)
    assert archive.replicated.merge({"saved:case": peer_entry(None, deleted=True)}) == 1
    shown = retention.policies(archive.replicated)
    assert shown["saved"] == {"case": 3650}
    assert "no saved search named 'case'" in shown["unusable"]["case"]
    for dry_run in (True, False):
        report = run(archive, dry_run=dry_run)
        assert report.deleted == 0 and list(report.unusable_policies) == ["case"]
    assert remaining(archive, digests) == ["case", "other"]
    retention.set_saved(archive.replicated, "case", None)
    assert retention.policies(archive.replicated)["unusable"] == {}
    assert run(archive).deleted == 2


def test_a_policy_on_a_saved_search_whose_query_does_not_parse_deletes_nothing(archive):
    """A peer's saved search is checked for its shape at merge, not its syntax (a later
    release may parse more)."""
    digests = _case_kept_ten_years(archive)
    archive.replicated.put("saved:case", {"query": "subject:("})
    report = run(archive)
    assert report.deleted == 0 and "cannot parse" in report.unusable_policies["case"]
    assert remaining(archive, digests) == ["case", "other"]


def test_usable_policies_are_applied_as_before(archive):
    digests = _case_kept_ten_years(archive)
    report = run(archive)
    assert report.unusable_policies == {} and report.deleted == 1
    assert remaining(archive, digests) == ["case"]
