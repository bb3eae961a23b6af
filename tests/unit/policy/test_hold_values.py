"""A hold's value of another shape (services.policy.hold_values): a peer's is refused where
it is merged, ours kept; one already stored is read fail-safe, shown as unreadable and
holding everything, never as released (found by a reviewer: a peer's hold whose value was
not an object, or lacked "until" and "saved", replaced ours by its newer stamp, then
crashed the holds list and retention's holds.active)."""
import datetime as dt

import pytest

from services.policy import hold_values, holds, saved_searches
from tests.unit.policy.test_hold_clash import ADMIN, HOLD, digests, place, replicas, shown
from tests.unit.policy.test_hold_chains import NEW_HOLD, peer_entry, peer_hold

GOOD = {"saved": "case", "until": None, "by": "t", "name": None, "reason": None,
        "created": 1000.0}
ODD_VALUES = [
    "not a dict", ["a", "list"], 42, None, True, {}, {"created": 3000.0},
    {**GOOD, "saved": None}, {**GOOD, "saved": ""}, {**GOOD, "saved": 5},
    {k: v for k, v in GOOD.items() if k != "until"},
    {k: v for k, v in GOOD.items() if k != "saved"},
    {**GOOD, "until": "someday"}, {**GOOD, "until": "2030-02-30"}, {**GOOD, "until": 20300101},
    {**GOOD, "until": "20300101"}, {**GOOD, "until": ["2030-01-01"]},
    {**GOOD, "by": 5}, {**GOOD, "name": ["x"]}, {**GOOD, "reason": {"x": 1}},
    {**GOOD, "created": "1000"}, {**GOOD, "created": float("nan")}, {**GOOD, "created": 10**400},
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_a_peers_hold_of_another_shape_is_refused_and_ours_kept(tmp_path, value):
    """Whatever its stamp: the holds list and retention read our hold as it was, with its
    query and records; the peer's other entries arrive."""
    (a,) = replicas(tmp_path, "a")
    a.put("saved:case", {"query": "from:carol"})
    place(a, HOLD, 1000.0, digests(5, "a"))
    assert hold_values.problem(value) is not None
    assert a.merge({"hold:" + HOLD: peer_entry(value),
                    "hold:" + NEW_HOLD: peer_hold(5.0, "other")}) == 1
    assert shown(a)[HOLD] == (1000.0, set(digests(5, "a")))
    assert (HOLD, "from:carol") in holds.active(a, dt.date.today())
    assert holds.all_holds(a)[NEW_HOLD]["unreadable"] is None


@pytest.mark.parametrize("value", ["x", 5, [1000.0], {"created": "1000"},
                                   {"created": float("inf")}])
def test_a_peers_removal_of_another_shape_is_refused(tmp_path, value):
    (a,) = replicas(tmp_path, "a")
    place(a, HOLD, 1000.0, digests(2, "a"))
    assert a.merge({"hold:" + HOLD: peer_entry(value, deleted=True)}) == 0
    assert shown(a)[HOLD] == (1000.0, set(digests(2, "a")))


@pytest.mark.parametrize("value", [GOOD, {**GOOD, "until": "2030-01-01", "name": "Smith",
                                          "reason": "letter"},
                                   {"saved": "case", "until": None},  # an older release's
                                   {**GOOD, "created": 5}, {**GOOD, "created": None},
                                   {**GOOD, "matter_no": 7}])  # a later release's field
def test_a_peers_hold_of_the_right_shape_is_merged(tmp_path, value):
    (a,) = replicas(tmp_path, "a")
    assert hold_values.problem(value) is None
    assert a.merge({"hold:" + HOLD: peer_entry(value)}) == 1
    assert holds.all_holds(a)[HOLD]["unreadable"] is None


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_an_odd_hold_already_stored_is_shown_unreadable_and_holds_everything(tmp_path, value):
    """As stored before this release checked (written here directly): the holds list
    shows it, unreadable, and retention holds everything for it, even with an until in
    the past; what it recorded still holds; an admin can remove it."""
    (a,) = replicas(tmp_path, "a")
    a.put("saved:case", {"query": "from:carol"})
    a.put("hold:" + HOLD, value)
    shown_hold = holds.all_holds(a)[HOLD]
    assert shown_hold["unreadable"] == hold_values.problem(value)
    assert set(shown_hold) == {*holds.FIELDS, "unreadable", "held_at_placement", "holds_everything"}
    assert shown_hold["holds_everything"].startswith("the hold cannot be read")
    assert holds.active(a, dt.date(2999, 1, 1)) == [(HOLD, "")]  # "": everything
    assert holds.in_force(shown_hold, dt.date(2999, 1, 1))
    assert holds.recorded_among(a, [HOLD], digests(2, "x")) == set()
    saved_searches.dependents(a, "case")
    with pytest.raises(holds.HoldChanged):
        holds.remove(a, HOLD, ADMIN, 12345.0)
    created = shown_hold["created"]
    holds.remove(a, HOLD, ADMIN, None if created is None else float(created))
    assert holds.all_holds(a) == {}


def test_an_older_releases_held_list_inside_an_odd_value_is_not_read(tmp_path):
    """A string value contains "held" as text: recorded_among must not index into it."""
    (a,) = replicas(tmp_path, "a")
    a.put("hold:" + HOLD, "held: everything")
    a.put("hold:1234abcd", {"saved": "case", "until": None, "held": "not a list"})
    assert holds.recorded_among(a, [HOLD, "1234abcd"], digests(3, "y")) == set()


def test_a_readable_holds_fields_are_shown_as_stored(tmp_path):
    (a,) = replicas(tmp_path, "a")
    value = {**GOOD, "until": "2030-01-01", "name": "Smith", "reason": "letter"}
    a.put("hold:" + HOLD, value)
    shown = holds.all_holds(a)[HOLD]
    assert "no saved search named" in shown.pop("holds_everything")  # "case" was never saved
    assert shown == {**value, "unreadable": None, "held_at_placement": 0}
