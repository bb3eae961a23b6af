"""What a peer's word that its exchange of hold records has ended moves here
(services.mirror.server, POST /v1/hold-records/settled): only copies up to the number a
hello reply gave that peer, only when it holds no superseded query."""
import pytest

from services.archive.store import Store
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
    assert server._take_settled("peer1", {"through": 2, "superseded": 0}) == {"settled": False}
    assert server._take_settled("peer1", {"through": 1, "superseded": 1}) == {"settled": False}
    assert server._take_settled("peer2", {"through": 1, "superseded": 0}) == {"settled": False}
    assert peer_copies.awaiting(server.store, both) == {first, second}
    assert server._take_settled("peer1", {"through": 1, "superseded": 0}) == {"settled": True}
    assert peer_copies.awaiting(server.store, both) == {second}
    for bad in ({}, {"through": "1", "superseded": 0}, {"through": 1, "superseded": True},
                {"through": -1, "superseded": 0}):
        with pytest.raises(BadHoldRecords):
            server._take_settled("peer1", bad)
