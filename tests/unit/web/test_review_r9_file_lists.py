"""Review r9 of the one numbered file list (show, API, page, downloads): reproducers that
fail on def2f53. Each is generated over a small corpus of its kind.

F1  a zip's members are never listed inside it, though the claim (and the stored names,
    `filename:` searches) have them.
F2  a .eml member of a TNEF winmail.dat is listed as an empty message: its own files are
    not listed, though the indexer reads them (`filename:` finds the message by them).
F3  download N of a forwarded message (message/rfc822) is the parser's re-serialization
    (CRLF made LF, long headers refolded), not the bytes the stored message carries; the
    files listed inside it are sized on the original bytes, so the listing and the
    download disagree.
F4  a listing runs openssl once per S/MIME signed-data attachment, the same object
    repeated too: 1,000 copies of one 1 KB object (a 1.7 MB message) cost 25-50 s per
    show, API call and page view.
F5  `show` prints zero-width and tag characters (Unicode Cf) of a name raw, where the page
    escapes them: two names that read the same on the terminal are different files.
"""
from __future__ import annotations

import base64
import subprocess

import pytest

from services.cli.archive import _file_lines
from services.web import mail_view
from tests import reading_corpus as corpus

HEAD = ("From: sender@example.org\r\nTo: alice@example.com\r\nSubject: {s}\r\n"
        "Date: Fri, 15 Mar 2024 09:00:00 +0000\r\nMessage-ID: <{s}@example.org>\r\n"
        "MIME-Version: 1.0\r\n")


def multipart(parts: list[bytes], boundary: str) -> bytes:
    return (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n').encode() \
        + b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts) \
        + f"--{boundary}--\r\n".encode()


def message(subject: str, parts: list[bytes]) -> bytes:
    return HEAD.format(s=subject).encode() + multipart(
        [b"Content-Type: text/plain\r\n\r\nhello\r\n", *parts], "B" + subject)


def attached(name: str, data: bytes, content_type: str) -> bytes:
    return (f'Content-Type: {content_type}\r\nContent-Disposition: attachment; '
            f'filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n').encode() \
        + base64.encodebytes(data)


def names(files) -> list[str | None]:
    return [file.filename if file.named else None for file in files]


MEMBER_SETS = [[("a.txt", b"a")], [("report.csv", b"x,y\r\n1,2\r\n"), ("notes.txt", b"n")],
               [(f"m{i}.txt", b"%d" % i) for i in range(7)]]


@pytest.mark.parametrize("members", MEMBER_SETS)
@pytest.mark.parametrize("where", ["top", "forwarded", "tnef"])
def test_f1_a_zips_members_are_listed_inside_it(members, where):
    archive = corpus.zip_archive(members)
    part = attached("files.zip", archive, "application/zip")
    if where == "forwarded":
        part = b"Content-Type: message/rfc822\r\n\r\n" + message("zipin", [part])
    elif where == "tnef":
        part = attached("winmail.dat", corpus.tnef([("files.zip", archive)]),
                        "application/ms-tnef")
    files = mail_view.files(message("zip", [part]))
    zips = [file for file in _walk(files) if file.filename == "files.zip"]
    assert zips and names(zips[0].files) == [name for name, _ in members]


@pytest.mark.parametrize("inner_files", [["q.txt"], ["a.pdf", "b.txt"]])
@pytest.mark.parametrize("member_name", ["fwd.eml", "Original thread.eml"])
def test_f2_an_eml_member_of_a_tnef_lists_its_own_files(inner_files, member_name):
    inner = message("intnef", [attached(name, b"data " + name.encode(), "text/plain")
                               for name in inner_files])
    tnef = attached("winmail.dat", corpus.tnef([(member_name, inner)]), "application/ms-tnef")
    [winmail] = mail_view.files(message("tnefeml", [tnef]))
    [eml] = winmail.files
    assert eml.filename == member_name
    assert names(eml.files) == inner_files


INNER_MESSAGES = [
    message("crlf", [attached("data.csv", b"a,b\r\n1,2\r\n", "text/csv")]),
    HEAD.format(s="long").encode() + b"X-Long: " + b"word " * 60 + b"\r\n"
    b"Content-Type: text/plain\r\n\r\nbody\r\n",
    message("eightbit", [b'Content-Type: application/octet-stream\r\nContent-Disposition: '
                         b'attachment; filename="d.bin"\r\nContent-Transfer-Encoding: 8bit\r\n'
                         b"\r\nFrom \xff\xfe\x00binary\r\nline2\r\n"]),
]


@pytest.mark.parametrize("inner", INNER_MESSAGES)
def test_f3_download_of_a_forwarded_message_is_its_bytes(inner):
    raw = message("outer", [b'Content-Type: message/rfc822\r\nContent-Disposition: '
                            b'attachment; filename="fwd.eml"\r\n\r\n' + inner])
    found, data = mail_view.attachment(raw, 1)
    assert data == inner
    assert found.size == len(inner)


def test_f4_one_signed_data_object_repeated_is_opened_once(monkeypatch):
    """Counted, not timed: openssl runs for a message of 40 copies of one signed-data
    object (the hostile case's rule: the cost is once per distinct attachment)."""
    entity = multipart([b"Content-Type: text/plain\r\n\r\nsigned\r\n",
                        attached("s.txt", b"s", "text/plain")], "S")
    signed = (b'Content-Type: application/pkcs7-mime; smime-type=signed-data; '
              b'name="smime.p7m"\r\nContent-Disposition: attachment; filename="smime.p7m"'
              b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              + base64.encodebytes(corpus.smime_signed_data(entity)))
    runs = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run",
                        lambda argv, *a, **k: runs.append(argv) or real_run(argv, *a, **k))
    files = mail_view.files(message("signed40", [signed] * 40))
    assert len(files) == 40 and all(names(file.files) == ["s.txt"] for file in files)
    assert sum("openssl" in argv for argv in runs) <= 1


@pytest.mark.parametrize("invisible", ["\u200b", "\u2060", "\ufeff", "\U000e0041", "\u00ad",
                                       "\u180e"])
def test_f5_show_escapes_a_names_invisible_characters(invisible):
    raw = message("invisible", [attached(f"in{invisible}voice.pdf", b"%PDF", "application/pdf"),
                                attached("invoice.pdf", b"%PDF", "application/pdf")])
    lines = _file_lines([file.as_json() for file in mail_view.files(raw)])
    assert lines[0] != lines[1].replace("2", "1", 1)
    assert invisible not in lines[0]


def _walk(files):
    for file in files:
        yield file
        yield from _walk(file.files)
