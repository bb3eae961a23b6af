"""What Apple Mail leaves, imported (services.archive.apple_mail, through mailfiles and
mailtree): bundles' Info.plist and table_of_contents and the store's housekeeping are listed
as skipped by what they hold, never mail so named; each .emlx is its counted bytes exactly;
a damaged one fails alone; zipped trees read as unpacked ones."""
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from services.archive import apple_mail
from services.archive.mailfiles import MailItem, count_mail, iter_mail
from tests import apple_mail_corpus as corpus

MiB = 1024 * 1024


def outcomes(items: list[MailItem], root: Path | str) -> dict[str, list]:
    """Items by outcome: the bytes stored, the labels (relative to `root`) skipped, failed,
    warned about."""
    prefix = f"{root}#" if str(root).endswith(".zip") else f"{root}/"
    relative = [(item, item.label.removeprefix(prefix)) for item in items]
    return {"stored": sorted(item.raw for item, _ in relative if item.raw is not None),
            "skipped": sorted(label for item, label in relative if item.skipped),
            "failed": sorted(label for item, label in relative
                             if item.error and not item.skipped),
            "partial": sorted(label for item, label in relative
                              if item.warning and "partial .emlx" in item.warning)}


def expected_outcomes(expected: corpus.Expected) -> dict[str, list]:
    return {"stored": sorted(expected.stored), "skipped": sorted(expected.skipped),
            "failed": sorted(expected.failed), "partial": sorted(expected.partial)}


def read_both_ways(tmp_path: Path, tree: Path) -> tuple[list[MailItem], list[MailItem], Path]:
    archive = corpus.zipped(tree, tmp_path / "tree.zip")
    return list(iter_mail([tree])), list(iter_mail([archive])), archive


# --- export bundles ------------------------------------------------------------------------

@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
@pytest.mark.parametrize("with_toc", [True, False], ids=["table_of_contents", "no toc"])
@pytest.mark.parametrize("binary_plist", [False, True], ids=["XML plist", "binary plist"])
def test_an_exported_bundle_gives_its_mail_and_lists_its_metadata_as_skipped(
        tmp_path, binary_plist, with_toc, crlf):
    tree = tmp_path / "export"
    expected = corpus.export_bundle(tree, "Projects.mbox", ["alpha", "beta", "gamma"],
                                    binary_plist, with_toc, crlf)
    expected.add(corpus.export_bundle(tree, "Old/Sent.mbox", ["delta"], not binary_plist,
                                      not with_toc, crlf))
    on_disk, from_zip, archive = read_both_ways(tmp_path, tree)
    assert outcomes(on_disk, tree) == expected_outcomes(expected)
    assert outcomes(from_zip, archive) == expected_outcomes(expected)
    skipped = [item for item in on_disk if item.skipped]
    assert all("Apple Mail's mailbox bundle metadata" in item.error for item in skipped)
    assert count_mail([tree]) == len(on_disk) and count_mail([archive]) == len(from_zip)


def test_mail_named_like_a_bundles_metadata_is_read(tmp_path):
    """Told by content, never by name: a message saved as Info.plist beside a bundle's real
    table_of_contents, an mbox saved as table_of_contents beside a real Info.plist, are
    mail; the real ones beside them are not."""
    tree = tmp_path / "export"
    expected = corpus.export_bundle(tree, "In.mbox", ["alpha"])
    expected.add(corpus.export_bundle(tree, "Out.mbox", ["beta"], binary_plist=True))
    corpus.write(tree, "In.mbox/Info.plist", corpus.message("named-info-plist"))
    corpus.write(tree, "Out.mbox/table_of_contents",
                 corpus.FROM_LINE + corpus.message("named-toc"))
    items = list(iter_mail([tree]))
    assert outcomes(items, tree) == {
        "stored": sorted([*expected.stored, corpus.message("named-info-plist"),
                          corpus.message("named-toc")]),
        "skipped": ["In.mbox/table_of_contents", "Out.mbox/Info.plist"], "failed": [],
        "partial": []}


def test_a_binary_table_of_contents_is_metadata_only_beside_a_bundles_mbox(tmp_path):
    """Only a bundle's own (beside its mbox) is its metadata: elsewhere, binary bytes of that
    name are what they were, not mail."""
    tree = tmp_path / "loose"
    corpus.write(tree, "Copied.mbox/table_of_contents", corpus.table_of_contents(3))
    corpus.write(tree, "Real.mbox/table_of_contents", corpus.table_of_contents(3))
    corpus.write(tree, "Real.mbox/mbox", corpus.FROM_LINE + corpus.message("real"))
    copied, mail, real = iter_mail([tree])
    assert not copied.skipped and copied.error.startswith("not mail")
    assert real.skipped and "bundle metadata" in real.error
    assert mail.raw == corpus.message("real")


def test_a_bundles_metadata_named_on_its_own_is_skipped_too(tmp_path):
    tree = tmp_path / "export"
    corpus.export_bundle(tree, "In.mbox", ["alpha"], binary_plist=True)
    items = list(iter_mail([tree / "In.mbox/Info.plist", tree / "In.mbox/table_of_contents"]))
    assert [item.skipped for item in items] == [True, True]


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


# --- Apple Mail's store --------------------------------------------------------------------

def test_a_v10_store_gives_every_message_and_lists_its_housekeeping(tmp_path):
    tree = tmp_path / "Mail"
    expected = corpus.v10_store(tree)
    on_disk, from_zip, archive = read_both_ways(tmp_path, tree)
    assert outcomes(on_disk, tree) == expected_outcomes(expected)
    assert outcomes(from_zip, archive) == expected_outcomes(expected)
    assert len(expected.stored) == 8 and len(expected.partial) == 2
    assert count_mail([tree]) == len(on_disk) and count_mail([archive]) == len(from_zip)
    reasons = {item.label.removeprefix(f"{tree}/"): item.error for item in on_disk
               if item.skipped}
    assert "SQLite database" in reasons["V10/MailData/Envelope Index"]
    assert "write-ahead log" in reasons["V10/MailData/Envelope Index-wal"]
    assert "shared-memory index" in reasons["V10/MailData/Envelope Index-shm"]
    assert "property list (binary" in reasons["V10/MailData/SyncedRules.plist"]
    attachments = [label for label in reasons if "/Attachments/" in label]
    assert len(attachments) == 2
    assert all("holding no mail" in reasons[label] for label in attachments)


def test_the_store_zipped_reads_item_for_item_as_unpacked(tmp_path):
    tree = tmp_path / "Mail"
    corpus.v10_store(tree)
    on_disk, from_zip, archive = read_both_ways(tmp_path, tree)

    def relabelled(items, prefix):
        return [(item.label.removeprefix(prefix), item.raw, item.error, item.skipped,
                 item.warning) for item in items]
    assert relabelled(from_zip, f"{archive}#") == relabelled(on_disk, f"{tree}/")
    assert not [item.label for item in on_disk if item.error and not item.skipped]


def test_housekeeping_names_holding_mail_are_read(tmp_path):
    """Never hiding mail: files named as Apple Mail's housekeeping that hold mail are read,
    and what the store's housekeeping is told by holds wherever it lies."""
    tree = tmp_path / "Mail"
    corpus.write(tree, "V10/MailData/Envelope Index", corpus.message("named-index"))
    corpus.write(tree, "V10/MailData/Envelope Index-wal",
                 corpus.FROM_LINE + corpus.message("named-wal"))
    corpus.write(tree, "elsewhere/notes.db", corpus.sqlite_database())
    corpus.write(tree, "elsewhere/settings.plist", corpus.info_plist(binary=False))
    items = list(iter_mail([tree]))
    assert outcomes(items, tree) == {
        "stored": sorted([corpus.message("named-index"), corpus.message("named-wal")]),
        "skipped": ["elsewhere/notes.db", "elsewhere/settings.plist"], "failed": [],
        "partial": []}


def test_an_attachment_is_skipped_only_beside_messages_and_holding_no_mail(tmp_path):
    tree = tmp_path / "Mail"
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    corpus.write(tree, "Data/Attachments/5/2/a.eml", corpus.message("attached"))
    corpus.write(tree, "Data/Attachments/5/3/a.pdf", pdf)
    corpus.write(tree, "Data/Messages/5.emlx", corpus.emlx(corpus.message("five")))
    corpus.write(tree, "Other/Attachments/note.eml", corpus.message("own-folder"))
    corpus.write(tree, "Other/Attachments/b.pdf", pdf)
    items = list(iter_mail([tree]))
    assert outcomes(items, tree) == {
        "stored": sorted([corpus.message(word) for word in ("attached", "five", "own-folder")]),
        "skipped": ["Data/Attachments/5/3/a.pdf"], "failed": ["Other/Attachments/b.pdf"],
        "partial": []}


# --- generated trees: Apple Mail's names and contents, any mix ---------------------------

APPLE_NAMES = ["mbox", "Info.plist", "table_of_contents", "Messages", "Attachments",
               "1.emlx", "2.partial.emlx", "X.mbox", "cur", ".DS_Store", "Envelope Index"]
GOOD_EMLX = corpus.emlx(corpus.message("generated"))
APPLE_CONTENTS = [corpus.message("plain"), corpus.FROM_LINE + corpus.message("in mbox"),
                  corpus.info_plist(binary=False), corpus.info_plist(binary=True),
                  corpus.table_of_contents(2), GOOD_EMLX,
                  corpus.emlx(corpus.message("bad count"), count=3), b"",
                  corpus.sqlite_database()]
NEVER_FAIL = {corpus.info_plist(binary=False): "skipped", corpus.info_plist(binary=True):
              "skipped", corpus.sqlite_database(): "skipped", GOOD_EMLX: "read"}
APPLE_TREES = st.recursive(
    st.sampled_from(APPLE_CONTENTS),
    lambda folders: st.dictionaries(st.sampled_from(APPLE_NAMES), folders, max_size=5),
    max_leaves=14).filter(lambda tree: isinstance(tree, dict))


@settings(max_examples=150, deadline=None)
@given(tree=APPLE_TREES)
def test_generated_apple_trees_read_alike_zipped_and_never_fail_metadata(tree):
    """Zipped or not, the same items; a property list or SQLite file is listed as skipped
    wherever it lies, a good .emlx is read, whatever their names."""
    import tempfile
    from tests.unit.archive.test_mailfiles_zip_tree import build, layout_of, relabelled, zipped
    with tempfile.TemporaryDirectory() as scratch:
        layout = layout_of(tree)
        on_disk = build(Path(scratch) / "tree", layout)
        on_disk.mkdir(exist_ok=True)
        archive = zipped(on_disk, Path(scratch) / "t.zip", folders=True)
        from_zip, from_disk = list(iter_mail([archive])), list(iter_mail([on_disk]))
        assert relabelled(from_zip, f"{archive}#") == relabelled(from_disk, f"{on_disk}/")
        assert count_mail([archive]) == len(from_zip) and count_mail([on_disk]) == len(from_disk)
        for item in from_disk:
            content = layout.get(item.label.removeprefix(f"{on_disk}/"))
            if content in NEVER_FAIL and not item.skipped:  # skipped: hidden, or metadata
                assert NEVER_FAIL[content] == "read", item
                assert item.raw == corpus.message("generated"), item
