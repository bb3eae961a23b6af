"""Which mirror copies retention keeps until the peer's holds are known here
(services.policy.peer_copies), on a real store."""
from services.archive.store import Store
from services.policy import peer_copies


def mail(n: int) -> bytes:
    return f"From: a@x.com\r\nSubject: {n}\r\nMessage-ID: <{n}@x.com>\r\n\r\n{n}\r\n".encode()


def test_a_peers_copies_wait_for_an_exchange_that_began_after_them(tmp_path):
    store = Store(tmp_path / "s", map_size=1 << 30)
    local = store.put(mail(1), source="smtp")
    before = store.put(mail(2), source="mirror:peer1", origin="peer1")
    other = store.put(mail(3), source="mirror:peer2", origin="peer2")
    stored = store.last_number()
    after = store.put(mail(4), source="mirror:peer1", origin="peer1")
    everything = [local, before, other, after]
    assert peer_copies.awaiting(store, everything) == {before, other, after}
    peer_copies.settled_through(store, "peer1", stored)
    assert peer_copies.awaiting(store, everything) == {other, after}
    peer_copies.settled_through(store, "peer1", stored - 1)  # an older exchange: no step back
    assert peer_copies.awaiting(store, everything) == {other, after}
    store.delete([after])
    assert peer_copies.awaiting(store, everything) == {other}


def test_numbers_grow_with_each_new_message_not_with_a_duplicate(tmp_path):
    store = Store(tmp_path / "s", map_size=1 << 30)
    assert store.last_number() == 0
    first = store.put(mail(1), source="mirror:peer1", origin="peer1")
    assert store.last_number() == store.meta(first)["number"] == 1
    store.put(mail(1), source="smtp")
    assert store.last_number() == 1 and store.meta(first)["source"] == "mirror:peer1"


def test_a_copy_of_mail_already_stored_here_waits_for_its_peer_too(tmp_path):
    """The same message archived here (or copied from another peer) before the peer's
    copy arrived: the peer may hold it by an old query it has not settled, as it holds a
    copy of mail new here, so it waits for an exchange that began after the copy came."""
    store = Store(tmp_path / "s", map_size=1 << 30)
    local = store.put(mail(1), source="import")
    from_other = store.put(mail(2), source="mirror:peer2", origin="peer2")
    stored = store.last_number()
    peer_copies.settled_through(store, "peer2", stored)  # peer2 settled: its copy may go
    assert peer_copies.awaiting(store, [local, from_other]) == set()
    store.put(mail(1), source="mirror:peer1", origin="peer1")  # peer1's copies of both
    store.put(mail(2), source="mirror:peer1", origin="peer1")
    assert peer_copies.awaiting(store, [local, from_other]) == {local, from_other}
    peer_copies.settled_through(store, "peer1", stored)  # an exchange begun before them
    assert peer_copies.awaiting(store, [local, from_other]) == {local, from_other}
    peer_copies.settled_through(store, "peer1", store.last_number())
    assert peer_copies.awaiting(store, [local, from_other]) == set()
