"""The live compaction of an index in shards (the indexer
service's writer, real store, real Xapian, two extraction workers: two shards). After the
copy goes live the writer still writes each shard in a thread of its own (indexer.Indexer:
"one thread a shard writes them at once"): LiveCompaction._switch closed the indexer
(Indexer.close shuts the shard threads down for good), so every batch after the first
compaction was written one shard after the other in the calling thread."""
import threading

import pytest

from services.archive import live_compaction, shards
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.search import search
from tests.integration.archive.test_live_compaction import mail

pytestmark = pytest.mark.integration
MESSAGES = 60


def shard_threads() -> set[str]:
    return {thread.name for thread in threading.enumerate() if thread.name.startswith("shard")}


def test_after_a_live_compaction_each_shard_is_still_written_by_its_own_thread(
        tmp_path, monkeypatch):
    monkeypatch.setattr(live_compaction, "MIN_GROWTH_BYTES", 64 * 1024)
    archive = Archive(tmp_path / "data", 450)
    with ExtractionPool(archive.profile.attachment_text_bytes, workers=2) as pool, \
            Indexer(archive.store, archive.index_dir(), pool) as indexer:
        assert len(shards.shard_dirs(archive.index_dir())) == 2
        for n in range(MESSAGES):
            archive.store.put(mail(n), None, "smtp")
        indexer.catch_up()
        assert len(shard_threads()) == 2  # one writer thread a shard
        assert live_compaction.LiveCompaction(archive, indexer).caught_up()
        late = [archive.store.put(mail(n), None, "smtp") for n in range(MESSAGES, MESSAGES + 4)]
        indexer.catch_up()  # the copy's first batch: messages on both shards
        assert [hit.digest for hit in search(archive.index_dir(), f"marker{MESSAGES + 1}").hits] \
            == [late[1]]
        assert len(shard_threads()) == 2, "the shards are written in the calling thread"
    archive.close()
