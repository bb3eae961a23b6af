"""A release names the hold the admin saw, by id and incarnation (holds.remove): a mirror
merge that moved that hold to its moved key between the page and the click, and put a
peer's hold under the id, never has the peer's hold released instead (found by a
reviewer: the release named only the id, and removed the peer's hold on both nodes)."""
import datetime as dt

import pytest

from firmware.errors import ArchiverError
from services.policy import holds
from services.policy.audit import Actor, PermissionDenied
from tests.unit.policy.test_hold_clash import (ADMIN, HOLD, digests, exchange, moved, place,
                                               replicas, shown)


def test_a_release_racing_a_merge_removes_only_the_hold_the_admin_saw(tmp_path):
    """The reviewer's case: the admin on a sees HOLD (a's, created 1000) and releases it;
    just before, a merge from b moved a's hold to its moved key and put b's (created 2000)
    under HOLD. The release is refused, naming where the hold seen went; releasing that
    one removes it alone, and b's hold stays on both nodes with its records."""
    a, b = replicas(tmp_path, "a", "b")
    place(a, HOLD, 1000.0, digests(30, "a"))
    place(b, HOLD, 2000.0, digests(20, "b"))
    seen = holds.all_holds(a)[HOLD]["created"]  # what the holds page shows the admin
    a.merge(b.export())  # a hello from b, between the page and the click
    with pytest.raises(holds.HoldChanged) as refused:
        holds.remove(a, HOLD, ADMIN, seen)
    message = str(refused.value)
    assert f"hold {HOLD} changed" in message and f"now hold {moved(1000.0)}" in message
    assert "(2000.0)" in message and "(1000.0)" in message
    assert shown(a) == {HOLD: (2000.0, set()), moved(1000.0): (1000.0, set(digests(30, "a")))}
    holds.remove(a, moved(1000.0), ADMIN, seen)  # the admin, told, releases the one meant
    exchange(a, b)
    assert shown(a) == shown(b) == {HOLD: (2000.0, set(digests(20, "b")))}
    ids = [hold_id for hold_id, _ in holds.active(b, dt.date.today())]
    assert holds.recorded_among(b, ids, digests(20, "b")) == set(digests(20, "b"))


def test_a_release_naming_only_the_id_is_refused_once_the_id_clashed(tmp_path):
    """The CLI and API without a created time: taken while the id names one hold, refused
    (naming each hold of the id with its created time) once a clash gave it two, on either
    of them; nothing removed."""
    a, b = replicas(tmp_path, "a", "b")
    place(a, HOLD, 1000.0, digests(3, "a"))
    place(b, HOLD, 2000.0, digests(2, "b"))
    a.merge(b.export())
    before = shown(a)
    for hold_id in (HOLD, moved(1000.0)):
        with pytest.raises(holds.HoldChanged) as refused:
            holds.remove(a, hold_id, ADMIN)
        message = str(refused.value)
        assert f"{HOLD} (created" in message and f"{moved(1000.0)} (created" in message
        assert "(1000.0)" in message and "(2000.0)" in message
    assert shown(a) == before
    holds.remove(a, HOLD, ADMIN, 2000.0)  # named by its created time: taken
    assert list(shown(a)) == [moved(1000.0)]
    holds.remove(a, moved(1000.0), ADMIN)  # alone now: the id names one hold
    assert shown(a) == {}


@pytest.mark.parametrize("stored, seen, taken", [
    (1000.0, 1000.0, True), (1000, 1000.0, True), (None, None, True),
    (1000.0, 1000.0000001, False), (1000.0, None, False), (None, 1000.0, False),
    (1000.0, 999.0, False)])
def test_a_release_is_taken_only_for_the_incarnation_seen(tmp_path, stored, seen, taken):
    (a,) = replicas(tmp_path, "a")
    a.put("hold:" + HOLD, {"saved": "case", "until": None, "by": "t", "created": stored})
    if taken:
        holds.remove(a, HOLD, ADMIN, seen)
        assert holds.all_holds(a) == {}
    else:
        with pytest.raises(holds.HoldChanged):
            holds.remove(a, HOLD, ADMIN, seen)
        assert list(holds.all_holds(a)) == [HOLD]


def test_ids_that_never_clashed_are_released_by_id_alone(tmp_path):
    """A drawn 16-digit id, an older release's 8-digit one without a created time, and one
    whose first digits equal another's (not the same id): each removed by its id alone."""
    (a,) = replicas(tmp_path, "a")
    place(a, "00112233445566aa", 1000.0, digests(2, "x"))
    a.put("hold:" + HOLD, {"saved": "case", "until": None, "by": "t"})
    place(a, HOLD + "99887766", 2000.0, [])
    for hold_id in ("00112233445566aa", HOLD, HOLD + "99887766"):
        holds.remove(a, hold_id, ADMIN)
    assert holds.all_holds(a) == {}


def test_a_refused_release_writes_nothing(tmp_path):
    """The check and the tombstone are one transaction: a refusal leaves the entry, its
    stamp and the clock as they were; an unknown id or a non-admin, likewise."""
    (a,) = replicas(tmp_path, "a")
    place(a, HOLD, 1000.0, digests(4, "a"))
    before = a.export()
    with pytest.raises(holds.HoldChanged):
        holds.remove(a, HOLD, ADMIN, 1.0)
    with pytest.raises(holds.UnknownHold):
        holds.remove(a, "ffffffffffffffff", ADMIN, 1000.0)
    with pytest.raises(PermissionDenied):
        holds.remove(a, HOLD, Actor("ann", "auditor"), 1000.0)
    assert a.export() == before


@pytest.mark.parametrize("text, expected", [
    ("1000", 1000.0), ("1718020800.123456", 1718020800.123456), (" 1e3 ", 1000.0),
    ("none", None), ("NONE", None)])
def test_a_created_time_as_the_holds_list_shows_it_is_read_back(text, expected):
    assert holds.parse_created(text) == expected


@pytest.mark.parametrize("text", ["", "nan", "inf", "-inf", "1e400", "abc", "1000s", "null"])
def test_a_created_time_that_names_no_hold_is_a_clear_error(text):
    with pytest.raises(ArchiverError, match="expected the hold's created time"):
        holds.parse_created(text)
