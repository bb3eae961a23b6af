"""review: interleavings the count of supersedes (Replicated.superseding) does not see,
with the harness of test_exchange_race (real LMDB stores, a real MirrorServer on a
loopback port, a real MirrorClient's handshake; TLS left out)."""
import pytest

from services.archive.space import OutOfSpace
from services.mirror import client as mirror_client
from services.mirror import hold_sync
from services.policy import hold_records, peer_copies
from tests.unit.mirror.test_exchange_race import (Node, during_exchange, handshake, held_copy,
                                                   merged_into, mirrored_three, settled_on)


def before_exchange(monkeypatch, then) -> None:
    """Call `then()` once, after the hello reply, before the exchange's first page."""
    exchange, done = hold_sync.exchange, []

    async def then_exchange(store, post, hold_ids):
        if not done:
            done.append(then())
        return await exchange(store, post, hold_ids)
    monkeypatch.setattr(hold_sync, "exchange", then_exchange)


def held_on(node: Node, digest: str) -> bool:
    """Whether anything keeps `digest` from retention on `node` through a peer's
    copy: still waiting for the peer, or recorded by a live hold."""
    live = [key[len("hold:"):] for key in node.replicated.items("hold:")]
    return digest in peer_copies.awaiting(node.store, [digest]) or \
        bool(hold_records.recorded_among(node.store, live, [digest]))


def b_recorded_what_a_never_held(tmp_path):
    """As test_exchange_race's last test before its second handshake: b merged c's two
    edits (from:alice -> from:lawyer -> from:nobody) and settled them, recording the
    lawyer's mail for h1; a merged only the last and settled its own old query (from:alice:
    nothing here). So only b's record of h1 holds the lawyer's mail, and a's copy of it
    waits for b's next exchange. h1 has a "created" time (as holds placed now have)."""
    a, b, c, copy = held_copy(tmp_path, "from:alice", created=1000.0)
    c.replicated.put("saved:case", {"query": "from:lawyer"})
    widened = c.replicated.export()
    c.replicated.put("saved:case", {"query": "from:nobody"})
    merged_into(b, [widened, c.replicated.export()], c.id)()
    settled_on(b, copy)
    a.replicated.merge(c.replicated.export(), c.id)
    with a.store.writing() as txn:
        for entry in a.replicated.superseded(txn):
            a.replicated.settle_superseded(txn, entry)
    assert b.replicated.superseded() == [] and a.replicated.superseded() == []
    assert held_on(a, copy) and hold_records.contains(b.store, "h1", copy)
    return a, b, copy


def a_clashing_hold(tmp_path) -> dict:
    """Node d's own hold placed under the id h1, created after c's: where it is merged,
    it keeps the id and the earlier h1 moves, with its records, to a moved id."""
    d = Node(tmp_path / "d")
    d.replicated.put("saved:other", {"query": "from:nobody-else"})
    d.replicated.put("hold:h1", {"saved": "other", "until": None, "by": "root",
                                 "created": 2000.0})
    return d.replicated.export()


@pytest.mark.parametrize("whose_client", ["here", "the peer's"])
def test_a_clashing_hold_merged_into_the_peer_during_the_exchange_keeps_its_copies(
        tmp_path, monkeypatch, whose_client):
    """b holds no superseded query and its count of supersedes does not move; but right
    after its hello reply a third node's different hold under the id h1 is merged into b,
    which moves b's h1 and its record of the lawyer's mail to h1-<hash>. The exchange
    walks h1 (d's hold there now, no records) and never the moved id, so a gets no record
    of the mail; the marker must not move past b's copy all the same."""
    a, b, copy = b_recorded_what_a_never_held(tmp_path)
    before_exchange(monkeypatch, merged_into(b, [a_clashing_hold(tmp_path)], "d"))
    if whose_client == "here":
        handshake(a, b, monkeypatch)
    else:
        handshake(b, a, monkeypatch)
    moved = [key[len("hold:"):] for key in b.replicated.items("hold:")
             if key.startswith("hold:h1-")]
    assert moved and hold_records.contains(b.store, moved[0], copy)  # the move happened
    assert held_on(a, copy), "a's copy of b's held mail is neither waiting nor recorded"


def test_a_full_peer_still_lets_this_node_settle_the_peers_copies(tmp_path, monkeypatch):
    """b answered its hello with none superseded and its count, and the exchange brought
    b's record here; only b's own bookkeeping of the settled word fails (its store full:
    a 503). Before this branch a's marker moved (it did not depend on b's write); now the
    answer carrying b's count is lost with the write, so a keeps all of b's copies for as
    long as b is full, and b's retention cannot free b either (its marker is the write
    that fails)."""
    a, b, copy, edits = mirrored_three(tmp_path)
    b.replicated.merge(edits[-1], "c")
    a.replicated.merge(edits[-1], "c")
    for node in (a, b):
        with node.store.writing() as txn:
            for entry in node.replicated.superseded(txn):
                node.replicated.settle_superseded(txn, entry)
    settled_through = peer_copies.settled_through

    def full(store, node, number):
        if store is b.store:  # b's disk is full: its write of its own marker fails
            raise OutOfSpace("the store's disk is full (0 B free)", "the store's disk is full")
        return settled_through(store, node, number)
    monkeypatch.setattr(peer_copies, "settled_through", full)
    with pytest.raises(Exception):
        handshake(a, b, monkeypatch)
    assert peer_copies.awaiting(a.store, [copy]) == set(), \
        "b said none superseded and nothing changed on b; a's marker did not move"


def test_an_older_release_peers_client_cannot_settle_its_copies_here_by_a_stale_count(
        tmp_path, monkeypatch):
    """The original race through the other door: b runs the release before this branch
    (a rolling upgrade), whose client tells the settled word with the count of superseded
    queries it read once, right after merging a's hello reply, and no more. c's edits are
    merged into b during the exchange, as in test_exchange_race. a's server cannot tell
    that document from this release's (no field says the count covers the whole
    exchange), takes "superseded": 0 and moves the marker past b's copy. The client side
    fails safe with an older peer (no "supersedes": not settled); the server side should
    too."""
    a, b, copy, edits = mirrored_three(tmp_path)

    async def older_tell_settled(self, session, reply, before):
        through = reply.get("copies_through")  # b5e06ec's client: read once, before
        if type(through) is int:
            await self._post_json(session, hold_sync.SETTLED_PATH,
                                  {"through": through, "superseded": before.held_now,
                                   "records_pending": reply.get("records_pending")})
        return None
    monkeypatch.setattr(mirror_client.MirrorClient, "_tell_settled", older_tell_settled)
    during_exchange(monkeypatch, merged_into(b, edits, "c"))
    handshake(b, a, monkeypatch)
    assert [entry["query"] for entry in b.replicated.superseded()] == \
        ["from:alice", "from:lawyer"]
    assert peer_copies.awaiting(a.store, [copy]) == {copy}
