"""A message whose whole body is one file (not multipart: a scanner's PDF, a photo, a named
file) is read alike by every view: extraction reads it as the message's one attachment and
the indexer records its name, so the web view (services.web.mail_view: the API's list and
downloads) has it as attachment 1 and no body, and the message tree as part 1. Generated
over the family: types, with and without a name, with and without a disposition, each
transfer encoding; attached-message bodies and multiparts of one leaf beside them."""
from __future__ import annotations

import base64
import itertools
import quopri

import pytest

from services.archive.extract import extract
from services.archive.mime import parse_message, summarize_message
from services.archive.store import NotFound
from services.web import mail_view, message_tree

HEAD = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
ENCODINGS = {"base64": base64.encodebytes, "quoted-printable": quopri.encodestring,
             "8bit": bytes, "7bit": bytes}
BINARY = b"%PDF-1.4\n\x00\x01\x80\xfe\xff binary\n"
TEXT = b"Words of a file\n"
# (type, what its body is): binary types with binary bytes, text types with text
TYPES = [("application/pdf", BINARY), ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
         ("application/octet-stream", BINARY), ("text/plain", TEXT), ("text/csv", TEXT),
         ("text/html", b"<p>Words of a page</p>\n")]
NAMES = [None, "file.dat"]
DISPOSITIONS = [None, "attachment", 'attachment; filename="given.dat"', "inline"]


def whole_body(content_type: str, name: str | None, disposition: str | None,
               encoding: str, data: bytes) -> bytes:
    named = f"; name={name}" if name else ""
    disposed = f"Content-Disposition: {disposition}\r\n" if disposition else ""
    return (HEAD + f"Content-Type: {content_type}{named}\r\n{disposed}"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode()
            + ENCODINGS[encoding](data))


def family():
    for (content_type, data), name, disposition, encoding in itertools.product(
            TYPES, NAMES, DISPOSITIONS, ("base64", "quoted-printable", "8bit")):
        yield pytest.param(whole_body(content_type, name, disposition, encoding, data), data,
                           id=f"{content_type}-{name}-{disposition}-{encoding}")


def views(raw: bytes):
    """(the web view, the attached parts of the message tree, extraction, the summary)."""
    tree = message_tree.tree(parse_message(raw), [])
    attached = [part for part in tree.walk(into_messages=False) if part.path and part.attachment]
    return mail_view.view(raw), attached, extract(raw, 1 << 20), \
        summarize_message(parse_message(raw))


@pytest.mark.parametrize("raw, data", family())
def test_every_view_agrees_on_a_whole_body_file(raw, data):
    shown, attached, extracted, summary = views(raw)
    files = [entry for entry in extracted.attachments if entry.container is None]
    assert len(shown.attachments) == len(attached) == len(files) <= 1
    assert summary.has_attachment == bool(files)
    if not files:  # body text (text/plain, text/csv, text/html inline and nameless)
        assert extracted.body.strip() and not shown.attachments
        return
    listed = shown.attachments[0]
    assert listed.number == 1 and attached[0].path == "1"
    assert listed.filename == (files[0].filename or "attachment-1")
    assert attached[0].filename == files[0].filename
    assert summary.attachment_names == ([files[0].filename] if files[0].filename else [])
    assert mail_view.attachment(raw, 1)[1] == data and listed.size == len(data)
    assert message_tree.decoded(message_tree.part_at(parse_message(raw), "1")) == data
    assert shown.body == "" and not extracted.body.strip()  # the file is no body text
    body = message_tree.body(parse_message(raw))
    assert not body.text and not body.html
    with pytest.raises(NotFound):
        mail_view.attachment(raw, 2)


def attached_message(encoding: str) -> bytes:
    inner = b"Subject: inner\r\nContent-Type: text/plain\r\n\r\nInner words caf\xc3\xa9\r\n"
    return HEAD + (f"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: {encoding}"
                   "\r\n\r\n").encode() + inner


def multipart_of_one(content_type: str, data: bytes, name: str | None) -> bytes:
    named = f'; filename="{name}"' if name else ""
    return (HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            + f"Content-Type: {content_type}\r\nContent-Disposition: attachment{named}\r\n"
              "Content-Transfer-Encoding: base64\r\n\r\n".encode()
            + base64.encodebytes(data) + b"--b--\r\n")


@pytest.mark.parametrize("encoding", ["7bit", "8bit"])
def test_a_message_whose_body_is_a_message_shows_its_text_and_lists_no_file(encoding):
    raw = attached_message(encoding)
    shown, attached, extracted, _ = views(raw)
    assert shown.attachments == [] and attached == [] and extracted.attachments == []
    assert "Inner words café" in shown.body and "Inner words café" in extracted.body


@pytest.mark.parametrize("content_type, data", TYPES)
@pytest.mark.parametrize("name", NAMES)
def test_a_multipart_of_one_file_lists_it_as_1(content_type, data, name):
    raw = multipart_of_one(content_type, data, name)
    shown, attached, extracted, _ = views(raw)
    assert [(a.number, a.filename) for a in shown.attachments] == [(1, name or "attachment-1")]
    assert [(p.path, p.filename) for p in attached] == [("1", name)]
    assert [entry.filename for entry in extracted.attachments] == [name]
    assert mail_view.attachment(raw, 1)[1] == data and shown.body == ""
