"""Review r20 of 49d51ff (#20: a large message costs the extraction worker about its
own size once). Each test fails on 49d51ff. Memory is what Python allocates while the
step runs (tracemalloc), beyond the message's bytes, which the caller holds."""
import base64
import os
import quopri

import pytest

from services.archive import mime, transfer_encoding
from services.archive.indexer import _parts, _text_size
from tests.integration.archive.test_backlog_carry import _batch
from tests.unit.archive.test_parse_memory import traced_peak

ATTACHMENT_BYTES = 4 * 2**20


def multipart(*parts: bytes) -> bytes:
    body = b"".join(b"--sep\r\n" + part + b"\r\n" for part in parts)
    return (b"From: a@example.org\r\nSubject: rapport\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=sep\r\n\r\n" + body + b"--sep--\r\n")


def attachment(data: bytes) -> bytes:
    return (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=d.bin\r\n\r\n"
            + base64.encodebytes(data).replace(b"\n", b"\r\n"))


@pytest.mark.parametrize("text", [b"Bonjour, voici le rapport :", b"Note :\tvoir ci-joint",
                                  b"Total\t: 12"])
def test_a_blank_before_a_colon_in_a_body_does_not_copy_the_message(text):
    """French typography puts a space before a colon. Any b" :" or b"\\t:" anywhere in
    the message makes mime._field_name_closings split the whole body into lines
    (raw[start:].splitlines(): a copy and an object a line): parse_message's peak went
    from 1.0 to 2.5 times the message."""
    raw = multipart(b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text,
                    attachment(os.urandom(ATTACHMENT_BYTES)))
    tree, peak = traced_peak(mime.parse_message, raw)
    assert len(tree.get_payload()) == 2
    assert peak < 1.2 * len(raw), peak / len(raw)


@pytest.mark.parametrize("encoding", [b"8bit", b"binary", b"7bit", None])
def test_an_8_bit_payload_is_given_back_as_its_bytes_once(encoding):
    """A payload of 8-bit bytes not in base64 or quoted-printable goes to the stdlib's
    get_payload(decode=True), whose _has_surrogates() encodes the str to UTF-8 first: 3
    bytes a character allocated (the payload's size 3 times) only to fail at the first
    surrogate. payload_bytes() gives the same bytes for its size once."""
    data = "Grüße aus Köln\r\n".encode("latin-1") * (ATTACHMENT_BYTES // 16)
    header = b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    if encoding:
        header += b"Content-Transfer-Encoding: " + encoding + b"\r\n"
    part = mime.parse_message(multipart(b"Content-Type: text/plain\r\n\r\nhi",
                                        header + b"\r\n" + data)).get_payload()[1]
    decoded, peak = traced_peak(transfer_encoding.decoded_payload, part)
    assert decoded == data
    assert peak < 1.2 * len(data), peak / len(data)


def test_a_quoted_printable_payload_is_not_held_three_times():
    """decode_quoted_printable holds its input bytes (payload_bytes' copy), the list of
    its pieces with soft line breaks removed and their join at once: 3 times the payload;
    each piece decoded alone (no soft line break crosses a cut) would hold about 2."""
    line = "Grüße aus Köln, schöne Grüße = viele Grüße\n".encode()
    text = line * (ATTACHMENT_BYTES // 40)
    encoded = quopri.encodestring(text).replace(b"\n", b"\r\n")
    part = mime.parse_message(multipart(
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded)).get_payload()[0]
    decoded, peak = traced_peak(transfer_encoding.decoded_payload, part)
    assert decoded.replace(b"\r\n", b"\n") == text
    assert peak < 2.2 * len(encoded), peak / len(encoded)


@pytest.mark.parametrize("first", [0, 1])
def test_a_commit_past_its_text_holds_one_message(first):
    """_parts ends a run before a message that would take it past text_bytes only when the
    run's text is not 0 (`if document and size and ...`): a message with no text (an
    empty body, attachments not read) is in the same commit as one over the cap, a
    commit of two messages past text_bytes; a commit over it must be a single message."""
    sizes = {"a": first and 0, "b": 0, "c": 200, "d": 10}
    batch = _batch([(n, digest) for n, digest in enumerate(sizes, 1)],
                   present=[(digest, 1) for digest in sizes])
    for read in batch.extracted:
        read.size = sizes[read.name[0]]
    parts = list(_parts(batch, 100))
    assert [digest for part in parts for _, digest in part.entries] == list(sizes)
    for part in parts:
        assert _text_size(part) <= 100 or len(part.present) == 1, \
            [[digest for _, digest in part.entries] for part in parts]
