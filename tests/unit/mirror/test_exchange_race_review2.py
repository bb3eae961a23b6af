"""review2: the count of supersedes (Replicated.superseding) against malformed settled
words and quiet pairs that must still settle; harness of test_exchange_race (real LMDB
stores, a real MirrorServer on a loopback port, a real MirrorClient's handshake)."""
import pytest

from services.mirror.server import MirrorServer
from services.policy import hold_records, peer_copies
from tests.unit.mirror.test_exchange_race import (LAWYER, Node, _NoPairing, handshake, held_copy,
                                                   mirrored_three)


def settle_all(*nodes) -> None:
    for node in nodes:
        with node.store.writing() as txn:
            for entry in node.replicated.superseded(txn):
                node.replicated.settle_superseded(txn, entry)


def server_of(node: Node) -> MirrorServer:
    return MirrorServer(node.store, node.hello(), lambda peer: True, 1 << 20, _NoPairing(),
                        pins=lambda: {})


@pytest.mark.parametrize("document", [
    {"superseded": 0, "supersedes_since": 3},        # says 3 superseded, yet "none held"
    {"superseded": 0, "supersedes_since": 10 ** 30},
])
def test_a_settled_word_whose_supersedes_since_exceeds_superseded_does_not_settle(
        tmp_path, document):
    """A correct client sends superseded = held_at_hello + supersedes_since, so
    superseded >= supersedes_since always. A document saying queries were superseded
    on the peer during the exchange ("supersedes_since" > 0) but none held
    ("superseded": 0) is self-contradictory: the server checks only that
    supersedes_since is a non-negative int and settles by "superseded" alone."""
    a, b = Node(tmp_path / "a"), Node(tmp_path / "b")
    copy = a.store.put(LAWYER, source=f"mirror:{b.id}", origin=b.id)
    server = server_of(a)
    server._copies_through[b.id] = a.store.last_number()
    answer = server._take_settled(b.id, {"through": a.store.last_number(),
                                         "records_pending": 0, **document})
    assert answer["settled"] is False
    assert peer_copies.awaiting(a.store, [copy]) == {copy}


@pytest.mark.parametrize("whose_client", ["here", "the peer's"])
def test_a_quiet_pair_with_an_ordinary_edit_settles_within_a_few_exchanges(
        tmp_path, monkeypatch, whose_client):
    """Liveness: an edit of a held search, merged on both and settled on both; then a
    few exchanges with nothing happening must move the marker."""
    a, b, copy, edits = mirrored_three(tmp_path)
    for node in (a, b):
        node.replicated.merge(edits[-1], "c")
    settle_all(a, b)
    for _ in range(3):
        if whose_client == "here":
            handshake(a, b, monkeypatch)
        else:
            handshake(b, a, monkeypatch)
    assert peer_copies.awaiting(a.store, [copy]) == set()


def test_a_pair_with_a_clash_and_a_released_hold_settles_within_a_few_exchanges(
        tmp_path, monkeypatch):
    """Liveness: a and b each placed their own hold under the id h2 (a clash), and a
    hold with records was released on a: after the one-off moves and drops, exchanges
    both ways must settle both markers."""
    a, b, copy, edits = mirrored_three(tmp_path)
    mine = b.store.put(b"From: x@y\r\nMessage-ID: <m@y>\r\n\r\nm\r\n", source="smtp")
    copy_b = b.store.put(b"From: q@y\r\nMessage-ID: <q@y>\r\n\r\nq\r\n",
                         source=f"mirror:{a.id}", origin=a.id)
    a.replicated.put("hold:h2", {"saved": "case", "until": None, "by": "root",
                                 "created": 1000.0})
    b.replicated.put("hold:h2", {"saved": "case", "until": None, "by": "root",
                                 "created": 2000.0})
    hold_records.add(a.store, "h2", [mine])
    hold_records.add(b.store, "h2", [mine])
    a.replicated.put("hold:h3", {"saved": "case", "until": None, "by": "root",
                                 "created": 3000.0})
    hold_records.add(a.store, "h3", [mine])
    handshake(a, b, monkeypatch)
    a.replicated.delete("hold:h3")
    for _ in range(3):
        handshake(a, b, monkeypatch)
        handshake(b, a, monkeypatch)
    assert peer_copies.awaiting(a.store, [copy]) == set()
    assert peer_copies.awaiting(b.store, [copy_b]) == set()


OTHER = b"From: other@x.com\r\nTo: boss@example.com\r\nMessage-ID: <o@x.com>\r\n\r\nheld\r\n"


def test_a_server_that_could_not_merge_the_peers_hello_does_not_settle_its_copies(
        tmp_path, monkeypatch):
    """a placed hold h9 and recorded its mail; b holds a's copy of it. a's client says
    hello; b's merge of a's settings fails (its store full for that one large
    transaction: MapFull), which the server only logs (taken None), so b never has h9.
    The exchange then offers h9's records, which b does not take (not live there). a's
    settled word ("superseded": 0, "supersedes_since": 0) still moves b's marker past
    a's copy: the server settles whether or not this session's hello merge was taken.
    (The client side does not: it needs "holds_superseded", None after a failed merge.)
    b's retention may then let go of a copy a's hold holds, which b has never heard of."""
    from services.archive.space import OutOfSpace
    from services.policy.replicated import Replicated
    a, b, _, _ = mirrored_three(tmp_path)
    a.store.put(OTHER, source="smtp")
    copy = b.store.put(OTHER, source=f"mirror:{a.id}", origin=a.id)
    a.replicated.put("hold:h9", {"saved": "case", "until": None, "by": "root",
                                 "created": 5000.0})
    assert hold_records.add(a.store, "h9", [copy]) == 1
    merge = Replicated.merge

    def full(self, entries, node=""):
        if self.store is b.store:
            raise OutOfSpace("the archive store is full", "the archive store is full")
        return merge(self, entries, node)
    monkeypatch.setattr(Replicated, "merge", full)
    handshake(a, b, monkeypatch)
    assert b.replicated.get("hold:h9") is None  # b never took a's hold
    assert peer_copies.awaiting(b.store, [copy]) == {copy}, \
        "b's marker moved past a's copy of mail a's hold h9 holds, a hold b does not have"


@pytest.mark.parametrize("count", [-1, -(10 ** 30)])
def test_a_negative_count_of_supersedes_from_the_peer_does_not_settle_its_copies(
        tmp_path, monkeypatch, count):
    """The count only grows from 0: a peer answering its hello and the settled word with
    the same negative count (a corrupt or malformed one) says nothing trustworthy, yet
    _held_nothing_superseded checks only that both are ints and equal, and the marker
    moves. (The server side refuses a negative "superseded"; the client side should
    refuse a negative "supersedes".)"""
    from services.policy.replicated import Replicated, Superseding
    a, b, copy, _ = mirrored_three(tmp_path)
    superseding = Replicated.superseding

    def malformed(self, txn=None):
        found = superseding(self, txn)
        return Superseding(found.held_now, count) if self.store is b.store else found
    monkeypatch.setattr(Replicated, "superseding", malformed)
    handshake(a, b, monkeypatch)
    assert peer_copies.awaiting(a.store, [copy]) == {copy}


def test_a_superseded_query_dropped_unrecorded_by_a_stale_read_of_live_holds_keeps_copies(
        tmp_path, monkeypatch):
    """holds.settle_superseded reads the live holds, then the superseded queries. A
    clashing hold merged into b between the two reads moves b's h1 to h1-<hash> and
    renames the superseded query's hold (counted). The query's holds ([h1-<hash>]) are
    then not among the stale live ones, so it is dropped as "its holds all removed":
    nothing recorded, and not counted. The next exchange sees none held and the count
    unchanged since its hello, and a's marker moves past b's copy, which only b's old
    query (from:lawyer) held: now nothing holds it on a (nor on b)."""
    from services.policy import holds
    from tests.unit.mirror.test_exchange_race_review import a_clashing_hold, held_on
    a, b, c, copy = held_copy(tmp_path, "from:lawyer", created=1000.0)
    c.replicated.put("saved:case", {"query": "from:nobody"})
    for node in (a, b):
        node.replicated.merge(c.replicated.export(), c.id)
    settle_all(a)  # a's own old query: nothing of b's copy matched in a's index
    assert [entry["holds"] for entry in b.replicated.superseded()] == [["h1"]]
    clash = a_clashing_hold(tmp_path)
    entries, done = holds._entries, []

    def then_clash(replicated, txn=None, prefix=holds.PREFIX):
        found = entries(replicated, txn, prefix)
        if not done and replicated.store is b.store:
            done.append(b.replicated.merge(clash, "d"))
        return found
    monkeypatch.setattr(holds, "_entries", then_clash)
    holds.settle_superseded(b.replicated, tmp_path / "no-index")
    monkeypatch.setattr(holds, "_entries", entries)
    assert done, "the clash was merged between the two reads"
    # b's index has nothing, so nothing is recorded: the query must stay held by query
    # (its hold is live, renamed by the clash), not be dropped unrecorded
    assert b.replicated.superseded() != [], "dropped, though nothing was recorded"
    assert not any(hold_records.contains(b.store, hold_id[len("hold:"):], copy)
                   for hold_id in b.replicated.items("hold:"))
    handshake(a, b, monkeypatch)
    assert held_on(a, copy), "a's copy of mail only b's old query held is neither " \
        "waiting nor recorded"
