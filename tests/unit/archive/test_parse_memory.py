"""A large message costs the extraction worker about its own size once, not several times
(#20: the whole import within 256 MB on the 450, which accepts 100 MiB by SMTP).

mimetree used to decode the whole message to one str (ASCII with surrogate escapes: 2 bytes
a character as soon as one byte is 8-bit) and slice each payload out of it, then drop the
line end before a delimiter by slicing again; decoding a base64 payload copied it to bytes
first. Now the parse searches the bytes and decodes each payload once, from them, and an
ASCII payload is decoded from its str. Measured as what Python allocates while the message
is parsed or read (tracemalloc), beyond the message's bytes, which the caller holds."""
import base64
import os
import random
import tracemalloc

import pytest

from services.archive import extract, mime, transfer_encoding

ATTACHMENT_BYTES = 12 * 2**20


def message(attachment: bytes, text: bytes = "Grüße aus Köln\n".encode("latin-1") * 100,
            attachment_type: bytes = b"application/octet-stream") -> bytes:
    """A message of an 8-bit text part (a few KB) and a base64 attachment."""
    return b"".join([
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: report\r\n",
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=sep\r\n\r\n",
        b"--sep\r\nContent-Type: text/plain; charset=iso-8859-1\r\n",
        b"Content-Transfer-Encoding: 8bit\r\n\r\n", text, b"\r\n",
        b"--sep\r\nContent-Type: ", attachment_type, b"\r\n",
        b"Content-Disposition: attachment; filename=data.bin\r\n",
        b"Content-Transfer-Encoding: base64\r\n\r\n",
        base64.encodebytes(attachment).replace(b"\n", b"\r\n"), b"--sep--\r\n"])


def traced_peak(work, *arguments) -> tuple[object, int]:
    """work(*arguments)'s result and the most Python held at once while it ran, bytes."""
    tracemalloc.start()
    try:
        result = work(*arguments)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def large() -> bytes:
    return message(os.urandom(ATTACHMENT_BYTES))


def test_the_parse_holds_the_payloads_once(large):
    tree, peak = traced_peak(mime.parse_message, large)
    payload = tree.get_payload()[1].get_payload()
    assert payload.isascii() and len(payload) > 0.95 * len(large)  # the tree is whole
    # Before: the message as a str of 2 bytes a character, its payloads sliced from it
    # and sliced again: some 5 times its size.
    assert peak < 1.2 * len(large), (peak, len(large))


def test_a_base64_payload_is_decoded_without_a_bytes_copy(large):
    tree = mime.parse_message(large)
    attachment = tree.get_payload()[1]
    data, peak = traced_peak(transfer_encoding.decoded_payload, attachment)
    assert len(data) == ATTACHMENT_BYTES
    assert peak < 1.1 * ATTACHMENT_BYTES, peak  # the decoded bytes (was 2.4 times them)


def test_extracting_a_large_message_costs_about_its_size(large):
    reading, peak = traced_peak(extract.extract, large, 1 << 20)
    assert "Köln" in reading.body
    # The payloads' strs (its size) and the decoded attachment (3/4 of it): was over 3
    # times its size.
    assert peak < 2 * len(large), (peak, len(large))


def test_the_tree_is_the_same_with_8_bit_bytes_in_a_large_payload():
    """A payload holding 8-bit bytes is a str of surrogate escapes, as the feedparser
    gives it; the other parts' payloads stay ASCII."""
    raw = message(b"", text="é".encode("latin-1") * 2**20)
    tree = mime.parse_message(raw)
    text_part, attachment = tree.get_payload()
    assert text_part._payload == "\udce9" * 2**20  # (get_payload() decodes the charset)
    assert attachment._payload == "" and attachment._payload.isascii()
    assert text_part.get_payload(decode=True) == b"\xe9" * 2**20


def test_the_tree_holds_no_reference_to_the_message_bytes():
    """The worker lets a message's bytes go once it is parsed (extract.parse): the tree
    must not keep them (its charset lookup kept a closure over them: the message twice
    while its attachments were decoded)."""
    tracemalloc.start()
    try:
        raw = message(os.urandom(ATTACHMENT_BYTES))
        size = len(raw)
        parsed = extract.parse(raw)
        del raw
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert parsed.summary.subject == "report"
    assert held < 1.1 * size, (held, size)  # the payloads' strs alone


def random_message(rng: random.Random) -> bytes:
    """A message whose charset labels and first text part lie near the bounds
    declared_charsets and body_sample read to: a long header block, a preamble of about
    CHARSET_SCAN_LIMIT, a text part's header block across it, a body of about
    BODY_SAMPLE_BYTES in any transfer encoding, line ends of either kind."""
    end = rng.choice([b"\r\n", b"\n"])
    around = lambda size: rng.randint(size - 300, size + 300)  # noqa: E731
    header = [b"Subject: x", b"Content-Type: multipart/mixed; boundary=b; charset=koi8-r"]
    header += [b"X-Filler: " + b"f" * 70] * rng.choice([0, 10, around(mime.CHARSET_SCAN_LIMIT
                                                                        // 80)])
    preamble = b"p" * rng.choice([0, 100, *[around(mime.CHARSET_SCAN_LIMIT)] * 3])
    part_header = [b"Content-Type: text/plain; charset=" + rng.choice([b"utf-8", b"big5"])]
    part_header += [b"X-Part: " + b"h" * 60] * rng.choice(
        [0, *[around(mime.CHARSET_SCAN_LIMIT // 70)] * 3])
    encoding = rng.choice([b"base64", b"quoted-printable", b"8bit"])
    body = bytes(rng.choice(b"ab \xe9=\n") for _ in range(around(2 * mime.BODY_SAMPLE_BYTES)))
    if encoding == b"base64":
        body = base64.encodebytes(body)
    part_header.append(b"Content-Transfer-Encoding: " + encoding)
    return end.join(header + [b"", preamble, b"--b"] + part_header
                    + [b"", body, b"--b--", b""])


def test_the_charset_prefix_reads_as_the_whole_message():
    rng = random.Random(2046)
    for _ in range(300):
        raw = random_message(rng)
        prefix = mime._charset_prefix(raw)
        assert mime.declared_charsets(prefix) == mime.declared_charsets(raw)
        assert mime.body_sample(prefix) == mime.body_sample(raw)
        assert len(prefix) < len(raw) or prefix is raw
