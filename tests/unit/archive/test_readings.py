"""services.archive.readings: a message's reading, kept and read back exactly, never one with
failures; and a guard that READING_VERSION moves with what extract() reads."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import zstandard

from services.archive import readings
from services.archive.extract import extract
from services.archive.readings import (READING_VERSION, StaleReading, decode, encode,
                                      is_current, pack)
from tests.bench import corpus
from tests.unit.archive.test_extract import DOCX_TYPE, PDF_TYPE, mail

CAP = 1 << 20
CASES = Path(__file__).parents[2] / "data" / "cases"
# What extract() reads from FINGERPRINT_CORPUS, by READING_VERSION: SHA-256 over every
# message's reading as JSON. When extraction reads differently, this test fails: bump
# READING_VERSION (kept readings are then read again from their messages) and record the
# new fingerprint under it.
FINGERPRINTS = {1: "22d8be9b649d30abb15748cc1ff322a47ac0ab15a358843d76ba209bc6d9cfe1",
                2: "c3631334a5bb734f28cca7bf2d2c34b2809b62c30278328719918ffc5fc1b284",  # + cap_bytes
                # 3: raw header bytes in the declared charset (the corpus has none), and cuts
                3: "84828d3ea90acbe0c04a4fdeba44592c975ec683210bae092cd3eeee6180d342",
                # 4: obsolete white space before a colon read in every header block (the
                # corpus has none: kept readings of mail that has are read again)
                4: "84828d3ea90acbe0c04a4fdeba44592c975ec683210bae092cd3eeee6180d342",
                # 5: the Resent- recipients in the summary (resent_to, resent_cc, resent_bcc)
                5: "dadd915ebbbe1ddf338ce7209dcbc0db7ebc17a5ab57464c855dbac8013e66d3",
                # 6: quoted-printable after a lone CR, base64 after padding (the corpus has none:
                # kept readings of mail that has are read again)
                6: "dadd915ebbbe1ddf338ce7209dcbc0db7ebc17a5ab57464c855dbac8013e66d3",
                # 7: "=" before a soft line break, a CTE token with more after it (none in
                # the corpus: kept readings of mail that has are read again)
                7: "dadd915ebbbe1ddf338ce7209dcbc0db7ebc17a5ab57464c855dbac8013e66d3",
                # 8: mime_parts cuts only a too deep subtree, a message that is a delivery
                # status, no epilogue (none in the corpus: kept readings of mail that has
                # are read again)
                8: "dadd915ebbbe1ddf338ce7209dcbc0db7ebc17a5ab57464c855dbac8013e66d3",
                # 9: uuencoded files as attachments, delivery status fields as body text
                # (none in the corpus: kept readings of mail that has are read again)
                9: "dadd915ebbbe1ddf338ce7209dcbc0db7ebc17a5ab57464c855dbac8013e66d3",
                # 10: mime_parts' cut text a base64 text part, runs of delimiter lines
                # counted (none in the corpus: kept readings of mail that has are read again)
                10: "dadd915ebbbe1ddf338ce7209dcbc0db7ebc17a5ab57464c855dbac8013e66d3",
                # 11: an x-uuencode part past LINE_CHECKS, past a header cut too (none in
                # the corpus: kept readings of mail that has are read again)
                11: "dadd915ebbbe1ddf338ce7209dcbc0db7ebc17a5ab57464c855dbac8013e66d3"}
FINGERPRINT_MESSAGES = 120


@pytest.fixture(scope="module")
def bench_messages(tmp_path_factory) -> list[bytes]:
    """A seeded bench corpus (PDF, DOCX, XLSX, forwarded messages, many charsets) and the
    real-world cases."""
    directory = tmp_path_factory.mktemp("corpus")
    paths = corpus.generate(directory, FINGERPRINT_MESSAGES, seed=7)
    cases = sorted(path for path in CASES.rglob("*") if path.suffix in (".eml", ".mbox"))
    return [path.read_bytes() for path in [*paths, *cases]]


def test_every_reading_without_failures_reads_back_exactly(bench_messages):
    kept = 0
    for raw in bench_messages:
        extracted = extract(raw, CAP)
        data = encode(extracted, CAP)
        if extracted.errors or not extracted.attachments:
            assert data is None
            data = pack(extracted, CAP)
        else:
            kept += 1
        assert decode(data, CAP) == extracted
    assert kept >= FINGERPRINT_MESSAGES // 4


def test_mail_without_attachments_keeps_no_reading():
    """Reading it again costs little; its reading, short text compressed alone, would take
    more room than the message itself."""
    extracted = extract(mail(body="Just a conversation, no files.").as_bytes(), CAP)
    assert not extracted.failures and encode(extracted, CAP) is None


def test_a_reading_with_a_failure_is_not_kept():
    raw = mail(attachments=[(b"%PDF-1.4 this is no pdf", PDF_TYPE, "broken.pdf"),
                            ("fine words", "plain", "notes.txt")]).as_bytes()
    extracted = extract(raw, CAP)
    assert extracted.failures and encode(extracted, CAP) is None


def test_text_no_utf8_can_carry_reads_back():
    raw = mail(body="caf\u00e9 and \u4f1a\u8b70 and \U0001f600").as_bytes()
    extracted = extract(raw, CAP)
    extracted.body += " \ud800 lone"  # as a broken decoder could leave them
    extracted.summary = dataclasses.replace(extracted.summary, subject="caf\udce9")
    assert decode(pack(extracted, CAP), CAP) == extracted


def test_a_reading_whose_text_was_dropped_is_not_kept():
    extracted = extract(mail(attachments=[("words", "plain", "a.txt")]).as_bytes(), CAP)
    assert encode(extracted.without_text(), CAP) is None


def test_a_reading_of_another_version_or_damaged_is_stale():
    data = pack(extract(mail().as_bytes(), CAP), CAP)
    assert is_current(data)
    other = (READING_VERSION + 1).to_bytes(2, "big") + data[2:]
    assert not is_current(other)
    for stale in (other, data[:2] + b"not zstd", data[:2] + zstandard.compress(b"[1, 2]"),
                  data[:2] + zstandard.compress(b'{"summary": {}}'), b"", b"\x00"):
        with pytest.raises(StaleReading):
            decode(stale, CAP)


def test_the_reading_version_moves_with_what_extract_reads(bench_messages):
    fingerprint = hashlib.sha256()
    for raw in bench_messages[:FINGERPRINT_MESSAGES]:
        extracted = extract(raw, CAP)
        data = pack(extracted, CAP) if not extracted.errors else None
        record = json.loads(zstandard.decompress(data[2:])) if data else None
        fingerprint.update(json.dumps(record, sort_keys=True).encode("utf-8", "surrogatepass"))
    assert FINGERPRINTS.get(READING_VERSION) == fingerprint.hexdigest(), (
        "extract() reads the fingerprint corpus differently from what READING_VERSION "
        f"{READING_VERSION} recorded: bump services.archive.readings.READING_VERSION and "
        f"record {fingerprint.hexdigest()} for it in FINGERPRINTS")


def test_a_reading_capped_for_another_model_is_stale():
    """The text cap is the model's (attachment_text_kb): a reading cut at a 150's 256 KB
    must not stand for what a 450 (1 MB) reads, nor the other way round."""
    extracted = extract(mail(attachments=[("words " * 100, "plain", "a.txt")]).as_bytes(), CAP)
    data = encode(extracted, CAP)
    assert decode(data, CAP) == extracted
    for other in (CAP // 4, CAP * 4):
        with pytest.raises(StaleReading):
            decode(data, other)


def kept_record(**changes) -> bytes:
    """A kept reading of a message with an attachment, its JSON record changed."""
    extracted = extract(mail(attachments=[("words", "plain", "a.txt")]).as_bytes(), CAP)
    record = json.loads(zstandard.decompress(encode(extracted, CAP)[2:]))
    for path, value in changes.items():
        *parents, name = path.split("__")
        target = record
        for parent in parents:
            target = target[int(parent)] if parent.isdigit() else target[parent]
        target[name] = value
    return encode(extracted, CAP)[:2] + zstandard.compress(json.dumps(record).encode())


@pytest.mark.parametrize("changes", [
    {"body": 12345}, {"body": None}, {"attachments": "a.txt"}, {"attachments": [1]},
    {"encrypted": "yes"}, {"summary": []}, {"summary__subject": ["a", "b"]},
    {"summary__sent_date": "yesterday"}, {"summary__to": "bob@example.org"},
    {"summary__to": [None]}, {"summary__has_attachment": 1},
    {"summary__header_addresses": {"from": "alice@example.org"}},
    {"attachments__0__text": ["t"]}, {"attachments__0__filename": 5},
    {"attachments__0__mime_type": None}, {"attachments__0__encrypted": "no"},
    {"summary__extra": 1}, {"attachments__0__extra": 1},
])
def test_a_reading_of_the_wrong_shape_is_stale_not_an_extracted_that_breaks_indexing(changes):
    with pytest.raises(StaleReading):
        decode(kept_record(**changes), CAP)


def test_a_damaged_byte_anywhere_is_stale_never_other_text():
    extracted = extract(mail(body="apple banana cherry " * 20).as_bytes(), CAP)
    data = pack(extracted, CAP)
    for position in range(2, len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x20
        try:
            assert decode(bytes(damaged), CAP) == extracted, f"byte {position}"
        except StaleReading:
            pass


def test_a_reading_cut_by_the_cap_is_kept_with_its_cut():
    """A cut is no error: the same cap cuts the same text every time, so the reading is kept,
    and the cut comes back with it (the message stays flagged after a reindex)."""
    raw = mail(attachments=[("word " * CAP, "plain", "long.txt")]).as_bytes()
    extracted = extract(raw, CAP)
    assert not extracted.errors and extracted.attachments[0].cut
    assert extracted.failures == [f"long.txt: {extracted.attachments[0].cut}"]
    assert decode(encode(extracted, CAP), CAP).failures == extracted.failures
