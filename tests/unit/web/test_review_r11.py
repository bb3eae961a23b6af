"""Review r11 of a message's files (TNEF titles, unreadable members, forwards, names):
reproducers, each asserting the promised behaviour, so that a failing one shows a finding.
Generated over small corpora of their kind; counted, never timed.

F1  one TNEF file whose name tnef cannot write (a title or long file name over 255 bytes:
    Windows allows 255 UTF-16 units, 200 "é" are 400 UTF-8 bytes) makes the whole
    winmail.dat unreadable: every other file in it is hidden from the list and the index.
F2  one TNEF file over the read limit (32 MiB, or what earlier containers of the message
    left of its 128 MiB) makes tnef refuse the stream (--maxsize): the other files are
    hidden, where the promise is that file listed "unreadable" and the rest read.
F3  a TNEF stream damaged after its first files (cut short, a bad checksum, trailing
    bytes) hides the files tnef wrote before the damage.
F4  a file without a title is listed under the name tnef makes up ("tnef-tmp"), `named`,
    like a file the sender titled so.
F5  an attAttachTitle is text in the stream's OEM code page (attOemCodepage, [MS-OXTNEF]
    2.1.3.3), read as UTF-8: "été.doc" (cp1252) is listed as "\\ufffdt\\ufffd.doc".
F6  a winmail.dat inside a zip is opened by the indexer (filename: finds its files) but the
    views list it as a plain file with nothing inside.
F7  the page writes a subject's U+2028, U+2029, NEL and C1 controls raw (`show` escapes them).
F8  a message whose whole body is a forwarded message (message/rfc822, sent as an
    attachment) lists the forward's files but not the forwarded message itself.
"""
from __future__ import annotations

import struct

import pytest

from services.archive import containers
from services.archive.extract import extract
from services.web import formatting, mail_view
from tests import reading_corpus as corpus
from tests.unit.web.test_review_r10 import _walk, attached, message

OWN = b"the file's own bytes"


def tnef_attachment(title: bytes | None, data: bytes, long_name: str | None = None) -> bytes:
    """One attachment of a TNEF stream ([MS-OXTNEF] 2.1.3.3): attRendData, attAttachTitle
    (raw bytes, NUL included), attAttachData and, with long_name, an attAttachment holding
    PR_ATTACH_LONG_FILENAME as PT_UNICODE."""
    out = corpus.tnef_attribute(corpus.LVL_ATTACHMENT, corpus.ATT_ATTACH_REND_DATA,
                                struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0))
    if title is not None:
        out += corpus.tnef_attribute(corpus.LVL_ATTACHMENT, corpus.ATT_ATTACH_TITLE, title)
    out += corpus.tnef_attribute(corpus.LVL_ATTACHMENT, corpus.ATT_ATTACH_DATA, data)
    if long_name is not None:
        text = long_name.encode("utf-16-le") + b"\0\0"
        prop = struct.pack("<HHII", 0x001F, 0x3707, 1, len(text)) + text \
            + b"\0" * (-len(text) % 4)
        out += corpus.tnef_attribute(corpus.LVL_ATTACHMENT, 0x00069005,
                                     struct.pack("<I", 1) + prop)
    return out


def tnef_stream(attachments: list[bytes]) -> bytes:
    return corpus.tnef([]) + b"".join(attachments)


def tnef_message(winmail: bytes, tag: str = "tnef") -> bytes:
    return message(tag, [attached("winmail.dat", winmail, "application/ms-tnef")])


def listed_inside(raw: bytes) -> list[tuple[str, int | None]]:
    [winmail] = mail_view.files(raw)
    return [(file.filename, file.size) for file in winmail.files]


# -- F1 ------------------------------------------------------------------------------------

LONG_NAMES = {
    "title of 256 bytes": (b"N" * 256 + b"\0", None),
    "title of 300 bytes": (b"A" * 300 + b"\0", None),
    "title of 5000 bytes": (b"B" * 5000 + b"\0", None),
    "long file name of 200 e-acute (400 UTF-8 bytes)": (b"short.txt\0", "\u00e9" * 200),
    "long file name of 130 CJK (390 UTF-8 bytes)": (b"short.txt\0", "\u6587" * 130),
    "long file name of 300 letters": (b"short.txt\0", "L" * 300),
}


@pytest.mark.parametrize("case", list(LONG_NAMES))
def test_f1_a_long_tnef_name_hides_no_other_file(case):
    title, long_name = LONG_NAMES[case]
    raw = tnef_message(tnef_stream([tnef_attachment(b"a.txt\0", b"harmless"),
                                    tnef_attachment(title, OWN, long_name),
                                    tnef_attachment(b"z.bin\0", b"zzz")]))
    listed = listed_inside(raw)
    assert ("a.txt", 8) in listed and ("z.bin", 3) in listed
    assert len(listed) == 3  # the long-named file listed too (read, or unreadable)
    indexed = {entry.filename for entry in extract(raw, 1 << 20).attachments}
    assert {"a.txt", "z.bin"} <= indexed


# -- F2 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("large", [701, 1000, 5000])
def test_f2_a_tnef_file_over_the_read_limit_is_listed_unreadable_beside_the_rest(
        large, monkeypatch):
    """The message's containers may expand 700 bytes (as test_unreadable_members does):
    the large file is over it from the start; the others fit."""
    made = containers.ReadBudget
    monkeypatch.setattr(containers, "ReadBudget", lambda text_bytes, **limits: made(
        text_bytes, **{**limits, "read_bytes": 700}))
    raw = tnef_message(corpus.tnef([("small.bin", b"s" * 100), ("large.bin", b"x" * large),
                                    ("after.txt", b"after")], body="b"))
    inside = mail_view.view(raw).as_json()["attachments"][0]["files"]
    assert [(file["filename"], file["size"]) for file in inside] == [
        ("small.bin", 100), ("large.bin", None), ("after.txt", 5)]
    assert inside[1].get("unreadable")


# -- F3 ------------------------------------------------------------------------------------

def _damaged(kind: str) -> bytes:
    whole = corpus.tnef([("one.txt", b"ONE"), ("two.txt", b"TWO"), ("three.txt", b"3" * 250)])
    if kind == "cut in the last file":
        return whole[:-100]
    if kind == "cut in the last checksum":
        return whole[:-1]
    if kind == "last checksum wrong":
        return whole[:-1] + bytes([whole[-1] ^ 0xFF])
    return whole + b"\0trailing"


@pytest.mark.parametrize("kind", ["cut in the last file", "cut in the last checksum",
                                  "last checksum wrong", "bytes after the stream"])
def test_f3_a_damaged_tnef_keeps_the_files_before_the_damage(kind):
    listed = listed_inside(tnef_message(_damaged(kind)))
    assert listed[:2] == [("one.txt", 3), ("two.txt", 3)]


# -- F4 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("untitled", [None, b"\0", b""])
def test_f4_an_untitled_tnef_file_is_not_given_tnefs_made_up_name(untitled):
    raw = tnef_message(tnef_stream([tnef_attachment(b"tnef-tmp\0", b"titled so"),
                                    tnef_attachment(untitled, b"no title")]))
    [winmail] = mail_view.files(raw)
    titled, untitled_file = winmail.files
    assert (titled.filename, titled.named) == ("tnef-tmp", True)
    assert not untitled_file.named and untitled_file.size == len(b"no title")


# -- F5 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("title", ["\u00e9t\u00e9.doc", "Gr\u00fc\u00dfe.txt", "na\u00efve\u2013plan.pdf",
                                   "\u20ac100.xls"])
def test_f5_a_tnef_title_is_read_in_the_streams_code_page(title):
    raw = tnef_message(corpus.tnef([(title, OWN)]))  # attOemCodepage 1252, title cp1252
    assert listed_inside(raw) == [(title, len(OWN))]


# -- F6 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("inner", [["t.txt"], ["a.txt", "b.csv"]])
def test_f6_a_winmail_dat_in_a_zip_lists_what_the_index_has(inner):
    winmail = corpus.tnef([(name, b"data " + name.encode()) for name in inner])
    archive = corpus.zip_archive([("winmail.dat", winmail), ("other.txt", b"o")])
    raw = message("ziptnef", [attached("outer.zip", archive, "application/zip")])
    indexed = [entry.filename for entry in extract(raw, 1 << 20).attachments
               if entry.container == "winmail.dat"]
    assert indexed == inner  # the indexer opens it ...
    listed = [file.filename for file in _walk(mail_view.files(raw))]
    assert all(name in listed for name in inner)  # ... the views should list it so


# -- F7 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x9b"])
def test_f7_the_page_never_writes_a_subjects_line_break_or_control_raw(char):
    """The message page's h1, subject row and the search results write a subject with the
    `isolated` filter (templates/message.html, search.html)."""
    shown = str(formatting.isolated(f"invoice{char}paid \U0001f468\u200d\U0001f469"))
    assert char not in shown and "\U0001f468\u200d\U0001f469" in shown


# -- F8 ------------------------------------------------------------------------------------

def test_f8_a_message_that_is_a_forward_lists_the_forward():
    inner = (b"From: in@example.org\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=IN\r\n\r\n--IN\r\n"
             b"Content-Type: text/plain\r\n\r\nin\r\n--IN\r\n"
             b"Content-Type: application/octet-stream\r\n"
             b'Content-Disposition: attachment; filename="inner.bin"\r\n\r\nDATA\r\n--IN--\r\n')
    raw = (b"From: s@example.org\r\nTo: alice@example.com\r\nSubject: whole\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n"
           b'Content-Disposition: attachment; filename="fwd.eml"\r\n\r\n') + inner
    listed = mail_view.files(raw)
    assert [file.filename for file in listed] == ["fwd.eml"]
    assert [file.filename for file in listed[0].files if file.named] == ["inner.bin"]
