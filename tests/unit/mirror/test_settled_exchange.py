"""What a peer's word that its exchange of hold records has ended moves here
(services.mirror.server, POST /v1/hold-records/settled): only copies up to the number a
hello reply gave that peer, only when it holds no superseded query."""
import pytest

from services.archive.store import Store
from services.mirror.client import _held_nothing_superseded
from services.mirror.server import MirrorServer
from services.policy import peer_copies
from services.policy.hold_records import BadHoldRecords
from services.policy.replicated import Replicated


def mail(n: int) -> bytes:
    return f"From: a@x.com\r\nSubject: {n}\r\nMessage-ID: <{n}@x.com>\r\n\r\n{n}\r\n".encode()


@pytest.fixture
def server(tmp_path):
    found = MirrorServer.__new__(MirrorServer)  # only what the settled exchange reads
    found.store = Store(tmp_path / "s", map_size=1 << 30)
    found.replicated = Replicated(found.store)
    found._copies_through, found._records_pending = {}, {}
    return found


def test_a_peer_moves_its_copies_only_up_to_what_it_was_given_and_holding_nothing_old(
        server):
    first = server.store.put(mail(1), source="mirror:peer1", origin="peer1")
    second = server.store.put(mail(2), source="mirror:peer1", origin="peer1")
    server._copies_through["peer1"] = 1
    both = [first, second]
    def settled(peer, **document) -> bool:
        return server._take_settled(peer, {"supersedes_since": 0, **document})["settled"]
    assert settled("peer1", through=2, superseded=0) is False
    assert settled("peer1", through=1, superseded=1) is False
    assert settled("peer2", through=1, superseded=0) is False
    # The release before's document: "superseded" read once, at the hello, not to the end
    assert server._take_settled("peer1", {"through": 1, "superseded": 0})["settled"] is False
    for not_known in ("0", -1, None, True):
        assert settled("peer1", through=1, superseded=0, supersedes_since=not_known) is False
    assert peer_copies.awaiting(server.store, both) == {first, second}
    assert settled("peer1", through=1, superseded=0) is True
    assert peer_copies.awaiting(server.store, both) == {second}
    for bad in ({}, {"through": "1", "superseded": 0}, {"through": 1, "superseded": True},
                {"through": -1, "superseded": 0}):
        with pytest.raises(BadHoldRecords):
            server._take_settled("peer1", bad)


def test_a_late_settled_word_does_not_end_a_later_hellos_wait_that_has_the_same_count(
        server, tmp_path):
    """records_pending is a count that starts again from 1 once a wait ends: a settled word
    from an exchange whose wait has ended (a second session of the peer, or one sent again)
    echoes a count that a later merge gives again. It must not end the later merge's wait,
    whose records its exchange never carried (retention would judge that hold by its search
    alone and could delete what it recorded on the peer)."""
    peer = Replicated(Store(tmp_path / "peer", map_size=1 << 26))
    peer.put("hold:h1", {"saved": "case", "until": None, "by": "root"})
    server.replicated.merge(peer.export(), "peer1")  # session A's hello merges h1
    first = server.replicated.records_pending()
    server._records_pending["peer1"] = [first]
    assert server._take_settled("peer1", {"through": 0, "superseded": 1,
                                          "records_pending": first})["settled"] is False
    assert server.replicated.records_pending() == 0  # A's exchange ended A's wait
    peer.put("hold:h2", {"saved": "case2", "until": None, "by": "root"})
    server.replicated.merge(peer.export(), "peer1")  # session B's hello merges h2
    second = server.replicated.records_pending()
    server._records_pending["peer1"].append(second)
    # A's settled word again (sent twice, or a session of A that began before B's hello)
    server._take_settled("peer1", {"through": 0, "superseded": 1, "records_pending": first})
    assert server.replicated.records_pending() != 0  # B's exchange has not ended
    server._take_settled("peer1", {"through": 0, "superseded": 1, "records_pending": second})
    assert server.replicated.records_pending() == 0


def test_one_peers_settled_word_does_not_end_the_wait_for_another_peers_merged_hold(
        server, tmp_path):
    """Three mirrored nodes: peer2's hello merges its hold here, then its link is cut before
    the hold's records come (they are on peer2 alone: what the hold's search matched before
    it was narrowed). peer1's exchange of hold records ending here carries none of them;
    it must not end the wait for peer2's (retention would judge peer2's hold by its search
    alone and delete what peer2 recorded it holding)."""
    peer2 = Replicated(Store(tmp_path / "peer2", map_size=1 << 26))
    peer2.put("hold:h2", {"saved": "case", "until": None, "by": "root"})
    server.replicated.merge(peer2.export(), "peer2")  # peer2's hello; its link is cut after
    pending = server.replicated.records_pending()
    assert pending
    server._records_pending["peer1"] = [pending]  # peer1's hello reply, after that
    server._take_settled("peer1", {"through": 0, "superseded": 1, "records_pending": pending})
    assert server.replicated.records_pending() != 0
    # peer2 comes back: its own exchange ends its wait
    server._records_pending["peer2"] = [server.replicated.records_pending()]
    server._take_settled("peer2", {"through": 0, "superseded": 1,
                                   "records_pending": server.replicated.records_pending()})
    assert server.replicated.records_pending() == 0


def test_the_settled_answer_says_how_many_queries_were_ever_superseded_here(server):
    """The peer's client settles this node's copies there only if that count is the one
    this node's hello reply gave it (services.mirror.client): read when answering."""
    server.replicated.put("saved:case", {"query": "from:lawyer"})
    server.replicated.put("hold:h1", {"saved": "case", "until": None, "by": "root"})
    assert server._take_settled("peer1", {"through": 0, "superseded": 0})["supersedes"] == 0
    server.replicated.put("saved:case", {"query": "from:nobody"})
    assert server._take_settled("peer1", {"through": 0, "superseded": 0})["supersedes"] == 1


@pytest.mark.parametrize("reply, answer, settles", [
    ({"holds_superseded": 0, "supersedes": 3}, {"supersedes": 3}, True),
    ({"holds_superseded": 0, "supersedes": 3}, {"supersedes": 4}, False),  # one meanwhile
    ({"holds_superseded": 1, "supersedes": 3}, {"supersedes": 3}, False),
    ({"holds_superseded": 0}, {"supersedes": 0}, False),  # an older release: not known
    ({"holds_superseded": 0, "supersedes": 0}, {"settled": True}, False),
    ({"holds_superseded": 0, "supersedes": 0}, None, False),  # no settled word taken
    ({"holds_superseded": None, "supersedes": None}, {"supersedes": None}, False),
])
def test_this_node_settles_a_peers_copies_only_if_it_held_nothing_old_throughout(
        reply, answer, settles):
    assert _held_nothing_superseded(reply, answer) is settles


def test_a_full_store_still_answers_with_the_count_read_before_its_writes(server,
                                                                          monkeypatch):
    """The settled word's own writes here fail (the store full): a 503, as before, but its
    body carries the count of supersedes, read before them, so that the peer's client can
    still settle this node's copies there; the marker here does not move."""
    import json
    from services.archive.space import OutOfSpace
    copy = server.store.put(mail(1), source="mirror:peer1", origin="peer1")
    server._copies_through["peer1"] = 1

    def full(store, node, number):
        raise OutOfSpace("the store's disk is full (0 B free)", "the store's disk is full")
    monkeypatch.setattr(peer_copies, "settled_through", full)
    answer = server._take_settled("peer1", {"through": 1, "superseded": 0,
                                            "supersedes_since": 0})
    assert answer.status == 503
    assert json.loads(answer.body) == {"settled": False, "supersedes": 0,
                                       "reason": "the store's disk is full", "retry_after":
                                       json.loads(answer.body)["retry_after"]}
    assert peer_copies.awaiting(server.store, [copy]) == {copy}
