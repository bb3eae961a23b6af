"""What follows an .emlx's counted message (review 176, F2 and F6): Apple's property list,
as Apple Mail writes it, is its metadata; anything else (mail hidden in XML entities, in an
attribute, in base64 <data>, in CDATA or a comment, a string holding lines, one too long,
nesting too deep, more after the property list, the rest of a message a wrong count cut
short) fails loudly as a second item of the same label, and the counted message is still
read. count_mail counts both. Zipped, each reads as unpacked."""
import plistlib
from pathlib import Path

import pytest

from services.archive import apple_mail
from services.archive.mailfiles import MailItem, count_mail, iter_mail
from tests import apple_mail_corpus as corpus
from tests.unit.archive.test_mailfiles_zip_tree import zipped

HIDDEN = corpus.message("hidden")
MBOX = b"".join(corpus.FROM_LINE + corpus.message(f"hidden{n}") + b"\n" for n in range(2))
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
DOCTYPE = (b'<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
           b'"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n')


def xml_plist(inner: bytes, root: bytes = b'<plist version="1.0">') -> bytes:
    """Apple's declaration and DOCTYPE, then `root` holding a dict of one key, subject,
    whose value is `inner`."""
    return (DECLARATION + DOCTYPE + root + b"\n<dict>\n\t<key>subject</key>\n\t" + inner
            + b"\n</dict>\n</plist>\n")


def as_entities(data: bytes) -> bytes:
    """`data` as XML text, each line break a character reference (&#10;, &#13;)."""
    return (data.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
            .replace(b"\r", b"&#13;").replace(b"\n", b"&#10;"))


def read_alike(tmp_path: Path, files: dict[str, bytes]) -> list[MailItem]:
    """The items of a tree of `files` (relative name: bytes), on disk; those of the tree
    zipped must be the same, item for item (labels relative to the root), and count_mail
    counts them, both ways."""
    tree = tmp_path / "tree"
    for name, data in files.items():
        corpus.write(tree, name, data)
    archive = zipped(tree, tmp_path / "tree.zip", folders=True)
    on_disk, from_zip = list(iter_mail([tree])), list(iter_mail([archive]))

    def relabelled(items, prefix):
        return [(item.label.removeprefix(prefix), item.raw, item.error, item.skipped)
                for item in items]
    assert relabelled(from_zip, f"{archive}#") == relabelled(on_disk, f"{tree}/")
    assert count_mail([tree]) == count_mail([archive]) == len(on_disk)
    return on_disk


def failed_loudly(item: MailItem) -> bool:
    return item.raw is None and bool(item.error) and not item.skipped


# --- what Apple writes is its metadata ----------------------------------------------------

GENUINE = {
    "Apple Mail's (plistlib's writer)": corpus.emlx_trailer(),
    "Apple Mail's, partial": corpus.emlx_trailer(partial=True),
    "CRLF": corpus.emlx_trailer().replace(b"\n", b"\r\n"),
    "older DOCTYPE": corpus.emlx_trailer().replace(b"//Apple//", b"//Apple Computer//"),
    "bare root": b'<plist version="1.0">\n<dict/>\n</plist>\n',
    "every key Apple Mail writes": plistlib.dumps({
        "date-received": 1704189600, "date-sent": 1704189000, "date-last-viewed": 0,
        "flags": 8590195713, "conversation-id": 40117, "remote-id": "50750",
        "original-mailbox": "imap://bob@imap.example.com/INBOX", "subject": "x" * 1024,
        "sender": "Alice <alice@example.com>", "to": "bob@example.com, carol@example.com",
        "color": "000000", "gmail-label-ids": [2, 7, 4096]}),
    "dates as plist dates or reals": plistlib.dumps({
        "date-sent": __import__("datetime").datetime(2024, 1, 2, 10, 0),
        "date-received": 1704189600.5}),
    "an Exchange item id": plistlib.dumps({"remote-id": "AAMkAGI2" + "A" * 140 + "AAA="}),
}


@pytest.mark.parametrize("trailer", GENUINE)
def test_apples_property_list_is_its_metadata(tmp_path, trailer):
    raw = corpus.message("kept")
    [item] = read_alike(tmp_path, {"Messages/1.emlx": corpus.emlx(raw, trailer=GENUINE[trailer])})
    assert item.raw == raw and item.error is None and item.warning is None


# --- anything else fails as a second item, the message still read -------------------------

REFUSED = {  # the review's shapes, and what expat or plistlib would read past unsaid
    "an mbox as XML entities (&#10;)": (xml_plist(b"<string>" + as_entities(MBOX) + b"</string>"),
                                        "line break"),
    "a message as CRLF entities": (xml_plist(b"<string>" + as_entities(
        HIDDEN.replace(b"\n", b"\r\n")) + b"</string>"), "line break"),
    "an mbox in an attribute of <plist>": (xml_plist(
        b"<string>x</string>", root=b'<plist version="1.0" note="' + as_entities(MBOX) + b'">'),
        "attributes on <plist>"),
    "an attribute on <string>": (xml_plist(b'<string x="y">x</string>'), "attributes on"),
    "an mbox in base64 <data>": (plistlib.dumps({"subject": MBOX}), "<data>"),
    "an mbox in CDATA": (xml_plist(b"<string><![CDATA[" + MBOX + b"]]></string>"), "CDATA"),
    "an mbox in a comment": (DECLARATION + b"<!--\n" + MBOX + b'-->\n<plist version="1.0">'
                             b"<dict/></plist>\n", "comment"),
    "a processing instruction": (xml_plist(b"<?x " + as_entities(MBOX) + b"?><string>x</string>"),
                                 "processing instruction"),
    "a string with a newline": (plistlib.dumps({"subject": "Q4\nfigures"}), "line break"),
    "a key with a newline": (plistlib.dumps({"a\nb": 1}), "key Apple Mail does not write"),
    "a 5,000-character string": (plistlib.dumps({"subject": "x" * 5000}), "5000 characters"),
    "nesting 5 deep": (plistlib.dumps({"gmail-label-ids": [[[1]]]}), "nested over 4"),
    "nesting 100 deep": (plistlib.dumps({"a": __import__("functools").reduce(
        lambda inner, _: [inner], range(100), "x")}), "nested"),
    "an entity declaration": (b'<?xml version="1.0"?>\n<!DOCTYPE plist [<!ENTITY m "'
                              + as_entities(HIDDEN) + b'">]>\n<plist version="1.0"><dict>'
                              b"<key>s</key><string>&m;</string></dict></plist>\n",
                              "DOCTYPE other than Apple's"),
    "an undeclared entity": (xml_plist(b"<string>&m;</string>"), "entity"),
    "a UTF-16 declaration": (b'<?xml version="1.0" encoding="UTF-16"?>\n<plist version="1.0">'
                             b"<dict/></plist>\n", "encoding"),
    "an unknown element": (xml_plist(b"<note>" + as_entities(MBOX) + b"</note>"),
                           "element <note>"),
    "text in a dict": (xml_plist(b"<string>x</string>\nFrom: x"), "text in <dict>"),
    "an array, not a dict": (plistlib.dumps(["x"]), "not a dict"),
    "a message after the property list": (corpus.emlx_trailer() + HIDDEN, "not well-formed"),
    "an mbox after it": (corpus.emlx_trailer() + MBOX, "not well-formed"),
    "a second .emlx after it": (corpus.emlx_trailer() + corpus.emlx(HIDDEN), "not well-formed"),
    "a NUL after it": (corpus.emlx_trailer() + b"\x00", "not well-formed"),
    "a second property list": (corpus.emlx_trailer() * 2, "not well-formed"),
    "no end": (corpus.emlx_trailer()[:-20], "not well-formed"),
    # review 183, low 1: a count short by the message's last blank lines drops them
    "white space before": (b"\n" + corpus.emlx_trailer(), "white space before"),
    "white space after": (corpus.emlx_trailer() + b"\n\r\n \t", "more after </plist>"),
}


@pytest.mark.parametrize("trailer", REFUSED)
def test_anything_but_apples_metadata_fails_as_a_second_item(tmp_path, trailer):
    data, why = REFUSED[trailer]
    raw = corpus.message("counted")
    message, refused = read_alike(tmp_path, {"Messages/1.emlx": corpus.emlx(raw, trailer=data)})
    assert message.raw == raw and message.error is None
    assert failed_loudly(refused) and refused.label == message.label
    assert why in refused.error, refused.error
    assert "may be cut short" in refused.error and "hidden" in refused.error


def test_a_property_list_over_the_bound_fails_and_is_not_parsed(tmp_path, monkeypatch):
    """At most MAX_TRAILER bytes after the message are read: a longer trailer is refused
    unparsed."""
    parsed = []
    monkeypatch.setattr(apple_mail.expat, "ParserCreate", lambda *a: parsed.append(a))
    big = plistlib.dumps({f"k{n}": "x" * 4000 for n in range(20)})
    assert len(big) > apple_mail.MAX_TRAILER
    message, refused = read_alike(tmp_path, {"1.emlx": corpus.emlx(HIDDEN, trailer=big)})
    assert message.raw == HIDDEN and f"over {apple_mail.MAX_TRAILER} bytes" in refused.error
    assert parsed == []


# --- F6: a count cut short ----------------------------------------------------------------

CUT_AT = {  # a line of the body a wrong count may stop at (review 167's a3, 176's F6)
    "a bare <plist>": b"<plist>payment to account 12345</plist>\n",
    "an XML declaration": b"<?xml version=\"1.0\"?>\n<note>wire the money</note>\n",
    "a plist holding no dict": b"<plist version=\"1.0\"><array/></plist>\n",
    "Apple's own property list, then more body": corpus.emlx_trailer() + b"and the rest\n",
}


@pytest.mark.parametrize("cut", CUT_AT)
@pytest.mark.parametrize("before", [b"", b"Dear Bob,\n", b"x" * 5000 + b"\n"],
                         ids=["at once", "a line", "5000 bytes"])
def test_a_count_cut_short_at_a_plist_line_reports_the_rest(tmp_path, cut, before):
    whole = corpus.message("cut", body=before + CUT_AT[cut] + b"Regards, Alice\n")
    count = whole.index(CUT_AT[cut])
    data = str(count).ljust(10).encode() + b"\n" + whole
    message, rest = read_alike(tmp_path, {"Messages/3.emlx": data})
    assert message.raw == whole[:count]
    assert failed_loudly(rest) and "may be cut short" in rest.error


@pytest.mark.parametrize("cut", [b"Regards,\n", b"<note>x</note>\n", b"<!DOCTYPE plist>\n"],
                         ids=["prose", "other XML", "a DOCTYPE first"])
def test_a_count_cut_short_elsewhere_fails_the_file_as_main_does(tmp_path, cut):
    """No `<?xml` or `<plist` right after the counted bytes: no .emlx; the file is read as
    any (its first line is a number: not mail), and the reason says why it is no .emlx."""
    whole = corpus.message("cut", body=b"Dear Bob,\n" + cut + b"Alice\n")
    data = str(whole.index(cut)).ljust(10).encode() + b"\n" + whole + corpus.emlx_trailer()
    [item] = read_alike(tmp_path, {"Messages/3.emlx": data})
    assert failed_loudly(item) and item.error.startswith("not mail (")
    assert "not followed by Apple's property list" in item.error


def test_counting_reads_the_count_line_and_what_follows_not_the_message():
    from tests.unit.archive.test_apple_mail import CountingReader
    raw = corpus.message("long", body=b"x" * 100_000 + b"\n")
    hiding = REFUSED["an mbox in CDATA"][0]
    for trailer, refused in ((corpus.emlx_trailer(), False), (hiding, True)):
        stream = CountingReader(corpus.emlx(raw, trailer=trailer))
        emlx = apple_mail.read_emlx(stream, len(stream.getvalue()), 10**7, "1.emlx", keep=False)
        assert emlx.raw is None and bool(emlx.trailer_refused) is refused
        assert stream.bytes_read <= 32 + len(trailer)
