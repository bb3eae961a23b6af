"""Text of the document formats read with Debian's tools, inside the extraction worker
(services.archive.tools limits each run): PDF (poppler's pdftotext text, from the worker's
pdf-text-server: services.archive.pdf_text_server), legacy Word (antiword, else catdoc),
legacy Excel (xls2csv), RTF (unrtf), OpenDocument text, spreadsheets and presentations
(odt2txt).

pdftotext replaces pypdf for text: it is C, several times faster, keeps words apart where
pypdf runs them together, and a malformed content stream that sends pypdf 3.4 into an endless
loop (../shared/cases hostile/loop.pdf) is a syntax error to it. pdf-text-server gives the
same text without a process per PDF (which cost 4 of its 7 ms).

Why not poppler's GObject binding in the worker (tried for #20): its text is selection
text, not pdftotext's reading order, and on real PDFs it runs words together that pdftotext
keeps apart ("1Introduction", "-ASelect", "ustarPOSIX": up to 2.6% of the words of man
pages, a texinfo manual, a DocBook spec), which a search then misses; only per-glyph boxes
could split them, and reading those costs more in Python than the process saves.
tests/unit/archive/test_pdf_text.py holds what any replacement must give (the merges above
come from real documents' layout; no handmade PDF there shows them).

text_of() raises Encrypted for a document that needs a password, tools.ToolFailed (or
ValueError) with the reason for one that cannot be read.
"""
from __future__ import annotations

import io
from typing import BinaryIO

from services.archive import pdf_text_server, tools

PDF = "application/pdf"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
RTF_TYPES = ("application/rtf", "text/rtf", "application/x-rtf")
ODF_PREFIX = "application/vnd.oasis.opendocument."
ENCRYPTED_OFFICE = "application/encrypted"  # libmagic's type of a password-protected OOXML
TYPE_OF_EXTENSION = {".doc": DOC, ".dot": DOC, ".xls": XLS, ".xlt": XLS, ".rtf": "application/rtf",
                     ".odt": ODF_PREFIX + "text", ".ods": ODF_PREFIX + "spreadsheet",
                     ".odp": ODF_PREFIX + "presentation", ".zip": "application/zip"}
PDF_MAX_PAGES = 2000
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # [MS-CFB] 2.2


class Encrypted(Exception):
    """The document needs a password (or key) we do not have; str() says what it is."""


def handles(mime_type: str) -> bool:
    return (mime_type in (PDF, DOC, XLS, ENCRYPTED_OFFICE) or mime_type in RTF_TYPES
            or mime_type.startswith(ODF_PREFIX))


def text_of(mime_type: str, data: bytes | BinaryIO) -> str:
    """The text of a document of a type handles() accepts; `data` a seekable file only
    for a PDF (pdf_text)."""
    if mime_type == PDF:
        return pdf_text(data)
    if mime_type == ENCRYPTED_OFFICE or office_encrypted(data):
        raise Encrypted("password-protected Office document")
    if mime_type == DOC:
        return doc_text(data)
    if mime_type == XLS:
        _require_ole(data, "an Excel 97-2003 workbook")
        return _utf8(tools.run(["xls2csv", "-d", "utf-8", "-q", "0", "{input}"], data)[0])
    if mime_type in RTF_TYPES:
        return rtf_text(data)
    return _utf8(tools.run(["odt2txt", "--encoding=UTF-8", "--width=-1", "{input}"], data)[0])


def pdf_text(data: bytes | BinaryIO) -> str:
    """The text of a PDF (its bytes, or a seekable binary file of them, which the server
    is sent a chunk at a time): pdftotext's, of its first PDF_MAX_PAGES pages, read by this
    worker's pdf-text-server (services.archive.pdf_text_server) or, where that program is
    missing, by a pdftotext process. A PDF whose syntax poppler had to give up on and that
    yields no text is damaged, not empty: ValueError with poppler's reason. Raises Encrypted
    for a PDF that needs a password, tools.ToolFailed for one that could not be opened or
    read (timed out, killed at a limit)."""
    if pdf_text_server.available():
        text, errors = _served_pdf_text(data)
    else:
        text, errors = _pdftotext(data if isinstance(data, bytes) else _whole(data))
    text = _utf8(text).replace("\f", "\n")
    errors = [line for line in errors.splitlines() if "Error" in line]
    if errors and not text.strip():
        raise ValueError(f"damaged PDF: {errors[-1][:200]}")
    return text


def _whole(file: BinaryIO) -> bytes:
    file.seek(0)
    return file.read()


def _served_pdf_text(data: bytes | BinaryIO) -> tuple[bytes, str]:
    reply = pdf_text_server.read_pdf(data, PDF_MAX_PAGES)
    if reply.status == pdf_text_server.NEEDS_PASSWORD:
        raise Encrypted("password-protected PDF")
    if reply.status != pdf_text_server.READ:  # said as by a pdftotext run: the same PDF,
        lines = reply.errors.splitlines()    # the same reason, whichever of the two read it
        code = pdf_text_server.PDFTOTEXT_EXIT_CODE[reply.status]
        raise tools.ToolFailed(f"pdftotext failed (exit code {code}): "
                               f"{lines[-1] if lines else 'no message'}"[:300])
    return reply.text, reply.errors


def _pdftotext(data: bytes) -> tuple[bytes, str]:
    try:
        return tools.run(["pdftotext", "-enc", "UTF-8", "-l", str(PDF_MAX_PAGES), "-", "-"],
                         data, stdin=True)
    except tools.ToolFailed as failure:
        if "password" in str(failure).lower():
            raise Encrypted("password-protected PDF") from None
        raise


def doc_text(data: bytes) -> str:
    """antiword reads Word 97 and later best; catdoc also reads Word 6/95 and oddities.
    Word saves "Rich Text" as .doc too: that is read as RTF."""
    if data[:64].lstrip()[:5] == b"{\\rtf":
        return rtf_text(data)
    _require_ole(data, "a Word 97-2003 document")
    try:
        return _utf8(tools.run(["antiword", "-m", "UTF-8.txt", "-w", "0", "{input}"], data)[0])
    except tools.ToolFailed as failure:
        if "encrypt" in str(failure).lower():
            raise Encrypted("password-protected Word document") from None
        return _utf8(tools.run(["catdoc", "-d", "utf-8", "-w", "{input}"], data)[0])


def rtf_text(data: bytes) -> str:
    """unrtf's HTML output: its text output turns every non-ASCII character into '?'."""
    import lxml.html
    if data[:64].lstrip()[:5] != b"{\\rtf":
        raise ValueError("not an RTF document (no {\\rtf header)")
    stdout, _ = tools.run(["unrtf", "--html", "--nopict", "{input}"], data, "input.rtf")
    if not stdout.strip():
        return ""
    root = lxml.html.document_fromstring(stdout, parser=lxml.html.HTMLParser(encoding="utf-8"))
    for element in list(root.iter("head", "style", "script")):
        element.drop_tree()
    for element in root.iter("br", "p", "div", "tr"):
        element.tail = "\n" + (element.tail or "")
    return root.text_content().strip() + "\n"


def _require_ole(data: bytes, what: str) -> None:
    """catdoc prints any other file as text, xls2csv prints nothing: say what it is not."""
    if not data.startswith(OLE_SIGNATURE):
        raise ValueError(f"not {what} (no OLE2 compound file signature)")


def office_encrypted(data: bytes) -> bool:
    """Whether an OLE compound file (legacy Office, or an encrypted OOXML wrapper) is
    password-protected: an EncryptedPackage stream ([MS-OFFCRYPTO] 2.3.4.4), or Word's
    fEncrypted flag in the FIB ([MS-DOC] 2.5.2)."""
    if not data.startswith(OLE_SIGNATURE):
        return False
    import olefile
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            if ole.exists("EncryptedPackage") or ole.exists("EncryptionInfo"):
                return True
            if ole.exists("WordDocument"):
                fib = ole.openstream("WordDocument").read(12)
                return len(fib) >= 12 and bool(int.from_bytes(fib[10:12], "little") & 0x0100)
    except (OSError, ValueError, IndexError, TypeError):
        return False  # not readable as OLE: the tool will say why
    return False


def _utf8(data: bytes) -> str:
    return data.decode("utf-8", "replace")
