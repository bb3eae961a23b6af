"""services.archive.index_walk: a query filtered to document ids, and walks of the whole index
in spans of ids (or chunks of digests), each on one revision."""
import pytest
import xapian

from services.archive import index_walk, shards
from services.archive.index import id_term, number_terms
from services.archive.index_walk import document_ids, read_chunks, read_spans, within
from tests.unit.archive.test_index_reader import DOCUMENTS, write_generation


def add(writer: xapian.WritableDatabase, docid: int, *terms: str) -> None:
    document = xapian.Document()
    for term in (id_term(f"d{docid}"), *number_terms(docid), *terms):
        document.add_term(term)
    writer.replace_document(docid, document)


@pytest.fixture(params=[1, 3], ids=["single", "3-shards"])
def index(tmp_path, request):
    """Documents 1..100 (ids as store numbers), every third with the term "third", ids 10
    to 19 deleted; committed. An index of one database, or of 3 shards (written through
    the stub, as one database: the ids interleave as the indexer's do)."""
    if request.param == 1:
        writer = xapian.WritableDatabase(str(tmp_path), xapian.DB_CREATE_OR_OPEN)
    else:
        for shard in shards.create(tmp_path, request.param, 0):
            shard.close()
        writer = xapian.WritableDatabase(str(tmp_path))
    for docid in range(1, 101):
        add(writer, docid, *(["third"] if docid % 3 == 0 else []))
    for docid in range(10, 20):
        writer.delete_document(docid)
    writer.commit()
    yield tmp_path, writer
    writer.close()


def matched(database, query) -> list[int]:
    enquire = xapian.Enquire(database)
    enquire.set_query(query)
    enquire.set_weighting_scheme(xapian.BoolWeight())
    return sorted(match.docid for match in enquire.get_mset(0, 1000))


@pytest.mark.parametrize("ids", [range(1, 101), range(5, 31), range(95, 200), range(10, 20),
                                 [3, 4, 12, 30, 31, 99], [], [1000]])
def test_a_query_within_ids_matches_exactly_those_of_its_matches(index, ids):
    index_dir, _ = index
    database = xapian.Database(str(index_dir))
    existing = [docid for docid in range(1, 101) if not 10 <= docid < 20]
    assert matched(database, within(database, xapian.Query("third"), ids)) == [
        docid for docid in existing if docid in ids and docid % 3 == 0]
    assert matched(database, within(database, xapian.Query.MatchAll, ids)) == [
        docid for docid in existing if docid in ids]
    either = xapian.Query(xapian.Query.OP_OR, xapian.Query("third"),
                          within(database, xapian.Query.MatchAll, [1, 2, 12]))
    assert matched(database, within(database, either, ids)) == [docid for docid in existing if docid in ids and (docid % 3 == 0 or docid < 3)]


def test_document_ids_names_the_indexed_digests_only(index):
    index_dir, _ = index
    database = xapian.Database(str(index_dir))
    assert document_ids(database, ["d1", "d12", "d50", "nowhere"]) == {1: "d1", 50: "d50"}


def test_spans_cover_every_id_up_to_the_highest_when_the_walk_began(index, monkeypatch):
    """A document added during the walk (an id above) is left out; with `follow`, read."""
    index_dir, writer = index
    monkeypatch.setattr(index_walk, "SPAN", 30)

    def walk(arriving: int, follow: bool) -> list[tuple[range, list[int]]]:
        def read(database, ids):
            if ids.start == 31:  # after the first span: the indexer adds one
                add(writer, arriving, "third")
                writer.commit()
            return ids, matched(database, within(database, xapian.Query("third"), ids))
        return list(read_spans(index_dir, read, follow=follow))
    walked = walk(150, follow=False)
    assert [ids for ids, _ in walked] == [range(1, 31), range(31, 61), range(61, 91),
                                          range(91, 101)]
    assert [docid for _, found in walked for docid in found][-1] == 99
    walked = walk(170, follow=True)  # the walk begins with 150 the highest id
    assert [ids for ids, _ in walked] == [range(1, 31), range(31, 61), range(61, 91),
                                          range(91, 121), range(121, 151), range(151, 171)]
    assert [docid for _, found in walked for docid in found][-3:] == [99, 150, 170]


def test_spans_stop_at_the_id_given_as_the_highest(index, monkeypatch):
    """`through`: the highest id when a snapshot began (a search's export), below the
    highest in the index now."""
    index_dir, _ = index
    monkeypatch.setattr(index_walk, "SPAN", 30)
    walked = list(read_spans(index_dir, lambda database, ids: ids, through=64))
    assert walked == [range(1, 31), range(31, 61), range(61, 65)]
    assert list(read_spans(index_dir, lambda database, ids: ids, through=0)) == []
    assert list(read_spans(index_dir, lambda database, ids: ids, through=500))[-1] == \
        range(91, 101)


def test_a_span_overtaken_by_two_commits_is_read_again_alone(tmp_path, monkeypatch):
    """Each span starts on the newest revision; one the indexer discards is read again,
    the spans before it are not. Documents as tests/unit/archive/test_index_reader's."""
    writer = xapian.WritableDatabase(str(tmp_path), xapian.DB_CREATE_OR_OPEN)
    write_generation(writer, 0)
    monkeypatch.setattr(index_walk, "SPAN", DOCUMENTS // 4)
    reads = []

    def read(database, ids):
        reads.append(ids.start)
        if reads == [1, 501]:
            for generation in (1, 2):  # the indexer rewrites every document, twice
                write_generation(writer, generation)
        generations = {term.term.decode().split("w")[0] for docid in ids
                       for term in database.termlist(docid) if term.term.startswith(b"g")}
        return ids.start, generations
    assert list(read_spans(tmp_path, read)) == [
        (1, {"g0"}), (501, {"g2"}), (1001, {"g2"}), (1501, {"g2"})]
    assert reads == [1, 501, 501, 1001, 1501]
    writer.close()


def test_chunks_are_taken_between_reads(index, monkeypatch):
    index_dir, _ = index
    monkeypatch.setattr(index_walk, "SPAN", 4)
    taken, reads = [], []

    def digests():
        for number in range(1, 11):
            taken.append(number)
            yield f"d{number}"

    def read(database, chunk):
        reads.append(len(taken))
        return sorted(document_ids(database, chunk))
    assert list(read_chunks(index_dir, digests(), read)) == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert reads == [4, 8, 10]


def test_nothing_indexed_yet_is_walked_as_nothing(tmp_path):
    never = lambda database, ids: 1 / 0  # noqa: E731
    assert list(read_spans(tmp_path / "no-index", never)) == []
    assert list(read_chunks(tmp_path / "no-index", ["d1"], never)) == []


def test_a_whole_block_of_ids_on_shards_is_one_term_and_exact(tmp_path):
    """Spans of read_spans are whole blocks of index.ID_BLOCK ids: on shards each is read by
    its block's term; one document deleted from the block and ids of the next block are
    not matched."""
    for shard in shards.create(tmp_path, 2, 0):
        shard.close()
    writer = xapian.WritableDatabase(str(tmp_path))
    for docid in range(1, 2501):
        add(writer, docid, *(["third"] if docid % 3 == 0 else []))
    writer.delete_document(1500)
    writer.commit()
    database = xapian.Database(str(tmp_path))
    block = range(1001, 2001)
    assert matched(database, within(database, xapian.Query.MatchAll, block)) == [
        docid for docid in block if docid != 1500]
    assert matched(database, within(database, xapian.Query("third"), block)) == [
        docid for docid in block if docid % 3 == 0 and docid != 1500]
    assert matched(database, within(database, xapian.Query.MatchAll, range(2001, 2101))) == \
        list(range(2001, 2101))
    writer.close()
