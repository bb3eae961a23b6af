"""services.archive.search_snapshot on a real index and store: a search's matches read in
spans of document ids up to the highest at the start, listed newest first (as search lists
them), each message looked up only when its turn comes."""
import pytest
import xapian

from services.archive import index_walk, shards
from services.archive.archive import Archive
from services.archive.index import address_term
from services.archive.search_snapshot import AsOf, take
from tests.integration.archive.export_changes import (AddMailMeanwhile, bulk, in_order,
                                                      index_now)

pytestmark = pytest.mark.integration
COUNT, SPAN = 300, 40  # spans (and chunks of digests) of 40: several of each


@pytest.fixture
def archive(tmp_path, monkeypatch):
    monkeypatch.setattr(index_walk, "SPAN", SPAN)
    archive = Archive(tmp_path / "data", 450)
    archive.store.put_many((raw, None, "import")
                           for raw in bulk(COUNT, to_others_every=4))
    archive.store.put_many((raw, None, "import") for raw in bulk(20, word="other"))
    index_now(archive.store, archive.index_dir())
    yield archive
    archive.close()


def test_a_snapshot_lists_the_matches_newest_first_as_search_does(archive):
    index_dir = archive.index_dir()
    snapshot = take(index_dir, "subject:bulk")
    assert snapshot.as_of == AsOf(shards.revision(index_dir), COUNT + 20)
    assert len(snapshot) == COUNT and len(snapshot.runs) == -(-COUNT // SPAN)
    assert list(snapshot.digests()) == in_order(index_dir, "subject:bulk")
    alice = xapian.Query(address_term("alice@example.com"))
    hers = take(index_dir, "subject:bulk", within_query=alice)
    assert list(hers.digests()) == in_order(index_dir, "subject:bulk", within=alice)
    assert len(hers) == COUNT - COUNT // 4


def test_mail_changed_after_the_start_is_left_out_wherever_it_is_read(archive):
    """Added mail is never in it; mail deleted is skipped whether its digest was looked up
    already (then the store has it no more) or not yet (then the index has not)."""
    index_dir = archive.index_dir()
    expected = in_order(index_dir, "subject:bulk")
    snapshot = take(index_dir, "subject:bulk")
    AddMailMeanwhile(index_dir, "bulk")(archive.store)
    messages = snapshot.messages(archive.store)
    first = [next(messages)[0] for _ in range(3)]  # the first chunk's digests are read
    doomed = [expected[5], expected[SPAN + 5], expected[-1]]
    archive.store.delete(doomed)
    index_now(archive.store, index_dir)
    rest = [digest for digest, _, _ in messages]
    assert first + rest == [digest for digest in expected if digest not in doomed]
    assert len(take(index_dir, "subject:nosuchword")) == 0


def test_nothing_indexed_is_an_empty_snapshot(tmp_path):
    snapshot = take(tmp_path / "no-index", "anything")
    assert len(snapshot) == 0 and snapshot.as_of == AsOf(0, 0)
    assert list(snapshot.digests()) == []
