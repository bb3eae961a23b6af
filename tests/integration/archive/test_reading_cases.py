"""The real-world reading cases (tests/data/cases, from ../shared/cases): stored byte-exact,
shown right, and found through the real indexer (sandboxed extraction pool) and search."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.archive.archive import Archive
from services.archive.search import search
from services.archive.store import Envelope
from services.web import mail_view
from tests.integration.archive.indexed import indexed_archive, names_found

CASES = Path(__file__).parents[2] / "data" / "cases"
FILES = {
    "split": "04-rfc2047-split-multibyte/message.eml",
    "unknown": "10-unknown-charset/message.eml",
    "cp850": "10-unknown-charset/message-cp850.eml",
    "thai": "10-unknown-charset/message-windows-874.eml",
    "forwarded": "12-forwarded-rfc822/message.eml",
    "tnef": "22-tnef-winmail-dat/message.eml",
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    opened = indexed_archive(tmp_path_factory.mktemp("data"),
                             {name: (CASES / path).read_bytes() for name, path in FILES.items()},
                             Envelope("gw@example.com", ["archive@example.com"]))
    yield opened
    opened.close()


def found(archive, query) -> set[str]:
    return set(names_found(archive, query))


def test_every_case_is_stored_byte_exact(archive):
    for name, raw in archive.raws.items():
        assert archive.store.get(archive.digests[name]) == raw


# --- 04: a character split across two encoded words -----------------------------------------

def test_a_split_multibyte_subject_is_shown_whole(archive):
    subject = "Wir wünschen schöne Feiertage und großartige Überraschungen"
    assert archive.store.meta(archive.digests["split"])["subject"] == subject
    headers = dict(mail_view.view(archive.raws["split"]).headers)
    assert headers["Subject"] == subject and "\ufffd" not in headers["Subject"]


@pytest.mark.parametrize("query", ["subject:großartige", "großartige", "überraschungen",
                                   '"großartige Überraschungen"'])
def test_a_split_multibyte_subject_is_found(archive, query):
    assert found(archive, query) == {"split"}


# --- 10: charset labels Python does not know by that name -------------------------------------

def test_unknown_charset_labels_are_shown_right(archive):
    thai, cp850, unknown = (mail_view.view(archive.raws[name])
                            for name in ("thai", "cp850", "unknown"))
    assert dict(thai.headers)["Subject"] == "รายงาน ประจำเดือน"
    assert "สวัสดี ครับ ยอดขาย เพิ่มขึ้น" in thai.body
    assert "Stückzahl Lager Köln: 42 Einheiten, Übersicht folgt." in cp850.body
    assert dict(unknown.headers)["Subject"] == "Rechnung für Januar invoice attached"
    assert "Grüße aus Köln" in unknown.body


@pytest.mark.parametrize("query, expected", [
    ("ยอดขาย", {"thai"}), ("subject:รายงาน", {"thai"}), ("köln", {"cp850", "unknown"}),
    ("übersicht", {"cp850"}), ("stückzahl", {"cp850"}), ("subject:für", {"unknown"}),
    ("grüße", {"unknown"}),
    ("overdue", {"unknown"}),  # only in the HTML alternative (labelled cp-850)
])
def test_unknown_charset_labels_are_found(archive, query, expected):
    assert found(archive, query) == expected


# --- 12: a forwarded message with an attachment ----------------------------------------------

@pytest.mark.parametrize("query", ["zanzibarquartz", "ultraviolet", "filename:inner-budget.csv",
                                   "type:text/csv", "attachment:ultraviolet"])
def test_a_forwarded_message_s_attachment_is_found(archive, query):
    assert found(archive, query) == {"forwarded"}


def show(archive, name: str, *options: str) -> str:
    """`archiver show` as a user runs it."""
    done = subprocess.run([sys.executable, "-m", "services.cli.main", "show", "--data",
                           str(archive.data_dir), *options, archive.digests[name]],
                          capture_output=True, text=True, timeout=120, check=True,
                          env={"ARCHIVER_MODEL": "450", "PATH": "/usr/bin:/bin"})
    return done.stdout


def test_a_forwarded_message_s_attachment_is_listed(archive):
    """The forwarded message is attachment 1 (as the web numbers and serves it), its own
    file listed inside it, unnumbered (review r5 F5); the stored names stay as they were."""
    meta = json.loads(show(archive, "forwarded", "--json"))
    assert [(found["number"], found["filename"], found["content_type"],
             [inner["filename"] for inner in found["files"]])
            for found in meta["attachments"]] == [
        (1, "Original budget thread.eml", "message/rfc822", ["inner-budget.csv"])]
    assert meta["attachment_names"] == ["Original budget thread.eml", "inner-budget.csv"]
    assert re.search(r'^  1  "Original budget thread\.eml"  message/rfc822, [\d,]+ bytes\n'
                     r'      -  "inner-budget\.csv"  text/csv, 37 bytes$',
                     show(archive, "forwarded"), re.MULTILINE)


# --- 22: Outlook TNEF -------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["filename:forecast-q3.txt", "heliotropeforecast",
                                   "filename:winmail.dat", "type:application/ms-tnef"])
def test_the_files_in_winmail_dat_are_found(archive, query):
    assert found(archive, query) == {"tnef"}


def test_the_files_in_winmail_dat_are_listed_and_winmail_dat_kept(archive):
    assert archive.store.meta(archive.digests["tnef"])["attachments"] == [
        "winmail.dat", "forecast-q3.txt"]
    attachments = mail_view.view(archive.raws["tnef"]).attachments
    assert [(a.filename, a.content_type) for a in attachments] == [
        ("winmail.dat", "application/ms-tnef")]
    assert found(archive, "has:extraction-failure") == set()


def test_reindex_brings_messages_read_by_an_older_tree_up_to_date(tmp_path):
    opened = Archive(tmp_path / "data", 450)
    raws = [(CASES / FILES[name]).read_bytes() for name in ("split", "forwarded")]
    split, forward = (opened.store.put(raw, None, "import") for raw in raws)
    # What an older tree recorded: the split character lost, no nested attachment names.
    opened.store.record_indexed(0, {split: [], forward: ["Original budget thread.eml"]}, {
        split: {"subject": "Wir wünschen schöne Feiertage und gro\ufffd\ufffdartige"}})
    opened.close()
    subprocess.run([sys.executable, "-m", "services.cli.main", "reindex", "--json", "--data",
                    str(tmp_path / "data")], check=True, capture_output=True, timeout=300,
                   env={"ARCHIVER_MODEL": "450", "PATH": "/usr/bin:/bin"})
    opened = Archive(tmp_path / "data", 450)
    try:
        assert opened.store.meta(split)["subject"].endswith("großartige Überraschungen")
        assert opened.store.meta(forward)["attachments"] == ["Original budget thread.eml",
                                                              "inner-budget.csv"]
        hits = search(opened.index_dir(), "filename:inner-budget.csv").hits
        assert [hit.digest for hit in hits] == [forward]
        assert search(opened.index_dir(), "subject:großartige").hits[0].subject.endswith(
            "großartige Überraschungen")
    finally:
        opened.close()
