"""A message deleted and stored again (retention deleted it, then a journal or a peer brought
the same bytes back) has one document, under its new store number, however the deletion,
the new copy, envelope merges and the indexer's batches interleave. The indexer sees only
the arrival log: a deletion read after the message came back looks like any re-arrival."""
import random
from email.message import EmailMessage

import pytest
import xapian

from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.index import id_term
from services.archive.indexer import Indexer
from services.archive.search import search
from services.archive.store import Envelope

pytestmark = pytest.mark.integration
OPERATIONS = ("put", "merge", "delete")


def mail(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "journal@example.org", "audit@example.net"
    message["Subject"], message["Message-ID"] = f"Returning {n}", f"<returning{n}@example.org>"
    message.set_content(f"returning message number{n}")
    return message.as_bytes()


def apply(archive: Archive, operation: str, raw: bytes, digest: str, step: int) -> None:
    if operation == "put":
        archive.store.put(raw, Envelope("journal@example.org", ["audit@example.net"]), "smtp")
    elif operation == "merge":  # the same bytes for another recipient: a re-arrival
        archive.store.put(raw, Envelope("journal@example.org", [f"r{step}@example.net"]), "smtp")
    else:
        archive.store.delete([digest])


def assert_one_document_per_stored_message(archive: Archive, digests: list[str]) -> None:
    database = xapian.Database(str(archive.index_dir()))
    stored = [digest for digest in digests if digest in archive.store]
    assert database.get_doccount() == len(stored)
    for digest in digests:
        postings = [p.docid for p in database.postlist(id_term(digest))] \
            if database.get_termfreq(id_term(digest)) else []
        expected = [archive.store.meta(digest)["number"]] if digest in archive.store else []
        assert postings == expected, digest


def index(archive: Archive, pool: ExtractionPool) -> None:
    with Indexer(archive.store, archive.index_dir(), pool) as indexer:
        indexer.catch_up()


def test_deleted_and_stored_again_before_the_indexer_reads_the_deletion(tmp_path):
    """The case as found: indexed, deleted, stored again, then one catch-up."""
    archive = Archive(tmp_path)
    raw = mail(0)
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        digest = archive.store.put(raw)
        index(archive, pool)
        archive.store.delete([digest])
        archive.store.put(raw)
        index(archive, pool)
    assert search(archive.index_dir(), "returning").total == 1
    assert_one_document_per_stored_message(archive, [digest])


@pytest.mark.parametrize("seed", range(4))
def test_any_interleaving_of_deletions_copies_and_batches_leaves_one_document(tmp_path, seed):
    """40 messages, each through 6 random puts, merges and deletions, with catch-ups at
    random steps; after each, the index has exactly the stored messages, each under its
    store number."""
    rng = random.Random(seed)
    archive = Archive(tmp_path)
    raws = [mail(n) for n in range(40)]
    digests = [archive.store.put(raw) for raw in raws]  # each starts stored
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        for step in range(6):
            for raw, digest in zip(raws, digests):
                apply(archive, rng.choice(OPERATIONS), raw, digest, step)
            if rng.random() < 0.6:
                index(archive, pool)
                assert_one_document_per_stored_message(archive, digests)
        index(archive, pool)
    assert_one_document_per_stored_message(archive, digests)
    stored = sum(digest in archive.store for digest in digests)
    assert search(archive.index_dir(), "returning", limit=100).total == stored
