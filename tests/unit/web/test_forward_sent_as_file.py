"""A message whose whole body is a forwarded message (message/rfc822, message/global)
sent as a file -- Content-Disposition: attachment, or a file name -- is what its mailer
shows: no text and one attached message (review r11 F8: the forward's files were listed
as the message's own and the forward itself nowhere). Every view numbers it so: `show`
and the API list it as file 1 with the forward's files inside it, its download is its
bytes under the listed size, the page has it as part 1 holding the message, no body;
the indexer reads it so (`filename:` finds it, its files in it). A message/* body sent
without either is a wrapper: the message inside is the mail, as before."""
from __future__ import annotations

import base64
import itertools

import pytest

from services.archive.extract import extract
from services.web import forwarded, mail_view, message_tree
from tests.unit.web.test_containers_in_containers import indexed, listed
from tests.unit.web.test_review_r10 import HEAD, _walk, attached, message

INNERS = {
    "text only": b"From: in@example.org\r\nSubject: inner\r\n\r\nthe forwarded text\r\n",
    "with files": message("inner", [attached("inner.bin", b"DATA"),
                                    attached("second.txt", b"second\r\n")]),
    "forwarding in its turn": message("inner", [
        b'Content-Type: message/rfc822\r\nContent-Disposition: attachment; '
        b'filename="deeper.eml"\r\n\r\n' + message("deeper", [attached("deep.bin", b"D")])]),
}
AS_FILE = {  # the fields that make it a file, and the name it is listed under
    "disposition and filename": ('Content-Disposition: attachment; filename="fwd.eml"\r\n',
                                 "fwd.eml"),
    "disposition alone": ("Content-Disposition: attachment\r\n", None),
    "a name only": ('Content-Disposition: inline; filename="named.eml"\r\n', "named.eml"),
}
TYPES = ["message/rfc822", "message/global"]


def whole(inner: bytes, fields: str, content_type: str, encoding: str | None = None) -> bytes:
    head = HEAD.format(s="whole").encode() + f"Content-Type: {content_type}\r\n{fields}".encode()
    if encoding == "base64":  # (RFC 2046 forbids it; mailers do it)
        return head + b"Content-Transfer-Encoding: base64\r\n\r\n" \
            + base64.encodebytes(inner).replace(b"\n", b"\r\n")
    return head + b"\r\n" + inner


CASES = list(itertools.product(INNERS, AS_FILE, TYPES, [None, "base64"]))


@pytest.mark.parametrize("inner,as_file,content_type,encoding", CASES)
def test_a_forward_sent_as_file_is_file_1_in_every_view(inner, as_file, content_type,
                                                        encoding):
    fields, name = AS_FILE[as_file]
    raw = whole(INNERS[inner], fields, content_type, encoding)
    view = mail_view.view(raw)
    [forward] = view.attachments
    assert (forward.number, forward.filename, forward.named) == (1, name or "attachment-1",
                                                                 name is not None)
    assert view.body == ""
    inside = mail_view.files(raw)[0].files
    assert [file.filename for file in inside if file.named] == \
        [file.filename for file in mail_view.files(INNERS[inner])]
    served, data = mail_view.attachment(raw, 1)
    assert data == INNERS[inner] and served.size == forward.size == len(data)
    message = forwarded.parse(raw)
    tree = message_tree.tree(message, None)
    [part] = tree.children
    assert (part.path, part.shown_as, part.size) == ("1", "message", len(data))
    assert message_tree.decoded(message_tree.part_at(message, "1")) == data
    assert message_tree.held_message(message, "1") is not None
    assert message_tree.body(message, "").text is None
    assert message_tree.body(message, "1").text is not None
    assert not extract(raw, 1 << 20).body
    if name is None:  # (the indexer names no container by an unnamed file's made-up name)
        assert [None, *(file.filename for file in _walk(inside))] == \
            [filename for filename, _ in indexed(raw)]
    else:
        assert listed(raw) == indexed(raw)


@pytest.mark.parametrize("inner", list(INNERS))
@pytest.mark.parametrize("content_type", TYPES)
def test_a_forward_not_sent_as_file_is_the_mail(inner, content_type):
    raw = whole(INNERS[inner], "", content_type)
    assert [file.filename for file in mail_view.files(raw)] == \
        [file.filename for file in mail_view.files(INNERS[inner])]
    assert mail_view.view(raw).body == mail_view.view(INNERS[inner]).body
    assert listed(raw) == indexed(raw)
