"""The files show and the API list inside a file are those the message page lists there
(review r7): inside an S/MIME opaque-signed object and a uuencoded .eml too (F2), no
deeper than the page's tree (F3), and an unnamed one is not given a name that is another
file's download (F5)."""
from __future__ import annotations

import base64
import binascii

import pytest

from services.web import mail_view, message_tree
from services.web.forwarded import parse as forwarded_parse
from tests import reading_corpus as corpus
from tests.unit.web.test_file_listing_costs import HEAD, forwarded, message, multipart, named

INNER = HEAD.format(s="inner").encode() + multipart(
    [b"Content-Type: text/plain\n\ninner\n", named("deep.pdf", b"%PDF-1.4 deep")], "I")


def listed_names(files: list[dict]) -> list[str]:
    """The names of the named files listed, inside others too, in order."""
    names = []
    for file in files:
        names += [file["filename"]] if file["named"] else []
        names += listed_names(file["files"])
    return names


def page_names(raw: bytes) -> list[str]:
    def walk(node):
        yield from [node.filename] if node.filename and node.attachment else []
        for child in node.children:
            yield from walk(child)
    return list(walk(message_tree.tree(forwarded_parse(raw), None)))  # (as the page reads)


def uuencoded(name: str, data: bytes) -> bytes:
    return f"begin 644 {name}\n".encode() + b"".join(
        binascii.b2a_uu(data[at:at + 45]) for at in range(0, len(data), 45)) + b"`\nend\n"


def signed_whole_body(entity: bytes) -> bytes:
    return HEAD.format(s="signed").encode() + (
        b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\n'
        b'Content-Disposition: attachment; filename="smime.p7m"\n'
        b"Content-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(corpus.smime_signed_data(entity)))


CARRIERS = {
    "signed whole body": signed_whole_body(multipart(
        [b"Content-Type: text/plain\n\nsigned\n", named("deep.pdf", b"%PDF-1.4 x")], "S")),
    "signed part": message("signedpart", [
        b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\n'
        b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(corpus.smime_signed_data(
            multipart([b"Content-Type: text/plain\n\ns\n", forwarded(INNER, False)], "S")))]),
    "uuencoded eml in body text": message("uueml", [
        b"Content-Type: text/plain\n\nsee\n" + uuencoded("fwd.eml", INNER)]),
    "x-uuencode forward": message("xuu", [
        b"Content-Type: message/rfc822\nContent-Transfer-Encoding: x-uuencode\n\n"
        + uuencoded("forward.eml", INNER)]),
    "base64 forward": message("b64", [forwarded(INNER, True)]),
}


@pytest.mark.parametrize("kind", CARRIERS)
def test_the_files_inside_are_listed_where_the_page_lists_them(kind):
    raw = CARRIERS[kind]
    assert "deep.pdf" in page_names(raw)
    files = mail_view.view(raw).as_json()["attachments"]
    assert listed_names(files) == page_names(raw)
    assert "deep.pdf" not in [file["filename"] for file in files]  # (inside, unnumbered)


def deep(levels: int, encoded_every: int) -> bytes:
    """A message forwarded `levels` deep with a .bin file at each level, every
    `encoded_every`th forward sent base64 (the parser's nesting restarts in it; each
    grows the message by a third: not too many)."""
    inner = message("d0", [named("bottom.bin", b"b")])
    for level in range(1, levels):
        inner = message(f"d{level}", [named(f"f{level}.bin", b"x"),
                                      forwarded(inner, level % encoded_every == 0)])
    return inner


@pytest.mark.parametrize("levels, encoded_every", [(10, 3), (40, 7), (70, 20), (90, 20),
                                                   (90, 5), (64, 4), (120, 30)])
def test_forwarded_files_are_listed_no_deeper_than_the_page(levels, encoded_every):
    raw = deep(levels, encoded_every)
    page = [name for name in page_names(raw) if name.endswith(".bin")]
    listed = [name for name in listed_names(mail_view.view(raw).as_json()["attachments"])
              if name.endswith(".bin")]
    assert listed == page


def test_an_unnamed_file_inside_a_forward_has_no_name_of_a_download():
    """The inner message's count ("attachment-1") named the outer message's download 1."""
    unnamed = b"Content-Type: application/octet-stream\n\nsecret\n"
    inner = HEAD.format(s="in").encode() + multipart(
        [b"Content-Type: text/plain\n\nx\n", unnamed, forwarded(message("in2", [unnamed]),
                                                                False)], "I")
    raw = message("outer", [unnamed, forwarded(inner, False), unnamed])
    files = mail_view.view(raw).as_json()["attachments"]
    assert [file["filename"] for file in files] == \
        ["attachment-1", "attachment-2", "attachment-3"]
    inside = files[1]["files"]
    assert [(file["filename"], file["named"]) for file in inside] == [(None, False)] * 2
    assert [(file["filename"], file["named"]) for file in inside[1]["files"]] == [(None, False)]
