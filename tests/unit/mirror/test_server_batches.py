"""The mirror server holds a bounded number of batches (and of audit and hold-record pages)
in memory, however many peers (or one peer's retries) send at once: the rest wait their
turn, or are told to send again later (503 with Retry-After, which the client takes as "the peer waits"), and no message
is lost either way. Over a real aiohttp server on loopback (no TLS: who may send is
tested in test_pairing)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import tracemalloc

import aiohttp
import pytest
from aiohttp import web

from services.archive.store import Store
from services.mirror import client as mirror_client
from services.mirror import server as mirror_server
from services.mirror.protocol import AUDIT_PATH, Hello, MirroredMessage, encode_batch

PEERS = 6            # batches sent at once
PER_BATCH = 8        # messages in each
MESSAGE_BYTES = 256 * 1024
BATCH_BYTES = PER_BATCH * MESSAGE_BYTES  # 2 MiB
HELD = 4             # what one batch held costs, in its sizes
STORE_SECONDS = 0.3  # each batch's store, slowed so that the others pile up meanwhile


def batch(peer: int) -> list[MirroredMessage]:
    found = []
    for n in range(PER_BATCH):
        raw = (f"From: p{peer}@example.com\r\nSubject: {peer}-{n}\r\n\r\n".encode()
               + bytes([65 + (peer + n) % 26]) * MESSAGE_BYTES)
        found.append(MirroredMessage(hashlib.sha256(raw).hexdigest(), raw, None,
                                     ["b@example.com"], "node-a"))
    return found


class NoPairing:
    def add_routes(self, app) -> None:
        pass


class SlowServer(mirror_server.MirrorServer):
    """A paired peer's server whose store is slow, counting the batches stored at once."""

    def __init__(self, store: Store):
        super().__init__(store, Hello(store.node_id, 450, "1.0.0.1"),
                         copies_back_to=lambda node: True, max_message_bytes=1 << 20,
                         pairing=NoPairing(), pins=dict)
        self.storing = self.most_storing = 0
        self._count = threading.Lock()

    def _peer_node(self, request):
        return "node-a"

    def _not_welcome(self, request):
        return None

    def _store_batch(self, body: bytes, sender_node: str) -> int:
        with self._count:
            self.storing += 1
            self.most_storing = max(self.most_storing, self.storing)
        try:
            time.sleep(STORE_SECONDS)
            return super()._store_batch(body, sender_node)
        finally:
            with self._count:
                self.storing -= 1


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "b", map_size=1 << 30)
    yield opened
    opened.close()


async def send_all(server: SlowServer, bodies: list[bytes], path: str = "/v1/messages"
                   ) -> list[tuple[int, str | None]]:
    """POST every body to `path` at once; (status, Retry-After) of each."""
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}{path}"

    async def send(body: bytes) -> tuple[int, str | None]:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=body) as response:
                await response.read()
                if response.status == 503:  # what the mirror client makes of it
                    with pytest.raises(mirror_client.PeerWaits):
                        await mirror_client._check_answer(response)
                return response.status, response.headers.get("Retry-After")
    try:
        return await asyncio.gather(*(send(body) for body in bodies))
    finally:
        await runner.cleanup()


def sent(server: SlowServer, bodies: list[bytes], path: str = "/v1/messages"
         ) -> tuple[list, int]:
    """The answers to `bodies` sent at once, and the most memory traced meanwhile (bytes)."""
    tracemalloc.start()
    try:
        answers = asyncio.run(send_all(server, bodies, path))
        return answers, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_concurrent_batches_are_held_one_at_a_time_and_all_stored(store):
    server = SlowServer(store)
    batches = [batch(peer) for peer in range(PEERS)]
    bodies = [encode_batch(messages) for messages in batches]
    answers, peak = sent(server, bodies)
    assert answers == [(200, None)] * PEERS
    assert server.most_storing == 1  # server.BATCHES_AT_ONCE
    # a batch held costs some 4 times its size (aiohttp's buffer and the bytes made of it,
    # its messages decoded, storing them): under two batches' worth, not PEERS batches'
    assert peak < 2 * HELD * BATCH_BYTES, peak
    for messages in batches:
        assert all(store.get(m.digest) == m.raw for m in messages)


def test_a_batch_that_waits_too_long_is_told_to_retry_and_nothing_is_lost(store, monkeypatch):
    monkeypatch.setattr(mirror_server, "BATCH_WAIT_SECONDS", STORE_SECONDS / 3, raising=False)
    batches = [batch(peer) for peer in range(PEERS)]
    pending = dict(enumerate(encode_batch(messages) for messages in batches))
    rounds, told_later, most_storing = 0, 0, 0
    while pending and rounds < 4 * PEERS:  # what each peer's client does: send again later
        rounds += 1
        server = SlowServer(store)  # a server lives in one event loop
        answers, peak = sent(server, list(pending.values()))
        most_storing = max(most_storing, server.most_storing)
        assert peak < 2 * HELD * BATCH_BYTES, peak
        for key, (status, retry_after) in zip(list(pending), answers):
            assert status in (200, 503)
            if status == 200:
                del pending[key]
            else:
                told_later += 1
                assert retry_after == str(mirror_server.BUSY_RETRY_AFTER_SECONDS)  # seconds
                assert not any(m.digest in store for m in batches[key])  # none of it
    assert not pending and told_later and most_storing == 1
    for messages in batches:
        assert all(store.get(m.digest) == m.raw for m in messages)


class SlowAuditServer(SlowServer):
    """Its audit pages are answered slowly, so that the others pile up meanwhile."""

    def _take_audit_entries(self, node: str, document: dict) -> dict:
        time.sleep(STORE_SECONDS)
        return super()._take_audit_entries(node, document)


def audit_page(peer: int) -> bytes:
    """A page just under the server's 4 MiB limit (its entries malformed: answered 400)."""
    return json.dumps({"head": None, "entries": [chr(65 + peer) * 1000] * 4000}).encode()


def test_concurrent_audit_pages_are_read_one_at_a_time(store):
    pages = [audit_page(peer) for peer in range(PEERS)]
    answers, peak = sent(SlowAuditServer(store), pages, AUDIT_PATH)
    assert [status for status, _ in answers] == [400] * PEERS
    # one page read and parsed costs under 4 times its size (measured 3.7); PEERS pages
    # read at once and parsed one by one cost nearly 10
    assert peak < 6 * len(pages[0]), peak


def test_an_audit_page_that_waits_too_long_is_told_to_send_it_later(store, monkeypatch):
    monkeypatch.setattr(mirror_server, "BATCH_WAIT_SECONDS", STORE_SECONDS / 3)
    answers, _ = sent(SlowAuditServer(store), [audit_page(peer) for peer in range(3)],
                      AUDIT_PATH)
    later = [retry_after for status, retry_after in answers if status == 503]
    assert later and all(seconds == str(mirror_server.BUSY_RETRY_AFTER_SECONDS)
                         for seconds in later)
