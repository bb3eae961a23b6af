"""mime_parts and header_blocks together (mime.parse_message): a Content-Type that
header_blocks cuts (past HEADER_LINES_LIMIT header lines, it keeps the field's head) can
say another boundary to the parser than the whole field said to mime_parts' walk, which
then counted other parts than the parser gets. Each message here has ten times MAX_PARTS
parts of the parser's boundary."""
import pytest

from services.archive import header_blocks, mime, mime_parts

MAX_PARTS = 300
MAX_DEPTH = 20
LIMIT = 5_000


@pytest.fixture(autouse=True)
def lower_limits(monkeypatch):
    monkeypatch.setattr(mime_parts, "MAX_PARTS", MAX_PARTS)
    monkeypatch.setattr(mime_parts, "MAX_DEPTH", MAX_DEPTH)
    monkeypatch.setattr(header_blocks, "HEADER_LINES_LIMIT", LIMIT)
    monkeypatch.setattr(header_blocks, "KEPT_FIELD_LINES", LIMIT // 10)


def cut_field(end: bytes, tail: bytes) -> bytes:
    """A Content-Type whose head (what header_blocks keeps of it: its lines within
    KEPT_FIELD_LIMIT bytes) says boundary "ab"; `tail`, on the line the head leaves out,
    says more to whoever reads the whole field."""
    head = b'Content-Type: multipart/mixed; boundary*0=ab;' + end + b' x="'
    start = header_blocks.KEPT_FIELD_LIMIT - 9  # (where the line left out starts)
    return head + b"p" * (start - len(head) - 2 - len(end)) + b'";' + end + b" " + tail


TAILS = {"rfc2231-continuation": b"boundary*1=cd", "second-continuation": b"boundary*1=c",
         "continuation-and-more": b"boundary*1=cd; y=z"}


def message(end: bytes, tail: bytes, where: str) -> bytes:
    padding = [b"X:y"] * (LIMIT + 10)
    parts = (b"--ab" + end + end + b"x" + end) * (10 * MAX_PARTS) + b"--ab--" + end
    field = cut_field(end, tail)
    if where == "top":
        return end.join([b"From: a@example.org", b"Subject: cut", *padding, field, b""]) \
            + end + parts
    return end.join([b"From: a@example.org", b"Subject: cut",
                     b"Content-Type: multipart/mixed; boundary=o", b"", b"--o", b"", b"first",
                     b"--o", *padding, field, b""]) + end + parts + b"--o--" + end


@pytest.mark.parametrize("where", ["top", "part"])
@pytest.mark.parametrize("tail", TAILS.values(), ids=TAILS.keys())
@pytest.mark.parametrize("end", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_a_boundary_past_the_head_header_blocks_keeps_does_not_escape_the_cut(end, tail, where):
    raw = message(end, tail, where)
    parsed = mime.parse_message(raw)
    boundaries = {part.get_boundary() for part in mime.iter_parts(parsed)} - {None, "o"}
    assert boundaries == {"ab"}  # (the parser's)
    assert len(list(mime.iter_parts(parsed))) <= MAX_PARTS + MAX_DEPTH
    assert mime_parts.PartsNotParsed in [type(defect) for defect in parsed.defects]


def test_a_message_header_blocks_does_not_cut_is_walked_once(monkeypatch):
    """mime_parts walks what header_blocks gives the parser only when header_blocks cut
    something (and first the message itself: header_blocks walking a 19 MB chain of
    multiparts before mime_parts cut it took over 120 s)."""
    walked = []
    original = mime_parts.bounded
    monkeypatch.setattr(mime_parts, "bounded", lambda raw: walked.append(1) or original(raw))
    raw = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=ab\r\n\r\n"
           + b"--ab\r\n\r\nx\r\n" * (10 * MAX_PARTS) + b"--ab--\r\n")
    mime.parse_message(raw)
    assert len(walked) == 1
