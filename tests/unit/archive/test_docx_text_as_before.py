"""services.archive.docx_text reads only a .docx's main document part; its text must be the
one python-docx's docx.Document() gave when it loaded the whole package (what extraction
used before), on generated documents and on packages built the ways real ones differ (the
main part elsewhere, content types by default, relationships repeated or external). The one
difference on purpose: a package whose other parts are broken is read, where docx.Document()
refused it all."""
from __future__ import annotations

import io
import re
import zipfile

import docx
import pytest
from docx.enum.text import WD_BREAK
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.archive.docx_text import docx_pieces
from tests.reading_corpus import zip_archive

WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
OFFICE_DOCUMENT = ("http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
                   "officeDocument")


def before(data: bytes) -> list[str]:
    """What extraction read before: docx.Document() of the whole package."""
    document = docx.Document(io.BytesIO(data))
    return ([paragraph.text + "\n" for paragraph in document.paragraphs]
            + ["\t".join(cell.text for cell in row.cells) + "\n"
               for table in document.tables for row in table.rows])


def outcome(read, data: bytes) -> tuple[str, object]:
    try:
        return "text", list(read(data))
    except Exception as exc:  # noqa: BLE001 - which kind of failure is what is compared
        return "failed", type(exc).__name__


def assert_as_before(data: bytes) -> None:
    """The same text, or a failure where there was one (its kind may differ: where the
    relationships name a part the zip lacks, the whole load failed on that part first)."""
    old, new = outcome(before, data), outcome(docx_pieces, data)
    assert new[0] == old[0]
    if new[0] == "text":
        assert new == old


# --- documents python-docx writes ------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
               | st.sampled_from("\t\n é中"), max_size=30)
runs = st.lists(st.tuples(text, st.sampled_from(["", "tab", "line", "page"])), max_size=4)


def build(paragraphs: list[list[tuple[str, str]]], tables: list[tuple[int, int, list[str], bool]],
          ) -> bytes:
    document = docx.Document()
    for paragraph_runs in paragraphs:
        paragraph = document.add_paragraph()
        for words, extra in paragraph_runs:
            run = paragraph.add_run(words)
            if extra == "tab":
                run.add_tab()
            elif extra in ("line", "page"):
                run.add_break(WD_BREAK.LINE if extra == "line" else WD_BREAK.PAGE)
    for rows, columns, cells, merged in tables:
        table = document.add_table(rows=rows, cols=columns)
        for at, cell in enumerate(table._cells):
            cell.text = cells[at % len(cells)] if cells else ""
        if merged and rows > 1 and columns > 1:
            table.cell(0, 0).merge(table.cell(1, 1))
        if cells and len(cells[0]) % 2:  # a table inside a cell: read as the cell's text
            table.cell(0, 0).add_table(rows=1, cols=2).cell(0, 1).text = cells[0]
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


tables = st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.lists(text, max_size=5),
                            st.booleans()), max_size=2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(runs, max_size=6), tables)
def test_generated_documents_read_as_before(paragraphs, tables):
    assert_as_before(build(paragraphs, tables))


# --- packages as real ones differ --------------------------------------------------------------

BASE = build([[("Giraffe paragraph", "tab"), ("okapi", "line")], [("second", "")]],
             [(2, 2, ["cell", "zebra", "x"], True)])


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        return {name: package.read(name) for name in package.namelist()}


def package(parts: dict[str, bytes]) -> bytes:
    return zip_archive(list(parts.items()))


def edited(changes: dict) -> bytes:
    """BASE with members (by name) replaced (bytes), dropped (None) or edited (a function
    of the old bytes)."""
    parts = members(BASE)
    for name, change in changes.items():
        if change is None:
            parts.pop(name, None)
        else:
            parts[name] = change(parts.get(name, b"")) if callable(change) else change
    return package(parts)


def main_relationship(extra: str = "", target: str = "word/document.xml", rid: str = "rId1",
                      mode: str = "") -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            + f'<Relationship Id="{rid}" Type="{OFFICE_DOCUMENT}" Target="{target}"{mode}/>'.encode()
            + extra.encode() + b"</Relationships>")


def moved(data: dict) -> bytes:
    """The main part stored as word/main2.xml, its content type and relationships moved too."""
    parts = members(BASE)
    parts["word/main2.xml"] = parts.pop("word/document.xml")
    parts["word/_rels/main2.xml.rels"] = parts.pop("word/_rels/document.xml.rels")
    parts["_rels/.rels"] = main_relationship(target="word/main2.xml")
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"/word/document.xml", b"/word/main2.xml")
    return package(parts)


def without_override(types: bytes) -> bytes:
    return re.sub(rb'<Override PartName="/word/document.xml"[^>]*/>', b"", types)


def word_by_default(types: bytes) -> bytes:
    return re.sub(rb'<Default Extension="xml" ContentType="[^"]*"/>',
                  f'<Default Extension="xml" ContentType="{WORD_MAIN}"/>'.encode(),
                  without_override(types))


CONTENT_TYPES, PACKAGE_RELATIONSHIPS, MAIN = "[Content_Types].xml", "_rels/.rels", "word/document.xml"
EXTRA_MAIN = f'<Relationship Id="rId9" Type="{OFFICE_DOCUMENT}" Target="word/document.xml"/>'
NONE_MAIN = f'<Relationship Id="rId1" Type="{OFFICE_DOCUMENT}" Target="word/none.xml"/>'
MARKUP = (b'<w:body><w:p><w:r><w:t>before</w:t></w:r><w:hyperlink r:id="rId99"><w:r><w:t>linked'
          b'</w:t></w:r></w:hyperlink><w:fldSimple w:instr="PAGE"><w:r><w:t>1</w:t></w:r>'
          b'</w:fldSimple><w:smartTag><w:r><w:t>tagged</w:t></w:r></w:smartTag><w:r><w:tab/>'
          b'<w:t xml:space="preserve"> after </w:t><w:cr/><w:br/></w:r></w:p>')


def real_one_last(rels: bytes) -> bytes:
    """A first rId1 naming a part that is not there, then the real main part as rId1."""
    first = rels.replace(b'Target="word/document.xml"', b'Target="word/none.xml"', 1)
    return first.replace(b"</Relationships>", EXTRA_MAIN.replace("rId9", "rId1").encode()
                         + b"</Relationships>")


PACKAGES = {
    "base": BASE,
    "main part stored elsewhere": moved({}),
    "content type by default": edited({CONTENT_TYPES: word_by_default}),
    "content type not Word's": edited({CONTENT_TYPES: without_override}),
    "macro-enabled": edited({CONTENT_TYPES: lambda types: types.replace(
        WORD_MAIN.encode(), b"application/vnd.ms-word.document.macroEnabled.main+xml")}),
    "upper-case part name in the content types": edited({CONTENT_TYPES: lambda types: types.replace(
        b"/word/document.xml", b"/WORD/DOCUMENT.XML")}),
    "two main documents": edited({PACKAGE_RELATIONSHIPS: main_relationship(EXTRA_MAIN)}),
    "the same id twice": edited({PACKAGE_RELATIONSHIPS: main_relationship(NONE_MAIN)}),
    "external main document": edited({PACKAGE_RELATIONSHIPS: main_relationship(
        target="http://example.org/d.xml", mode=' TargetMode="External"')}),
    "no main document": edited({PACKAGE_RELATIONSHIPS: main_relationship().replace(
        OFFICE_DOCUMENT.encode(), b"http://example.org/other")}),
    "no package relationships": edited({PACKAGE_RELATIONSHIPS: None}),
    "main part missing": edited({MAIN: None}),
    "main part not XML": edited({MAIN: b"<w:document"}),
    "main part without a body": edited({MAIN: b'<w:document xmlns:w="http://schemas.'
                                              b'openxmlformats.org/wordprocessingml/2006/main"/>'}),
    "no content types": edited({CONTENT_TYPES: None}),
    "not a zip": b"PK\x03\x04 not a zip at all",
    "empty": b"",
    "hyperlinks, fields and smart tags": edited({MAIN: lambda xml: xml.replace(b"<w:body>", MARKUP, 1)}),
}


@pytest.mark.parametrize("name", PACKAGES)
def test_packages_read_as_before(name):
    assert_as_before(PACKAGES[name])


def test_the_base_package_is_read_and_the_cases_fail_in_kinds():
    """The comparisons above compare something: text where there is text, each failure
    kind among them."""
    merged_row = "cell\nzebra\nx\ncell\tcell\nzebra\nx\ncell\n"  # a merged cell is each of its cells
    assert outcome(docx_pieces, BASE) == (
        "text", ["Giraffe paragraph\tokapi\n\n", "second\n", merged_row, merged_row])
    failures = {outcome(docx_pieces, data)[1] for data in PACKAGES.values()
                if outcome(docx_pieces, data)[0] == "failed"}
    assert {"KeyError", "ValueError", "BadZipFile", "XMLSyntaxError"} <= failures


BROKEN_OTHER_PARTS = {
    "styles not XML": edited({"word/styles.xml": b"<w:styles"}),
    "a related part missing from the zip": edited({"word/styles.xml": None}),
    "settings not XML": edited({"word/settings.xml": b"\x00\x01"}),
    "a missing part named by the id the main part has later": edited(
        {PACKAGE_RELATIONSHIPS: real_one_last}),
}


@pytest.mark.parametrize("name", BROKEN_OTHER_PARTS)
def test_a_package_whose_other_parts_are_broken_is_read(name):
    data = BROKEN_OTHER_PARTS[name]
    assert outcome(before, data)[0] == "failed"  # docx.Document() refused all of it
    assert outcome(docx_pieces, data) == outcome(docx_pieces, BASE)
