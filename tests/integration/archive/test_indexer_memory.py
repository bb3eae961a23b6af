"""The indexer's memory is bounded whatever the backlog: it commits whenever the text added
since its last commit reaches its share of the model's indexing memory, each commit with
its log position; a message deleted or delivered twice within a batch lands in the right
commit; and the store's pages it read leave its resident memory. The extraction workers read
messages at once only as far as their memory budget (half the model's indexing memory)
admits, and import stores batches bounded in bytes."""
import os
from email.message import EmailMessage

import pytest
import xapian

from firmware.models import load_models
from services.archive import extract
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool, budget_for_model, extraction_cost
from services.archive.indexer import CURSOR_KEY, MEMORY_PER_TEXT_BYTE, Indexer, status
from services.archive.search import search
from services.archive.store import MAPPED_BYTES, Envelope, Store
from services.cli.archive import IMPORT_BATCH_SHARE

pytestmark = pytest.mark.integration
WORDS_PER_MESSAGE = 2000  # about 16 KB of body text each


def mail(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "alice@example.org", "bob@example.net"
    message["Subject"], message["Message-ID"] = f"report {n}", f"<r{n}@example.org>"
    message.set_content(" ".join(f"word{n}x{k}" for k in range(WORDS_PER_MESSAGE)))
    return message.as_bytes()


def revisions_while_indexing(archive: Archive, memory_bytes: int) -> int:
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool,
                    memory_bytes=memory_bytes) as indexer:
        before = indexer.database.get_revision()
        indexer.catch_up()
        return indexer.database.get_revision() - before


def test_a_backlog_is_committed_in_pieces_of_bounded_text_each_with_its_position(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    digests = [archive.store.put(mail(n)) for n in range(20)]
    archive.store.put(mail(3), Envelope(None, ["late@example.net"]))  # merged: logged again
    archive.store.delete([digests[7]])                                   # deleted: logged
    text_per_message = len(" ".join(f"word0x{k}" for k in range(WORDS_PER_MESSAGE)))
    # A commit takes memory_bytes / MEMORY_PER_TEXT_BYTE of text: here about four messages.
    commits = revisions_while_indexing(archive, 4 * text_per_message * MEMORY_PER_TEXT_BYTE)
    assert 5 <= commits <= 8  # 22 log entries, 19 messages of text, in one read batch
    database = xapian.Database(str(archive.index_dir()))
    assert int(database.get_metadata(CURSOR_KEY)) == archive.store.log_end("arrival")
    assert status(archive.store, archive.index_dir()).pending == 0
    assert database.get_doccount() == 19
    assert not search(archive.index_dir(), "word7x5").hits
    assert len(search(archive.index_dir(), "to:late@example.net").hits) == 1
    assert len(search(archive.index_dir(), "word19x1999").hits) == 1


def test_a_message_larger_than_the_share_is_a_commit_of_its_own(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    for n in range(3):
        archive.store.put(mail(n))
    assert revisions_while_indexing(archive, memory_bytes=1) == 3
    assert xapian.Database(str(archive.index_dir())).get_doccount() == 3


def resident_file_kb() -> int:
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


def test_the_store_pages_read_leave_the_readers_resident_memory(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    # Random hex bodies: 24 MiB, some 12 MiB of the store's map once compressed.
    digests = [archive.store.put(b"Subject: noise\n\n" + os.urandom(1024 * 1024).hex().encode())
               for _ in range(12)]
    archive.store.release_pages()
    baseline, most = resident_file_kb(), 0
    for digest in digests:
        archive.store.get(digest)
        most = max(most, resident_file_kb() - baseline)
    # Let go of whenever they pass MAPPED_BYTES: never more than that and one message
    # (each some 1 MiB compressed), where all 12 MiB stayed resident before.
    assert most < (MAPPED_BYTES + 2 * 1024 * 1024) // 1024
    archive.store.release_pages()
    assert resident_file_kb() < baseline + 4 * 1024  # and none once released
    assert all(archive.store.get(digest).startswith(b"Subject: noise") for digest in digests)


def noise_mail() -> bytes:
    return (b"Subject: noise\nMessage-ID: <%s@example.org>\n\n" % os.urandom(8).hex().encode()
            + os.urandom(1500).hex().encode())


@pytest.fixture
def store_of_small_messages(tmp_path):
    """A store of 6,000 small messages, its pages let go: random digests, so each lookup
    lands on a leaf of its own in every database a put touches."""
    archive = Archive(tmp_path / "data", 450)
    for _ in range(6):
        archive.store.put_many([(noise_mail(), None, "import") for _ in range(1000)])
    archive.store.release_pages()
    yield archive
    archive.close()


def test_one_large_batch_of_puts_keeps_few_store_pages_resident(store_of_small_messages,
                                                                 monkeypatch):
    """Within one transaction: a batch's random lookups mapped in some 30 MB of this store
    (and more the larger the store) before the batch ended."""
    archive, put_in, most = store_of_small_messages, Store._put_in, 0
    baseline = resident_file_kb()

    def sampling(store, *args):
        nonlocal most
        most = max(most, resident_file_kb() - baseline)
        return put_in(store, *args)
    monkeypatch.setattr(Store, "_put_in", sampling)
    archive.store.put_many([(noise_mail(), None, "import") for _ in range(1000)])
    assert most < (MAPPED_BYTES + 1024 * 1024) // 1024
    assert archive.store.counters()["messages"] == 7000


def test_the_indexers_bookkeeping_over_the_whole_store_keeps_few_pages_resident(
        store_of_small_messages, monkeypatch):
    """The indexer reads each message's metadata and records what it read in one
    transaction per commit (Store.record_indexed): both walk the whole store."""
    archive = store_of_small_messages
    digests = list(archive.store.digests())
    archive.store.release_pages()
    baseline, most = resident_file_kb(), 0
    for digest in digests:
        archive.store.meta(digest)
        most = max(most, resident_file_kb() - baseline)
    assert most < (MAPPED_BYTES + 1024 * 1024) // 1024
    write_meta = Store._write_meta

    def sampling(store, *args):
        nonlocal most
        most = max(most, resident_file_kb() - baseline)
        return write_meta(store, *args)
    monkeypatch.setattr(Store, "_write_meta", sampling)
    archive.store.record_indexed(None, {digest: ["a.pdf"] for digest in digests})
    assert most < (MAPPED_BYTES + 1024 * 1024) // 1024
    assert archive.store.meta(digests[-1])["attachments"] == ["a.pdf"]


def test_a_bulk_import_leaves_no_store_pages_resident(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    baseline = resident_file_kb()
    for _ in range(40):  # 32 MiB stored; without releasing, a third of it stays mapped
        archive.store.put_many([(b"Subject: noise\n\n" + os.urandom(40_000), None, "import")
                                for _ in range(20)])
    assert resident_file_kb() < baseline + 4 * 1024


# --- the memory of the extraction in flight ------------------------------------------------

def unique_words(tag: str, count: int) -> str:
    return " ".join(f"{tag}w{k}" for k in range(count))


def large_mail(n: int) -> bytes:
    """Some 1.3 MB: a body and a text attachment of words of its own."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.net", f"big {n}"
    message.set_content(f"marker{n} " + unique_words(f"b{n}", 60_000))
    message.add_attachment(unique_words(f"a{n}", 60_000), filename=f"notes{n}.txt")
    return message.as_bytes()


def cut_at_the_cap(result: extract.Extracted, n: int) -> bool:
    """Whether large_mail(n)'s extraction says its body and its attachment were cut at a
    256 KiB cap (each some 500 KB of text), and nothing else."""
    body, attachment = result.failures
    return body.startswith("partly indexed: body text cut at 262144 bytes") and \
        attachment == f"notes{n}.txt: {extract.cap_cut(256 * 1024)}"


@pytest.fixture(scope="module")
def large_and_small():
    large = [large_mail(n) for n in range(4)]
    small = [mail(n) for n in range(4)]
    return [m for pair in zip(large, small) for m in pair]  # large, small, large, ...


def test_workers_read_large_messages_at_once_only_within_the_budget(large_and_small):
    sizes = sorted(len(raw) for raw in large_and_small)
    one_large_one_small = extraction_cost(sizes[-1]) + extraction_cost(sizes[0])
    assert 2 * extraction_cost(sizes[-1]) > one_large_one_small  # two large do not fit
    with ExtractionPool(256 * 1024, workers=2, budget_bytes=one_large_one_small) as pool:
        results = pool.extract_many(large_and_small)
        assert pool.admitted_bytes == 0
        peak = pool.peak_admitted_bytes
    assert peak <= one_large_one_small
    assert peak > extraction_cost(sizes[-1])  # a small one was read beside a large one
    for n in range(4):
        large, small = results[2 * n], results[2 * n + 1]
        assert large.body.startswith(f"marker{n} ") and large.errors == []
        assert cut_at_the_cap(large, n), large.failures
        assert large.attachments[0].text.startswith(f"a{n}w0 a{n}w1 ")
        assert small.body.rstrip().endswith(f"word{n}x1999")


def test_a_message_costing_more_than_the_budget_is_read_alone(large_and_small):
    largest = max(extraction_cost(len(raw)) for raw in large_and_small)
    with ExtractionPool(256 * 1024, workers=2, budget_bytes=largest // 2) as pool:
        results = pool.extract_many(large_and_small)
        peak = pool.peak_admitted_bytes
    assert peak == largest  # alone: nothing was read beside it
    assert [r.errors for r in results] == [[]] * len(large_and_small)
    assert all(cut_at_the_cap(r, n // 2) if n % 2 == 0 else r.failures == []
               for n, r in enumerate(results)), [r.failures for r in results]
    assert all(r.body for r in results)


@pytest.mark.parametrize("profile", list(load_models()), ids=lambda p: str(p.model))
def test_each_models_extraction_budget_is_half_its_indexing_memory(profile):
    budget = budget_for_model(profile)
    assert budget == profile.indexing.memory_bytes // 2
    # Every worker the model has can read a small message at the same time.
    assert budget >= profile.indexing.workers * extraction_cost(64 * 1024)


def test_a_pool_for_a_model_has_its_budget(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    with archive.extraction_pool() as pool:
        assert pool.budget_bytes == 32 * 1024 * 1024  # models.yaml: indexing.memory_mb 64
    archive.close()


def test_import_stores_batches_of_bounded_bytes(tmp_path, monkeypatch):
    from services.archive.store import Store
    from services.cli.main import main
    maildir = tmp_path / "Mail"
    for part in ("cur", "new", "tmp"):
        (maildir / part).mkdir(parents=True)
    raws = [large_mail(n) for n in range(16)]  # some 21 MB
    for n, raw in enumerate(raws):
        (maildir / "cur" / f"{n}:2,S").write_bytes(raw)
    batches, put_prepared = [], Store.put_prepared

    def recording(store, batch, readings=None):
        batches.append(sum(ready.meta["size"] for ready in batch))
        return put_prepared(store, batch, readings)
    monkeypatch.setattr(Store, "put_prepared", recording)
    assert main(["import", "--no-index", "--json", "--model", "450",
                 "--data", str(tmp_path / "data"), str(maildir)]) == 0
    bound = load_models().get(450).indexing.memory_bytes // IMPORT_BATCH_SHARE
    assert sum(batches) == sum(len(raw) for raw in raws)
    assert len(batches) > 1 and max(batches) < bound + max(len(raw) for raw in raws)
