"""Review h174: messages of hostile Content-Type fields (tests/unit/archive/
content_type_shapes) stored and indexed: each kept byte-exact and found by a word of its
body, every type the index holds a clean `type/subtype`, and an attached message whose
type reads clean found by its own subject and body."""
from __future__ import annotations

import pytest
import xapian

from services.archive.index import BOOLEAN_PREFIXES
from tests.integration.archive.indexed import indexed_archive, names_found
from tests.unit.archive.content_type_shapes import (CLEAN_TYPE, POSITIONS, RECOGNISED, SHAPES,
                                                    hostile_message, letters)

pytestmark = pytest.mark.integration
CASES = [(shape, position) for shape in SHAPES for position in POSITIONS]


def word_of(number: int) -> str:
    return "hostile" + letters(number)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Each case's message, named "shape@position", its words made unique by its number."""
    mails = {f"{shape}@{position}": hostile_message(shape, position, word_of(number))
             for number, (shape, position) in enumerate(CASES)}
    archive = indexed_archive(tmp_path_factory.mktemp("content-types"), mails)
    yield archive
    archive.close()


def test_each_message_is_stored_byte_exact_and_found_by_a_word_of_its_body(archive):
    for number, (shape, position) in enumerate(CASES):
        name = f"{shape}@{position}"
        assert archive.store.get(archive.digests[name]) == archive.raws[name], name
        assert names_found(archive, word_of(number)) == [name]


def test_every_type_the_index_holds_is_clean(archive):
    database = xapian.Database(str(archive.index_dir()))
    prefix = BOOLEAN_PREFIXES["type"]
    types = [term.term.decode("utf-8", "replace")[len(prefix):]
             for term in database.allterms(prefix)]
    assert types and [kind[:80] for kind in types if not CLEAN_TYPE.fullmatch(kind)] == []


@pytest.mark.parametrize("shape", RECOGNISED)
def test_an_attached_message_whose_type_reads_clean_is_found_by_its_own_words(archive, shape):
    word = word_of(CASES.index((shape, "message")))
    name = f"{shape}@message"
    assert names_found(archive, f"attachment:inner{word}") == [name]
    assert names_found(archive, f"attachment:innersubject{word}") == [name]
    assert names_found(archive, f"type:message/rfc822 AND inner{word}") == [name]
