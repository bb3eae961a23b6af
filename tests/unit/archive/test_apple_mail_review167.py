"""Review 167's attacks on Apple Mail's inputs, as generated families: mail hidden after an
.emlx's property list, a count cut short at a `<plist>` line, mail behind a property list's
or an SQLite file's first bytes, mail named table_of_contents beside an mbox, Attachments/
beside a Messages/ that is not Apple Mail's. Each fails loudly or is read, never skipped
unsaid; zipped, each reads as unpacked. What Apple Mail writes still reads as before."""
import io
import zipfile
from pathlib import Path

import pytest

from services.archive import apple_mail
from services.archive.mailfiles import MailItem, iter_mail
from tests import apple_mail_corpus as corpus
from tests.unit.archive.test_mailfiles_zip_tree import zipped

HIDDEN = corpus.message("hidden")


def read_alike(tmp_path: Path, files: dict[str, bytes]) -> list[MailItem]:
    """The items of a tree of `files` (relative name: bytes), on disk; those of the tree
    zipped must be the same, item for item (labels relative to the root)."""
    tree = tmp_path / "tree"
    for name, data in files.items():
        corpus.write(tree, name, data)
    archive = zipped(tree, tmp_path / "tree.zip", folders=True)
    on_disk, from_zip = list(iter_mail([tree])), list(iter_mail([archive]))

    def relabelled(items, prefix):
        return [(item.label.removeprefix(prefix), item.raw, item.error, item.skipped)
                for item in items]
    assert relabelled(from_zip, f"{archive}#") == relabelled(on_disk, f"{tree}/")
    return on_disk


def failed_loudly(item: MailItem) -> bool:
    return item.raw is None and bool(item.error) and not item.skipped


# --- finding 1: an .emlx is its count, then Apple's property list alone -------------------

PLIST_OPENINGS = {  # what Apple's property list may begin with (EMLX_TRAILER), then a dict
    "declaration and DOCTYPE": corpus.emlx_trailer(),
    "bare root": b"<plist version=\"1.0\">\n<dict/>\n</plist>\n",
    "CRLF": corpus.emlx_trailer().replace(b"\n", b"\r\n"),
}
AFTER_THE_PLIST = {  # what review 167's a1 and a2 hid after it
    "a message (a1)": HIDDEN,
    "an mbox (a2)": b"".join(corpus.FROM_LINE + corpus.message(f"hidden{n}") + b"\n"
                             for n in range(2)),
    "a second .emlx": corpus.emlx(HIDDEN),
    "one byte": b"x",
    "a NUL": b"\x00",
    "a second plist": corpus.emlx_trailer(),
}


@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
@pytest.mark.parametrize("opening", PLIST_OPENINGS)
@pytest.mark.parametrize("after", AFTER_THE_PLIST)
def test_anything_after_the_property_list_fails_the_emlx(tmp_path, after, opening, crlf):
    decoy = corpus.message("decoy", crlf)
    data = corpus.emlx(decoy, trailer=PLIST_OPENINGS[opening] + AFTER_THE_PLIST[after])
    [item] = read_alike(tmp_path, {"Messages/1.emlx": data})
    assert failed_loudly(item), item
    assert "property list alone" in item.error


@pytest.mark.parametrize("opening", PLIST_OPENINGS)
@pytest.mark.parametrize("space", [b"", b"\n", b"\r\n\r\n", b" \t\n"], ids=repr)
def test_white_space_after_the_property_list_is_still_an_emlx(tmp_path, opening, space):
    raw = corpus.message("kept")
    data = corpus.emlx(raw, trailer=PLIST_OPENINGS[opening] + space)
    [item] = read_alike(tmp_path, {"Messages/1.emlx": data})
    assert item.raw == raw and item.error is None


CUT_AT = {  # a line of the body a count may stop at, as review 167's a3 did
    "a bare <plist>": b"<plist>payment to account 12345</plist>\n",
    "an XML declaration": b"<?xml version=\"1.0\"?>\n<note>wire the money</note>\n",
    "a DOCTYPE": b"<!DOCTYPE plist>\n<plist><string>x</string></plist>\n",
    "a plist holding no dict": b"<plist version=\"1.0\"><array/></plist>\n",
    "a plist, then more body": corpus.emlx_trailer() + b"and the rest of the letter\n",
}


@pytest.mark.parametrize("cut", CUT_AT)
@pytest.mark.parametrize("before", [b"", b"Dear Bob,\n", b"x" * 5000 + b"\n"],
                         ids=["at once", "a line", "5000 bytes"])
def test_a_count_cut_short_at_a_plist_line_fails(tmp_path, cut, before):
    whole = corpus.message("cut", body=before + CUT_AT[cut] + b"Regards, Alice\n")
    count = whole.index(CUT_AT[cut])
    data = str(count).ljust(10).encode() + b"\n" + whole
    [item] = read_alike(tmp_path, {"Messages/3.emlx": data})
    assert failed_loudly(item), item


def test_a_property_list_over_the_bound_fails_the_emlx(tmp_path, monkeypatch):
    """Read at most MAX_TRAILER bytes after the message: a longer one is not Apple's."""
    monkeypatch.setattr(apple_mail, "MAX_TRAILER", len(corpus.emlx_trailer()) + 10)
    big = corpus.emlx(corpus.message("big"), trailer=corpus.emlx_trailer() + b" " * 11)
    small = corpus.emlx(corpus.message("small"))
    items = read_alike(tmp_path, {"Messages/1.emlx": big, "Messages/2.emlx": small})
    assert failed_loudly(items[0]) and items[1].raw == corpus.message("small")


# --- finding 2: metadata told by its whole structure, not its first bytes ------------------

PREFIXES = {  # first bytes of what is skipped, and whole ones: review 167's a4, a4b, a5, a7
    "XML plist, whole (a4)": corpus.info_plist(binary=False),
    "XML declaration and DOCTYPE (a4b)": b'<?xml version="1.0"?>\n<!DOCTYPE plist>\n',
    "bplist00 (a5)": b"bplist00",
    "binary plist, whole": corpus.info_plist(binary=True),
    "SQLite header (a7)": b"SQLite format 3\x00",
    "SQLite's 100-byte header": corpus.sqlite_database()[:100],
    "WAL header": corpus.sqlite_wal(frames=0),
    "SHM's first word": corpus.sqlite_shm()[:4],
    "SHM's first block": corpus.sqlite_shm(),
}
MAIL_AFTER = {"a message": b"\n" + HIDDEN, "an mbox": b"\n" + corpus.FROM_LINE + HIDDEN,
              "a message, no newline": HIDDEN}
NAMES = ["note", "Info.plist", "Envelope Index", "Envelope Index-wal", "x.plist"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mail", MAIL_AFTER)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_mail_behind_metadatas_first_bytes_is_never_skipped(tmp_path, prefix, mail, name):
    data = PREFIXES[prefix] + MAIL_AFTER[mail]
    assert len(data) % 512 and len(data) % 32768  # no whole SQLite pages or blocks
    files = {f"Box.mbox/{name}": data, "Box.mbox/mbox": corpus.FROM_LINE + corpus.message("a")}
    items = read_alike(tmp_path, files)
    [item] = [item for item in items if item.label.endswith(name)]
    assert not item.skipped, item  # "bplist00From: ..." is a header field: read, as before
    assert item.raw == data or failed_loudly(item) and "not mail" in item.error, item


METADATA = {
    "XML plist": (corpus.info_plist(binary=False), "property list (XML"),
    "XML plist, CRLF and trailing space": (
        corpus.info_plist(binary=False).replace(b"\n", b"\r\n") + b"\r\n", "property list (XML"),
    "binary plist": (corpus.info_plist(binary=True), "property list (binary"),
    "SQLite database": (corpus.sqlite_database(), "SQLite database"),
    "SQLite database, 64 KiB pages": (
        corpus.sqlite_database(1)[:16] + b"\x00\x01" + corpus.sqlite_database(1)[18:100]
        + bytes(65536 - 100), "SQLite database"),
    "WAL, empty": (corpus.sqlite_wal(frames=0), "write-ahead log"),
    "WAL, three frames": (corpus.sqlite_wal(frames=3), "write-ahead log"),
    "SHM, two blocks": (corpus.sqlite_shm(blocks=2), "shared-memory index"),
}


@pytest.mark.parametrize("kind", METADATA)
def test_whole_metadata_is_still_skipped(tmp_path, kind):
    data, reason = METADATA[kind]
    [item] = read_alike(tmp_path, {"MailData/file": data})
    assert item.skipped and reason in item.error, item


BROKEN_METADATA = {  # each fails as not mail: its structure is not the format's
    "SQLite, page size 1000": lambda db: db[:16] + b"\x03\xe8" + db[18:],
    "SQLite, page size 0": lambda db: db[:16] + b"\x00\x00" + db[18:],
    "SQLite, fractions not 64/32/32": lambda db: db[:21] + b"\x40\x20\x21" + db[24:],
    "SQLite, not whole pages": lambda db: db + b"\x00",
    "WAL, not whole frames": lambda _: corpus.sqlite_wal(frames=1)[:-1],
    "WAL, page size 3000": lambda _: corpus.sqlite_wal()[:8] + (3000).to_bytes(4, "big")
    + corpus.sqlite_wal()[12:],
    "SHM, not whole blocks": lambda _: corpus.sqlite_shm() + b"\x00",
    "XML plist, cut short": lambda _: corpus.info_plist(binary=False)[:-20],
    "XML plist, not well formed": lambda _: b"<plist><dict><key>a</dict></plist>",
    "binary plist, cut short": lambda _: corpus.info_plist(binary=True)[:-1],
}


@pytest.mark.parametrize("broken", BROKEN_METADATA)
def test_broken_metadata_is_read_as_any_file_and_fails(tmp_path, broken):
    data = BROKEN_METADATA[broken](corpus.sqlite_database())
    [item] = read_alike(tmp_path, {"MailData/file": data})
    assert failed_loudly(item) and "not mail" in item.error, item


def test_a_property_list_over_the_bound_is_read_as_any_file(tmp_path, monkeypatch):
    monkeypatch.setattr(apple_mail, "MAX_PLIST", 64)
    [item] = read_alike(tmp_path, {"big.plist": corpus.info_plist(binary=False)})
    assert failed_loudly(item), item


# --- finding 3: table_of_contents is NeXT Mail's index, not any binary file ----------------

def zip_of(name: str, data: bytes) -> bytes:
    """A zip's bytes, holding one member `name` of `data`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


IN_TABLE_OF_CONTENTS = {  # review 167's a6, and each mail container the reader reads
    "a zip of a message (a6)": (zip_of("inner.eml", HIDDEN), [HIDDEN]),
    "a zip of an .emlx": (zip_of("1.emlx", corpus.emlx(HIDDEN)), [HIDDEN]),
    "an mbox": (corpus.FROM_LINE + HIDDEN, [HIDDEN]),
    "a message": (HIDDEN, [HIDDEN]),
    "an .emlx": (corpus.emlx(HIDDEN), [HIDDEN]),
}


@pytest.mark.parametrize("content", IN_TABLE_OF_CONTENTS)
def test_mail_named_table_of_contents_beside_an_mbox_is_read(tmp_path, content):
    data, stored = IN_TABLE_OF_CONTENTS[content]
    items = read_alike(tmp_path, {"Box.mbox/mbox": corpus.FROM_LINE + corpus.message("a"),
                                  "Box.mbox/table_of_contents": data})
    assert [item.raw for item in items if "table_of_contents" in item.label] == stored


@pytest.mark.parametrize("nul_at", [0, 1, 100, 511])
def test_a_binary_table_of_contents_without_nexts_magic_fails(tmp_path, nul_at):
    """Any NUL in its first 512 bytes once made it metadata: only NeXT's magic does now."""
    data = bytearray(b"not an index " * 50)
    data[nul_at] = 0
    items = read_alike(tmp_path, {"Box.mbox/mbox": corpus.FROM_LINE + corpus.message("a"),
                                  "Box.mbox/table_of_contents": bytes(data)})
    [item] = [item for item in items if item.label.endswith("table_of_contents")]
    assert failed_loudly(item), item


@pytest.mark.parametrize("messages", [0, 1, 7])
def test_nexts_table_of_contents_is_still_skipped(tmp_path, messages):
    items = read_alike(tmp_path, {"Box.mbox/mbox": corpus.FROM_LINE + corpus.message("a"),
                                  "Box.mbox/table_of_contents":
                                      corpus.table_of_contents(messages)})
    [item] = [item for item in items if item.label.endswith("table_of_contents")]
    assert item.skipped and "bundle metadata" in item.error


# --- finding 4: Attachments/ beside a Messages/ that is not Apple Mail's is read ----------
# (beside Apple Mail's, each of its files is told by content: test_apple_mail_review172)

NOT_APPLES_MESSAGES = {  # review 167's a9, and more a Messages/ may hold
    "an .eml (a9)": {"Messages/m1.eml": corpus.message("m1")},
    "numbered files": {"Messages/1": corpus.message("m1")},
    "a folder of .emlx": {"Messages/old/1.emlx": corpus.emlx(corpus.message("m1"))},
    "a folder named x.emlx": {"Messages/x.emlx/1": corpus.message("m1")},
    "nothing but a hidden file": {"Messages/.keep": b""},
}


@pytest.mark.parametrize("attached", ["fwd.eml", "5/2/forwarded.eml"])
@pytest.mark.parametrize("messages", NOT_APPLES_MESSAGES)
def test_attachments_beside_a_messages_folder_not_apples_are_read(tmp_path, messages,
                                                                  attached):
    files = {**NOT_APPLES_MESSAGES[messages], f"Attachments/{attached}": HIDDEN}
    items = read_alike(tmp_path, files)
    assert HIDDEN in [item.raw for item in items]
    assert not [item for item in items if item.label.endswith("/Attachments")]
