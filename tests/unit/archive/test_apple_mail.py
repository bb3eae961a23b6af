"""Apple Mail's .emlx, imported (services.archive.apple_mail, through mailfiles): each is
its counted bytes exactly, told by content; a partial one is warned about; a damaged one
fails alone, saying why; zipped trees read as unpacked ones. (What follows the message:
test_apple_mail_trailer; every other file of Apple Mail's trees is read as main reads it:
test_apple_mail_as_main.)"""
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from services.archive import apple_mail
from services.archive.mailfiles import MailItem, count_mail, iter_mail
from tests import apple_mail_corpus as corpus

MiB = 1024 * 1024


# --- .emlx -------------------------------------------------------------------------------

@pytest.mark.parametrize("pad", [True, False], ids=["count padded", "count alone"])
@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
def test_an_emlx_is_exactly_its_counted_bytes(tmp_path, crlf, pad):
    raw = corpus.message("counted", crlf, body=b"<?xml version='1.0'?> in the body\n")
    path = corpus.write(tmp_path, "Messages/12.emlx", corpus.emlx(raw, pad=pad))
    [item] = iter_mail([path])
    line_end = path.read_bytes().index(b"\n") + 1
    assert item.raw == raw == path.read_bytes()[line_end:line_end + len(raw)]
    assert (item.error, item.warning, item.from_line_date) == (None, None, None)


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=2000), crlf=st.booleans())
def test_any_emlx_gives_back_the_bytes_it_counts(body, crlf):
    raw = corpus.message("any", crlf, body=body)
    [item] = iter_mail_of_bytes(corpus.emlx(raw))
    assert item.raw == raw


def iter_mail_of_bytes(data: bytes, name: str = "1.emlx") -> list[MailItem]:
    """A zip of one member `name` holding `data`, read (a zip member reads as a file)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "one.zip"
        path.write_bytes(buffer.getvalue())
        return list(iter_mail([path]))


def test_an_emlx_is_told_by_content_not_by_name(tmp_path):
    raw = corpus.message("by-content")
    renamed = corpus.write(tmp_path, "saved/message.txt", corpus.emlx(raw))
    plain = corpus.write(tmp_path, "saved/plain.emlx", raw)  # a message, named .emlx
    notes = corpus.write(tmp_path, "saved/notes", b"2024\nplans for the year\n")
    items = list(iter_mail([renamed, plain, notes]))
    assert [item.raw for item in items] == [raw, raw, None]
    assert "not mail" in items[2].error


def test_a_partial_emlx_is_stored_as_it_is_and_said_to_be_partial(tmp_path):
    raw = corpus.partial_message("quarterly")
    named = corpus.write(tmp_path, "Messages/201.partial.emlx", corpus.emlx(raw))
    renamed = corpus.write(tmp_path, "Messages/copy", corpus.emlx(raw))  # by its content
    items = list(iter_mail([named, renamed]))
    assert [item.raw for item in items] == [raw, raw]
    assert all("partial .emlx" in item.warning and "not reassembled" in item.warning
               for item in items)


BAD_EMLX = {
    "count longer than the file": (lambda raw: corpus.emlx(raw, count=len(raw) + 5000),
                                   "more than the"),
    "count short: no plist after": (lambda raw: corpus.emlx(raw, count=len(raw) - 3),
                                    "not followed by Apple's property list"),
    "count long: the plist eaten": (lambda raw: corpus.emlx(raw, count=len(raw) + 10),
                                    "not followed by Apple's property list"),
    "no plist at all": (lambda raw: corpus.emlx(raw, trailer=b"garbage\n"),
                        "not followed by Apple's property list"),
    "hostile count": (lambda raw: b"999999999999999\n" + raw + corpus.emlx_trailer(),
                      "more than the"),
    "not a number": (lambda raw: b"12a4\n" + raw + corpus.emlx_trailer(), "not mail ("),
    "counted bytes not mail": (lambda raw: corpus.emlx(b"\x00\x01 binary\n"), "not mail ("),
}


@pytest.mark.parametrize("bad", BAD_EMLX)
def test_a_damaged_emlx_fails_with_why_and_loses_nothing_else(tmp_path, bad):
    make, reason = BAD_EMLX[bad]
    messages = tmp_path / "Messages"
    good = [corpus.message(f"good{n}") for n in range(3)]
    corpus.write(messages, "1.emlx", corpus.emlx(good[0]))
    corpus.write(messages, "2.emlx", make(corpus.message("damaged")))
    corpus.write(messages, "3.emlx", corpus.emlx(good[1]))
    corpus.write(messages, "4.partial.emlx", corpus.emlx(good[2]))
    for root in (messages, corpus.zipped(messages, tmp_path / "m.zip")):
        items = list(iter_mail([root]))
        assert [item.raw for item in items if item.raw] == good
        [failed] = [item for item in items if item.error]
        assert failed.label.endswith("2.emlx") and not failed.skipped
        assert reason in failed.error, failed.error
        assert count_mail([root]) == 4


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        out = super().read(size)
        self.bytes_read += len(out)
        return out

    def readline(self, size=-1):
        out = super().readline(size)
        self.bytes_read += len(out)
        return out


def test_an_emlx_counting_more_than_the_limit_is_not_read():
    raw = corpus.message("big", body=b"x" * 5000 + b"\n")
    stream = CountingReader(corpus.emlx(raw))
    with pytest.raises(apple_mail.TooLarge):
        apple_mail.read_emlx(stream, len(stream.getvalue()), 1000, "1.emlx")
    assert stream.bytes_read <= 32  # the count line, no more


def test_an_emlx_over_the_limit_fails_and_says_so(tmp_path):
    raw = corpus.message("big", body=b"x" * (MiB + 10) + b"\n")
    path = corpus.write(tmp_path, "1.emlx", corpus.emlx(raw))
    [item] = iter_mail([path], max_bytes=MiB)
    assert item.raw is None and "over the limit" in item.error and ".emlx" in item.error


def test_a_hostile_count_reads_no_more_than_the_file_size(tmp_path):
    stream = CountingReader(b"99999999999999\n" + corpus.message("x") + corpus.emlx_trailer())
    with pytest.raises(apple_mail.NotEmlx):
        apple_mail.read_emlx(stream, len(stream.getvalue()), 100 * MiB, "1.emlx")
    assert stream.bytes_read <= 32


# --- a store: its .emlx files are mail, the rest is read as any file ---------------------

def test_a_store_gives_each_emlx_and_reads_its_other_files_as_any(tmp_path):
    """Messages/ of .emlx files, a partial one among them, beside an Info.plist and an
    attachment: each message is stored, the others fail as any file that is no mail does
    (never skipped), zipped alike."""
    raws, partial = corpus.store_inbox(tmp_path, ["first", "second"], "sheet")
    corpus.write(tmp_path / corpus.INBOX_DATA, "Attachments/201/2/sheet.pdf",
                 b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    tree = tmp_path / "V10"
    archive = corpus.zipped(tree, tmp_path / "V10.zip")
    for root in (tree, archive):
        items = list(iter_mail([root]))
        assert sorted(item.raw for item in items if item.raw) == sorted([*raws, partial])
        failed = sorted(item.label.rpartition("/")[2] for item in items if item.error)
        assert failed == ["Info.plist", "sheet.pdf"]
        assert not any(item.skipped for item in items)
        assert [item.label.rpartition("/")[2] for item in items if item.warning] == [
            "201.partial.emlx"]
        assert count_mail([root]) == len(items) == 5
