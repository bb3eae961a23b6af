"""services.archive.extract: body and attachment text for the index, and the sandboxed worker pool."""
from __future__ import annotations

import base64
import hashlib
import io
import os
import signal
import threading
import time
import zlib
from multiprocessing import forkserver
from email.message import EmailMessage
from pathlib import Path

import docx
import openpyxl
import psutil
import pypdf
import pytest
from hypothesis import HealthCheck, given, settings

from services.archive.extract import (AttachmentText, ExtractionPool, Extracted, extract, fallback,
                                      truncate_utf8)
from services.archive.extraction_memo import MemoryMemo
from services.archive.mime import MessageSummary
from services.archive import containers, mime, mimetree, tools
from services.archive import extract as extract_module
from tests.bench.corpus import pdf_file
from tests.reading_corpus import docx_bomb, slow_xlsx, stall_xlsx
from tests.unit.archive.test_mime import MEGABYTE_LINES, messages, nested_multiparts

CAP = 64 * 1024
LOOP_PDF = (Path(__file__).parents[2] / "data" / "hostile" / "loop.pdf").read_bytes()
PDF_TYPE = "application/pdf"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- real attachments ------------------------------------------------------------------------

def make_pdf(content_stream: bytes, deflated: bool = False) -> bytes:
    """A minimal, valid one-page PDF (Helvetica) drawing the given content stream."""
    filters = b"/Filter /FlateDecode " if deflated else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
        b" /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(content_stream), filters,
                                                        content_stream),
    ]
    return pdf_file(objects)


def pdf_with_text(text: str) -> bytes:
    content = b"BT /F1 12 Tf 72 712 Td (%s) Tj ET" % text.encode("latin-1")
    return make_pdf(zlib.compress(content), deflated=True)


def pdf_bomb(megabytes: int) -> bytes:
    """A PDF whose 600 KB content stream inflates to `megabytes` MB of spaces. Built from one
    compressed megabyte repeated: after a full flush, deflate blocks do not refer back."""
    chunk = b" " * (1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(megabytes):
        checksum = zlib.adler32(chunk, checksum)
    stream = b"\x78\xda" + block * megabytes + compressor.flush() + checksum.to_bytes(4, "big")
    return make_pdf(stream, deflated=True)


def make_docx(paragraphs: list[str], table: list[list[str]]) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for row, values in zip(grid.rows, table):
        for cell, value in zip(row.cells, values):
            cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_xlsx(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Budget"
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def mail(body: str = "Plain body words.", html: str | None = None, subject: str = "Report",
         attachments: list[tuple] = ()) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.org>"
    message["To"] = "bob@example.org"
    message["Subject"] = subject
    message["Date"] = "Tue, 01 Jul 2003 10:52:37 +0000"
    message["Message-ID"] = "<m1@example.org>"
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for attachment in attachments:
        if isinstance(attachment, EmailMessage):
            message.add_attachment(attachment)
        elif isinstance(attachment[0], str):
            text, subtype, filename = attachment
            message.add_attachment(text, subtype=subtype, filename=filename)
        else:
            data, mime_type, filename = attachment
            maintype, subtype = mime_type.split("/")
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


def test_the_handmade_pdf_is_one_pypdf_reads():
    assert pypdf.PdfReader(io.BytesIO(pdf_with_text("hello pdf"))).pages[0].extract_text() \
        == "hello pdf"


# --- extract(): what comes out ---------------------------------------------------------------

@pytest.fixture(scope="module")
def everything() -> bytes:
    forwarded = mail(body="Forwarded body kiwi.", subject="Inner subject",
                     attachments=[(pdf_with_text("inner pdf papaya"), PDF_TYPE, "inner.pdf")])
    return mail(body="Plain body apple.", html="<p>html alternative banana</p>", attachments=[
        (pdf_with_text("Quarterly zebra report"), PDF_TYPE, "report.pdf"),
        (make_docx(["Docx giraffe paragraph"], [["cell", "okapi"]]), DOCX_TYPE, "memo.docx"),
        (make_xlsx([["Item", "Cost"], ["walrus", 12.5], [None, None]]), XLSX_TYPE, "sum.xlsx"),
        ("text attachment mango", "plain", "notes.txt"),
        ("<html><body><h1>Heading</h1><p>html attachment lychee</p></body></html>", "html",
         "page.html"),
        (b"PK\x03\x04 binary", "application/zip", "archive.zip"),
        forwarded,
    ]).as_bytes()


def test_every_attachment_type_is_extracted(everything):
    result = extract(everything, CAP)
    assert result.failed is None
    # The words only the HTML alternative has are indexed with the plain body.
    assert result.body.split() == "Plain body apple. html alternative banana".split()
    texts = {a.filename: a for a in result.attachments}
    assert [(a.filename, a.mime_type, a.container) for a in result.attachments] == [
        ("report.pdf", PDF_TYPE, None), ("memo.docx", DOCX_TYPE, None),
        ("sum.xlsx", XLSX_TYPE, None), ("notes.txt", "text/plain", None),
        ("page.html", "text/html", None), ("archive.zip", "application/zip", None),
        (None, "message/rfc822", None), ("inner.pdf", PDF_TYPE, "message/rfc822")]
    assert texts["report.pdf"].text.strip() == "Quarterly zebra report"
    assert "Docx giraffe paragraph" in texts["memo.docx"].text
    assert "cell\tokapi" in texts["memo.docx"].text
    assert texts["sum.xlsx"].text == "Budget\nItem\tCost\nwalrus\t12.5\n"
    assert texts["notes.txt"].text.strip() == "text attachment mango"
    assert texts["page.html"].text == "Heading\nhtml attachment lychee"
    # A zip that is none is flagged (it was not, before).
    assert texts["archive.zip"].text == ""
    assert texts["archive.zip"].error.startswith("ValueError: not a readable zip archive")
    nested = texts[None].text
    assert nested.startswith("From: Alice <alice@example.org>\nTo: bob@example.org\n"
                             "Subject: Inner subject\n")
    assert "Forwarded body kiwi." in nested
    # The forwarded message's attachment is an attachment of the message, with its text.
    assert texts["inner.pdf"].text.strip() == "inner pdf papaya"
    assert [a.filename for a in result.attachments if a.error] == ["archive.zip"]


def test_the_summary_comes_along(everything):
    summary = extract(everything, CAP).summary
    assert isinstance(summary, MessageSummary)
    assert summary.subject == "Report" and summary.from_addrs == ["Alice <alice@example.org>"]
    assert summary.attachment_names == ["report.pdf", "memo.docx", "sum.xlsx", "notes.txt",
                                        "page.html", "archive.zip", "inner.pdf"]


def test_html_is_the_body_without_a_plain_alternative_and_adds_its_words_to_one():
    message = EmailMessage()
    message["Subject"] = "html only"
    message.set_content("<html><head><title>T</title><style>p {color: red}</style></head>"
                        "<body><p>first</p><p>second<br>third</p><script>var x;</script>"
                        "<!-- comment --></body></html>", subtype="html")
    assert extract(message.as_bytes(), CAP).body == "first\nsecond\nthird"
    both = mail(body="plain wins, Plain words", html="<p>PLAIN words, html adds</p>").as_bytes()
    assert extract(both, CAP).body.split() == ["plain", "wins,", "Plain", "words", "html", "adds"]


def test_documents_sent_as_octet_stream_are_recognized_by_content():
    raw = mail(attachments=[(make_docx(["by content"], [["a"]]), "application/octet-stream",
                             "memo.bin")]).as_bytes()
    attachment = extract(raw, CAP).attachments[0]
    assert "by content" in attachment.text
    assert (attachment.mime_type, attachment.declared_type) == (DOCX_TYPE,
                                                                "application/octet-stream")


def test_nested_messages_stop_at_a_depth_limit():
    message = mail(body="level 0")
    for level in range(1, 12):
        message = mail(body=f"level {level}", subject=f"s{level}", attachments=[message])
    texts = [a.text for a in extract(message.as_bytes(), CAP).attachments]
    # Each forwarded message is an attachment of the outermost one, down to the limit.
    assert len(texts) == 6
    for level, text in zip(range(10, 5, -1), texts):
        assert f"Subject: s{level}\n\nlevel {level}" in text
    assert texts[-1].endswith("Subject: s5")  # deeper than the limit: headers only


def test_a_broken_attachment_is_reported_and_the_rest_still_extracted():
    raw = mail(attachments=[(b"%PDF-1.4 this is no pdf", PDF_TYPE, "broken.pdf"),
                            (b"PK not a zip", DOCX_TYPE, "broken.docx"),
                            (b"garbage", XLSX_TYPE, "broken.xlsx"),
                            (pdf_with_text("still here"), PDF_TYPE, "good.pdf")]).as_bytes()
    result = extract(raw, CAP)
    assert result.failed is None
    broken = result.attachments[:3]
    assert all(a.text == "" and a.error for a in broken), broken
    assert result.attachments[3].text.strip() == "still here"


# --- the cap --------------------------------------------------------------------------------

def test_text_the_cap_cuts_is_flagged_and_text_within_it_is_not():
    from services.archive.extract import capped_text
    assert capped_text(["ab", "cd"], 4) == ("abcd", False)
    assert capped_text(["ab", "cd", ""], 4) == ("abcd", False)
    assert capped_text(["ab", "cd", " e"], 4) == ("abcd", True)
    assert capped_text(["ab c", "de"], 4) == ("ab ", True)  # ("c" is no word of it)
    assert capped_text(["a \u20ac"], 4) == ("a ", True)  # (cut on a character)
    assert capped_text(["a\u20ac"], 3) == ("", True)  # (inside the word "a\u20ac")
    whole = extract(mail(attachments=[("x" * CAP, "plain", "full.txt")]).as_bytes(), CAP)
    cut = extract(mail(attachments=[("x" * (CAP + 1), "plain", "over.txt")]).as_bytes(), CAP)
    assert whole.failures == [] and whole.attachments[0].cut is None
    assert cut.failures == [f"over.txt: partly indexed: text cut at {CAP} bytes, the "
                            "attachment text cap (attachment_text_kb); the rest is not indexed"]


def test_a_cut_document_is_flagged_when_its_text_is_remembered_too():
    """The pool remembers a document's text (TextMemo); a cut one is remembered as cut."""
    from services.archive.extract import AttachmentGuard
    html = ("<p>" + "word " * CAP + "</p>").encode()

    class Remembering(AttachmentGuard):
        texts: dict = {}

        def known(self, key, sha256_hex):
            return self.texts.get(key), None

        def read(self, key, text):
            self.texts[key] = text

    raw = mail(attachments=[(html, "text/html", "page.html")]).as_bytes()
    first, again = extract(raw, CAP, Remembering()), extract(raw, CAP, Remembering())
    assert first.attachments[0].cut and again.attachments[0].cut == first.attachments[0].cut
    assert again.attachments[0].text == first.attachments[0].text


def test_more_reasons_than_kept_say_how_many_more():
    from services.archive.extract import MAX_FAILURES
    many = Extracted(MessageSummary(None, None, [], [], [], [], "", [], False), "", [
        AttachmentText(f"f{n}.pdf", PDF_TYPE, "", error="broken") for n in range(25)])
    assert len(many.failures) == MAX_FAILURES
    assert many.failures[-1] == f"and {25 - MAX_FAILURES + 1} more reasons"


def test_truncate_utf8_cuts_on_a_character_boundary():
    assert truncate_utf8("aé€😀", 1) == "a"
    assert truncate_utf8("aé€😀", 2) == "a"
    assert truncate_utf8("aé€😀", 3) == "aé"
    assert truncate_utf8("aé€😀", 6) == "aé€"
    assert truncate_utf8("aé€😀", 100) == "aé€😀"
    assert truncate_utf8("lone \udcff surrogate", 100) == "lone ? surrogate"


@pytest.mark.parametrize("attachment", [
    ("é" * 5000, "plain", "accents.txt"),
    ("<p>" + "€" * 5000 + "</p>", "html", "euro.html"),
    (make_xlsx([["€" * 100] for _ in range(200)]), XLSX_TYPE, "big.xlsx"),
    (make_docx(["é" * 100] * 100, [["x"]]), DOCX_TYPE, "big.docx"),
], ids=["text", "html", "xlsx", "docx"])
def test_each_attachment_is_capped_in_utf8_bytes(attachment):
    text = extract(mail(attachments=[attachment]).as_bytes(), 1001).attachments[0].text
    assert 1001 - 3 <= len(text.encode("utf-8")) <= 1001
    assert "\ufffd" not in text


# --- bad input -----------------------------------------------------------------------------

def test_empty_input():
    result = extract(b"", CAP)
    assert (result.body, result.attachments, result.failed) == ("", [], None)


def test_undecodable_charsets_are_read_by_the_best_believable_charset():
    # A label the bytes mostly fit keeps them, with U+FFFD for the few that do not; a label
    # they do not fit (latin-1 bytes labelled UTF-8) is a lie, read as if unlabelled.
    raw = (b"Subject: charsets\nContent-Type: multipart/mixed; boundary=b\n\n"
           b"--b\nContent-Type: text/plain; charset=x-no-such-charset\n\ncaf\xe9\n"
           b"--b\nContent-Type: text/plain; charset=utf-8\n\ninvalid \xff\xfe utf-8\n"
           b"--b\nContent-Type: text/plain; charset=utf-8\n\n" + b"long " * 100 + b"\xff\n"
           b"--b\nContent-Type: text/plain; charset=utf-16\n\n\x00odd\n"
           b"--b\nContent-Type: text/plain; charset=idna\n\n\xff\n"
           b"--b\nContent-Type: text/html; charset=\"base64\"; name=x.html\n\n<p>\xe9</p>\n"
           b"--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n"
           b"Content-Disposition: attachment; filename=bad64.txt\n\n!!!not base64!!!\n--b--\n")
    result = extract(raw, CAP)
    assert "café" in result.body and "invalid ÿþ utf-8" in result.body
    assert "long " * 100 + "\ufffd" in result.body
    assert [a.filename for a in result.attachments] == ["x.html", "bad64.txt"]
    assert result.attachments[0].text == "é"


def test_nul_bytes_and_eight_bit_garbage():
    garbage = bytes(range(256)) * 256
    raw = (b"Subject: \x00\xff\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n"
           + garbage + b"\n--b\nContent-Type: text/html\n\n<p>a\x00b</p>" + garbage
           + b"\n--b\nContent-Type: application/pdf; name=x.pdf\n\n" + garbage + b"\n--b--\n")
    result = extract(raw, CAP)
    assert result.failed is None and "\x00" in result.body
    assert result.attachments[0].error  # not a PDF
    assert isinstance(extract(garbage, CAP), Extracted)


def test_malformed_mime():
    raw = (b"Content-Type: multipart/mixed; boundary=unclosed\n\n--unclosed\n"
           b"Content-Type: multipart/alternative\n\nno boundary parameter\n--unclosed\n"
           b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
           + base64.encodebytes(b"Subject: inside base64\n\nhidden body\n") + b"--unclosed\n"
           b"Content-Type: ///\nContent-Disposition: attachment; filename=\n\nx\n")
    result = extract(raw, CAP)
    assert result.failed is None
    assert any("hidden body" in a.text for a in result.attachments)


@pytest.mark.timeout(60)  # guards against a hang
def test_megabyte_header_lines():
    for line in MEGABYTE_LINES.values():
        result = extract(line + b"\nFrom: a@x.org\n\nbody text\n", CAP)
        texts = [result.body, *(a.text for a in result.attachments)]  # one is an attachment
        assert result.summary.from_addrs == ["a@x.org"] and "body text" in "".join(texts)


def test_running_out_of_memory_is_not_mistaken_for_bad_input(monkeypatch):
    # The pool must see MemoryError to give a fallback; swallowed, the message would be
    # indexed as if it had no attachments at all.
    class ExhaustedParser:
        def __init__(self, policy):
            pass

        def parsebytes(self, raw, headersonly=False):
            raise MemoryError

    def exhausted(self):
        raise MemoryError

    monkeypatch.setattr(mime, "BytesParser", ExhaustedParser)
    # a "From " line ending the header block: left to the feedparser (mimetree's refusal)
    left = b"Subject: x\nFrom a@x\n\nbody\n"
    assert mimetree.parse(left, mime.POLICY) is None
    with pytest.raises(MemoryError):
        extract(left, CAP)
    with pytest.raises(MemoryError):
        mime.summarize(left)
    monkeypatch.setattr(mimetree._Parser, "root", exhausted)  # what mimetree parses
    with pytest.raises(MemoryError):
        extract(b"Subject: x\n\nbody\n", CAP)
    with pytest.raises(MemoryError):
        mime.summarize(b"Subject: x\n\nbody\n")


def test_deeply_nested_multiparts_are_read_to_max_depth_and_flagged():
    """Parts deeper than mime_parts.MAX_DEPTH are read as the text of one part (before,
    the parser recursed past Python's limit and the message got the fallback)."""
    result = extract(nested_multiparts(1000), CAP)
    assert result.failed is None
    assert result.cut.startswith("partly indexed: MIME parts past the first")
    assert result.summary.subject == "deep" and "deep down" in result.body


def test_deeply_nested_messages_give_a_fallback():
    inner = b"Subject: deep\n\ndeep down\n"
    for _ in range(1000):
        inner = b"From: a@x.org\nContent-Type: message/rfc822\n\n" + inner
    result = extract(b"Subject: deep\n" + inner, CAP)
    assert result.failed == "MIME structure nested too deeply; headers and raw body only"
    assert result.summary.subject == "deep" and "deep down" in result.body


@pytest.fixture(scope="module")
def huge_message() -> bytes:
    """A 50 MB text attachment (plain 8-bit lines, so building it is cheap)."""
    line = "Fünfzig Megabyte Text, Zeile für Zeile.\n".encode()
    return (b"Subject: huge\nFrom: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n"
            b"--b\nContent-Type: text/plain\n\nsmall body\n--b\n"
            b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"
            b"Content-Disposition: attachment; filename=huge.txt\n\n"
            + line * (50 * 2**20 // len(line)) + b"--b--\n")


def test_a_50_mb_attachment_is_capped(huge_message):
    result = extract(huge_message, 1000)
    (attachment,) = result.attachments
    assert attachment.filename == "huge.txt" and len(attachment.text.encode()) <= 1000
    assert attachment.text.startswith("Fünfzig Megabyte Text")
    assert result.body.strip() == "small body"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_extract_never_raises_on_generated_messages(raw):
    result = extract(raw, 500)
    assert isinstance(result.body, str)
    assert all(len(a.text.encode()) <= 500 for a in result.attachments)


# --- fallback -----------------------------------------------------------------------------

def test_fallback_keeps_summary_plain_body_and_attachment_names(everything):
    result = fallback(everything, "because")
    assert result.failed == "because"
    assert result.summary == extract(everything, CAP).summary
    assert result.body.strip() == "Plain body apple."
    assert [(a.filename, a.text, a.error) for a in result.attachments][:2] == [
        ("report.pdf", "", "because"), ("memo.docx", "", "because")]


def test_fallback_takes_a_plain_part_even_without_headers():
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nheaderless part\n--b--\n"
    assert fallback(raw, "because").body == "headerless part"


def test_fallback_without_a_plain_part_takes_the_raw_body_up_to_a_megabyte():
    raw = b"Subject: x\nContent-Type: application/pdf\n\n" + b"x" * (3 * 2**20)
    result = fallback(raw, "because")
    assert result.body == "x" * 2**20
    assert [(a.filename, a.mime_type) for a in result.attachments] == [(None, PDF_TYPE)]


# --- the pool --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_messages(everything) -> list[bytes]:
    return [everything] + [mail(body=f"message {n}", attachments=[
        (pdf_with_text(f"pdf {n}"), PDF_TYPE, f"{n}.pdf")]).as_bytes() for n in range(5)]


def test_the_pool_gives_what_extract_gives_in_order(small_messages):
    with ExtractionPool(CAP, workers=2) as pool:
        assert len(set(pool.worker_pids)) == 2
        assert pool.extract_many(small_messages) == [extract(raw, CAP) for raw in small_messages]
        assert pool.extract_many([]) == []


STALL_XLSX = stall_xlsx()


def looping_mail(body: str) -> bytes:
    """A message carrying a workbook that keeps its reader busy past the time limit (as
    loop.pdf did pypdf before PDFs went to pdftotext), and a text part."""
    return mail(body=body, attachments=[(STALL_XLSX, XLSX_TYPE, "stall.xlsx"),
                                        ("readable notes", "plain", "notes.txt")]).as_bytes()


def test_a_timeout_blames_the_attachment_being_read_and_spares_the_rest(small_messages):
    batch = [small_messages[1], looping_mail("loop body"), small_messages[2]]
    with ExtractionPool(CAP, workers=1, timeout_s=2) as pool:
        first_worker = pool.worker_pids
        results = pool.extract_many(batch)
        assert pool.worker_pids != first_worker  # the stuck worker was replaced
        assert (pool.timeouts, pool.worker_restarts) == (1, 1)
    assert results[0] == extract(small_messages[1], CAP)
    assert results[2] == extract(small_messages[2], CAP)
    # Read again without the PDF: the rest of the message is there.
    assert results[1].failed is None and results[1].body.strip() == "loop body"
    assert [(a.filename, a.text, a.error) for a in results[1].attachments] == [
        ("stall.xlsx", "", "attachment extraction used more than 2 s of CPU"),
        ("notes.txt", "readable notes\n", None)]
    assert results[1].failures == ["stall.xlsx: attachment extraction used more than 2 s of CPU"]


def test_loop_pdf_is_an_extraction_failure_read_once_however_often_it_comes():
    """shared/cases/hostile/loop.pdf (its content stream ends in `<< %`): flagged with the
    reason, never a hang, and read once: later copies are answered from the memo."""
    def copy(body):
        return mail(body=body, attachments=[(LOOP_PDF, PDF_TYPE, "loop.pdf")]).as_bytes()
    with ExtractionPool(CAP, workers=1, timeout_s=20) as pool:
        results = pool.extract_many([copy("first"), copy("second"), copy("third")])
        assert (pool.timeouts, pool.worker_restarts) == (0, 0)
        assert pool.memo_hits == 2
    assert [r.body.strip() for r in results] == ["first", "second", "third"]
    (reason,) = {tuple(r.failures) for r in results}
    assert reason[0].startswith("loop.pdf: ValueError: damaged PDF")


def test_the_same_hostile_attachment_costs_one_timeout_however_often_it_comes():
    with ExtractionPool(CAP, workers=2, timeout_s=2) as pool:
        first = pool.extract_many([looping_mail("first")])
        later = pool.extract_many([looping_mail("second"), looping_mail("third")])
        assert (pool.timeouts, pool.worker_restarts, pool.memo_hits) == (1, 1, 3)
    assert [r.body.strip() for r in first + later] == ["first", "second", "third"]
    assert {tuple(r.failures) for r in first + later} == {
        ("stall.xlsx: attachment extraction used more than 2 s of CPU",)}


def test_a_timeout_nothing_explains_gives_the_fallback_in_a_fresh_worker(small_messages):
    with ExtractionPool(CAP, workers=1, timeout_s=2, blocked_s=3) as pool:
        (pid,) = pool.worker_pids
        os.kill(pid, signal.SIGSTOP)  # stuck before it reads a byte: no attachment to blame
        results = pool.extract_many(small_messages[1:3])
        assert (pool.timeouts, pool.worker_restarts) == (1, 1)
        assert pool.extract_many(small_messages[1:2]) == results[:1]  # remembered: no wait
        assert pool.timeouts == 1 and pool.memo_hits == 1
    # Stopped, it used no CPU: its limit for being blocked ended it.
    assert results[0].failed == "attachment extraction was blocked for 3 s"
    assert results[0].body.strip() == "message 0"
    assert [(a.filename, a.text) for a in results[0].attachments] == [("0.pdf", "")]
    assert results[1] == extract(small_messages[2], CAP)


def test_waiting_for_the_cpu_does_not_count_against_the_time_limit(small_messages):
    """The limit counts CPU: a worker kept off the CPU (here stopped, for twice its limit;
    below its limit for being blocked) reads its message when it runs again."""
    with ExtractionPool(CAP, workers=1, timeout_s=2) as pool:
        (pid,) = pool.worker_pids
        os.kill(pid, signal.SIGSTOP)
        threading.Timer(4, os.kill, (pid, signal.SIGCONT)).start()
        started = time.monotonic()
        results = pool.extract_many(small_messages[1:3])
        assert time.monotonic() - started >= 4  # it did wait, past the 2 s
        assert (pool.timeouts, pool.worker_restarts) == (0, 0)
    assert results == [extract(raw, CAP) for raw in small_messages[1:3]]


def test_the_cpu_of_the_readers_a_worker_runs_counts_against_its_time_limit(monkeypatch):
    """slow_pages() keeps the worker's PDF text server (its child) computing for its own
    8 s of CPU; the pool's 3 s limit counts the child's CPU and ends the read first."""
    from tests.unit.archive.test_pdf_text import slow_pages
    message = mail(body="slow body", attachments=[(slow_pages(), PDF_TYPE, "slow.pdf")])
    with ExtractionPool(CAP, workers=1, timeout_s=3) as pool:
        (result,) = pool.extract_many([message.as_bytes()])
        assert (pool.timeouts, pool.worker_restarts) == (1, 1)
    assert result.body.strip() == "slow body"
    assert result.failures == ["slow.pdf: attachment extraction used more than 3 s of CPU"]


def test_running_out_of_memory_in_a_library_blames_that_attachment(small_messages):
    # python-docx reads document.xml whole: 600 MB of it is past the worker's memory.
    bomb = mail(body="bomb body", attachments=[(docx_bomb(600), DOCX_TYPE, "bomb.docx")])
    batch = [small_messages[1], bomb.as_bytes(), small_messages[2]]
    with ExtractionPool(CAP, workers=2, memory_mb=256) as pool:
        results = pool.extract_many(batch)
        assert pool.worker_restarts == 1 and pool.timeouts == 0
    assert results[1].failures == [
        "bomb.docx: attachment extraction ran out of memory (limit 256 MB)"]
    assert results[1].body.strip() == "bomb body"
    assert results[1].attachments[0].filename == "bomb.docx"
    assert [results[0], results[2]] == [extract(small_messages[1], CAP),
                                        extract(small_messages[2], CAP)]


def test_a_message_too_big_even_for_the_fallback_is_left_to_its_intake_headers():
    """The worker cannot even take in 64 MB under a 128 MB limit (its libraries alone map
    some 95 MB), neither to read the message nor for the fallback: the pool gives up on it
    without parsing more of it than its header block (as intake does), and remembers
    that. Whose mail it is stays known: its recipients may still find it."""
    line = b"sixty-four megabytes of text, line after line\n"
    big = (b"Subject: big\nFrom: a@example.org\nTo: Bob <bob@example.com>\n\n"
           + line * (64 * 2**20 // len(line)))
    with ExtractionPool(CAP, workers=1, memory_mb=128) as pool:
        (result,) = pool.extract_many([big])
        assert pool.worker_restarts == 2
        assert pool.extract_many([big]) == [result] and pool.worker_restarts == 2
    assert result.failed == ("attachment extraction ran out of memory (limit 128 MB); "
                             "the fallback ran out of memory (limit 128 MB) too")
    assert (result.body, result.attachments, result.summary.subject) == ("", [], "big")
    assert result.summary.header_addresses == {"from": ["a@example.org"],
                                               "to": ["bob@example.com"]}


def test_a_library_error_is_remembered_by_the_attachment_sha256():
    broken = b"%PDF-1.4 this is no PDF at all"
    memo = MemoryMemo()
    with ExtractionPool(CAP, workers=1, memo=memo) as pool:
        (first,) = pool.extract_many([mail(attachments=[(broken, PDF_TYPE, "a.pdf")]).as_bytes()])
        (later,) = pool.extract_many([mail(body="other", attachments=[
            (broken, PDF_TYPE, "b.pdf")]).as_bytes()])
        assert pool.memo_hits == 1 and pool.worker_restarts == 0
    error = first.attachments[0].error
    assert error and later.attachments[0].error == error
    assert memo.failure(hashlib.sha256(broken).hexdigest()) == error


def test_the_bomb_is_a_real_pdf_that_only_a_memory_limit_stops():
    reader = pypdf.PdfReader(io.BytesIO(pdf_bomb(3)))
    assert len(reader.pages[0].get_contents().get_data()) == 3 * 2**20


def test_a_worker_that_dies_on_a_message_gives_a_fallback(small_messages):
    with ExtractionPool(CAP, workers=1, timeout_s=30) as pool:
        (pid,) = pool.worker_pids
        os.kill(pid, signal.SIGSTOP)  # it cannot finish the message before it is killed
        threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
        results = pool.extract_many(small_messages[1:3])
        assert results[0].failed == "attachment extraction worker died (exit code -9)"
        assert results[1] == extract(small_messages[2], CAP)


def test_a_worker_that_died_while_idle_is_replaced(small_messages):
    # The fork server reports a worker's exit only once it has reaped it, so for a while a
    # dead worker is_alive(); a stopped fork server holds that window open.
    with ExtractionPool(CAP, workers=1) as pool:
        (pid,) = pool.worker_pids
        fork_server = forkserver._forkserver._forkserver_pid
        # Stopped only once back in its loop: just after the fork it still holds the
        # worker's end of the pipe (ci64, under load), which then never shows the death.
        while Path(f"/proc/{fork_server}/wchan").read_text() != "do_epoll_wait":
            time.sleep(0.01)
        os.kill(fork_server, signal.SIGSTOP)
        try:
            os.kill(pid, signal.SIGKILL)
            while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                time.sleep(0.01)
            threading.Timer(0.5, os.kill, (fork_server, signal.SIGCONT)).start()
            assert pool.extract_many(small_messages[1:2]) == [extract(small_messages[1], CAP)]
        finally:
            os.kill(fork_server, signal.SIGCONT)
        assert pool.worker_restarts == 1


def test_close_ends_the_workers():
    pool = ExtractionPool(CAP, workers=2)
    pids = pool.worker_pids
    pool.close()
    assert not any(psutil.pid_exists(pid) for pid in pids)


# The limit is applied before a part's type is looked at (_body_and_attachments counts
# every attachment, then hands it to its reader): the types differ only in the reader run
# on the first 1,000. application/pdf, also here once, ran pdftotext 1,000 times (8.6 s,
# most of this file's time) for nothing the other types do not show; test_pdf_text reads
# PDFs.
@pytest.mark.parametrize("part_type", ["text/plain", "image/png", "message/rfc822"])
def test_attachments_past_the_message_limit_are_not_read_and_the_message_says_so(part_type):
    # 60,000 tiny attachments (5.5 MB) took a worker's whole time limit to read
    count = containers.MESSAGE_ATTACHMENTS + 150
    parts = b"".join(b"--B\r\nContent-Type: %s\r\nContent-Disposition: attachment; "
                     b"filename=f%d\r\n\r\nw%d\r\n" % (part_type.encode(), n, n)
                     for n in range(count))
    raw = (b"From: a@example.org\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n" + parts + b"--B--\r\n")
    found = extract(raw, CAP)
    assert len([a for a in found.attachments if a.container is None]) \
        == containers.MESSAGE_ATTACHMENTS
    assert found.cut == (f"partly indexed: 150 attachments past the first "
                         f"{containers.MESSAGE_ATTACHMENTS} not read")


def test_a_forwarded_messages_attachments_count_toward_the_same_limit():
    inner_parts = b"".join(b"--I\r\nContent-Type: text/plain\r\nContent-Disposition: "
                           b"attachment; filename=i%d\r\n\r\ni%d\r\n" % (n, n) for n in range(700))
    inner = (b"From: b@example.org\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=I\r\n\r\n" + inner_parts + b"--I--\r\n")
    outer_parts = b"".join(b"--B\r\nContent-Type: text/plain\r\nContent-Disposition: "
                           b"attachment; filename=o%d\r\n\r\no%d\r\n" % (n, n) for n in range(700))
    raw = (b"From: a@example.org\r\nSubject: outer\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
           b"Content-Type: message/rfc822\r\n\r\n" + inner + b"\r\n" + outer_parts + b"--B--\r\n")
    found = extract(raw, CAP)
    assert found.failures == [f"partly indexed: 401 attachments past the first "
                              f"{containers.MESSAGE_ATTACHMENTS} not read"]


@pytest.mark.parametrize("workers", [1, 2])
def test_after_an_error_in_a_batch_the_next_batch_gets_its_own_results(workers):
    """A message's source (the store's read) raises while a worker reads another message:
    the error goes to the caller. The pool, used again (the indexer service goes on after
    a full disk), gave that worker's late answer to the next batch's first message
    (found by helper 135)."""
    slow = mail(body="slow one", attachments=[(slow_xlsx(6000, sheets=1), XLSX_TYPE,
                                                "m.xlsx")]).as_bytes()
    others = [mail(body=f"other {n}").as_bytes() for n in range(workers - 1)]

    def broken():
        raise OSError("store read failed")
    with ExtractionPool(CAP, workers=workers, timeout_s=10) as pool:
        with pytest.raises(OSError):
            pool.extract_many([slow, *others, broken], digests=[None] * workers + ["0" * 64])
        assert pool.admitted_bytes == 0
        (result,) = pool.extract_many([mail(body="plain 99").as_bytes()])
    assert result.body.strip() == "plain 99", result.body[:60]


# The HTML standard's Rendering section: what it displays as blocks, list items and table
# parts, and table cells (a browser sets them apart).
STANDARD_BLOCKS = ["p", "div", "pre", "blockquote", "address", "center", "dialog", "figure",
                   "figcaption", "form", "fieldset", "legend", "listing", "main", "plaintext",
                   "search", "xmp", "details", "summary", "h1", "h6", "hgroup", "section",
                   "article", "aside", "nav", "header", "footer", "ul", "ol", "dir", "menu",
                   "li", "dl", "dt", "dd", "table", "caption", "thead", "tbody", "tfoot", "tr",
                   "td", "th"]


@pytest.mark.parametrize("tag", STANDARD_BLOCKS)
def test_words_in_adjacent_blocks_and_table_cells_stay_apart(tag):
    """Each element the HTML standard renders as a block, and each table cell, ends a line:
    "<td>Total</td><td>42</td>" had read "Total42", neither word found."""
    html = f"<html><body><{tag}>alpha</{tag}><{tag}>beta</{tag}>gamma</body></html>"
    raw = b"From: a@example.org\nSubject: s\nContent-Type: text/html\n\n" + html.encode()
    assert {"alpha", "beta", "gamma"} <= set(extract(raw, CAP).body.split())


def test_a_field_past_the_value_limit_is_read_to_it_and_the_fields_after_it_whole():
    """A Subject and a To over mime.FIELD_VALUE_LIMIT each are read to it (the list to its
    last comma before it), the fields after them whole; the index takes less still, and
    says so (within_index_limits)."""
    subject = b"word " * (mime.FIELD_VALUE_LIMIT // 5 + 100)
    to = b", ".join(b"u%d@example.org" % n for n in range(mime.FIELD_VALUE_LIMIT // 10))
    raw = (b"Subject: " + subject + b"\r\nTo: " + to + b"\r\nCc: after@example.org\r\n"
           b"\r\nthe body words\r\n")
    summary = mime.summarize(raw)
    assert summary.subject == subject[:mime.FIELD_VALUE_LIMIT].decode().strip()
    assert summary.to[-1] == f"u{to[:mime.FIELD_VALUE_LIMIT].count(b',') - 1}@example.org"
    assert summary.cc == ["after@example.org"]
    result = extract(raw, CAP)
    assert result.summary.cc == [] and "the body words" in result.body
    [cut] = result.failures
    assert cut.startswith(f"partly indexed: the subject, to field read to its first "
                          f"{mime.FIELD_VALUE_LIMIT} bytes; partly indexed: subject cut at "
                          f"{extract_module.SUBJECT_TEXT_LIMIT}")
    left_out = len(summary.to) + 1 - extract_module.INDEX_ADDRESS_LIMIT
    assert f"; partly indexed: {left_out} addresses not indexed by their words" in cut


def test_header_text_past_the_index_limits_is_cut_and_flagged():
    """A Subject over SUBJECT_TEXT_LIMIT is cut before the word the limit falls in; addresses
    past INDEX_ADDRESS_LIMIT or ADDRESS_TEXT_LIMIT bytes are left out of the words indexed;
    whose mail it is is read whole (header_addresses)."""
    count = extract_module.INDEX_ADDRESS_LIMIT + 7
    raw = b"".join(b"Cc: u%d@example.org\r\n" % n for n in range(count)) + b"\r\nbody\r\n"
    result = extract(raw, CAP)
    assert result.summary.cc[-1] == f"u{extract_module.INDEX_ADDRESS_LIMIT - 1}@example.org"
    assert len(result.summary.header_addresses["cc"]) == count
    limits = f"{extract_module.INDEX_ADDRESS_LIMIT} or {extract_module.ADDRESS_TEXT_LIMIT} bytes"
    assert result.failures == [
        f"partly indexed: 7 addresses not indexed by their words: past the first {limits} "
        "of them"]
    words = b"word " * (extract_module.SUBJECT_TEXT_LIMIT // 5 + 10)
    name = b"n" * (extract_module.ADDRESS_TEXT_LIMIT - 10)
    raw = (b"Subject: " + words + b"\r\nFrom: a@example.org\r\nTo: " + name
           + b" <b@example.org>, c@example.org\r\n\r\nbody\r\n")
    result = extract(raw, CAP)
    subject = result.summary.subject
    assert words.decode().startswith(subject) and subject.rstrip().endswith(" word")
    assert extract_module.SUBJECT_TEXT_LIMIT - 10 < len(subject) <= \
        extract_module.SUBJECT_TEXT_LIMIT
    assert result.summary.from_addrs == ["a@example.org"]
    assert result.summary.to == ["c@example.org"]  # the name does not fit after the From
    assert result.failures == [
        f"partly indexed: subject cut at {extract_module.SUBJECT_TEXT_LIMIT} bytes, of "
        f"{len(words) - 1}; partly indexed: 1 addresses not indexed by their words: past "
        f"the first {limits} of them"]
