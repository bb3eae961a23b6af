"""A mirror peer's audit log anchored here (services.policy.audit_anchor): every way of
rewriting a log on its own disk that its own chain check cannot see (an entry changed and
every hash after it recomputed, entries cut off its end, the log cut and grown again, a
fresh log) breaks the anchor its peer holds; a log that only grows moves it, in pages."""
import json
import struct

import pytest

from services.archive.store import Store
from services.policy import audit, audit_anchor
from services.policy.audit import Actor

ADMIN = Actor("root", "admin")
PEER = "node-a"


@pytest.fixture
def stores(tmp_path):
    a = Store(tmp_path / "a", map_size=1 << 30)  # the peer whose log is anchored
    b = Store(tmp_path / "b", map_size=1 << 30)  # the node that anchors it
    for n in range(10):
        audit.record(a, ADMIN, "search", query=f"q{n}")
    yield a, b
    a.close(), b.close()


def anchor_at_peer(a: Store, b: Store) -> dict:
    """What the mirror client does at each hello: send a's head and entries after the
    anchor b holds until b holds the head or says the log broke."""
    count = audit_anchor.hello_json(b, PEER)[0]
    while True:
        request = audit_anchor.request_json(a, count)
        found = audit_anchor.take(b, PEER, request["head"], request["entries"])
        if found["broken"] or not request["entries"] or found["count"] == count:
            return found
        count = found["count"]


def write_log(store: Store, entries: list[dict]) -> None:
    """Replace `store`'s whole log with `entries`, each hash and the head recomputed as
    whoever rewrites a log on its disk would: its own chain check passes."""
    db, previous = store.db["audit"], audit.GENESIS
    with store.env.begin(write=True) as txn:
        txn.drop(db, delete=False)
        for seq, entry in enumerate(entries, 1):
            entry = {**entry, "seq": seq, "previous": previous}
            entry["hash"] = previous = audit.entry_hash(entry)
            txn.put(struct.pack(">Q", seq), json.dumps(entry).encode(), db=db)
        txn.put(audit.HEAD_KEY, json.dumps([len(entries), previous]).encode(), db=db)
    assert audit.verify(store) == []


def changed(entries: list[dict], seq: int) -> list[dict]:
    return [{**e, "details": {"query": "nothing to see"}} if e["seq"] == seq else e
            for e in entries]


# Every rewrite of a 10-entry log anchored at entry 10, then grown by `grow` entries.
REWRITES = {
    "first entry changed": lambda entries: changed(entries, 1),
    "anchored entry changed": lambda entries: changed(entries, 10),
    "middle entry changed": lambda entries: changed(entries, 5),
    "last entries cut": lambda entries: entries[:7],
    "every entry cut": lambda entries: [],
    "cut and grown back past the anchor": lambda entries: entries[:4] + [
        {**entries[0], "details": {"query": f"new {n}"}} for n in range(9)],
    "two entries swapped": lambda entries: [*entries[:3], entries[4], entries[3], *entries[5:]],
    "an entry removed inside": lambda entries: entries[:2] + entries[3:],
}


@pytest.mark.parametrize("grow", [0, 3])
@pytest.mark.parametrize("name", sorted(REWRITES))
def test_a_log_rewritten_on_its_disk_breaks_the_anchor_its_peer_holds(stores, name, grow):
    a, b = stores
    assert anchor_at_peer(a, b)["count"] == 10
    write_log(a, REWRITES[name](audit.entries(a)))
    for n in range(grow):
        audit.record(a, ADMIN, "search", query=f"after {n}")
    found = anchor_at_peer(a, b)
    assert found["broken"] and found["count"] == 10, found
    audit.record(a, ADMIN, "search", query="later")  # broken for good: nothing moves it
    assert anchor_at_peer(a, b) == found


def test_a_log_that_only_grows_moves_its_anchor_in_pages(stores):
    a, b = stores
    for n in range(2 * audit_anchor.PAGE + 5):
        audit.record(a, ADMIN, "view", digest=f"{n:064x}")
    found = anchor_at_peer(a, b)
    assert (found["count"], found["hash"]) == audit.head(a) and not found["broken"]
    assert anchor_at_peer(a, b) == found  # nothing new: nothing moves


def test_an_admin_accepts_a_broken_peer_log_afresh_on_the_record(stores):
    a, b = stores
    anchor_at_peer(a, b)
    write_log(a, [])  # the peer's data disk was replaced: its log starts again
    audit.record(a, ADMIN, "search", query="fresh")
    assert anchor_at_peer(a, b)["broken"]
    audit_anchor.accept(b, PEER, ADMIN)
    assert anchor_at_peer(a, b) == {**audit_anchor.anchor(b, PEER), "broken": None}
    assert audit_anchor.anchor(b, PEER)["count"] == 1
    last = audit.entries(b)[-1]
    assert last["action"] == "audit-accept-peer" and last["details"]["node"] == PEER


@pytest.mark.parametrize("head, entries", [
    (None, []), ([1], []), (["10", "x"], []), ([True, "x"], []), ([10, 5], []),
    ([10, "x"], None), ([10, "x"], {"seq": 11}), ([10, "x"], ["entry"]),
    ([10, "x"], [{}] * (audit_anchor.PAGE + 1)),
])
def test_a_request_of_the_wrong_shape_is_refused_and_changes_nothing(stores, head, entries):
    a, b = stores
    before = anchor_at_peer(a, b)
    with pytest.raises(audit_anchor.BadEntries):
        audit_anchor.take(b, PEER, head, entries)
    assert audit_anchor.anchor(b, PEER) == before


def test_entries_whose_seq_is_no_number_do_not_continue_the_chain(stores):
    a, b = stores
    request = audit_anchor.request_json(a, 0)
    first = {**request["entries"][0], "seq": True}
    found = audit_anchor.take(b, PEER, request["head"], [first])
    assert found["broken"] and found["count"] == 0
