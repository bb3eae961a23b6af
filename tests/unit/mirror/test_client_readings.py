"""What a mirror client sends with each copy: the reading its store kept of the message
(services.archive.readings) when the peer can use it, so that the peer indexes the copy
from it instead of reading the message again."""
from services.archive.readings import READING_VERSION
from services.archive.store import Envelope, Store
from services.mirror import client
from services.mirror.client import MirrorClient
from services.mirror.protocol import Hello


def message(n: int) -> bytes:
    return (f"From: a@example.com\r\nTo: b@example.com\r\nSubject: copy {n}\r\n"
            f"Message-ID: <copy{n}@example.com>\r\n\r\nbody {n}\r\n").encode()


def test_a_copy_carries_its_kept_reading_when_current_and_not_too_big(tmp_path):
    store = Store(tmp_path / "store", map_size=1 << 30)
    try:
        digests = [store.put(message(n), Envelope(None, ["b@example.com"]), "smtp")
                   for n in range(5)]
        current = READING_VERSION.to_bytes(2, "big")
        kept = {digests[0]: current + b"used as it is",
                digests[1]: (READING_VERSION - 1).to_bytes(2, "big") + b"another version",
                digests[2]: current + b"x" * client.READING_BYTES,  # one byte too many
                digests[3]: current[:1]}  # too short to say its version
        store.record_indexed(None, {}, readings=kept)  # digests[4]: none kept
        sender = MirrorClient(store, "peer.example:8443", Hello(store.node_id, 450, "1.0.0.1"),
                              trust=None)
        last_seq, batch = sender._next_batch()
        assert last_seq == 5 and [copy.digest for copy in batch] == digests
        assert [copy.reading for copy in batch] == [kept[digests[0]], None, None, None, None]
    finally:
        store.close()
