"""A generated corpus of each kind of container and document mail carries, several variants
each, stored and indexed through the real sandboxed pool, then searched: forwarded messages
at depth 1-3, TNEF, zip (plain, nested, encrypted, bombs), S/MIME signed and enveloped data,
PGP/MIME, encrypted PDF, mislabeled types, legacy and OpenDocument formats."""
from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest

from tests.integration.archive.indexed import indexed_archive, names_found
from tests import reading_corpus as corpus
from tests.unit.archive.test_extract import make_docx, make_xlsx, pdf_with_text

PDF, ZIP = "application/pdf", "application/zip"
DEPTH = {1: "one", 2: "two", 3: "three"}
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def mail(subject: str, body: str = "see attached", attachments=(), html: str | None = None
         ) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"] = "sender@example.com", "archive@example.com"
    message["Subject"], message["Message-ID"] = subject, f"<{abs(hash(subject))}@example.com>"
    message["Date"] = "Mon, 02 Feb 2026 08:30:00 +0000"
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for item in attachments:
        if isinstance(item, EmailMessage):
            message.add_attachment(item)
        else:
            data, mime_type, filename = item
            maintype, subtype = mime_type.split("/")
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


def forwarded(depth: int) -> EmailMessage:
    """A message forwarded `depth` times, each level with an attachment of its own."""
    message = mail("level 0", f"innermost body word{depth}deep",
                   [(f"item,amount\nmarmot{DEPTH[depth]},1200\n".encode(), "text/csv",
                     f"budget-{DEPTH[depth]}.csv")])
    for level in range(1, depth + 1):
        message = mail(f"Fwd level {level}", f"forward note {level}",
                       [(pdf_with_text(f"pdf at level {level} ocelot{depth}x{level}"), PDF,
                         f"level-{DEPTH[level]}-of-{DEPTH[depth]}.pdf"), message])
    return message


def signed(entity: EmailMessage) -> bytes:
    """A whole message as S/MIME opaque signed-data (RFC 8551 3.5.2)."""
    der = corpus.smime_signed_data(entity.as_bytes())
    return (b"From: signer@example.com\r\nTo: archive@example.com\r\nSubject: signed "
            + entity["Subject"].encode() + b"\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
            b"Content-Disposition: attachment; filename=smime.p7m\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(der))


def enveloped(tmp_path) -> bytes:
    der = corpus.smime_enveloped_data(b"Content-Type: text/plain\r\n\r\nsecret words\r\n",
                                      tmp_path)
    return (b"From: secret@example.com\r\nTo: archive@example.com\r\nSubject: enveloped\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; name=smime.p7m\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(der))


PGP_MIME = (b"From: pgp@example.com\r\nTo: archive@example.com\r\nSubject: pgp mime\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; boundary=pgp;\r\n"
            b" protocol=\"application/pgp-encrypted\"\r\n\r\n--pgp\r\n"
            b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--pgp\r\n"
            b"Content-Type: application/octet-stream; name=encrypted.asc\r\n\r\n"
            b"-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA5ZpbW9jawo=\r\n=abcd\r\n"
            b"-----END PGP MESSAGE-----\r\n--pgp--\r\n")


def build(tmp_path) -> dict[str, bytes]:
    tnef_files = [("forecast-tnef.txt", b"tnef words aardwolf"),
                  ("nested.zip", corpus.zip_archive([("deep.txt", b"zip in tnef binturong")])),
                  ("b\xfcro.txt".encode("latin-1").decode("latin-1"), b"cp1252 name file")]
    zip_files = [("docs/report.docx", make_docx(["zipped docx caracal"], [["a"]])),
                 ("notes.txt", "zipped text größe dugong".encode()),
                 ("sheet.xlsx", make_xlsx([["zipped xlsx", "echidna"]])),
                 ("photo.jpg", b"\xff\xd8\xff\xe0 not really"),
                 ("inner.zip", corpus.zip_archive([("innermost.txt", b"two zips deep fossa")]))]
    return {
        **{f"forward{depth}": forwarded(depth).as_bytes() for depth in (1, 2, 3)},
        "tnef-body": mail("tnef body", attachments=[(corpus.tnef(
            tnef_files, body="outlook body gharial"), "application/ms-tnef",
            "winmail.dat")]).as_bytes(),
        "tnef-no-body": mail("tnef no body", attachments=[(corpus.tnef(
            [("only.txt", b"only file hoatzin")]), "application/octet-stream",
            "winmail.dat")]).as_bytes(),
        "tnef-hostile": mail("tnef hostile", "hostile tnef body", attachments=[(
            corpus.tnef([("x.txt", b"y")])[:40] + b"\xff" * 500, "application/ms-tnef",
            "winmail.dat")]).as_bytes(),
        "zip": mail("zip", attachments=[(corpus.zip_archive(zip_files), ZIP,
                                         "bundle.zip")]).as_bytes(),
        "zip-octet": mail("zip octet", attachments=[(corpus.zip_archive(
            [("octet.txt", b"zip sent as octet-stream jerboa")]), "application/octet-stream",
            "bundle.bin")]).as_bytes(),
        "zip-encrypted": mail("zip encrypted", attachments=[(corpus.zip_archive(
            [("secret.txt", b"hidden kinkajou")], password=b"pw"), ZIP,
            "locked.zip")]).as_bytes(),
        "zip-bomb": mail("zip bomb", "bomb body", attachments=[(corpus.zip_archive(
            [("bomb.txt", corpus.deflate_bomb(b"", 300)), ("liar.txt", corpus.deflate_bomb(
                b"", 300)), ("fine.txt", b"beside bomb lemming")], understate=("liar.txt",)),
            ZIP, "bomb.zip")]).as_bytes(),
        "signed": signed(mail("signed body", "signed words quetzal", [
            (b"signed attachment words tamarin", "text/plain", "signed-notes.txt")])),
        "enveloped": enveloped(tmp_path),
        "pgp": PGP_MIME,
        "pdf-encrypted": mail("pdf encrypted", attachments=[(corpus.encrypted_pdf(
            pdf_with_text("locked pdf words")), PDF, "locked.pdf")]).as_bytes(),
        "pdf-broken": mail("pdf broken", attachments=[(b"%PDF-1.4\nnothing else", PDF,
                                                       "broken.pdf")]).as_bytes(),
        "pdf-as-vcard": mail("pdf as vcard", attachments=[(pdf_with_text("vcard pdf numbat"),
                                                           "text/x-vcard", "card.vcf")]).as_bytes(),
        "docx-octet": mail("docx octet", attachments=[(make_docx(["octet docx pangolin"], [["a"]]),
                                                       "application/octet-stream",
                                                       "memo.dat")]).as_bytes(),
        "odt": mail("odt", attachments=[(corpus.opendocument("text", ["odt words quokka"]),
                                         "application/vnd.oasis.opendocument.text",
                                         "minutes.odt")]).as_bytes(),
        "ods": mail("ods", attachments=[(corpus.opendocument("spreadsheet", ["ods cell saiga"]),
                                         "application/octet-stream", "sheet.ods")]).as_bytes(),
        "rtf": mail("rtf", attachments=[(corpus.rtf(["rtf words größe tapir"]), "application/rtf",
                                         "letter.rtf")]).as_bytes(),
        "xls": mail("xls", attachments=[(corpus.xls([["xls cell", "wombat"]]),
                                         "application/vnd.ms-excel", "old.xls")]).as_bytes(),
        "html-only-words": mail("alternative", "plain part yak", html="<p>plain part yak "
                                "<b>htmlonly zorilla</b></p>").as_bytes(),
    }


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    opened = indexed_archive(tmp_path_factory.mktemp("data"), build(tmp_path_factory.mktemp("keys")))
    yield opened
    opened.close()


def found(archive, query) -> set[str]:
    return set(names_found(archive, query, limit=100))


def attachments(archive, name) -> list[str]:
    return archive.store.meta(archive.digests[name])["attachments"]


def problems(archive, name) -> list[str]:
    return archive.store.meta(archive.digests[name]).get("extraction_failures") or []


def test_everything_is_stored_byte_exact_and_indexed(archive):
    for name, raw in archive.raws.items():
        assert archive.store.get(archive.digests[name]) == raw
    assert found(archive, "") == set(archive.raws)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_forwarded_attachments_at_any_depth(archive, depth):
    name = f"forward{depth}"
    assert found(archive, f"filename:budget-{DEPTH[depth]}.csv") == {name}
    assert found(archive, f"marmot{DEPTH[depth]}") == {name}
    assert found(archive, f"word{depth}deep") == {name}
    for level in range(1, depth + 1):
        assert found(archive, f"filename:level-{DEPTH[level]}-of-{DEPTH[depth]}.pdf") == {name}
        assert found(archive, f"ocelot{depth}x{level}") == {name}
    assert f"budget-{DEPTH[depth]}.csv" in attachments(archive, name)
    assert {"forward1", "forward2", "forward3"} <= found(archive, "type:text/csv")


@pytest.mark.parametrize("query, expected", [
    ("filename:forecast-tnef.txt", {"tnef-body"}), ("aardwolf", {"tnef-body"}),
    ("gharial", {"tnef-body"}), ("binturong", {"tnef-body"}),       # body; zip in TNEF
    ("filename:deep.txt", {"tnef-body"}), ("hoatzin", {"tnef-no-body"}),
    ("filename:only.txt", {"tnef-no-body"}),
    ("type:application/vnd.ms-tnef", {"tnef-body", "tnef-no-body", "tnef-hostile"}),
])
def test_tnef_files_and_body_are_found(archive, query, expected):
    assert found(archive, query) == expected


def test_tnef_files_are_listed_and_a_hostile_one_flagged(archive):
    assert attachments(archive, "tnef-body")[:3] == ["winmail.dat", "forecast-tnef.txt",
                                                     "nested.zip"]
    assert found(archive, "hostile") == {"tnef-hostile"}
    assert "tnef-hostile" in found(archive, "has:extraction-failure")
    # (a stream damaged after its first 40 bytes: where, as tnef_stream says it)
    assert problems(archive, "tnef-hostile")[0].startswith("winmail.dat: damaged at byte ")


@pytest.mark.parametrize("query, expected", [
    ("caracal", {"zip"}), ("dugong", {"zip"}), ("größe", {"zip", "rtf"}), ("echidna", {"zip"}),
    ("fossa", {"zip"}), ("filename:photo.jpg", {"zip"}), ("filename:innermost.txt", {"zip"}),
    ("filename:report.docx", {"zip"}), ("type:image/jpeg", {"zip"}),
    ("jerboa", {"zip-octet"}), ("type:application/zip", {"zip", "zip-octet", "tnef-body",
                                                         "zip-encrypted", "zip-bomb"}),
    ("filename:secret.txt", {"zip-encrypted"}), ("kinkajou", set()),
    ("lemming", {"zip-bomb"}), ("filename:bomb.txt", {"zip-bomb"}),
])
def test_zip_members_are_found(archive, query, expected):
    assert found(archive, query) == expected


def test_zip_problems_are_flagged_with_their_reason(archive):
    assert problems(archive, "zip-encrypted") == [
        "secret.txt: encrypted (password-protected zip member)"]
    # One says it is 300 MiB, one lies that it is a byte: neither is read past the limit.
    assert problems(archive, "zip-bomb") == [
        f"bomb.txt: not read: {300 * 2**20} bytes uncompressed, over the {32 * 2**20}-byte limit",
        "liar.txt: cannot read this member: Bad CRC-32 for file 'liar.txt'"]


def test_s_mime_signed_data_is_read_like_a_body(archive):
    assert found(archive, "quetzal") == {"signed"}
    assert found(archive, "body:quetzal") == {"signed"}
    assert found(archive, "filename:signed-notes.txt") == {"signed"}
    assert found(archive, "tamarin") == {"signed"}
    assert "signed" not in found(archive, "has:encrypted")


def test_encrypted_content_is_marked(archive):
    assert found(archive, "has:encrypted") == {"enveloped", "pgp", "pdf-encrypted",
                                               "zip-encrypted"}
    assert problems(archive, "enveloped") == ["smime.p7m: encrypted: S/MIME enveloped-data"]
    assert problems(archive, "pdf-encrypted") == ["locked.pdf: encrypted: password-protected PDF"]


def test_unreadable_content_is_flagged(archive):
    assert found(archive, "has:extraction-failure") == {
        "tnef-hostile", "zip-encrypted", "zip-bomb", "enveloped", "pgp", "pdf-encrypted",
        "pdf-broken"}
    assert problems(archive, "pdf-broken")[0].startswith("broken.pdf: ToolFailed: pdftotext ")


@pytest.mark.parametrize("query, expected", [
    ("numbat", {"pdf-as-vcard"}), ("type:application/pdf", {"pdf-as-vcard", "pdf-encrypted",
                                                           "pdf-broken", "forward1",
                                                           "forward2", "forward3"}),
    ("type:text/x-vcard", {"pdf-as-vcard"}),                  # as declared, too
    ("pangolin", {"docx-octet"}), (f"type:{DOCX}", {"docx-octet", "zip"}),
    ("quokka", {"odt"}), ("saiga", {"ods"}), ("tapir", {"rtf"}),
    ("wombat", {"xls"}), ("type:application/vnd.oasis.opendocument.spreadsheet", {"ods"}),
    ("zorilla", {"html-only-words"}), ("yak", {"html-only-words"}),
])
def test_types_from_content_and_more_formats(archive, query, expected):
    assert found(archive, query) == expected
