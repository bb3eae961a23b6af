"""services.archive.documents.pdf_text(): what any PDF reader of the extraction worker must
give (words apart, pages apart, broken words joined, the lines after one running past the
page's edge, the first PDF_MAX_PAGES pages only) and refuse (damaged, truncated,
encrypted), and hostile PDFs through the real worker pool, each touching only its own
attachment."""
from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from services.archive import documents, tools
from services.archive.extract import ExtractionPool
from tests.bench.corpus import make_pdf as corpus_pdf, pdf_file
from tests.reading_corpus import encrypted_pdf
from tests.unit.archive.test_extract import CAP, PDF_TYPE, mail, pdf_bomb, pdf_with_text

# ../shared/cases hostile/loop.pdf, copied: a content stream that ends in `<< %`
LOOP_PDF = (Path(__file__).parents[2] / "data" / "hostile" / "loop.pdf").read_bytes()
UNREADABLE = (tools.ToolFailed, ValueError)  # what pdf_text() raises for a PDF it cannot read


def pdf_of_pages(contents: list[bytes]) -> bytes:
    """A valid PDF (Helvetica) of one page per content stream; the same bytes given for
    several pages are one stream object they share, as a bomb of many pages would."""
    streams = list(dict.fromkeys(contents))
    first_page = 4 + len(streams)
    kids = b" ".join(b"%d 0 R" % (first_page + n) for n in range(len(contents)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(contents)),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    objects += [b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream"
                % (len(packed), packed) for packed in map(zlib.compress, streams)]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font"
                b" << /F1 3 0 R >> >> /Contents %d 0 R >>" % (4 + streams.index(content))
                for content in contents]
    return pdf_file(objects)


def lines(*texts: bytes, x: int = 72) -> bytes:
    """A content stream writing each text on a line of its own, from x points."""
    return (b"BT /F1 12 Tf 14 TL %d 740 Td " % x
            + b" T* ".join(b"(%s) Tj" % text for text in texts) + b" ET")


# --- text: what must come out ----------------------------------------------------------------

def test_pages_are_read_in_order_and_apart():
    pdf = pdf_of_pages([lines(b"first page ends with alpha"), lines(b"beta opens page two")])
    assert documents.pdf_text(pdf).split() == [
        "first", "page", "ends", "with", "alpha", "beta", "opens", "page", "two"]


def test_words_placed_apart_by_position_alone_stay_apart():
    """No space character between them: a gap (Td), a kerning offset (TJ), another text
    object on the same line. Run together they would be one word nobody searches for.
    (Sorted: pdftotext reads the far-apart pairs as columns, one after the other.)"""
    content = (b"BT /F1 12 Tf 72 740 Td (ustar) Tj 60 0 Td (POSIX) Tj ET "
               b"BT /F1 12 Tf 72 720 Td [(quarterly) -2500 (report)] TJ ET "
               b"BT /F1 12 Tf 72 700 Td (invoice) Tj ET BT /F1 12 Tf 200 700 Td (total) Tj ET")
    assert sorted(documents.pdf_text(pdf_of_pages([content])).split()) == sorted([
        "ustar", "POSIX", "quarterly", "report", "invoice", "total"])


def test_a_word_broken_by_a_hyphen_at_a_line_end_is_joined():
    pdf = pdf_of_pages([lines(b"the appliance supports manip-", b"ulation of archives")])
    assert "manipulation" in documents.pdf_text(pdf).split()


def test_the_lines_after_one_running_past_the_page_edge_are_read():
    """The bench corpus has such lines (tests.bench.corpus.make_pdf does not wrap them):
    poppler's glib get_text() drops the lines of the page after one (5 of its 441 PDFs
    at 3,000 messages), pdftotext reads them."""
    pdf = corpus_pdf(["an ordinary first line", " ".join(["overlong"] * 16),
                      "please read this line", "and this last one"])
    words = documents.pdf_text(pdf).split()
    assert words[:4] == ["an", "ordinary", "first", "line"]
    assert words[-8:] == ["please", "read", "this", "line", "and", "this", "last", "one"]


def test_only_the_first_pdf_max_pages_pages_are_read():
    pdf = pdf_of_pages([lines(b"pageword")] * (documents.PDF_MAX_PAGES + 500))
    assert documents.pdf_text(pdf).split().count("pageword") == documents.PDF_MAX_PAGES


def test_the_bench_corpus_pdfs_give_every_line_they_draw():
    drawn = [f"Line {n} of the corpus document, word{n} included." for n in range(100)]
    assert documents.pdf_text(corpus_pdf(drawn)).split() == " ".join(drawn).split()


# --- refusals: damaged, truncated, encrypted -------------------------------------------------

def test_the_loop_pdf_is_damaged_with_the_reason():
    with pytest.raises(ValueError, match="^damaged PDF: .*content stream"):
        documents.pdf_text(LOOP_PDF)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_pdf_is_unreadable_with_the_reason(keep):
    whole = pdf_with_text("words that were cut off")
    with pytest.raises(UNREADABLE, match="xref"):
        documents.pdf_text(whole[:int(len(whole) * keep)])


def test_an_encrypted_pdf_raises_encrypted_not_a_failure():
    with pytest.raises(documents.Encrypted, match="password-protected PDF"):
        documents.pdf_text(encrypted_pdf(pdf_with_text("locked words")))


# --- hostile PDFs through the real pool ------------------------------------------------------

def slow_pages() -> bytes:
    """PDF_MAX_PAGES pages sharing one stream of 40,000 one-point glyphs: small to send,
    and longer for poppler to read than the reader's time limit (tools.CPU_S)."""
    glyphs = b"BT /F1 1 Tf 0 0 Td " + b"(w) Tj 0.5 0 Td " * 40_000 + b"ET"
    return pdf_of_pages([glyphs] * documents.PDF_MAX_PAGES)


def test_hostile_pdfs_are_each_that_attachments_failure_and_the_pool_reads_on():
    hostile = {"loop.pdf": LOOP_PDF,
               "truncated.pdf": pdf_with_text("half a document")[:200],
               "locked.pdf": encrypted_pdf(pdf_with_text("locked words")),
               "slow.pdf": slow_pages(),
               "bomb.pdf": pdf_bomb(64)}
    batch = [mail(body=f"message about {name}", attachments=[
        (data, PDF_TYPE, name), ("readable notes", "plain", "notes.txt")]).as_bytes()
        for name, data in hostile.items()]
    batch.append(mail(body="a good one", attachments=[
        (pdf_with_text("quarterly figures"), PDF_TYPE, "good.pdf")]).as_bytes())
    with ExtractionPool(CAP, workers=2, timeout_s=60) as pool:
        results = pool.extract_many(batch)
        assert (pool.timeouts, pool.worker_restarts) == (0, 0)
    by_name = {r.attachments[0].filename: r for r in results}
    for name in hostile:
        assert by_name[name].body.strip() == f"message about {name}"
        assert [a.text.strip() for a in by_name[name].attachments[1:]] == ["readable notes"]
    assert by_name["loop.pdf"].attachments[0].error.startswith("ValueError: damaged PDF")
    assert "xref" in by_name["truncated.pdf"].attachments[0].error
    assert by_name["locked.pdf"].attachments[0].encrypted
    # Its CPU limit (tools.CPU_S), not its limit for waiting without computing (tools.BLOCKED_S).
    assert by_name["slow.pdf"].attachments[0].error.endswith("(CPU time limit)")
    assert by_name["bomb.pdf"].attachments[0].error is None  # 64 MB of spaces: no words
    assert by_name["good.pdf"].attachments[0].text.split() == ["quarterly", "figures"]
