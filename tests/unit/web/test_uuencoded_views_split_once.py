"""A view splits a part of body text into its uuencoded files once (mime.uuencoded_files
keeps the text around them for mime.body_text_of): each split decodes every block, some 2 s
of CPU for a 22 MB body of a million tiny blocks, and the reader and the tree's body each
split twice (review r4 F2: view 0.2 s on 364d79c, 4.4 s after 4fca7d2). The test counts
splits, not time."""
import itertools

import pytest

from services.archive import mime, uuencode
from services.archive.mime import parse_message
from services.web import mail_view, message_tree

RAW = (b"From: a@b\nTo: c@d\nSubject: s\nMIME-Version: 1.0\nContent-Type: text/plain\n\n"
       b"hello\n" + b"begin 644 a\n!80``\n`\nend\n" * 50)


def _splits(monkeypatch, show) -> int:
    calls = []
    original = uuencode.split
    monkeypatch.setattr(mime.uuencode, "split",
                        lambda data, keep: calls.append(keep) or original(data, keep))
    show()
    return len(calls)


def test_the_reader_splits_a_body_once(monkeypatch):
    assert _splits(monkeypatch, lambda: mail_view.view(RAW)) == 1


def test_the_tree_s_body_splits_a_body_once(monkeypatch):
    assert _splits(monkeypatch, lambda: message_tree.body(parse_message(RAW))) == 1


# -- an attachment sent x-uuencode (review r5 F3) ---------------------------------------------
# The split attachment_files makes is kept with the part, for one block as for many: the
# part's name (attachment_name), its content (the download, the tree's size) and its files
# read from it. On 8eb022a the tree split an attachment of several files two or three
# times and each view split a one-block one once more than before.
GOOD = b"begin 644 a\n!80``\n`\nend\n"
BAD = b"begin 644 b\n!8\x7f``\n`\nend\n"  # a block that does not decode
MARK = b"marker okapi\n"
PAYLOADS = {"one": GOOD, "one-among-bad": GOOD + BAD * 20, "many": GOOD * 50,
            "none": BAD * 20, "many-truncated": GOOD * 5 + GOOD[:-4]}
HEAD = b"From: a@b\nTo: c@d\nSubject: s\nMIME-Version: 1.0\n"


def _attachment(payload: bytes, named: bool, crlf: bool, whole: bool) -> bytes:
    part = (b"Content-Type: application/octet-stream" + (b"; name=\"pack.uue\"" if named
                                                         else b"") +
            b"\nContent-Transfer-Encoding: x-uuencode\n\n" + MARK + payload)
    raw = HEAD + part if whole else (
        HEAD + b"Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain"
        b"\n\nhello\n--B\n" + part + b"--B--\n")
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def _attachment_splits(monkeypatch, show) -> int:
    calls = []
    original = uuencode.split
    monkeypatch.setattr(mime.uuencode, "split",
                        lambda data, keep: (calls.append(1) if MARK.strip() in data else None)
                        or original(data, keep))
    show()
    return len(calls)


CASES = list(itertools.product(PAYLOADS, (True, False), (False, True), (False, True)))


@pytest.mark.parametrize("kind, named, crlf, whole", CASES,
                         ids=[f"{k}-{'named' if n else 'unnamed'}-{'crlf' if c else 'lf'}-"
                              f"{'whole' if w else 'mixed'}" for k, n, c, w in CASES])
def test_each_view_splits_an_x_uuencode_attachment_once(monkeypatch, kind, named, crlf, whole):
    raw = _attachment(PAYLOADS[kind], named, crlf, whole)
    listed = mail_view.view(raw).attachments
    assert listed  # (the part is at least its own one file)
    assert _attachment_splits(monkeypatch, lambda: mail_view.view(raw)) == 1
    for attachment in listed:
        assert _attachment_splits(
            monkeypatch, lambda: mail_view.attachment(raw, attachment.number)) == 1
    assert _attachment_splits(
        monkeypatch, lambda: message_tree.tree(parse_message(raw), [])) == 1
