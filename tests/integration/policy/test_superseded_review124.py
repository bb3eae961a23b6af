"""Superseded queries of held saved searches (review 124): bounded, settled under intake,
kept under an id clash, and what they hold shown."""
import time

import pytest

from services.archive.archive import Archive
from services.policy import editing, holds, retention, saved_searches
from services.policy.replicated import Replicated
from tests.integration.policy.test_retention import (  # noqa: F401
    ADMIN, DAY, archive, index, message, put_and_index, remaining, run)

pytestmark = pytest.mark.integration


def _held_case(archive):
    put_and_index(archive, {f"m{i}": message(100 + i, f"u{i}@x.com", "s", 400 * DAY)
                            for i in range(5)})
    saved_searches.save(archive.replicated, "case", "from:lawyer", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    return holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)


def test_repeated_edits_keep_one_entry_per_old_query_and_go_with_the_hold(archive):
    hold_id = _held_case(archive)
    archive.store.put(message(99, "z@x.com", "unindexed", 1 * DAY))  # index behind
    for i in range(40):
        editing.save_search(archive.store, archive.index_dir(), "case",
                            "from:lawyer" if i % 2 else "from:nobody", ADMIN)
    kept = archive.replicated.superseded()
    assert sorted(entry["query"] for entry in kept) == ["from:lawyer", "from:nobody"]
    assert all(entry["holds"] == [hold_id] for entry in kept)
    holds.remove(archive.replicated, hold_id, ADMIN)
    assert archive.replicated.superseded() == []


def test_settles_once_the_index_reached_the_change_though_mail_arrived_after(archive):
    hold_id = _held_case(archive)
    late = archive.store.put(message(3, "lawyer@x.com", "memo", 400 * DAY))  # not indexed
    editing.save_search(archive.store, archive.index_dir(), "case", "from:nobody", ADMIN)
    index(archive)
    archive.store.put(message(98, "z@x.com", "steady intake", 1 * DAY))  # behind again
    run(archive)
    assert archive.replicated.superseded() == []
    assert holds.is_recorded(archive.replicated, hold_id, late)
    assert late in archive.store


def test_settles_while_retention_is_off(archive):
    hold_id = _held_case(archive)
    late = archive.store.put(message(3, "lawyer@x.com", "memo", 400 * DAY))
    editing.save_search(archive.store, archive.index_dir(), "case", "from:nobody", ADMIN)
    index(archive)
    archive.replicated.put(retention.ENABLED, False)
    run(archive)
    assert archive.replicated.superseded() == []
    assert holds.is_recorded(archive.replicated, hold_id, late)


def test_an_id_clash_moving_our_hold_moves_its_superseded_queries(archive):
    digests = put_and_index(archive, {"case": message(1, "lawyer@x.com", "contract", 400 * DAY),
                                      "other": message(2, "bob@x.com", "lunch", 400 * DAY)})
    saved_searches.save(archive.replicated, "case", "from:lawyer", ADMIN)
    saved_searches.save(archive.replicated, "misc", "from:nobody", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    digests["late"] = archive.store.put(message(3, "lawyer@x.com", "memo", 400 * DAY))
    editing.save_search(archive.store, archive.index_dir(), "case", "from:nobody", ADMIN)
    mine = holds.all_holds(archive.replicated)[hold_id]["created"]
    # a peer's hold under the same id, created later (an id clash): ours moves
    archive.replicated.merge({f"hold:{hold_id}": {"value": {
        "saved": "misc", "until": None, "by": "p", "name": None, "reason": None,
        "created": mine + 10}, "deleted": False,
        "stamp": [int(time.time() * 1000) + 1000, 0, "peer"]}})
    archive.replicated.records_settled(archive.replicated.records_pending())
    [moved] = [other for other in holds.all_holds(archive.replicated) if other != hold_id]
    assert [entry["holds"] for entry in archive.replicated.superseded()] == [[moved]]
    holds.remove(archive.replicated, hold_id, ADMIN, mine + 10)  # the peer's matter is over
    index(archive)
    run(archive)
    assert remaining(archive, digests) == ["case", "late"]
    assert holds.is_recorded(archive.replicated, moved, digests["late"])


def _settings_change_between_check_and_deletion(archive, change):
    digests = put_and_index(archive, {"a": message(1, "lawyer@x.com", "contract", 400 * DAY),
                                      "b": message(2, "bob@x.com", "lunch", 400 * DAY)})
    saved_searches.save(archive.replicated, "case", "from:lawyer OR from:bob", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    delete, calls = archive.store.delete, []

    def admin_acts_first(batch, still_valid=None, also=None):
        if not calls:
            change()
        calls.append(list(batch))
        return delete(batch, still_valid, also)

    archive.store.delete = admin_acts_first
    report = run(archive)
    return digests, report, calls


@pytest.mark.parametrize("change", ["disable", "saved policy", "global days"])
def test_a_retention_setting_changed_mid_run_overtakes_the_deletion(archive, change):
    act = {"disable": lambda: archive.replicated.put(retention.ENABLED, False),
           "saved policy": lambda: retention.set_saved(archive.replicated, "case", 3650),
           "global days": lambda: retention.set_global(archive.replicated, 3650)}[change]
    digests, report, calls = _settings_change_between_check_and_deletion(archive, act)
    assert len(calls) == 2 and calls[1] == []
    assert remaining(archive, digests) == ["a", "b"] and report.deleted == 0


def _peers_hold_on_a_query_not_parsed_here(archive):
    digests = put_and_index(archive, {"other": message(2, "bob@x.com", "x", 400 * DAY)})
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    stamp = int(time.time() * 1000)
    archive.replicated.merge({"saved:case": {"value": {"query": "from:(lawyer"},
                                             "deleted": False, "stamp": [stamp - 5000, 0, "peer"]},
                              "hold:00112233445566aa": {"value": {
                                  "saved": "case", "until": None, "by": "x", "name": None,
                                  "reason": None, "created": 1.0},
                                  "deleted": False, "stamp": [stamp - 4000, 0, "peer"]}})
    assert archive.replicated.records_settled(archive.replicated.records_pending())
    return digests, "00112233445566aa"


def test_an_edit_away_from_a_query_not_parsed_here_holds_everything_until_the_hold_goes(archive):
    digests, hold_id = _peers_hold_on_a_query_not_parsed_here(archive)
    editing.save_search(archive.store, archive.index_dir(), "case", "from:lawyer", ADMIN)
    assert [entry["query"] for entry in archive.replicated.superseded()] == ["from:(lawyer"]
    assert "'from:(lawyer'" in holds.all_holds(archive.replicated)[hold_id]["holds_everything"]
    for _ in range(2):
        run(archive)
        assert remaining(archive, digests) == ["other"]
    holds.remove(archive.replicated, hold_id, ADMIN)
    assert archive.replicated.superseded() == []
    run(archive)
    assert remaining(archive, digests) == []


def test_a_peers_edit_away_from_a_query_not_parsed_here_is_shown_holding_everything(archive):
    digests, hold_id = _peers_hold_on_a_query_not_parsed_here(archive)
    archive.replicated.merge({"saved:case": {"value": {"query": "from:lawyer"}, "deleted": False,
                                             "stamp": [int(time.time() * 1000) + 5000, 0, "peer"]}})
    assert archive.replicated.records_settled(archive.replicated.records_pending())
    assert holds.all_holds(archive.replicated)[hold_id]["holds_everything"]
    run(archive)
    assert remaining(archive, digests) == ["other"]
