"""Generators of the containers and documents real mail carries, for the reading tests:
Outlook TNEF (winmail.dat), S/MIME signed-data, zip archives (plain, encrypted, bombs),
OpenDocument, RTF, encrypted PDF. Everything is built here from the formats' specifications
([MS-OXTNEF], RFC 5652, PKWARE APPNOTE, OpenDocument 1.2), never copied from elsewhere.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache

# --- TNEF ([MS-OXTNEF] 2.1.3) ----------------------------------------------------------------

TNEF_SIGNATURE = 0x223E9F78
LVL_MESSAGE, LVL_ATTACHMENT = 0x01, 0x02
ATT_TNEF_VERSION = 0x00089006
ATT_OEM_CODEPAGE = 0x00069007
ATT_MESSAGE_CLASS = 0x00078008
ATT_SUBJECT = 0x00018004
ATT_BODY = 0x0002800C
ATT_ATTACH_REND_DATA = 0x00069002
ATT_ATTACH_TITLE = 0x00018010
ATT_ATTACH_DATA = 0x0006800F


def tnef_attribute(level: int, attribute: int, data: bytes) -> bytes:
    """One TNEF attribute: level, id, length, data, and the 16-bit sum of the data bytes."""
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BII", level, attribute, len(data)) + data + struct.pack("<H", checksum)


def tnef(files: list[tuple[str, bytes]], body: str | None = None, subject: str = "",
         key: int = 0x1234, codepage: int = 1252) -> bytes:
    """A winmail.dat with a plain-text body (attBody) and the given files as attachments,
    its text in Windows code page `codepage` (attOemCodepage)."""
    encoding = f"cp{codepage}"
    out = struct.pack("<IH", TNEF_SIGNATURE, key)
    out += tnef_attribute(LVL_MESSAGE, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000))
    out += tnef_attribute(LVL_MESSAGE, ATT_OEM_CODEPAGE, struct.pack("<II", codepage, 0))
    out += tnef_attribute(LVL_MESSAGE, ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\x00")
    if subject:
        out += tnef_attribute(LVL_MESSAGE, ATT_SUBJECT, subject.encode(encoding) + b"\x00")
    if body is not None:
        out += tnef_attribute(LVL_MESSAGE, ATT_BODY, body.encode(encoding) + b"\x00")
    for name, data in files:
        rend = struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0)  # attachment, no position
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, rend)
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, name.encode(encoding) + b"\x00")
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, data)
    return out



ATT_ATTACHMENT = 0x00069005  # the attachment's MAPI properties ([MS-OXTNEF] 2.1.3.4)
PR_ATTACH_LONG_FILENAME = 0x3707


def tnef_attachment(title: bytes | None, data: bytes, long_name: bytes | None = None,
                    unicode: bool = True) -> bytes:
    """One attachment of a TNEF stream: attAttachRendData, attAttachTitle (`title` as the
    stream has it, without its NUL; None: no such attribute), attAttachData and, with
    `long_name` (UTF-8), an attAttachment holding PR_ATTACH_LONG_FILENAME as PT_UNICODE
    (or PT_STRING8, the bytes as they are), after a PT_LONG property as Outlook writes
    several (PR_ATTACH_METHOD)."""
    rend = struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0)
    out = tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, rend)
    if title is not None:
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, title + b"\x00")
    out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, data)
    if long_name is not None:
        text = (long_name.decode("utf-8").encode("utf-16-le") + b"\0\0" if unicode
                else long_name + b"\0")
        method = struct.pack("<HHI", 0x0003, 0x3705, 1)  # PR_ATTACH_METHOD: by value
        name = struct.pack("<HHII", 0x001F if unicode else 0x001E, PR_ATTACH_LONG_FILENAME,
                           1, len(text)) + text + b"\0" * (-len(text) % 4)
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACHMENT,
                              struct.pack("<I", 2) + method + name)
    return out


def tnef_of(attachments: list[bytes], codepage: int = 1252) -> bytes:
    """A winmail.dat of these attachments (tnef_attachment) and no body."""
    return tnef([], codepage=codepage) + b"".join(attachments)

# --- zip (PKWARE APPNOTE 6.3) ----------------------------------------------------------------

@dataclass
class Deflated:
    """A member's data already deflated (raw deflate), with the CRC-32 and size of what it
    inflates to: a bomb need not exist uncompressed to be written."""
    data: bytes
    crc: int
    size: int


def deflate_bomb(prefix: bytes, megabytes: int, suffix: bytes = b"") -> Deflated:
    """prefix, megabytes MiB of spaces, suffix, deflated in about 1 KB per MiB. After a full
    flush deflate blocks do not refer back, so one compressed MiB can be repeated."""
    chunk = b" " * (1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(suffix) + compressor.flush()
    crc = zlib.crc32(prefix)
    for _ in range(megabytes):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(suffix, crc)
    return Deflated(head + block * megabytes + tail, crc, len(prefix) + megabytes * (1 << 20)
                    + len(suffix))


def zip_archive(members: list[tuple[str, bytes | Deflated]], password: bytes | None = None,
                understate: tuple[str, ...] = ()) -> bytes:
    """A zip archive; members given as bytes are deflated here. With a password every member
    is encrypted with traditional PKWARE encryption (APPNOTE 6.1); members named in
    `understate` claim an uncompressed size of 1 byte, as zip bombs lie."""
    out, central = b"", b""
    for name, content in members:
        if not isinstance(content, Deflated):
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            content = Deflated(compressor.compress(content) + compressor.flush(),
                               zlib.crc32(content), len(content))
        data, flags = content.data, 0x0800  # names in UTF-8
        if password is not None:
            data, flags = _zipcrypto(password, content.crc, data), flags | 0x1
        size = 1 if name in understate else content.size
        fields = struct.pack("<HHHHHIIIHH", 20, flags, 8, 0, 0x21, content.crc, len(data),
                             size, len(name.encode()), 0)
        central += b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack(
            "<HHHII", 0, 0, 0, 0, len(out)) + name.encode()
        out += b"PK\x03\x04" + fields + name.encode() + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      len(out), 0)
    return out + central + end


def _zipcrypto(password: bytes, crc: int, data: bytes) -> bytes:
    """Traditional PKWARE encryption: a 12-byte header ending in the CRC's high byte."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = _crc_byte(keys[0], byte)
        keys[1] = (keys[1] + (keys[0] & 0xFF)) & 0xFFFFFFFF
        keys[1] = (keys[1] * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = _crc_byte(keys[2], keys[1] >> 24)

    for byte in password:
        update(byte)
    out = bytearray()
    for byte in bytes(range(11)) + bytes([crc >> 24]) + data:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def _crc_byte(crc: int, byte: int) -> int:
    """One step of CRC-32 on a running (not inverted) register, as ZipCrypto uses it."""
    return ~zlib.crc32(bytes([byte]), ~crc & 0xFFFFFFFF) & 0xFFFFFFFF


def docx_bomb(megabytes: int) -> bytes:
    """A .docx whose document.xml inflates to `megabytes` MiB (of whitespace in the body)."""
    import docx
    buffer = io.BytesIO()
    docx.Document().save(buffer)
    members = []
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                at = data.index(b"<w:body>") + len(b"<w:body>")
                data = deflate_bomb(data[:at], megabytes, data[at:])
            members.append((info.filename, data))
    return zip_archive(members)


# --- S/MIME (RFC 8551) -----------------------------------------------------------------------

def certificate_for(key, email: str):
    """A self-signed certificate for key, naming email (as an S/MIME certificate does)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, email)])
    start = datetime.datetime(2025, 1, 1)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))


def smime_signed_data(entity: bytes) -> bytes:
    """Opaque signed-data (DER) carrying a MIME entity, signed with cryptography's builder."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs7
    key = ec.generate_private_key(ec.SECP256R1())
    return (pkcs7.PKCS7SignatureBuilder().set_data(entity)
            .add_signer(certificate_for(key, "signer@example.com"), key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))


def smime_enveloped_data(entity: bytes, tmp_dir) -> bytes:
    """Enveloped-data (DER) for a new recipient, by `openssl cms -encrypt` (cryptography 38
    cannot encrypt CMS)."""
    import subprocess
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(65537, 2048)
    recipient = tmp_dir / "recipient.pem"
    recipient.write_bytes(certificate_for(key, "recipient@example.com").public_bytes(
        serialization.Encoding.PEM))
    return subprocess.run(["openssl", "cms", "-encrypt", "-binary", "-aes256", "-outform", "DER",
                           str(recipient)], input=entity, capture_output=True, check=True).stdout


# --- documents -------------------------------------------------------------------------------

def opendocument(kind: str, paragraphs: list[str]) -> bytes:
    """An OpenDocument text ("text") or spreadsheet ("spreadsheet") with the given text."""
    office = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
              'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
              'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"')
    if kind == "text":
        body = "<office:text>" + "".join(f"<text:p>{p}</text:p>" for p in paragraphs) + \
            "</office:text>"
    else:
        cells = "".join(f'<table:table-row><table:table-cell office:value-type="string">'
                        f"<text:p>{p}</text:p></table:table-cell></table:table-row>"
                        for p in paragraphs)
        body = (f'<office:spreadsheet><table:table table:name="Sheet1">{cells}'
                "</table:table></office:spreadsheet>")
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {office} '
               f'office:version="1.2"><office:body>{body}</office:body>'
               "</office:document-content>")
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
                '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry '
                'manifest:full-path="/" manifest:media-type="application/vnd.oasis.'
                f'opendocument.{kind}"/><manifest:file-entry manifest:full-path="content.xml" '
                'manifest:media-type="text/xml"/></manifest:manifest>')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), f"application/vnd.oasis.opendocument.{kind}")
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def rtf(paragraphs: list[str]) -> bytes:
    """An RTF document as Word writes one: Windows-1252 characters as \\'xx escapes, others
    as \\uN with a '?' fallback."""
    def escape(c: str) -> str:
        if ord(c) < 128:
            return "\\" + c if c in "\\{}" else c
        try:
            return "\\'%02x" % c.encode("cp1252")[0]
        except UnicodeEncodeError:
            return "\\u%d\\'3f" % (ord(c) if ord(c) < 32768 else ord(c) - 65536)
    body = "".join("".join(map(escape, p)) + "\\par\n" for p in paragraphs)
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fswiss Helvetica;}}\n"
            f"\\f0\\fs24 {body}}}").encode("ascii")


def xls(rows: list[list[str]]) -> bytes:
    """A legacy Excel (BIFF8) workbook, written by xlwt."""
    import xlwt
    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def encrypted_pdf(pdf: bytes, password: str = "secret") -> bytes:
    """The PDF encrypted with a user password (pypdf's writer)."""
    import pypdf
    writer = pypdf.PdfWriter()
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        writer.add_page(page)
    writer.encrypt(password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def slow_xlsx(rows: int, sheets: int = 1) -> bytes:
    """An XLSX of `sheets` sheets of `rows` rows of 50 empty cells each: tiny compressed,
    slow to walk (openpyxl takes about 1.8 us a cell on this project's 2-core machine)."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    relationships = "http://schemas.openxmlformats.org/package/2006/relationships"
    officedoc = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    numbers = range(1, sheets + 1)
    ct = ('<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
          '<Default Extension="xml" ContentType="application/xml"/>'
          '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
          + "".join(f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                    for n in numbers) + '</Types>')
    rels = (f'<?xml version="1.0"?><Relationships xmlns="{relationships}">'
            f'<Relationship Id="rId1" Type="{officedoc}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
    wb = (f'<?xml version="1.0"?><workbook xmlns="{main}" xmlns:r="{officedoc}"><sheets>'
          + "".join(f'<sheet name="S{n}" sheetId="{n}" r:id="rId{n}"/>' for n in numbers)
          + '</sheets></workbook>')
    wbrels = (f'<?xml version="1.0"?><Relationships xmlns="{relationships}">'
              + "".join(f'<Relationship Id="rId{n}" Type="{officedoc}/worksheet" Target="worksheets/sheet{n}.xml"/>'
                        for n in numbers) + '</Relationships>')
    row = "<row>" + "<c/>" * 50 + "</row>"
    sheet = (f'<?xml version="1.0"?><worksheet xmlns="{main}"><sheetData>'
             + row * rows + "</sheetData></worksheet>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", ct); z.writestr("_rels/.rels", rels)
        z.writestr("xl/workbook.xml", wb); z.writestr("xl/_rels/workbook.xml.rels", wbrels)
        for n in numbers:
            z.writestr(f"xl/worksheets/sheet{n}.xml", sheet)
    return out.getvalue()


@cache  # built once (0.6 s) for every module of a run that uses it
def stall_xlsx() -> bytes:
    """A workbook whose reading any extraction time limit cuts off, on machines several
    times faster than this project's: 8 sheets of 100,000 rows, 40 million empty cells
    (about 70 s of openpyxl here; one sheet took 8.8 s, under the 10 s limit of a test)."""
    return slow_xlsx(100_000, sheets=8)
