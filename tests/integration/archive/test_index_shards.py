"""An index in shards (services.archive.shards) answers exactly as one database does for the
same store: the same document ids (the store's numbers), the same matches, whatever the
deletions, re-stored messages, refused documents and crashes between the shards' commits;
compaction keeps its ids; a reindex of an index of one database makes one in shards;
retention deletes from it."""
import datetime as dt
import random
from email.message import EmailMessage

import pytest
import xapian

from services.archive import compaction, indexer as indexer_module, reindex, retired_index, shards
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.index import id_term
from services.archive.indexer import CURSOR_KEY, Indexer
from services.archive.search import search
from services.archive.search_snapshot import take
from services.policy import holds, retention, saved_searches
from services.policy.audit import Actor
from services.policy.replicated import Replicated

pytestmark = pytest.mark.integration
QUERIES = ["from:*example.org", "common", "even", "odd", "subject:mail7*",
           "from:sender3@example.org", "common NOT even", "has:extraction-failure", "has:attachment"]
SHARDS = 3


def mail(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = f"sender{n % 5}@example.org", "audit@example.net"
    message["Subject"] = f"mail{n} {'even' if n % 2 == 0 else 'odd'}"
    message["Message-ID"] = f"<shard{n}@example.org>"
    message["Date"] = f"Mon, {1 + n % 28:02d} Jun 2025 10:{n % 60:02d}:00 +0000"
    message.set_content(f"common text of message number{n}")
    if n % 7 == 0:
        message.add_attachment(f"attached words of {n}".encode(), maintype="text",
                               subtype="plain", filename=f"note{n}.txt")
    return message.as_bytes()


@pytest.fixture
def archive(tmp_path):
    opened = Archive(tmp_path / "data", 450)
    yield opened
    opened.close()


@pytest.fixture
def pool(archive):
    with ExtractionPool(archive.profile.attachment_text_bytes, workers=2) as opened:
        yield opened


def index_into(archive, pool, index_dir, shard_count=None):
    with Indexer(archive.store, index_dir, pool, live=False,
                 shard_count=shard_count) as writer:
        writer.catch_up()


def single_database(path):
    """An index directory as older code made it: one glass database at its top."""
    path.mkdir(parents=True, exist_ok=True)
    xapian.WritableDatabase(str(path), xapian.DB_CREATE_OR_OPEN).close()
    return path


def contents(archive, index_dir) -> dict:
    """What the index says: digest -> document id, its position, and each query's matches
    (digests in result order and the snapshot's ids)."""
    database = xapian.Database(str(index_dir))
    ids = {}
    for digest in archive.store.digests():
        postings = [posting.docid for posting in database.postlist(id_term(digest))] \
            if database.term_exists(id_term(digest)) else []
        ids[digest] = postings
    found = {query: ([hit.digest for hit in search(index_dir, query, limit=1000).hits],
                     list(take(index_dir, query).document_ids())) for query in QUERIES}
    return {"ids": ids, "doccount": database.get_doccount(),
            "position": database.get_metadata(CURSOR_KEY), "found": found}


def assert_numbers_are_ids(archive, index_dir):
    database = xapian.Database(str(index_dir))
    for digest in archive.store.digests():
        assert [p.docid for p in database.postlist(id_term(digest))] == \
            [archive.store.meta(digest)["number"]]
    assert database.get_doccount() == archive.store.counters()["messages"]


def churn(archive, seed: int) -> None:
    """60 messages stored, some deleted, some stored again (a new number each)."""
    rng = random.Random(seed)
    raws = [mail(n) for n in range(60)]
    digests = [archive.store.put(raw) for raw in raws]
    gone = rng.sample(range(60), 15)
    archive.store.delete([digests[n] for n in gone])
    for n in gone[:6]:
        archive.store.put(raws[n])  # stored again: a new number, maybe another shard


def test_new_indexes_are_in_as_many_shards_as_the_pool_has_workers(archive, pool):
    archive.store.put(mail(1))
    index_dir = archive.index_dir()
    with Indexer(archive.store, index_dir, pool) as writer:
        writer.catch_up()
    assert shards.shard_dirs(index_dir) == [index_dir / "shard0", index_dir / "shard1"]
    assert (index_dir / shards.STUB).read_text() == "glass shard0\nglass shard1\n"
    assert not (index_dir / shards.SINGLE).exists()


@pytest.mark.parametrize("seed", range(3))
def test_shards_give_the_same_ids_and_matches_as_one_database(archive, pool, monkeypatch,
                                                              seed):
    """Deletions and re-stored messages interleaved with small batches (several commits),
    indexed into one database and into 3 shards: the same everywhere."""
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 7)
    churn(archive, seed)
    single, sharded = single_database(archive.new_index_dir()), archive.new_index_dir()
    index_into(archive, pool, single)
    index_into(archive, pool, sharded, SHARDS)
    churn(archive, seed + 100)  # more of the same, indexed on top
    index_into(archive, pool, single)
    index_into(archive, pool, sharded, SHARDS)
    assert len(shards.shard_dirs(sharded)) == SHARDS and shards.shard_dirs(single) == [single]
    assert contents(archive, sharded) == contents(archive, single)
    assert_numbers_are_ids(archive, sharded)
    assert all(xapian.Database(str(path)).get_doccount() for path in shards.shard_dirs(sharded))


def refusing(monkeypatch, depths: dict[str, int]) -> None:
    """Xapian refuses the document of each digest of `depths` at every level below its
    depth (a term too long for it), as it would a hostile message's."""
    build = indexer_module._document

    def built(level, digest, meta, extracted, reason):
        document, content = build(level, digest, meta, extracted, reason)
        if level < depths.get(digest, 0):
            document.add_term("X" * 300)
        return document, content

    monkeypatch.setattr(indexer_module, "_document", built)


def test_documents_refused_at_each_level_on_several_shards_at_once(archive, pool,
                                                                   monkeypatch):
    """Three messages on three shards, refused at the whole document, then also headers
    only, then also the stored metadata: each ends at the next level, the others whole,
    as in one database."""
    digests = [archive.store.put(mail(n)) for n in range(12)]
    depths = {digests[3]: 1, digests[4]: 2, digests[5]: 3}  # numbers 4, 5, 6: shards 0, 1, 2
    refusing(monkeypatch, depths)
    single, sharded = single_database(archive.new_index_dir()), archive.new_index_dir()
    index_into(archive, pool, single)
    index_into(archive, pool, sharded, SHARDS)
    result = contents(archive, sharded)
    assert result == contents(archive, single)
    assert set(result["found"]["has:extraction-failure"][0]) == set(depths)
    assert len(result["found"]["common"][0]) == 9  # the refused ones lost their body
    for digest, depth in depths.items():
        (why,) = archive.store.meta(digest)["extraction_failures"]
        assert why.startswith("indexing failed adding the document: InvalidArgumentError")
    assert_numbers_are_ids(archive, sharded)


@pytest.mark.parametrize("refused_on", ["the old document's shard", "another shard"])
def test_a_message_stored_again_loses_its_old_document_when_its_batch_is_written_again(
        archive, pool, monkeypatch, refused_on):
    """Message 1 (number 2, shard 1) indexed, deleted and stored again (number 13, shard
    0), in one batch with a document Xapian refuses (number 14 on shard 1, or 15 on shard
    2): the refusing shard dropped its uncommitted changes, the others kept theirs, and
    the batch written again still drops the old document, once."""
    raws = [mail(n) for n in range(12)]
    digests = [archive.store.put(raw) for raw in raws]
    single, sharded = single_database(archive.new_index_dir()), archive.new_index_dir()
    index_into(archive, pool, single)
    index_into(archive, pool, sharded, SHARDS)
    archive.store.delete([digests[1]])
    archive.store.put(raws[1])
    new = [archive.store.put(mail(n)) for n in (20, 21)]  # numbers 14 and 15
    refusing(monkeypatch, {new[0] if refused_on == "the old document's shard" else new[1]: 1})
    index_into(archive, pool, single)
    index_into(archive, pool, sharded)
    assert archive.store.meta(digests[1])["number"] == 13
    assert contents(archive, sharded) == contents(archive, single)
    assert_numbers_are_ids(archive, sharded)


class CrashingCommit:
    """A shard whose commit number `fails_at` (1: the next) fails as a process killed
    before it would; the other shards' commits of that batch are made."""

    def __init__(self, shard, fails_at=1):
        self.shard, self.fails_at = shard, fails_at

    def commit(self):
        self.fails_at -= 1
        if self.fails_at == 0:
            raise SystemExit("killed before shard 0's commit")
        self.shard.commit()

    def __getattr__(self, name):
        return getattr(self.shard, name)


def test_a_crash_between_the_shards_commits_is_made_good_by_the_next_writer(
        archive, pool, monkeypatch):
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 10)
    digests = [archive.store.put(mail(n)) for n in range(25)]
    sharded = archive.new_index_dir()
    writer = Indexer(archive.store, sharded, pool, live=False, shard_count=SHARDS)
    writer.index_batch()  # messages 1..10 committed, position 10
    archive.store.delete([digests[0]])
    archive.store.put(mail(0))  # stored again as number 26, on another shard
    real = writer.shards[0]
    writer.shards[0] = CrashingCommit(real)
    with pytest.raises(SystemExit):
        writer.index_batch()
    writer.shards[0] = real
    writer.abandon_writes()  # what a killed process leaves: shard 0's changes gone
    writer.close()
    ahead = xapian.Database(str(sharded))
    assert ahead.get_metadata(CURSOR_KEY) == b"10"  # the position did not move
    assert ahead.get_doccount() > 10  # but shards 1 and 2 hold part of the next batch
    index_into(archive, pool, sharded)
    single = single_database(archive.new_index_dir())
    index_into(archive, pool, single)
    assert contents(archive, sharded) == contents(archive, single)
    assert_numbers_are_ids(archive, sharded)


def assert_position_is_held(archive, index_dir):
    """Every message the index's position says is indexed (log entries up to it) is."""
    database = xapian.Database(str(index_dir))
    position = int(database.get_metadata(CURSOR_KEY) or 0)
    for seq, digest in archive.store.log_after("arrival", 0, 10_000):
        if seq <= position and digest in archive.store:
            assert database.term_exists(id_term(digest)), (digest, position)
    return position


@pytest.mark.parametrize(("shard", "fails_at"), [(0, 1), (0, 2), (0, 3), (0, 4),
                                                 (1, 1), (1, 2), (1, 3)])
def test_a_crash_in_a_backlog_leaves_no_position_ahead_of_a_shard(
        archive, pool, monkeypatch, shard, fails_at):
    """In a backlog the shards commit at once, shard 0 with the position of the commit
    before (Indexer._commit_shards): a crash at any commit of shard 0 (with the position)
    or of shard 1 (without) leaves a position every shard holds the messages up to, and
    the next writer makes the index what one database is. 60 log entries in batches of
    10, each full batch's last commit part carried to the next (Indexer._write): 3
    commits of 20 entries, then shard 0's commit of the position alone."""
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 10)
    churn(archive, fails_at)  # 60 stored, 15 deleted, 6 stored again
    sharded = archive.new_index_dir()
    writer = Indexer(archive.store, sharded, pool, live=False, shard_count=SHARDS)
    real = writer.shards[shard]
    writer.shards[shard] = CrashingCommit(real, fails_at)
    with pytest.raises(SystemExit):
        writer.catch_up()
    writer.shards[shard] = real
    writer.abandon_writes()
    writer.close()
    assert assert_position_is_held(archive, sharded) < archive.store.log_end("arrival")
    index_into(archive, pool, sharded)
    assert assert_position_is_held(archive, sharded) == archive.store.log_end("arrival")
    single = single_database(archive.new_index_dir())
    index_into(archive, pool, single)
    assert contents(archive, sharded) == contents(archive, single)
    assert_numbers_are_ids(archive, sharded)


def test_compacting_shards_keeps_every_id_and_the_position(archive, pool, tmp_path):
    churn(archive, 7)
    sharded = archive.new_index_dir()
    index_into(archive, pool, sharded, SHARDS)
    before = contents(archive, sharded)
    copy = tmp_path / "compacted"
    compaction.compact(sharded, copy)
    assert shards.shard_dirs(copy) == [copy / f"shard{k}" for k in range(SHARDS)]
    assert contents(archive, copy) == before
    assert compaction.size_of(copy) > 0
    assert compaction.size_of(sharded) == sum(path.stat().st_size
                                               for path in sharded.rglob("*") if path.is_file())


def test_a_reindex_of_an_index_of_one_database_makes_one_in_shards(archive, pool):
    """An index older code made (one database at the top of its directory) keeps being
    written as it is; `archiver reindex` (rebuild, switch over) makes the new one in as
    many shards as there are workers, with the same ids and matches."""
    churn(archive, 3)
    old = single_database(archive.index_dir())
    with Indexer(archive.store, old, pool) as writer:
        writer.catch_up()
    assert shards.shard_dirs(old) == [old] and not (old / shards.STUB).exists()
    before = contents(archive, old)
    assert reindex.rebuild(archive, pool)
    reindex.switch_over(archive)
    live = archive.index_dir()
    assert live != old and retired_index.retired_at(old) is not None  # removed later
    assert [path.name for path in shards.shard_dirs(live)] == ["shard0", "shard1"]
    assert contents(archive, live) == before
    assert_numbers_are_ids(archive, live)


def test_retention_and_holds_on_an_index_in_shards(archive, pool):
    """Retention deletes expired mail from a 3-shard index but what a hold's search (read
    through the shards in spans of ids) matches; the index then drops the deleted."""
    admin = Actor("root", "admin")
    replicated = Replicated(archive.store)
    digests = [archive.store.put(mail(n)) for n in range(30)]
    with Indexer(archive.store, archive.index_dir(), pool, shard_count=SHARDS) as writer:
        writer.catch_up()
    saved_searches.save(replicated, "evens", "subject:even", admin)
    replicated.put(retention.ENABLED, True)
    retention.set_global(replicated, 30)
    holds.add(replicated, archive.index_dir(), "evens", dt.date(2100, 1, 1), admin)
    report = retention.run(archive.store, archive.index_dir(), replicated, admin,
                           now=dt.datetime(2030, 1, 1).timestamp())
    assert (report.deleted, report.held) == (15, 15)
    assert sorted(d for d in digests if d in archive.store) == \
        sorted(digests[n] for n in range(0, 30, 2))
    with Indexer(archive.store, archive.index_dir(), pool) as writer:
        writer.catch_up()
    assert len(shards.shard_dirs(archive.index_dir())) == SHARDS
    assert_numbers_are_ids(archive, archive.index_dir())
    assert search(archive.index_dir(), "odd").total == 0
    assert search(archive.index_dir(), "even").total == 15
