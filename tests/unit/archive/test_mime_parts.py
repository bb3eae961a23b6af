"""Messages of many MIME parts, in every shape (tests.many_parts): the parser holds a
bounded number of parts, what the parts hide is read, and a message whose parts were cut
says so. A message of 1.6 million tiny parts once ran an extraction worker out of memory
(the big ones, through the real workers: tests/integration/archive/test_many_parts.py)."""
import pytest

from services.archive import extract, mime, mime_parts, mimetree
from tests.many_parts import FIRST, LAST, corpus

SIZE = 200_000  # bytes of parts: past MAX_PARTS, which the tests set lower than the real one
MAX_PARTS = 300
MAX_DEPTH = 20


@pytest.fixture(autouse=True)
def lower_limits(monkeypatch):
    """The same cuts at lower limits, so that each message is parsed in milliseconds (the
    real ones, on messages of up to 50 MB: test_many_parts)."""
    monkeypatch.setattr(mime_parts, "MAX_PARTS", MAX_PARTS)
    monkeypatch.setattr(mime_parts, "MAX_DEPTH", MAX_DEPTH)


def text_of(extracted) -> str:
    names = [entry.filename or "" for entry in extracted.attachments]
    return " ".join([extracted.body, *names, *(entry.text for entry in extracted.attachments)])


@pytest.mark.parametrize("case", corpus(SIZE), ids=lambda case: case.name)
def test_the_parser_gets_a_bounded_number_of_parts(case):
    message = mime.parse_message(case.raw)
    assert len(list(mime.iter_parts(message))) <= MAX_PARTS + MAX_DEPTH, case.name


@pytest.mark.parametrize("case", corpus(SIZE), ids=lambda case: case.name)
def test_the_first_and_last_parts_are_read_and_a_cut_is_said(case):
    extracted = extract.extract(case.raw, 64 << 20)  # (over any body: extract.body_cut)
    assert extracted.failed is None, case.name
    assert FIRST in text_of(extracted) and LAST in text_of(extracted), case.name
    cut = extract.parts_cut(mime.parse_message(case.raw))
    if case.name != "empty-boundaries":  # (no parts between its delimiter lines)
        assert cut is not None and cut in extracted.failures, case.name
        assert "MIME parts past the first 300 or nested deeper than 20" in cut


@pytest.mark.parametrize("case", corpus(SIZE), ids=lambda case: case.name)
def test_the_bounded_message_is_well_formed(case):
    """The parts kept, the text part of the rest and the close delimiters added make a
    message the fast parser takes whole: no defect, no missing close delimiter."""
    parsed, _ = mime_parts.bounded(case.raw)
    assert mimetree.parse(parsed, mime.POLICY) is not None, case.name


def test_a_message_of_max_parts_parts_is_left_as_it_is():
    """MAX_PARTS Messages: the message and its MAX_PARTS - 1 parts; one more is cut."""
    units = b"".join(b"--b\r\n\r\np%d\r\n" % n for n in range(MAX_PARTS - 1))
    raw = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + units
           + b"--b--\r\n")
    assert mime_parts.bounded(raw) == (raw, 0)
    assert len(list(mime.iter_parts(mime.parse_message(raw)))) == MAX_PARTS
    more = raw.replace(b"--b--", b"--b\r\n\r\nlast\r\n--b--")
    parsed, count = mime_parts.bounded(more)
    assert count == 1
    assert parsed.endswith(b"--b\r\n" + mime_parts.REST_HEADER + b"\r\nlast\r\n--b--\r\n")
    assert len(list(mime.iter_parts(mime.parse_message(more)))) == MAX_PARTS + 1


def test_the_text_of_the_rest_holds_no_delimiter_line_of_the_open_multiparts():
    units = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart%d\r\n" % n
                     for n in range(2 * MAX_PARTS))
    raw = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + units
           + b"--b  \r\n\r\nspaced\r\n--b--\r\nepilogue\r\n")
    parsed, count = mime_parts.bounded(raw)
    message = mime.parse_message(raw)
    rest = message.get_payload()[-1]
    assert count == MAX_PARTS + 2
    assert rest.get_content_type() == "text/plain"
    assert "--b" not in rest.get_payload() and "spaced" in rest.get_payload()
    assert rest.get_payload().startswith(f"Content-Type: text/plain\r\n\r\npart{MAX_PARTS - 1}")
    assert message.epilogue == "epilogue\r\n"


def test_the_rest_of_a_part_within_parts_closes_every_open_multipart():
    inner = b"".join(b"--c\r\n\r\ni%d\r\n" % n for n in range(2 * MAX_PARTS))
    raw = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: multipart/alternative; boundary=c\r\n\r\n" + inner + b"--c--\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nafter\r\n--b--\r\n")
    parsed, _ = mime_parts.bounded(raw)
    assert parsed.endswith(b"after\r\n--c--\r\n--b--\r\n")
    message = mimetree.parse(parsed, mime.POLICY)
    assert [part.get_content_type() for part in message.get_payload()] == \
        ["multipart/alternative"]
    assert "after" in message.get_payload()[0].get_payload()[-1].get_payload()
