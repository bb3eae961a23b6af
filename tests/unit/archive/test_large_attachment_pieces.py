"""A large base64 attachment read for its type only (an image, a video, an unknown binary) is
decoded a piece at a time by the extraction worker, never held whole (#20): a 100 MiB
message of random data, its 73 MiB file decoded whole beside it and the payload's str, put
the import over the model 450's 256 MB. The worker's tree holds a large ASCII payload as a
view into the message (mimetree.HeldPayload), and extract() reads the file's type from its
first bytes and its SHA-256 from the pieces; everything it says of the file is what reading
it whole says."""
import base64
import gzip
import hashlib
import io
import lzma
import random
import re
import tracemalloc
import zipfile

import pytest

from services.archive import containers, extract, mime, mimetree, transfer_encoding
from services.archive.extraction_memo import MemoryMemo
from tests import reading_corpus as corpus
from tests.unit.archive import history
from tests.unit.archive.test_extract import make_docx, make_pdf, make_xlsx

MiB = 1 << 20
CAP = 4096


def message(payload: bytes, mime_type: str = "application/octet-stream",
            name: str = "file.bin", encoded: bytes | None = None) -> bytes:
    """A message whose attachment (base64, as `encoded` spells it) is most of it."""
    encoded = base64.encodebytes(payload) if encoded is None else encoded
    return b"".join([
        b"From: a@example.org\r\nSubject: large\r\nMIME-Version: 1.0\r\n",
        b"Content-Type: multipart/mixed; boundary=sep\r\n\r\n",
        b"--sep\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n",
        b"--sep\r\nContent-Type: ", mime_type.encode(), b"; name=", name.encode(), b"\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Disposition: attachment; filename=", name.encode(), b"\r\n\r\n",
        encoded, b"\r\n--sep--\r\n"])


def attachment(raw: bytes):
    return [part for part in mime.parse_message(raw, held=True).walk()][-1]


# base64 as encoders and senders spell it: each shape's pieces must join to what
# decode_base64 reads of it whole, wherever a piece ends.
def spellings(data: bytes):
    plain = base64.b64encode(data)
    for width in (4, 57, 76, 77, len(plain) or 1):
        lines = [plain[at:at + width] for at in range(0, len(plain), width)]
        for newline in (b"\r\n", b"\n"):
            text = newline.join(lines)
            yield text
            yield text + newline
            yield text + newline * 3  # blank lines after the padding (review r24 F3)
            yield text.replace(newline, b" " + newline) + b"\t" + newline  # blanks
            yield text.rstrip(b"=")  # padding left out
            if text.endswith(b"=="):
                yield text[:-1]  # half its padding
    yield plain + b"Q"  # a lone last letter: six bits, no byte


@pytest.mark.parametrize("piece_bytes", [5, 7, 8, 13, 64])
def test_the_pieces_join_to_what_decoding_the_whole_gives(monkeypatch, piece_bytes):
    monkeypatch.setattr(transfer_encoding, "PIECE_BYTES", piece_bytes)
    random.seed(piece_bytes)
    tried = 0
    for size in list(range(0, 40)) + [97, 300]:
        data = random.randbytes(size)
        for text in spellings(data):
            pieces = transfer_encoding.decode_base64_pieces(memoryview(text))
            whole = transfer_encoding.decode_base64(text)
            if pieces is None:  # not plain base64: read whole, as before
                assert b"=" in text.rstrip(b"\r\n=") or size == 0
                continue
            assert b"".join(pieces) == whole, (size, text)
            tried += 1
    assert tried > 2000


@pytest.mark.parametrize("text", [b"QUJD\r\nRA==\r\nRUY=\r\n", b"QUJD!RA==", b"QU*JD"])
def test_base64_that_is_not_plain_gets_no_pieces(text):
    assert transfer_encoding.decode_base64_pieces(text) is None


def test_only_a_held_base64_payload_of_the_size_asked_gets_pieces(monkeypatch):
    monkeypatch.setattr(mimetree, "HELD_ASCII_BYTES", 1024)
    data = random.Random(4).randbytes(4096)
    part = attachment(message(data))
    assert b"".join(transfer_encoding.base64_pieces(part, 4096)) == data
    assert transfer_encoding.base64_pieces(part, 1 << 20) is None  # smaller than asked
    seven_bit = message(data).replace(b"Encoding: base64", b"Encoding: 7bit")
    assert transfer_encoding.base64_pieces(attachment(seven_bit), 0) is None
    monkeypatch.setattr(mimetree, "HELD_ASCII_BYTES", 1 << 20)
    # (a str unless small payloads are views too: they are most of the message, #20)
    monkeypatch.setattr(mimetree, "HELD_SMALL_BYTES", 1 << 20)
    assert transfer_encoding.base64_pieces(attachment(message(data)), 0) is None  # a str


def test_a_large_ascii_payload_is_held_as_a_view_and_reads_as_the_feedparser_s(monkeypatch):
    monkeypatch.setattr(mimetree, "HELD_ASCII_BYTES", 1024)
    raw = message(random.Random(1).randbytes(64 * 1024))
    held, plain = mime.parse_message(raw, held=True), mime.parse_message(raw)
    big = [part for part in held.walk()][-1]
    assert isinstance(big.payload_bytes, memoryview)
    assert [part for part in held.walk()][1].payload_bytes is None  # small: a str
    for held_part, plain_part in zip(held.walk(), plain.walk()):
        if held_part.is_multipart():
            continue
        assert held_part._payload == plain_part._payload
        assert held_part.get_payload(decode=True) == plain_part.get_payload(decode=True)
        assert transfer_encoding.decoded_payload(held_part) == \
            transfer_encoding.decoded_payload(plain_part)


def zip_of(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("inside.txt", b"zipped words " + data[:64].hex().encode())
    return out.getvalue()


def page_pdf(word: str) -> bytes:
    """A PDF of one page of text, its content stream not compressed (some 4 KB)."""
    return make_pdf(b"BT /F1 12 Tf 72 712 Td (%s) Tj ET" % (word + " ").encode() * 100)


def files(noise: bytes) -> dict[str, tuple[bytes, str, str]]:
    """Files of every kind extract() reads differently: (content, declared type, name)."""
    return {
        "random": (noise, "application/octet-stream", "backup.bin"),
        "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + noise, "image/png", "a.png"),
        "png named bin": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + noise,
                          "application/octet-stream", "a.bin"),
        "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + noise, "image/jpeg", "p.jpg"),
        "gzip": (gzip.compress(noise), "application/gzip", "a.gz"),
        "pdf named, random": (noise, "application/pdf", "report.pdf"),
        "pdf by name": (noise, "application/octet-stream", "report.pdf"),
        "text": (b"plain words in a file\n" * 400, "application/octet-stream", "notes"),
        "html": (b"<html><body><p>hello page</p></body></html>" * 100, "text/html", "p.html"),
        "zip": (zip_of(noise) + noise, "application/zip", "a.zip"),
        "cms start": (bytes.fromhex("3082ffff06092a864886f70d010702") + noise,
                      "application/octet-stream", "x.p7m"),
        "message": (b"From: b@example.org\r\nSubject: inner\r\n\r\nforwarded words\r\n" * 50,
                    "application/octet-stream", "fwd.eml"),
        "docx named": (noise, "application/octet-stream", "a.docx"),
        # documents whose readers take a seekable file (extract.READ_FROM_A_FILE)
        "pdf": (page_pdf("pdfword"), "application/pdf", "r.pdf"),
        "pdf as octet-stream": (page_pdf("pdfword"), "application/octet-stream",
                                "r.bin"),
        "encrypted pdf": (corpus.encrypted_pdf(page_pdf("secret")),
                          "application/pdf", "e.pdf"),
        "damaged pdf": (page_pdf("cut")[:-60] + noise[:2000], "application/pdf",
                        "d.pdf"),
        "docx": (make_docx(["docxword paragraph"] * 200, [["cell", noise[:8].hex()]]),
                 "application/octet-stream", "a.docx"),
        "docx bomb": (corpus.docx_bomb(40), "application/octet-stream", "b.docx"),
        "xlsx": (make_xlsx([["xlsxword", at, noise[at:at + 4].hex()] for at in range(300)]),
                 "application/octet-stream", "a.xlsx"),
    }


@pytest.mark.parametrize("kind", list(files(b"")))
def test_a_large_file_read_in_pieces_says_what_reading_it_whole_says(monkeypatch, kind):
    content, declared, name = files(random.Random(kind).randbytes(48 * 1024))[kind]
    assert len(content) > 1024  # (read in pieces below)
    raw = message(content, declared, name)
    monkeypatch.setattr(mimetree, "HELD_ASCII_BYTES", 1024)
    monkeypatch.setattr(extract, "LARGE_FILE_BYTES", 1 << 40)  # never in pieces
    whole = extract.extract(raw, CAP)
    monkeypatch.setattr(extract, "LARGE_FILE_BYTES", 1024)
    assert extract.extract(raw, CAP) == whole
    assert whole.attachments[0].filename == name


def extracted_with_peak(raw: bytes) -> tuple[extract.Extracted, int]:
    """extract() of a parsed message, and the peak of what it allocated (bytes)."""
    parsed = extract.parse(raw)
    tracemalloc.start()
    try:
        return extract.extract_parsed(parsed, CAP), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_random_file_is_never_held_whole():
    result, peak = extracted_with_peak(message(random.Random(2).randbytes(16 * MiB)))
    assert result.attachments[0].mime_type == "application/octet-stream"
    assert peak < 2 * MiB  # decoded whole: 16 MiB and more


def test_a_failure_remembered_for_the_file_is_found_by_its_pieces_sha256():
    # The pool's memo knows content by the SHA-256 of its decoded bytes: the pieces' digest
    # must be that one, or a file that hurt a worker before would be read again.
    data = random.Random(3).randbytes(2 * MiB)
    memo = MemoryMemo()
    memo.remember_failure(hashlib.sha256(data).hexdigest(), "hung the reader before")
    with extract.ExtractionPool(CAP, workers=1, memo=memo) as pool:
        [result] = pool.extract_many([message(data)])
    assert result.attachments[0].error == "hung the reader before"


@pytest.mark.parametrize("piece_bytes", [5, 8, 13, 64])
def test_a_base64_file_reads_and_seeks_as_decoding_the_whole_gives(monkeypatch, piece_bytes):
    monkeypatch.setattr(transfer_encoding, "PIECE_BYTES", piece_bytes)
    rng, tried = random.Random(piece_bytes), 0
    for size in list(range(0, 30)) + [97, 300]:
        for text in spellings(rng.randbytes(size)):
            if transfer_encoding.decode_base64_pieces(text) is None:
                continue
            whole = transfer_encoding.decode_base64(text)
            file = transfer_encoding.Base64File(memoryview(text))
            assert file.read() == whole and file.read(5) == b""
            assert file.seek(0, io.SEEK_END) == len(whole)
            for _ in range(20):
                at, count = rng.randrange(len(whole) + 3), rng.randrange(40)
                file.seek(at)
                assert file.read(count) == whole[at:at + count], (size, text, at, count)
                assert file.tell() == min(at + count, max(at, len(whole)))
            tried += 1
    assert tried > 1000


def zip_kinds(rng: random.Random) -> dict[str, bytes]:
    """Zip archives of every kind containers reads differently (MEMBER_READ_BYTES is
    64 KiB in the tests that read them): members stored and deflated, text and binary,
    nested, encrypted, over the read limit by their header or by lying about it, with a
    wrong CRC, more than MAX_MEMBERS, a folder, cut short; each large (megabytes of
    random data in a stored member) or small."""
    def stored(members):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for name, data in members:
                archive.writestr(name, data)
        return out.getvalue()

    texts = [(f"t{at}.txt", b"zipped words %d " % at * rng.randrange(1, 300)) for at in range(4)]
    noise = ("noise.bin", rng.randbytes(rng.randrange(1, 3) * MiB))
    crc_flipped = bytearray(stored([("crc.txt", b"words with a wrong crc " * 50)]))
    crc_flipped[40] ^= 0xFF
    inner = stored([("deep.txt", b"deep words")])
    for depth in range(4):
        inner = stored([(f"level{depth}.zip", inner), (f"l{depth}.txt", b"level words")])
    kinds = {
        "stored": stored([*texts, noise]),
        "deflated": corpus.zip_archive([*texts, noise]),
        "nested": stored([noise, ("inner.zip", inner)]),
        "encrypted": corpus.zip_archive(texts, password=b"pw"),
        "over the limit": corpus.zip_archive([("big.txt", b"w " * 50000), *texts]),
        "bomb": corpus.zip_archive([("bomb.txt", corpus.deflate_bomb(b"x", 1)), *texts],
                                   understate=("bomb.txt",)),
        "wrong crc": bytes(crc_flipped),
        "many": stored([(f"m{at}.txt", b"m") for at in range(containers.MAX_MEMBERS + 3)]),
        "folder": stored([("dir/", b""), ("dir/a.txt", b"in a folder"), noise]),
        "docx inside": stored([("a.docx", corpus.opendocument("text", ["docx words"])),
                               noise]),
    }
    kinds["cut"] = kinds["stored"][:-30]
    return kinds


ZIP_KINDS = list(zip_kinds(random.Random(0)))


@pytest.mark.parametrize("kind", ZIP_KINDS)
def test_a_large_zip_read_through_a_base64_file_says_what_reading_it_whole_says(
        monkeypatch, kind):
    data = zip_kinds(random.Random(kind))[kind]
    monkeypatch.setattr(containers, "MEMBER_READ_BYTES", 64 * 1024)
    monkeypatch.setattr(mimetree, "HELD_ASCII_BYTES", 1024)
    for declared, name in [("application/zip", "a.zip"), ("application/octet-stream", "a")]:
        raw = message(data, declared, name)
        monkeypatch.setattr(extract, "LARGE_FILE_BYTES", 1 << 40)  # decoded whole
        whole = extract.extract(raw, CAP)
        monkeypatch.setattr(extract, "LARGE_FILE_BYTES", 1024)
        assert extract.extract(raw, CAP) == whole
        assert whole.attachments[0].mime_type == "application/zip"
    assert len(whole.attachments) > 1 or whole.attachments[0].error  # it was opened


@pytest.mark.parametrize("kind", ZIP_KINDS)
def test_zip_members_are_read_one_at_a_time_as_6a3d6eb_read_them_all_at_once(
        monkeypatch, kind):
    data = zip_kinds(random.Random(kind))[kind]
    before = history.module_at("6a3d6eb", "containers")
    for module in (containers, before):
        monkeypatch.setattr(module, "MEMBER_READ_BYTES", 64 * 1024)
    members_as_6a3d6eb_read_them(data, containers.ReadBudget(0, read_bytes=3 * MiB),
                                 before.ReadBudget(0, 3 * MiB), before)


def members_as_6a3d6eb_read_them(data: bytes, budget, budget_before, before) -> None:
    """Asserts zip_members of `data` now (spending `budget`) gives what 6a3d6eb's
    (`before`, spending `budget_before`) gave: the same error, or the same members,
    problems and budget spent, none of them held; an LZMAError it let out is now that
    member's problem (review r26 F4)."""
    try:
        members, problem = containers.zip_members(data, budget)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            before.zip_members(data, budget_before)
        return
    try:
        members_before, problem_before = before.zip_members(data, budget_before)
    except lzma.LZMAError as exc:
        assert f"cannot read this member: {exc}" in [m.problem for m in members]
        return
    assert problem == problem_before
    assert [(m.name, m.content(), m.problem, m.encrypted) for m in members] == \
        [(m.name, m.data, m.problem, m.encrypted) for m in members_before]
    assert vars(budget) == vars(budget_before)
    assert all(m.data is None for m in members)  # none held


def test_a_large_zip_is_read_holding_one_member_at_a_time():
    rng = random.Random(5)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for at in range(4):
            archive.writestr(f"f{at}.bin", rng.randbytes(4 * MiB))
        archive.writestr("notes.txt", b"zipword in the large zip")
    result, peak = extracted_with_peak(message(out.getvalue(), "application/zip", "z.zip"))
    assert [entry.filename for entry in result.attachments] == \
        ["z.zip", "f0.bin", "f1.bin", "f2.bin", "f3.bin", "notes.txt"]
    assert "zipword" in result.attachments[-1].text
    assert peak < 6 * MiB  # one member (4 MiB) and pieces; before: 16 MiB decoded, 16 read
