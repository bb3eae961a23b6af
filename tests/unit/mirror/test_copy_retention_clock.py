"""A copy keeps its origin's retention clock: the client sends when the origin received a
message live, the server keeps it with the copy, and a copy sent on (merged with a live
delivery on the peer) keeps the first origin's, so every peer expires it on the same day."""
import pytest

from services.archive import store as store_module
from services.archive.store import Envelope, Store
from services.mirror.client import MirrorClient
from services.mirror.protocol import Hello, encode_batch
from services.mirror.server import MirrorServer
from services.policy.retention_clock import retention_start
from tests.module_clock import ModuleClock

ORIGIN_ARRIVAL = 1_800_000_000.0
COPY_ARRIVAL = ORIGIN_ARRIVAL + 3 * 86400  # the peer was away for three days
DATES = {"1971": "Sat, 02 Jan 1971 00:00:00 +0000", "2199": "Wed, 01 Jan 2199 00:00:00 +0000",
         "2015": "Thu, 05 Mar 2015 10:00:00 +0000"}


def message(year: str) -> bytes:
    return (f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {year}\r\n"
            f"Date: {DATES[year]}\r\nMessage-ID: <{year}@example.com>\r\n\r\nbody\r\n").encode()


@pytest.fixture
def clock(monkeypatch) -> ModuleClock:
    clock = ModuleClock(ORIGIN_ARRIVAL)
    monkeypatch.setattr(store_module, "time", clock)
    return clock


@pytest.fixture
def stores(tmp_path):
    opened = {name: Store(tmp_path / name, map_size=1 << 30) for name in "abc"}
    yield opened
    for store in opened.values():
        store.close()


def copy_outbox(sender: Store, receiver: Store) -> None:
    """What a mirror client of `sender` sends, stored by `receiver`'s mirror server."""
    client = MirrorClient(sender, "peer.example:8443", Hello(sender.node_id, 450, "1.0.0.1"),
                          trust=None)
    _, batch = client._next_batch()
    server = MirrorServer(receiver, Hello(receiver.node_id, 450, "1.0.0.1"),
                          copies_back_to=lambda node: True, max_message_bytes=1 << 20,
                          pairing=None, pins=dict)
    assert server._store_batch(encode_batch(batch), sender.node_id) == len(batch)


def test_a_copy_expires_on_the_day_its_original_does(stores, clock):
    origin, peer = stores["a"], stores["b"]
    live = {year: origin.put(message(year), Envelope(None, ["b@example.com"]), source)
            for year, source in (("1971", "smtp"), ("2199", "journal:ops"))}
    imported = origin.put(message("2015"))
    clock.now = COPY_ARRIVAL
    copy_outbox(origin, peer)
    for digest in live.values():
        assert peer.meta(digest)["origin_received"] == ORIGIN_ARRIVAL
        assert retention_start(peer.meta(digest)) == retention_start(origin.meta(digest)) \
            == ORIGIN_ARRIVAL
    assert "origin_received" not in peer.meta(imported)  # its own date decides, on both
    assert retention_start(peer.meta(imported)) == retention_start(origin.meta(imported))


def test_a_copy_of_a_copy_keeps_the_first_origins_clock(stores, clock):
    first, second, third = stores["a"], stores["b"], stores["c"]
    digest = first.put(message("2199"), Envelope(None, ["b@example.com"]), "smtp")
    clock.now = COPY_ARRIVAL
    copy_outbox(first, second)
    clock.now = COPY_ARRIVAL + 86400  # delivered live to the peer too: merged, sent on
    second.put(message("2199"), Envelope(None, ["c@example.com"]), "smtp")
    copy_outbox(second, third)
    assert third.meta(digest)["recipients"] == ["b@example.com", "c@example.com"]
    assert retention_start(third.meta(digest)) == ORIGIN_ARRIVAL
