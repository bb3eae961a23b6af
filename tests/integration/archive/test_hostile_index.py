"""No message stops the indexer: a generated corpus of hostile messages, each followed by an
ordinary one, is indexed to the end; the hostile ones are found by digest, words and exact
address and flagged has:extraction-failure where something could not be read; a hostile
attachment costs the worker's time limit once, across restarts and reindexing."""
import json

import pytest
import xapian

from services.archive import index
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.extraction_memo import ExtractionMemo
from services.archive.index import MAX_TERM_BYTES, address_term
from services.archive.indexer import Indexer, status
from services.archive.search import search
from services.archive.store import Envelope
from tests.integration.archive.hostile import (STALL_XLSX, XLSX_TYPE, attachment, corpus, message,
                                              normal)

pytestmark = pytest.mark.integration
# The worker's time limit here (the model's is 20 s): short, so that loop.pdf costs little;
# long enough that nothing else in the corpus reaches it on a loaded machine (the 1000-deep
# multipart takes seconds to parse).
TIMEOUT_S = 10


def pool_for(archive: Archive, timeout_s: float = TIMEOUT_S) -> ExtractionPool:
    return ExtractionPool(archive.profile.attachment_text_bytes, timeout_s=timeout_s,
                          memo=ExtractionMemo(archive.store))


def put_all(archive: Archive, cases) -> dict[str, str]:
    return {case.name: archive.store.put(case.raw, Envelope("x@example.org", case.recipients))
            for case in cases}


def index_all(archive: Archive, index_dir=None, pool=None) -> ExtractionPool:
    pool = pool or pool_for(archive)
    with Indexer(archive.store, index_dir or archive.index_dir(), pool) as indexer:
        indexer.catch_up()
    pool.close()
    return pool


def found(archive: Archive, query: str) -> set[str]:
    return {hit.digest for hit in search(archive.index_dir(), query, limit=10_000).hits}


def with_term(archive: Archive, term: str) -> set[str]:
    """What an exact term (as the web's access filter builds them) matches."""
    database = xapian.Database(str(archive.index_dir()))
    enquire = xapian.Enquire(database)
    enquire.set_query(xapian.Query(term))
    return {json.loads(m.document.get_data())["digest"]
            for m in enquire.get_mset(0, 10_000)}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """The corpus, each hostile message followed by an ordinary one, indexed in one run."""
    archive = Archive(tmp_path_factory.mktemp("hostile"), 450)
    hostile = corpus()
    interleaved = [case for n, bad in enumerate(hostile) for case in (bad, normal(n))]
    digests = put_all(archive, interleaved)
    pool = index_all(archive)
    yield archive, interleaved, digests, pool
    archive.close()


def test_everything_after_the_hostile_messages_is_indexed_and_found(indexed):
    archive, cases, digests, _ = indexed
    now = status(archive.store, archive.index_dir())
    assert (now.pending, now.indexed, now.stored) == (0, len(cases), len(cases))
    for case in cases:
        assert digests[case.name] in found(archive, case.word), case.name
    assert found(archive, "afterword*") == {digests[c.name] for c in cases
                                            if c.name.startswith("normal-")}


def test_each_hostile_message_is_found_by_digest_and_exact_address(indexed):
    archive, cases, digests, _ = indexed
    for case in cases:
        digest = digests[case.name]
        assert found(archive, f"digest:{digest}") == {digest}, case.name
        for address in case.addresses:
            assert digest in with_term(archive, address_term(address)), (case.name, address)


def test_long_addresses_get_distinct_terms_within_the_limit(indexed):
    archive, cases, digests, _ = indexed
    database = xapian.Database(str(archive.index_dir()))
    terms = [t.term for t in database.allterms()]
    assert max(len(t) for t in terms) <= MAX_TERM_BYTES
    long_ones = {c.addresses[0] for c in cases if c.name.startswith("long-envelope")}
    assert len({address_term(a) for a in long_ones}) == len(long_ones) == 6
    # A user whose address is a prefix of a long one reads nothing of it.
    latin = next(a for a in long_ones if a.startswith("é"))
    assert with_term(archive, address_term(latin[:150] + "@example.com")) == set()


def test_what_could_not_be_read_is_flagged_with_its_reason(indexed):
    archive, cases, digests, _ = indexed
    flagged = found(archive, "has:extraction-failure")
    assert flagged == {digests[c.name] for c in cases if c.flagged}
    for case in cases:
        meta = archive.store.meta(digests[case.name])
        assert bool(meta.get("extraction_failures")) == case.flagged, case.name
    loop = archive.store.meta(digests["loop-pdf"])
    assert [f.split(": ")[:3] for f in loop["extraction_failures"]] == [
        ["loop.pdf", "ValueError", "damaged PDF"]]
    stall = archive.store.meta(digests["stall-xlsx"])
    assert stall["extraction_failures"] == [
        f"stall.xlsx: attachment extraction used more than {TIMEOUT_S} s of CPU"]
    deep = archive.store.meta(digests["deep-multipart"])  # cut at mime_parts.MAX_DEPTH
    [reason] = deep["extraction_failures"]
    assert reason.startswith("partly indexed: MIME parts past the first 10000 or nested "
                             "deeper than 48 not parsed (")


def test_the_corpus_cost_one_timeout(indexed):
    *_, pool = indexed
    assert (pool.timeouts, pool.worker_restarts) == (1, 1)  # stall.xlsx, once


def looping(n: int) -> bytes:
    return message(f"loopcopy{n}", body=f"copy {n} of the loop", parts=[
        attachment(STALL_XLSX, XLSX_TYPE, 'filename="stall.xlsx"')])


def test_the_same_hostile_attachment_costs_its_time_once_across_restarts(tmp_path):
    archive = Archive(tmp_path, 450)
    digests = [archive.store.put(looping(n)) for n in range(3)]
    first = index_all(archive, pool=pool_for(archive, timeout_s=2))
    assert (first.timeouts, first.worker_restarts, first.memo_hits) == (1, 1, 3)
    reason = "stall.xlsx: attachment extraction used more than 2 s of CPU"
    assert found(archive, "has:extraction-failure") == set(digests)
    assert [archive.store.meta(d)["extraction_failures"] for d in digests] == [[reason]] * 3
    assert found(archive, "loop") == set(digests)  # the rest of each message is read

    # A restart: a new pool, the same store. Another copy, then a reindex of everything.
    digests.append(archive.store.put(looping(3)))
    later = index_all(archive)
    rebuilt = index_all(archive, archive.new_index_dir())
    assert [(p.timeouts, p.worker_restarts) for p in (later, rebuilt)] == [(0, 0), (0, 0)]
    assert (later.memo_hits, rebuilt.memo_hits) == (1, 4)
    assert found(archive, "has:extraction-failure") == set(digests)
    assert archive.store.meta(digests[3])["extraction_failures"] == [reason]
    archive.close()


def test_a_message_nothing_can_be_read_of_twice_costs_nothing_the_second_time(tmp_path):
    """The worker cannot take in the message at all (memory limit below its size): indexed
    from the headers the store parsed at intake, and remembered by the message's digest."""
    archive = Archive(tmp_path, 450)
    big = message("hugeword", body="x" * (64 * 2**20))
    digest = archive.store.put(big, Envelope("x@example.org", ["big@example.com"]))
    pool = ExtractionPool(2**20, memory_mb=128,
                          memo=ExtractionMemo(archive.store))
    index_all(archive, pool=pool)
    assert pool.worker_restarts == 2  # the read, then the fallback
    assert found(archive, "subject:hugeword from:sender has:extraction-failure") == {digest}
    assert digest in with_term(archive, address_term("big@example.com"))
    again = ExtractionPool(2**20, memory_mb=128,
                           memo=ExtractionMemo(archive.store))
    index_all(archive, archive.new_index_dir(), pool=again)
    assert (again.worker_restarts, again.memo_hits) == (0, 1)
    archive.close()


# --- what no input above reaches: the indexer's own safety net ------------------------------

@pytest.fixture
def ten(tmp_path):
    archive = Archive(tmp_path, 450)
    digests = [archive.store.put(normal(n).raw) for n in range(10)]
    yield archive, digests
    archive.close()


def built_by_worker(monkeypatch, victim: str, spoil) -> None:
    """The documents the extraction workers built (they build the whole one: the patches of
    build_document above reach only the indexer's own process) spoiled the same way for
    `victim`, as the indexer takes them in."""
    unserialise = xapian.Document.unserialise

    def spoiled(data):
        document = unserialise(data)
        if json.loads(document.get_data())["digest"] == victim:
            spoil(document)
        return document

    monkeypatch.setattr(xapian.Document, "unserialise", staticmethod(spoiled))


def test_a_document_xapian_refuses_costs_only_its_own_text(ten, monkeypatch):
    """Xapian drops the whole uncommitted batch with a refused document; the batch is
    written again, that message with its headers only."""
    archive, digests = ten
    victim = digests[4]
    build = index.build_document

    def refused_once(digest, meta, extracted):
        document = build(digest, meta, extracted)
        if digest == victim and not extracted.failures:
            document.add_term("X" * 300)  # a term no helper made: Xapian refuses it
        return document

    monkeypatch.setattr(index, "build_document", refused_once)
    built_by_worker(monkeypatch, victim, lambda document: document.add_term("X" * 300))
    index_all(archive)
    assert found(archive, "afterword*") == set(digests)
    assert found(archive, "has:extraction-failure") == {victim}
    (why,) = archive.store.meta(victim)["extraction_failures"]
    assert why.startswith("indexing failed adding the document: InvalidArgumentError: "
                          "Term too long (> 245)")
    assert found(archive, "subject:afterword4") == {victim}  # its headers are there


def test_a_document_that_cannot_be_built_falls_back_to_the_stored_metadata(ten, monkeypatch):
    archive, digests = ten
    victim = digests[7]
    build = index.build_document

    def broken(digest, meta, extracted):
        if digest == victim and extracted.summary.to:  # whole and headers-only both fail
            raise RecursionError("maximum recursion depth exceeded")
        return build(digest, meta, extracted)

    monkeypatch.setattr(index, "build_document", broken)
    def unbuildable(document):
        raise RecursionError("maximum recursion depth exceeded")

    built_by_worker(monkeypatch, victim, unbuildable)
    index_all(archive)
    assert found(archive, "afterword*") == set(digests)
    assert found(archive, "from:sender subject:afterword7 has:extraction-failure") == {victim}
    (why,) = archive.store.meta(victim)["extraction_failures"]
    assert why == ("indexing failed building the document: RecursionError: maximum recursion "
                   "depth exceeded")
