"""What holds recorded, kept apart from their replicated entries (real LMDB stores)."""
import hashlib
import json
import random

import pytest

from services.archive.store import Store
from services.policy import hold_records, holds
from services.policy.audit import Actor
from services.policy.replicated import Replicated

ADMIN = Actor("root", "admin")
HOLD = {"saved": "case", "until": None, "by": "root"}


def digests(count: int, seed: str = "") -> list[str]:
    return [hashlib.sha256(f"{seed}{n}".encode()).hexdigest() for n in range(count)]


def open_replica(tmp_path, name) -> Replicated:
    return Replicated(Store(tmp_path / name, map_size=1 << 30))


def test_records_are_a_grow_only_set_with_an_order_independent_summary(tmp_path):
    a, b = open_replica(tmp_path, "a"), open_replica(tmp_path, "b")
    for replica in (a, b):
        replica.put("hold:h1", HOLD)
    recorded = digests(300)
    shuffled = random.Random(7).sample(recorded, len(recorded))
    assert hold_records.add(a.store, "h1", recorded[:200]) == 200
    assert hold_records.add(a.store, "h1", recorded[100:]) == 100  # only the new ones
    for start in range(0, 300, 37):
        hold_records.add(b.store, "h1", shuffled[start:start + 37])
    assert hold_records.summary(a.store, "h1") == hold_records.summary(b.store, "h1")
    assert hold_records.summary(a.store, "h1").count == 300
    assert list(holds.recorded(a, "h1")) == sorted(recorded)
    hold_records.add(b.store, "h1", digests(1, "more"))
    assert hold_records.summary(a.store, "h1") != hold_records.summary(b.store, "h1")
    assert holds.all_holds(a)["h1"]["held_at_placement"] == 300


def test_pages_walk_the_records_in_digest_order_after_a_cursor(tmp_path):
    a = open_replica(tmp_path, "a")
    a.put("hold:h1", HOLD)
    a.put("hold:h12", HOLD)  # a hold whose id starts like another's keeps its own records
    recorded = sorted(digests(25))
    hold_records.add(a.store, "h1", recorded)
    hold_records.add(a.store, "h12", digests(5, "other"))
    walked, after = [], None
    while page := hold_records.page(a.store, "h1", after, 10):
        assert len(page) <= 10
        walked += page
        after = page[-1]
    assert walked == recorded
    assert list(hold_records.iterate(a.store, "h1", recorded[3], recorded[8], chunk=2)) \
        == recorded[4:9]


def test_a_removed_hold_drops_its_records_and_takes_none_again(tmp_path):
    a, b = open_replica(tmp_path, "a"), open_replica(tmp_path, "b")
    a.put("hold:h1", HOLD)
    b.merge(a.export())
    for replica in (a, b):
        hold_records.add(replica.store, "h1", digests(50))
    holds.remove(b, "h1", ADMIN)
    assert hold_records.summary(b.store, "h1") == hold_records.EMPTY
    a.merge(b.export())  # the tombstone wins on the other side too
    assert hold_records.summary(a.store, "h1") == hold_records.EMPTY
    assert list(hold_records.iterate(a.store, "h1")) == []
    assert hold_records.add(a.store, "h1", digests(50)) == 0  # a peer's late page
    old_format = {"value": {**HOLD, "held": digests(50)}, "deleted": False,
                  "stamp": [1, 0, "peer"]}  # an older write of the hold, with its list
    a.merge({"hold:h1": old_format})
    assert a.get("hold:h1") is None and hold_records.summary(a.store, "h1").count == 0
    assert hold_records.recorded_among(a.store, ["h1"], digests(50)) == set()


def test_an_old_peers_hold_entry_has_its_list_moved_into_the_records(tmp_path):
    a = open_replica(tmp_path, "a")
    listed = digests(40)
    entry = {"value": {**HOLD, "held": sorted(listed)}, "deleted": False,
             "stamp": [2_000_000_000_000, 0, "peer"]}
    assert a.merge({"hold:old": entry}) == 1
    assert a.get("hold:old") == HOLD and "held" not in json.dumps(a.export())
    assert list(holds.recorded(a, "old")) == sorted(listed)
    assert holds.all_holds(a)["old"]["held_at_placement"] == 40
    newer_list = {**entry, "value": {**HOLD, "held": digests(45)}, "stamp": [1, 0, "peer"]}
    a.merge({"hold:old": newer_list})  # an older entry still adds what it recorded
    assert hold_records.summary(a.store, "old").count == 45


def test_a_store_written_with_held_lists_is_migrated_when_opened(tmp_path):
    """As the older release left it: the list inside the hold's replicated entry."""
    store = Store(tmp_path / "a", map_size=1 << 30)
    listed, stamp = digests(1000), [1_700_000_000_000, 3, store.node_id]
    with store.env.begin(write=True) as txn:
        txn.put(b"hold:old", json.dumps({"value": {**HOLD, "held": sorted(listed)},
                                         "deleted": False, "stamp": stamp}).encode(),
                db=store.db["replicated"])
        txn.put(b"hold:gone", json.dumps({"value": None, "deleted": True,
                                          "stamp": stamp}).encode(), db=store.db["replicated"])
    store.close()
    replica = open_replica(tmp_path, "a")
    assert replica.export()["hold:old"] == {"value": HOLD, "deleted": False, "stamp": stamp}
    assert hold_records.summary(replica.store, "old").count == 1000
    assert hold_records.recorded_among(replica.store, ["old"], listed[:3] + digests(2, "x")) \
        == set(listed[:3])
    assert replica.migrate_holds() == 0  # once


def test_records_of_a_peer_must_name_a_hold_and_digests(tmp_path):
    a = open_replica(tmp_path, "a")
    a.put("hold:h1", HOLD)
    for bad in ("", "h\0x", "x" * 101, 5):
        with pytest.raises(hold_records.BadHoldRecords):
            hold_records.add_in(a.store, None, bad, [])
    for bad in ("zz" * 32, "ab" * 31, None, "ab" * 33):
        with pytest.raises(hold_records.BadHoldRecords):
            hold_records.add(a.store, "h1", [digests(1)[0], bad])
    assert hold_records.summary(a.store, "h1") == hold_records.EMPTY  # none of the batch


def test_records_move_the_holds_generation(tmp_path):
    a = open_replica(tmp_path, "a")
    a.put("hold:h1", HOLD)
    before = a.holds_generation()
    hold_records.add(a.store, "h1", digests(3))
    assert a.holds_generation() == before + 1
    hold_records.add(a.store, "h1", digests(3))  # nothing new: no change
    assert a.holds_generation() == before + 1
