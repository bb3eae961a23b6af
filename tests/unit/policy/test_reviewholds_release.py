"""Review of the hold release (holds.remove, hold_identity): a release naming only the id
must be refused once the id clashed, also for a peer's long id, whose moved id keeps only
the first hold_identity.BASE_LIMIT characters of its base (found by review: the moved id's
base was cut, so the release's check of "other holds of the id's base" missed it, and the
peer's hold now under the id was released in place of the one the admin saw).

Severity HIGH by the brief's measure (a hold released that nobody released); reachable
only with an id of more than BASE_LIMIT characters, which no release draws but a peer may
send (hold_records.HOLD_ID_LIMIT allows 100)."""
import pytest

from services.policy import hold_identity, hold_records, holds
from tests.unit.policy.test_hold_clash import ADMIN, digests, place, replicas, shown

LONG_IDS = ["a" * (hold_identity.BASE_LIMIT + 1), "b" * hold_records.HOLD_ID_LIMIT,
            "c" * 95 + "-dddd", "é" * 99]


@pytest.mark.parametrize("hold_id", LONG_IDS, ids=lambda hold_id: f"{len(hold_id)}chars")
def test_a_release_by_a_long_id_alone_is_refused_once_it_clashed(tmp_path, hold_id):
    a, b = replicas(tmp_path, "a", "b")
    place(a, hold_id, 1000.0, digests(3, "a"))  # what the admin on a saw
    place(b, hold_id, 2000.0, digests(2, "b"))
    a.merge(b.export())  # b's later-created hold takes the id, a's moves
    before = shown(a)
    assert sorted(created for created, _ in before.values()) == [1000.0, 2000.0]
    with pytest.raises(holds.HoldChanged):
        holds.remove(a, hold_id, ADMIN)  # `archiver hold remove ID`, no --created
    assert shown(a) == before  # b's hold is not released in place of a's
