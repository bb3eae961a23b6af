"""A message whose attachment is a large zip, Word document or PDF is imported within the
model 450's memory bound (#20: 256 MB whatever the input). A 96 MiB message carrying a
stored zip of seven 10 MiB files took 340 MB, the extraction worker holding the message,
the zip decoded whole and every member read out of it at once; one carrying a 70 MiB .docx
(a large image inside) 270 MB; one carrying a 70 MiB PDF 394 MB. The worker now reads each
through a seekable file that decodes the piece of base64 asked for
(transfer_encoding.Base64File), a zip's members one at a time (containers.zip_members), and
the pdf-text-server reads a PDF from a scratch file the worker copies it into, not held
whole (282 MB when it was): zip 215 MB, .docx 216 MB, and the text inside is still found.
A 70 MiB TNEF (a note and a 70 MiB file) took 425 MB: the worker held the message, the
stream decoded whole and tnef_stream's prepared copy of it, tnef the stream (fed whole) and
the 70 MiB file it wrote; a 70 MiB S/MIME signed-data object 460 MB and the worker ran out
of memory (its content unread): the object, openssl's output and the content parsed as a
str. Both are now read through the Base64File: tnef is fed the stream a chunk at a time,
the file over the read limit given to it as a token (tnef_stream's over_limit); openssl
reads the object with its eContent replaced by a token (cms_der.stand_in) and the content
is read out of the file, the payload spilled to a mapped file first (the message freed):
the peak of each, 199 and 194 MB, is now the import's storing of the message."""
from __future__ import annotations

import base64
import io
import random
import zipfile

import docx
import pytest

from tests.reading_corpus import smime_signed_data, tnef
from tests.integration.archive.test_review_r25 import (imported_within_the_bound, maildir_of,
                                                      searched)
from tests.unit.archive.test_pdf_text_server import pdf_with_a_large_stream

MiB = 1 << 20
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def large_zip(rng: random.Random) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for at in range(7):
            archive.writestr(f"f{at}.bin", rng.randbytes(10 * MiB))
        archive.writestr("notes.txt", b"the quarterly largeword is inside the large zip\n")
    return out.getvalue()


def large_docx(rng: random.Random) -> bytes:
    """A Word document of a paragraph and a 70 MiB picture (a stored zip member)."""
    document = docx.Document()
    document.add_paragraph("the quarterly largeword is in the document")
    small = io.BytesIO()
    document.save(small)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(small.getvalue())) as parts, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for info in parts.infolist():
            archive.writestr(info, parts.read(info))
        archive.writestr("word/media/picture.bin", rng.randbytes(70 * MiB))
    return out.getvalue()


def large_pdf(rng: random.Random) -> bytes:
    """A PDF of a page of text and a 70 MiB stream (as an embedded picture or font is)."""
    return pdf_with_a_large_stream(70 * MiB).replace(b"the words of a large pdf",
                                                     b"the quarterly largeword of the pdf")


def large_tnef(rng: random.Random) -> bytes:
    """A winmail.dat of a note and a 70 MiB file."""
    return tnef([("notes.txt", b"the quarterly largeword is inside the winmail.dat\n"),
                 ("big.bin", rng.randbytes(70 * MiB))])


def large_signed(rng: random.Random) -> bytes:
    """Opaque S/MIME signed-data (a .p7m of ~70 MiB) carrying a MIME entity of a text part
    and a 51 MiB file (base64: 70 MiB)."""
    encoded = base64.encodebytes(rng.randbytes(51 * MiB)).replace(b"\n", b"\r\n")
    entity = (b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n"
              b"--inner\r\nContent-Type: text/plain\r\n\r\n"
              b"the quarterly largeword is in the signed entity\r\n--inner\r\n"
              b"Content-Type: application/octet-stream; name=big.bin\r\n"
              b"Content-Transfer-Encoding: base64\r\n"
              b"Content-Disposition: attachment; filename=big.bin\r\n\r\n%s--inner--\r\n"
              % encoded)
    return smime_signed_data(entity)


KINDS = {"zip": (large_zip, "application/zip", "z.zip", 9),  # the zip and its 8 members
         "docx": (large_docx, DOCX, "report.docx", 1),
         "pdf": (large_pdf, "application/pdf", "report.pdf", 1),
         "tnef": (large_tnef, "application/ms-tnef", "winmail.dat", 3),  # it and its 2 files
         "signed": (large_signed, "application/pkcs7-mime", "smime.p7m", 2)}  # it, big.bin


def message_with(data: bytes, mime_type: str, name: str) -> bytes:
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"From: a@example.org\r\nSubject: large file\r\nMessage-ID: <f@example.org>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=sep\r\n\r\n"
            b"--sep\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n--sep\r\n"
            b"Content-Type: %s; name=%s\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=%s\r\n\r\n%s--sep--\r\n"
            % (mime_type.encode(), name.encode(), name.encode(), encoded))


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_message_with_a_70_mib_attachment_is_imported_within_the_bound_and_read(
        tmp_path, kind):
    make, mime_type, name, files = KINDS[kind]
    maildir = maildir_of(tmp_path, message_with(make(random.Random(7)), mime_type, name))
    imported_within_the_bound(tmp_path, maildir, 1)
    hits = searched(tmp_path, "largeword")
    assert [hit["attachments"] for hit in hits] == [files]
