"""Two different litigation holds under one id (drawn on two mirror peers at once, or by an
older release's 32-bit ids), merged between real stores: neither hold, nor what it
recorded, is dropped, whichever stamp is larger; the one created later keeps the id, the
other moves to its moved key (services.policy.hold_identity), the same on every peer.

Records cross as services.mirror.hold_sync moves them: the union, for holds live on both
sides (exchange())."""
import hashlib
import itertools
import json
import time

import pytest

from services.archive.store import Store
from services.policy import hold_identity, hold_records, holds
from services.policy.audit import Actor
from services.policy.replicated import KeyTaken, Replicated

ADMIN = Actor("root", "admin")
HOLD = "1a2b3c4d"  # an older release's 8-hex-digit id


def replicas(tmp_path, *names) -> list[Replicated]:
    return [Replicated(Store(tmp_path / name, map_size=1 << 30)) for name in names]


def digests(count: int, seed: str) -> list[str]:
    return [hashlib.sha256(f"{seed}{n}".encode()).hexdigest() for n in range(count)]


def place(replicated: Replicated, hold_id: str, created: float, recorded: list[str]) -> None:
    """A hold `hold_id` placed here at `created`, having recorded `recorded`."""
    replicated.put("hold:" + hold_id, {"saved": "case", "until": None, "by": "t",
                                       "created": created})
    hold_records.add(replicated.store, hold_id, recorded)
    time.sleep(0.005)  # the next write's stamp is larger whatever the node ids


def exchange(x: Replicated, y: Replicated) -> None:
    """A hello both ways, then the records of the holds live on both."""
    y.merge(x.export())
    x.merge(y.export())
    for one, other in ((x, y), (y, x)):
        for hold_id in holds.all_holds(one):
            hold_records.add(other.store, hold_id, list(hold_records.iterate(one.store, hold_id)))


def shown(replicated: Replicated) -> dict[str, tuple[float, set[str]]]:
    """Each live hold: its created time and what it recorded."""
    return {hold_id: (hold["created"], set(hold_records.iterate(replicated.store, hold_id)))
            for hold_id, hold in holds.all_holds(replicated).items()}


def moved(created: float) -> str:
    return hold_identity.moved_key("hold:" + HOLD, {"value": {"created": created}})[5:]


def test_holds_placed_at_once_under_one_id_both_stay_with_their_records(tmp_path):
    a, b = replicas(tmp_path, "a", "b")
    place(a, HOLD, 1000.0, digests(30, "a"))
    place(b, HOLD, 2000.0, digests(20, "b"))  # the larger stamp: alone it won
    exchange(a, b)
    expected = {HOLD: (2000.0, set(digests(20, "b"))),
                moved(1000.0): (1000.0, set(digests(30, "a")))}
    assert shown(a) == shown(b) == expected
    assert a.digest() == b.digest()
    everything = digests(30, "a") + digests(20, "b")
    assert holds.recorded_among(a, list(expected), everything) == set(everything)


def test_a_peers_hold_over_an_id_released_here_later_is_kept(tmp_path):
    """b placed its hold first; a placed and released another under the same id after:
    the tombstone's stamp is larger. The old merge dropped b's hold and b's records, on
    both sides."""
    a, b = replicas(tmp_path, "a", "b")
    place(b, HOLD, 1500.0, digests(25, "b"))
    place(a, HOLD, 3000.0, digests(10, "a"))
    holds.remove(a, HOLD, ADMIN)
    exchange(a, b)
    assert shown(a) == shown(b) == {moved(1500.0): (1500.0, set(digests(25, "b")))}
    assert hold_records.summary(a.store, HOLD) == hold_records.EMPTY
    assert a.digest() == b.digest()


def test_a_hold_here_survives_a_peers_later_release_of_another_hold(tmp_path):
    """A tombstone removes the hold it names only: a's own hold, placed later than the
    one b released, keeps its id and records."""
    a, b = replicas(tmp_path, "a", "b")
    place(b, HOLD, 1000.0, digests(5, "old"))
    place(a, HOLD, 2000.0, digests(40, "a"))
    holds.remove(b, HOLD, ADMIN)  # the largest stamp
    exchange(a, b)
    assert shown(a) == shown(b) == {HOLD: (2000.0, set(digests(40, "a")))}
    assert a.digest() == b.digest()


def test_a_release_still_removes_the_hold_on_every_peer(tmp_path):
    """The same hold: a tombstone naming it (this release) or naming none (an older
    release's) drops it and its records on both sides."""
    for n, tombstone in enumerate(["named", "unnamed"]):
        a, b = replicas(tmp_path, f"a{n}", f"b{n}")
        place(a, HOLD, 1000.0, digests(30, "a"))
        exchange(a, b)
        holds.remove(b, HOLD, ADMIN)
        if tombstone == "unnamed":
            b.merge({"hold:" + HOLD: {**b.export()["hold:" + HOLD], "value": None}})
        exchange(a, b)
        assert shown(a) == shown(b) == {}
        assert hold_records.summary(a.store, HOLD) == hold_records.EMPTY


def test_three_peers_agree_whatever_order_they_meet_in(tmp_path):
    """Three holds under one id, one of them released: every order of exchanges ends in
    the same holds and records on all three."""
    outcomes = set()
    for n, order in enumerate(itertools.permutations(range(3))):
        nodes = replicas(tmp_path, *(f"{name}{n}" for name in "abc"))
        for node, created in zip(nodes, (1000.0, 2000.0, 3000.0)):
            place(node, HOLD, created, digests(10, str(created)))
        holds.remove(nodes[1], HOLD, ADMIN)
        first, second, third = (nodes[i] for i in order)
        exchange(first, second), exchange(second, third), exchange(first, third)
        exchange(first, second)
        assert shown(nodes[0]) == shown(nodes[1]) == shown(nodes[2])
        outcomes.add(tuple(sorted((hold, created, len(recorded)) for hold, (created, recorded)
                                  in shown(nodes[0]).items())))
    assert outcomes == {((HOLD, 3000.0, 10), (moved(1000.0), 1000.0, 10))}


def test_a_new_hold_never_overwrites_an_entry_that_took_its_id_meanwhile(tmp_path):
    """A placement writes its entry only where there is none: a peer's hold (or its
    tombstone) merged under the drawn id while the placement recorded is kept."""
    a, b = replicas(tmp_path, "a", "b")
    place(b, HOLD, 1000.0, digests(5, "b"))
    a.merge(b.export())
    with pytest.raises(KeyTaken):
        a.put("hold:" + HOLD, {"saved": "mine", "created": 2000.0}, new=True)
    assert holds.all_holds(a)[HOLD]["saved"] == "case"


def test_a_peers_hold_without_a_created_time_is_merged_by_its_stamp(tmp_path):
    """No incarnation (null, as a hold of an older release has): the entry is merged as
    before, by stamp."""
    a, b = replicas(tmp_path, "a", "b")
    place(a, HOLD, 1000.0, [])
    b.put("hold:" + HOLD, {"saved": "case", "until": None, "by": "t", "created": None})
    a.merge(b.export())
    shown = holds.all_holds(a)
    assert list(shown) == [HOLD] and shown[HOLD]["created"] is None


def test_a_peers_malformed_created_time_is_refused_and_ours_kept(tmp_path):
    """A created that is no finite number is no hold's value (hold_values): that entry
    is refused, whatever its stamp, and ours stays as it was (before, it was merged by its
    stamp and replaced ours)."""
    a, b = replicas(tmp_path, "a", "b")
    place(a, HOLD, 1000.0, digests(3, "a"))
    for created in (float("nan"), float("inf"), -float("inf"), True, "1000", [1000.0], {}):
        b.put("hold:" + HOLD, {"saved": "case", "until": None, "by": "t", "created": created})
        assert a.merge(b.export()) == 0
        assert shown(a) == {HOLD: (1000.0, set(digests(3, "a")))}


def test_a_huge_integer_created_from_a_peer_does_not_stop_the_merge(tmp_path):
    """A peer's created of 10**400 (valid JSON) has no float: it is an unknown incarnation
    (merged by its stamp), and the peer's other entries still arrive (found by a reviewer:
    OverflowError failed every merge, so the peer's holds never arrived)."""
    (a,) = replicas(tmp_path, "a")
    place(a, HOLD, 1000.0, [])
    stamp = int(time.time() * 1000) + 60_000
    sent = json.loads('{"hold:%s": {"value": {"saved": "case", "until": null, "by": "t", '
                      '"created": 1%s}, "deleted": false, "stamp": [%d, 0, "peer"]}}'
                      % (HOLD, "0" * 400, stamp))
    sent["hold:00112233445566aa"] = {"value": {"saved": "other", "until": None, "by": "t",
                                               "created": 5.0},
                                     "deleted": False, "stamp": [stamp, 0, "peer"]}
    a.merge(sent)
    assert "00112233445566aa" in holds.all_holds(a)
