"""`make bench`'s attachment_cost line: what reading attachments costs an import, from our
import and the same with attached files left unread (tests.bench.unread_attachments). The
numbers are not judged; what is checked is that the unread import reads no attached file
(in its workers too) but still reads forwarded messages, and that the line's arithmetic
is of the two runs."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from services.archive import extract
from tests.bench import corpus as corpus_module
from tests.bench import unread_attachments
from tests.bench.run import archive_hits, attachment_costs, file_marker_hits

ROOT = Path(__file__).parents[3]
# A message with a text file, a PDF-named file and a forwarded message that carries a file.
MESSAGE = b"""From: a@example.org\r
To: b@example.com\r
Subject: files\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=b\r
\r
--b\r
Content-Type: text/plain\r
\r
body bodyword\r
--b\r
Content-Type: text/plain\r
Content-Disposition: attachment; filename="notes.txt"\r
\r
filedword in the file\r
--b\r
Content-Type: application/octet-stream\r
Content-Disposition: attachment; filename="scan.pdf"\r
\r
not a pdf at all\r
--b\r
Content-Type: message/rfc822\r
Content-Disposition: attachment\r
\r
From: c@example.org\r
Subject: forwarded\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=i\r
\r
--i\r
Content-Type: text/plain\r
\r
forwardword\r
--i\r
Content-Type: text/plain\r
Content-Disposition: attachment; filename="inner.txt"\r
\r
innerword\r
--i--\r
--b--\r
"""


def texts(extracted: extract.Extracted) -> str:
    return " ".join([extracted.body, *(a.text for a in extracted.attachments)])


def test_unread_attachments_are_listed_by_name_and_type_but_forwards_are_read():
    read = extract.extract(MESSAGE, 100_000)
    assert {"filedword", "forwardword", "innerword"} <= set(texts(read).split())
    with unread_attachments.attachments_unread():
        unread = extract.extract(MESSAGE, 100_000)
    words = set(texts(unread).split())
    assert {"bodyword", "forwardword"} <= words
    assert not {"filedword", "innerword"} & words
    files = {a.filename: a for a in unread.attachments}
    assert files["notes.txt"].mime_type == "text/plain" and files["notes.txt"].text == ""
    # a generic declaration takes its name's type, as extraction's first guess does
    assert files["scan.pdf"].mime_type == extract.PDF_MIME
    assert files["inner.txt"].container is not None  # found inside the forward
    # the switch ends with the block, and importing the module alone sets none
    assert extract._attachment is unread_attachments._read_attachment
    assert "filedword" in texts(extract.extract(MESSAGE, 100_000)).split()


@pytest.mark.slow  # an import of 40 messages: some 5 s
def test_the_unread_import_reads_no_attached_file_in_its_workers(tmp_path):
    maildir = tmp_path / "corpus"
    corpus = corpus_module.generate(maildir, 40)
    in_files = sum(corpus.markers[word] for word in unread_attachments.MARKERS_IN_FILES)
    assert in_files  # (seed 1's first 40 carry some: else this would check nothing)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(unread_attachments.command(
        ["import", "--json", "--data", str(tmp_path / "unread"), str(maildir)]),
        env=environment, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["indexed"] == 40
    assert file_marker_hits(tmp_path / "unread") == 0
    assert archive_hits(tmp_path / "unread", "nestorquay") == corpus.markers["nestorquay"]


def test_the_line_is_the_difference_of_the_two_imports():
    read = {"msgs_per_s": 100.0, "tree_cpu_seconds": 50.0,
            "tree_cpu_by_role": {"main": 10.0, "workers": 35.0, "tools": 4.0,
                                 "unattributed": 1.0}}
    unread = {"msgs_per_s": 160.0, "tree_cpu_seconds": 30.0,
              "tree_cpu_by_role": {"main": 9.0, "workers": 20.0, "tools": 0.0,
                                   "unattributed": 1.0}}
    line = attachment_costs(read, unread, notmuch_rate=400.0, mu_rate=800.0)
    assert line["reading_tree_cpu_seconds"] == 20.0
    assert line["reading_tree_cpu_share"] == 0.4
    assert line["reading_cpu_by_role"] == {"main": 1.0, "workers": 15.0, "tools": 4.0,
                                           "unattributed": 0.0}
    assert sum(line["reading_cpu_by_role"].values()) == line["reading_tree_cpu_seconds"]
    assert (line["read_msgs_per_s"], line["unread_msgs_per_s"]) == (100.0, 160.0)
    assert line["unread_over_read"] == 1.6
    assert line["read_over_notmuch_new"] == 0.25 and line["unread_over_notmuch_new"] == 0.4
    assert line["notmuch_new_msgs_per_s"] == 400.0 and line["mu_index_msgs_per_s"] == 800.0
    json.dumps(line)  # printable as a JSON line


def test_a_read_import_of_no_cpu_has_no_share_and_noise_is_not_hidden():
    read = {"msgs_per_s": 0.0, "tree_cpu_seconds": 0.0, "tree_cpu_by_role": {"main": 0.0}}
    unread = {"msgs_per_s": 1.0, "tree_cpu_seconds": 0.5, "tree_cpu_by_role": {"main": 0.5}}
    line = attachment_costs(read, unread, notmuch_rate=0.0, mu_rate=0.0)
    assert line["reading_tree_cpu_share"] is None and line["unread_over_read"] is None
    assert line["read_over_notmuch_new"] is None
    assert line["reading_tree_cpu_seconds"] == -0.5  # said as measured, not clamped
