"""A view splits a part of body text into its uuencoded files once (mime.uuencoded_files
keeps the text around them for mime.body_text_of): each split decodes every block, some 2 s
of CPU for a 22 MB body of a million tiny blocks, and the reader and the tree's body each
split twice (review r4 F2: view 0.2 s on 364d79c, 4.4 s after 4fca7d2). The test counts
splits, not time."""
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
