"""An index written by the schema before the sort keys (schema 2: ICU words, no sender or
subject sort key, no recipients in a hit) is rebuilt by the same background mechanism as
a schema-1 index (services.archive.reindex): until the switch the old index answers, in
date order, and says sorting by sender or subject waits for the rebuild; after it, the
new sorts and recipients work."""
import json

import pytest
import xapian

from services.archive import reindex
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.index import (HIDDEN_PREFIX, SCHEMA_KEY, SCHEMA_VERSION, SENDER_PREFIX,
                                    SLOT_FROM, SLOT_SUBJECT, TEXT_PREFIXES, address_term,
                                    schema_version)
from services.archive.indexer import Indexer
from services.archive.query import Reader
from services.archive.search import SORT_SCHEMA, search
from services.archive.store import Envelope
from tests.integration.archive.test_search import mail

pytestmark = pytest.mark.integration

PREVIOUS_SCHEMA = 2
MAILS = {  # name -> (sender, subject, date)
    "a": ("Zoe <zoe@example.com>", "budget", "Mon, 01 Jan 2024 10:00:00 +0000"),
    "b": ("adam@example.com", "agenda", "Tue, 02 Jan 2024 10:00:00 +0000"),
    "c": ("Eve <eve@example.com>", "minutes", "Wed, 03 Jan 2024 10:00:00 +0000"),
}


def as_schema_2(index_dir) -> None:
    """Rewrite an index as the schema-2 code wrote it: no sort keys of sender and subject,
    no recipients in a document's data, schema 2 recorded."""
    database = xapian.WritableDatabase(str(index_dir), xapian.DB_OPEN)
    for posting in list(database.postlist("")):
        document = database.get_document(posting.docid)
        document.remove_value(SLOT_FROM)
        document.remove_value(SLOT_SUBJECT)
        data = json.loads(document.get_data())
        document.set_data(json.dumps({k: v for k, v in data.items()
                                      if k not in ("to", "recipients")}))
        database.replace_document(posting.docid, document)
    database.set_metadata(SCHEMA_KEY, str(PREVIOUS_SCHEMA))
    database.commit()
    database.close()


@pytest.fixture
def upgraded(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    names = {}
    for name, (sender, subject, date) in MAILS.items():
        raw = mail(sender, "to1@example.com", subject, "body", date)
        names[archive.store.put(raw, Envelope("s@example.com", ["to1@example.com"]),
                                "smtp")] = name
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        Indexer(archive.store, archive.index_dir(), pool).catch_up()
    as_schema_2(archive.index_dir())
    archive.names = names
    yield archive
    archive.close()


def order(archive, results) -> str:
    return "".join(archive.names[hit.digest] for hit in results.hits)


def test_the_sort_keys_came_one_schema_after_the_previous_one():
    assert SCHEMA_VERSION >= SORT_SCHEMA == PREVIOUS_SCHEMA + 1


def test_a_schema_2_index_is_rebuilt_and_then_sorts_by_sender(upgraded):
    index_dir = upgraded.index_dir()
    assert schema_version(xapian.Database(str(index_dir))) == PREVIOUS_SCHEMA
    assert reindex.needs_rebuild(upgraded)
    before = search(index_dir, "", sort="from")
    assert order(upgraded, before) == "cba"  # date order, newest first, meanwhile
    assert "sorting by from works once it is done" in before.notice
    assert before.hits[0].to is None  # an older index's hit names no recipients
    with ExtractionPool(upgraded.profile.attachment_text_bytes) as pool:
        assert reindex.rebuild(upgraded, pool)
    reindex.switch_over(upgraded)
    index_dir = upgraded.index_dir()
    assert schema_version(xapian.Database(str(index_dir))) == SCHEMA_VERSION
    assert not reindex.needs_rebuild(upgraded)
    after = search(index_dir, "", sort="from")
    assert order(upgraded, after) == "bca" and after.notice is None  # adam, eve, zoe
    assert order(upgraded, search(index_dir, "", sort="subject")) == "bac"
    assert after.hits[0].to == ("to1@example.com",) and after.hits[0].recipients == 1


def as_schema_3(index_dir) -> None:
    """Rewrite an index as the schema-3 code wrote it: every body and attachment word
    counted once more without prefix, schema 3 recorded."""
    database = xapian.WritableDatabase(str(index_dir), xapian.DB_OPEN)
    for posting in list(database.postlist("")):
        document = database.get_document(posting.docid)
        for item in list(document.termlist()):
            word = item.term.decode()
            for prefix in LONG_TEXT_PREFIXES:
                if word.startswith(prefix) and word[len(prefix):].islower():
                    document.add_term(word[len(prefix):], item.wdf)
        database.replace_document(posting.docid, document)
    database.set_metadata(SCHEMA_KEY, "3")
    database.commit()
    database.close()


LONG_TEXT_PREFIXES = ("XB", "XA")


def test_a_schema_3_index_is_rebuilt_without_the_copy_of_long_text(tmp_path):
    """Schema 4 indexes body and attachment words once; bare words find them before the
    rebuild (schema 3's copy) and after it (under XB and XA)."""
    archive = Archive(tmp_path / "data", 450)
    raw = mail("ann@example.com", "to1@example.com", "budget", "zebrafish migration", None)
    archive.store.put(raw, Envelope("s@example.com", ["to1@example.com"]), "smtp")
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        Indexer(archive.store, archive.index_dir(), pool).catch_up()
    as_schema_3(archive.index_dir())

    def bare_copies() -> set[str]:
        database = xapian.Database(str(archive.index_dir()))
        return {t.term.decode() for t in database.allterms() if t.term.decode().islower()}

    assert "zebrafish" in bare_copies() and reindex.needs_rebuild(archive)
    assert search(archive.index_dir(), "zebrafish").total == 1
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        assert reindex.rebuild(archive, pool)
    reindex.switch_over(archive)
    assert schema_version(xapian.Database(str(archive.index_dir()))) == SCHEMA_VERSION
    assert "zebrafish" not in bare_copies() and "budget" in bare_copies()
    for query in ("zebrafish", "zebra*", "body:zebrafish", '"zebrafish migration"'):
        assert search(archive.index_dir(), query).total == 1, query
    archive.close()


def rebuilt_from_schema(archive, version: int) -> None:
    """Index the archive's mail, label the index schema `version` (its terms as this code
    writes them), then let reindex find it must rebuild, and rebuild and switch over."""
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        Indexer(archive.store, archive.index_dir(), pool).catch_up()
    database = xapian.WritableDatabase(str(archive.index_dir()), xapian.DB_OPEN)
    database.set_metadata(SCHEMA_KEY, str(version))
    database.commit()
    database.close()
    assert reindex.needs_rebuild(archive)
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        assert reindex.rebuild(archive, pool)
    reindex.switch_over(archive)


def test_an_index_of_a_newer_schema_is_rebuilt_in_this_one(tmp_path):
    """After a downgrade the index may be of a schema this code does not know: it is
    rebuilt like an older one, not read as if it were this code's."""
    archive = Archive(tmp_path / "data", 450)
    raw = mail("ann@example.com", "to1@example.com", "budget", "zebrafish", None)
    archive.store.put(raw, Envelope("s@example.com", ["to1@example.com"]), "smtp")
    rebuilt_from_schema(archive, SCHEMA_VERSION + 1)
    assert schema_version(xapian.Database(str(archive.index_dir()))) == SCHEMA_VERSION
    assert not reindex.needs_rebuild(archive)
    assert search(archive.index_dir(), "zebrafish").total == 1
    archive.close()


def as_schema_4(index_dir) -> None:
    """Rewrite an index as the schema-4 code wrote it: every recipient under to:'s prefix,
    hidden ones too (bcc:'s terms copied there), no exact terms of the sender and the
    hidden recipients, no count of the shown ones in a document's data."""
    to, bcc = TEXT_PREFIXES["to"], TEXT_PREFIXES["bcc"]
    database = xapian.WritableDatabase(str(index_dir), xapian.DB_OPEN)
    for posting in list(database.postlist("")):
        document = database.get_document(posting.docid)
        for item in list(document.termlist()):
            name = item.term.decode()
            if name.startswith((SENDER_PREFIX, HIDDEN_PREFIX)):
                document.remove_term(item.term)
            elif name.startswith(bcc):
                document.add_term(to + name[len(bcc):])
        data = json.loads(document.get_data())
        document.set_data(json.dumps({k: v for k, v in data.items() if k != "shown"}))
        database.replace_document(posting.docid, document)
    database.set_metadata(SCHEMA_KEY, "4")
    database.commit()
    database.close()


def test_a_schema_4_index_shows_a_user_no_hidden_recipient_until_and_after_its_rebuild(
        tmp_path):
    """Schema 4 has every recipient under to:'s prefix: a user (query.Reader) must find no
    mail by a hidden recipient there either; their to: and bcc: find nothing until the
    rebuild (schema 4 has no terms of the shown, the sender, the hidden apart), and what To
    and Cc show, or their own hidden address, after it."""
    archive = Archive(tmp_path / "data", 450)
    raw = mail("ann@example.com", "carol@example.com", "budget", "plans", None)
    archive.store.put(raw, Envelope("ann@example.com", ["carol@example.com",
                                                        "frank@example.com"]), "smtp")
    raw = mail("ann@example.com", "dora@example.com", "hidden carol", "plans", None)
    archive.store.put(raw, Envelope("ann@example.com", ["carol@example.com"]), "smtp")
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        Indexer(archive.store, archive.index_dir(), pool).catch_up()
    as_schema_4(archive.index_dir())
    carol = Reader(xapian.Query(address_term("carol@example.com", SENDER_PREFIX)),
                   frozenset({"carol@example.com"}))

    def found(query: str, reader=carol) -> tuple[int, tuple | None]:
        results = search(archive.index_dir(), query, reader=reader)
        return results.total, results.hits[0].to if results.hits else None

    for query in ("frank", "to:frank", "bcc:frank@example.com", "fran*"):
        assert found(query) == (0, None), query
        assert found(query, None)[0] == 1, query  # an auditor's search
    assert found("to:carol@example.com") == (0, None)
    assert found("to:carol") == (0, None)  # no shown recipients in schema 4
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        assert reindex.rebuild(archive, pool)
    reindex.switch_over(archive)
    assert found("to:carol") == (1, ("carol@example.com",))
    assert found("to:carol@example.com")[0] == 2  # hers, shown and hidden
    assert found("bcc:carol@example.com") == (1, ("dora@example.com",))
    assert found("frank") == (0, None) and found("frank", None)[0] == 1
    archive.close()


def test_a_schema_5_index_is_rebuilt_with_the_resent_recipients(tmp_path):
    """Schema 5 has no Resent-To, -Cc, -Bcc recipients (RFC 5322 3.6.6): its index is
    rebuilt, and then bcc: finds the Resent-Bcc recipient and to: the Resent-To one, a
    Reader only the shown one. (Kept readings without them are of READING_VERSION 4 and
    read again: test_readings.)"""
    archive = Archive(tmp_path / "data", 450)
    raw = (b"From: ann@example.com\nTo: carol@example.com\nSubject: budget\n"
           b"Resent-To: ron@example.com\nResent-Bcc: hugo@example.com\n\nplans\n")
    archive.store.put(raw, None, "import")
    rebuilt_from_schema(archive, 5)
    assert schema_version(xapian.Database(str(archive.index_dir()))) == SCHEMA_VERSION == 6
    carol = Reader(xapian.Query(address_term("carol@example.com", SENDER_PREFIX)),
                   frozenset({"carol@example.com"}))
    for query in ("bcc:hugo", "to:hugo@example.com", "to:ron", "cc:nobody OR to:ron"):
        assert search(archive.index_dir(), query).total == 1, query
    assert search(archive.index_dir(), "to:ron", reader=carol).total == 1
    assert search(archive.index_dir(), "hugo", reader=carol).total == 0
    archive.close()
