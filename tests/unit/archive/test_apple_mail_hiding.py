"""Review 183: a trailer is judged by what its bytes hold, not by what plistlib keeps (F1:
a duplicate key, text before a child element, text after a date), and only Apple Mail's
keys, with the values Apple writes, are its metadata (F2: a message one line per string or
key, in base64, joined by tab, U+2028 or NEL, as integers, as a 60,000-digit real, in the
blanks between elements). The review's corpus of shapes, generated: each hides a message,
each fails as a second item, counted by count_mail, on disk and zipped; property lists as
Apple writes them are its metadata. A file read as an .emlx and found none is not read
twice (F3); a count line ending in CR LF says it looks like an .emlx (low 2)."""
import base64
import io
import plistlib
import tracemalloc
import zipfile
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings, strategies as st

from services.archive import apple_mail
from services.archive.mailfiles import count_mail, iter_mail
from tests import apple_mail_corpus as corpus
from tests.unit.archive.test_apple_mail_trailer import failed_loudly, read_alike

HEAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST '
        b'1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n')
HIDDEN = corpus.message("hidden")
TEXT = escape(HIDDEN.decode())  # the message as XML text
LINES = HIDDEN.decode().split("\n")


def plist(inner: str | bytes) -> bytes:
    return HEAD + (inner.encode() if isinstance(inner, str) else inner) + b"</plist>\n"


def string(key: str, text: str) -> str:
    return f"<dict><key>{key}</key><string>{text}</string></dict>"


def steganography() -> bytes:
    bits = "".join(f"{byte:08b}" for byte in HIDDEN)
    return plist("<dict>" + bits.replace("0", " ").replace("1", "\t")
                 + "<key>flags</key><integer>1</integer></dict>")


SHAPES = {  # review 183's corpus: each hides HIDDEN; what the refusal names
    # F1: plistlib keeps no trace of these
    "a duplicate key": (plist(string("subject", TEXT)[:-7] + "<key>subject</key><string>ok"
                              "</string></dict>"), "line break"),
    "a duplicate key, one line": (plist("<dict><key>subject</key><string>x</string><key>"
                                        "subject</key><string>ok</string></dict>"), "twice"),
    "a duplicate key's dict": (plist(f"<dict><key>to</key><dict><key>m</key><string>{TEXT}"
                                     "</string></dict><key>to</key><integer>1</integer></dict>"),
                               "<dict> for to"),
    "a duplicate key's deep array": (plist("<dict><key>to</key>" + "<array>" * 20 + f"<string>"
                                           f"{TEXT}</string>" + "</array>" * 20 + "<key>to</key>"
                                           "<true/></dict>"), "nested over 4"),
    "a string in a string": (plist(f"<dict><key>to</key><array><string>{TEXT}<string>x</string>"
                                   "</string></array></dict>"), "<string> inside <string>"),
    "a string in a string, at the top": (plist(f"<dict><key>subject</key><string>{TEXT}<string>"
                                               "x</string></string></dict>"),
                                         "<string> inside <string>"),
    "text in a key before a child": (plist(f"<dict><key>{TEXT}<true/>a</key><string>v</string>"
                                           "</dict>"), "<true> inside <key>"),
    "an integer in an integer": (plist(f"<dict><key>gmail-label-ids</key><array><integer>{TEXT}"
                                       "<integer>1</integer></integer></array></dict>"),
                                 "<integer> inside <integer>"),
    "text after a date": (plist("<dict><key>date-received</key><date>2024-01-02T10:00:00Z\n"
                                f"{TEXT}</date></dict>"), "<date> other than Apple's"),
    "children not alternating": (plist(f"<dict><key>subject</key><key>to</key><string>x</string>"
                                       "</dict>"), "do not alternate"),
    # F2: the written rule let these through
    "one line per string": (plist("<dict><key>to</key><array>" + "".join(
        f"<string>{escape(line)}</string>" for line in LINES) + "</array></dict>"),
        "<array> for to"),
    "one line per key": (plist("<dict>" + "".join(
        f"<key>{n:03d} {escape(line)}</key><true/>" for n, line in enumerate(LINES))
        + "</dict>"), "key Apple Mail does not write"),
    "base64 in remote-id": (plist(string("remote-id", base64.b64encode(HIDDEN).decode())),
                            "remote-id other than Apple's"),
    "base64 in color": (plist(string("color", base64.b64encode(HIDDEN).decode())),
                        "color other than Apple's"),
    "joined by tab": (plist(string("subject", TEXT.replace("\n", "\t"))), "U+0009"),
    "joined by U+2028": (plist(string("subject", TEXT.replace("\n", "\u2028"))), "U+2028"),
    "joined by NEL": (plist(string("subject", TEXT.replace("\n", "\u0085"))), "U+0085"),
    "joined by U+2029": (plist(string("subject", TEXT.replace("\n", "\u2029"))), "U+2029"),
    "bytes as integers": (plist("<dict><key>gmail-label-ids</key><array>" + "".join(
        f"<integer>{byte}</integer>" for byte in HIDDEN) + "</array></dict>"), "over 64"),
    "a big integer": (plist("<dict><key>flags</key><integer>" + str(int.from_bytes(HIDDEN, "big"))
                            + "</integer></dict>"), "<integer> other than Apple's"),
    "a 60,000-digit real": (plist("<dict><key>date-sent</key><real>" + "9" * 60000
                                  + "</real></dict>"), "<real> other than Apple's"),
    "blanks between elements": (steganography(), "white space other than Apple's"),
    "blanks inside a tag": (plist("<dict" + " \t" * 200 + "><key>flags</key><integer>1"
                                  "</integer></dict>"), "white space inside a tag"),
    "blanks after the root": (plist("<dict/>") + b" \t" * 200, "more after </plist>"),
    "blanks in the prolog": (HEAD.replace(b"?>\n", b"?>\n" + b" \t" * 200) + b"<dict/></plist>\n",
                             "other than Apple's, byte for byte"),
    "a boolean": (plist("<dict><key>flags</key><true/></dict>"), "<true> for flags"),
    "a nested dict": (plist("<dict><key>flags</key><dict/></dict>"), "<dict> for flags"),
    # what the written rule already refused
    "entities' line breaks": (plist(string("subject", TEXT.replace("\n", "&#10;"))), "line break"),
    "CDATA": (plist(b"<dict><key>subject</key><string><![CDATA[" + HIDDEN
                    + b"]]></string></dict>"), "CDATA"),
    "a comment": (plist(b"<dict><!--" + HIDDEN + b"--></dict>"), "comment"),
    "<data>": (plistlib.dumps({"subject": HIDDEN}), "<data>"),
    "an attribute": (plist('<dict><key>subject</key><string x="' + TEXT.replace("\n", "&#10;")
                           + '">v</string></dict>'), "attributes on <string>"),
    "a DOCTYPE's entity": (b'<?xml version="1.0"?>\n<!DOCTYPE plist [<!ENTITY m "' + TEXT.encode()
                           + b'">]><plist version="1.0"><dict><key>subject</key><string>&m;'
                           b"</string></dict></plist>\n", "DOCTYPE"),
    "a processing instruction": (plist(b"<?hide " + HIDDEN + b"?><dict/>"), "processing"),
    "an .emlx after the root": (plist("<dict/>") + corpus.emlx(HIDDEN), "not well-formed"),
    "an mbox after the root": (plist("<dict/>") + corpus.FROM_LINE + HIDDEN, "not well-formed"),
    "UTF-16": (('<?xml version="1.0" encoding="UTF-16"?><plist version="1.0">'
                + string("subject", TEXT) + "</plist>").encode("utf-16"), None),
    "UTF-16 declared in UTF-8": (plist(string("subject", "x")).replace(b"UTF-8", b"UTF-16"),
                                 "encoding 'UTF-16'"),
}  # None: no `<` after the message (a byte order mark): no .emlx, the file fails whole


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_that_hides_a_message_fails_as_a_second_item(tmp_path, shape):
    trailer, why = SHAPES[shape]
    raw = corpus.message("cover")
    items = read_alike(tmp_path, {"Messages/1.emlx": corpus.emlx(raw, trailer=trailer)})
    if why is None:
        [item] = items
        assert failed_loudly(item) and "not followed by Apple's property list" in item.error
        return
    message, refused = items
    assert message.raw == raw and message.error is None
    assert failed_loudly(refused) and why in refused.error, refused.error
    assert count_mail([tmp_path / "tree"]) == 2


def test_each_refusal_is_by_the_bytes_not_by_what_plistlib_keeps():
    """F1's shapes are read by plistlib as harmless property lists: the rule does not ask
    it."""
    for shape in ("a duplicate key", "a string in a string", "text after a date"):
        trailer, why = SHAPES[shape]
        plistlib.loads(trailer)  # plistlib reads it, dropping the message
        assert why in apple_mail.trailer_refusal(trailer)


# --- what Apple writes is its metadata -----------------------------------------------------

TEXTS = st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",),
                              blacklist_characters="\x7f\u2028\u2029"
                              + "".join(map(chr, range(0x80, 0xa0)))), max_size=200)
APPLE_VALUES = {
    "date-received": st.integers(0, 2**40), "date-sent": st.integers(0, 2**40),
    "date-last-viewed": st.integers(0, 2**40), "flags": st.integers(0, 2**63 - 1),
    "conversation-id": st.integers(0, 2**63 - 1),
    "remote-id": st.text("0123456789", min_size=1, max_size=12),
    "original-mailbox": TEXTS, "subject": TEXTS, "sender": TEXTS, "to": TEXTS,
    "color": st.sampled_from(["000000", "FF0000", "3b5bdb"]),
    "gmail-label-ids": st.lists(st.integers(0, 2**31), max_size=12),
}


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({}, optional=APPLE_VALUES), st.booleans())
def test_any_property_list_apple_mail_writes_is_its_metadata(meta, crlf):
    trailer = plistlib.dumps(meta)
    trailer = trailer.replace(b"\n", b"\r\n") if crlf else trailer
    assert apple_mail.trailer_refusal(trailer) is None


def test_apples_key_set_is_the_rules():
    assert set(APPLE_VALUES) == set(apple_mail.APPLE_KEYS)


# --- F3: a file read as an .emlx and found none is not read again -------------------------

def test_a_count_not_followed_by_a_property_list_is_read_once(tmp_path, monkeypatch):
    """A 20 MiB file whose count fits but whose counted bytes are not followed by a
    property list: its message is not kept while the file is read again (peak memory
    under 1.5 times its size; it was twice), and a zip member is inflated once."""
    size = 20 * 1024 * 1024
    data = str(size).encode() + b"\n" + b"x" * size + b"NOTAPLIST"
    path = corpus.write(tmp_path, "1.emlx", data)
    tracemalloc.start()
    try:
        [item] = iter_mail([path], max_bytes=2 * size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert item.raw is None and "not followed by Apple's property list" in item.error
    assert item.error.startswith("not mail (")
    assert peak < 1.5 * size, peak

    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("Messages/1.emlx", data)
    inflated = []
    read = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read",
                        lambda self, n=-1: inflated.append(len(out := read(self, n))) or out)
    [from_zip] = iter_mail([archive], max_bytes=2 * size)
    assert from_zip.error == item.error.replace(str(path), str(archive))
    assert sum(inflated) < len(data) + 1024 * 1024  # once (and what sniffing re-reads)


@pytest.mark.parametrize("limit", [10**9, 1000], ids=["within the limit", "over it"])
def test_no_emlx_read_past_its_count_fails_as_main_reads_it(limit):
    """Read from a stream of unknown size, as _single_message would read it: not mail, or
    over the limit by what it counts."""
    from services.archive import mailfiles
    data = b"20\n" + b"y" * 5000
    reading = io.BytesIO(data)
    expected = mailfiles._single_message(io.BytesIO(data), "x", limit, None).error
    [item] = mailfiles._emlx_message(reading, "x", limit, None)
    assert item.error.startswith(expected + "; its first line is a number")


# --- low 2: a count line ending in CR LF --------------------------------------------------

def test_a_count_line_ending_in_crlf_says_it_looks_like_an_emlx(tmp_path):
    raw = corpus.message("crlf", crlf=True)
    path = corpus.write(tmp_path, "1.emlx", str(len(raw)).encode() + b"\r\n" + raw
                        + corpus.emlx_trailer().replace(b"\n", b"\r\n"))
    [item] = iter_mail([path])
    assert failed_loudly(item) and "as an Apple Mail .emlx begins" in item.error
    assert "ends in CR LF" in item.error and count_mail([path]) == 1
