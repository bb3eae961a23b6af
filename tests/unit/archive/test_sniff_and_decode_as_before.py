"""Sniffing a type, decoding base64 and the parser's bounds give what they gave before they
were made cheaper (BEFORE, 08cc065, read from git's history; fails, never skips, without
it): filetypes.content_type (libmagic's answers now kept by the digest of the bytes it
reads), transfer_encoding.decode_base64 (its plain case now told by deleting letters, not
by a regular expression), mime_parts.bounded (a delivery status looked for by lower() and
a find, lines counted only when a message is long enough to matter) and
header_blocks.bounded (likewise).

Each function is compared with BEFORE's, run as a module of its own beside today's, on
generated inputs (hypothesis), with its limits made small so that every branch is taken;
and whole messages are compared end to end: BEFORE's tree and this one each run
extract() and build_document() in a subprocess of its own over the bench corpus with
attachments, generated messages (base64 of every shape, repeated attachments, delivery
statuses) and the real-world cases (tests/data/cases, /work/shared/cases when present):
the same Extracted (dataclasses.asdict: text, types, errors) and the same document (every
term with its wdf and positions, the data, every value)."""
from __future__ import annotations

import base64
import hashlib
import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from services.archive import charsets, filetypes, header_blocks, mime_parts, transfer_encoding
from tests.bench import corpus
from tests.unit.archive.history import ROOT, columns_differing, module_at

BEFORE = "08cc065"
CASES = [ROOT / "tests" / "data" / "cases", Path("/work/shared/cases")]


OLD_FILETYPES = module_at(BEFORE, "filetypes")
OLD_ENCODING = module_at(BEFORE, "transfer_encoding")
OLD_PARTS = module_at(BEFORE, "mime_parts")
OLD_BLOCKS = module_at(BEFORE, "header_blocks")


# --- base64 ------------------------------------------------------------------------------

LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Base64's own characters far more often than others, so that plain and nearly plain
# bodies come up: padding anywhere, lone CRs, blanks, junk, 8-bit bytes.
BASE64_ISH = st.binary().map(bytes) | st.lists(
    st.sampled_from([bytes([c]) for c in LETTERS] * 4
                    + [b"=", b"==", b"\r\n", b"\n", b"\r", b" ", b"\t", b"*", b"-", b"\xff",
                       b"\x00", b"=\r\n", b"==\n"]), max_size=120).map(b"".join)


@st.composite
def encoded(draw) -> bytes:
    """What an encoder writes (lines of some length, CRLF or LF, padded), then perhaps
    spoiled: padding dropped or doubled, the end cut, chunks each encoded on its own,
    junk or blank lines put in."""
    chunks = draw(st.lists(st.binary(max_size=200), min_size=1, max_size=3))
    width = draw(st.sampled_from([4, 60, 76, 1000]))
    newline = draw(st.sampled_from([b"\r\n", b"\n", b"\r", b""]))
    text = b"".join(base64.b64encode(chunk) for chunk in chunks)
    lines = [text[at:at + width] for at in range(0, len(text), width)]
    data = newline.join(lines) + draw(st.sampled_from([b"", newline, newline * 2]))
    spoil = draw(st.sampled_from(["none", "unpad", "cut", "junk", "pad"]))
    if spoil == "unpad":
        data = data.replace(b"=", b"")
    elif spoil == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    elif spoil == "junk":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b" ", b"*", b"=", b"\r", b"\n\n"])) + data[at:]
    elif spoil == "pad":
        data = data.rstrip(b"\r\n") + draw(st.sampled_from([b"=", b"==", b"===", b"=\r\n="]))
    return data


@settings(max_examples=3000, deadline=None)
@given(BASE64_ISH | encoded())
def test_base64_decodes_as_before(data):
    assert transfer_encoding.decode_base64(data) == OLD_ENCODING.decode_base64(data)
    if OLD_ENCODING._PLAIN_BASE64.fullmatch(data) is not None:  # (plain is wider since
        assert transfer_encoding._plain_base64(data)  # review r24 F3: blanks, blank lines)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BASE64_ISH | encoded())
def test_base64_decodes_as_before_in_small_pieces(data):
    """Pieces of a few bytes: padding and junk at and across their edges."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transfer_encoding, "PIECE_BYTES", 5)
        test_base64_decodes_as_before.hypothesis.inner_test(data)


@pytest.mark.parametrize("data", [
    b"", b"\r\n" * 1000, b"QQ", b"QQ=", b"QQ==", b"QQ===", b"QUJD=", b"QUJDQ==", b"QUJDQQ=\r\n",
    b"QUJDQUI=\n\r", b"QUJD\r\nQQ==\r\n", b"QQ==QQ==", b"=QUJD", b"QUJDQUJD" * 30000 + b"QQ==",
    b"QUJD" * 20000 + b"=" + b"QUJD" * 20000, b"Q\nQ\n=\n=\n", b"QQ=\r\n=",
])
def test_base64_shapes_decode_as_before(data):
    test_base64_decodes_as_before.hypothesis.inner_test(data)


# --- libmagic ----------------------------------------------------------------------------

HEADS = [b"%PDF-1.4\n", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"PK\x03\x04", b"GIF89a", b"\x89PNG\r\n",
         b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"<html><body>", b"{\\rtf1", b"From: a@b\n",
         b"%PDF", b"\x1f\x8b\x08", b"BEGIN:VCARD\r\n", b"", b"plain words, ", b"\x00\x01"]


@st.composite
def files(draw) -> bytes:
    head = draw(st.sampled_from(HEADS)) + draw(st.binary(max_size=40))
    body = draw(st.sampled_from([b"", b"text line\n" * 50, bytes(range(256)) * 8,
                                 b"a" * (filetypes.SNIFF_BYTES - 10)]))
    tail = draw(st.sampled_from([b"", b"x" * 20, b"\x00" * 100]))
    return head + body + tail


@settings(max_examples=400, deadline=None)
@given(st.lists(files(), min_size=1, max_size=6))
def test_content_types_are_libmagics_as_before(datas):
    """Asked again (an answer kept) and anew (kept ones forgotten), the answer is BEFORE's;
    bytes past SNIFF_BYTES, which libmagic never reads, change nothing."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(filetypes, "_known", filetypes._Answers(3))
        for data in datas + datas[::-1]:
            before = OLD_FILETYPES.content_type(data)
            if before == "application/octet-stream" and \
                    charsets.unmarked_encoding(data[:filetypes.SNIFF_BYTES]) is not None:
                before = "text/plain"  # UTF-16 or -32 without a mark (test_unmarked_unicode)
            assert filetypes.content_type(data) == before
        assert len(filetypes._known._answers) <= 3


def test_an_answer_is_kept_for_all_the_bytes_libmagic_reads():
    """Text with a NUL anywhere in the first SNIFF_BYTES is binary to libmagic: asked right
    after the text, a type kept by fewer of its bytes (a prefix) would be the text's; a NUL
    past them, which libmagic never reads, changes nothing."""
    text = b"plain words in a file\n" * 1000
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(filetypes, "_known", filetypes._Answers(8))
        for at in (0, 64, 1000, filetypes.SNIFF_BYTES - 1, filetypes.SNIFF_BYTES):
            binary = text[:at] + b"\0" + text[at + 1:]
            for data in (text, binary, text):
                assert filetypes.content_type(data) == OLD_FILETYPES.content_type(data), at
        assert filetypes.content_type(text) != filetypes.content_type(b"\0" + text[1:])


def test_libmagic_failing_is_not_remembered():
    data = b"%PDF-1.4\n" + b"x" * 100

    class Failing:
        def from_buffer(self, data):
            raise RuntimeError("libmagic failed")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(filetypes, "_known", filetypes._Answers(8))
        patch.setattr(filetypes, "_magic", lambda: Failing())
        assert filetypes.content_type(data) == "application/octet-stream"
        patch.undo()
        patch.setattr(filetypes, "_known", filetypes._Answers(8))
        assert filetypes.content_type(data) == "application/pdf"


def test_kept_answers_are_bounded():
    answers = filetypes._Answers(2)
    for n in range(5):
        answers.put(bytes([n]) * 32, "text/plain")
    assert list(answers._answers) == [bytes([3]) * 32, bytes([4]) * 32]


def test_kept_answers_take_under_a_megabyte():
    """KNOWN_TYPES answers, each a digest and a type of its own (as libmagic's lowered
    answers are), measured: under 1 MB however many were put."""
    tracemalloc.start()
    try:
        answers = filetypes._Answers(filetypes.KNOWN_TYPES)
        for n in range(2 * filetypes.KNOWN_TYPES):
            answers.put(hashlib.sha256(n.to_bytes(4, "big")).digest(),
                        f"application/vnd.openxmlformats-officedocument.type-{n}")
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(answers._answers) == filetypes.KNOWN_TYPES
    assert held < 1 << 20


# --- the parser's bounds -----------------------------------------------------------------

STATUS_SPELLINGS = [b"delivery-status", b"Delivery-Status", b"DELIVERY-STATUS", b"dElIvErY-sTaTuS",
                    b"delivery_status", b"delivery-statu", b"delivery\xadstatus", b"DELIVERY-STATUs"]


@st.composite
def raw_messages(draw) -> bytes:
    """A header block of up to 30 lines (a multipart's, perhaps), then lines: delimiters,
    part header fields, delimiter-like ("--" after LF or CR), fields, text with
    "delivery-status" in any case or nearly, line breaks of every kind."""
    lines = draw(st.lists(st.sampled_from(
        [b"--b", b"--b--", b"Content-Type: multipart/mixed; boundary=b",
         b"Content-Type: message/delivery-status", b"X: y", b"text", b"", b"\r--x", b" fold"]
        + [b"a " + s + b" z" for s in STATUS_SPELLINGS] + STATUS_SPELLINGS), max_size=40))
    ends = draw(st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=len(lines),
                         max_size=len(lines)))
    header = draw(st.lists(st.sampled_from([b"X-Pad: n\n", b" folded\n", b"To: a@b\r\n",
                                            b"Content-Type: multipart/mixed; boundary=b\n"]),
                           max_size=30))
    return (b"From: a@b\n" + b"".join(header) + b"\n"
            + b"".join(line + end for line, end in zip(lines, ends)))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_messages(), st.integers(-40, 5), st.integers(-40, 5), st.sampled_from([1, 5, 16]))
def test_parts_and_blocks_are_bounded_as_before(raw, checks_off, lines_off, scan):
    """Limits made small (both trees the same), near what the message needs, so that each
    check decides either way: the delivery status found across the pieces it is looked for
    in, lines counted or not."""
    lines = raw.count(b"\n") + raw.count(b"\r")
    dashes = raw.count(b"\n--") + raw.count(b"\r--")
    with pytest.MonkeyPatch.context() as patch:
        for module in (mime_parts, OLD_PARTS):
            patch.setattr(module, "LINE_CHECKS", max(1, (dashes + 1) * lines + checks_off))
        for module in (header_blocks, OLD_BLOCKS):
            patch.setattr(module, "HEADER_LINES_LIMIT", max(1, lines + lines_off))
        patch.setattr(mime_parts, "STATUS_SCAN_BYTES", scan)
        assert mime_parts.bounded(raw) == OLD_PARTS.bounded(raw)
        assert header_blocks.bounded(raw) == OLD_BLOCKS.bounded(raw)
        assert mime_parts._names_delivery_status(raw) == \
            (OLD_PARTS._STATUS.search(raw) is not None)


def swept_messages() -> list[bytes]:
    """Messages whose header lines or line matches are what decides: long header blocks
    of short lines (top-level and a part's), multiparts of many short body lines."""
    found = []
    for lines in (3, 10, 40):
        pad = b"X: n\n" * lines
        found.append(b"From: a@b\n" + pad + b"\nbody\n")
        found.append(b"From: a@b\nContent-Type: multipart/mixed; boundary=b\n\n--b\n" + pad
                     + b"\ntext\n--b\n\n" + b"x\n" * lines + b"--b--\n")
        found.append(b"Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: "
                     b"multipart/alternative; boundary=i\n\n--i\n\n" + b"y\r\n" * lines
                     + b"--i--\n--o\n\n" + b"z\r" * lines + b"--o--\n")
    # Line breaks alone: as many lines as bytes, near enough (the bound by length is tight).
    found.append(b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\n" + b"\n" * 300
                 + b"--b\n\n" + b"\r" * 300 + b"--b--\n")
    return found


@pytest.mark.parametrize("raw", swept_messages())
def test_bounds_at_and_around_their_limits_are_as_before(raw):
    """Every limit from far under what the message needs to past it."""
    lines = raw.count(b"\n") + raw.count(b"\r")
    dashes = raw.count(b"\n--") + raw.count(b"\r--")
    for limit in range(1, lines + 3):
        with pytest.MonkeyPatch.context() as patch:
            for module in (header_blocks, OLD_BLOCKS):
                patch.setattr(module, "HEADER_LINES_LIMIT", limit)
            assert header_blocks.bounded(raw) == OLD_BLOCKS.bounded(raw), limit
    for checks in range(1, (dashes + 1) * lines + 3):
        with pytest.MonkeyPatch.context() as patch:
            for module in (mime_parts, OLD_PARTS):
                patch.setattr(module, "LINE_CHECKS", checks)
            assert mime_parts.bounded(raw) == OLD_PARTS.bounded(raw), checks


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(STATUS_SPELLINGS), st.binary(max_size=64),
       st.sampled_from([1, 3, 14, 15, 16, 1 << 20]))
def test_a_delivery_status_is_found_as_before(before, spelling, after, scan):
    raw = before + spelling + after
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mime_parts, "STATUS_SCAN_BYTES", scan)
        assert mime_parts._names_delivery_status(raw) == \
            (OLD_PARTS._STATUS.search(raw) is not None)


# --- whole messages, each tree in a process of its own -----------------------------------

READ = r'''
import dataclasses, hashlib, pickle, sys
import services
from services.archive.extract import extract
from services.archive.index import build_document
assert services.__file__.startswith(sys.argv[3]), services.__file__
results = []
for n, path in enumerate(open(sys.argv[1], encoding="utf-8").read().splitlines()):
    raw = open(path, "rb").read()
    meta = {"number": n + 1, "size": len(raw), "received": 1.7e9, "sent_date": 1.7e9,
            "recipients": ["audit@example.org"], "source": "import", "origin": "node1"}
    extracted = extract(raw, 64 * 1024)
    doc = build_document(hashlib.sha256(raw).hexdigest(), meta, extracted)
    read = dataclasses.asdict(extracted)
    read.pop("terms", None)  # (this tree's alone: a built document's count, None here)
    results.append((path, pickle.dumps(read),
                    [(t.term, t.wdf, list(t.positer)) for t in doc.termlist()],
                    doc.get_data(), [(v.num, v.value) for v in doc.values()]))
with open(sys.argv[2], "wb") as out:
    pickle.dump(results, out)
'''


def differences(paths: list[Path], work: Path) -> list[str]:
    """The paths whose readings differ between BEFORE and this tree, with what differs."""
    return columns_differing(BEFORE, READ, paths, work,
                             ("extracted", "terms", "data", "values"))


def attachment(rng: random.Random, data: bytes, name: str, kind: str) -> bytes:
    """A part of `data` in base64 of one shape or another (what encoders and spammers
    write), declared as `kind`."""
    text = base64.b64encode(data)
    width = rng.choice([76, 64, 4, 10_000])
    newline = rng.choice([b"\r\n", b"\n"])
    body = newline.join(text[at:at + width] for at in range(0, len(text), width))
    shape = rng.randrange(5)
    if shape == 1:
        body = body.replace(b"=", b"")
    elif shape == 2:
        body = body[:len(body) * 3 // 4]
    elif shape == 3:
        body = body.replace(newline, newline + b" *", 3)
    head = (f'Content-Type: {kind}; name="{name}"\nContent-Disposition: attachment; '
            f'filename="{name}"\nContent-Transfer-Encoding: base64\n\n')
    return head.encode() + body + newline


def generated_messages(folder: Path, count: int, seed: int = 7) -> list[Path]:
    """Messages of a few attachments each, drawn from a small pool (so that the same bytes,
    and the same first 16 KiB with another end, come again), some bounces."""
    rng = random.Random(seed)
    pdf = corpus.make_pdf(["the quarterly report", "budget figures"])
    pool = [(pdf, "report.pdf", "application/pdf"), (pdf, "report.bin", "application/octet-stream"),
            (pdf + b"%%trailer junk", "other.pdf", "application/pdf"),
            (b"\xff\xd8\xff\xe0" + bytes(rng.randrange(256) for _ in range(3000)), "logo.jpg",
             "image/jpeg"),
            (b"%PDF-1.4 not really", "fake.pdf", "text/plain"),
            (b"plain words in a file\n" * 900, "notes.txt", "application/octet-stream"),
            (b"x" * (filetypes.SNIFF_BYTES + 5), "big.dat", "application/octet-stream"),
            (b"x" * filetypes.SNIFF_BYTES + b"%PDF-1.4", "late.pdf", "application/pdf"),
            (b"<html><body><p>an html file</p></body></html>", "page.htm", "text/html"),
            (b"", "empty.bin", "application/octet-stream")]
    paths = []
    for n in range(count):
        parts = [b"Content-Type: text/plain\n\nThe body " + str(n).encode() + b"\n"]
        for _ in range(rng.randrange(1, 4)):
            parts.append(attachment(rng, *rng.choice(pool)))
        if n % 7 == 0:
            parts.append(b"Content-Type: " + rng.choice(
                [b"message/delivery-status", b"Message/DELIVERY-Status"])
                + b"\n\nReporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; a@b.c\n"
                + b"Action: failed\nStatus: 5.1.1\n")
        boundary = f"b{n}"
        kind = "report; report-type=delivery-status" if n % 7 == 0 else "mixed"
        raw = (f"From: a@example.org\nTo: b@example.org\nSubject: m {n}\n"
               f"Content-Type: multipart/{kind}; boundary=\"{boundary}\"\n\n").encode()
        raw += b"".join(b"--" + boundary.encode() + b"\n" + part for part in parts)
        raw += b"--" + boundary.encode() + b"--\n"
        path = folder / f"{n}.eml"
        path.write_bytes(raw)
        paths.append(path)
    return paths


def test_whole_messages_read_and_index_as_before(tmp_path):
    corpus.generate(tmp_path / "bench", 120, seed=5, attachments=True)
    paths = sorted((tmp_path / "bench" / "cur").iterdir())
    (tmp_path / "made").mkdir()
    paths += generated_messages(tmp_path / "made", 150)
    cases = [path for folder in CASES if folder.is_dir() for path in sorted(folder.rglob("*"))
             if path.is_file() and path.suffix != ".md"]
    assert cases
    paths += cases
    assert differences(paths, tmp_path) == []
