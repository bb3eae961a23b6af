"""The room a commit is begun with (Indexer._room_for) counts each deleted message's
terms once, however often its digest is in the arrival log: a message stored, deleted,
stored again and deleted (or deleted twice) is one document to delete, and Xapian rewrites
its postings once. Its digest was in a commit's `missing` once per log entry (_parts), and
again when a carried rest and the next batch both found it deleted (_joined), so the
estimate asked for several times the room (COMMIT_DISK_PER_TERM_DELETED a term each time)
and a disk with room enough waited. Generated: the number of times a message comes and
goes, in one batch or split across batches (a rest carried into the next)."""
from email.message import EmailMessage

import pytest

from services.archive import indexer as indexer_module
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.index import id_term
from services.archive.indexer import COMMIT_DISK_PER_TERM_DELETED, Indexer

pytestmark = pytest.mark.integration


def mail(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "alice@example.org", "bob@example.net"
    message["Subject"], message["Message-ID"] = f"gone {n}", f"<gone{n}@example.org>"
    message.set_content(" ".join(f"word{n}x{k}" for k in range(300)))
    return message.as_bytes()


def terms_held(indexer: Indexer, digest: str) -> int:
    """The terms of the documents the index holds of `digest`, over its shards."""
    term = id_term(digest)
    return sum(shard.get_document(posting.docid).termlist_count()
               for shard in indexer.shards if shard.term_exists(term)
               for posting in shard.postlist(term))


@pytest.mark.parametrize("comings", [1, 2, 3])
@pytest.mark.parametrize("deleted_twice", [False, True])
@pytest.mark.parametrize("batch_messages", [2, 3, 1000])  # 1000: all in one batch
def test_a_message_logged_often_and_deleted_counts_its_terms_once(
        tmp_path, monkeypatch, comings, deleted_twice, batch_messages):
    archive = Archive(tmp_path / "data")
    raws = [mail(n) for n in range(3)]
    digests = [archive.store.put(raw) for raw in raws]
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool) as indexer:
        indexer.catch_up()
        gone = digests[0]
        held = terms_held(indexer, gone)
        assert held > 300
        for _ in range(comings - 1):  # deleted, stored again
            archive.store.delete([gone])
            archive.store.put(raws[0])
        archive.store.delete([gone])
        if deleted_twice:
            archive.store.delete([gone])
        monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", batch_messages)
        counted = []  # terms deleted, as each commit's estimate counts them
        commit = Indexer._commit
        monkeypatch.setattr(Indexer, "_commit", lambda self, part, *options: (
            counted.append(self._terms_deleted(part)), commit(self, part, *options)))
        indexer.catch_up()
        assert terms_held(indexer, gone) == 0
    assert counted and max(counted) == held, (counted, held)
    assert sum(counted) == held * sum(1 for terms in counted if terms)
    archive.close()
