"""The mirror batch format carries what a copy needs to read a message as its origin did."""
import hashlib

import pytest

from services.mirror.protocol import MirroredMessage, ProtocolError, decode_batch, encode_batch


def mirrored(raw: bytes, from_line_date=None) -> MirroredMessage:
    return MirroredMessage(hashlib.sha256(raw).hexdigest(), raw, "s@example.com",
                           ["r@example.com"], "node-a", from_line_date)


def test_the_from_line_date_travels_with_the_copy():
    batch = [mirrored(b"Subject: undated\n\nbody\n", 1709620269.0), mirrored(b"Subject: x\n\n")]
    assert list(decode_batch(encode_batch(batch))) == batch


def test_a_from_line_date_that_is_no_number_refuses_the_batch():
    body = encode_batch([mirrored(b"Subject: x\n\n", "yesterday")])
    with pytest.raises(ProtocolError, match="from_line_date must be a number"):
        list(decode_batch(body))
