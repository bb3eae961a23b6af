"""A batch committed in halves near a full disk (found sound by a review of 3e0890f) indexes
each log entry once, in order, with the position never ahead of what is committed."""
import pytest

from services.archive import indexer as indexer_module
from services.archive.archive import Archive
from services.archive.index import id_term
from services.archive.indexer import Indexer, NoRoomToCommit
from services.archive.space import FULL_BELOW_BYTES
from services.archive.store import Envelope

pytestmark = [pytest.mark.integration]


def item(n: int, to: str = "b@example.net", words: int = 100) -> tuple:
    return (f"From: a@example.org\r\nTo: {to}\r\nSubject: half {n}\r\n"
            f"Message-ID: <half{n}@example.org>\r\n\r\nhalfword{n} ".encode()
            + b"words " * words, Envelope(None, [to]), "test", None)


@pytest.mark.parametrize("room_for", [1, 2, 3])
def test_halves_index_every_entry_once_and_the_position_follows(tmp_path, monkeypatch,
                                                                room_for):
    archive = Archive(tmp_path)
    store = archive.store
    store.put_many([item(n) for n in range(6)])
    digests = [digest for _, digest in store.log_after("arrival", 0, 100)]
    store.delete([digests[1]])                            # gone: its entry is "missing"
    store.put_many([item(1)])                             # and back, a new number
    store.put_many([item(2, to="c@example.net")])         # merged recipients: logged again
    store.put_many([item(n, words=3000) for n in range(6, 8)])  # larger ones
    store.delete([digests[4]])
    end = store.log_end("arrival")
    unit = 1024 * 1024  # what one message's commit is taken to need
    room = FULL_BELOW_BYTES + room_for * unit
    monkeypatch.setattr(Indexer, "_room_for", staticmethod(
        lambda batch, whole=True: FULL_BELOW_BYTES + unit * (len(batch.present) if whole
                                                             else 0.5)))
    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool, shard_count=2)
        positions = []
        commits = []
        real_commit = Indexer._commit

        def counted(self, batch, *options):
            real_commit(self, batch, *options)
            if len(batch.entries) == 1 or self._room_short_by(batch) <= 0:
                commits.append(len(batch.entries))
        monkeypatch.setattr(Indexer, "_commit", counted)
        monkeypatch.setattr(indexer_module, "_free_bytes", lambda path: room)
        refusals = 0
        while indexer.position() < end:
            try:
                indexer.catch_up()
            except NoRoomToCommit:
                refusals += 1
                indexer.abandon_writes()
                indexer.reopen()
                room *= 2  # the operator frees some room
            positions.append(indexer.position())
            assert refusals < 20
        counts = {digest: sum(shard.get_termfreq(id_term(digest)) for shard in indexer.shards)
                  for digest in {d for _, d in store.log_after("arrival", 0, 100)}}
        total = indexer.document_count()
        indexer.close()
    assert positions == sorted(positions)
    assert len(commits) > 2  # committed in parts
    assert counts[digests[1]] == 1 and counts[digests[4]] == 0
    assert all(count == 1 for digest, count in counts.items() if digest != digests[4])
    assert total == store.counters()["messages"]
    assert store.cursor("indexer") == end
    archive.close()
