"""Review h174: the media type read from a Content-Type (services.archive.media_types) is a
clean `type/subtype` (RFC 2045 5.1 tokens, RFC 6838 4.2 lengths) or text/plain (5.2) for
every part of every hostile shape, in what extract() records and in what the parser (and
so the web's listing) reads; the message is still read, and a type that is clean once its
folds, blanks and comments are read as RFC 2045 says keeps its part what it is."""
from __future__ import annotations

import base64

import pytest

from services.archive import extract, mime, mime_parts
from tests.unit.archive.content_type_shapes import (CLEAN_TYPE, HEAD, POSITIONS, RECOGNISED,
                                                    RECOGNISED_WITH_PARAMETERS, SHAPES,
                                                    hostile_message)

CAP = 1 << 20
WORD = "plainword"
MAX_PARTS = 300
MAX_DEPTH = 20


def every_recorded_type(raw: bytes) -> list[str]:
    """What extract() records of each attachment (its type, its declared type), and each
    part's type as the parser (and so the web's listings) reads it."""
    extracted = extract.extract(raw, CAP)
    recorded = [a.mime_type for a in extracted.attachments]
    recorded += [a.declared_type for a in extracted.attachments if a.declared_type]
    return recorded + [part.get_content_type()
                       for part in mime.iter_parts(mime.parse_message(raw))]


def all_text(extracted: extract.Extracted) -> str:
    return " ".join([extracted.body, *(a.text for a in extracted.attachments)])


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_recorded_type_is_a_clean_type_and_subtype(shape, position):
    raw = hostile_message(shape, position, WORD)
    unclean = [kind for kind in every_recorded_type(raw) if not CLEAN_TYPE.fullmatch(kind)]
    assert not unclean, [kind[:80] for kind in unclean]
    assert WORD in all_text(extract.extract(raw, CAP)).split()


@pytest.mark.parametrize("shape", RECOGNISED)
def test_an_attached_message_whose_type_reads_clean_is_still_an_attached_message(shape):
    """Its subject and body are read as the attached message's, as for a clean field."""
    extracted = extract.extract(hostile_message(shape, "message", WORD), CAP)
    forwarded = [a for a in extracted.attachments if a.mime_type == "message/rfc822"]
    assert len(forwarded) == 1
    assert f"innersubject{WORD}" in forwarded[0].text
    assert f"inner{WORD}" in forwarded[0].text.split()


@pytest.fixture
def lower_limits(monkeypatch):
    monkeypatch.setattr(mime_parts, "MAX_PARTS", MAX_PARTS)
    monkeypatch.setattr(mime_parts, "MAX_DEPTH", MAX_DEPTH)


@pytest.mark.parametrize("shape", RECOGNISED_WITH_PARAMETERS)
def test_a_multipart_whose_type_reads_clean_is_read_and_walked_as_one(shape, lower_limits):
    """Its parts are parts (its text part body text, its PDF a part of its own), and
    header_blocks' walk reads the same type as the parser: a multipart of many parts it
    took for text would give the parser every one (the blow-up mime_parts bounds)."""
    raw = hostile_message(shape, "multipart", WORD)
    many = raw.replace(b"--inner--", b"--inner\r\n\r\nx\r\n" * (3 * MAX_PARTS) + b"--inner--")
    parsed = [part.get_content_type() for part in mime.iter_parts(mime.parse_message(raw))]
    assert parsed[-2:] == ["text/plain", "application/pdf"]
    assert f"nested{WORD}" in extract.extract(raw, CAP).body.split()
    assert len(list(mime.iter_parts(mime.parse_message(many)))) <= MAX_PARTS + MAX_DEPTH


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(range(256))


@pytest.mark.parametrize("field, recorded", [
    (b'image/jpeg name="photo.jpg"', ("image/jpeg", None)),
    (b"image/jpeg\r\n\tname=photo.jpg", ("image/jpeg", None)),
    (b"application/x-foo~bar", ("image/jpeg", "application/x-foo~bar")),
    (b"application/*", ("image/jpeg", "application/*")),
])
def test_a_base64_jpeg_of_a_type_rfc_2045_allows_stays_an_attachment(field, recorded):
    """Review 175 F3: parameters after a blank (no ';', common in real mail) and names of
    RFC 2045 token characters RFC 6838 does not register leave a part what it is: its
    bytes are an attachment's, never body text."""
    raw = (HEAD + b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
           b"Content-Type: text/plain\r\n\r\nhello\r\n--o\r\nContent-Type: " + field
           + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(JPEG).replace(b"\n", b"\r\n") + b"--o--\r\n")
    extracted = extract.extract(raw, CAP)
    assert extracted.body.strip() == "hello"
    assert [(a.mime_type, a.declared_type) for a in extracted.attachments] == [recorded]


@pytest.mark.parametrize("smime_type, said", [
    ("enveloped-data", "enveloped-data"),
    ("\x1b[2Jintact\x07\x7f\x0b" + "x" * 5_000, "[2jintact" + "x" * 55),
    ("\x00\x07", "unknown CMS content"),
], ids=["enveloped", "controls-and-5k", "controls-only"])
def test_an_smime_type_is_said_short_and_printable(smime_type, said):
    """An S/MIME part's error says its smime-type parameter (a sender's text, up to the
    parser's 16 KB) in extract.SMIME_TYPE_SHOWN printable characters at most."""
    raw = (HEAD + b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
           b"Content-Type: text/plain\r\n\r\nhello\r\n--o\r\nContent-Type: "
           b"application/pkcs7-mime; name=smime.p7m; smime-type=\"" + smime_type.encode()
           + b"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(bytes(range(256))) + b"--o--\r\n")
    [entry] = extract.extract(raw, CAP).attachments
    assert entry.encrypted and entry.error == f"encrypted: S/MIME {said}"
