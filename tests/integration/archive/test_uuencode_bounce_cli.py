"""Mail from older clients and bounces through the CLI, as an operator meets them: an import
of uuencoded files (inline in a text body, and a part of transfer encoding x-uuencode) and
of delivery status notifications, then `archiver search --json` finds each file by its name
and its text, the body by the words around the files, and each bounce by the bounced
address, its domain, the status code and the diagnostic text; `archiver show` lists the
files as attachments."""
import hashlib
import json
import subprocess

import pytest

from services.cli.main import main
from tests import search_output
from tests.conftest import ARCHIVER
from tests.unit.archive.test_delivery_status import SEVERAL, UTF8, report
from tests.unit.archive.test_extract import pdf_with_text
from tests.unit.archive.test_uuencode import encoded, joined, message

pytestmark = pytest.mark.integration

INLINE = message(joined([b"Hello Bob,", b"the notes and the report:", b"",
                         *encoded(b"meeting notes.txt", b"zanzibar quokka minutes\n"),
                         b"", b"and the report:",
                         *encoded(b"report.pdf", pdf_with_text("zanzibar quokka report"),
                                  b"0644", b""),
                         b"Regards, Old Client"], b"\r\n"), b"\r\n")
PART = (b"From: scanner@example.org\nTo: bob@example.org\nSubject: scan\n"
        b"Message-ID: <scan@example.org>\nMIME-Version: 1.0\n"
        b"Content-Type: multipart/mixed; boundary=XX\n\n"
        b"--XX\nContent-Type: text/plain\n\nscanned document attached\n"
        b"--XX\nContent-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: x-uuencode (old client)\n\n" +
        joined(encoded(b"scan0001.txt", b"wombat invoice 4711\n"), b"\n") + b"--XX--\n")
BOUNCE = report(SEVERAL)
GLOBAL = report(UTF8, b"message/global-delivery-status", b"8bit")
MESSAGES = {"inline": INLINE, "part": PART, "bounce": BOUNCE, "global": GLOBAL}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("uu")
    folder = root / "mail"
    folder.mkdir()
    for name, raw in MESSAGES.items():
        (folder / f"{name}.eml").write_bytes(raw)
    done = subprocess.run([str(ARCHIVER), "import", "--data", str(root / "data"), "--json",
                           str(folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["imported"], summary["indexed"], summary["failed"]) == (4, 4, 0)
    return root / "data"


DIGESTS = {name: hashlib.sha256(raw).hexdigest() for name, raw in MESSAGES.items()}


@pytest.mark.parametrize("query, names", [
    ('filename:"meeting notes.txt"', {"inline"}), ("filename:pdf", {"inline"}),
    ("filename:scan0001.txt", {"part"}), ("attachment:zanzibar", {"inline"}),
    ('"zanzibar quokka report"', {"inline"}), ("wombat", {"part"}),
    ("has:attachment", set(MESSAGES)),
    ("nobody@example.org", {"bounce"}), ("other.example", {"bounce"}),
    ('"550 5.1.1"', {"bounce", "global"}), ("body:5.2.1", {"bounce"}),
    ('"mailbox disabled"', {"bounce"}), ("j\u00f6rg@b\u00fccher.example", {"global"}),
    ("empf\u00e4nger", {"global"}),
])
def test_search_finds_uuencoded_files_and_bounces(archiver, data, query, names):
    assert found(archiver, data, query) == {DIGESTS[name] for name in names}


def found(archiver, data, query) -> set[str]:
    done = archiver("search", query, "--data", data, "--json", check=0)
    return set(search_output.digests(done.stdout))


def test_show_lists_the_uuencoded_files_as_attachments_and_the_body_is_the_text_around(
        archiver, data, capsys):
    assert main(["show", DIGESTS["inline"], "--data", str(data), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(found["number"], found["filename"]) for found in shown["attachments"]] == [
        (1, "meeting notes.txt"), (2, "report.pdf")]
    assert shown["attachment_names"] == ["meeting notes.txt", "report.pdf"]
    assert found(archiver, data, "body:regards") == {DIGESTS["inline"]}
    assert found(archiver, data, "body:zanzibar") == set()
