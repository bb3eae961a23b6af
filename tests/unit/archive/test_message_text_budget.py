"""How much text one message gives its index: all its attachments share
extract.MESSAGE_ATTACHMENT_TEXT_CAPS caps of text, whatever kind of file holds it, and its
document holds at most index.MAX_DOCUMENT_TERMS distinct terms; each cut flagged
(review rv59 D1: 1,000 attachments of distinct words took an import to 5.3 GB)."""
from __future__ import annotations

import binascii
import itertools
import random

import pytest

from services.archive import extract as extraction, index, terms
from services.archive.extract import Extracted, extract
from services.archive.index import PARTLY_INDEXED
from services.archive.indexer import _parts
from services.archive.words import RUN_WORDS
from tests import reading_corpus as corpus
from tests.integration.archive.test_backlog_carry import _batch
from tests.unit.archive.test_extract import CAP, mail

BUDGET = extraction.MESSAGE_ATTACHMENT_TEXT_CAPS * CAP
FILES = 3 * extraction.MESSAGE_ATTACHMENT_TEXT_CAPS + 2  # of half a cap of text each
META = {"number": 1, "size": 1, "received": 1.7e9, "sent_date": 1.7e9, "recipients": []}


def texts(count: int) -> list[bytes]:
    """`count` texts of half a cap of words, each word in one text only."""
    counter = itertools.count()
    return [b" ".join(b"w%06dx" % next(counter) for _ in range(CAP // 2 // 9))
            for _ in range(count)]


def uuencoded(name: str, data: bytes) -> bytes:
    lines = [binascii.b2a_uu(data[at:at + 45]).rstrip(b"\n") for at in range(0, len(data), 45)]
    return b"begin 644 %s\n%s\n`\nend\n" % (name.encode(), b"\n".join(lines))


def forwarded(number: int, text: bytes) -> object:
    return mail(body=text.decode(), subject=f"forwarded {number}")


def attaching(files) -> object:
    """A message of these attachments, made of the texts it is given."""
    return lambda found: mail(attachments=files(found))


KINDS = {
    "attachments": attaching(lambda found: [(text, "text/plain", f"f{n}.txt")
                                            for n, text in enumerate(found)]),
    "HTML attachments": attaching(lambda found: [
        (b"<p>" + text + b"</p>", "text/html", f"f{n}.html") for n, text in enumerate(found)]),
    "files in a zip": attaching(lambda found: [(corpus.zip_archive(
        [(f"f{n}.txt", text) for n, text in enumerate(found)]), "application/zip", "a.zip")]),
    "files in a TNEF": attaching(lambda found: [(corpus.tnef(
        [(f"f{n}.txt", text) for n, text in enumerate(found)]), "application/ms-tnef",
        "winmail.dat")]),
    "forwarded messages": attaching(lambda found: [forwarded(n, text)
                                                   for n, text in enumerate(found)]),
    "files uuencoded in the body": lambda found: mail(body="".join(
        uuencoded(f"f{n}.txt", text).decode() for n, text in enumerate(found))),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_all_attachments_of_a_message_share_one_text_budget(kind):
    found = texts(FILES)
    result = extract(KINDS[kind](found).as_bytes(), CAP)
    read = [a for a in result.attachments if a.text]
    assert sum(len(a.text.encode()) for a in result.attachments) <= BUDGET
    assert found[0].split()[0].decode() in read[0].text  # the first ones read first
    shared = [a for a in result.attachments if a.cut and "share" in a.cut]
    assert shared and all(a.cut.startswith(PARTLY_INDEXED) for a in shared)
    assert f"share {BUDGET} bytes of text" in shared[0].cut
    assert found[-1].split()[-1].decode() not in " ".join(a.text for a in read)


def test_a_file_past_the_budget_is_still_listed_by_name_and_type():
    result = extract(KINDS["attachments"](texts(FILES)).as_bytes(), CAP)
    assert [a.filename for a in result.attachments] == [f"f{n}.txt" for n in range(FILES)]
    last = result.attachments[-1]
    assert (last.text, last.mime_type) == ("", "text/plain") and "share" in last.cut
    assert "text not indexed: all attachments of a message share" in last.cut


def test_attachments_within_the_budget_are_read_whole_and_not_flagged():
    found = texts(2 * extraction.MESSAGE_ATTACHMENT_TEXT_CAPS - 1)  # half a cap each
    result = extract(KINDS["attachments"](found).as_bytes(), CAP)
    assert [a.text.encode().strip() for a in result.attachments] == found
    assert not any(a.cut for a in result.attachments) and result.failures == []


# --- the document's distinct terms -----------------------------------------------------------

def words(start: int, count: int) -> str:
    return " ".join(f"t{number:07d}" for number in range(start, start + count))


def content(body: str, *attachments: str, name: str = "a.txt") -> Extracted:
    """A message's reading of `body` and attachments of these texts, each named `name`."""
    found = extract(mail().as_bytes(), CAP)
    found.body = body
    found.attachments = [extraction.AttachmentText(name, "text/plain", text)
                         for text in attachments]
    return found


@pytest.fixture
def few_terms(monkeypatch):
    monkeypatch.setattr(index, "MAX_DOCUMENT_TERMS", 5000)
    return 5000


def test_a_body_of_more_distinct_words_than_a_document_holds_is_cut_and_flagged(few_terms):
    given = content(words(0, 3 * few_terms), words(10 ** 6, 500))
    document, indexed = index.build_bounded_document("d" * 64, META, given)
    held = {item.term.decode() for item in document.termlist()}
    assert document.termlist_count() <= few_terms + 2 * RUN_WORDS + 200
    assert "XBt0000000" in held and f"XBt{3 * few_terms - 1:07d}" not in held
    assert given.body.startswith(indexed.body) and len(indexed.body) < len(given.body)
    assert indexed.body.endswith(("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"))
    assert "distinct terms" in indexed.cut and indexed.cut.startswith(PARTLY_INDEXED)
    attachment = indexed.attachments[0]  # after the body: only its start
    assert given.attachments[0].text.startswith(attachment.text)
    assert 0 < len(attachment.text) <= index.ATTACHMENT_START_CHARACTERS
    assert "distinct terms" in attachment.cut and "text cut" in indexed.cut
    assert "XAt1000000" in held and "XAt1000499" not in held
    assert any("distinct terms" in failure for failure in indexed.failures)
    assert given.body == words(0, 3 * few_terms) and given.cut is None  # left as it was


def test_attachments_are_cut_where_the_document_is_full(few_terms):
    given = content(words(0, 100), words(10 ** 6, few_terms // 2), words(2 * 10 ** 6,
                                                                         few_terms))
    document, indexed = index.build_bounded_document("d" * 64, META, given)
    assert indexed.body == given.body and indexed.cut is None
    assert indexed.attachments[0] == given.attachments[0]  # whole: not flagged
    assert "distinct terms" in indexed.attachments[1].cut
    assert given.attachments[1].text.startswith(indexed.attachments[1].text)
    assert 0 < len(indexed.attachments[1].text) < len(given.attachments[1].text)
    assert document.termlist_count() <= few_terms + 2 * RUN_WORDS


def test_a_document_within_its_terms_is_built_of_what_was_given(few_terms):
    given = content(words(0, 100), words(10 ** 6, 100))
    document, indexed = index.build_bounded_document("d" * 64, META, given)
    assert indexed is given
    assert document.serialise() == index.build_document("d" * 64, META, given).serialise()


def test_a_file_name_is_indexed_to_the_longest_a_file_system_keeps():
    name = " ".join(f"n{number:05d}" for number in range(2000)) + ".txt"
    document = index.build_document("d" * 64, META, content("body", "text", name=name))
    held = {item.term.decode() for item in document.termlist()}
    assert "n00000" in held and "n01999" not in held


def test_cjk_text_without_spaces_is_cut_a_chunk_at_a_time(few_terms):
    rng = random.Random(5)
    body = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(4 * few_terms))
    document, indexed = index.build_bounded_document("d" * 64, META, content(body, "after"))
    assert document.termlist_count() <= few_terms + 2 * terms.CHUNK_CHARACTERS + 100
    assert body.startswith(indexed.body) and 0 < len(indexed.body) < len(body)
    assert "distinct terms" in indexed.cut
    after = indexed.attachments[0]  # short: its start is all of it
    assert (after.text, after.cut) == ("after", None)
    assert f"XB{body[0]}" in {item.term.decode() for item in document.termlist()}


def test_each_attachment_after_a_full_document_gives_its_first_words(few_terms):
    """Up to ATTACHMENT_START_TERMS more terms: the first attachments' starts, not all."""
    given = content(words(0, 3 * few_terms),
                    *(words(10 ** 6 * number, 400) for number in range(1, 301)))
    document, indexed = index.build_bounded_document("d" * 64, META, given)
    held = {item.term.decode() for item in document.termlist()}
    assert "XAt1000000" in held and "XAt2000000" in held  # the first ones' first words
    assert f"XAt{300 * 10 ** 6}" not in held  # past the reserve
    assert document.termlist_count() <= few_terms + index.ATTACHMENT_START_TERMS + 2 * RUN_WORDS
    assert all(a.cut for a in indexed.attachments)
    assert indexed.attachments[-1].text == "" and "not indexed" in indexed.attachments[-1].cut


def test_text_that_fits_is_added_whole_whatever_its_kind(few_terms, monkeypatch):
    body = "こんにちは世界 " * 50 + " naïve café " * 50 + "plain words " * 50
    document, indexed = index.build_bounded_document("d" * 64, META, content(body))
    assert indexed.body == body and indexed.cut is None
    monkeypatch.setattr(index, "MAX_DOCUMENT_TERMS", 10 ** 9)  # no limit in reach
    assert document.serialise() == index.build_document("d" * 64, META, content(body)).serialise()


def test_a_commit_ends_before_documents_of_more_terms_than_it_takes():
    batch = _batch([(n, digest) for n, digest in enumerate("abcd", 1)],
                   present=[(digest, 1) for digest in "abcd"])
    for read, held in zip(batch.extracted, (60, 50, 30, 200)):
        read.terms = held
    parts = list(_parts(batch, 10 ** 9, terms=100))
    assert [[digest for _, digest in part.entries] for part in parts] == \
        [["a"], ["b", "c"], ["d"]]  # (one document of more than that is a commit alone)
