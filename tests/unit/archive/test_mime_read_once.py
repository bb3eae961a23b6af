"""What mime reads once for speed stays what reading it each time gives (review 189).

decode_header_text returns printable ASCII without an encoded word ("=?") stripped, without
running the RFC 2047 decoder: the decoder's own answer for such text, checked here against
the same text with one encoded word added at its end, which only the decoder reads.
is_attachment and filename_of are kept on a parsed part until its fields change: every
mutator of the part reads them anew."""
from __future__ import annotations

from hypothesis import given, strategies as st

from services.archive import mime

ENCODED_X = "=?us-ascii?q?x?="


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60))
def test_plain_ascii_reads_as_the_decoder_reads_it(value):
    if "=?" in value:
        return
    fast = mime.decode_header_text(value)
    decoded = mime.decode_header_text(value + " " + ENCODED_X)  # the decoder's own path
    assert fast == value.strip()
    assert decoded == (value + " x").strip()  # the text passed through as it is, but its ends


def test_padded_and_spaced_values():
    assert [mime.decode_header_text(v) for v in ["hi  ", "  a  b  ", "   ", "a =? b"]] == \
        ["hi", "a  b", "", "a =? b"]


RAW = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
       b"body\r\n--B\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--B--\r\n")


def second_part():
    message = mime.parse_message(RAW)
    return message.get_payload()[1]


def test_a_changed_type_is_read_again():
    part = second_part()
    assert not mime.is_attachment(part) and mime.filename_of(part) is None
    part.replace_header("Content-Type", "image/png")
    assert mime.is_attachment(part)


def test_a_parameter_set_after_reading_is_read_again():
    part = second_part()
    assert mime.filename_of(part) is None
    part.set_param("name", "report.txt")
    assert mime.filename_of(part) == "report.txt" and mime.is_attachment(part)


def test_a_field_added_or_deleted_after_reading_is_read_again():
    part = second_part()
    assert not mime.is_attachment(part)
    part["Content-Disposition"] = 'attachment; filename="notes.txt"'
    assert mime.is_attachment(part) and mime.filename_of(part) == "notes.txt"
    del part["Content-Disposition"]
    assert not mime.is_attachment(part) and mime.filename_of(part) is None
