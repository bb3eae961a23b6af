"""Two appliances (processes in network namespaces) that placed different litigation holds
under one id while apart, as two peers of an older release (8 hex digits, 32 bits) could:
one hold on each under one id, and on b a hold under another id that a released after (its
tombstone has the larger stamp). Mirroring keeps every hold and every record on both: the
hold created later keeps the id, the other moves to the key services.policy.hold_identity
derives. The old merge kept one entry per id by its stamp: b's first hold was replaced
(its records were mixed into the other's), and the released id dropped b's second hold
and its records on both. The holds are written into each store while its node is stopped,
as a placement would leave them."""
import pytest

from services.archive.archive import Archive
from services.policy import hold_identity, hold_records, holds
from services.policy.audit import Actor
from services.policy.replicated import Replicated
from tests.integration.mirror.test_hold_records import digests, recorded_counts, records_of
from tests.integration.mirror.test_mirror import pair  # noqa: F401 (a fixture)
from tests.integration.mirror_nodes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BOTH, RELEASED = "1a2b3c4d", "5e6f7a8b"  # ids an older release drew on each side


def place(node, hold_id: str, created: float, recorded: list[str],
          released: bool = False) -> None:
    """A hold `hold_id` placed on stopped `node` at `created` with `recorded`; removed
    again if `released`."""
    archive = Archive(node.data, 450)
    try:
        replicated = Replicated(archive.store)
        replicated.put("hold:" + hold_id, {"saved": "case", "until": None, "by": "t",
                                           "created": created})
        hold_records.add(archive.store, hold_id, recorded)
        if released:
            holds.remove(replicated, hold_id, Actor("root", "admin"))
    finally:
        archive.close()


def moved(hold_id: str, created: float) -> str:
    key = hold_identity.moved_key("hold:" + hold_id, {"value": {"created": created}})
    return key[len("hold:"):]


def test_holds_placed_apart_under_one_id_are_all_kept_on_both(pair):  # noqa: F811
    a, b = pair
    a.start(), b.start()
    a.cli("search", "--save", "case", "from:lawyer")
    wait_until(lambda: not a.peer_status(b)["settings_differ"], 60, "the search to reach b")
    a.stop(), b.stop()
    place(b, RELEASED, 1500.0, digests(700, "b-released-id"))  # before a's: smaller stamp
    place(a, BOTH, 1000.0, digests(3000, "a"))
    place(b, BOTH, 2000.0, digests(2000, "b"))
    place(a, RELEASED, 3000.0, digests(10, "a-released"), released=True)
    expected = {BOTH: (2000.0, digests(2000, "b")),
                moved(BOTH, 1000.0): (1000.0, digests(3000, "a")),
                moved(RELEASED, 1500.0): (1500.0, digests(700, "b-released-id"))}
    a.start(), b.start()
    counts = {hold_id: len(recorded) for hold_id, (_, recorded) in expected.items()}
    wait_until(lambda: recorded_counts(a) == recorded_counts(b) == counts, 300,
               "both to keep every hold with its records")
    wait_until(lambda: not a.peer_status(b)["settings_differ"]
               and not b.peer_status(a)["settings_differ"], 60, "the peers to agree")
    a.stop(), b.stop()
    for node in (a, b):
        archive = Archive(node.data, 450)
        try:
            shown = holds.all_holds(Replicated(archive.store))
        finally:
            archive.close()
        assert {hold_id: hold["created"] for hold_id, hold in shown.items()} == {
            hold_id: created for hold_id, (created, _) in expected.items()}
        for hold_id, (_, recorded) in expected.items():
            assert records_of(node, hold_id)[1] == sorted(recorded)
        assert records_of(node, RELEASED) == (hold_records.EMPTY, [])
