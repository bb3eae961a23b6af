"""Chains of hold-id clashes a peer sends (services.policy.hold_identity, replicated.merge):
a moved id stays within hold_records.HOLD_ID_LIMIT however long the chain, a chain longer
than hold_identity.MOVES is refused alone (ours kept, with its records), and a peer entry
of any shape never fails the merge of the others (found by a reviewer: a chain of twelve
clashes pushed a moved id past 100 characters, and move_in's check then refused the whole
merge, at every hello)."""
import hashlib
import itertools
import json
import time

import pytest

from services.policy import hold_identity, hold_records, holds
from tests.unit.policy.test_hold_clash import (HOLD, digests, exchange, moved, place, replicas,
                                               shown)

NEW_HOLD = "00112233445566aa"


def peer_entry(value, deleted: bool = False) -> dict:
    return {"value": value, "deleted": deleted,
            "stamp": [int(time.time() * 1000) + 60_000, 0, "peer"]}


def peer_hold(created: float, saved: str = "x") -> dict:
    return peer_entry({"saved": saved, "until": None, "by": "t", "created": created})


def chain(start: str, ours: dict, length: int) -> list[str]:
    """The keys `ours` moves through from `start`, one clash after another."""
    keys = [start]
    for _ in range(length):
        keys.append(hold_identity.moved_key(keys[-1], ours))
    return keys


@pytest.mark.parametrize("levels", [1, 11, 12, 40])
def test_a_chain_of_clashes_sent_in_order_keeps_our_hold_under_a_bounded_id(tmp_path, levels):
    """The reviewer's chain (each peer entry at the key our hold just moved to, created
    later): our hold moves each time, its id never past HOLD_ID_LIMIT, its records with
    it; the peer's new hold in the same merge arrives."""
    (a,) = replicas(tmp_path, "a")
    place(a, HOLD, 1000.0, digests(5, "a"))
    keys = chain("hold:" + HOLD, {"value": {"created": 1000.0}}, levels)
    sent = {key: peer_hold(5000.0 + level) for level, key in enumerate(keys[:-1])}
    sent["hold:" + NEW_HOLD] = peer_hold(5.0, "other")
    a.merge(sent)
    ours = {hold_id: recorded for hold_id, (created, recorded) in shown(a).items()
            if created == 1000.0}
    assert ours == {keys[-1][5:]: set(digests(5, "a"))}
    assert NEW_HOLD in holds.all_holds(a) and len(holds.all_holds(a)) == levels + 2
    assert max(len(hold_id) for hold_id in holds.all_holds(a)) <= hold_records.HOLD_ID_LIMIT


def test_a_chain_longer_than_the_moves_allowed_is_refused_and_ours_kept(tmp_path):
    """The peer's chain placed first, then its entry at our hold's id: settling it would
    move our hold past MOVES occupied keys. That entry alone is refused; our hold stays
    under its id with its records, and the rest of the merge is taken."""
    (a,) = replicas(tmp_path, "a")
    place(a, HOLD, 1000.0, digests(5, "a"))
    keys = chain("hold:" + HOLD, {"value": {"created": 1000.0}}, hold_identity.MOVES + 2)
    sent = {key: peer_hold(5000.0 + level) for level, key in enumerate(keys[1:])}
    sent["hold:" + HOLD] = peer_hold(4000.0)
    sent["hold:" + NEW_HOLD] = peer_hold(5.0, "other")
    assert a.merge(sent) == len(sent) - 1
    assert shown(a)[HOLD] == (1000.0, set(digests(5, "a")))
    assert NEW_HOLD in holds.all_holds(a)


def test_a_chain_within_the_moves_allowed_is_settled_in_one_merge(tmp_path):
    """The same, MOVES - 1 keys long: our hold moves past all of them, records and all."""
    (a,) = replicas(tmp_path, "a")
    place(a, HOLD, 1000.0, digests(5, "a"))
    keys = chain("hold:" + HOLD, {"value": {"created": 1000.0}}, hold_identity.MOVES - 1)
    sent = {key: peer_hold(5000.0 + level) for level, key in enumerate(keys[1:-1])}
    sent["hold:" + HOLD] = peer_hold(4000.0)
    assert a.merge(sent) == len(sent)
    assert shown(a)[keys[-1][5:]] == (1000.0, set(digests(5, "a")))
    assert hold_records.summary(a.store, HOLD) == hold_records.EMPTY


@pytest.mark.parametrize("hold_id", ["1a2b3c4d", "f" * 16, "x" * 100, "ab-cd", "é" * 100,
                                     "1a2b3c4d-" + "0" * 91, "-", "1a2b3c4d-12345678-9abcdef0"])
def test_a_moved_id_is_a_hold_id_whatever_it_moves_from(hold_id):
    for created in (0.0, 1000.0, 1e300, -5.5, 10**20):
        key = "hold:" + hold_id
        for _ in range(30):
            key = hold_identity.moved_key(key, {"value": {"created": created}})
            assert hold_records.is_hold_id(key[5:]) and key != "hold:" + hold_id


def test_a_first_move_is_where_an_older_release_put_it():
    """Peers of the release before agree on a single clash: "ID-" and the hash of created."""
    mark = hashlib.sha256(repr(1000.0).encode()).hexdigest()[:8]
    assert moved(1000.0) == f"{HOLD}-{mark}"


def test_peers_agree_on_a_second_clash_whatever_order_they_meet_in(tmp_path):
    """Four holds: a's and b's under HOLD (a's moves), c's placed under the key a's moves
    to and d's under the key after it: every order of exchanges ends the same on all."""
    outcomes = set()
    a_moves = chain("hold:" + HOLD, {"value": {"created": 1000.0}}, 2)
    for n, order in enumerate(itertools.permutations(range(4))):
        nodes = replicas(tmp_path, *(f"{name}{n}" for name in "abcd"))
        for node, key, created in zip(nodes, ["hold:" + HOLD, "hold:" + HOLD] + a_moves[1:],
                                      (1000.0, 2000.0, 3000.0, 500.0)):
            place(node, key[5:], created, digests(3, str(created)))
        ordered = [nodes[i] for i in order]
        for x, y in itertools.chain(zip(ordered, ordered[1:]), zip(ordered, ordered[2:]),
                                    zip(ordered, ordered[1:])):
            exchange(x, y)
        assert shown(nodes[0]) == shown(nodes[1]) == shown(nodes[2]) == shown(nodes[3])
        outcomes.add(tuple(sorted((hold_id, created) for hold_id, (created, _)
                                  in shown(nodes[0]).items())))
    d_moved = hold_identity.moved_key(a_moves[2], {"value": {"created": 500.0}})
    assert outcomes == {tuple(sorted([(HOLD, 2000.0), (a_moves[1][5:], 3000.0),
                                      (a_moves[2][5:], 1000.0), (d_moved[5:], 500.0)]))}


BAD_ENTRIES = {
    "not an object": "x", "no value": {"deleted": False, "stamp": [1, 0, "p"]},
    "deleted not a bool": {**peer_hold(1.0), "deleted": "no"},
    "stamp a string": {**peer_hold(1.0), "stamp": "now"},
    "stamp of two": {**peer_hold(1.0), "stamp": [1, 0]},
    "stamp of text": {**peer_hold(1.0), "stamp": ["1", 0, "p"]},
    "stamp of a float": {**peer_hold(1.0), "stamp": [1.5, 0, "p"]},
    "stamp negative": {**peer_hold(1.0), "stamp": [-1, 0, "p"]},
    "stamp of a bool": {**peer_hold(1.0), "stamp": [True, 0, "p"]},
    "stamp's node a number": {**peer_hold(1.0), "stamp": [1, 0, 7]},
}
BAD_KEYS = {
    "a key of a lone surrogate": "saved:\ud800", "a key past LMDB's size": "saved:" + "k" * 600,
    "bookkeeping": "\x00clock", "an empty key": "",
    "a hold id past 100": "hold:" + "a" * 101, "a hold id with NUL": "hold:ab\x00cd",
    "an older release's chain past 100": "hold:" + HOLD + "-12345678" * 11,
}


@pytest.mark.parametrize("bad", list(BAD_ENTRIES) + list(BAD_KEYS))
def test_a_peer_entry_of_any_shape_never_fails_the_merge_of_the_others(tmp_path, bad):
    (a,) = replicas(tmp_path, "a")
    place(a, HOLD, 1000.0, digests(3, "a"))
    key, entry = (BAD_KEYS[bad], peer_hold(7.0)) if bad in BAD_KEYS \
        else ("hold:" + HOLD, BAD_ENTRIES[bad])
    clock = a.store.env.begin().get(b"\x00clock", db=a.db)
    assert a.merge({key: entry, "hold:" + NEW_HOLD: peer_hold(5.0, "other")}) == 1
    assert shown(a)[HOLD] == (1000.0, set(digests(3, "a")))
    assert NEW_HOLD in holds.all_holds(a)
    assert a.store.env.begin().get(b"\x00clock", db=a.db) != clock  # the good one's seen
    json.dumps(a.export())  # still a document a peer can read


def test_a_peers_saved_search_of_another_shape_is_refused(tmp_path):
    (a,) = replicas(tmp_path, "a")
    a.put("saved:case", {"query": "from:carol"})
    for value in ("from:x", {"q": "x"}, {"query": 5}, None, ["from:x"]):
        a.merge({"saved:case": peer_entry(value)})
        assert a.get("saved:case") == {"query": "from:carol"}
    a.merge({"saved:case": peer_entry(None, deleted=True)})  # a deletion is one
    assert a.get("saved:case") is None
