"""The text of a Word document (Office Open XML WordprocessingML, ECMA-376, a .docx), read
with python-docx's classes from the main document part alone.

Why not docx.Document(): it loads the whole package, every part python-docx has a class for
parsed into a tree (a Word template's styles.xml and stylesWithEffects.xml alone are some
800 KB of XML) and every image's header read, where the text is in the main document part.
On the bench corpus a .docx took 7 ms, the largest share of a worker's time on a message with
attachments (#20); read this way, 0.8 ms. The main document part is found as python-docx
finds it (the package relationship of type officeDocument; its content type from
[Content_Types].xml, which must be WordprocessingML's) and read into python-docx's own
Document, so the text is the one docx.Document() gave, paragraph by paragraph and cell by
cell (tests/unit/archive/test_docx_text_as_before). One difference, on purpose: a package
whose other parts are broken (malformed styles, a part its relationships name but the zip
lacks) is read, where docx.Document() refused all of it.
"""
from __future__ import annotations

import io
from typing import BinaryIO, Iterator

from docx.document import Document
from docx.opc.constants import CONTENT_TYPE, RELATIONSHIP_TYPE
from docx.opc.packuri import PACKAGE_URI
from docx.opc.phys_pkg import PhysPkgReader
from docx.opc.pkgreader import PackageReader, _ContentTypeMap
from docx.oxml import parse_xml

__all__ = ["docx_pieces"]


def docx_pieces(data: bytes | BinaryIO) -> Iterator[str]:
    """The text of the .docx `data` (its bytes, or a seekable binary file of them, read
    from its start): each body paragraph then each table row (its cells
    joined by tabs), a line each. Raises what python-docx and zipfile raise on a file that
    is no Word document (zipfile.BadZipFile, KeyError, ValueError, lxml's XMLSyntaxError)."""
    document = _main_document(data)
    for paragraph in document.paragraphs:
        yield paragraph.text + "\n"
    for table in document.tables:
        for row in table.rows:
            yield "\t".join(cell.text for cell in row.cells) + "\n"


def _main_document(data: bytes | BinaryIO) -> Document:
    package = PhysPkgReader(io.BytesIO(data) if isinstance(data, bytes) else data)
    try:
        content_types = _ContentTypeMap.from_xml(package.content_types_xml)
        partname = _office_document(PackageReader._srels_for(package, PACKAGE_URI))
        content_type = content_types[partname]
        if content_type != CONTENT_TYPE.WML_DOCUMENT_MAIN:
            raise ValueError(f"not a Word document: its main part is {content_type}")
        # The part is not needed for text (paragraphs, runs, tables and cells never ask it).
        return Document(parse_xml(package.blob_for(partname)), None)
    finally:
        package.close()


def _office_document(relationships) -> str:
    """The part name the package's one officeDocument relationship names. As python-docx
    keeps relationships by id, a later one of the same id replaces an earlier one."""
    by_id = {relationship.rId: relationship for relationship in relationships}
    found = [relationship for relationship in by_id.values()
             if relationship.reltype == RELATIONSHIP_TYPE.OFFICE_DOCUMENT]
    if not found:
        raise KeyError("the package has no main document (no officeDocument relationship)")
    if len(found) > 1:
        raise ValueError("the package has more than one main document")
    if found[0].is_external:
        raise ValueError("the package's main document is outside it")
    return found[0].target_partname
