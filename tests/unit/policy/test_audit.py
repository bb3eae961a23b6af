import json
import struct

import pytest

from services.policy import audit, holds, saved_searches
from services.policy.audit import Actor, PermissionDenied
from services.policy.replicated import Replicated
from services.archive.store import Store

ADMIN, AUDITOR = Actor("root", "admin"), Actor("ann", "auditor")


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "s", map_size=1 << 30)
    for n in range(5):
        audit.record(opened, ADMIN, "search", query=f"q{n}")
    yield opened
    opened.close()


def rewrite(store, seq, change):
    db = store.db["audit"]
    with store.env.begin(write=True) as txn:
        key = struct.pack(">Q", seq)
        entry = json.loads(txn.get(key, db=db))
        change(entry)
        if entry is None:
            txn.delete(key, db=db)
        else:
            txn.put(key, json.dumps(entry).encode(), db=db)


def test_an_untouched_log_verifies(store):
    assert audit.verify(store) == [] and [e["seq"] for e in audit.entries(store)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("limit, seqs", [(1, [5]), (3, [3, 4, 5]), (5, [1, 2, 3, 4, 5]),
                                         (50, [1, 2, 3, 4, 5])])
def test_the_newest_entries_oldest_first(store, limit, seqs):
    assert [e["seq"] for e in audit.entries(store, limit)] == seqs


def test_an_edited_entry_is_detected(store):
    rewrite(store, 3, lambda e: e["details"].update(query="something else"))
    assert audit.verify(store) == ["entry 3 was changed after it was written"]


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_chain(store):
    def forge(entry):
        entry["who"] = "nobody"
        entry["hash"] = audit.entry_hash(entry)
    rewrite(store, 2, forge)
    assert "entry 3 does not follow the entry before it" in audit.verify(store)


def test_a_removed_entry_is_detected(store):
    db = store.db["audit"]
    with store.env.begin(write=True) as txn:
        txn.delete(struct.pack(">Q", 2), db=db)
    problems = audit.verify(store)
    assert "entry 2 is missing (found 3 next)" in problems


def test_entries_cut_off_the_end_are_detected(store):
    db = store.db["audit"]
    with store.env.begin(write=True) as txn:
        txn.delete(struct.pack(">Q", 5), db=db)
    assert audit.verify(store) == ["the log should end at entry 5; entries were removed from its end"]


def test_only_an_admin_removes_a_hold(store):
    replicated = Replicated(store)
    saved_searches.save(replicated, "case", "from:lawyer", AUDITOR)
    hold_id = holds.add(replicated, store.path / "no-index", "case", None, AUDITOR)
    with pytest.raises(PermissionDenied, match="only an admin removes a litigation hold"):
        holds.remove(replicated, hold_id, AUDITOR)
    holds.remove(replicated, hold_id, ADMIN)
    assert holds.all_holds(replicated) == {}


def test_a_saved_search_in_use_cannot_be_deleted(store):
    replicated = Replicated(store)
    saved_searches.save(replicated, "case", "from:lawyer", AUDITOR)
    holds.add(replicated, store.path / "no-index", "case", None, ADMIN)
    with pytest.raises(Exception, match="remove the hold first"):
        saved_searches.delete(replicated, "case")


def test_what_a_hold_or_retention_policy_is_built_on_only_an_admin_changes(store):
    replicated = Replicated(store)
    assert saved_searches.save(replicated, "case", "from:lawyer", AUDITOR) is None
    assert saved_searches.save(replicated, "case", "from:lawyers", AUDITOR) == "from:lawyer"
    hold_id = holds.add(replicated, store.path / "no-index", "case", None, AUDITOR)
    with pytest.raises(PermissionDenied, match=f"hold {hold_id}.*only an admin"):
        saved_searches.save(replicated, "case", "from:nobody", AUDITOR)
    assert saved_searches.query_of(replicated, "case") == "from:lawyers"
    assert saved_searches.save(replicated, "case", "from:nobody", ADMIN) == "from:lawyers"
    saved_searches.save(replicated, "old", "subject:x", AUDITOR)
    replicated.put("retention:saved:old", 30)
    with pytest.raises(PermissionDenied, match="retention policy"):
        saved_searches.save(replicated, "old", "subject:y", AUDITOR)
