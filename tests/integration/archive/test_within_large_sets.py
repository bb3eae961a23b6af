"""A fresh reviewer's attack on index_walk.within over an index in shards (services.archive.
shards), where a set of document ids is a query of the ids' terms (index.number_terms):
large, scattered sets over 100,000 documents (half of them at random, a hold over every
other message, whole blocks, ids past the last document, ids given twice) give exactly
what a brute-force filter gives, and what the posting source gives on one database of
the same documents. Before the fix a set of 50,000 scattered ids was one flat OR of
50,000 terms, which Xapian 1.4 matched in 70-100 s (its cost grows with the square of the
count); it is now an OR of blocks (under a second). No timing is asserted."""
import random

import pytest
import xapian

from services.archive import shards
from services.archive.index import number_terms
from services.archive.index_walk import within

pytestmark = pytest.mark.integration
DOCUMENTS = 100_000
SHARDS = 2


def document(number: int) -> xapian.Document:
    """A document as the indexer adds it, reduced to what a filter reads: its id terms
    and a word of every third."""
    made = xapian.Document()
    made.add_boolean_term("Kany")
    if number % 3 == 0:
        made.add_boolean_term("Kthird")
    for term in number_terms(number):
        made.add_boolean_term(term)
    return made


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    """The same 100,000 documents in 2 shards and in one database."""
    where = tmp_path_factory.mktemp("within")
    sharded, single = shards.create(where / "sharded", SHARDS, 0), \
        xapian.WritableDatabase(str(where / "single"), xapian.DB_CREATE_OR_OPEN)
    for number in range(1, DOCUMENTS + 1):
        made = document(number)
        sharded[shards.shard_of(number, SHARDS)].replace_document(
            shards.local_id(number, SHARDS), made)
        single.replace_document(number, made)
    for database in (*sharded, single):
        database.commit()
        database.close()
    return where / "sharded", where / "single"


def matches(index_dir, query, ids) -> list[int]:
    database = xapian.Database(str(index_dir))
    try:
        enquire = xapian.Enquire(database)
        enquire.set_query(within(database, query, ids))
        enquire.set_weighting_scheme(xapian.BoolWeight())
        return sorted(match.docid for match in enquire.get_mset(0, DOCUMENTS + 10))
    finally:
        database.close()


def id_sets() -> dict[str, list[int]]:
    rng = random.Random(10)
    return {
        "half at random": sorted(rng.sample(range(1, DOCUMENTS + 1), DOCUMENTS // 2)),
        "every other": list(range(1, DOCUMENTS + 1, 2)),
        "whole blocks and strays": [*range(1001, 3001), *range(3002, 9000, 997),
                                    *range(50_000, 51_001)],
        "past the last document": list(range(DOCUMENTS - 5, DOCUMENTS + 3000)),
        "each id twice": sorted([*range(1, 2001, 2)] * 2),
        "a block but one, one given twice": sorted([*range(2001, 3000), 2500]),
        "none": [],
    }


@pytest.mark.parametrize("name", list(id_sets()))
@pytest.mark.parametrize("word", ["Kany", "Kthird", None])
def test_within_a_large_scattered_set_is_what_brute_force_gives(indexes, name, word):
    ids = id_sets()[name]
    query = xapian.Query(word) if word else xapian.Query.MatchAll
    expected = sorted({number for number in ids if 1 <= number <= DOCUMENTS
                       and (word != "Kthird" or number % 3 == 0)})
    sharded, single = indexes
    assert matches(sharded, query, ids) == expected
    if name not in ("each id twice", "a block but one, one given twice"):
        assert matches(single, query, ids) == expected  # ascending ids: the posting source
