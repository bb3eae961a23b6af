"""services.archive.filetypes, containers, documents and tools: types from content, bounds on
what a container may expand to, and external readers held to their limits."""
from __future__ import annotations

import os

import pytest

from services.archive import containers, documents, extract as extraction, filetypes, tools
from services.archive.extract import extract
from tests import reading_corpus as corpus
from tests.unit.archive.test_extract import CAP, make_docx, mail, pdf_with_text

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize("declared, content, expected", [
    ("application/octet-stream", pdf_with_text("x"), "application/pdf"),     # generic
    ("text/x-vcard", pdf_with_text("x"), "application/pdf"),                  # lies
    ("application/x-download", make_docx(["x"], [["a"]]), DOCX),
    ("application/pdf", bytes(range(256)) * 64, "application/pdf"),           # a weak guess
    ("text/csv", b"item,amount\nlamps,1200\n", "text/csv"),                   # finer than magic
    ("application/octet-stream", b"plain words only\n", "text/plain"),
    (DOCX, make_docx(["x"], [["a"]]), DOCX),
    ("application/vnd.ms-excel", corpus.xls([["a"]]), "application/vnd.ms-excel"),
    ("application/x-zip-compressed", corpus.zip_archive([("a", b"b")]), "application/zip"),
    ("application/zip", corpus.opendocument("text", ["x"]), "application/vnd.oasis.opendocument.text"),
    ("image/png", corpus.rtf(["x"]), "text/rtf"),
    ("application/octet-stream", b"", "application/octet-stream"),
])
def test_the_type_comes_from_content_where_the_declaration_is_generic_or_wrong(
        declared, content, expected):
    assert filetypes.effective_type(declared, filetypes.content_type(content)) == expected


def test_a_zip_lists_at_most_so_many_members():
    archive = corpus.zip_archive([(f"f{n}.txt", b"x") for n in range(containers.MAX_MEMBERS + 7)])
    members, problem = containers.zip_members(archive, containers.ReadBudget(CAP))
    assert len(members) == containers.MAX_MEMBERS
    assert problem == f"{containers.MAX_MEMBERS + 7} members; the first 500 are listed"


def test_zips_nested_past_the_limit_are_listed_not_opened():
    archive = corpus.zip_archive([("bottom.txt", b"bottom words")])
    for level in range(extraction.MAX_NESTED_CONTAINERS + 2):
        archive = corpus.zip_archive([(f"level{level}.zip", archive)])
    result = extract(mail(attachments=[(archive, "application/zip", "top.zip")]).as_bytes(), CAP)
    names = [a.filename for a in result.attachments]
    assert names[0] == "top.zip" and "bottom.txt" not in names
    assert any(a.error and "nested deeper" in a.error for a in result.attachments)


def test_the_text_of_container_members_shares_one_budget_per_message():
    big = b"word " * (CAP // 5)  # one cap of text each
    archive = corpus.zip_archive([(f"f{n}.txt", big) for n in range(20)])
    result = extract(mail(attachments=[(archive, "application/zip", "many.zip")]).as_bytes(), CAP)
    total = sum(len(a.text.encode()) for a in result.attachments)
    assert len(result.attachments) == 21
    assert total <= extraction.MESSAGE_ATTACHMENT_TEXT_CAPS * CAP


@pytest.mark.parametrize("data", [
    b"", b"\x78\x9f\x3e\x22", corpus.tnef([("a.txt", b"b")])[:30],
    corpus.tnef([("a.txt", b"b" * 100)])[:-60] + b"\xff" * 4000,
    corpus.tnef([("a.txt", b"b")]) + b"\x02\x0f\x80\x06\x00\xff\xff\xff\x7f",  # claims 2 GB
])
def test_hostile_tnef_is_that_attachment_s_failure(data):
    result = extract(mail(attachments=[(data, "application/ms-tnef", "winmail.dat")]).as_bytes(),
                     CAP)
    assert result.failed is None and result.attachments[0].filename == "winmail.dat"
    assert result.attachments[0].error  # and the reason is recorded


def test_tnef_file_names_cannot_leave_the_unpacking_directory():
    escape = f"../../../tmp/escaped-{id(object())}.txt"
    data = corpus.tnef([(escape, b"outside words")])
    result = extract(mail(attachments=[(data, "application/ms-tnef", "winmail.dat")]).as_bytes(),
                     CAP)
    assert [(a.filename, a.text) for a in result.attachments[1:]] == [(escape, "outside words")]
    assert not os.path.exists(escape.replace("../", "/").replace("//", "/"))


def test_a_tool_that_runs_too_long_is_stopped_with_the_reason(monkeypatch):
    monkeypatch.setattr(tools, "BLOCKED_S", 0.5)
    with pytest.raises(tools.ToolFailed, match="sleep was blocked for 0.5 s"):
        tools.run(["sleep", "5"], b"")


def test_a_tool_that_writes_too_much_is_stopped_with_the_reason(monkeypatch):
    monkeypatch.setattr(tools, "OUTPUT_BYTES", 4096)
    with pytest.raises(tools.ToolFailed, match="output size limit"):
        tools.run(["dd", "if=/dev/zero", "of=out", "bs=1M", "count=1"], b"")


def test_a_tool_fed_on_standard_input_has_its_limits_before_it_reads_a_byte():
    # The shell reads all its input, then `cat` (its child, with its limits) shows them.
    stdout, _ = tools.run(["sh", "-c", "cat > /dev/null; cat /proc/self/limits"],
                          b"x" * 300_000, stdin=True)
    limits = {line[:26].strip(): line[26:].split()[:2] for line in stdout.decode().splitlines()}
    memory = str(next(value for _, option, value in tools.tool_limits() if option == "as"))
    assert limits["Max cpu time"] == [str(tools.CPU_S)] * 2
    assert limits["Max file size"] == [str(tools.OUTPUT_BYTES)] * 2
    assert limits["Max address space"] == [memory, memory]


def test_a_tool_fed_on_standard_input_that_runs_too_long_is_stopped(monkeypatch):
    monkeypatch.setattr(tools, "BLOCKED_S", 0.5)
    with pytest.raises(tools.ToolFailed, match="sleep was blocked for 0.5 s"):
        tools.run(["sleep", "5"], b"input", stdin=True)


def test_a_tool_fed_on_standard_input_that_writes_too_much_is_stopped(monkeypatch, tmp_path):
    monkeypatch.setattr(tools, "OUTPUT_BYTES", 4096)
    with pytest.raises(tools.ToolFailed, match="output size limit"):
        tools.run(["dd", f"of={tmp_path / 'out'}", "bs=64k"], bytes(1024 * 1024), stdin=True)


def test_a_missing_tool_is_a_reason_not_a_crash():
    with pytest.raises(tools.ToolFailed, match="no-such-reader is not installed"):
        tools.run(["no-such-reader", "{input}"], b"data")


def test_signed_data_is_unwrapped_without_a_trusted_signer():
    entity = b"Content-Type: text/plain\r\n\r\nsigned words\r\n"
    der = corpus.smime_signed_data(entity)
    assert containers.cms_kind(der, None) == "signed-data"
    assert containers.signed_content(der) == entity
    with pytest.raises(tools.ToolFailed):
        containers.signed_content(b"0\x82garbage")


def test_encrypted_documents_raise_encrypted():
    with pytest.raises(documents.Encrypted):
        documents.text_of("application/pdf", corpus.encrypted_pdf(pdf_with_text("x")))
    with pytest.raises(documents.Encrypted):
        documents.text_of(documents.ENCRYPTED_OFFICE, b"\xd0\xcf\x11\xe0")


@pytest.mark.parametrize("declared, data, reason", [
    ("application/msword", bytes(range(256)) * 40, "not a Word 97-2003 document"),
    ("application/msword", b"just text\n", "not a Word 97-2003 document"),
    ("application/msword", corpus.xls([["a"]])[:1000], "catdoc failed"),   # a broken OLE file
    ("application/vnd.ms-excel", bytes(range(256)) * 40, "not an Excel 97-2003 workbook"),
    ("application/vnd.oasis.opendocument.text", b"PK\x03\x04broken", "odt2txt failed"),
    ("application/rtf", b"\x00" * 100, "not an RTF document"),
], ids=["garbage-doc", "text-doc", "broken-ole-doc", "garbage-xls", "broken-odt", "nul-rtf"])
def test_hostile_office_files_are_that_attachment_s_failure(declared, data, reason):
    result = extract(mail(attachments=[(data, declared, "file.bin")]).as_bytes(), CAP)
    assert result.failed is None
    attachment = result.attachments[0]
    assert attachment.text == "" and reason in (attachment.error or "")


def test_a_workbook_sent_as_a_word_document_is_read_as_the_workbook_it_is():
    data = corpus.xls([["sent as doc", "wapiti"]])
    attachment = extract(mail(attachments=[(data, "application/msword", "a.doc")]).as_bytes(),
                         CAP).attachments[0]
    assert (attachment.mime_type, attachment.declared_type) == ("application/vnd.ms-excel",
                                                                "application/msword")
    assert "wapiti" in attachment.text


def test_rich_text_saved_as_doc_is_read_as_rtf():
    data = corpus.rtf(["saved as doc größe"])
    result = extract(mail(attachments=[(data, "application/msword", "letter.doc")]).as_bytes(),
                     CAP)
    assert "saved as doc größe" in result.attachments[0].text


@pytest.mark.parametrize("label, codec", [("windows-874", "cp874"), ("cp-850", "cp850"),
                                          ("ks_c_5601-1987", "cp949")])
def test_text_attachments_are_read_in_their_declared_charset(label, codec):
    text = {"cp874": "ยอดขาย รายงาน", "cp850": "Übersicht Köln", "cp949": "회의 안건"}[codec]
    raw = (b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbody\n"
           b"--b\nContent-Type: text/plain; charset=" + label.encode() + b"\n"
           b"Content-Disposition: attachment; filename=a.txt\n\n" + text.encode(codec) + b"\n"
           b"--b\nContent-Type: text/html; charset=" + label.encode() + b"\n"
           b"Content-Disposition: attachment; filename=a.html\n\n<p>" + text.encode(codec)
           + b"</p>\n--b--\n")
    assert [a.text.strip() for a in extract(raw, CAP).attachments] == [text, text]
