"""ArchiveHandler's puts: messages held in memory are prepared in turn by one thread, and
one spooled to disk in a thread of its own, so a large message that takes long to store
(a hostile one, hard to compress) never holds up the small ones behind it."""
import asyncio
import threading

from firmware.models import load_models
from services.archive.store import Envelope, Store
from services.common.config import SmtpConfig
from services.intake.gate import IntakeGate
from services.intake.smtp import ArchiveHandler
from services.intake.smtp_data import IN_MEMORY_BYTES, DataSpool

GiB = 1024**3


class SlowForLargeMessages(Store):
    """The real store, but storing a message too large to hold in memory waits for
    `release`: as one that takes long to compress would."""

    def __init__(self, *args):
        super().__init__(*args)
        self.release, self.waiting = threading.Event(), threading.Event()

    def put_future(self, raw, *args, **options):
        if len(raw) > IN_MEMORY_BYTES:
            self.waiting.set()
            assert self.release.wait(60)
        return super().put_future(raw, *args, **options)


def spooled(tmp_path, body: bytes) -> DataSpool:
    spool = DataSpool(tmp_path)
    spool.write(b"Subject: put\r\n\r\n" + body)
    spool.flush()
    return spool


def test_a_large_message_being_stored_holds_up_no_small_one(tmp_path):
    store = SlowForLargeMessages(tmp_path / "store", GiB)
    profile = load_models().get(450)
    handler = ArchiveHandler(store, SmtpConfig(trusted_servers=["127.0.0.1/32"]),
                             IntakeGate(store, profile, tmp_path), profile.smtp)
    envelope = Envelope("a@example.org", ["b@example.org"])

    async def run():
        large = asyncio.create_task(handler._store(
            spooled(tmp_path, b"x" * (2 * IN_MEMORY_BYTES)), envelope, True))
        while not store.waiting.is_set():
            await asyncio.sleep(0.01)
        small = [await handler._store(spooled(tmp_path, b"small %d" % n), envelope, True)
                 for n in range(5)]  # each durable while the large one is still being stored
        assert not large.done()
        store.release.set()
        return small, await large

    try:
        small, large = asyncio.run(run())
        assert [outcome.status for outcome in small + [large]] == ["new"] * 6
        assert store.counters()["messages"] == 6
    finally:
        store.release.set()
        store.close()
