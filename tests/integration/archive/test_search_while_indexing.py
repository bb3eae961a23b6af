"""Search while another process commits to the index as fast as it can: every search answers,
and from one revision (Xapian discards revisions under a slow reader; see
services.archive.index_reader)."""
import json
import multiprocessing

import pytest
import xapian

from services.archive.index import SLOT_DATE
from services.archive.search import search

pytestmark = pytest.mark.integration
DOCUMENTS = 200   # every revision holds exactly these, each with the word "common"
PER_COMMIT = 30   # small commits, one after another: the indexer on a burst of mail
SEARCHES = 300


def rewrite(writer: xapian.WritableDatabase, start: int, generation: int) -> None:
    for number in range(start, start + PER_COMMIT):
        number %= DOCUMENTS
        document = xapian.Document()
        document.add_term(f"Q{number}")
        document.add_term("XBcommon")
        for word in range(20):
            document.add_term(f"XBword{(number * 7 + word + generation) % 3000}")
        document.set_data(json.dumps({"digest": f"{number:064x}", "date": generation}))
        document.add_value(SLOT_DATE, xapian.sortable_serialise(generation))
        writer.replace_document(f"Q{number}", document)
    writer.commit()


def keep_committing(index_dir: str, started, stop) -> None:
    writer = xapian.WritableDatabase(index_dir, xapian.DB_CREATE_OR_OPEN)
    generation = 0
    while not stop.is_set():
        rewrite(writer, generation * PER_COMMIT, generation)
        generation += 1
        if generation == DOCUMENTS // PER_COMMIT + 1:
            started.set()  # every document is written once
    writer.close()


def test_every_search_answers_from_one_revision_while_commits_keep_coming(tmp_path):
    context = multiprocessing.get_context("fork")
    started, stop = context.Event(), context.Event()
    writer = context.Process(target=keep_committing, args=(str(tmp_path), started, stop))
    writer.start()
    try:
        assert started.wait(timeout=60)
        for _ in range(SEARCHES):
            results = search(tmp_path, "common word1* OR word2*", limit=DOCUMENTS)
            assert results.total == len(results.hits) <= DOCUMENTS
            everything = search(tmp_path, "common", limit=DOCUMENTS)
            assert everything.total == len(everything.hits) == DOCUMENTS
            assert len({hit.digest for hit in everything.hits}) == DOCUMENTS
    finally:
        stop.set()
        writer.join(timeout=60)
    assert writer.exitcode == 0
