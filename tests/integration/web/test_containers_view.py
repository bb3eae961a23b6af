"""Messages whose whole body is one attachment (a scanner's PDF, S/MIME opaque-signed or
encrypted mail, with and without smime-type) and TNEF (winmail.dat) files: the message
view lists what they hold, each downloadable, with its preview; an opaque-signed message
shows the signed content as its body, an encrypted one says it cannot be read. Images too
large to decode in a reader's browser are said and downloadable, never shown inline."""
from __future__ import annotations

import base64
import io
import quopri
import re
import struct
import unicodedata
import zlib
from email.message import EmailMessage

import pytest
from PIL import Image

from tests import reading_corpus as corpus
from tests.integration.web.review_mails import pdf, png
from tests.integration.web.test_ui import logged_in
from tests.unit.web.test_unreadable_members import zip_of

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

SCAN = pdf(["Scanned page one", "Scanned page two"])
HEAD = (b"From: device@example.org\r\nTo: alice@example.com\r\nDate: Fri, 12 Jan 2024 "
        b"09:00:00 +0000\r\nMIME-Version: 1.0\r\n")


def whole_body(subject: str, content_type: str, data: bytes, extra: bytes = b"") -> bytes:
    """A message with no multipart: its body is `data`, base64."""
    return (HEAD + b"Subject: " + subject.encode() + b"\r\nContent-Type: " + content_type.encode()
            + b"\r\n" + extra + b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(data))


# A message whose whole body is one file, of each kind a mailer or a scanner sends: (type,
# Content-Disposition or None, the name every view gives it or None, the file's bytes).
WHOLE_BODY_FILES = {
    "pdf-named": ("application/pdf; name=scan.pdf", None, "scan.pdf", SCAN),
    "pdf-nameless": ("application/pdf", None, None, SCAN),
    "jpeg": ("image/jpeg", "inline", None, b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 photo"),
    "octets-named": ("application/octet-stream; name=data.bin", None, "data.bin",
                     bytes(range(256))),
    "octets-disposed": ("application/octet-stream", 'attachment; filename="d.bin"', "d.bin",
                        b"\x00\x01 octets \xfe"),
    "text-disposed": ("text/plain; charset=utf-8", 'attachment; filename="notes.txt"',
                      "notes.txt", "Notes in a file: caf\u00e9\n".encode()),
}
WHOLE_BODY_ENCODINGS = ("base64", "quoted-printable", "8bit")


def whole_body_encoded(subject: str, content_type: str, disposition: str | None, data: bytes,
                       encoding: str) -> bytes:
    """A message with no multipart whose body is `data` in transfer `encoding`."""
    body = {"base64": base64.encodebytes, "quoted-printable": quopri.encodestring,
            "8bit": bytes}[encoding](data)
    disposed = f"Content-Disposition: {disposition}\r\n".encode() if disposition else b""
    return (HEAD + b"Subject: " + subject.encode() + b"\r\nContent-Type: "
            + content_type.encode() + b"\r\n" + disposed + b"Content-Transfer-Encoding: "
            + encoding.encode() + b"\r\n\r\n" + body)


def whole_body_family() -> dict[str, bytes]:
    return {f"whole-{kind}-{encoding}": whole_body_encoded(
                f"Whole {kind} {encoding}", content_type, disposition, data, encoding)
            for kind, (content_type, disposition, _, data) in WHOLE_BODY_FILES.items()
            for encoding in WHOLE_BODY_ENCODINGS}


def signed_entity() -> bytes:
    entity = EmailMessage()
    entity.set_content("The signed words of the contract.")
    entity.add_attachment(SCAN, maintype="application", subtype="pdf", filename="terms.pdf")
    return entity.as_bytes()


def forwarded_scan() -> bytes:
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "dave@example.com", "alice@example.com", \
        "Fwd: scan"
    outer.set_content("The scan, forwarded.")
    outer.add_attachment(whole_body("Scan", "application/pdf; name=inner.pdf", SCAN),
                         maintype="message", subtype="rfc822")
    return outer.as_bytes()


def forwarded_scan_as_eml() -> bytes:
    """The forwarded scan attached as a file: application/octet-stream named .eml."""
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "dave@example.com", "alice@example.com", \
        "Fwd: scan file"
    outer.set_content("The scan, forwarded as a file.")
    outer.add_attachment(FORWARDED_SCAN_EML, maintype="application", subtype="octet-stream",
                         filename="scan forward.eml")
    return outer.as_bytes()


FORWARDED_SCAN_EML = whole_body("Scan in a file", "application/pdf; name=inner.pdf", SCAN)


def zip_of_unreadable_members() -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "files@example.com", \
        "alice@example.com", "Locked zip"
    message.set_content("Two of the three are locked.")
    message.add_attachment(zip_of([("open.txt", b"open words\n", "deflated"),
                                   ("locked.txt", b"secret words\n", "encrypted"),
                                   ("odd.txt", b"odd method\n", "method")]),
                           maintype="application", subtype="zip", filename="files.zip")
    return message.as_bytes()


def tnef_mail() -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "outlook@example.com", \
        "alice@example.com", "Outlook forecast"
    message.set_content("See the attached forecast.")
    winmail = corpus.tnef([("forecast-q3.txt", b"Q3 forecast: 42 units\n"),
                           ("chart.pdf", SCAN)], body="tnef body")
    message.add_attachment(winmail, maintype="application", subtype="ms-tnef",
                           filename="winmail.dat")
    return message.as_bytes()


def marked(char: str) -> str:
    """A bidirectional control as the page shows it (services.web.formatting.isolated)."""
    code = f"U+{ord(char):04X}"
    return (f'<span class="bidi-control" title="{code} {unicodedata.name(char)}: a '
            f'bidirectional control in the mail, shown here, not applied">{code}</span>')


BIDI_NAMES = {  # a stranger's file name -> how the tree shows it: bidi controls marked,
    # other format characters escaped
    "invoice\u202egpj.exe": f"invoice{marked(chr(0x202e))}gpj.exe",  # RIGHT-TO-LEFT OVERRIDE
    "report\u2066fdp.\u2069exe": f"report{marked(chr(0x2066))}fdp.{marked(chr(0x2069))}exe",
    "zero\u200bwidth\u200f.txt": f"zero\\u200bwidth{marked(chr(0x200f))}.txt",
    "mark\u061c.txt": f"mark{marked(chr(0x61c))}.txt",                 # ARABIC LETTER MARK
}


def bidi_names_mail() -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "x@example.org", \
        "alice@example.com", "Names that lie"
    message.set_content("see attached")
    for name in BIDI_NAMES:
        message.add_attachment(b"MZ", maintype="application", subtype="octet-stream",
                               filename=name)
    return message.as_bytes()


def test_control_and_bidi_characters_in_names_are_shown_escaped(site):
    alice, digest = logged_in(site, "alice"), site.digests["bidi-names"]
    parts = tree(alice.get(f"/message/{digest}").body.decode())
    for number, shown in enumerate(BIDI_NAMES.values(), 2):
        assert f'href="/message/{digest}/attachment/{number - 1}"><bdi>{shown}</bdi></a>' \
            in parts, shown
    assert not any(char in parts for char in "\u202e\u2066\u2069\u200b\u200f\u061c")


@pytest.fixture(scope="module")
def extra_mails(tmp_path_factory, big_images_mail):
    signed = corpus.smime_signed_data(signed_entity())
    encrypted = corpus.smime_enveloped_data(b"Content-Type: text/plain\r\n\r\nsecret\r\n",
                                            tmp_path_factory.mktemp("smime"))
    mails = {
        "scan": whole_body("Scan", "application/pdf; name=scan.pdf", SCAN),
        "scan-nameless": whole_body("Nameless scan", "application/pdf", SCAN),
        "scan-disposition": whole_body("Disposed scan", "application/octet-stream", SCAN,
                                       b"Content-Disposition: attachment; filename=\"s.pdf\"\r\n"),
        "image": whole_body("Photo", "image/png; name=photo.png", png()),
        "signed": whole_body("Signed", "application/pkcs7-mime; smime-type=signed-data; "
                             "name=smime.p7m", signed),
        "signed-untyped": whole_body("Signed untyped", "application/x-pkcs7-mime; "
                                     "name=smime.p7m", signed),
        "encrypted": whole_body("Encrypted", "application/pkcs7-mime; "
                                "smime-type=enveloped-data; name=smime.p7m", encrypted),
        "encrypted-untyped": whole_body("Encrypted untyped", "application/pkcs7-mime",
                                        encrypted),
        "forwarded-scan": forwarded_scan(),
        "forwarded-scan-eml": forwarded_scan_as_eml(),
        "unreadable-members": zip_of_unreadable_members(),
        "tnef": tnef_mail(),
        "big-images": big_images_mail,
        "bidi-names": bidi_names_mail(),
        **whole_body_family(),
    }
    return {name: (raw, None) for name, raw in mails.items()}


def tree(page: str) -> str:
    return page[page.index('<ul class="tree">'):page.index("</aside>")]


@pytest.mark.parametrize("name, label", [("scan", "scan.pdf"), ("scan-nameless", "(no name, saved as attachment-1)"),
                                         ("scan-disposition", "s.pdf")])
def test_a_scanned_pdf_is_a_part_with_its_pages(site, name, label):
    alice, digest = logged_in(site, "alice"), site.digests[name]
    page = alice.get(f"/message/{digest}").body.decode()
    assert f'<a class="download" href="/message/{digest}/attachment/1"><bdi>{label}</bdi></a>' \
        in tree(page)
    assert f'<img class="pdf-page" src="/message/{digest}/part/1/page/2"' in page
    assert alice.get(f"/message/{digest}/part/1").body == SCAN
    shown = alice.get(f"/message/{digest}/part/1/page/1")
    assert shown.status == 200 and shown.body.startswith(b"\x89PNG")


def test_an_image_as_the_whole_body_is_shown(site):
    alice, digest = logged_in(site, "alice"), site.digests["image"]
    page = alice.get(f"/message/{digest}").body.decode()
    assert f'src="/message/{digest}/part/1/inline"' in page
    assert alice.get(f"/message/{digest}/part/1/inline").body == png()


@pytest.mark.parametrize("kind", WHOLE_BODY_FILES)
@pytest.mark.parametrize("encoding", WHOLE_BODY_ENCODINGS)
def test_a_whole_body_file_is_attachment_1_of_the_api_and_part_1_of_the_page(
        site, kind, encoding):
    """A message that is not multipart and whose body is a file lists it in the API as
    attachment 1 (downloadable, its bytes decoded) and in the page as part 1, under the
    name the indexer recorded for it; the page shows no body text (not the file's bytes)."""
    content_type, _, name, data = WHOLE_BODY_FILES[kind]
    alice, digest = logged_in(site, "alice"), site.digests[f"whole-{kind}-{encoding}"]
    shown = alice.get(f"/api/messages/{digest}").json()
    assert [(found["number"], found["filename"], found["content_type"], found["size"])
            for found in shown["attachments"]] == [
        (1, name or "attachment-1", content_type.split(";")[0], len(data))]
    assert shown["attachment_names"] == ([name] if name else [])
    assert alice.get(f"/api/messages/{digest}/attachments/1").body == data
    assert alice.get(f"/api/messages/{digest}/attachments/2").status == 404
    page = alice.get(f"/message/{digest}").body.decode()
    label = name or "(no name, saved as attachment-1)"  # as `show` names it (r9 F6)
    assert f'href="/message/{digest}/attachment/1"><bdi>{label}</bdi></a>' in tree(page)
    assert f'href="/message/{digest}/part/2"' not in tree(page)
    assert alice.get(f"/message/{digest}/part/1").body == data
    assert '<pre class="body" id="body">' not in page or \
        re.search(r'<pre class="body" id="body">\s*</pre>', page)


@pytest.mark.parametrize("name", ["signed", "signed-untyped"])
def test_opaque_signed_mail_shows_the_signed_content(site, name):
    alice, digest = logged_in(site, "alice"), site.digests[name]
    page = alice.get(f"/message/{digest}").body.decode()
    assert '<pre class="body" id="body">The signed words of the contract.' in page
    parts = tree(page)
    assert f'href="/message/{digest}/attachment/1"><bdi>smime.p7m</bdi></a>' in parts
    terms = re.search(r'href="/message/\w+/part/([\d.]+)"><bdi>terms.pdf</bdi></a>', parts).group(1)
    assert terms == "1.1.2"
    assert f'<img class="pdf-page" src="/message/{digest}/part/1.1.2/page/1"' in page
    assert alice.get(f"/message/{digest}/part/1.1.2").body == SCAN
    assert alice.get(f"/message/{digest}/part/1").body.startswith(b"\x30")  # the DER


@pytest.mark.parametrize("name", ["encrypted", "encrypted-untyped"])
def test_encrypted_mail_says_so_and_downloads(site, name):
    alice, digest = logged_in(site, "alice"), site.digests[name]
    page = alice.get(f"/message/{digest}").body.decode()
    assert "encrypted (S/MIME): it cannot be read without the key" in page
    assert "encrypted: cannot be read without the key" in tree(page)
    assert f'href="/message/{digest}/attachment/1">' in tree(page)
    assert alice.get(f"/message/{digest}/part/1").body.startswith(b"\x30")


def test_a_forwarded_scan_opens_with_its_pdf(site):
    alice, digest = logged_in(site, "alice"), site.digests["forwarded-scan"]
    inner = alice.get(f"/message/{digest}?part=2").body.decode()
    assert f'<a class="download" href="/message/{digest}/part/2.1.1"><bdi>inner.pdf</bdi></a>' \
        in inner
    assert f'src="/message/{digest}/part/2.1.1/page/1"' in inner
    assert alice.get(f"/message/{digest}/part/2.1.1").body == SCAN


def test_a_scan_forwarded_as_a_eml_file_opens_as_a_message(site):
    """A .eml sent application/octet-stream, which the indexer reads as a forwarded
    message: the page, the API and its own page show what it carries; it downloads as
    the file it came as."""
    alice, digest = logged_in(site, "alice"), site.digests["forwarded-scan-eml"]
    files = alice.get(f"/api/messages/{digest}").json()["attachments"]
    assert [(found["filename"], [inner["filename"] for inner in found["files"]])
            for found in files] == [("scan forward.eml", ["inner.pdf"])]
    assert alice.get(f"/api/messages/{digest}/attachments/1").body == FORWARDED_SCAN_EML
    page = alice.get(f"/message/{digest}").body.decode()
    assert f'href="/message/{digest}/part/2.1.1"><bdi>inner.pdf</bdi></a>' in tree(page)
    inner = alice.get(f"/message/{digest}?part=2").body.decode()
    assert "Scan in a file" in inner
    assert f'src="/message/{digest}/part/2.1.1/page/1"' in inner
    assert alice.get(f"/message/{digest}/part/2.1.1").body == SCAN


def test_members_that_cannot_be_read_say_why_and_download_as_an_error(site):
    """An encrypted member and one of a compression method zipfile cannot undo: listed with
    the reason the indexer records (show's `unreadable:`), never as a 0-byte file; the page
    links no download for them, and the part's URL answers an error saying why."""
    alice, digest = logged_in(site, "alice"), site.digests["unreadable-members"]
    zip_file = alice.get(f"/api/messages/{digest}").json()["attachments"][0]
    inside = {file["filename"]: file for file in zip_file["files"]}
    assert inside["open.txt"]["size"] == len(b"open words\n")
    assert "unreadable" not in inside["open.txt"]
    assert (inside["locked.txt"]["size"], inside["locked.txt"]["unreadable"]) == \
        (None, "encrypted (password-protected zip member)")
    assert inside["odd.txt"]["size"] is None
    assert inside["odd.txt"]["unreadable"].startswith("cannot read this member: ")
    parts = tree(alice.get(f"/message/{digest}").body.decode())
    assert f'href="/message/{digest}/part/2.1"><bdi>open.txt</bdi></a>' in parts
    for path, name in (("2.2", "locked.txt"), ("2.3", "odd.txt")):
        assert f"/part/{path}" not in parts
        assert f'<span class="unreadable-file"><bdi>{name}</bdi></span>' in parts
        refused = alice.get(f"/message/{digest}/part/{path}")
        assert refused.status == 404 and inside[name]["unreadable"] in refused.body.decode()
    assert "unreadable: <bdi>encrypted (password-protected zip member)</bdi>" in parts
    assert alice.get(f"/message/{digest}/part/2.1").body == b"open words\n"


def test_the_files_of_a_tnef_attachment_are_listed_and_downloadable(site):
    alice, digest = logged_in(site, "alice"), site.digests["tnef"]
    page = alice.get(f"/message/{digest}").body.decode()
    parts = tree(page)
    assert f'href="/message/{digest}/attachment/1"><bdi>winmail.dat</bdi></a>' in parts
    assert f'href="/message/{digest}/part/2.1"><bdi>forecast-q3.txt</bdi></a>' in parts
    assert f'href="/message/{digest}/part/2.2"><bdi>chart.pdf</bdi></a>' in parts
    assert alice.get(f"/message/{digest}/part/2.1").body == b"Q3 forecast: 42 units\n"
    assert alice.get(f"/message/{digest}/part/2.2").body == SCAN
    assert "Q3 forecast: 42 units" in page  # the text file's preview
    assert f'src="/message/{digest}/part/2.2/page/1"' in page


# -- images too large to show inline ---------------------------------------------------------

def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, and no pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                  0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def encoded(image: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    image.save(out, kind)
    return out.getvalue()


BIG_IMAGES = {  # name -> (bytes, what the page says)
    "huge.png": (encoded(Image.new("1", (20000, 20000)), "PNG"), "a decompression bomb"),
    "bomb.png": (png_header_only(100000, 100000), "a decompression bomb"),
    "wide.jpg": (encoded(Image.new("L", (40000, 500)), "JPEG"), "40000×500 pixels"),
    "big.png": (encoded(Image.new("1", (5000, 5000)), "PNG"), "5000×5000 pixels"),
}


@pytest.fixture(scope="module")
def big_images_mail():
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "pics@example.org", \
        "alice@example.com", "Big pictures"
    message.set_content("Pictures attached.")
    message.add_alternative('<p>inline: <img src="cid:huge@example.org" alt="huge"></p>',
                            subtype="html")
    message.get_payload()[1].add_related(BIG_IMAGES["huge.png"][0], maintype="image",
                                         subtype="png", cid="<huge@example.org>")
    for name, (data, _) in BIG_IMAGES.items():
        subtype = "jpeg" if name.endswith(".jpg") else "png"
        message.add_attachment(data, maintype="image", subtype=subtype, filename=name)
    message.add_attachment(png(), maintype="image", subtype="png", filename="small.png")
    return message.as_bytes()


def test_images_too_large_are_said_and_downloaded_never_inline(site):
    alice, digest = logged_in(site, "alice"), site.digests["big-images"]
    page = alice.get(f"/message/{digest}").body.decode()
    inline = re.findall(r'<img src="/message/\w+/part/([\d.]+)/inline"', page)
    assert inline == ["6"]  # small.png only
    figures = re.findall(r'<figure class="preview preview-image">(.*?)</figure>', page, re.S)
    for (name, (data, says)), number in zip(BIG_IMAGES.items(), range(2, 6)):
        figure = next(f for f in figures if f"><bdi>{name}</bdi></a>" in f)
        assert says in figure and "download it" in figure, (name, figure)
        reply = alice.get(f"/message/{digest}/part/{number}/inline")
        assert reply.headers["Content-Disposition"].startswith("attachment"), name
        assert reply.body == data
    frame = alice.get(f"/message/{digest}/frame").body.decode()
    assert "data:image/png" not in frame and "inline:" in frame
