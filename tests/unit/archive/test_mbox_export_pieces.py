"""Bulk import, review 117: every message of an mbox the appliance's export writes imports
again (one beginning with a From_ line, quoted by the export; one that is no mail at all,
which SMTP intake stores byte-exact), and so does a doubled envelope line; junk under
another writer's From_ line still fails as not mail."""
import zipfile

import pytest

from services.archive import mbox
from services.archive.mailfiles import count_mail, iter_mail, write_mbox

MiB = 1024 * 1024


def message(subject: str, body: bytes = b"Hello.\n") -> bytes:
    return f"From: a@example.com\nSubject: {subject}\n\n".encode() + body


# --- C: mbox pieces the export writes -------------------------------------------------------

STORED = {  # what SMTP intake may store: any bytes
    "mail": b"Subject: ok\r\n\r\nbody\r\n",
    "from_ line first": b"From someone Sat Jan  1 00:00:00 2000\r\nSubject: x\r\n\r\nbody\r\n",
    "from_ lines first": b"From a Sat Jan  1 00:00:00 2000\n>From b Sat Jan  1 00:00:00 2000\n"
                         b"Subject: y\n\nbody\n",
    "prose": b"hello, this is no mail\n",
    "binary": b"\x00\x01\x02\xff binary\n",
    "pdf": b"%PDF-1.7\n%\xe2\xe3\n",
    "colon late": b"not a header: field\n",
    "from_ line then prose": b"From x Sat Jan  1 00:00:00 2000\nhello\n",
    "header then from lines": b"X: y\n\nFrom z Sat Jan  1 00:00:00 2000\n>From q\n",
    "sender in body": b"hello\nfrom: bob@example.org\n\nmore\n",
    "no final newline": b"Subject: s\n\nno newline",
}


@pytest.mark.parametrize("zipped", [False, True], ids=["mbox file", "zipped mbox"])
def test_every_piece_the_export_writes_imports_again(tmp_path, zipped):
    """A stored message beginning with a From_ line is exported quoted (">From") and came
    back unquoted, refused as not mail; so did anything SMTP stored that is no mail."""
    raws = list(STORED.values())
    write_mbox([(str(n), raw) for n, raw in enumerate(raws)], tmp_path / "export.mbox")
    given = tmp_path / "export.mbox"
    if zipped:
        given = tmp_path / "export.zip"
        with zipfile.ZipFile(given, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(tmp_path / "export.mbox", "export.mbox")
    items = list(iter_mail([given]))
    assert [item.error for item in items] == [None] * len(raws)
    assert [item.raw for item in items] == [mbox.with_final_line_ending(raw) for raw in raws]
    assert count_mail([given]) == len(raws)


def test_a_doubled_envelope_line_is_mail(tmp_path):
    data = (b"From MAILER-DAEMON Sat Jan  1 00:00:00 2000\n>From alice@example.com Sat Jan  1 "
            b"00:00:00 2000\nReturn-Path: <alice@example.com>\nSubject: one\n\nbody\n\n"
            b"From bob Sat Jan  1 00:00:00 2000\nSubject: two\n\nbody\n\n")
    (tmp_path / "dup.mbox").write_bytes(data)
    items = list(iter_mail([tmp_path / "dup.mbox"]))
    assert [item.raw for item in items] == [
        b"From alice@example.com Sat Jan  1 00:00:00 2000\nReturn-Path: <alice@example.com>\n"
        b"Subject: one\n\nbody\n", b"Subject: two\n\nbody\n"]


@pytest.mark.parametrize("kind", ["prose", "binary", "pdf", "colon late",
                                  "from_ line then prose"])
def test_junk_under_another_writers_from_line_still_fails(tmp_path, kind):
    """What the 'is this mail' test was for: no export writes this From_ line before it
    (its sender is not the one the export would write)."""
    data = (b"From alice@example.com Tue Mar  5 13:07:09 2024\n" + message("one") + b"\n"
            b"From alice@example.com Tue Mar  5 13:07:09 2024\n" + STORED[kind] + b"\n"
            b"From alice@example.com Tue Mar  5 13:07:09 2024\n" + message("three"))
    (tmp_path / "box").write_bytes(data)
    items = list(iter_mail([tmp_path / "box"]))
    assert [item.raw for item in items] == [message("one"), None, message("three")]
    assert items[1].error.startswith("not mail")
