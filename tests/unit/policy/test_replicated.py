import json
import time

from services.policy.replicated import Replicated, Stamp
from services.archive.store import Store


def replicas(tmp_path, *names):
    return [Replicated(Store(tmp_path / name, map_size=1 << 30)) for name in names]


def test_last_writer_wins_whatever_order_entries_are_merged_in(tmp_path):
    a, b, c = replicas(tmp_path, "a", "b", "c")
    a.put("retention:global", 30)
    time.sleep(0.005)  # in one millisecond the node ids would order the two writes
    b.put("retention:global", 90)  # later: wins
    c.merge(b.export()), c.merge(a.export())
    a.merge(b.export())
    b.merge(a.export())
    assert a.get("retention:global") == b.get("retention:global") == c.get("retention:global") == 90
    assert a.digest() == b.digest() == c.digest()


def test_a_deletion_wins_over_the_older_write_it_deletes(tmp_path):
    a, b = replicas(tmp_path, "a", "b")
    a.put("saved:x", {"query": "q"})
    b.merge(a.export())
    b.delete("saved:x")
    a.merge(b.export())
    a.merge(b.export())
    assert a.get("saved:x") is None and a.items("saved:") == {}


def test_stamps_order_by_time_then_counter_then_node():
    assert Stamp(1, 0, "z") < Stamp(2, 0, "a") and Stamp(1, 1, "a") > Stamp(1, 0, "z")
    assert Stamp(1, 0, "b") > Stamp(1, 0, "a")


def test_a_retention_setting_changes_the_holds_generation(tmp_path):
    """A deletion decided under retention settings since changed is checked again."""
    (a,) = replicas(tmp_path, "a")
    for key, value in [("retention:enabled", True), ("retention:global", 30),
                       ("retention:saved:x", 90)]:
        before = a.holds_generation()
        a.put(key, value)
        assert a.holds_generation() == before + 1


def test_writing_a_hold_or_a_saved_search_changes_the_holds_generation(tmp_path):
    """A hold reads its saved search's query: an edit of it (here, or a peer's merged)
    must overtake a retention deletion decided before, as a hold does."""
    (a,) = replicas(tmp_path, "a")
    before = a.holds_generation()
    a.put("mirror:note", True)
    assert a.holds_generation() == before
    a.put("saved:x", {"query": "q"})
    assert a.holds_generation() == before + 1
    a.put("hold:1", {"saved": "x", "until": None, "by": "t"})
    assert a.holds_generation() == before + 2
    b = replicas(tmp_path, "b")[0]
    b.merge(a.export())
    assert b.holds_generation() == 2
    a.put("saved:x", {"query": "q OR r"})
    b.merge(a.export())
    assert b.holds_generation() == 3


def test_a_clock_behind_still_issues_increasing_stamps(tmp_path, monkeypatch):
    (a,) = replicas(tmp_path, "a")
    a.put("k", 1)
    monkeypatch.setattr("time.time", lambda: 1.0)  # the wall clock jumped back
    a.put("k", 2)
    entries = a.export()
    assert entries["k"]["value"] == 2 and Stamp.from_json(entries["k"]["stamp"]).counter == 1


def _without_at(superseded):
    assert all(isinstance(entry.pop("at"), int) for entry in superseded)
    return superseded


def test_a_held_saved_searchs_old_query_is_kept_until_recorded_here_or_merged(tmp_path):
    """An edit (here, or a peer's merged) or a deletion of a saved search that a hold
    here is built on keeps its old query, with the holds, for this node to record;
    a search no hold is on, a write of the same query, or another hold's search: none."""
    a, b = replicas(tmp_path, "a", "b")
    a.put("saved:x", {"query": "q"})
    a.put("saved:free", {"query": "f"})
    a.put("hold:1", {"saved": "x", "until": None, "by": "t"})
    b.merge(a.export())
    a.put("saved:x", {"query": "q"})
    a.put("saved:free", {"query": "g"})
    assert a.superseded() == []
    a.put("saved:x", {"query": "r"})
    assert _without_at(a.superseded()) == [{"saved": "x", "query": "q", "holds": ["1"]}]
    b.merge(a.export())
    assert _without_at(b.superseded()) == [{"saved": "x", "query": "q", "holds": ["1"]}]
    b.delete("saved:x")
    assert [entry["query"] for entry in b.superseded()] == ["q", "r"]
    with a.store.writing() as txn:
        a.settle_superseded(txn, a.superseded()[0])
    assert a.superseded() == []


def test_supersedes_are_counted_durably_settled_or_not(tmp_path):
    """Replicated.superseding: each old query kept (an edit here, a peer's merged, the same
    old query again) counts once and the count never goes down, settled or not, across a
    reopening of the store; a search no hold is built on counts nothing."""
    a, b = replicas(tmp_path, "a", "b")
    a.put("saved:free", {"query": "from:x"})
    a.put("saved:free", {"query": "from:y"})  # nothing holds it
    a.put("saved:case", {"query": "from:lawyer"})
    a.put("hold:h1", {"saved": "case", "until": None, "by": "root"})
    assert tuple(a.superseding()) == (0, 0)
    b.merge(a.export())
    a.put("saved:case", {"query": "from:nobody"})
    assert tuple(a.superseding()) == (1, 1)
    b.merge(a.export())  # the same edit, merged on the peer
    assert tuple(b.superseding()) == (1, 1)
    with a.store.writing() as txn:
        a.settle_superseded(txn, a.superseded(txn)[0])
    assert tuple(a.superseding()) == (0, 1)
    a.put("saved:case", {"query": "from:lawyer"})
    a.put("saved:case", {"query": "from:nobody"})  # "from:lawyer" again: merged, counted
    assert tuple(a.superseding()) == (2, 3)
    a.store.close()
    reopened = Replicated(Store(tmp_path / "a", map_size=1 << 30))
    assert tuple(reopened.superseding()) == (2, 3)


def test_records_dropped_or_moved_and_superseded_queries_pruned_are_counted(tmp_path):
    """Every change that takes what a hold holds out of what an exchange of hold records
    sees counts in the same durable count as a supersede, in its own transaction: a hold's
    records dropped with its tombstone (here or merged), a hold moved to another id by a
    clashing hold merged here (its records and the superseded queries naming it), and a
    superseded query dropped with the last hold it held for."""
    from services.policy import hold_records
    a, b, c = replicas(tmp_path, "a", "b", "c")
    digest = "ab" * 32
    a.put("saved:case", {"query": "from:lawyer"})
    a.put("hold:h1", {"saved": "case", "until": None, "by": "root", "created": 1000.0})
    hold_records.add(a.store, "h1", [digest])
    a.put("saved:case", {"query": "from:nobody"})  # superseded, held for h1
    assert tuple(a.superseding()) == (1, 1)
    c.put("saved:other", {"query": "from:x"})
    c.put("hold:h1", {"saved": "other", "until": None, "by": "root", "created": 2000.0})
    a.merge(c.export(), "c")  # a's h1 moves: its records and its superseded query
    moved = [key[len("hold:"):] for key in a.items("hold:") if key.startswith("hold:h1-")]
    assert moved and hold_records.contains(a.store, moved[0], digest)
    held_now, count = a.superseding()
    assert held_now == 1 and count > 1
    a.delete("hold:" + moved[0])  # its records dropped, its superseded query pruned
    assert a.superseding().held_now == 0 and a.superseding().supersede_count > count
    count = a.superseding().supersede_count
    b.put("hold:h2", {"saved": "other", "until": None, "by": "root"})
    a.merge(b.export(), "b")
    hold_records.add(a.store, "h2", [digest])
    assert a.superseding().supersede_count == count  # records added: nothing left the view
    b.delete("hold:h2")
    a.merge(b.export(), "b")  # a peer's tombstone drops them here
    assert a.superseding().supersede_count > count
