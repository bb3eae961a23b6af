"""A deterministic, realistic mail corpus for benchmarks and tests.

`generate(directory, count, seed)` writes a Maildir (directory/cur) of `count` messages:
plain text, multipart/alternative with HTML, and multipart/mixed with attachments (text,
HTML, PDF, DOCX, XLSX, a forwarded message/rfc822, images); with attachments=False only
conversations (plain text, or text with its HTML alternative); with From/To/Cc, threads
(Re: with In-Reply-To/References), Dates over 2019-2024 in several zones, and sizes from
2 KiB to 2 MiB, long-tailed: most messages are a few KiB, a few are over a MiB.

Words come from a fixed vocabulary with Zipf frequencies (a few hundred real words first,
then made-up ones), so common words hit most messages and rare ones few, as in real mail.
Marker words (MARKERS) are placed in one known place each and counted exactly, so a
benchmark can check its hit counts. Vocabulary and people do not depend on the seed, so
the same queries make sense for every corpus.

Speed: every message is assembled as bytes by hand (the email package would take most
of the run), PDFs are written by hand per message, and a handful of DOCX/XLSX files are
built once (python-docx and openpyxl take milliseconds each) and reused. Each message draws from its
own random generator seeded by (seed, index), so output does not depend on how the work
is split; large corpora are generated on every core.

    python -m tests.bench.corpus DIR --count N [--seed S] [--no-attachments]
"""
from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import functools
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import random
import sys
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MIN_SIZE = 2 * 1024
MAX_SIZE = 2 * 1024 * 1024

# Marker word -> (where it is placed, share of the messages having that place that get it).
MARKERS: dict[str, tuple[str, float]] = {
    "zanthoxylum": ("body", 0.10),
    "quillfeather": ("body", 0.01),
    "obsidiancrown": ("body", 0.001),
    "brackenvale": ("subject", 0.02),
    "marigoldium": ("html", 0.05),
    "tessellora": ("text attachment", 0.20),
    "ottervane": ("pdf", 0.20),
    "glimmerdoc": ("docx", 1 / 6),
    "ledgerwyrm": ("xlsx", 1 / 6),
    "nestorquay": ("forwarded message", 0.25),
}

COMMON_WORDS = """
the of and to a in is that for it as was with be by on not he this are or his from at
which but have an they you were her she there been one all we their has would when if so
no will can more about said up out them what some into time could only other new than
then also any these may first two over like very after year just where most should make
well work now such well even back much before good our those both each many made through
meeting please thanks regards project report budget invoice contract review team office
customer order payment account schedule agreement client quarter sales revenue forecast
policy update deadline proposal draft attached call week today tomorrow monday friday
question issue approval manager director board shipment delivery price quote vendor
supplier legal compliance audit risk finance marketing product release launch plan
strategy support ticket server backup network security password access training travel
expense receipt hotel flight conference presentation slides document spreadsheet data
analysis results summary minutes agenda action items follow discuss confirm available
regarding attached reminder urgent priority status progress estimate cost savings target
growth market partner merger acquisition lawsuit settlement hold retention archive email
""".split()
NON_ASCII_WORDS = ["café", "Müller", "résumé", "Zürich", "Straße", "naïve", "façade",
                   "Øresund", "señor", "Ångström", "crème", "Göteborg"]
SYLLABLES = ("ka lo ven mar ti sol dra ne pul ri gan to fe lis mor qua ber zen ath ux bel cor "
             "dun el fra gor hal im jor kel lum mon nor os pra rin sev tal um vor wil yar").split()
FIRST_NAMES = ("Alice Bob Carol David Erin Frank Grace Heidi Ivan Judy Karl Laura Mallory Nina "
               "Oscar Peggy Quentin Rita Sybil Trent Ursula Victor Wendy Xavier Yvonne Zoe "
               "José Zoë Søren Jürgen Chloé Łukasz").split()
LAST_NAMES = ("Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright Thompson "
              "Evans Walker White Roberts Green Hall Wood Jackson Clarke Müller Dubois García "
              "Novák Nakamura Okafor").split()
DOMAINS = ["example.com", "example.org", "example.net", "acme-corp.example", "globex.example",
           "initech.example", "umbrella.example", "law-firm.example", "bank.example",
           "supplier.example"]
ZONES = [0, 60, 60, 120, -300, -300, -480, 330, 540]  # minutes east of UTC, weighted by use
FIRST_DAY = dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc)
SPAN_SECONDS = int((dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc) - FIRST_DAY).total_seconds())

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ATTACHMENT_KINDS = {"pdf": 30, "docx": 20, "xlsx": 15, "text": 15, "html": 5, "forward": 15}
VARIANTS = 6  # prebuilt DOCX and XLSX files of each kind; one of them holds its marker
FIXED_TIME = dt.datetime(2020, 1, 1)  # in documents' properties, so output is reproducible
LARGEST_TARGET = MAX_SIZE - 60_000  # room for the last picture to overshoot its share
MIME_OVERHEAD = 200  # bytes of part headers and boundaries around a body, roughly


class Corpus(list):
    """The message files written (a list of Paths), with what benchmarks check against."""

    def __init__(self, paths, markers: dict[str, int], total_bytes: int):
        super().__init__(paths)
        self.markers = markers  # marker word -> number of messages that contain it
        self.total_bytes = total_bytes


# --- what does not depend on the seed -----------------------------------------------------

@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[list[str], list[float]]:
    """Words in rank order and their cumulative Zipf weights."""
    rng = random.Random(0)
    made_up: list[str] = []
    seen = set(COMMON_WORDS) | set(MARKERS)
    while len(made_up) < 12000:
        word = "".join(rng.choices(SYLLABLES, k=rng.choice((2, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            made_up.append(word)
    words = list(dict.fromkeys(COMMON_WORDS)) + made_up
    for position, word in zip(range(400, 4000, 300), NON_ASCII_WORDS):
        words.insert(position, word)
    cumulative, total = [], 0.0
    for rank in range(len(words)):
        total += 1 / (rank + 2) ** 1.05
        cumulative.append(total)
    return words, cumulative


@functools.lru_cache(maxsize=1)
def line_pool() -> list[str]:
    """Lines of prose (about 70 characters) that message bodies are drawn from."""
    words, cumulative = vocabulary()
    rng = random.Random(1)
    lines = []
    for _ in range(30000):
        line = rng.choices(words, cum_weights=cumulative, k=rng.randint(8, 13))
        line[0] = line[0].capitalize()
        lines.append(" ".join(line) + rng.choice((".", ".", ",", "", "?")))
    return lines


@functools.lru_cache(maxsize=1)
def people() -> list[tuple[str, str]]:
    """(display name, address) of everyone who writes; see people_weights."""
    rng = random.Random(2)
    result = []
    for first in FIRST_NAMES:
        for last in rng.sample(LAST_NAMES, 8):
            domain = rng.choice(DOMAINS)
            local = f"{first[0]}.{last}".lower().encode("ascii", "ignore").decode()
            result.append((f"{first} {last}", f"{local}@{domain}"))
    rng.shuffle(result)
    return result


@functools.lru_cache(maxsize=1)
def people_weights() -> list[float]:
    """Cumulative weights: earlier people write more mail, as in a real company."""
    return list(itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(len(people()))))


@functools.lru_cache(maxsize=1)
def picture_noise() -> bytes:
    """Random bytes as base64 lines of 76 characters, for pictures to take slices of."""
    return base64.encodebytes(random.Random(3).randbytes(57 * 16000))  # 912 KB of noise


# Base64 of a JFIF header (12 bytes, a whole number of 3-byte groups) and of the end marker.
JPEG_START = base64.encodebytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01")
JPEG_END = base64.encodebytes(b"\xff\xd9")


# --- attachments built once ---------------------------------------------------------------

@dataclass
class Assets:
    """DOCX and XLSX files built once per seed; index 0 of each holds its marker."""
    docx: list[bytes] = field(default_factory=list)
    xlsx: list[bytes] = field(default_factory=list)

    @classmethod
    def build(cls, seed: int) -> "Assets":
        rng = random.Random(f"{seed}:assets")
        docx_marker, xlsx_marker = marker_for("docx"), marker_for("xlsx")
        return cls(docx=[make_docx(rng, docx_marker if n == 0 else None) for n in range(VARIANTS)],
                   xlsx=[make_xlsx(rng, xlsx_marker if n == 0 else None) for n in range(VARIANTS)])


def marker_for(place: str) -> str:
    return next(word for word, (where, _share) in MARKERS.items() if where == place)


def make_docx(rng: random.Random, marker: str | None) -> bytes:
    import docx  # python3-docx, only when a corpus is made

    document = docx.Document()
    document.core_properties.created = document.core_properties.modified = FIXED_TIME
    document.add_heading(rng.choice(line_pool()).rstrip(".,?"), level=1)
    paragraphs = [" ".join(rng.sample(line_pool(), 5)) for _ in range(rng.randint(4, 12))]
    if marker:
        paragraphs[-1] += f" {marker}."
    for text in paragraphs:
        document.add_paragraph(text)
    table = document.add_table(rows=3, cols=3)
    for cell in table._cells:
        cell.text = rng.choice(vocabulary()[0][:300])
    output = io.BytesIO()
    document.save(output)
    return reproducible_zip(output.getvalue())


def make_xlsx(rng: random.Random, marker: str | None) -> bytes:
    import openpyxl  # python3-openpyxl, only when a corpus is made

    workbook = openpyxl.Workbook()
    workbook.properties.created = workbook.properties.modified = FIXED_TIME
    sheet = workbook.active
    sheet.title = "Summary"
    sheet.append(["Item", "Region", "Amount", "Note"])
    words = vocabulary()[0][:300]
    for row in range(rng.randint(20, 60)):
        sheet.append([f"{rng.choice(words)}-{row}", rng.choice(words),
                      round(rng.uniform(10, 99999), 2), rng.choice(line_pool())])
    if marker:
        sheet.append(["Total", marker, None, None])
    output = io.BytesIO()
    workbook.save(output)
    return reproducible_zip(output.getvalue())


def reproducible_zip(data: bytes) -> bytes:
    """The same zip with fixed member times, so a seed always gives the same bytes."""
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, \
            zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            target.writestr(zipfile.ZipInfo(member.filename, date_time=(2020, 1, 1, 0, 0, 0)),
                            source.read(member), compress_type=zipfile.ZIP_DEFLATED)
    return output.getvalue()


def make_pdf(lines: list[str]) -> bytes:
    """A small valid PDF whose text pypdf can extract, 45 lines a page, Latin-1 text."""
    pages = [lines[start:start + 45] for start in range(0, max(len(lines), 1), 45)]
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
               b"/Encoding /WinAnsiEncoding >>"]
    kids = []
    for page in pages:
        text = b"".join(b"(%s) Tj T*\n" % pdf_string(line) for line in page)
        stream = b"BT\n/F1 11 Tf\n14 TL\n56 790 Td\n" + text + b"ET\n"
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                       b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
                       % len(objects))
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    return pdf_file(objects)


def pdf_string(line: str) -> bytes:
    raw = line.encode("latin-1", "replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def pdf_file(objects: list[bytes]) -> bytes:
    output = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(output))
        output += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(output)
    output += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    output += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    output += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(output)


# --- one message --------------------------------------------------------------------------

def message_id(seed: int, index: int) -> str:
    token = hashlib.sha1(f"{seed}:{index}".encode()).hexdigest()[:20]
    return f"<{token}.{index}@mail.example.com>"


def sent_time(seed: int, index: int) -> dt.datetime:
    rng = random.Random(f"{seed}:{index}:date")
    moment = FIRST_DAY + dt.timedelta(seconds=rng.randrange(SPAN_SECONDS))
    zone = dt.timezone(dt.timedelta(minutes=rng.choice(ZONES)))
    return moment.astimezone(zone)


def thread_parent(seed: int, index: int) -> int | None:
    """The message this one replies to (an earlier one), or None for a new thread."""
    rng = random.Random(f"{seed}:{index}:thread")
    if index == 0 or rng.random() > 0.3:
        return None
    return max(0, index - rng.randint(1, 40))


def thread_subject(seed: int, index: int) -> str:
    root = index
    while (parent := thread_parent(seed, root)) is not None:
        root = parent
    rng = random.Random(f"{seed}:{root}:subject")
    words = rng.choice(line_pool()).rstrip(".,?").split()[:rng.randint(3, 7)]
    return " ".join(words)


class Composer:
    """Builds message `index` of a corpus; `markers` says which marker words it holds."""

    def __init__(self, seed: int, index: int, assets: Assets, attachments: bool = True):
        self.seed, self.index, self.assets = seed, index, assets
        self.attachments = attachments
        self.rng = random.Random(f"{seed}:{index}")
        self.markers: set[str] = set()
        self.sender = self.pick_person()

    def message(self) -> bytes:
        kind, target = self.kind_and_target()
        headers = self.headers()
        size = target - len(headers) - MIME_OVERHEAD
        body = self.text_body(size) if kind == "chat" else self.mixed_body(size, kind == "large")
        return headers + body

    def kind_and_target(self) -> tuple[str, int]:
        """What the message is and about how big: 70% conversation of a few KiB, 28% with
        attachments (tens of KiB), 2% large (scans, photos; 600 KB up to nearly 2 MiB).
        Without attachments, every message is a conversation."""
        roll = self.rng.random()
        if roll < 0.70 or not self.attachments:
            return "chat", self.bounded(self.rng.lognormvariate(math.log(4500), 0.55), 40_000)
        if roll < 0.98:
            return "attachments", self.bounded(self.rng.lognormvariate(math.log(45_000), 0.8),
                                               600_000)
        size = math.exp(self.rng.uniform(math.log(600_000), math.log(LARGEST_TARGET)))
        return "large", self.bounded(size, LARGEST_TARGET)

    @staticmethod
    def bounded(size: float, largest: int) -> int:
        return int(min(max(size, MIN_SIZE + 512), largest))

    # headers

    def pick_person(self) -> tuple[str, str]:
        return self.rng.choices(people(), cum_weights=people_weights())[0]

    def headers(self) -> bytes:
        when = sent_time(self.seed, self.index)
        recipients = [self.pick_person() for _ in range(self.rng.randint(1, 4))]
        copied = [self.pick_person() for _ in range(self.rng.choice((0, 0, 0, 1, 2, 3)))]
        lines = [f"Return-Path: <{self.sender[1]}>",
                 f"Received: from mx.{self.sender[1].split('@')[1]} by mx.example.com with ESMTPS"
                 f" id {self.index:08x};\n\t{email_date(when)}",
                 f"From: {address(self.sender)}",
                 f"To: {', '.join(map(address, recipients))}"]
        if copied:
            lines.append(f"Cc: {', '.join(map(address, copied))}")
        lines += [f"Subject: {header_text(self.subject())}", f"Date: {email_date(when)}",
                  f"Message-ID: {message_id(self.seed, self.index)}"]
        parent = thread_parent(self.seed, self.index)
        if parent is not None:
            lines += [f"In-Reply-To: {message_id(self.seed, parent)}",
                      f"References: {message_id(self.seed, parent)}"]
        lines += ["MIME-Version: 1.0",
                  f"X-Mailer: {self.rng.choice(['Outlook 16.0', 'Thunderbird 115', 'mutt'])}"]
        return "\n".join(lines).encode() + b"\n"

    def subject(self) -> str:
        subject = thread_subject(self.seed, self.index)
        if thread_parent(self.seed, self.index) is not None:
            subject = "Re: " + subject
        elif self.rng.random() < 0.05:
            subject = "Fwd: " + subject
        return f"{subject} {self.marked('subject')}".rstrip()

    def marked(self, place: str) -> str:
        """The marker word for `place` if this message gets it, else ""."""
        word = marker_for(place)
        if self.rng.random() < MARKERS[word][1]:
            self.markers.add(word)
            return word
        return ""

    # bodies

    def prose(self, size: int) -> list[str]:
        """At least `size` bytes of lines, in paragraphs of 2 to 7 lines."""
        pool = line_pool()
        lines = self.rng.choices(pool, k=size // 75 + 1)
        while sum(map(len, lines)) + len(lines) < size:
            lines.append(self.rng.choice(pool))
        paragraphs, start = [], 0
        while start < len(lines):
            end = start + self.rng.randint(2, 7)
            paragraphs += lines[start:end] + [""]
            start = end
        return paragraphs[:-1]

    def body_lines(self, size: int) -> list[str]:
        lines = [f"Hi {self.rng.choice(FIRST_NAMES)},", ""] + self.prose(size)
        for word, (place, share) in MARKERS.items():
            if place == "body" and self.rng.random() < share:
                self.markers.add(word)
                lines.insert(self.rng.randint(2, len(lines)), f"See {word} for details.")
        return lines + ["", "Best regards,", self.sender[0]]

    def text_body(self, size: int) -> bytes:
        if self.rng.random() < 0.6:
            return self.plain_part(self.body_lines(size))
        lines = self.body_lines(size * 10 // 24)  # the HTML copy is ~1.4x the plain one
        return multipart("alternative", [self.plain_part(lines), self.html_part(lines)],
                         self.boundary(), top_level=True)

    def plain_part(self, lines: list[str]) -> bytes:
        return text_part("text/plain", "\n".join(lines) + "\n")

    def html_part(self, lines: list[str]) -> bytes:
        paragraphs = "".join(f"<p>{line}</p>\n" if line else "<p>&nbsp;</p>\n" for line in lines)
        extra = self.marked("html")
        if extra:
            paragraphs += f'<p style="color:#888">Reference: {extra}</p>\n'
        html = ("<html><head><meta charset=\"utf-8\"><style>p{margin:0}</style></head>\n"
                f"<body>\n{paragraphs}</body></html>\n")
        return text_part("text/html", html)

    def mixed_body(self, size: int, large: bool) -> bytes:
        text = self.body_lines(self.rng.randint(400, 4000))
        if self.rng.random() < 0.5:
            first = self.plain_part(text)
        else:
            first = multipart("alternative", [self.plain_part(text), self.html_part(text)],
                              self.boundary())
        parts = [first] + [self.attachment() for _ in range(self.rng.choice((1, 1, 1, 2, 3)))]
        remaining = size - sum(map(len, parts))
        while remaining > 8_000 and (large or self.rng.random() < 0.6):
            picture = self.picture(min(remaining, 900_000))
            parts.append(picture)
            remaining -= len(picture) + 200
        return multipart("mixed", parts, self.boundary(), top_level=True)

    # attachments

    def attachment(self) -> bytes:
        kind = self.rng.choices(list(ATTACHMENT_KINDS), weights=ATTACHMENT_KINDS.values())[0]
        return getattr(self, f"{kind}_attachment")()

    def attachment_lines(self, place: str, size: int) -> list[str]:
        lines = self.prose(size)
        extra = self.marked(place)
        if extra:
            lines.insert(self.rng.randint(0, len(lines)), f"Code word {extra} applies.")
        return lines

    def pdf_attachment(self) -> bytes:
        document = make_pdf(self.attachment_lines("pdf", self.rng.randint(500, 12_000)))
        return binary_part("application/pdf", self.file_name("pdf"), document)

    def docx_attachment(self) -> bytes:
        return binary_part(DOCX_TYPE, self.file_name("docx"), self.prebuilt("docx"))

    def xlsx_attachment(self) -> bytes:
        return binary_part(XLSX_TYPE, self.file_name("xlsx"), self.prebuilt("xlsx"))

    def prebuilt(self, kind: str) -> bytes:
        # Variant 0 holds the marker; the share of messages that get it is MARKERS' share.
        word = marker_for(kind)
        if self.rng.random() < MARKERS[word][1]:
            self.markers.add(word)
            return getattr(self.assets, kind)[0]
        return getattr(self.assets, kind)[self.rng.randrange(1, VARIANTS)]

    def text_attachment(self) -> bytes:
        text = "\n".join(self.attachment_lines("text attachment", self.rng.randint(300, 20_000)))
        return binary_part("text/plain; charset=utf-8", self.file_name("txt"),
                           text.encode() + b"\n")

    def html_attachment(self) -> bytes:
        body = "".join(f"<li>{line}</li>" for line in self.prose(self.rng.randint(500, 8000)))
        page = f"<html><body><h1>Report</h1><ul>{body}</ul></body></html>\n"
        return binary_part("text/html; charset=utf-8", self.file_name("html"), page.encode())

    def forward_attachment(self) -> bytes:
        sender, when = self.pick_person(), sent_time(self.seed, self.index) - dt.timedelta(days=3)
        lines = self.attachment_lines("forwarded message", self.rng.randint(300, 3000))
        inner = (f"From: {address(sender)}\nTo: {address(self.sender)}\n"
                 f"Subject: {header_text(self.rng.choice(line_pool())[:50])}\n"
                 f"Date: {email_date(when)}\nMessage-ID: <fwd.{self.index}@mail.example.com>\n"
                 f"MIME-Version: 1.0\n").encode() + self.plain_part(lines)
        return (b"Content-Type: message/rfc822\nContent-Disposition: attachment\n\n"
                + inner)

    def picture(self, size: int) -> bytes:
        """A JPEG-looking attachment of about `size` bytes, encoded.

        Its noise is cut from lines encoded once (base64-encoding every picture would take
        most of the run); a cut at a line boundary is still valid base64 of 57-byte lines.
        """
        noise = picture_noise()
        lines = min(max(1, size // 77), len(noise) // 77)
        start = self.rng.randrange(len(noise) // 77 - lines + 1) * 77
        encoded = JPEG_START + noise[start:start + lines * 77] + JPEG_END
        return binary_part("image/jpeg", self.file_name("jpg"), encoded, encoded=True)

    def file_name(self, extension: str) -> str:
        stem = self.rng.choice(["Report", "Invoice", "Minutes", "Budget", "Contract", "Scan",
                                "IMG", "Präsentation", "Quarterly Review", "Offer"])
        return f"{stem}-{self.rng.randint(1, 9999)}.{extension}"

    def boundary(self) -> str:
        return f"=_part_{self.index}_{self.rng.getrandbits(48):012x}"


# --- MIME by hand -------------------------------------------------------------------------

def text_part(content_type: str, text: str) -> bytes:
    """A text part in quoted-printable UTF-8, or 7bit when it is plain ASCII."""
    data = text.encode()
    if data.isascii():
        headers = f"Content-Type: {content_type}; charset=us-ascii\nContent-Transfer-Encoding: 7bit"
    else:
        headers = (f"Content-Type: {content_type}; charset=utf-8\n"
                   "Content-Transfer-Encoding: quoted-printable")
        data = binascii.b2a_qp(data)
    return headers.encode() + b"\n\n" + data


def binary_part(content_type: str, file_name: str, data: bytes, encoded: bool = False) -> bytes:
    if file_name.isascii():
        disposition = f'attachment; filename="{file_name}"'
    else:  # RFC 2231, as Thunderbird and Outlook write non-ASCII names
        quoted = "".join(c if c.isascii() and c.isalnum() or c in ".-" else
                         "".join(f"%{b:02X}" for b in c.encode()) for c in file_name)
        disposition = f"attachment; filename*=utf-8''{quoted}"
    headers = (f"Content-Type: {content_type}; name=\"{header_text(file_name)}\"\n"
               f"Content-Disposition: {disposition}\nContent-Transfer-Encoding: base64\n\n")
    return headers.encode() + (data if encoded else base64.encodebytes(data))


def multipart(subtype: str, parts: list[bytes], boundary: str, top_level: bool = False) -> bytes:
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n'.encode()
    preamble = b"This is a multi-part message in MIME format.\n" if top_level else b""
    delimiter = f"\n--{boundary}\n".encode()
    return (head + preamble + delimiter + delimiter.join(parts)
            + f"\n--{boundary}--\n".encode())


def address(person: tuple[str, str]) -> str:
    return f"{header_text(person[0])} <{person[1]}>"


def header_text(text: str) -> str:
    """Non-ASCII header text as an RFC 2047 encoded word, as mail clients write it."""
    if text.isascii():
        return text
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def email_date(when: dt.datetime) -> str:
    offset = int(when.utcoffset().total_seconds() // 60)
    sign, offset = ("+" if offset >= 0 else "-"), abs(offset)
    return when.strftime("%a, %d %b %Y %H:%M:%S ") + f"{sign}{offset // 60:02d}{offset % 60:02d}"


# --- the corpus ---------------------------------------------------------------------------

def maildir_name(seed: int, index: int) -> str:
    return f"{int(sent_time(seed, index).timestamp())}.M{index:07d}P{seed}.corpus:2,S"


def write_range(directory: Path, seed: int, indexes: range, assets: Assets,
                attachments: bool = True):
    """Write messages `indexes`; returns (paths, marker counts, bytes written)."""
    paths, markers, total = [], Counter(), 0
    for index in indexes:
        composer = Composer(seed, index, assets, attachments)
        data = composer.message()
        path = directory / "cur" / maildir_name(seed, index)
        path.write_bytes(data)
        paths.append(path)
        markers.update(composer.markers)
        total += len(data)
    return paths, markers, total


def generate(directory: Path, count: int, seed: int = 1, attachments: bool = True) -> Corpus:
    """Write `count` messages into the Maildir `directory` (made if missing); without
    `attachments`, conversations only."""
    directory = Path(directory)
    for part in ("cur", "new", "tmp"):
        (directory / part).mkdir(parents=True, exist_ok=True)
    assets = Assets.build(seed)
    vocabulary(), line_pool(), people(), picture_noise()  # built once, before forking
    workers = min(os.cpu_count() or 1, max(1, count // 2000))
    pieces = split(range(count), workers)
    if workers == 1:
        results = [write_range(directory, seed, pieces[0], assets, attachments)]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.starmap(write_range, [(directory, seed, piece, assets, attachments)
                                                 for piece in pieces])
    return Corpus((path for paths, _, _ in results for path in paths),
                  markers={word: sum(result[1][word] for result in results) for word in MARKERS},
                  total_bytes=sum(result[2] for result in results))


def split(indexes: range, parts: int) -> list[range]:
    size = math.ceil(len(indexes) / parts) if len(indexes) else 1
    return [indexes[start:start + size] for start in range(0, len(indexes), size)] or [indexes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.corpus",
                                     description="Write a deterministic realistic Maildir.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-attachments", action="store_true",
                        help="conversations only (plain text, or text and HTML)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    corpus = generate(args.directory, args.count, args.seed, not args.no_attachments)
    print(json.dumps({"count": len(corpus), "total_bytes": corpus.total_bytes,
                      "seconds": round(time.perf_counter() - started, 3),
                      "markers": corpus.markers}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
