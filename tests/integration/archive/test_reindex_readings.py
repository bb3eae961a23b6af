"""Reindex builds each document from the reading the store kept when the message was first
indexed (services.archive.readings), not by reading the message again: the same documents,
and a reading that is stale or damaged is read again from the message."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
import xapian

from services.archive import readings
from services.archive.archive import Archive
from services.archive.extract import extract
from services.archive.index import id_term
from services.archive.search import search
from tests.bench import corpus
from tests.conftest import ARCHIVER
from tests.unit.archive.test_extract import PDF_TYPE, mail

pytestmark = pytest.mark.integration
MESSAGES = 40


def archiver(*args) -> dict:
    done = subprocess.run([str(ARCHIVER), *map(str, args), "--json"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def documents(data: Path, digests: list[str]) -> dict[str, tuple]:
    """Each message's document: terms with their wdf and positions, values, data."""
    database = xapian.Database(str(data / "index"))
    found = {}
    for digest in digests:
        docid = next(iter(database.postlist(id_term(digest)))).docid
        document = database.get_document(docid)
        terms = tuple((item.term, item.wdf, tuple(database.positionlist(docid, item.term)))
                      for item in document.termlist())
        values = tuple((item.num, item.value) for item in document.values())
        found[digest] = (terms, values, document.get_data())
    return found


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """An archive of a bench corpus (attachments of every kind) and one message whose PDF
    cannot be read, imported and indexed."""
    base = tmp_path_factory.mktemp("readings")
    maildir = base / "mail"
    corpus.generate(maildir, MESSAGES, seed=11)
    broken = mail(subject="broken", attachments=[(b"%PDF-1.4 no pdf", PDF_TYPE, "b.pdf")])
    (maildir / "cur" / "broken.eml").write_bytes(broken.as_bytes())
    data = base / "data"
    assert archiver("import", "--data", data, maildir)["indexed"] == MESSAGES + 1
    archive = Archive(data)
    digests = sorted(archive.store.digests())
    failed = {digest for digest in digests if archive.store.meta(digest).get("extraction_failures")}
    plain = {digest for digest in digests
             if not extract(archive.store.get(digest), 1 << 20).attachments}
    archive.close()
    assert len(plain) >= 5 and len(set(digests) - plain - failed) >= 5
    return data, digests, failed | plain  # the messages whose reading is not kept


def kept_readings(data: Path, digests: list[str]) -> dict[str, bytes | None]:
    archive = Archive(data)
    try:
        return {digest: archive.store.reading(digest) for digest in digests}
    finally:
        archive.close()


def test_indexing_keeps_the_reading_of_every_message_with_attachments_read_whole(imported):
    data, digests, unkept = imported  # the broken message and those without attachments
    kept = kept_readings(data, digests)
    for digest in digests:
        if digest in unkept:
            assert kept[digest] is None
        else:
            assert kept[digest] is not None and readings.is_current(kept[digest])
    kept_bytes = sum(len(reading) for reading in kept.values() if reading)
    assert archiver("stats", "--data", data)["reading_bytes"] >= kept_bytes


def test_reindex_from_readings_builds_the_same_documents(imported):
    data, digests, _ = imported
    before = documents(data, digests)
    assert archiver("reindex", "--data", data)["indexed"] == MESSAGES + 1
    assert documents(data, digests) == before


def test_reindex_reads_the_kept_reading_and_reads_a_stale_one_again(imported):
    data, digests, unkept = imported
    used, damaged, other_version = [digest for digest in digests if digest not in unkept][:3]
    before = documents(data, digests)
    archive = Archive(data)
    cap = archive.profile.attachment_text_bytes
    kept = {digest: archive.store.reading(digest) for digest in (used, other_version)}
    marked = readings.decode(kept[used], cap)
    marked.body += " readbackproof"
    with archive.store.env.begin(write=True) as txn:
        db = archive.store.db["reading"]
        txn.put(bytes.fromhex(used), readings.encode(marked, cap), db=db)
        txn.put(bytes.fromhex(damaged), kept[used][:2] + b"damaged", db=db)
        stale = readings.decode(kept[other_version], cap)
        stale.body += " otherversionword"
        older = readings.encode(stale, cap)
        txn.put(bytes.fromhex(other_version),
                (readings.READING_VERSION - 1).to_bytes(2, "big") + older[2:], db=db)
    archive.close()
    archiver("reindex", "--data", data)
    # The kept reading is what the document was built from, not the message...
    assert [hit.digest for hit in search(data / "index", "readbackproof").hits] == [used]
    # ...and a damaged one or one of another version is read again from the message.
    assert search(data / "index", "otherversionword").total == 0
    after = documents(data, digests)
    assert after[damaged] == before[damaged] and after[other_version] == before[other_version]
    for digest in (damaged, other_version):
        assert readings.decode(kept_readings(data, [digest])[digest], cap).body


def test_a_deleted_message_takes_its_reading_with_it(imported):
    data, digests, unkept = imported
    victim = next(digest for digest in digests if digest not in unkept)
    archive = Archive(data)
    try:
        assert archive.store.reading(victim) is not None
        assert [meta["digest"] for meta in archive.store.delete([victim])] == [victim]
        assert archive.store.reading(victim) is None
    finally:
        archive.close()


def test_a_reindex_for_a_model_with_a_larger_text_cap_reads_the_attachments_again(tmp_path):
    """A reading cut at the 150's 256 KB per attachment is no reading for a 450 (1 MB): words
    past 256 KB are found after a reindex for the 450, as an import for it finds them."""
    words = " ".join(f"filler{n}" for n in range(60_000))  # about 500 KB
    late = "latecomerword"
    maildir = tmp_path / "mail"
    (maildir / "cur").mkdir(parents=True)
    raw = mail(subject="big", attachments=[(f"{words} {late}", "plain", "big.txt")]).as_bytes()
    (maildir / "cur" / "big.eml").write_bytes(raw)
    data = tmp_path / "data"
    archiver("import", "--data", data, "--model", 150, maildir)
    assert search(data / "index", late).total == 0  # past the 150's cap
    archiver("reindex", "--data", data, "--model", 450)
    assert search(data / "index", late).total == 1
    archiver("reindex", "--data", data, "--model", 150)
    assert search(data / "index", late).total == 0
