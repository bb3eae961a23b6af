"""The mirror batch format carries what a copy needs to read a message as its origin did."""
import dataclasses
import hashlib
import json
import struct

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
    with pytest.raises(ProtocolError, match="from_line_date must be a finite number"):
        list(decode_batch(body))


def test_a_reading_travels_with_its_copy_and_a_copy_without_one_stays_as_it_was():
    batch = [mirrored(b"Subject: with\n\nbody\n"), mirrored(b"Subject: without\n\n"),
             mirrored(b"Subject: empty\n\n")]
    batch[0] = dataclasses.replace(batch[0], reading=b"\x00\x02 the sender's reading")
    batch[2] = dataclasses.replace(batch[2], reading=b"")
    assert list(decode_batch(encode_batch(batch))) == batch


@pytest.mark.parametrize("cut", [1, 4, 10])
def test_a_batch_cut_inside_or_before_a_reading_is_refused(cut):
    copy = dataclasses.replace(mirrored(b"Subject: x\n\n"), reading=b"0123456789")
    with pytest.raises(ProtocolError, match="truncated"):
        list(decode_batch(encode_batch([copy])[:-cut]))


@pytest.mark.parametrize("flag", ["yes", 1, None, [True], {"bytes": 3}])
def test_a_reading_flag_that_is_no_boolean_refuses_the_batch(flag):
    raw = b"Subject: x\n\n"
    meta = json.dumps({"digest": hashlib.sha256(raw).hexdigest(), "origin": "node-a",
                       "reading": flag}).encode()
    body = b"".join([struct.pack(">I", len(meta)), meta, struct.pack(">I", len(raw)), raw,
                     struct.pack(">I", 0)])
    with pytest.raises(ProtocolError, match="reading must be true or false"):
        list(decode_batch(body))


@pytest.mark.parametrize("field, value, says", [
    ("recipients", [1, 2], "an address must be a string"),
    ("recipients", "abc@x", "recipients must be a list"),
    ("recipients", ["a@x", None], "an address must be a string"),
    ("recipients", ["x" * 2049], "at most 2048"),
    ("sender", {"a": 1}, "an address must be a string"),
    ("sender", 7, "an address must be a string"),
    ("origin", None, "origin must be a node id"),
    ("origin", "n" * 100_000, "origin must be a node id"),
    ("origin", "", "origin must be a node id"),
    ("from_line_date", float("inf"), "finite number"),
    ("from_line_date", float("nan"), "finite number"),
])
def test_metadata_of_another_shape_than_intake_gives_refuses_the_batch(field, value, says):
    """A peer's metadata is read like its bytes: a copy whose recipients were numbers made
    every later SMTP delivery of the same message fail in the store's merge."""
    raw = b"Subject: x\n\n"
    meta = {"digest": hashlib.sha256(raw).hexdigest(), "origin": "node-a",
            "sender": "s@example.com", "recipients": ["r@example.com"], field: value}
    good = encode_batch([mirrored(b"Subject: fine\n\n")])
    framed = json.dumps(meta).encode()
    body = good + b"".join([struct.pack(">I", len(framed)), framed, struct.pack(">I", len(raw)),
                            raw])
    with pytest.raises(ProtocolError, match=says):
        list(decode_batch(body))


def test_the_origins_live_arrival_travels_with_the_copy():
    live = dataclasses.replace(mirrored(b"Subject: live\n\n"), origin_received=1709620269.5)
    batch = [live, mirrored(b"Subject: imported\n\n")]
    assert [copy.origin_received for copy in decode_batch(encode_batch(batch))] == [
        1709620269.5, None]


def test_a_copy_from_firmware_that_sends_no_live_arrival_has_none():
    raw = b"Subject: x\n\n"
    meta = json.dumps({"digest": hashlib.sha256(raw).hexdigest(), "origin": "node-a",
                       "from_line_date": None}).encode()
    body = b"".join([struct.pack(">I", len(meta)), meta, struct.pack(">I", len(raw)), raw])
    assert [copy.origin_received for copy in decode_batch(body)] == [None]


@pytest.mark.parametrize("value", ["yesterday", True, [1.0], float("nan"), float("inf")])
def test_a_live_arrival_that_is_no_number_refuses_the_batch(value):
    body = encode_batch([dataclasses.replace(mirrored(b"Subject: x\n\n"),
                                             origin_received=value)])
    with pytest.raises(ProtocolError, match="origin_received must be a finite number"):
        list(decode_batch(body))
