"""Review 172's attacks: mail that was read (or failed loudly) before Apple Mail's trees were
known must not be skipped by name or place, nor hidden in what is skipped: an mbox or a
message in Attachments/, an .emlxpart or .mailsignature holding a message, mail behind an
SQLite file's, NeXT's or a binary property list's structure, in an XML property list's
CDATA or comment, or in an .emlx's property list; and telling what a zip member holds costs
the zip's budget. Each is read or fails loudly, unpacked and zipped alike."""
import plistlib
import struct
import zipfile

import pytest

from services.archive import apple_mail
from services.archive.mailfiles import count_mail, iter_mail
from tests import apple_mail_corpus as corpus
from tests.unit.archive.test_apple_mail_review167 import (HIDDEN, failed_loudly, read_alike,
                                                          zip_of)

MBOX = b"".join(corpus.FROM_LINE + corpus.message(f"hidden{n}") + b"\n" for n in range(3))
HIDDEN_IN_XML = HIDDEN.replace(b"<", b"&lt;").replace(b">", b"&gt;")
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"


def padded(data: bytes, unit: int) -> bytes:
    return data + bytes(-len(data) % unit)


def subjects(raws: list[bytes]) -> list[bytes]:
    return [raw.split(b"\n")[2] for raw in raws]


def only(items, name):
    [item] = [item for item in items if item.label.endswith(name)]
    return item


# --- finding 1: nothing skipped by its name or its place alone ----------------------------

HIDDEN_SUBJECT = [b"Subject: hidden report"]
ATTACHED_MAIL = {"an mbox": (MBOX, [b"Subject: hidden%d report" % n for n in range(3)]),
                 "an .eml": (HIDDEN, HIDDEN_SUBJECT),
                 "a zip of a message": (zip_of("m.eml", HIDDEN), HIDDEN_SUBJECT),
                 "an .emlx": (corpus.emlx(HIDDEN), HIDDEN_SUBJECT)}


@pytest.mark.parametrize("attached", ATTACHED_MAIL)
@pytest.mark.parametrize("emlx", [("x.emlx", b""), ("1.emlx", corpus.emlx(corpus.message("a"))),
                                  ("2.partial.emlx", corpus.emlx(corpus.partial_message("b")))],
                         ids=["an empty .emlx", "an .emlx", "a partial .emlx"])
def test_mail_in_attachments_beside_apples_messages_is_read(tmp_path, emlx, attached):
    data, stored = ATTACHED_MAIL[attached]
    items = read_alike(tmp_path, {f"Messages/{emlx[0]}": emlx[1],
                                  "Attachments/2/2/old.mbox": data})
    assert subjects([item.raw for item in items if "/Attachments/" in item.label]) == stored
    assert not [item for item in items if item.label.endswith("/Attachments")]


@pytest.mark.parametrize("sign", [b"\nFrom alice@example.com Tue Jan  2 10:00:00 2024\n",
                                  b"\nSubject: hi\n", b"\r\nmessage-id: <a@b>\r\n"],
                         ids=["a From_ line", "a header field", "CRLF, lower case"])
@pytest.mark.parametrize("at", [10, 4096 - 3, 4096 + 1024 * 1024 - 4])  # across the first
# 4096 bytes read (apple_mail.SNIFF_BYTES) and the first 1 MiB chunk after (SCAN_CHUNK)
def test_an_attachment_with_a_mail_sign_anywhere_fails_as_before(tmp_path, sign, at):
    """Even across the chunks it is read in: a sign is never missed."""
    data = PDF + bytes(at - len(PDF)) + sign + bytes(100) if at > len(PDF) else PDF + sign
    items = read_alike(tmp_path, {"Messages/1.emlx": corpus.emlx(corpus.message("a")),
                                  "Attachments/1/2/a.pdf": data})
    assert failed_loudly(only(items, "a.pdf"))


@pytest.mark.parametrize("content", [PDF, bytes(range(256)) * 4, b"plain text, no mail\n"],
                         ids=["a PDF", "binary", "text"])
def test_an_attachment_holding_no_mail_is_skipped_beside_apples_messages_only(tmp_path,
                                                                             content):
    items = read_alike(tmp_path, {"Data/Messages/1.emlx": corpus.emlx(corpus.message("a")),
                                  "Data/Attachments/1/2/a.bin": content,
                                  "Other/Attachments/1/2/b.bin": content})
    assert only(items, "a.bin").skipped and "holding no mail" in only(items, "a.bin").error
    assert failed_loudly(only(items, "b.bin"))


@pytest.mark.parametrize("name", ["Messages/5.2.emlxpart", "MailData/Signatures/a.mailsignature",
                                  "V10/MailData/Signatures/b.mailsignature"])
def test_parts_and_signatures_are_read_as_any_file(tmp_path, name):
    """Named as Apple's parts of messages, placed where it keeps them: a message is read,
    anything else fails as before (review 167 skipped them by name)."""
    partial = {"Messages/5.partial.emlx": corpus.emlx(corpus.partial_message("five"))}
    items = read_alike(tmp_path, {**partial, name: HIDDEN})
    assert only(items, name).raw == HIDDEN
    items = read_alike(tmp_path / "again", {**partial, name: PDF})
    assert failed_loudly(only(items, name))


# --- finding 2: an SQLite file's, NeXT's or a binary plist's structure around mail -------

def binary_plist_with_a_gap(gap: bytes) -> bytes:
    """A binary property list whose offset table lies past `gap`, bytes no object uses."""
    whole = plistlib.dumps({"a": 1}, fmt=plistlib.FMT_BINARY)
    sizes = struct.unpack(">6xBBQQQ", whole[-32:])
    objects, table = whole[8:sizes[4]], whole[sizes[4]:-32]
    return (b"bplist00" + objects + gap + table
            + struct.pack(">6xBBQQQ", *sizes[:4], 8 + len(objects) + len(gap)))


STRUCTURES_AROUND_MAIL = {
    "an SQLite database": padded(corpus.sqlite_database(1)[:100] + b"\n" + MBOX, 4096),
    "a write-ahead log": corpus.sqlite_wal(frames=0) + padded(b"\n" + MBOX,
                                                              24 + corpus.SQLITE_PAGE),
    "a shared-memory index": padded(corpus.sqlite_shm()[:4] + b"\n" + MBOX, 32768),
    "NeXT's table_of_contents": corpus.table_of_contents(1) + b"\n" + MBOX,
    "a binary plist": binary_plist_with_a_gap(b"\n" + MBOX),
}


@pytest.mark.parametrize("structure", STRUCTURES_AROUND_MAIL)
def test_mail_inside_metadatas_structure_fails_loudly(tmp_path, structure):
    data = STRUCTURES_AROUND_MAIL[structure]
    assert plistlib.loads(data) if structure == "a binary plist" else True  # it parses
    items = read_alike(tmp_path, {"Box.mbox/mbox": corpus.FROM_LINE + corpus.message("a"),
                                  "Box.mbox/table_of_contents": data,
                                  "MailData/Envelope Index": data})
    assert failed_loudly(only(items, "table_of_contents"))
    assert failed_loudly(only(items, "Envelope Index"))


# --- finding 3: an XML property list that may hide mail is not skipped ------------------

def xml_plist(inside: bytes) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>m</key>'
            + inside + b"</dict></plist>\n")


HIDING_PLISTS = {
    "an mbox in CDATA": xml_plist(b"<string><![CDATA[" + MBOX + b"]]></string>"),
    "a message in CDATA": xml_plist(b"<string><![CDATA[" + HIDDEN + b"]]></string>"),
    "an mbox in a comment": xml_plist(b"<!--\n" + MBOX + b"--><string/>"),
    "a message in a string": xml_plist(b"<string>" + HIDDEN_IN_XML + b"</string>"),
    "harmless CDATA": xml_plist(b"<string><![CDATA[x]]></string>"),
}


@pytest.mark.parametrize("plist", HIDING_PLISTS)
def test_a_property_list_that_may_hide_mail_fails_loudly(tmp_path, plist):
    assert plistlib.loads(HIDING_PLISTS[plist])  # a property list all the same
    items = read_alike(tmp_path, {"notes": HIDING_PLISTS[plist],
                                  "Box.mbox/Info.plist": HIDING_PLISTS[plist],
                                  "Box.mbox/mbox": corpus.FROM_LINE + corpus.message("a")})
    assert failed_loudly(only(items, "notes")) and failed_loudly(only(items, "Info.plist"))


# --- finding 4: an .emlx's property list that may hide mail fails on its own ---------------

HIDING_TRAILERS = {
    "an mbox in CDATA": b'<?xml version="1.0"?>\n' + xml_plist(
        b"<string><![CDATA[" + MBOX + b"]]></string>").split(b"\n", 1)[1],
    "an mbox in a comment": b'<?xml version="1.0"?>\n<!--\n' + MBOX
    + b'-->\n<plist version="1.0"><dict/></plist>\n',
    "a message in a string": xml_plist(b"<string>" + HIDDEN_IN_XML + b"</string>"),
}


@pytest.mark.parametrize("trailer", HIDING_TRAILERS)
def test_an_emlx_property_list_that_may_hide_mail_fails_and_its_message_is_read(tmp_path,
                                                                               trailer):
    raw = corpus.message("counted")
    items = read_alike(tmp_path, {"Messages/1.emlx":
                                  corpus.emlx(raw, trailer=HIDING_TRAILERS[trailer])})
    message, refused = items
    assert message.raw == raw and message.error is None
    assert failed_loudly(refused) and refused.label == message.label
    assert "property list" in refused.error and "not" in refused.error


# --- finding 5: telling a zip member costs the zip's budget -----------------------------

def plist_of(size: int, strings: bool = True) -> bytes:
    """An XML property list of about `size` bytes: many small strings (parsing them is
    slow), or one (deflate shrinks it 1000 times)."""
    if not strings:
        return xml_plist(b"<string>" + b"x" * size + b"</string>")
    item = b"<string>x</string>"
    return xml_plist(b"<array>" + item * (size // len(item)) + b"</array>")


def test_a_property_list_over_the_bound_is_never_parsed(tmp_path, monkeypatch):
    parsed = []
    monkeypatch.setattr(plistlib, "loads", lambda data, **kw: parsed.append(len(data)))
    big = plist_of(2 * 1024 * 1024)
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for n in range(4):
            zipped.writestr(f"d/s{n}.plist", big)
    items = list(iter_mail([archive]))
    assert len(items) == 4 and all(failed_loudly(item) for item in items)
    assert parsed == []


def test_telling_what_a_member_holds_is_spent_from_the_zips_budget(tmp_path):
    """Parsing a property list costs the zip's budget PLIST_PARSE_COST times its size: a
    small one fits, one deflated 1000:1 does not, and is read as any file, loudly."""
    archive = tmp_path / "plists.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("d/Info.plist", corpus.info_plist(binary=False))
        for n in range(4):
            zipped.writestr(f"d/s{n}.plist", plist_of(apple_mail.MAX_PLIST - 200,
                                                      strings=False))
    items = list(iter_mail([archive], max_bytes=1000))
    assert [item.skipped for item in items] == [True, False, False, False, False]
    assert all(failed_loudly(item) for item in items[1:])
    assert count_mail([archive], max_bytes=1000) == len(items)
