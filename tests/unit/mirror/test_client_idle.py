"""A mirror client with nothing to copy looks at its outbox less and less often, up to once
every IDLE_POLL_MOST_SECONDS, and as often as at first again once the outbox moves (the
client's waits are recorded here instead of slept, so no test waits on a clock)."""
import asyncio

from services.archive.store import Envelope, Store
from services.mirror import client
from services.mirror.client import IDLE_POLL_MOST_SECONDS, IDLE_POLL_SECONDS, MirrorClient
from services.mirror.protocol import Hello


def message(n: int) -> bytes:
    return (f"From: a@example.com\r\nTo: b@example.com\r\nSubject: idle {n}\r\n"
            f"Message-ID: <idle{n}@example.com>\r\n\r\nbody {n}\r\n").encode()


def test_an_idle_client_backs_off_to_its_longest_wait_and_starts_over_when_the_outbox_moves(
        tmp_path, monkeypatch):
    store = Store(tmp_path / "store", map_size=1 << 30)
    waits: list[float] = []
    stop = asyncio.Event()

    async def recorded(event, seconds, woken=None):
        waits.append(seconds)
        if len(waits) == 5:  # the outbox moves: a message, deleted before it is copied
            digest = store.put(message(1), Envelope(None, ["b@example.com"]), "smtp")
            store.delete([digest])
        if len(waits) == 8:
            stop.set()

    monkeypatch.setattr(client, "_sleep_unless", recorded)
    try:
        sender = MirrorClient(store, "peer.example:8443", Hello(store.node_id, 450, "1.0.0.1"),
                              trust=None)
        asyncio.run(sender._copy_until(stop, session=None))  # nothing is sent: no session
        backoff = [IDLE_POLL_SECONDS, 2 * IDLE_POLL_SECONDS, 4 * IDLE_POLL_SECONDS]
        assert backoff[-1] == IDLE_POLL_MOST_SECONDS
        assert waits == [*backoff, IDLE_POLL_MOST_SECONDS, IDLE_POLL_MOST_SECONDS, *backoff]
        assert store.cursor(client.cursor_name("peer.example:8443")) > 0
    finally:
        store.close()
