"""services.archive.index_reader: a read overtaken by the indexer's commits is read again on
the newest revision, never answered from a discarded one."""
import time

import pytest
import xapian

from services.archive.index_reader import read_consistently, read_index

DOCUMENTS = 2000


def write_generation(writer: xapian.WritableDatabase, generation: int) -> None:
    """Replace every document with one whose terms name `generation`, and commit: enough
    changed blocks that two such commits reuse the blocks of the revision before them."""
    for number in range(DOCUMENTS):
        document = xapian.Document()
        document.add_term(f"Q{number}")
        for word in range(20):
            document.add_term(f"g{generation}w{number}x{word}")
        writer.replace_document(f"Q{number}", document)
    writer.commit()


@pytest.fixture
def index(tmp_path):
    writer = xapian.WritableDatabase(str(tmp_path), xapian.DB_CREATE_OR_OPEN)
    write_generation(writer, 0)
    writer.generation = 0
    yield tmp_path, writer
    writer.close()


def overtake(writer) -> None:
    for _ in range(2):
        writer.generation += 1
        write_generation(writer, writer.generation)


def newest_generation(database: xapian.Database) -> int:
    """Which generation the revision being read holds, read from a term of document 7."""
    document = database.get_document(database.postlist("Q7").__next__().docid)
    terms = [item.term.decode() for item in document.termlist()]
    return int(next(term for term in terms if term.startswith("g"))[1:].split("w")[0])


def test_a_discarded_revision_is_what_xapian_says_without_reading_again(index):
    index_dir, writer = index
    database = xapian.Database(str(index_dir))
    overtake(writer)
    with pytest.raises(xapian.DatabaseModifiedError):
        newest_generation(database)


def test_a_read_overtaken_by_two_commits_is_read_again_on_the_newest_revision(index):
    index_dir, writer = index
    attempts = []

    def read(database):
        attempts.append(database.get_doccount())
        if len(attempts) == 1:
            overtake(writer)  # the indexer commits twice while this reads
        return newest_generation(database)

    assert read_index(index_dir, read, absent=None) == 2
    assert attempts == [DOCUMENTS, DOCUMENTS]


def test_a_read_always_overtaken_gives_up_after_its_patience(index):
    index_dir, writer = index
    attempts = []

    def read(database):
        attempts.append(1)
        overtake(writer)
        return newest_generation(database)

    started = time.monotonic()
    with pytest.raises(xapian.DatabaseModifiedError):
        read_consistently(xapian.Database(str(index_dir)), read, patience=0.5)
    assert len(attempts) >= 2 and time.monotonic() - started >= 0.5


def test_a_read_longer_than_its_patience_still_gets_a_second_try(index):
    index_dir, writer = index
    attempts = []

    def read(database):
        attempts.append(1)
        if len(attempts) == 1:
            overtake(writer)
        return newest_generation(database)

    assert read_consistently(xapian.Database(str(index_dir)), read, patience=0) == 2
    assert len(attempts) == 2


def test_nothing_indexed_yet_answers_the_absent_value(tmp_path):
    assert read_index(tmp_path / "no-index", lambda database: 1 / 0, absent="none") == "none"
